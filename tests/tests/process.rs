//! The operator as a process the kubelet runs, on a real API server: SIGTERM and
//! SIGINT stop it in order (running reconciles finish, the lease is released so a
//! standby takes over at once, exit status 0 within seconds); /healthz is 200 while
//! every watch runs and 503, naming the watch, once one has stopped; a failing
//! reconcile is logged with the object's kind, namespace and name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use pdc_api::conditions::{self, READY};
use pdc_api::{Department, DepartmentSpec, DnsRecord, GuestQuota};
use pdc_tests::cluster::{SYSTEM_NAMESPACE, TestEnv, private_env, shared_env, unique, wait_for};
use pdc_tests::controlplane::{free_port, spawn_tied};
use pdc_tests::operator::{http_get, workspace_binary};

/// What the operator logs when a watch or controller loop stops while it runs.
const STOPPED: &str = "stopped; /healthz fails from now on";

/// One operator process started here, so the test holds its exit status.
struct Operator {
    identity: String,
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Operator {
    /// Start `pdc-operator` as `identity` with the operator's own credentials and
    /// `env` on top of the lease timings 15 s / 10 s / 1 s.
    fn start(env: &TestEnv, identity: &str, extra: &[(&str, &str)]) -> Self {
        let port = free_port().unwrap();
        let log = env.dir.join(format!("{identity}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = spawn_tied(
            Command::new(workspace_binary("pdc-operator").unwrap())
                .env("KUBECONFIG", &env.operator_kubeconfig)
                .env("POD_NAMESPACE", SYSTEM_NAMESPACE)
                .env("POD_NAME", identity)
                .env("PDC_METRICS_ADDR", format!("127.0.0.1:{port}"))
                .env("PDC_LEASE_DURATION", "15s")
                .env("PDC_RENEW_DEADLINE", "10s")
                .env("PDC_RETRY_PERIOD", "1s")
                .env("RUST_LOG", "info,kube=warn")
                .envs(extra.iter().copied())
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out),
        )
        .unwrap();
        Self { identity: identity.into(), child, port, log }
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(ok.success(), "kill -{name} {}", self.child.id());
    }

    /// The exit status, once the process has ended within `timeout`.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn get(&self, path: &str) -> (u16, String) {
        http_get(self.port, path).unwrap_or((0, String::new()))
    }

