//! No address is allocated twice: two operator replicas with a leader killed
//! mid-run, several clients creating claims in parallel, and an operator killed in
//! the middle of allocating. Each test has a control plane of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use pdc_api::AddressClaim;
use pdc_tests::addressing::{audit, bound, claim, load_plan};
use pdc_tests::cluster::{TestEnv, client_for, private_env};
use pdc_tests::operator::{OperatorOptions, OperatorProcess};

fn fast(id: &str) -> OperatorOptions {
    // A takeover within seconds, with room to renew on two loaded cores (a replica
    // that misses its renew deadline steps down and exits).
    OperatorOptions { lease_duration: "10s", renew_deadline: "8s", retry_period: "1s", ..OperatorOptions::new(id) }
}

async fn count_bound(client: &Client) -> usize {
    let list = Api::<AddressClaim>::all(client.clone()).list(&ListParams::default()).await.unwrap();
    list.items.iter().filter(|c| bound(c)).count()
}

async fn wait_all_bound(client: &Client, n: usize, timeout: Duration) {
    let start = Instant::now();
    loop {
        let b = count_bound(client).await;
        if b == n {
            return;
        }
        assert!(start.elapsed() < timeout, "only {b} of {n} claims bound within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Create `names` in namespaces `ns` round-robin from `clients` separate clients, 8 in flight each.
async fn create_claims(env: &TestEnv, namespaces: &[String], n: usize, clients: usize) {
    let mut handles = Vec::new();
    for k in 0..clients {
        let client = client_for(&env.kubeconfig).await.unwrap();
        let namespaces = namespaces.to_vec();
        handles.push(tokio::spawn(async move {
            futures::stream::iter((k..n).step_by(clients))
                .map(|i| {
                    let ns = &namespaces[i % namespaces.len()];
                    let api: Api<AddressClaim> = Api::namespaced(client.clone(), ns);
                    async move { api.create(&PostParams::default(), &claim(&format!("nic-{i:04}"), "app")).await.map(|_| ()) }
                })
                .buffer_unordered(8)
                .collect::<Vec<_>>()
                .await
        }));
    }
    for h in handles {
        for r in h.await.unwrap() {
            r.unwrap();
        }
    }
}

#[tokio::test]
async fn two_replicas_and_parallel_clients_never_double_allocate() {
    let (env, _plane) = private_env("pdc-ipam-replicas").await.unwrap();
    let client = env.client().await.unwrap();
    let mut a = OperatorProcess::start(&env.operator_kubeconfig, &fast("replica-a"), &env.dir).unwrap();
    let mut b = OperatorProcess::start(&env.operator_kubeconfig, &fast("replica-b"), &env.dir).unwrap();
    // Two departments share the zone; /22 subnets hold 1,019 usable addresses each.
    let depts = vec!["so-tai-chinh".to_string(), "so-xay-dung".to_string()];
    load_plan(&client, "app", 22, &depts).await.unwrap();

    // 500 claims from 4 clients; the leader is killed once 150 are bound.
    let n = 500;
    let creating = {
        let env = env.clone();
        let depts = depts.clone();
        tokio::spawn(async move { create_claims(&env, &depts, n, 4).await })
    };
    let start = Instant::now();
    while count_bound(&client).await < 150 {
        assert!(start.elapsed() < Duration::from_secs(60), "claims are not being bound");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let leader_a = a.metric("pdc_leader").unwrap() == 1.0;
    if leader_a { a.kill() } else { b.kill() }
    creating.await.unwrap();
    wait_all_bound(&client, n, Duration::from_secs(180)).await;

    let problems = audit(&client).await.unwrap();
    assert!(problems.is_empty(), "{} problems, first: {:?}", problems.len(), &problems[..problems.len().min(10)]);
    let allocs = Api::<pdc_api::AddressAllocation>::all(client.clone()).list(&ListParams::default()).await.unwrap().items.len();
    assert_eq!(allocs, 2 * n, "one IPv4 and one IPv6 allocation per claim");
    let survivor = if leader_a { &b } else { &a };
    assert_eq!(survivor.metric("pdc_leader").unwrap(), 1.0, "the standby took over");
}

#[tokio::test]
async fn an_operator_killed_mid_allocation_binds_every_claim_exactly_once_after_restart() {
    let (env, _plane) = private_env("pdc-ipam-crash").await.unwrap();
    let client = env.client().await.unwrap();
    let mut first = OperatorProcess::start(&env.operator_kubeconfig, &fast("crashy"), &env.dir).unwrap();
    let depts = vec!["so-noi-vu".to_string()];
    load_plan(&client, "app", 22, &depts).await.unwrap();

    let n = 300;
    create_claims(&env, &depts, n, 2).await;
    // Kill it (SIGKILL: no cleanup) while it is allocating.
    let start = Instant::now();
    loop {
        let b = count_bound(&client).await;
        if b >= 60 {
            assert!(b < n, "all {n} bound before the kill; the test needs more claims");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "claims are not being bound");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill();
    let at_kill = count_bound(&client).await;
    eprintln!("operator killed with {at_kill} of {n} claims bound");

    let _second = OperatorProcess::start(&env.operator_kubeconfig, &fast("restarted"), &env.dir).unwrap();
    wait_all_bound(&client, n, Duration::from_secs(180)).await;
    let problems = audit(&client).await.unwrap();
    assert!(problems.is_empty(), "{} problems, first: {:?}", problems.len(), &problems[..problems.len().min(10)]);
}
