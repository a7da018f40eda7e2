//! Two sites for DR tests and the DR benchmark: two real control planes (daklak,
//! the primary, and phuyen, the standby), each with the chart, the province, a zone
//! spanning both sites and a department; one real Knot DNS server both write to; an
//! operator per site with its own `PDC_SITE`, each given the other site's kubeconfig.
//!
//! [`play_kubevirt_and_volsync`] plays what KubeVirt and VolSync would do at both
//! sites: a VirtualMachine reports `Running` or `Stopped` as its run strategy says,
//! a ReplicationDestination publishes a mover address and key Secret, and a
//! ReplicationSource syncs on its schedule (every 2 s here) or on a manual trigger,
//! updating both ends. It also records any moment when a VM is set to run at both
//! sites at once.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use pdc_api::Department;
use pdc_api::conditions::{self, READY};
use pdc_operator::compute::build::vm_resource;
use pdc_operator::dr::{rd_resource, rs_resource};

use crate::HarnessError;
use crate::cluster::{SYSTEM_NAMESPACE, TestEnv, apply_yaml, client_for, private_env, wait_for};
use crate::controlplane::ControlPlane;
use crate::dns::{KnotServer, register_zones};
use crate::operator::{OperatorOptions, OperatorProcess};

pub const PRIMARY: &str = "daklak";
pub const STANDBY: &str = "phuyen";

/// One site: its cluster and its operator.
pub struct SiteEnv {
    pub name: &'static str,
    pub env: TestEnv,
    pub plane: ControlPlane,
    pub operator: Option<OperatorProcess>,
    pub opts: OperatorOptions,
    restarts: u32,
}

impl SiteEnv {
    pub async fn client(&self) -> Result<Client, HarnessError> {
        self.env.client().await
    }

    /// Start (or start again) this site's operator.
    pub fn start_operator(&mut self) -> Result<(), HarnessError> {
        self.restarts += 1;
        let mut o = self.opts.clone();
        o.identity = format!("pdc-{}-{}", self.name, self.restarts);
        self.operator = Some(OperatorProcess::start(&self.env.operator_kubeconfig, &o, &self.env.dir)?);
        Ok(())
    }

    /// SIGKILL this site's operator, as a crash would.
    pub fn kill_operator(&mut self) {
        if let Some(mut o) = self.operator.take() {
            o.kill();
        }
    }

    pub fn log(&self) -> Option<PathBuf> {
        self.operator.as_ref().map(|o| o.log.clone())
    }
}

pub struct TwoSites {
    pub primary: SiteEnv,
    pub standby: SiteEnv,
    pub knot: KnotServer,
}

const ZONE: &str = "apiVersion: pdc.io/v1alpha1\nkind: NetworkZone\nmetadata: {name: app}\nspec:\n  vlan: 120\n  sites:\n    - {site: daklak, ipv4: 10.15.0.0/16, ipv6: \"2001:db8:1500::/48\"}\n    - {site: phuyen, ipv4: 10.45.0.0/16, ipv6: \"2001:db8:4500::/48\"}\n  subnetSizes: {ipv4: 24, ipv6: 64}\n  resolvers: [10.15.255.53]\n";
const SIZES: &str = "apiVersion: pdc.io/v1alpha1\nkind: SizeClass\nmetadata: {name: m1.small}\nspec: {vcpu: 2, memory: 4Gi}\n";

/// The province's definitions at one site: Sites, the `app` zone at both sites, a
/// size, the department (quota for `vms` VMs), the DNS zones.
async fn define(client: &Client, dept: &str, vms: u32, knot: &KnotServer) -> Result<(), HarnessError> {
    crate::addressing::load_province_and_sites(client).await?;
    apply_yaml(client, ZONE, None).await?;
    apply_yaml(client, SIZES, None).await?;
    let d = serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "Department", "metadata": {"name": dept},
        "spec": {"displayName": "Sở Y tế", "code": "H15.20", "zones": ["app"],
                 "quota": {"vcpu": vms * 2, "memory": format!("{}Gi", vms * 4), "vms": vms, "storage": {"ssd": format!("{}Gi", vms * 20), "hdd": format!("{}Gi", vms * 50)}}}
    });
    apply_yaml(client, &serde_yaml::to_string(&d).map_err(|e| HarnessError::Other(e.to_string()))?, None).await?;
    register_zones(client, knot, "dr-tsig").await?;
    Ok(())
}

