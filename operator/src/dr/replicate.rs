//! The steady state of a plan. At the active site: copy the plan and its VMs'
//! definitions to the other site, keep a VolSync ReplicationSource here and a
//! ReplicationDestination there for every disk, and report lag from the sources. At
//! the other site: report what the destinations have received.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch};
use kube::runtime::controller::Action;
use kube::{Client, Resource, ResourceExt};
use pdc_api::conditions::{Cond, merge};
use pdc_api::labels as l;
use pdc_api::{DrPlan, DrVolumeStatus, ReplicationMethod, TenantVM};

use super::{DrContext, patch_status, rd_resource, rs_resource};
use crate::apply;
use crate::compute::build;
use crate::error::{Error, Result, is_not_found};

pub const PROTECTED: &str = "Protected";
pub const RPO_MET: &str = "RpoMet";
pub const STANDBY_READY: &str = "StandbyReady";

/// One replicated disk: its PVC (the DataVolume's name), VM, size and StorageClass.
#[derive(Debug, Clone)]
pub struct Volume {
    pub pvc: String,
    pub vm: String,
    pub size: String,
    pub storage_class: Option<String>,
}

/// The live TenantVMs at this site the plan covers, by name.
pub fn covered(plan: &DrPlan, ctx: &DrContext) -> Vec<Arc<TenantVM>> {
    let ns = plan.namespace();
    let mut vms: Vec<Arc<TenantVM>> = ctx
        .vms
        .state()
        .into_iter()
        .filter(|v| v.namespace() == ns && v.metadata.deletion_timestamp.is_none() && plan.covers(v.spec.dr_protected, v.metadata.labels.as_ref()))
        .collect();
    vms.sort_by_key(|v| v.name_any());
    vms
}

/// The disks of `vms` (root first, then data disks).
pub fn volumes(vms: &[Arc<TenantVM>], ctx: &DrContext) -> Vec<Volume> {
    let province = ctx.provinces.state().first().cloned();
    let mut out = Vec::new();
    for vm in vms {
        for (_, d) in crate::compute::plan::disks(vm) {
            out.push(Volume {
                pvc: build::disk_name(vm, d),
                vm: vm.name_any(),
                size: d.size.clone(),
                storage_class: province.as_ref().and_then(|p| p.storage_class(&d.tier).map(str::to_string)),
            });
        }
    }
    out
}

fn rfc3339(v: Option<&serde_json::Value>) -> Option<Timestamp> {
    v.and_then(|t| t.as_str()).and_then(|t| t.parse::<Timestamp>().ok())
}

fn labels(plan: &DrPlan) -> serde_json::Value {
    serde_json::json!({ l::MANAGED_BY: l::MANAGED_BY_VALUE, l::DR_PLAN: plan.name_any() })
}

async fn apply_dynamic(client: &Client, ns: &str, ar: &ApiResource, obj: &serde_json::Value, name: &str) -> std::result::Result<DynamicObject, kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
    api.patch(name, &apply::params(), &Patch::Apply(obj)).await
}

/// Delete every object of kind `ar` in `ns` labelled as plan `plan`'s.
pub async fn delete_labelled(client: &Client, ns: &str, plan: &str, ar: &ApiResource) -> Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
    let lp = ListParams::default().labels(&format!("{}={plan}", l::DR_PLAN));
    let items = match api.list(&lp).await {
        Ok(l) => l.items,
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(source) => return Err(Error::Read { what: format!("{} of DrPlan {plan}", ar.plural), source }),
    };
    for o in items {
        match api.delete(&o.name_any(), &DeleteParams::background()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(source) => return Err(Error::Delete { what: format!("{} {}", ar.kind, o.name_any()), source }),
        }
    }
    Ok(())
}

