//! Server-side apply glue: every object the operator writes goes through here, with
//! one field manager and forced ownership of the fields it sets. Every write asks the
//! API server for strict field validation: a field the schema does not know (a typo,
//! a field of another version) fails the write instead of being pruned silently.

use kube::api::{Patch, PatchParams, PostParams, ValidationDirective};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Server-side apply as the operator, strict.
pub fn params() -> PatchParams {
    PatchParams::apply(pdc_api::OPERATOR_MANAGER).force().validation_strict()
}

/// Merge, JSON and status patches: strict, no field manager of their own.
pub fn strict() -> PatchParams {
    PatchParams { field_validation: Some(ValidationDirective::Strict), ..Default::default() }
}

/// Create `obj` with strict field validation (kube's `PostParams` has no field for it).
pub async fn create<K>(api: &Api<K>, obj: &K) -> kube::Result<K>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    write(api, obj, None).await
}

/// Replace `name` (or its status, with `status`) with `obj`, strict; a stale
/// `resourceVersion` is a 409 as with `Api::replace`.
pub async fn replace<K>(api: &Api<K>, name: &str, obj: &K, status: bool) -> kube::Result<K>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    write(api, obj, Some((name, status))).await
}

async fn write<K>(api: &Api<K>, obj: &K, replace: Option<(&str, bool)>) -> kube::Result<K>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let bytes = serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?;
    let pp = PostParams { field_manager: Some(pdc_api::OPERATOR_MANAGER.into()), ..Default::default() };
    let mut req = kube::core::Request::new(api.resource_url());
    let (http, verb) = match replace {
        None => (req.create(&pp, bytes), "create"),
        Some((name, false)) => (req.replace(name, &pp, bytes), "replace"),
        Some((name, true)) => {
            req = kube::core::Request::new(format!("{}/{name}", api.resource_url()));
            (req.replace("status", &pp, bytes), "replace_status")
        }
    };
    let mut http = http.map_err(kube::Error::BuildRequest)?;
    let uri = format!("{}&fieldValidation=Strict", http.uri());
    *http.uri_mut() = uri.parse().map_err(|e: http::uri::InvalidUri| kube::Error::BuildRequest(kube::core::request::Error::Validation(e.to_string())))?;
    http.extensions_mut().insert(verb);
    api.clone().into_client().request::<K>(http).await
}

/// Server-side apply `obj` through `api`.
pub async fn apply<K>(api: &Api<K>, obj: &K) -> Result<K>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    K::DynamicType: Default,
{
    let name = obj.name_any();
    let what = || format!("{} {}", K::kind(&K::DynamicType::default()), name);
    api.patch(&name, &params(), &Patch::Apply(obj)).await.map_err(|source| Error::Apply { what: what(), source })
}

/// Merge-patch the status of `name` to `status`.
pub async fn patch_status<K, S>(api: &Api<K>, name: &str, status: &S) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
    S: Serialize,
{
    let body = serde_json::json!({ "status": status });
    api.patch_status(name, &strict(), &Patch::Merge(&body))
        .await
        .map(|_| ())
        .map_err(|source| Error::PatchStatus { what: format!("{} {name}", K::kind(&K::DynamicType::default())), source })
}
