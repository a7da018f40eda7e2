//! The operator as a real process, for tests and benchmarks: started with its own
//! identity and metrics port, killed by pid.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::HarnessError;
use crate::controlplane::{free_port, spawn_tied, stop_child};

/// Path of a binary built from this workspace (`pdc-operator`, `pdcctl`), found beside
/// the running test executable (`target/<profile>/deps/..`).
pub fn workspace_binary(name: &str) -> Result<PathBuf, HarnessError> {
    let exe = std::env::current_exe().map_err(|e| HarnessError::Io("locating the test binary".into(), e))?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let p = dir.join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(HarnessError::Other(format!("{} is missing: run `cargo build --workspace --bins` first", p.display())))
    }
}

/// Settings for one operator replica.
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    pub identity: String,
    pub namespace: String,
    pub lease_duration: &'static str,
    pub renew_deadline: &'static str,
    pub retry_period: &'static str,
    /// More environment for the process (e.g. `PDC_DNS_RESYNC`).
    pub env: Vec<(String, String)>,
}

impl OperatorOptions {
    pub fn new(identity: &str) -> Self {
        Self {
            identity: identity.into(),
            namespace: "pdc-system".into(),
            lease_duration: "15s",
            renew_deadline: "10s",
            retry_period: "2s",
            env: Vec::new(),
        }
    }
}

/// A running operator replica.
pub struct OperatorProcess {
    pub identity: String,
    pub metrics_port: u16,
    pub log: PathBuf,
    /// The bearer token /metrics asks for ([`METRICS_TOKEN_FILE`] in the plane's directory).
    token_file: PathBuf,
    child: Option<Child>,
}

/// Name of the file, in a control plane's directory, that holds a token of the
/// ServiceAccount the harness binds to ClusterRole pdc-metrics-reader.
pub const METRICS_TOKEN_FILE: &str = "metrics-token";

impl OperatorProcess {
    /// Start the operator against `kubeconfig`, logging JSON to `log_dir/<identity>.log`.
    pub fn start(kubeconfig: &Path, opts: &OperatorOptions, log_dir: &Path) -> Result<Self, HarnessError> {
        let bin = workspace_binary("pdc-operator")?;
        let port = free_port()?;
        let log = log_dir.join(format!("{}.log", opts.identity));
        let out = std::fs::File::create(&log).map_err(|e| HarnessError::Io(format!("creating {}", log.display()), e))?;
        let err = out.try_clone().map_err(|e| HarnessError::Io("cloning log file".into(), e))?;
        // PDC_OPERATOR_WRAPPER (e.g. `heaptrack -o /tmp/op`): a profiler that runs the
        // operator, for the benchmarks.
        let wrapper = std::env::var("PDC_OPERATOR_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut cmd = match words.next() {
            Some(w) => {
                let mut c = Command::new(w);
                c.args(words).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        let child = spawn_tied(
            cmd.env("KUBECONFIG", kubeconfig)
                .env("POD_NAMESPACE", &opts.namespace)
                .env("POD_NAME", &opts.identity)
                .env("PDC_METRICS_ADDR", format!("127.0.0.1:{port}"))
                .env("PDC_LEASE_DURATION", opts.lease_duration)
                .env("PDC_RENEW_DEADLINE", opts.renew_deadline)
                .env("PDC_RETRY_PERIOD", opts.retry_period)
                .env("RUST_LOG", "info,kube=warn")
                .envs(opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err),
        )
        .map_err(|e| HarnessError::Io("starting pdc-operator".into(), e))?;
        Ok(Self { identity: opts.identity.clone(), metrics_port: port, log, token_file: log_dir.join(METRICS_TOKEN_FILE), child: Some(child) })
    }

    /// GET `path` from the operator's metrics server, with the scraper's token:
    /// `(status code, body)`.
    pub fn http_get(&self, path: &str) -> Result<(u16, String), HarnessError> {
        let token = std::fs::read_to_string(&self.token_file).ok();
        http_get_with(self.metrics_port, path, token.as_deref())
    }

    /// The value of the sample `name{labels}` (exact text before the value) in /metrics, 0 when absent.
    pub fn metric(&self, series: &str) -> Result<f64, HarnessError> {
        let (_, body) = self.http_get("/metrics")?;
        Ok(metric_value(&body, series))
    }

    /// The operator's requests to the Kubernetes API so far, by verb
    /// (`pdc_kube_api_requests_total`).
    pub fn api_requests(&self) -> Result<ApiRequests, HarnessError> {
        let (_, body) = self.http_get("/metrics")?;
        let mut by_verb = std::collections::BTreeMap::new();
        for line in body.lines() {
            if let Some(rest) = line.strip_prefix("pdc_kube_api_requests_total{verb=\"")
                && let Some((verb, value)) = rest.split_once("\"} ")
            {
                by_verb.insert(verb.to_string(), value.trim().parse::<f64>().unwrap_or(0.0));
            }
        }
        Ok(ApiRequests { by_verb })
    }

    /// Kill the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop the process in order (SIGTERM): it releases its lease.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c);
        }
    }