/// Delete the Secrets named `names` in `ns` that are copies made for plan `plan` (they
/// carry its label); a Secret of the department's own of the same name is kept.
pub async fn delete_secret_copies(client: &Client, ns: &str, plan: &str, names: &std::collections::BTreeSet<String>) -> Result<()> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    for name in names {
        let s = api.get_opt(name).await.map_err(|source| Error::Read { what: format!("Secret {name}"), source })?;
        if s.is_some_and(|s| s.labels().get(l::DR_PLAN).map(String::as_str) == Some(plan)) {
            match api.delete(name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(source) => return Err(Error::Delete { what: format!("Secret {name}"), source }),
            }
        }
    }
    Ok(())
}

/// The Secrets a plan may have copied into `ns` at this site: the rsync-TLS keys of its
/// sources and destinations here, its restic repository, and the cloud-init Secrets of
/// the TenantVM copies here.
pub async fn copied_secret_names(client: &Client, plan: &DrPlan) -> Result<std::collections::BTreeSet<String>> {
    let ns = plan.namespace().unwrap_or_default();
    let lp = ListParams::default().labels(&format!("{}={}", l::DR_PLAN, plan.name_any()));
    let mut names: std::collections::BTreeSet<String> = plan.spec.replication.restic_repository.iter().cloned().collect();
    // A key copied here while this site was the source keeps its name when the
    // direction turns (the destination here publishes a key of the same name).
    for (ar, path) in [(rs_resource(), "/spec/rsyncTLS/keySecret"), (rd_resource(), "/status/rsyncTLS/keySecret")] {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
        match api.list(&lp).await {
            Ok(l) => names.extend(l.items.iter().filter_map(|o| o.data.pointer(path).and_then(|k| k.as_str()).map(str::to_string))),
            Err(e) if is_not_found(&e) => {}
            Err(source) => return Err(Error::Read { what: format!("{} of DrPlan {}", ar.plural, plan.name_any()), source }),
        }
    }
    let vms: Api<TenantVM> = Api::namespaced(client.clone(), &ns);
    let copies = vms.list(&lp).await.map_err(|source| Error::Read { what: format!("TenantVM copies of DrPlan {}", plan.name_any()), source })?;
    names.extend(copies.items.iter().filter_map(|v| v.spec.cloud_init_secret.clone()));
    Ok(names)
}

/// Copy the plan and its VMs' definitions to the other site, and remove copies of
/// VMs the plan no longer covers. The error says what the other site lacks.
async fn copy_definitions(plan: &DrPlan, vms: &[Arc<TenantVM>], local: &Client, peer: &Client) -> std::result::Result<(), String> {
    let ns = plan.namespace().unwrap_or_default();
    let unreachable = |e: kube::Error| format!("the other site's cluster does not answer: {e}");
    if Api::<Namespace>::all(peer.clone()).get_opt(&ns).await.map_err(unreachable)?.is_none() {
        return Err(format!("namespace {ns} does not exist at the other site: define Department {ns} there too (the province's definitions are applied at both sites)"));
    }
    let copy = serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "DrPlan",
        "metadata": {"name": plan.name_any(), "namespace": ns},
        "spec": {
            "primarySite": plan.spec.primary_site, "standbySite": plan.spec.standby_site, "rpo": plan.spec.rpo,
            "selector": plan.spec.selector, "replication": plan.spec.replication,
        }
    });
    Api::<DrPlan>::namespaced(peer.clone(), &ns).patch(&plan.name_any(), &apply::params(), &Patch::Apply(&copy)).await.map_err(|e| format!("copying the plan failed: {e}"))?;
    let vapi: Api<TenantVM> = Api::namespaced(peer.clone(), &ns);
    for vm in vms {
        let mut labels = vm.labels().clone();
        labels.insert(l::DR_PLAN.into(), plan.name_any());
        let nic = vm.status.as_ref().and_then(|s| s.nics.first());
        let addrs: Vec<String> = nic.into_iter().flat_map(|n| [n.ipv4.clone(), n.ipv6.clone()]).flatten().collect();
        let copy = serde_json::json!({
            "apiVersion": "pdc.io/v1alpha1", "kind": "TenantVM",
            "metadata": {"name": vm.name_any(), "namespace": ns, "labels": labels, "annotations": {l::DR_PEER_ADDRESSES: addrs.join(",")}},
            "spec": vm.spec,
        });
        vapi.patch(&vm.name_any(), &apply::params(), &Patch::Apply(&copy)).await.map_err(|e| format!("copying TenantVM {} failed: {e}", vm.name_any()))?;
        // The cloud-init Secret the VM mounts: KubeVirt cannot start the copy without it.
        if let Some(secret) = &vm.spec.cloud_init_secret {
            copy_secret(local, peer, &ns, secret, plan).await?;
        }
    }
    let lp = ListParams::default().labels(&format!("{}={}", l::DR_PLAN, plan.name_any()));
    let theirs = vapi.list(&lp).await.map_err(unreachable)?;
    for v in theirs.items {
        if !vms.iter().any(|m| m.name_any() == v.name_any()) {
            vapi.delete(&v.name_any(), &DeleteParams::background()).await.map_err(|e| format!("removing the copy of TenantVM {} failed: {e}", v.name_any()))?;
        }
    }
    Ok(())
}