    /// The JSON log lines so far.
    fn log_events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    fn has_logged(&self, message: &str) -> bool {
        self.log_events().iter().any(|e| e["message"] == message)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn lease(client: &Client) -> Option<Lease> {
    Api::<Lease>::namespaced(client.clone(), SYSTEM_NAMESPACE).get_opt("pdc-operator").await.unwrap()
}

async fn holder(client: &Client) -> Option<String> {
    lease(client).await?.spec?.holder_identity
}

/// Wait until `who` holds the lease; how long that took.
async fn wait_holder(client: &Client, who: &str, timeout: Duration) -> Duration {
    let start = Instant::now();
    while holder(client).await.as_deref() != Some(who) {
        assert!(start.elapsed() < timeout, "{who} did not hold the lease within {timeout:?}; holder is {:?}", holder(client).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

fn department(code: &str) -> DepartmentSpec {
    DepartmentSpec::new("Sở Nội vụ", code, GuestQuota { vcpu: 4, memory: "8Gi".into(), storage: BTreeMap::new(), vms: 2, public_addresses: 0 })
}

fn ready(d: &Department) -> bool {
    d.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY))
}

#[tokio::test]
async fn sigterm_and_sigint_stop_in_order_and_hand_the_lease_over_at_once() {
    let env = shared_env(false).unwrap_or_else(|e| panic!("test environment: {e}"));
    let client = env.client().await.unwrap();
    pdc_tests::cluster::apply_sample_province(&client).await.unwrap();
    let mut a = Operator::start(env, "stop-a", &[]);
    wait_holder(&client, "stop-a", Duration::from_secs(30)).await;
    let mut b = Operator::start(env, "stop-b", &[]);
    let departments: Api<Department> = Api::all(client.clone());
    let first = unique("so-noi-vu");
    departments.create(&PostParams::default(), &Department::new(&first, department("H15.7"))).await.unwrap();
    wait_for(&departments, &first, Duration::from_secs(30), "Ready", ready).await.unwrap();
    assert_eq!(b.get("/healthz").0, 200, "the standby is alive");

    // Work in flight when the signal comes: a new Department's reconcile.
    let second = unique("so-noi-vu");
    departments.create(&PostParams::default(), &Department::new(&second, department("H15.7.1"))).await.unwrap();
    let stopped = Instant::now();
    a.signal("TERM");
    let status = a.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| panic!("no exit within 10 s after SIGTERM:\n{}", a.log_tail()));
    let took = stopped.elapsed();
    assert!(status.success(), "exit status {status:?}:\n{}", a.log_tail());
    eprintln!("the leader exited 0 {took:?} after SIGTERM");
    assert!(a.has_logged("released leader lease"), "{}", a.log_tail());
    assert!(!a.has_logged(STOPPED), "an orderly stop is no failure:\n{}", a.log_tail());
    assert!(
        a.has_logged("running reconciles finished") || a.has_logged("controllers stopped"),
        "the controllers drained instead of being cancelled:\n{}",
        a.log_tail()
    );
    // Released, the lease goes to the standby on its next try (retry period 1 s),
    // not after the 15 s lease duration. The drain before the release (bounded by the
    // exit above) is not counted: it is as long as the reconcile in flight.
    let takeover = wait_holder(&client, "stop-b", Duration::from_secs(15)).await;
    assert!(takeover < Duration::from_secs(5), "the standby took over {takeover:?} after the leader exited ({took:?} after SIGTERM)");
    wait_for(&departments, &second, Duration::from_secs(30), "Ready", ready).await.unwrap();

    // SIGINT (Ctrl-C) the same way; with no standby the lease is left with no holder.
    let stopped = Instant::now();
    b.signal("INT");
    let status = b.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| panic!("no exit within 10 s after SIGINT:\n{}", b.log_tail()));
    assert!(status.success(), "exit status {status:?}:\n{}", b.log_tail());
    eprintln!("the leader exited 0 {:?} after SIGINT", stopped.elapsed());
    assert!(!b.has_logged(STOPPED), "an orderly stop is no failure:\n{}", b.log_tail());
    let spec = lease(&client).await.unwrap().spec.unwrap();
    assert_eq!(spec.holder_identity, None, "{} released the lease: {spec:?}", b.identity);
    assert_eq!(spec.lease_duration_seconds, Some(1), "a released lease is free at once: {spec:?}");
}

/// A ValidatingAdmissionPolicy that refuses every status write to DnsRecords in `ns`,
/// as a cluster's own policy engine might refuse the operator's writes.
async fn freeze_record_status(client: &Client, name: &str, ns: &str) {
    let yaml = format!(
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}
    resourceRules:
      - apiGroups: [pdc.io]
        apiVersions: ["*"]
        operations: [UPDATE]
        resources: [dnsrecords/status]
  validations:
    - expression: "false"
      message: DnsRecord status is frozen in this namespace
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {name}
  validationActions: [Deny]
"#
    );
    pdc_tests::cluster::apply_yaml(client, &yaml, None).await.unwrap();
}

fn record(name: &str) -> DnsRecord {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "DnsRecord", "metadata": {"name": name},
        "spec": {"name": "www", "type": "A", "values": ["10.15.0.5"]}
    }))
    .unwrap()
}