/// Wait until the department has its subnets at both sites.
async fn ready(client: &Client, dept: &str) -> Result<(), HarnessError> {
    wait_for(&Api::<Department>::all(client.clone()), dept, Duration::from_secs(120), "Ready with subnets at both sites", |d| {
        d.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY) && s.subnets.len() >= 2)
    })
    .await?;
    Ok(())
}

/// Give `client`'s cluster the kubeconfig of the other site (`peer`), as the Site's Secret.
async fn link(client: &Client, peer: &str, kubeconfig: &std::path::Path) -> Result<(), HarnessError> {
    let text = std::fs::read_to_string(kubeconfig).map_err(|e| HarnessError::Io("reading a kubeconfig".into(), e))?;
    let name = format!("site-{peer}-kubeconfig");
    let s = Secret {
        metadata: kube::api::ObjectMeta { name: Some(name.clone()), namespace: Some(SYSTEM_NAMESPACE.into()), ..Default::default() },
        string_data: Some([("kubeconfig".to_string(), text)].into()),
        ..Default::default()
    };
    let pp = PatchParams::apply("pdc-tests").force();
    Api::<Secret>::namespaced(client.clone(), SYSTEM_NAMESPACE).patch(&name, &pp, &Patch::Apply(&s)).await?;
    let site = serde_json::json!({"spec": {"kubeconfigSecret": {"name": name}}});
    Api::<pdc_api::Site>::all(client.clone()).patch(peer, &PatchParams::default(), &Patch::Merge(&site)).await?;
    Ok(())
}

impl TwoSites {
    /// Both sites defined, linked and running their operators, with department
    /// `dept` allowed `vms` VMs. `env`: more operator environment (both sites).
    pub async fn start(dept: &str, vms: u32, env: &[(&str, &str)]) -> Result<Self, HarnessError> {
        let (penv, pplane) = private_env("daklak").await?;
        let (senv, splane) = private_env("phuyen").await?;
        let knot = KnotServer::start(&penv.dir, &["daklak.gov.vn", "15.10.in-addr.arpa", "45.10.in-addr.arpa"])?;
        let (pc, sc) = (penv.client().await?, senv.client().await?);
        let (a, b) = tokio::join!(define(&pc, dept, vms, &knot), define(&sc, dept, vms, &knot));
        a?;
        b?;
        link(&pc, STANDBY, &senv.operator_kubeconfig).await?;
        link(&sc, PRIMARY, &penv.operator_kubeconfig).await?;
        let opts = |site: &str| {
            let mut o = OperatorOptions::new(&format!("pdc-{site}"));
            // Short leases: a killed operator's successor takes over within seconds.
            o.lease_duration = "4s";
            o.renew_deadline = "3s";
            o.retry_period = "1s";
            o.env = [("PDC_SITE", site), ("PDC_DNS_RESYNC", "2s"), ("PDC_DNS_MAX_BACKOFF", "2s")]
                .iter()
                .chain(env.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            o
        };
        let mut primary = SiteEnv { name: PRIMARY, env: penv, plane: pplane, operator: None, opts: opts(PRIMARY), restarts: 0 };
        let mut standby = SiteEnv { name: STANDBY, env: senv, plane: splane, operator: None, opts: opts(STANDBY), restarts: 0 };
        primary.start_operator()?;
        standby.start_operator()?;
        let (a, b) = tokio::join!(ready(&pc, dept), ready(&sc, dept));
        a?;
        b?;
        Ok(Self { primary, standby, knot })
    }
}

/// A DrPlan for `dept` protecting every `drProtected` VM, RPO `rpo`.
pub fn plan(dept: &str, rpo: &str) -> Result<pdc_api::DrPlan, HarnessError> {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "DrPlan", "metadata": {"name": dept, "namespace": dept},
        "spec": {"primarySite": PRIMARY, "standbySite": STANDBY, "rpo": rpo, "replication": {"method": "RsyncTLS", "serviceType": "ClusterIP"}}
    }))
    .map_err(|e| HarnessError::Other(e.to_string()))
}

