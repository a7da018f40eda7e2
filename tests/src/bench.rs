//! What the benchmark binaries share: arguments, percentiles, result files, and
//! "created → ready" timing through a watch.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::operator::OperatorProcess;

/// `--count N --concurrency N --out FILE`.
pub struct Args {
    pub count: usize,
    pub concurrency: usize,
    pub out: String,
    /// Further `--name value` pairs, for the options of one benchmark.
    pub extra: HashMap<String, String>,
}

impl Args {
    pub fn parse(count: usize, out: &str) -> Args {
        let mut a = Args { count, concurrency: 16, out: out.into(), extra: HashMap::new() };
        let mut it = std::env::args().skip(1);
        while let Some(k) = it.next() {
            let v = it.next().unwrap_or_default();
            match k.as_str() {
                "--count" => a.count = v.parse().unwrap_or(a.count),
                "--concurrency" => a.concurrency = v.parse().unwrap_or(a.concurrency),
                "--out" => a.out = v,
                _ => match k.strip_prefix("--") {
                    Some(name) => {
                        a.extra.insert(name.to_string(), v);
                    }
                    None => eprintln!("ignoring unknown argument {k}"),
                },
            }
        }
        a
    }

    /// The value of `--name`, or `default` when it is absent or does not parse.
    pub fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        self.extra.get(name).and_then(|v| v.parse().ok()).unwrap_or(default)
    }
}

/// The `p`th percentile of sorted values (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted.get(idx.min(sorted.len() - 1)).copied().unwrap_or(f64::NAN)
}

/// Write `json` to `path`, creating its directory.
pub fn write_result(path: &str, json: &serde_json::Value) -> Result<(), String> {
    if let Some(dir) = std::path::Path::new(path).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(path, serde_json::to_string_pretty(json).unwrap_or_default()).map_err(|e| format!("writing {path}: {e}"))?;
    eprintln!("wrote {path}");
    Ok(())
}

/// Wait until the operator reports it leads.
pub async fn wait_leader(op: &OperatorProcess) -> Result<(), String> {
    let t = Instant::now();
    while op.metric("pdc_leader").unwrap_or(0.0) < 1.0 {
        if t.elapsed() > Duration::from_secs(30) {
            return Err("operator did not take the lease".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// When each key was created and when it became ready.
#[derive(Clone)]
pub struct Timings<K> {
    pub created: Arc<Mutex<HashMap<K, Instant>>>,
    pub ready: Arc<Mutex<HashMap<K, Instant>>>,
}

impl<K: Eq + Hash + Clone> Default for Timings<K> {
    fn default() -> Self {
        Timings { created: Arc::default(), ready: Arc::default() }
    }
}

impl<K: Eq + Hash + Clone> Timings<K> {
    pub fn created(&self, k: K) {
        if let Ok(mut c) = self.created.lock() {
            c.insert(k, Instant::now());
        }
    }

    pub fn ready(&self, k: K) {
        if let Ok(mut r) = self.ready.lock() {
            r.entry(k).or_insert_with(Instant::now);
        }
    }

    /// How many of the objects created through these timings are ready (objects that
    /// already existed and were ready do not count).
    pub fn ready_count(&self) -> usize {
        let (Ok(c), Ok(r)) = (self.created.lock(), self.ready.lock()) else { return 0 };
        r.keys().filter(|k| c.contains_key(k)).count()
    }

    /// Wait until `n` are ready, or fail after `timeout`.
    pub async fn wait_ready(&self, n: usize, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let done = self.ready_count();
            if done >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("only {done}/{n} ready after {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Created → ready latencies in milliseconds, sorted.
    pub fn latencies_ms(&self) -> Vec<f64> {
        let (Ok(c), Ok(r)) = (self.created.lock(), self.ready.lock()) else { return Vec::new() };
        let mut v: Vec<f64> = r.iter().filter_map(|(k, t)| c.get(k).map(|c0| t.saturating_duration_since(*c0).as_secs_f64() * 1000.0)).collect();
        v.sort_by(f64::total_cmp);
        v
    }
}

type Key = (String, String);

/// Note in `t` when each object of kind `K` (anywhere in the cluster) is first seen
/// ready, from a watch on a task of its own.
pub fn watch_ready<K>(client: kube::Client, t: Timings<Key>, ready: fn(&K) -> bool) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    use futures::TryStreamExt;
    use kube::ResourceExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let stream = watcher(kube::Api::<K>::all(client), watcher::Config::default()).applied_objects();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Ok(Some(o)) = stream.try_next().await {
            if ready(&o) {
                t.ready((o.namespace().unwrap_or_default(), o.name_any()));
            }
        }
    })
}

/// Print how many of `n` are `what` every 10 s since `start`.
pub fn progress(t: Timings<Key>, n: usize, what: &'static str, start: Instant) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            eprintln!("  {} / {n} {what} after {:.0} s", t.ready_count(), start.elapsed().as_secs_f64());
        }
    })
}