/// Wait until the API server enforces the policy: a dry-run status write on `probe` is refused.
async fn wait_frozen(records: &Api<DnsRecord>, probe: &str) {
    let start = Instant::now();
    let status = serde_json::json!({"status": {"observedGeneration": 1}});
    loop {
        match records.patch_status(probe, &PatchParams::default().dry_run(), &Patch::Merge(&status)).await {
            Err(kube::Error::Api(s)) if s.message.contains("frozen") => return,
            other => assert!(start.elapsed() < Duration::from_secs(30), "the policy is not enforced after 30 s: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Poll /healthz for `period`: every answer must be 200 "ok".
async fn stays_healthy(op: &Operator, period: Duration) {
    let start = Instant::now();
    while start.elapsed() < period {
        let (code, body) = op.get("/healthz");
        assert_eq!((code, body.as_str()), (200, "ok\n"), "{}", op.log_tail());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn healthz_names_a_stopped_watch_and_reconcile_errors_name_the_object() {
    let (env, _plane) = private_env("process").await.unwrap();
    let client = env.client().await.unwrap();
    pdc_tests::cluster::apply_sample_province(&client).await.unwrap();
    let mut op = Operator::start(&env, "health-a", &[("PDC_WATCH_FAILURE_LIMIT", "2s")]);
    wait_holder(&client, "health-a", Duration::from_secs(30)).await;
    // Every watch listed and watches: with a failure limit of 2 s, one that could
    // not would fail /healthz within this.
    stays_healthy(&op, Duration::from_secs(5)).await;

    // A reconcile that fails: the record's status write is refused by the cluster.
    let departments: Api<Department> = Api::all(client.clone());
    let ns = unique("so-tu-phap");
    departments.create(&PostParams::default(), &Department::new(&ns, department("H15.9"))).await.unwrap();
    wait_for(&departments, &ns, Duration::from_secs(30), "Ready", ready).await.unwrap();
    let records: Api<DnsRecord> = Api::namespaced(client.clone(), &ns);
    let policy = unique("pdc-test-frozen-records");
    records.create(&PostParams::default(), &record("probe")).await.unwrap();
    freeze_record_status(&client, &policy, &ns).await;
    wait_frozen(&records, "probe").await;
    records.create(&PostParams::default(), &record("www")).await.unwrap();
    let start = Instant::now();
    let logged = loop {
        let found = op.log_events().into_iter().find(|e| e["message"] == "reconcile failed" && e["name"] == "www" && e["namespace"] == ns.as_str());
        if let Some(e) = found {
            break e;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no failed reconcile of {ns}/www logged:\n{}", op.log_tail());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(logged["level"], "WARN", "{logged}");
    assert_eq!(logged["kind"], "DnsRecord", "{logged}");
    assert!(logged["error"].as_str().unwrap_or_default().contains("frozen"), "the API server's refusal is in the log: {logged}");
    assert_eq!(logged["error_kind"], "patch_status", "{logged}");
    stays_healthy(&op, Duration::from_secs(1)).await;

    // A kind the operator watches goes away: its watch fails from then on, and after
    // the limit /healthz answers 503 naming it; readiness is not liveness.
    Api::<CustomResourceDefinition>::all(client.clone()).delete("sizeclasses.pdc.io", &DeleteParams::default()).await.unwrap();
    let deleted = Instant::now();
    let body = loop {
        let (code, body) = op.get("/healthz");
        if code == 503 {
            break body;
        }
        assert_eq!(code, 200, "{body}");
        assert!(deleted.elapsed() < Duration::from_secs(30), "/healthz still 200 30 s after the CRD was deleted:\n{}", op.log_tail());
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!("/healthz failed {:?} after the CRD was deleted:\n{body}", deleted.elapsed());
    assert!(body.starts_with("stopped:\nwatch of sizeclasses: failing for "), "{body}");
    assert!(body.contains("(limit 2s)"), "{body}");
    assert_eq!(body.lines().count(), 2, "only that watch: {body}");
    assert_eq!(op.get("/readyz").0, 200);
    assert!(op.log_events().iter().any(|e| e["message"] == "watch failed; retrying with backoff" && e["watch"] == "watch of sizeclasses"), "{}", op.log_tail());

    // It still stops in order.
    op.signal("TERM");
    let status = op.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| panic!("no exit within 10 s after SIGTERM:\n{}", op.log_tail()));
    assert!(status.success(), "exit status {status:?}:\n{}", op.log_tail());
    assert_eq!(holder(&client).await, None);
}