/// A TenantVM with a 20Gi root disk and one NIC in zone `app`.
pub fn vm(name: &str, protected: bool) -> Result<pdc_api::TenantVM, HarnessError> {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "TenantVM", "metadata": {"name": name},
        "spec": {"size": "m1.small", "image": {"url": "https://images.daklak.gov.vn/ubuntu-24.04.qcow2"},
                 "rootDisk": {"size": "20Gi", "tier": "ssd"}, "nics": [{"zone": "app"}], "hostname": name, "drProtected": protected}
    }))
    .map_err(|e| HarnessError::Other(e.to_string()))
}

/// What the players saw and can be told.
#[derive(Clone, Default)]
pub struct Players {
    stop: Arc<AtomicBool>,
    /// PVCs whose mover fails (`latestMoverStatus.result: Failed`).
    pub failing: Arc<Mutex<HashSet<String>>>,
    /// Moments when one VM was set to run at both sites.
    pub violations: Arc<Mutex<Vec<String>>>,
    /// Syncs completed.
    pub syncs: Arc<AtomicU64>,
    /// Sites whose API the players should leave alone (their API server is stopped).
    pub down: Arc<Mutex<HashSet<usize>>>,
}

impl Players {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn running_set(vms: &[DynamicObject]) -> BTreeSet<(String, String)> {
    vms.iter()
        .filter(|v| v.labels().get(pdc_api::labels::DR_DRILL).is_none())
        .filter(|v| v.data.pointer("/spec/runStrategy").and_then(|r| r.as_str()) != Some("Halted"))
        .map(|v| (v.namespace().unwrap_or_default(), v.name_any()))
        .collect()
}

/// Plays KubeVirt: each VirtualMachine's printable status follows its run strategy.
async fn play_kubevirt(client: &Client, vms: &[DynamicObject]) {
    for v in vms {
        let want = if v.data.pointer("/spec/runStrategy").and_then(|r| r.as_str()) == Some("Halted") { "Stopped" } else { "Running" };
        if v.data.pointer("/status/printableStatus").and_then(|p| p.as_str()) != Some(want) {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &v.namespace().unwrap_or_default(), &vm_resource());
            let st = serde_json::json!({"status": {"printableStatus": want, "ready": want == "Running", "created": want == "Running"}});
            let _ = api.patch_status(&v.name_any(), &PatchParams::default(), &Patch::Merge(&st)).await;
        }
    }
}

/// Plays VolSync at the destination: a mover address and key Secret for each
/// ReplicationDestination.
async fn play_volsync_destinations(client: &Client) {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &rd_resource());
    let Ok(list) = api.list(&ListParams::default()).await else { return };
    for rd in list.items {
        if rd.data.pointer("/status/rsyncTLS/address").is_some() {
            continue;
        }
        let ns = rd.namespace().unwrap_or_default();
        let key = format!("volsync-rsync-tls-{}", rd.name_any());
        let s = Secret {
            metadata: kube::api::ObjectMeta { name: Some(key.clone()), namespace: Some(ns.clone()), ..Default::default() },
            string_data: Some([("psk.txt".to_string(), format!("volsync:{}", rd.name_any()))].into()),
            ..Default::default()
        };
        let _ = Api::<Secret>::namespaced(client.clone(), &ns).patch(&key, &PatchParams::apply("volsync-stand-in").force(), &Patch::Apply(&s)).await;
        let st = serde_json::json!({"status": {"rsyncTLS": {"address": format!("volsync-rsync-tls-dst-{}.{ns}.svc", rd.name_any()), "keySecret": key}}});
        let _ = Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &rd_resource()).patch_status(&rd.name_any(), &PatchParams::default(), &Patch::Merge(&st)).await;
    }
}

