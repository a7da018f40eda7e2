//! The systems pdc drives that cannot run here — KubeVirt, CDI (with the CSI driver
//! under it) and VolSync — played by test code that enforces the upstream rules pdc
//! depends on. Each rule is a named function with a comment citing the upstream
//! behaviour and the version it follows ([`kubevirt`], [`cdi`], [`volsync`]); the
//! kinds themselves are stand-in CRDs with structural schemas (`tests/crds/`), and
//! what upstream enforces with a webhook is enforced here by a
//! ValidatingAdmissionPolicy ([`install`]), so the API server itself refuses it.
//!
//! [`Players::start`] plays on one or more clusters (two for DR: VolSync moves data
//! between them) from a thread of its own, reading each cluster through watches
//! (reflector stores) and writing what the real controllers would write, as the
//! cluster admin. Garbage collection, namespace deletion and quota usage are not
//! played: the control plane runs the real kube-controller-manager.
//!
//! Versions followed: KubeVirt v1.9, CDI v1.66, VolSync v0.16, external-snapshotter v8.6.

pub mod cdi;
pub mod kubevirt;
pub mod netpol;
pub mod volsync;

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
pub use pdc_operator::compute::build::snapshot_resource;
use pdc_operator::compute::build::{dv_resource, vm_resource, vmi_resource};
use pdc_operator::dr::{rd_resource, rs_resource};

use crate::HarnessError;
use crate::cluster::{apply_yaml, client_for};

/// The cluster-wide things a real cluster with KubeVirt, CDI, a CSI driver and VolSync
/// has and pdc relies on: the webhook rules (as admission policies) and the
/// StorageClasses of the province's tiers (expandable, as the CSI drivers pdc is used
/// with are). Applied once per control plane, before any test object.
pub async fn install(client: &Client) -> Result<(), HarnessError> {
    apply_yaml(client, &cdi::webhook_rules(), None).await?;
    apply_yaml(client, cdi::STORAGE_CLASSES, None).await?;
    cdi::wait_webhook_rules(client).await
}

/// One cluster as the players see it: a client and a watch-fed store per kind.
pub struct Cluster {
    pub name: String,
    pub client: Client,
    pub vms: Store<DynamicObject>,
    pub vmis: Store<DynamicObject>,
    pub dvs: Store<DynamicObject>,
    pub pvcs: Store<PersistentVolumeClaim>,
    pub snapshots: Store<DynamicObject>,
    pub sources: Store<DynamicObject>,
    pub destinations: Store<DynamicObject>,
    pub secrets: Store<Secret>,
    pub policies: Store<NetworkPolicy>,
    pub namespaces: Store<Namespace>,
}

fn dynamic_store(client: &Client, ar: &ApiResource) -> Store<DynamicObject> {
    let writer = reflector::store::Writer::new(ar.clone());
    let reader = writer.as_reader();
    let stream = watcher(Api::<DynamicObject>::all_with(client.clone(), ar), watcher::Config::default())
        .default_backoff()
        .modify(|o| o.metadata.managed_fields = None)
        .reflect(writer)
        .for_each(|_| futures::future::ready(()));
    tokio::spawn(stream);
    reader
}

fn typed_store<K>(client: &Client) -> Store<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(Api::<K>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(|o| o.meta_mut().managed_fields = None)
        .reflect(writer)
        .for_each(|_| futures::future::ready(()));
    tokio::spawn(stream);
    reader
}

impl Cluster {
    async fn open(name: &str, kubeconfig: &std::path::Path) -> Result<Self, HarnessError> {
        let client = client_for(kubeconfig).await?;
        let c = Cluster {
            name: name.to_string(),
            vms: dynamic_store(&client, &vm_resource()),
            vmis: dynamic_store(&client, &vmi_resource()),
            dvs: dynamic_store(&client, &dv_resource()),
            pvcs: typed_store(&client),
            snapshots: dynamic_store(&client, &snapshot_resource()),
            sources: dynamic_store(&client, &rs_resource()),
            destinations: dynamic_store(&client, &rd_resource()),
            secrets: typed_store(&client),
            policies: typed_store(&client),
            namespaces: typed_store(&client),
            client,
        };
        Ok(c)
    }

    async fn ready(&self) {
        let _ = tokio::join!(
            self.vms.wait_until_ready(),
            self.vmis.wait_until_ready(),
            self.dvs.wait_until_ready(),
            self.pvcs.wait_until_ready(),
            self.snapshots.wait_until_ready(),
            self.sources.wait_until_ready(),
            self.destinations.wait_until_ready(),
            self.secrets.wait_until_ready(),
            self.policies.wait_until_ready(),
            self.namespaces.wait_until_ready(),
        );
    }

    pub fn secret_exists(&self, ns: &str, name: &str) -> bool {
        self.secrets.get(&reflector::ObjectRef::new(name).within(ns)).is_some()
    }

