//! Disaster recovery. Each site's operator reconciles the DrPlans in its own
//! cluster. The site a plan calls active copies the plan and its VMs' definitions to
//! the other site and drives VolSync replication of their disks ([`replicate`]);
//! the other site reports what it receives. An action is carried out by the
//! operator of the site that is to take over ([`action`]), so a failover needs
//! nothing from the site that was lost.
//!
//! Which site is active is recorded in both copies with an epoch that every
//! failover or relocate raises; the higher epoch wins ([`pdc_core::dr::active_site`]).
//! The TenantVM controller and the DNS writer ask [`DrView`] what a protected VM
//! may do here: run, or stay halted with its addresses reserved; carry DNS or not.

pub mod action;
pub mod hold;
pub mod replicate;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, GroupVersionKind, Patch};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use pdc_api::labels as l;
use pdc_api::{DrAction, DrPlan, Province, Site, TenantVM};
use tracing::{info, warn};

use crate::compute::build::VM_LABEL;
use crate::compute::plan::{Placement, Placements};
use crate::context::Context;
use crate::error::{Error, Result};

const CONTROLLER: &str = "drplan";

pub fn rs_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("volsync.backube", "v1alpha1", "ReplicationSource"), "replicationsources")
}

pub fn rd_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("volsync.backube", "v1alpha1", "ReplicationDestination"), "replicationdestinations")
}

/// What the TenantVM controller and the DNS writer need of the DrPlans: this
/// operator's site, the plans, and which plans the DR controller has checked
/// against the other site since this process started.
#[derive(Clone)]
pub struct DrView {
    pub site: Option<String>,
    pub plans: Store<DrPlan>,
    confirmed: Arc<Mutex<HashSet<String>>>,
}

impl DrView {
    pub fn new(site: Option<String>, plans: Store<DrPlan>) -> Self {
        Self { site, plans, confirmed: Arc::default() }
    }

    /// The same view over another cache of the plans (one fed by the stream that
    /// wakes its user, so the user sees what woke it).
    pub fn with_plans(&self, plans: Store<DrPlan>) -> Self {
        Self { site: self.site.clone(), plans, confirmed: self.confirmed.clone() }
    }

    fn confirm(&self, plan: &DrPlan) {
        if let Ok(mut c) = self.confirmed.lock() {
            c.insert(plan_key(plan));
        }
    }

    fn is_confirmed(&self, plan: &DrPlan) -> bool {
        self.confirmed.lock().map(|c| c.contains(&plan_key(plan))).unwrap_or(false)
    }

    /// The oldest plan of namespace `ns` that covers a VM with this flag and labels.
    pub fn plan_for(&self, ns: &str, protected: bool, labels: Option<&BTreeMap<String, String>>) -> Option<Arc<DrPlan>> {
        if !protected || self.site.is_none() {
            return None;
        }
        let mut plans: Vec<Arc<DrPlan>> = self.plans.state().into_iter().filter(|p| p.namespace().as_deref() == Some(ns) && p.covers(protected, labels)).collect();
        plans.sort_by_key(|p| (p.metadata.creation_timestamp.as_ref().map(|t| t.0), p.name_any()));
        plans.into_iter().next()
    }

    pub fn vm_role(&self, vm: &TenantVM) -> Placement {
        if vm.spec.dr_protected && self.site.is_some() && !crate::cache::synced(&self.plans) {
            // No plan is not yet "no plan": the cache of plans has not been filled.
            return Placement::Unconfirmed;
        }
        let (Some(site), Some(plan)) = (self.site.as_deref(), self.plan_for(&vm.namespace().unwrap_or_default(), vm.spec.dr_protected, vm.metadata.labels.as_ref())) else {
            return Placement::Unprotected;
        };
        if !self.is_confirmed(&plan) {
            return Placement::Unconfirmed;
        }
        if plan.active_site() == site {
            let promoted = plan.status.as_ref().map(|s| s.promoted.clone()).unwrap_or_default();
            Placement::Active { plan: plan.name_any(), primary: plan.spec.primary_site.clone(), promoted, dns: plan.dns_site() == site }
        } else {
            Placement::Standby { plan: plan.name_any(), primary: plan.spec.primary_site.clone(), active: plan.active_site().to_string() }
        }
    }