/// Plays VolSync's movers: a ReplicationSource that has an address syncs every 2 s
/// or when its manual trigger changes; the destination at the other site gets the
/// sync time and a new snapshot.
async fn play_volsync_sources(src: &Client, dst: &Client, p: &Players) {
    let api: Api<DynamicObject> = Api::all_with(src.clone(), &rs_resource());
    let Ok(list) = api.list(&ListParams::default()).await else { return };
    let now = Timestamp::now();
    for rs in list.items {
        if rs.data.pointer("/spec/rsyncTLS/address").is_none() {
            continue;
        }
        let (ns, name) = (rs.namespace().unwrap_or_default(), rs.name_any());
        let manual = rs.data.pointer("/spec/trigger/manual").and_then(|m| m.as_str()).map(str::to_string);
        let last_manual = rs.data.pointer("/status/lastManualSync").and_then(|m| m.as_str()).map(str::to_string);
        let last = pdc_operator::dr::replicate::sync_state(&rs).0;
        let due = match &manual {
            Some(m) => last_manual.as_ref() != Some(m),
            None => last.is_none_or(|t| now.duration_since(t).as_secs() >= 2),
        };
        if !due {
            continue;
        }
        let srcs: Api<DynamicObject> = Api::namespaced_with(src.clone(), &ns, &rs_resource());
        if p.failing.lock().map(|f| f.contains(&name)).unwrap_or(false) {
            let st = serde_json::json!({"status": {"latestMoverStatus": {"result": "Failed", "logs": "rsync: [sender] write error: Broken pipe\nrsync error: error in socket IO (code 10)"}}});
            let _ = srcs.patch_status(&name, &PatchParams::default(), &Patch::Merge(&st)).await;
            continue;
        }
        let n = p.syncs.fetch_add(1, Ordering::Relaxed);
        let dsts: Api<DynamicObject> = Api::namespaced_with(dst.clone(), &ns, &rd_resource());
        let st = serde_json::json!({"status": {"lastSyncTime": now.to_string(), "latestImage": {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": format!("volsync-{name}-dst-{n}")}}});
        if dsts.patch_status(&name, &PatchParams::default(), &Patch::Merge(&st)).await.is_err() {
            continue;
        }
        let mut st = serde_json::json!({"status": {"lastSyncTime": now.to_string(), "latestMoverStatus": {"result": "Successful", "logs": "sent 1.2M bytes"}}});
        if let (Some(m), Some(s)) = (manual, st.get_mut("status")) {
            pdc_operator::dr::set(s, "lastManualSync", serde_json::json!(m));
        }
        let _ = srcs.patch_status(&name, &PatchParams::default(), &Patch::Merge(&st)).await;
    }
}

/// Start the players on both sites (primary first); they run until [`Players::stop`].
pub fn play_kubevirt_and_volsync(primary: Client, standby: Client) -> Players {
    let p = Players::default();
    let q = p.clone();
    tokio::spawn(async move {
        let clients = [primary, standby];
        while !q.stop.load(Ordering::Relaxed) {
            let down = q.down.lock().map(|d| d.clone()).unwrap_or_default();
            let mut running: Vec<Option<BTreeSet<(String, String)>>> = Vec::new();
            for (i, c) in clients.iter().enumerate() {
                if down.contains(&i) {
                    running.push(None);
                    continue;
                }
                let vms = Api::<DynamicObject>::all_with(c.clone(), &vm_resource()).list(&ListParams::default()).await.map(|l| l.items).ok();
                running.push(vms.as_ref().map(|v| running_set(v)));
                if let Some(v) = &vms {
                    play_kubevirt(c, v).await;
                }
                play_volsync_destinations(c).await;
            }
            if let (Some(Some(a)), Some(Some(b))) = (running.first(), running.get(1)) {
                for both in a.intersection(b) {
                    if let Ok(mut v) = q.violations.lock() {
                        v.push(format!("{}/{} set to run at both sites at {}", both.0, both.1, Timestamp::now()));
                    }
                }
            }
            for (i, j) in [(0usize, 1usize), (1, 0)] {
                if let (Some(s), Some(d)) = (clients.get(i), clients.get(j))
                    && !down.contains(&i)
                    && !down.contains(&j)
                {
                    play_volsync_sources(s, d, &q).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    p
}

/// A client for a kubeconfig file (re-exported for tests that rebuild clients).
pub async fn client(path: &std::path::Path) -> Result<Client, HarnessError> {
    client_for(path).await
}
