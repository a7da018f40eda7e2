//! What the reorganization tests share: the SizeClass, a one-disk VM and the quota
//! that fits a number of them, and an act as an object.

use kube::Api;
use kube::api::{Patch, PatchParams};
use pdc_api::{Department, Reorganization, TenantVM};

use crate::HarnessError;

/// The SizeClass the tests' VMs use.
pub const SIZES: &str = "apiVersion: pdc.io/v1alpha1\nkind: SizeClass\nmetadata: {name: m1.small}\nspec: {vcpu: 2, memory: 4Gi}\n";

/// A small VM: m1.small, one 20Gi ssd disk from a URL, one NIC in zone app.
pub fn small_vm(name: &str) -> Result<TenantVM, HarnessError> {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "TenantVM", "metadata": {"name": name},
        "spec": {"size": "m1.small", "image": {"url": "https://images.daklak.gov.vn/ubuntu-24.04.qcow2"},
                 "rootDisk": {"size": "20Gi", "tier": "ssd"}, "nics": [{"zone": "app"}], "hostname": name}
    }))
    .map_err(|e| HarnessError::Other(e.to_string()))
}

/// Give `dept` the quota of `vms` small VMs.
pub async fn set_quota(client: &kube::Client, dept: &str, vms: i32) -> Result<(), HarnessError> {
    let q = serde_json::json!({"spec": {"quota": {"vcpu": 2 * vms, "memory": format!("{}Gi", 4 * vms), "storage": {"ssd": format!("{}Gi", 20 * vms)}, "vms": vms}}});
    Api::<Department>::all(client.clone()).patch(dept, &PatchParams::default(), &Patch::Merge(&q)).await?;
    Ok(())
}

/// A Reorganization named `name` with `spec`.
pub fn act(name: &str, spec: serde_json::Value) -> Result<Reorganization, HarnessError> {
    serde_json::from_value(serde_json::json!({"apiVersion": "pdc.io/v1alpha1", "kind": "Reorganization", "metadata": {"name": name}, "spec": spec}))
        .map_err(|e| HarnessError::Other(e.to_string()))
}

/// What an act's status went through, as a test sees it: each distinct state of its
/// steps with the seconds since the recorder began, so a failed test shows where the
/// act stopped and what it did before.
pub struct Timeline {
    start: std::time::Instant,
    last: String,
    entries: Vec<String>,
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Timeline {
    pub fn new() -> Self {
        Self { start: std::time::Instant::now(), last: String::new(), entries: Vec::new() }
    }

    /// Note `act`'s phase and steps if they changed since the last call.
    pub fn record(&mut self, act: &Reorganization) {
        let now = steps_line(act);
        if now != self.last {
            self.entries.push(format!("{:7.1}s {now}", self.start.elapsed().as_secs_f64()));
            self.last = now;
        }
    }

    /// Note an event of the test's own (a kill, a restart).
    pub fn note(&mut self, what: &str) {
        self.entries.push(format!("{:7.1}s -- {what}", self.start.elapsed().as_secs_f64()));
    }

    /// The last `n` entries, one a line.
    pub fn tail(&self, n: usize) -> String {
        self.entries.iter().skip(self.entries.len().saturating_sub(n)).cloned().collect::<Vec<_>>().join("\n")
    }
}

/// `phase | step=state (message); …` of the steps not Pending.
pub fn steps_line(act: &Reorganization) -> String {
    let st = act.status.clone().unwrap_or_default();
    let steps: Vec<String> = st.steps.iter().filter(|s| s.state != "Pending").map(|s| format!("{}={} ({})", s.name, s.state, s.message)).collect();
    format!("{} | {}", st.phase.unwrap_or_default(), steps.join("; "))
}

/// The last `n` lines of the file at `path` (or why it cannot be read).
pub fn log_tail(path: &std::path::Path, n: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines.iter().skip(lines.len().saturating_sub(n)).copied().collect::<Vec<_>>().join("\n")
        }
        Err(e) => format!("({} cannot be read: {e})", path.display()),
    }
}

/// Copy every `*.log` of `dir` (a control plane's directory, which is removed when
/// the test ends) to a new directory under the system's temp dir that stays: where
/// they are.
pub fn keep_logs(dir: &std::path::Path, tag: &str) -> std::path::PathBuf {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let kept = std::env::temp_dir().join("pdc-kept-logs").join(format!("{tag}-{secs}-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&kept);
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "log")
            && let Some(name) = p.file_name()
        {
            let _ = std::fs::copy(&p, kept.join(name));
        }
    }
    kept
}

/// Why an act did not get where a test waited for it to: the status timeline, the
/// act's status as the API server has it, the leader lease, the TenantVMs of
/// `namespaces`, and the tail of the operator's log; the logs are copied to a
/// directory that stays (named in the text).
pub async fn explain(client: &kube::Client, act: &str, timeline: &Timeline, namespaces: &[&str], operator: &mut crate::operator::OperatorProcess, log_dir: &std::path::Path) -> String {
    let mut out = format!("status timeline (last 40):\n{}\n", timeline.tail(40));
    match operator.exit_status() {
        Some(s) => out += &format!("operator {} has exited: {s}\n", operator.identity),
        None => out += &format!("operator {} is running (pid {:?})\n", operator.identity, operator.pid()),
    }
    let operator_log = operator.log.clone();
    let operator_log = operator_log.as_path();
    match Api::<Reorganization>::all(client.clone()).get(act).await {
        Ok(a) => out += &format!("status of {act}:\n{}\n", serde_yaml::to_string(&a.status).unwrap_or_default()),
        Err(e) => out += &format!("reading {act}: {e}\n"),
    }
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(client.clone(), "pdc-system");
    for l in leases.list(&Default::default()).await.map(|l| l.items).unwrap_or_default() {
        let s = l.spec.unwrap_or_default();
        out += &format!("lease {}: holder {:?}, renewed {:?}\n", l.metadata.name.unwrap_or_default(), s.holder_identity, s.renew_time.map(|t| t.0.to_string()));
    }
    for ns in namespaces {
        for v in Api::<TenantVM>::namespaced(client.clone(), ns).list(&Default::default()).await.map(|l| l.items).unwrap_or_default() {
            let st = v.status.as_ref();
            out += &format!("TenantVM {ns}/{}: runStrategy {:?}, phase {:?}, deleting {}\n", v.metadata.name.clone().unwrap_or_default(), v.spec.run_strategy, st.and_then(|s| s.phase.clone()), v.metadata.deletion_timestamp.is_some());
        }
    }
    let kept = keep_logs(log_dir, act);
    out += &format!("operator log (last 60 lines of {}; every log kept in {}):\n{}\n", operator_log.display(), kept.display(), log_tail(operator_log, 60));
    out
}