    /// For the DNS writer: where the names of TenantVM `vm` in `ns` are programmed,
    /// or `None` when no plan covers the VM.
    pub fn names_at(&self, ns: &str, vm: &str) -> Option<NamesAt> {
        let site = self.site.as_deref()?;
        let plan = self.plan_of_vm(ns, vm)?;
        Some(if !self.is_confirmed(&plan) {
            NamesAt::Unsettled
        } else if plan.dns_site() == site {
            NamesAt::Here
        } else {
            NamesAt::Elsewhere(format!(
                "site {} carries this name (DR plan {}), with its addresses; site {site} programs it again after a failover or relocate here",
                plan.dns_site(),
                plan.name_any()
            ))
        })
    }

    /// The plan of namespace `ns` whose status lists VM `vm`.
    fn plan_of_vm(&self, ns: &str, vm: &str) -> Option<Arc<DrPlan>> {
        self.plans.state().into_iter().find(|p| p.namespace().as_deref() == Some(ns) && p.status.as_ref().is_some_and(|s| s.vms.iter().any(|v| v == vm)))
    }

    /// Addresses at the other site whose PTRs are this site's to remove: those of
    /// plans whose DNS is here.
    pub fn peer_addresses(&self) -> Vec<String> {
        let Some(site) = self.site.as_deref() else { return Vec::new() };
        self.plans
            .state()
            .iter()
            .filter(|p| self.is_confirmed(p) && p.dns_site() == site)
            .flat_map(|p| p.status.as_ref().map(|s| s.peer_addresses.clone()).unwrap_or_default())
            .collect()
    }
}

/// Where a DR-protected VM's names are programmed, as this site sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamesAt {
    /// Here, with this site's addresses: program them, and take over the sets the
    /// other site programmed.
    Here,
    /// Not known until this site has settled the plan with its peer: leave them.
    Unsettled,
    /// At the other site, with its addresses (which site and plan, in words the
    /// department can act on): leave them.
    Elsewhere(String),
}

impl Placements for DrView {
    fn site(&self) -> Option<&str> {
        self.site.as_deref()
    }

    fn placement(&self, vm: &TenantVM) -> Placement {
        self.vm_role(vm)
    }
}

/// A cache of the DrPlans and the stream of their changes, status included (an
/// action at either site moves a plan by its status). The cache is updated before a
/// change is passed on.
/// Only changes of what the VMs and names of a plan depend on are passed on: its
/// spec, which site is active and carries DNS, the epoch, the promoted replicas, the
/// VMs it covers and their other addresses (not lag or conditions).
pub fn watch_plans(client: Client) -> (Store<DrPlan>, impl futures::Stream<Item = std::result::Result<DrPlan, watcher::Error>> + Send + 'static) {
    let (reader, events) = crate::cache::reflected::<DrPlan>(client, watcher::Config::default());
    let stream = events.touched_objects().predicate_filter(
        |p: &DrPlan| {
            let st = p.status.clone().unwrap_or_default();
            Some(hash(&(p.metadata.generation, p.metadata.deletion_timestamp.is_some(), p.active_site(), p.dns_site(), p.epoch(), st.promoted, st.vms, st.peer_addresses, st.site)))
        },
        Default::default(),
    );
    (reader, stream)
}

/// The TenantVM a child object (claim, record) belongs to, from its label.
pub fn vm_of<K: kube::Resource>(o: &K) -> Option<String> {
    o.meta().labels.as_ref()?.get(VM_LABEL).cloned()
}

/// Set `key` of JSON object `obj` (nothing when `obj` is not an object).
pub fn set(obj: &mut serde_json::Value, key: &str, v: serde_json::Value) {
    if let Some(o) = obj.as_object_mut() {
        o.insert(key.to_string(), v);
    }
}

fn plan_key(p: &DrPlan) -> String {
    format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any())
}