/// The destination at the other site for `v`.
fn destination(plan: &DrPlan, v: &Volume, schedule: &str) -> serde_json::Value {
    let r = &plan.spec.replication;
    let mut common = serde_json::json!({
        "copyMethod": "Snapshot", "capacity": v.size, "accessModes": ["ReadWriteOnce"],
    });
    if let Some(sc) = &v.storage_class {
        super::set(&mut common, "storageClassName", serde_json::json!(sc));
    }
    if let Some(c) = &r.volume_snapshot_class {
        super::set(&mut common, "volumeSnapshotClassName", serde_json::json!(c));
    }
    let spec = match r.method {
        ReplicationMethod::RsyncTLS => {
            super::set(&mut common, "serviceType", serde_json::json!(r.service_type.clone().unwrap_or_else(|| "LoadBalancer".into())));
            serde_json::json!({ "rsyncTLS": common })
        }
        ReplicationMethod::Restic => {
            super::set(&mut common, "repository", serde_json::json!(r.restic_repository));
            serde_json::json!({ "trigger": {"schedule": schedule}, "restic": common })
        }
    };
    serde_json::json!({
        "apiVersion": "volsync.backube/v1alpha1", "kind": "ReplicationDestination",
        "metadata": {"name": v.pvc, "namespace": plan.namespace(), "labels": labels(plan)},
        "spec": spec,
    })
}

/// The source here for `v`, once it knows where to send (RsyncTLS: the
/// destination's address and key Secret, copied here).
fn source(plan: &DrPlan, v: &Volume, schedule: &str, rsync: Option<(&str, &str)>) -> Option<serde_json::Value> {
    let r = &plan.spec.replication;
    let mut method = serde_json::json!({ "copyMethod": "Snapshot" });
    if let Some(c) = &r.volume_snapshot_class {
        super::set(&mut method, "volumeSnapshotClassName", serde_json::json!(c));
    }
    let key = match r.method {
        ReplicationMethod::RsyncTLS => {
            let (address, secret) = rsync?;
            super::set(&mut method, "address", serde_json::json!(address));
            super::set(&mut method, "keySecret", serde_json::json!(secret));
            "rsyncTLS"
        }
        ReplicationMethod::Restic => {
            super::set(&mut method, "repository", serde_json::json!(r.restic_repository));
            super::set(&mut method, "pruneIntervalDays", serde_json::json!(7));
            super::set(&mut method, "retain", serde_json::json!({"hourly": 24, "daily": 7}));
            "restic"
        }
    };
    let owner = plan.controller_owner_ref(&()).map(|o| vec![o]);
    Some(serde_json::json!({
        "apiVersion": "volsync.backube/v1alpha1", "kind": "ReplicationSource",
        "metadata": {"name": v.pvc, "namespace": plan.namespace(), "labels": labels(plan), "ownerReferences": owner},
        "spec": { "sourcePVC": v.pvc, "trigger": {"schedule": schedule}, key: method },
    }))
}