/// Create `n` objects, `conc` in flight: `make(i)` gives the namespace and the object.
/// Each creation is noted in `t`.
pub async fn create_all<K>(client: &kube::Client, n: usize, conc: usize, t: &Timings<Key>, make: impl Fn(usize) -> Result<(String, K), String>) -> Result<(), String>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope> + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    create_paced(client, n, conc, None, t, make).await
}

/// Like [`create_all`], with the `i`th create started no sooner than `i / rate`
/// seconds after the first when `rate` is given: a steady stream instead of a burst.
pub async fn create_paced<K>(
    client: &kube::Client,
    n: usize,
    conc: usize,
    rate: Option<f64>,
    t: &Timings<Key>,
    make: impl Fn(usize) -> Result<(String, K), String>,
) -> Result<(), String>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope> + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    use futures::{StreamExt, TryStreamExt};
    use kube::ResourceExt;
    let objs = (0..n).map(&make).collect::<Result<Vec<_>, _>>()?;
    let start = tokio::time::Instant::now();
    futures::stream::iter(objs.into_iter().enumerate())
        .map(|(i, (ns, obj))| {
            let api: kube::Api<K> = kube::Api::namespaced(client.clone(), &ns);
            let t = t.clone();
            let at = rate.map(|r| start + Duration::from_secs_f64(i as f64 / r));
            async move {
                if let Some(at) = at {
                    tokio::time::sleep_until(at).await;
                }
                api.create(&kube::api::PostParams::default(), &obj).await.map_err(|e| e.to_string())?;
                t.created((ns, obj.name_any()));
                Ok::<(), String>(())
            }
        })
        .buffer_unordered(conc)
        .try_collect::<Vec<_>>()
        .await
        .map(|_| ())
}

/// The benchmarks' TenantVM: size m1.small, a 20Gi ssd root disk from a URL, a 50Gi
/// hdd data disk, one NIC in zone app.
pub fn tenant_vm(name: &str) -> Result<pdc_api::TenantVM, String> {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "TenantVM", "metadata": {"name": name},
        "spec": {"size": "m1.small", "image": {"url": "https://images.daklak.gov.vn/ubuntu-24.04.qcow2"},
                 "rootDisk": {"size": "20Gi", "tier": "ssd"}, "disks": [{"name": "data", "size": "50Gi", "tier": "hdd"}],
                 "nics": [{"zone": "app"}], "hostname": name}
    }))
    .map_err(|e| e.to_string())
}

pub fn vm_ready(v: &pdc_api::TenantVM) -> bool {
    v.status.as_ref().is_some_and(|s| pdc_api::conditions::is_true(&s.conditions, "Ready"))
}

pub fn programmed(r: &pdc_api::DnsRecord) -> bool {
    r.status.as_ref().and_then(|s| pdc_api::conditions::find(&s.conditions, "Programmed")).is_some_and(|c| c.status == "True")
}

/// The `i`th benchmark address: 10.15.x.y.
pub fn record_addr(i: usize) -> String {
    format!("10.15.{}.{}", (i / 250) % 250, i % 250 + 1)
}

/// The `i`th benchmark record: `prefix-iiiii`, one A value, in `depts[i % len]`.
pub fn record(depts: &[String], i: usize, prefix: &str, labels: &[(&str, &str)]) -> Result<(String, pdc_api::DnsRecord), String> {
    let ns = depts.get(i % depts.len().max(1)).cloned().unwrap_or_default();
    let name = format!("{prefix}-{i:05}");
    let labels: serde_json::Map<String, serde_json::Value> = labels.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect();
    let rec = serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "DnsRecord", "metadata": {"name": name, "labels": labels},
        "spec": {"name": name, "type": "A", "values": [record_addr(i)]}
    }))
    .map_err(|e| e.to_string())?;
    Ok((ns, rec))
}
