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
}

impl Args {
    pub fn parse(count: usize, out: &str) -> Args {
        let mut a = Args { count, concurrency: 16, out: out.into() };
        let mut it = std::env::args().skip(1);
        while let Some(k) = it.next() {
            let v = it.next().unwrap_or_default();
            match k.as_str() {
                "--count" => a.count = v.parse().unwrap_or(a.count),
                "--concurrency" => a.concurrency = v.parse().unwrap_or(a.concurrency),
                "--out" => a.out = v,
                _ => eprintln!("ignoring unknown argument {k}"),
            }
        }
        a
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

    pub fn ready_count(&self) -> usize {
        self.ready.lock().map(|r| r.len()).unwrap_or(0)
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