/// Copy Secret `name` of namespace `ns` from one cluster to another.
async fn copy_secret(from: &Client, to: &Client, ns: &str, name: &str, plan: &DrPlan) -> std::result::Result<(), String> {
    let s = Api::<Secret>::namespaced(from.clone(), ns).get_opt(name).await.map_err(|e| format!("reading Secret {name} failed: {e}"))?;
    let s = s.ok_or_else(|| format!("Secret {ns}/{name} does not exist"))?;
    let copy = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ns, "labels": labels(plan)},
        "type": s.type_, "data": s.data,
    });
    Api::<Secret>::namespaced(to.clone(), ns).patch(name, &apply::params(), &Patch::Apply(&copy)).await.map(|_| ()).map_err(|e| format!("copying Secret {name} failed: {e}"))
}

/// What a volume's VolSync object says: last sync, newest image, mover failure.
pub fn sync_state(o: &DynamicObject) -> (Option<Timestamp>, Option<String>, Option<String>) {
    let last = rfc3339(o.data.pointer("/status/lastSyncTime"));
    let image = o.data.pointer("/status/latestImage/name").and_then(|v| v.as_str()).map(str::to_string);
    let failed = match o.data.pointer("/status/latestMoverStatus/result").and_then(|v| v.as_str()) {
        Some("Failed") => {
            let logs = o.data.pointer("/status/latestMoverStatus/logs").and_then(|v| v.as_str()).unwrap_or("no logs");
            Some(format!("the mover failed: {}", logs.lines().last().unwrap_or(logs)))
        }
        _ => None,
    };
    (last, image, failed)
}

/// The conditions and routine status fields from the volumes' states.
struct Report {
    volumes: Vec<DrVolumeStatus>,
    problems: Vec<String>,
    max_lag: i64,
    oldest: Option<Timestamp>,
}

fn report_volume(r: &mut Report, v: &Volume, obj: Option<&DynamicObject>, since: Timestamp, now: Timestamp, missing: &str) {
    let (last, image, failed) = obj.map(sync_state).unwrap_or((None, None, None));
    let lag = pdc_core::dr::lag(last.map(|t| t.as_second()), since.as_second(), now.as_second());
    r.max_lag = r.max_lag.max(lag);
    r.oldest = match (r.oldest, last) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (None, b) => b,
        (a, None) => a,
    };
    let mover = match (&failed, obj, last) {
        (Some(f), _, _) => {
            r.problems.push(format!("disk {}: {f}", v.pvc));
            Some(format!("Failed: {f}"))
        }
        (None, None, _) => {
            r.problems.push(format!("disk {}: {missing}", v.pvc));
            None
        }
        (None, Some(_), None) => {
            r.problems.push(format!("disk {}: no sync has completed yet", v.pvc));
            None
        }
        (None, Some(o), Some(_)) => o.data.pointer("/status/latestMoverStatus/result").and_then(|x| x.as_str()).map(str::to_string),
    };
    r.volumes.push(DrVolumeStatus { pvc: v.pvc.clone(), vm: v.vm.clone(), last_sync_time: last.map(Time), lag_seconds: Some(lag), latest_image: image, mover });
}