pub struct DrContext {
    pub base: Arc<Context>,
    pub view: DrView,
    pub vms: Store<TenantVM>,
    pub sites: Store<Site>,
    pub provinces: Store<Province>,
    /// The operator's namespace: where Sites' kubeconfig Secrets are.
    pub namespace: String,
    /// A pause after each action step's effects, before the step is recorded done
    /// (`PDC_DR_STEP_PAUSE`; for crash tests and demonstrations, 0 otherwise).
    pub step_pause: Duration,
    peers: Mutex<HashMap<String, (String, Client)>>,
}

impl DrContext {
    pub fn new(base: Arc<Context>, view: DrView, vms: Store<TenantVM>, sites: Store<Site>, provinces: Store<Province>, namespace: String, step_pause: Duration) -> Self {
        Self { base, view, vms, sites, provinces, namespace, step_pause, peers: Mutex::default() }
    }

    /// A client for `site`'s cluster, from the kubeconfig in its Secret (cached per
    /// Secret version). Requests time out after 5 s so a lost site is seen quickly.
    /// The error says what is missing, never the Secret's contents.
    pub async fn peer(&self, site: &str) -> std::result::Result<Client, String> {
        let s = self.sites.get(&ObjectRef::new(site)).ok_or_else(|| format!("Site {site} is not defined in this cluster"))?;
        let r = s.spec.kubeconfig_secret.clone().ok_or_else(|| format!("Site {site} has no kubeconfigSecret: this operator cannot reach its cluster"))?;
        let secrets: Api<Secret> = Api::namespaced(self.base.client.clone(), &self.namespace);
        let secret = secrets.get_opt(&r.name).await.map_err(|e| format!("reading Secret {}/{} failed: {e}", self.namespace, r.name))?;
        let secret = secret.ok_or_else(|| format!("Secret {}/{} (Site {site}'s kubeconfig) does not exist", self.namespace, r.name))?;
        let version = secret.resource_version().unwrap_or_default();
        if let Ok(cache) = self.peers.lock()
            && let Some((v, c)) = cache.get(site)
            && *v == version
        {
            return Ok(c.clone());
        }
        let bytes = secret.data.as_ref().and_then(|d| d.get(&r.key)).map(|b| b.0.clone()).ok_or_else(|| format!("Secret {} has no key {:?}", r.name, r.key))?;
        let text = String::from_utf8(bytes).map_err(|_| format!("Secret {} key {:?} is not text", r.name, r.key))?;
        let kc = kube::config::Kubeconfig::from_yaml(&text).map_err(|e| format!("Secret {} key {:?} is not a kubeconfig: {}", r.name, r.key, redact(&e.to_string())))?;
        let mut cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| format!("the kubeconfig of Site {site} cannot be used: {}", redact(&e.to_string())))?;
        cfg.connect_timeout = Some(Duration::from_secs(3));
        cfg.read_timeout = Some(Duration::from_secs(5));
        cfg.write_timeout = Some(Duration::from_secs(5));
        let client = Client::try_from(cfg).map_err(|e| format!("a client for Site {site} cannot be built: {e}"))?;
        if let Ok(mut cache) = self.peers.lock() {
            cache.insert(site.to_string(), (version, client.clone()));
        }
        Ok(client)
    }
}

/// Error texts from kubeconfig parsing may quote the input; keep only the first line
/// and nothing longer than 120 characters.
fn redact(s: &str) -> String {
    s.lines().next().unwrap_or_default().chars().take(120).collect()
}

/// A routine status write: only the fields the steady-state reconcile owns, so it
/// never overwrites what an action (here or at the other site) recorded.
pub async fn patch_status(client: &Client, plan: &DrPlan, body: serde_json::Value) -> Result<()> {
    let api: Api<DrPlan> = Api::namespaced(client.clone(), &plan.namespace().unwrap_or_default());
    api.patch_status(&plan.name_any(), &crate::apply::strict(), &Patch::Merge(&serde_json::json!({ "status": body })))
        .await
        .map(|_| ())
        .map_err(|source| Error::PatchStatus { what: format!("DrPlan {}", plan.name_any()), source })
}