    /// Peak resident memory of the process so far, in KiB (Linux `VmHWM`).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.status_kib("VmHWM:")
    }

    /// Resident memory of the process now, in KiB (Linux `VmRSS`).
    pub fn rss_kib(&self) -> Option<u64> {
        self.status_kib("VmRSS:")
    }

    fn status_kib(&self, field: &str) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

/// An operator's API requests by verb.
#[derive(Debug, Clone, Default)]
pub struct ApiRequests {
    pub by_verb: std::collections::BTreeMap<String, f64>,
}

impl ApiRequests {
    pub fn total(&self) -> f64 {
        self.by_verb.values().sum()
    }

    /// Creates, updates, patches and deletes.
    pub fn writes(&self) -> f64 {
        ["create", "update", "patch", "delete"].iter().filter_map(|v| self.by_verb.get(*v)).sum()
    }

    /// `"12.3 per object (writes 8.1, reads 4.2)"` over `objects`.
    pub fn per(&self, objects: usize) -> String {
        let n = objects.max(1) as f64;
        format!("{:.1} per object (writes {:.1}, reads {:.1})", self.total() / n, self.writes() / n, (self.total() - self.writes()) / n)
    }

    pub fn json(&self, objects: usize) -> serde_json::Value {
        let n = objects.max(1) as f64;
        serde_json::json!({"total": self.total(), "writes": self.writes(), "per_object": self.total() / n, "writes_per_object": self.writes() / n, "by_verb": self.by_verb})
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sum of the samples whose text before the value is `series` (e.g.
/// `pdc_reconcile_total{controller="department",result="success"}`).
pub fn metric_value(body: &str, series: &str) -> f64 {
    body.lines()
        .filter_map(|l| l.rsplit_once(' ').filter(|(k, _)| *k == series).and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// A minimal HTTP/1.0 GET on loopback.
pub fn http_get(port: u16, path: &str) -> Result<(u16, String), HarnessError> {
    http_get_with(port, path, None)
}

/// A minimal HTTP/1.0 GET on loopback, with a bearer token when given.
pub fn http_get_with(port: u16, path: &str, token: Option<&str>) -> Result<(u16, String), HarnessError> {
    let io = |e| HarnessError::Io(format!("GET 127.0.0.1:{port}{path}"), e);
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(io)?;
    s.set_read_timeout(Some(Duration::from_secs(5))).map_err(io)?;
    let auth = token.map(|t| format!("Authorization: Bearer {}\r\n", t.trim())).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}\r\n").map_err(io)?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(io)?;
    let code = buf.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((code, body))
}

/// Lint a /metrics body with `promtool check metrics` (promtool from tests/setup.sh).
pub fn promtool_check_metrics(body: &str) -> Result<(), HarnessError> {
    crate::run_command(Command::new("promtool").args(["check", "metrics"]), Some(body), "promtool check metrics").map(|_| ())
}