#[allow(clippy::too_many_arguments)]
async fn write_report(plan: &DrPlan, ctx: &DrContext, me: &str, phase: &str, vms: &[Arc<TenantVM>], r: Report, mut conds: Vec<Cond>, extra: serde_json::Value) -> Result<()> {
    let rpo = pdc_core::dr::parse_duration(&plan.spec.rpo).unwrap_or(u64::MAX);
    let rpo_i = i64::try_from(rpo).unwrap_or(i64::MAX);
    let protected = r.problems.is_empty() && !r.volumes.is_empty();
    conds.push(if protected {
        Cond::new(PROTECTED, true, "Replicating", format!("{} disk(s) of {} VM(s) replicate between {} and {}", r.volumes.len(), vms.len(), plan.spec.primary_site, plan.spec.standby_site))
    } else if r.volumes.is_empty() {
        Cond::new(PROTECTED, false, "NoVolumes", "no TenantVM with drProtected: true matches the plan's selector")
    } else {
        Cond::new(PROTECTED, false, "NotReplicating", r.problems.join("; "))
    });
    conds.push(if r.max_lag <= rpo_i && !r.volumes.is_empty() {
        Cond::new(RPO_MET, true, "WithinRpo", format!("the least recent disk is {}s behind (RPO {})", r.max_lag, plan.spec.rpo))
    } else {
        Cond::new(RPO_MET, false, "RpoExceeded", format!("the least recent disk is {}s behind; the RPO is {}", r.max_lag, plan.spec.rpo))
    });
    let old = plan.status.clone().unwrap_or_default();
    let m = &ctx.base.metrics;
    let (ns, name) = (plan.namespace().unwrap_or_default(), plan.name_any());
    let lv = [ns.as_str(), name.as_str()];
    m.dr_lag.with_label_values(&lv).set(r.max_lag as f64);
    m.dr_rpo.with_label_values(&lv).set(rpo as f64);
    m.dr_protected.with_label_values(&lv).set(if protected { 1.0 } else { 0.0 });
    m.dr_last_sync.with_label_values(&lv).set(r.oldest.map(|t| t.as_second() as f64).unwrap_or(0.0));
    let ts = |t: Option<&Time>| t.map(|t| t.0.as_second() as f64).unwrap_or(0.0);
    m.dr_last_drill.with_label_values(&lv).set(ts(old.last_drill.as_ref().filter(|d| d.result == "Passed").map(|d| &d.time)));
    m.dr_last_standby_check.with_label_values(&lv).set(ts(old.last_standby_check.as_ref()));
    let conditions = merge(&old.conditions, &conds, plan.metadata.generation, Timestamp::now());
    let mut body = serde_json::json!({
        "observedGeneration": plan.metadata.generation, "site": me, "phase": phase,
        "vms": vms.iter().map(|v| v.name_any()).collect::<Vec<_>>(),
        "volumes": r.volumes, "lagSeconds": r.max_lag, "lastSyncTime": r.oldest.map(Time),
        "currentStep": null,
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    // Skip the write when nothing but the lag's seconds moved within the same minute.
    let same = old.phase.as_deref() == Some(phase)
        && old.conditions.iter().map(|c| (&c.type_, &c.status, &c.reason)).eq(conditions.iter().map(|c| (&c.type_, &c.status, &c.reason)))
        && old.volumes.iter().map(|v| (&v.pvc, &v.last_sync_time, &v.latest_image, &v.mover)).eq(r.volumes.iter().map(|v| (&v.pvc, &v.last_sync_time, &v.latest_image, &v.mover)))
        && old.lag_seconds.is_some_and(|l| l / 60 == r.max_lag / 60)
        && old.site.as_deref() == Some(me)
        && old.current_step.is_none()
        && extra.as_object().is_none_or(|e| e.is_empty() || serde_json::to_value(&old).ok().is_some_and(|o| e.iter().all(|(k, v)| o.get(k) == Some(v))));
    super::set(&mut body, "conditions", serde_json::to_value(&conditions).unwrap_or_default());
    if same {
        return Ok(());
    }
    patch_status(&ctx.base.client, plan, body).await
}

/// The active site's steady state.
pub async fn active(plan: &DrPlan, ctx: &DrContext, me: &str, peer_site: &str, peer: std::result::Result<Client, String>) -> Result<Action> {
    let ns = plan.namespace().unwrap_or_default();
    let vms = covered(plan, ctx);
    let vols = volumes(&vms, ctx);
    let rpo = pdc_core::dr::parse_duration(&plan.spec.rpo).unwrap_or(900);
    let schedule = pdc_core::dr::schedule(rpo);
    let now = Timestamp::now();
    let since = plan.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(now);
    let mut conds = Vec::new();
    let standby = match &peer {
        Err(e) => Err(e.clone()),
        Ok(pc) => copy_definitions(plan, &vms, &ctx.base.client, pc).await,
    };
    conds.push(match &standby {
        Ok(()) => Cond::new(STANDBY_READY, true, "Copied", format!("the plan and {} VM definition(s) are at site {peer_site}, halted, with their addresses reserved there", vms.len())),
        Err(e) => Cond::new(STANDBY_READY, false, "StandbyUnreachable", format!("site {peer_site}: {e}")),
    });
    let mut r = Report { volumes: Vec::new(), problems: Vec::new(), max_lag: 0, oldest: None };
    if let Err(e) = &standby {
        r.problems.push(format!("site {peer_site}: {e}"));
    }
    let peer_ok = peer.as_ref().ok().filter(|_| standby.is_ok());
    for v in &vols {
        replicate_volume(plan, ctx, v, peer_site, peer_ok, &peer, &schedule, &mut r, since, now).await?;
    }
    r.problems.dedup();
    // Sources at the other site are from before the last switch: it only receives now.
    if let Ok(pc) = &peer
        && standby.is_ok()
        && let Err(e) = delete_labelled(pc, &ns, &plan.name_any(), &rs_resource()).await
    {
        r.problems.push(format!("removing the old sources at site {peer_site}: {e}"));
    }
    let extra = confirm_fence(plan, peer.as_ref().ok(), me).await;
    let phase = if r.problems.is_empty() && !r.volumes.is_empty() { "Protected" } else { "Unprotected" };
    let fencing = plan.status.as_ref().and_then(|s| s.fence.as_ref()).is_some_and(|f| !f.confirmed) && extra.get("fence").is_none();
    write_report(plan, ctx, me, phase, &vms, r, conds, extra).await?;
    // Until the fenced site answers, look again often: its VMs must be halted as
    // soon as it is back.
    Ok(Action::requeue(Duration::from_secs(if fencing { 3 } else { 30 })))
}

/// One disk's replication: its ReplicationDestination at the other site (`peer_ok`:
/// reachable with the definitions copied), the mover's key copied here, the
/// ReplicationSource here, and what they report.
#[allow(clippy::too_many_arguments)]
async fn replicate_volume(
    plan: &DrPlan,
    ctx: &DrContext,
    v: &Volume,
    peer_site: &str,
    peer_ok: Option<&Client>,
    peer: &std::result::Result<Client, String>,
    schedule: &str,
    r: &mut Report,
    since: Timestamp,
    now: Timestamp,
) -> Result<()> {
    let client = &ctx.base.client;
    let ns = plan.namespace().unwrap_or_default();
    let mut rsync = None;
    if let Some(pc) = peer_ok {
        match apply_dynamic(pc, &ns, &rd_resource(), &destination(plan, v, schedule), &v.pvc).await {
            Ok(rd) => {
                let addr = rd.data.pointer("/status/rsyncTLS/address").and_then(|a| a.as_str()).map(str::to_string);
                let key = rd.data.pointer("/status/rsyncTLS/keySecret").and_then(|a| a.as_str()).map(str::to_string);
                if let (Some(a), Some(k)) = (addr, key) {
                    match copy_secret(pc, client, &ns, &k, plan).await {
                        Ok(()) => rsync = Some((a, k)),
                        Err(e) => r.problems.push(format!("disk {}: {e}", v.pvc)),
                    }
                }
            }
            Err(e) if is_not_found(&e) => r.problems.push(format!("VolSync is not installed at site {peer_site} (no ReplicationDestination kind)")),
            Err(e) => r.problems.push(format!("disk {}: creating its ReplicationDestination at site {peer_site} failed: {e}", v.pvc)),
        }
    }
    if plan.spec.replication.method == ReplicationMethod::Restic
        && let (Ok(pc), Some(repo)) = (peer, &plan.spec.replication.restic_repository)
        && let Err(e) = copy_secret(client, pc, &ns, repo, plan).await
    {
        r.problems.push(format!("the restic repository Secret: {e}"));
    }
    let src = source(plan, v, schedule, rsync.as_ref().map(|(a, k)| (a.as_str(), k.as_str())));
    let obj = match src {
        Some(s) => match apply_dynamic(client, &ns, &rs_resource(), &s, &v.pvc).await {
            Ok(o) => Some(o),
            Err(e) if is_not_found(&e) => {
                r.problems.push("VolSync is not installed at this site (no ReplicationSource kind)".into());
                None
            }
            Err(source) => return Err(Error::Apply { what: format!("ReplicationSource {}", v.pvc), source }),
        },
        None => Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &rs_resource()).get_opt(&v.pvc).await.ok().flatten(),
    };
    report_volume(r, v, obj.as_ref(), since, now, "waiting for the standby's mover address (ReplicationDestination status.rsyncTLS)");
    Ok(())
}

/// A fence the other site has not yet confirmed: try again; the status fields to
/// write when it answers.
async fn confirm_fence(plan: &DrPlan, peer: Option<&Client>, me: &str) -> serde_json::Value {
    let (Some(f), Some(pc)) = (plan.status.as_ref().and_then(|s| s.fence.clone()).filter(|f| !f.confirmed), peer) else {
        return serde_json::json!({});
    };
    match super::action::fence(plan, pc, me, plan.epoch()).await {
        Ok(n) => {
            tracing::info!(plan = %plan.name_any(), site = %f.site, "fence confirmed");
            let message = format!("site {} answered: {n} VM(s) halted there", f.site);
            serde_json::json!({"fence": {"site": f.site, "time": Time(Timestamp::now()), "confirmed": true, "message": message}})
        }
        Err(e) => {
            tracing::warn!(plan = %plan.name_any(), error = %e, "fence not confirmed yet");
            serde_json::json!({})
        }
    }
}

/// The other site's steady state: what its destinations have received.
pub async fn standby(plan: &DrPlan, ctx: &DrContext, me: &str, active: &str) -> Result<Action> {
    let ns = plan.namespace().unwrap_or_default();
    let vms = covered(plan, ctx);
    let vols = volumes(&vms, ctx);
    let now = Timestamp::now();
    let since = plan.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(now);
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.base.client.clone(), &ns, &rd_resource());
    let mut r = Report { volumes: Vec::new(), problems: Vec::new(), max_lag: 0, oldest: None };
    for v in &vols {
        let obj = match api.get_opt(&v.pvc).await {
            Ok(o) => o,
            Err(e) if is_not_found(&e) => None,
            Err(source) => return Err(Error::Read { what: format!("ReplicationDestination {}", v.pvc), source }),
        };
        report_volume(&mut r, v, obj.as_ref(), since, now, &format!("no ReplicationDestination yet (site {active} makes it)"));
    }
    let mut peer_addresses: Vec<String> = vms
        .iter()
        .filter_map(|v| v.annotations().get(l::DR_PEER_ADDRESSES).cloned())
        .flat_map(|a| a.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect::<Vec<_>>())
        .collect();
    peer_addresses.sort();
    let conds = vec![Cond::new(STANDBY_READY, true, "Standby", format!("{} VM(s) defined and halted here; they run at site {active}", vms.len()))];
    let extra: BTreeMap<&str, serde_json::Value> = BTreeMap::from([("peerAddresses", serde_json::json!(peer_addresses))]);
    write_report(plan, ctx, me, "Standby", &vms, r, conds, serde_json::to_value(extra).unwrap_or_default()).await?;
    Ok(Action::requeue(Duration::from_secs(30)))
}