/// The plan's record of which site is active, corrected from the other site's copy
/// when that has the higher epoch. Returns the peer's copy as read (None if unread)
/// and whether the local record was changed.
async fn settle_active(plan: &DrPlan, ctx: &DrContext, peer: Option<&Client>) -> Result<(Option<DrPlan>, bool)> {
    let Some(pc) = peer else { return Ok((None, false)) };
    let api: Api<DrPlan> = Api::namespaced(pc.clone(), &plan.namespace().unwrap_or_default());
    let theirs = match api.get_opt(&plan.name_any()).await {
        Ok(p) => p,
        Err(e) => {
            warn!(plan = %plan_key(plan), error = %e, "the other site's copy of the plan cannot be read");
            return Ok((None, false));
        }
    };
    let Some(t) = theirs else { return Ok((None, false)) };
    let winner = pdc_core::dr::active_site((plan.active_site(), plan.epoch()), Some((t.active_site(), t.epoch())));
    if winner != plan.active_site() || (t.epoch() > plan.epoch() && t.dns_site() != plan.dns_site()) {
        info!(plan = %plan_key(plan), active = winner, epoch = t.epoch(), "the other site's copy is newer: taking its record of the active site");
        patch_status(&ctx.base.client, plan, serde_json::json!({"activeSite": t.active_site(), "dnsSite": t.dns_site(), "epoch": t.epoch()})).await?;
        return Ok((Some(t), true));
    }
    Ok((Some(t), false))
}

async fn reconcile(cached: Arc<DrPlan>, ctx: Arc<DrContext>) -> Result<Action> {
    let api: Api<DrPlan> = Api::namespaced(ctx.base.client.clone(), &cached.namespace().unwrap_or_default());
    let c = ctx.as_ref();
    ctx.base.finalized(CONTROLLER, &api, l::DR_FINALIZER, cached, |p| async move { apply(p, c).await }, |p| async move { cleanup(p, c).await }).await
}

