//! Server-side apply glue: every object the operator writes goes through here, with
//! one field manager and forced ownership of the fields it sets.

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

pub fn params() -> PatchParams {
    PatchParams::apply(pdc_api::OPERATOR_MANAGER).force()
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
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map(|_| ())
        .map_err(|source| Error::PatchStatus { what: format!("{} {name}", K::kind(&K::DynamicType::default())), source })
}
