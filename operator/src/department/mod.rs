//! The Department controller: a namespace per tenant with its quota, limits, role
//! bindings and network policies. Pipeline: fetch province → validate → build →
//! apply → status. A Department is deleted only once its namespace holds no pdc
//! resources.

pub mod build;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::core::DynamicObject;
use kube::discovery::{Discovery, Scope};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use pdc_api::conditions::{self, Cond, READY};
use pdc_api::labels as l;
use pdc_api::{Department, DepartmentStatus, DepartmentSubnet, NetworkZone, Province, Site};
use tracing::{info, instrument, warn};

use crate::apply;
use crate::ipam::{self, Ipam, attach};
use crate::context::Context;
use crate::error::{Error, Result};

const CONTROLLER: &str = "department";
/// Condition: the zone attachments (Multus NetworkAttachmentDefinitions) are in place.
const ATTACHMENTS: &str = "ZoneAttachments";

/// The one Province the cluster has, or why there is none to use.
pub fn the_province(provinces: &Store<Province>) -> std::result::Result<Arc<Province>, (&'static str, String)> {
    let mut all = provinces.state();
    all.sort_by_key(|p| p.name_any());
    match all.len() {
        0 => Err(("ProvinceMissing", "no Province exists yet; create one (see deploy/samples/province.yaml)".into())),
        1 => all.pop().ok_or(("ProvinceMissing", String::new())),
        _ => Err((
            "MultipleProvinces",
            format!(
                "pdc manages one province per cluster but found {}: {}; fold absorbed provinces into one (legacyDomains, absorbedCodePrefixes)",
                all.len(),
                all.iter().map(|p| p.name_any()).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

#[instrument(skip_all, fields(department = %dept.name_any()))]
async fn reconcile(dept: Arc<Department>, ctx: Arc<DepartmentContext>) -> Result<Action> {
    let api: Api<Department> = Api::all(ctx.base.client.clone());
    let c = ctx.as_ref();
    ctx.base
        .finalized(CONTROLLER, &api, l::DEPARTMENT_FINALIZER, dept, |d| async move { apply_department(&d, c).await }, |d| async move {
            cleanup_department(&d, c).await
        })
        .await
}

async fn apply_department(dept: &Department, ctx: &DepartmentContext) -> Result<Action> {
    let client = &ctx.base.client;
    let province = match the_province(&ctx.provinces) {
        Ok(p) => p,
        Err((reason, msg)) => {
            set_status(dept, ctx, None, None, Cond::new(READY, false, reason, msg), None).await?;
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
    };
    let problems = validate::problems(dept, &province);
    if !problems.is_empty() {
        let msg = problems.join("; ");
        publish(ctx, dept, EventType::Warning, "InvalidSpec", &msg).await;
        set_status(dept, ctx, None, None, Cond::new(READY, false, "InvalidSpec", msg), None).await?;
        // Wait for a change to the Department or the Province.
        return Ok(Action::await_change());
    }
    let known_subnets = dept.status.as_ref().map(|s| s.subnets.clone()).unwrap_or_default();
    let children = build::children(dept, &province, &ctx.bound, &known_subnets);
    let ns = dept.name_any();

    // A namespace this Department already recorded as its own needs no ownership check.
    let recorded = dept.status.as_ref().and_then(|s| s.namespace.as_deref()) == Some(ns.as_str());
    if !recorded && let Some(other) = foreign_owner(client, &ns).await? {
        let msg = format!("namespace {ns} already exists and is not this Department's ({other}); choose another name or remove that namespace");
        publish(ctx, dept, EventType::Warning, "NamespaceConflict", &msg).await;
        set_status(dept, ctx, None, None, Cond::new(READY, false, "NamespaceConflict", msg), None).await?;
        return Ok(Action::requeue(Duration::from_secs(300)));
    }
    apply_children(client, &ns, &children, !recorded).await?;
    let subdomain = dept.subdomain_in(&province.spec.domain);

    // Zones: subnets, attachments, reachability.
    let net = if dept.spec.zones.is_empty() && dept.status.as_ref().is_none_or(|s| s.subnets.is_empty()) {
        ipam::subnets::Outcome::default()
    } else {
        ctx.ipam.wait_synced().await;
        ipam::subnets::ensure(client, &ctx.ipam, dept, &ctx.zones, &ctx.sites).await?
    };
    // The namespace names the department's subnets for the admission policies.
    if net.subnets != known_subnets {
        apply::apply(&Api::<Namespace>::all(client.clone()), &build::namespace(dept, &province, &net.subnets)).await?;
    }
    // Multus is optional: its absence is reported in its own condition, not in Ready.
    let attachments = if dept.spec.zones.is_empty() {
        None
    } else {
        Some(match attach_zones(dept, ctx, &net.subnets).await? {
            Some((reason, note)) => Cond::new(ATTACHMENTS, false, reason, note),
            None => Cond::new(
                ATTACHMENTS,
                true,
                "Attached",
                format!("a NetworkAttachmentDefinition and a MultiNetworkPolicy per zone: {}", dept.spec.zones.join(", ")),
            ),
        })
    };
    let cond = if net.problems.is_empty() {
        let zones = if net.subnets.is_empty() { String::new() } else { format!(", subnets in {} zone(s)", dept.spec.zones.len()) };
        Cond::new(READY, true, "Provisioned", format!("namespace {ns} with quota, limits, role bindings and network policies{zones}; records under {subdomain}"))
    } else {
        Cond::new(READY, false, "NetworkPending", net.problems.join("; "))
    };
    let ok = cond.ok;
    set_status(dept, ctx, Some(subdomain), Some(net.subnets), cond, attachments).await?;
    // Network problems are often short-lived (a Site or zone just created, not yet in
    // the caches): look again soon.
    Ok(Action::requeue(Duration::from_secs(if ok { 600 } else { 10 })))
}

/// Apply each allowed zone's NetworkAttachmentDefinition and reachability policy;
/// remove those of zones no longer allowed. Returns a note when Multus is not installed.
async fn attach_zones(dept: &Department, ctx: &DepartmentContext, subnets: &[DepartmentSubnet]) -> Result<Option<(&'static str, String)>> {
    let client = &ctx.base.client;
    let ns = dept.name_any();
    let all = ctx.zones.state();
    let np: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns);
    let nads: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &attach::nad_resource());
    let mnps: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &attach::multi_policy_resource());
    let flows = pdc_api::zone_flows(all.iter().map(|z| z.as_ref()));
    let mut note = None;
    for zname in &dept.spec.zones {
        let Some(z) = all.iter().find(|z| z.name_any() == *zname) else { continue };
        apply::apply(&np, &attach::policy(dept, z, &flows)).await?;
        let mine: Vec<String> =
            subnets.iter().filter(|s| s.zone == *zname).flat_map(|s| [s.ipv4.clone(), s.ipv6.clone()]).flatten().collect();
        match nads.patch(&attach::zone_object_name(zname), &apply::params(), &kube::api::Patch::Apply(&attach::nad(dept, z, &mine))).await {
            Ok(_) => {}
            Err(e) if ipam::is_not_found(&e) => {
                note = Some(("MultusMissing", "Multus is not installed (no NetworkAttachmentDefinition kind): zone attachments were not created".to_string()));
                continue;
            }
            Err(source) => return Err(Error::Apply { what: format!("NetworkAttachmentDefinition {}", attach::zone_object_name(zname)), source }),
        }
        let policy = attach::multi_policy(dept, z, &flows, &mine);
        match mnps.patch(&attach::zone_object_name(zname), &apply::params(), &kube::api::Patch::Apply(&policy)).await {
            Ok(_) => {}
            Err(e) if ipam::is_not_found(&e) => {
                note = Some((
                    "MultiNetworkPolicyMissing",
                    "MultiNetworkPolicy is not installed (k8snetworkplumbingwg/multi-networkpolicy): zone rules are not enforced on VM NICs, only at the zone firewalls"
                        .to_string(),
                ));
            }
            Err(source) => return Err(Error::Apply { what: format!("MultiNetworkPolicy {}", attach::zone_object_name(zname)), source }),
        }
    }
    // Zones dropped from spec.zones.
    let dropped: Vec<String> = dept
        .status
        .iter()
        .flat_map(|s| s.subnets.iter().map(|x| x.zone.clone()))
        .filter(|z| !dept.spec.zones.contains(z))
        .collect();
    for z in dropped {
        let name = attach::zone_object_name(&z);
        for r in [
            np.delete(&name, &DeleteParams::default()).await.map(|_| ()),
            mnps.delete(&name, &DeleteParams::default()).await.map(|_| ()),
            nads.delete(&name, &DeleteParams::default()).await.map(|_| ()),
        ] {
            if let Err(e) = r
                && !ipam::is_not_found(&e)
            {
                return Err(Error::Delete { what: format!("{name} in {ns}"), source: e });
            }
        }
    }
    Ok(note)
}

/// The namespace, then the operator's own bindings in it (waiting, in a namespace
/// new to this Department, until the authorizer grants them), then the rest
/// together.
async fn apply_children(client: &kube::Client, ns: &str, children: &build::Children, new: bool) -> Result<()> {
    apply::apply(&Api::<Namespace>::all(client.clone()), &children.namespace).await?;
    // The operator's own rights in the namespace come first: it writes the rest with them.
    let rb: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
    futures::future::try_join_all(children.own_bindings.iter().map(|b| apply::apply(&rb, b))).await?;
    if new {
        rights_granted(client, ns).await?;
    }
    // The rest lives inside the namespace and goes out together.
    let np: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    let rq: Api<ResourceQuota> = Api::namespaced(client.clone(), ns);
    let lr: Api<LimitRange> = Api::namespaced(client.clone(), ns);
    futures::try_join!(
        apply::apply(&rq, &children.quota),
        apply::apply(&lr, &children.limits),
        futures::future::try_join_all(children.bindings.iter().map(|b| apply::apply(&rb, b))),
        futures::future::try_join_all(children.policies.iter().map(|p| apply::apply(&np, p))),
    )?;
    Ok(())
}

/// Wait (up to 10 s) until the API server's authorizer sees the binding just made in
/// `ns`: RBAC takes a new RoleBinding from its cache a moment after it is stored.
async fn rights_granted(client: &kube::Client, ns: &str) -> Result<()> {
    use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(ns.to_string()),
                verb: Some("create".into()),
                resource: Some("resourcequotas".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let start = std::time::Instant::now();
    loop {
        let answer = api
            .create(&Default::default(), &review)
            .await
            .map_err(|source| Error::Read { what: format!("the operator's rights in namespace {ns}"), source })?;
        if answer.status.is_some_and(|s| s.allowed) {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(Error::Invalid(format!(
                "the operator was bound to ClusterRole {} in namespace {ns} but holds no rights there after 10 s; is the chart's ClusterRole installed?",
                l::OPERATOR_NAMESPACED_CLUSTERROLE
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The owner of an existing namespace `ns` when it is not a pdc Department of that name.
async fn foreign_owner(client: &kube::Client, ns: &str) -> Result<Option<String>> {
    let api: Api<Namespace> = Api::all(client.clone());
    let existing = api.get_opt(ns).await.map_err(|source| Error::Read { what: format!("namespace {ns}"), source })?;
    Ok(existing.and_then(|n| {
        let mine = n.labels().get(l::DEPARTMENT).is_some_and(|d| d == ns);
        (!mine).then(|| match n.labels().get(l::MANAGED_BY) {
            Some(m) => format!("managed by {m}"),
            None => "created outside pdc".to_string(),
        })
    }))
}

async fn cleanup_department(dept: &Department, ctx: &DepartmentContext) -> Result<Action> {
    let ns = dept.name_any();
    if dept.spec.deletion_protection {
        let msg = format!("Department {ns} has deletionProtection: true; set it to false to let the deletion finish");
        set_status(dept, ctx, None, None, Cond::new(READY, false, "DeletionBlocked", msg.clone()), None).await?;
        return Err(Error::DeletionBlocked(msg));
    }
    let held = pdc_resources_in(&ctx.base.client, &ns).await?;
    if !held.is_empty() {
        let msg = format!(
            "namespace {ns} still holds pdc resources ({}); delete them first, the Department is removed when its namespace is empty",
            held.join(", ")
        );
        publish(ctx, dept, EventType::Warning, "DeletionBlocked", &msg).await;
        set_status(dept, ctx, None, None, Cond::new(READY, false, "DeletionBlocked", msg.clone()), None).await?;
        return Err(Error::DeletionBlocked(msg));
    }
    let api: Api<Namespace> = Api::all(ctx.base.client.clone());
    match api.delete(&ns, &DeleteParams::background()).await {
        Ok(_) => info!(namespace = %ns, "deleted department namespace"),
        Err(e) if crate::error::is_not_found(&e) => {}
        Err(source) => return Err(Error::Delete { what: format!("namespace {ns}"), source }),
    }
    // Nothing in the namespace holds an address any more: give the subnets back.
    ipam::subnets::release_all(&ctx.base.client, &ctx.ipam, &ns).await?;
    Ok(Action::await_change())
}

/// `Kind/name` of up to ten pdc objects still in namespace `ns`, of any namespaced
/// pdc kind the API server serves (so kinds added later are covered too).
async fn pdc_resources_in(client: &kube::Client, ns: &str) -> Result<Vec<String>> {
    let discovery = Discovery::new(client.clone()).filter(&[pdc_api::GROUP]).run().await.map_err(Error::Discover)?;
    let mut held = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if !matches!(caps.scope, Scope::Namespaced) {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
            let list = api
                .list_metadata(&ListParams::default().limit(10))
                .await
                .map_err(|source| Error::Read { what: format!("{} in namespace {ns}", ar.plural), source })?;
            held.extend(list.items.iter().map(|o| format!("{}/{}", ar.kind, o.name_any())));
        }
    }
    held.truncate(10);
    Ok(held)
}

async fn set_status(
    dept: &Department,
    ctx: &DepartmentContext,
    subdomain: Option<String>,
    subnets: Option<Vec<DepartmentSubnet>>,
    cond: Cond,
    extra: Option<Cond>,
) -> Result<()> {
    let old = dept.status.clone().unwrap_or_default();
    let ready = cond.ok;
    let mut conds = vec![cond];
    conds.extend(extra);
    let new = DepartmentStatus {
        observed_generation: dept.metadata.generation,
        conditions: conditions::merge(&old.conditions, &conds, dept.metadata.generation, Timestamp::now()),
        namespace: if ready { Some(dept.name_any()) } else { old.namespace.clone() },
        subdomain: subdomain.or(old.subdomain.clone()),
        subnets: subnets.unwrap_or_else(|| old.subnets.clone()),
        // The quota ledger is the VM and volume controllers' (written with
        // optimistic concurrency); an empty map is left out of this merge patch.
        quota_ledger: Default::default(),
    };
    if new == (DepartmentStatus { quota_ledger: Default::default(), ..old }) {
        return Ok(());
    }
    apply::patch_status(&Api::<Department>::all(ctx.base.client.clone()), &dept.name_any(), &new).await
}

async fn publish(ctx: &DepartmentContext, dept: &Department, type_: EventType, reason: &str, note: &str) {
    let ev = KubeEvent { type_, reason: reason.into(), note: Some(note.into()), action: "Reconcile".into(), secondary: None };
    let reference: ObjectReference = dept.object_ref(&());
    if let Err(e) = ctx.base.recorder.publish(&ev, &reference).await {
        warn!(error = %e, "publishing event failed");
    }
}

fn error_policy(dept: Arc<Department>, err: &Error, ctx: Arc<DepartmentContext>) -> Action {
    ctx.base.failed(CONTROLLER, dept.as_ref(), err, Duration::from_secs(5))
}

pub struct DepartmentContext {
    pub base: Arc<Context>,
    pub provinces: Store<Province>,
    pub ipam: Arc<Ipam>,
    pub zones: Store<NetworkZone>,
    pub sites: Store<Site>,
    /// Who is bound inside every department namespace.
    pub bound: build::Bound,
}

/// What in an object calls for work: its spec (generation), its finalizers and
/// whether it is being deleted. Status writes, including the operator's own, do not.
pub fn spec_or_lifecycle<K: Resource>(d: &K) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    d.meta().generation.hash(&mut h);
    d.meta().finalizers.hash(&mut h);
    d.meta().deletion_timestamp.is_some().hash(&mut h);
    Some(h.finish())
}

/// The Department controller: triggered by spec, finalizer and deletion changes, by
/// changes to the objects it owns, and by Province changes. At most `concurrency`
/// Departments reconcile at once.
pub fn controller(client: kube::Client, concurrency: u16) -> Controller<Department> {
    // A burst of events (seven children created by one apply) becomes one reconcile.
    let config = kube::runtime::controller::Config::default().debounce(Duration::from_millis(200)).concurrency(concurrency);
    crate::cache::controller::<Department>(client, spec_or_lifecycle).with_config(config)
}

/// Events on an owned object that call for a reconcile: its deletion, or a write by
/// anyone but the operator (drift to repair). The operator's own applies, and status
/// written by Kubernetes controllers (ResourceQuota usage), do not.
fn owned_changes<K>(api: Api<K>) -> impl futures::Stream<Item = std::result::Result<K, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let managed = watcher::Config::default().labels(&format!("{}={}", l::MANAGED_BY, l::MANAGED_BY_VALUE));
    watcher(api, managed).default_backoff().filter_map(|ev| {
        futures::future::ready(match ev {
            Ok(watcher::Event::Delete(o)) => Some(Ok(o)),
            Ok(watcher::Event::Apply(o)) if edited_by_others(o.meta()) => Some(Ok(o)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
    })
}

/// Whether fields of the object (outside its status) are managed by someone other
/// than the operator.
pub fn edited_by_others(meta: &kube::api::ObjectMeta) -> bool {
    meta.managed_fields.iter().flatten().any(|m| {
        m.manager.as_deref() != Some(pdc_api::OPERATOR_MANAGER) && m.subresource.as_deref().is_none_or(|s| s != "status")
    })
}

/// Run the Department controller.
pub async fn run(
    base: Arc<Context>,
    provinces: Store<Province>,
    ipam: Arc<Ipam>,
    zones: Store<NetworkZone>,
    sites: Store<Site>,
    bound: build::Bound,
    controller: Controller<Department>,
) {
    let client = base.client.clone();
    let store = controller.store();
    let by_zone = store.clone();
    let (by_site, zones_of_site) = (store.clone(), zones.clone());
    let ctx = Arc::new(DepartmentContext { base, provinces, ipam, zones, sites, bound });
    controller
        .owns_stream(owned_changes(Api::<Namespace>::all(client.clone())))
        .owns_stream(owned_changes(Api::<ResourceQuota>::all(client.clone())))
        .owns_stream(owned_changes(Api::<RoleBinding>::all(client.clone())))
        .owns_stream(owned_changes(Api::<NetworkPolicy>::all(client.clone())))
        .owns_stream(owned_changes(Api::<LimitRange>::all(client.clone())))
        // Any Province change (domain, tiers, overhead) can change every Department.
        .watches(Api::<Province>::all(client.clone()), watcher::Config::default(), move |_| {
            store.state().into_iter().map(|d| ObjectRef::from_obj(&*d)).collect::<Vec<_>>()
        })
        // A zone's spec change (prefixes, reachability) concerns the Departments using it.
        .watches_stream(
            ipam::zone::spec_changes(Api::<NetworkZone>::all(client.clone())),
            move |z| {
                let zone = z.name_any();
                by_zone.state().into_iter().filter(|d| d.spec.zones.contains(&zone)).map(|d| ObjectRef::from_obj(&*d)).collect::<Vec<_>>()
            },
        )
        // A Site appearing or changing its blocks decides whether zones spanning it are usable.
        .watches_stream(
            watcher(Api::<Site>::all(client.clone()), watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .predicate_filter(kube::runtime::predicates::generation, Default::default()),
            move |site| {
                let site = site.name_any();
                let spanning: Vec<String> = zones_of_site
                    .state()
                    .iter()
                    .filter(|z| z.spec.sites.iter().any(|s| s.site == site))
                    .map(|z| z.name_any())
                    .collect();
                by_site
                    .state()
                    .into_iter()
                    .filter(|d| d.spec.zones.iter().any(|z| spanning.contains(z)))
                    .map(|d| ObjectRef::from_obj(&*d))
                    .collect::<Vec<_>>()
            },
        )
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