async fn apply(cached: Arc<DrPlan>, ctx: &DrContext) -> Result<Action> {
    use crate::cache::synced;
    // The VMs a plan covers and the sites come from caches: an unfilled one is not
    // "no VMs" (which would drop them from the plan and from the other site).
    if !(synced(&ctx.vms) && synced(&ctx.sites) && synced(&ctx.provinces) && synced(&ctx.view.plans)) {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    // Always act on the stored plan: an action's own writes may not be in the cache yet.
    let api: Api<DrPlan> = Api::namespaced(ctx.base.client.clone(), &cached.namespace().unwrap_or_default());
    let Some(plan) = api.get_opt(&cached.name_any()).await.map_err(|source| Error::Read { what: format!("DrPlan {}", cached.name_any()), source })? else {
        return Ok(Action::await_change());
    };
    let Some(me) = ctx.view.site.clone() else {
        let msg = "this operator's site is not set (chart value `site`, env PDC_SITE): it cannot replicate or act";
        return not_here(&plan, ctx, "SiteNotSet", msg, serde_json::json!({"phase": "Unprotected"})).await;
    };
    if me != plan.spec.primary_site && me != plan.spec.standby_site {
        let msg = format!("this operator runs at site {me}, which is neither the plan's primary nor its standby");
        return not_here(&plan, ctx, "NotAtThisSite", &msg, serde_json::json!({"site": me})).await;
    }
    let peer_site = plan.peer_of(&me).to_string();
    let peer = ctx.peer(&peer_site).await;
    let running = plan.status.as_ref().and_then(|s| s.last_action.clone()).filter(|a| a.result == "Running");
    // While an action runs here, this site's record decides; otherwise settle it
    // against the other site's copy first.
    let (peer_plan, changed) = if running.is_some() { (None, false) } else { settle_active(&plan, ctx, peer.as_ref().ok()).await? };
    if changed {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    ctx.view.confirm(&plan);
    if let Some(a) = running {
        return action::step(&plan, a, ctx, &me, &peer_site, peer).await;
    }
    let st = plan.status.clone().unwrap_or_default();
    let token = plan.spec.action_token.clone().unwrap_or_default();
    if plan.spec.action != DrAction::None && st.last_action.as_ref().is_none_or(|a| a.token != token) {
        return action::start(&plan, ctx, &me, &peer_site, peer, peer_plan).await;
    }
    release_replicas(&plan, ctx).await;
    if plan.active_site() == me {
        replicate::active(&plan, ctx, &me, &peer_site, peer).await
    } else {
        replicate::standby(&plan, ctx, &me, &peer_site).await
    }
}

/// Replicas held for a restore or drill that no disk still restores from go back to
/// VolSync (or are deleted, when VolSync has moved past them). A failure is logged and
/// tried again at the next pass.
async fn release_replicas(plan: &DrPlan, ctx: &DrContext) {
    let ns = plan.namespace().unwrap_or_default();
    let rds: Api<kube::api::DynamicObject> = Api::namespaced_with(ctx.base.client.clone(), &ns, &rd_resource());
    let lp = kube::api::ListParams::default().labels(&format!("{}={}", l::DR_PLAN, plan.name_any()));
    let newest = match rds.list(&lp).await {
        Ok(l) => l.items.iter().filter_map(|o| replicate::sync_state(o).1).collect(),
        Err(e) => {
            tracing::warn!(namespace = %ns, plan = %plan.name_any(), error = %e, "listing replication destinations failed");
            return;
        }
    };
    if let Err(e) = hold::release(&ctx.base.client, &ns, &plan.name_any(), &newest).await {
        tracing::warn!(namespace = %ns, plan = %plan.name_any(), error = %e, "releasing held replicas failed");
    }
}

/// A plan this operator cannot serve: `Protected=False` with `reason` and `msg`
/// (and the status fields in `extra`); looked at again in 5 minutes.
async fn not_here(plan: &DrPlan, ctx: &DrContext, reason: &'static str, msg: &str, mut extra: serde_json::Value) -> Result<Action> {
    let cond = pdc_api::conditions::Cond::new(replicate::PROTECTED, false, reason, msg);
    let conds = pdc_api::conditions::merge(&plan.status.clone().unwrap_or_default().conditions, &[cond], plan.metadata.generation, Timestamp::now());
    set(&mut extra, "conditions", serde_json::to_value(&conds).unwrap_or_default());
    patch_status(&ctx.base.client, plan, extra).await?;
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Deleting a plan: refused while an action runs; otherwise what it made at this site
/// goes: its replication objects (VolSync removes their movers, services and claims
/// with them), the Secrets it copied here and, at the site that is not active, the
/// halted TenantVM copies. At the active site the VMs stay, and the plan's copy at the
/// other site is deleted too, whose operator then removes what the plan made there; a
/// site that does not answer is left as it is (its copy can be deleted there later).
async fn cleanup(plan: Arc<DrPlan>, ctx: &DrContext) -> Result<Action> {
    if let Some(a) = plan.status.as_ref().and_then(|s| s.last_action.as_ref()).filter(|a| a.result == "Running") {
        return Err(Error::DeletionBlocked(format!("DrPlan {} is carrying out {} (token {}); delete it when the action has finished", plan.name_any(), a.action.as_str(), a.token)));
    }
    let ns = plan.namespace().unwrap_or_default();
    let client = &ctx.base.client;
    let name = plan.name_any();
    let secrets = replicate::copied_secret_names(client, &plan).await?;
    let active_here = ctx.view.site.as_deref().is_some_and(|me| plan.active_site() == me);
    if !active_here {
        replicate::delete_labelled(client, &ns, &name, &ApiResource::erase::<pdc_api::TenantVM>(&())).await?;
    }
    replicate::delete_labelled(client, &ns, &name, &rs_resource()).await?;
    replicate::delete_labelled(client, &ns, &name, &rd_resource()).await?;
    replicate::delete_secret_copies(client, &ns, &name, &secrets).await?;
    tracing::info!(namespace = %ns, plan = %name, active_here, secrets = ?secrets, "DrPlan removed at this site");
    hold::release(client, &ns, &name, &Default::default()).await.map_err(Error::Invalid)?;
    if let Some(me) = ctx.view.site.as_deref()
        && active_here
        && let Ok(pc) = ctx.peer(plan.peer_of(me)).await
    {
        match Api::<DrPlan>::namespaced(pc.clone(), &ns).delete(&name, &kube::api::DeleteParams::background()).await {
            Ok(_) => {}
            Err(e) if crate::error::is_not_found(&e) => {}
            Err(e) => tracing::warn!(namespace = %ns, plan = %name, error = %e, "deleting the plan's copy at the other site failed; delete it there"),
        }
    }
    ctx.base.metrics.forget_plan(&ns, &plan.name_any());
    Ok(Action::await_change())
}

fn error_policy(p: Arc<DrPlan>, err: &Error, ctx: Arc<DrContext>) -> Action {
    ctx.base.failed(CONTROLLER, p.as_ref(), err, Duration::from_secs(3))
}

fn hash<T: std::hash::Hash>(t: &T) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

/// What of a VolSync object calls for a plan's attention.
fn volsync_key(o: &kube::api::DynamicObject) -> Option<u64> {
    let s = |p: &str| o.data.pointer(p).and_then(|v| v.as_str()).map(str::to_string);
    Some(hash(&(
        o.metadata.generation,
        o.metadata.deletion_timestamp.is_some(),
        s("/status/latestMoverStatus/result"),
        s("/status/rsyncTLS/address"),
        s("/status/rsyncTLS/keySecret"),
        o.data.pointer("/status/lastSyncTime").is_some(),
        o.data.pointer("/status/latestImage/name").is_some(),
    )))
}

pub fn controller(client: Client) -> Controller<DrPlan> {
    Controller::new(Api::<DrPlan>::all(client), watcher::Config::default())
}

/// Run the DrPlan controller. Plans are woken by their own changes (status too: an
/// action at the other site writes here), by their VMs, and by VolSync's objects.
pub async fn run(ctx: Arc<DrContext>, controller: Controller<DrPlan>) {
    let client = ctx.base.client.clone();
    let labelled = watcher::Config::default().labels(l::DR_PLAN);
    let rs = watcher(Api::<kube::api::DynamicObject>::all_with(client.clone(), &rs_resource()), labelled.clone())
        .default_backoff()
        .touched_objects()
        .predicate_filter(volsync_key, Default::default());
    let rd = watcher(Api::<kube::api::DynamicObject>::all_with(client.clone(), &rd_resource()), labelled)
        .default_backoff()
        .touched_objects()
        .predicate_filter(volsync_key, Default::default());
    let plans = ctx.view.plans.clone();
    let by_plan = |o: &kube::api::DynamicObject| {
        let name = o.labels().get(l::DR_PLAN)?.clone();
        Some(ObjectRef::<DrPlan>::new(&name).within(&o.namespace()?))
    };
    // Only what a plan's steady state depends on wakes it: a VM's spec, labels,
    // deletion and addresses; a VolSync object's first sync, mover result, address
    // and newest replica. Periodic sync times are read every 30 s.
    let vms = watcher(Api::<TenantVM>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .touched_objects()
        .predicate_filter(
            |v: &TenantVM| {
                let nics: Vec<_> = v.status.iter().flat_map(|s| s.nics.iter().map(|n| (n.ipv4.clone(), n.ipv6.clone()))).collect();
                Some(hash(&(v.metadata.generation, v.labels(), v.metadata.deletion_timestamp.is_some(), nics)))
            },
            Default::default(),
        );
    controller
        .watches_stream_with(rs, move |o| by_plan(&o), rs_resource())
        .watches_stream_with(rd, move |o| by_plan(&o), rd_resource())
        .watches_stream(vms, move |v: TenantVM| {
            let ns = v.namespace();
            plans.state().iter().filter(|p| p.namespace() == ns).map(|p| ObjectRef::from_obj(p.as_ref())).collect::<Vec<_>>()
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// Requests a DR step makes per VM or per disk, in flight at once (as the
/// controllers' own concurrency): a failover of hundreds of VMs does not wait for
/// each write in turn.
pub const IN_FLIGHT: usize = 16;

/// Run `f` over `items`, [`IN_FLIGHT`] at a time; every result, in no set order.
pub async fn each<I, T, F, Fut>(items: I, f: F) -> Vec<T>
where
    I: IntoIterator,
    F: Fn(I::Item) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    use futures::StreamExt;
    futures::stream::iter(items).map(f).buffer_unordered(IN_FLIGHT).collect().await
}