    pub fn find(store: &Store<DynamicObject>, ar: &ApiResource, ns: &str, name: &str) -> Option<Arc<DynamicObject>> {
        store.get(&reflector::ObjectRef::new_with(name, ar.clone()).within(ns))
    }
}

/// Objects handled at once in a pass: the upstream controllers work through their
/// queues with several workers (KubeVirt's virt-controller and CDI's controllers run
/// worker pools), so one slow object does not hold up the others.
pub const WORKERS: usize = 16;

/// Run `f` over `items`, [`WORKERS`] at a time.
pub async fn each<T, F, Fut>(items: Vec<T>, f: F)
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures::StreamExt;
    futures::stream::iter(items).for_each_concurrent(WORKERS, f).await;
}

/// A string at `path` of a JSON value.
pub fn text<'a>(v: &'a serde_json::Value, path: &str) -> Option<&'a str> {
    v.pointer(path).and_then(|x| x.as_str())
}

/// What the players saw and can be told.
#[derive(Clone, Default)]
pub struct Players {
    stop: Arc<AtomicBool>,
    /// PVCs whose VolSync mover fails (`latestMoverStatus.result: Failed`).
    pub failing: Arc<Mutex<HashSet<String>>>,
    /// Moments when one VM was set to run at two clusters at once.
    pub violations: Arc<Mutex<Vec<String>>>,
    /// VolSync syncs completed.
    pub syncs: Arc<AtomicU64>,
    /// Clusters (by index) whose API server is stopped: left alone.
    pub down: Arc<Mutex<HashSet<usize>>>,
    /// Set once every cluster's stores are filled.
    started: Arc<AtomicBool>,
}

impl Players {
    /// Play on the clusters of `kubeconfigs` (admin kubeconfigs, with names), from a
    /// thread with its own runtime, until [`Players::stop`] or the process ends.
    /// Returns once the players watch every cluster.
    pub fn start(kubeconfigs: Vec<(String, PathBuf)>) -> Result<Self, HarnessError> {
        let p = Players::default();
        let q = p.clone();
        let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
        std::thread::Builder::new()
            .name("pdc-test-players".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let mut clusters = Vec::new();
                    for (name, path) in &kubeconfigs {
                        match Cluster::open(name, path).await {
                            Ok(c) => clusters.push(c),
                            Err(e) => {
                                let _ = tx.send(Err(e.to_string()));
                                return;
                            }
                        }
                    }
                    for c in &clusters {
                        c.ready().await;
                    }
                    q.started.store(true, Ordering::Relaxed);
                    let _ = tx.send(Ok(()));
                    q.run(&clusters).await;
                });
            })
            .map_err(|e| HarnessError::Io("starting the players' thread".into(), e))?;
        rx.recv_timeout(Duration::from_secs(60))
            .map_err(|_| HarnessError::Other("the players did not start within 60 s".into()))?
            .map_err(HarnessError::Other)?;
        Ok(p)
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    async fn run(&self, clusters: &[Cluster]) {
        let mut tick: u64 = 0;
        while !self.stop.load(Ordering::Relaxed) {
            let down = self.down.lock().map(|d| d.clone()).unwrap_or_default();
            let up: Vec<&Cluster> = clusters.iter().enumerate().filter(|(i, _)| !down.contains(i)).map(|(_, c)| c).collect();
            for c in &up {
                cdi::play(c, tick).await;
                kubevirt::play(c).await;
                volsync::play_destinations(c).await;
            }
            for (i, src) in up.iter().enumerate() {
                let peers: Vec<&Cluster> = up.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, c)| *c).collect();
                volsync::play_sources(src, &peers, self).await;
            }
            self.watch_double_runs(clusters, &down);
            tick += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Record any VM set to run at two clusters at once (drill copies excepted).
    fn watch_double_runs(&self, clusters: &[Cluster], down: &HashSet<usize>) {
        let sets: Vec<BTreeSet<(String, String)>> = clusters
            .iter()
            .enumerate()
            .filter(|(i, _)| !down.contains(i))
            .map(|(_, c)| {
                c.vms
                    .state()
                    .iter()
                    .filter(|v| v.labels().get(pdc_api::labels::DR_DRILL).is_none())
                    .filter(|v| text(&v.data, "/spec/runStrategy") != Some("Halted"))
                    .map(|v| (v.namespace().unwrap_or_default(), v.name_any()))
                    .collect()
            })
            .collect();
        for (i, a) in sets.iter().enumerate() {
            for b in sets.iter().skip(i + 1) {
                for both in a.intersection(b) {
                    if let Ok(mut v) = self.violations.lock() {
                        v.push(format!("{}/{} set to run at two sites at {}", both.0, both.1, Timestamp::now()));
                    }
                }
            }
        }
    }
}
