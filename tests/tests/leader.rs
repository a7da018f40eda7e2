//! Two operator replicas on one real API server: only the lease holder writes, and
//! the standby takes over within the lease time when the leader is killed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::PostParams;
use kube::{Api, Client};
use pdc_api::conditions::{self, READY};
use pdc_api::{Department, DepartmentSpec, GuestQuota};
use pdc_tests::cluster::{SYSTEM_NAMESPACE, shared_env, unique, wait_for};
use pdc_tests::operator::{OperatorOptions, OperatorProcess};

const SUCCESS: &str = r#"pdc_reconcile_total{controller="department",result="success"}"#;

fn department(code: &str) -> DepartmentSpec {
    DepartmentSpec::new("Sở Giáo dục và Đào tạo", code, GuestQuota { vcpu: 4, memory: "8Gi".into(), storage: BTreeMap::new(), vms: 2, public_addresses: 0 })
}

async fn holder(client: &Client) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), SYSTEM_NAMESPACE).get_opt("pdc-operator").await.ok()??;
    lease.spec?.holder_identity
}

async fn wait_holder(client: &Client, timeout: Duration, ok: impl Fn(&str) -> bool) -> (String, Duration) {
    let start = Instant::now();
    loop {
        if let Some(h) = holder(client).await.filter(|h| ok(h)) {
            return (h, start.elapsed());
        }
        assert!(start.elapsed() < timeout, "no suitable lease holder within {timeout:?}; holder is {:?}", holder(client).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ready(d: &Department) -> bool {
    d.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY))
}

#[tokio::test]
async fn only_the_leader_writes_and_the_standby_takes_over() {
    let env = shared_env(false).unwrap_or_else(|e| panic!("test environment: {e}"));
    let client = env.client().await.unwrap();
    pdc_tests::cluster::apply_sample_province(&client).await.unwrap();

    // Short lease timings so the test is quick, with room to renew on two loaded
    // cores (a leader that misses its renew deadline steps down); the mechanism is the
    // production one.
    let opts = |id: &str| OperatorOptions { lease_duration: "8s", renew_deadline: "6s", retry_period: "500ms", ..OperatorOptions::new(id) };
    let mut a = OperatorProcess::start(&env.operator_kubeconfig, &opts("replica-a"), &env.dir).unwrap();
    let (first, _) = wait_holder(&client, Duration::from_secs(20), |h| h == "replica-a").await;
    let mut b = OperatorProcess::start(&env.operator_kubeconfig, &opts("replica-b"), &env.dir).unwrap();
    assert_eq!(first, "replica-a");

    let api: Api<Department> = Api::all(client.clone());
    let d1 = unique("so-gd-dt");
    api.create(&PostParams::default(), &Department::new(&d1, department("H15.2"))).await.unwrap();
    wait_for(&api, &d1, Duration::from_secs(30), "Ready", ready).await.unwrap();
    // Let the standby run a few retry periods: it must not reconcile anything.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(a.metric(SUCCESS).unwrap() >= 1.0, "the leader reconciled");
    assert_eq!(b.metric(SUCCESS).unwrap(), 0.0, "the standby wrote nothing");
    assert_eq!(a.metric("pdc_leader").unwrap(), 1.0);
    assert_eq!(b.metric("pdc_leader").unwrap(), 0.0);
    let (code, _) = b.http_get("/readyz").unwrap();
    assert_eq!(code, 200, "a standby is ready (it serves probes while waiting)");

    // The leader dies without releasing its lease: the standby waits the lease out
    // (8 s from the last renewal it saw, at most one retry period before the kill),
    // takes over at its next retry, and reconciles new work. The upper bound leaves
    // room for a loaded machine; the lower one is what matters: no early takeover.
    let killed = Instant::now();
    a.kill();
    let (second, _) = wait_holder(&client, Duration::from_secs(30), |h| h == "replica-b").await;
    let takeover = killed.elapsed();
    assert_eq!(second, "replica-b");
    // The last renewal can be a retry period and a slow request before the kill.
    assert!(takeover >= Duration::from_millis(6000), "taken over before the lease ran out: {takeover:?}");
    assert!(takeover <= Duration::from_millis(8000 + 2 * 500 + 5000), "takeover took {takeover:?}");
    eprintln!("standby took over {takeover:?} after the leader was killed (lease 8 s)");
    let d2 = unique("so-gd-dt");
    api.create(&PostParams::default(), &Department::new(&d2, department("H15.2.1"))).await.unwrap();
    wait_for(&api, &d2, Duration::from_secs(30), "Ready", ready).await.unwrap();
    assert!(b.metric(SUCCESS).unwrap() >= 1.0);

    // An orderly stop releases the lease at once for the next replica.
    let mut c = OperatorProcess::start(&env.operator_kubeconfig, &opts("replica-c"), &env.dir).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped = Instant::now();
    b.stop();
    wait_holder(&client, Duration::from_secs(10), |h| h == "replica-c").await;
    // Well before the 8 s an unreleased lease would take to run out.
    assert!(stopped.elapsed() < Duration::from_secs(6), "released lease taken over in {:?}", stopped.elapsed());
    // With no standby, an orderly stop leaves the lease held by no one (SIGTERM; a
    // process still running 5 s later is killed and would leave itself the holder).
    c.stop();
    let lease = Api::<Lease>::namespaced(client.clone(), SYSTEM_NAMESPACE).get("pdc-operator").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity, None, "replica-c released the lease: {spec:?}");
    assert_eq!(spec.lease_duration_seconds, Some(1), "{spec:?}");
}
