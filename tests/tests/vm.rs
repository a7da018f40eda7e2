//! TenantVMs on a real kube-apiserver with the operator under the chart's RBAC: the
//! objects a VM becomes (AddressClaims, CDI DataVolumes, a KubeVirt VirtualMachine
//! with cloud-init network data), its FQDN answering on a real Knot DNS, quota
//! admission under a burst of 50 VMs, refusals, resize and deletion.
//!
//! KubeVirt and CDI are not installed: their CRDs are (tests/crds), and
//! [`play_kubevirt_running`] writes what KubeVirt would report of a started VM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use pdc_api::conditions::{self, READY};
use pdc_api::{AddressClaim, Department, DnsRecord, TenantVM};
use pdc_operator::compute::build::{dv_resource, vm_resource, vmi_resource};
use pdc_tests::addressing::load_plan;
use pdc_tests::cluster::{apply_yaml, shared_env, wait_for};
use pdc_tests::dns::{KnotServer, register_zones};

fn env() -> &'static pdc_tests::cluster::TestEnv {
    shared_env(true).unwrap_or_else(|e| panic!("test environment: {e}"))
}

const SIZES: &str = "apiVersion: pdc.io/v1alpha1\nkind: SizeClass\nmetadata: {name: m1.small}\nspec: {vcpu: 2, memory: 4Gi}\n---\n\
apiVersion: pdc.io/v1alpha1\nkind: SizeClass\nmetadata: {name: m1.large}\nspec: {vcpu: 4, memory: 8Gi}\n";

fn tenant_vm(name: &str, size: &str, zone: &str) -> TenantVM {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "TenantVM", "metadata": {"name": name},
        "spec": {"size": size, "image": {"url": "https://images.daklak.gov.vn/ubuntu-24.04.qcow2"},
                 "rootDisk": {"size": "20Gi", "tier": "ssd"}, "disks": [{"name": "data", "size": "50Gi", "tier": "hdd"}],
                 "nics": [{"zone": zone}], "hostname": name}
    }))
    .unwrap()
}

async fn set_quota(client: &Client, dept: &str, quota: serde_json::Value) {
    Api::<Department>::all(client.clone()).patch(dept, &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"quota": quota}}))).await.unwrap();
}

fn cond(vm: &TenantVM, t: &str) -> Option<(String, String, String)> {
    let c = conditions::find(&vm.status.as_ref()?.conditions, t)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test]
async fn a_vm_becomes_addresses_disks_a_kubevirt_vm_and_dns() {
    let env = env();
    let client = env.client().await.unwrap();
    let dept = "so-y-te".to_string();
    load_plan(&client, "app", 24, std::slice::from_ref(&dept)).await.unwrap();
    apply_yaml(&client, SIZES, None).await.unwrap();
    set_quota(&client, &dept, serde_json::json!({"vcpu": 16, "memory": "32Gi", "storage": {"ssd": "500Gi", "hdd": "1Ti"}, "vms": 5})).await;
    let knot = KnotServer::start(&env.dir, &["daklak.gov.vn", "15.10.in-addr.arpa"]).unwrap();
    register_zones(&client, &knot, "vm-test-tsig").await.unwrap();

    let api: Api<TenantVM> = Api::namespaced(client.clone(), &dept);
    api.create(&PostParams::default(), &tenant_vm("his", "m1.small", "app")).await.unwrap();
    let vm = wait_for(&api, "his", Duration::from_secs(60), "addresses allocated", |v| cond(v, "AddressesAllocated").is_some_and(|c| c.0 == "True")).await.unwrap();
    let st = vm.status.clone().unwrap();
    let nic = &st.nics[0];
    let (v4, v6) = (nic.ipv4.clone().unwrap(), nic.ipv6.clone().unwrap());
    assert_eq!(cond(&vm, "QuotaAccepted").unwrap().0, "True");

    // The KubeVirt VirtualMachine: Multus bridge NIC with a stable MAC, cloud-init
    // network data with both addresses and gateways, the root and data disks.
    let vms: Api<DynamicObject> = Api::namespaced_with(client.clone(), &dept, &vm_resource());
    let kv = vms.get("his").await.unwrap();
    let spec = &kv.data["spec"]["template"]["spec"];
    assert_eq!(kv.data["spec"]["runStrategy"], "Always");
    assert_eq!(spec["domain"]["cpu"]["cores"], 2);
    assert_eq!(spec["domain"]["memory"]["guest"], "4Gi");
    assert_eq!(spec["networks"][0]["multus"]["networkName"], "pdc-zone-app");
    assert_eq!(spec["domain"]["devices"]["interfaces"][0]["macAddress"].as_str(), nic.mac.as_deref());
    let net = spec["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "cloudinit").unwrap()["cloudInitNoCloud"]["networkData"].as_str().unwrap().to_string();
    assert!(net.contains(&format!("{v4}/24")) && net.contains(&format!("{v6}/64")) && net.contains("via: \"10.15."), "{net}");
    let dvs: Api<DynamicObject> = Api::namespaced_with(client.clone(), &dept, &dv_resource());
    let root = dvs.get("his-root").await.unwrap();
    assert_eq!(root.data["spec"]["source"]["http"]["url"], "https://images.daklak.gov.vn/ubuntu-24.04.qcow2");
    assert_eq!(root.data["spec"]["storage"]["storageClassName"], "pdc-ssd");
    let data = dvs.get("his-data").await.unwrap();
    assert!(data.data["spec"]["source"]["blank"].is_object());
    assert_eq!(data.data["spec"]["storage"]["storageClassName"], "pdc-hdd");

    // CDI imports the image (its importer pod may reach the image server through the
    // department's network policies) and KubeVirt starts the VM once its disks have
    // Succeeded: Ready, and its FQDN answers with its addresses.
    let vm = wait_for(&api, "his", Duration::from_secs(60), "Ready", |v| cond(v, READY).is_some_and(|c| c.0 == "True")).await.unwrap();
    let st = vm.status.clone().unwrap();
    assert_eq!(st.phase.as_deref(), Some("Running"));
    let fqdn = st.fqdn.clone().unwrap();
    assert_eq!(fqdn, format!("his.{dept}.daklak.gov.vn."));
    let a = knot.dig(&fqdn, "A", true).unwrap();
    assert!(a.contains(&v4) && a.contains("RRSIG"), "{a}");
    assert!(knot.dig(&fqdn, "AAAA", false).unwrap().contains(&v6));
    let rev = pdc_core::ipam::Addr::parse(&v4).unwrap().reverse_name();
    let start = Instant::now();
    while !knot.dig(&rev, "PTR", false).unwrap().contains(&fqdn) {
        assert!(start.elapsed() < Duration::from_secs(60), "no PTR for {v4}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // pdcctl: the list and one VM; stop and start set KubeVirt's run strategy.
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["vm", "list", "-d", &dept]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("his") && out.contains("Running") && out.contains(&v4) && out.contains(&fqdn), "{out}");
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["vm", "show", "his", "-d", &dept]);
    assert!(code == 0 && out.contains("QuotaAccepted") && out.contains(&v6), "{out}");
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["vm", "stop", "his", "-d", &dept]);
    assert_eq!(code, 0, "{out}");
    let start = Instant::now();
    while vms.get("his").await.unwrap().data["spec"]["runStrategy"] != "Halted" {
        assert!(start.elapsed() < Duration::from_secs(60), "stop did not reach the VirtualMachine");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The stop is carried out (KubeVirt deletes the instance) before the start: a
    // start that came first would leave the old instance running.
    let vmis: Api<DynamicObject> = Api::namespaced_with(client.clone(), &dept, &vmi_resource());
    let start = Instant::now();
    while vmis.get_opt("his").await.unwrap().is_some() {
        assert!(start.elapsed() < Duration::from_secs(60), "the stopped VM's instance was not removed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    pdc_tests::pdcctl(&env.kubeconfig, &["vm", "start", "his", "-d", &dept]);

    let first_instance = wait_for(&vmis, "his", Duration::from_secs(60), "running again", |i| i.data["status"]["phase"] == "Running").await.unwrap().uid().unwrap();
    // Resize: the quota is charged again, the VM gets the new size, a restart is asked for.
    api.patch("his", &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"size": "m1.large"}}))).await.unwrap();
    let vm = wait_for(&api, "his", Duration::from_secs(60), "RestartRequired", |v| cond(v, "RestartRequired").is_some_and(|c| c.0 == "True")).await.unwrap();
    assert!(cond(&vm, "RestartRequired").unwrap().2.contains("m1.large"));
    assert_eq!(vms.get("his").await.unwrap().data["spec"]["template"]["spec"]["domain"]["cpu"]["cores"], 4);
    let d = Api::<Department>::all(client.clone()).get(&dept).await.unwrap();
    assert_eq!(d.status.unwrap().quota_ledger["vm/his"].vcpu, 4);
    // The addresses did not change.
    assert_eq!(vm.status.unwrap().nics[0].ipv4.as_deref(), Some(v4.as_str()));
    // A root disk cannot shrink (refused at the API).
    let e = api.patch("his", &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"rootDisk": {"size": "10Gi"}}}))).await.unwrap_err().to_string();
    assert!(e.contains("cannot shrink"), "{e}");
    // Restart: the running instance is replaced once, and runs with the new size.
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["vm", "restart", "his", "-d", &dept]);
    assert_eq!(code, 0, "{out}");
    // The new instance says the size it was started with; RestartRequired clears.
    let vm = wait_for(&api, "his", Duration::from_secs(60), "running as m1.large", |v| {
        v.status.as_ref().and_then(|s| s.running_size.as_deref()) == Some("m1.large")
    })
    .await
    .unwrap();
    assert_eq!(cond(&vm, "RestartRequired").unwrap().0, "False", "{:?}", vm.status);
    let instance = vmis.get("his").await.unwrap();
    assert_eq!(instance.annotations().get("pdc.io/size").map(String::as_str), Some("m1.large"));
    let start = Instant::now();
    while vmis.get_opt("his").await.unwrap().and_then(|i| i.uid()) == Some(first_instance.clone()) {
        assert!(start.elapsed() < Duration::from_secs(60), "the old instance was not replaced");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Once: the new instance is left alone.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(vmis.get("his").await.unwrap().uid(), instance.uid(), "the VM was restarted twice");

    // A data disk grows through its claim; the DataVolume's spec stays as CDI accepted it.
    let grown = serde_json::json!({"spec": {"disks": [{"name": "data", "size": "60Gi", "tier": "hdd"}]}});
    api.patch("his", &PatchParams::default(), &Patch::Merge(&grown)).await.unwrap();
    let pvcs: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> = Api::namespaced(client.clone(), &dept);
    wait_for(&pvcs, "his-data", Duration::from_secs(60), "the claim asks 60Gi", |p| {
        p.spec.as_ref().and_then(|s| s.resources.as_ref()).and_then(|r| r.requests.as_ref()).and_then(|r| r.get("storage")).is_some_and(|q| q.0 == "60Gi")
    })
    .await
    .unwrap();
    let v = wait_for(&api, "his", Duration::from_secs(60), "disks resized", |v| cond(v, "DisksResized").is_some_and(|c| c.0 == "True" && v.status.as_ref().and_then(|s| s.observed_generation) == v.metadata.generation)).await.unwrap();
    assert_eq!(cond(&v, READY).unwrap().0, "True");
    assert_eq!(dvs.get("his-data").await.unwrap().data["spec"]["storage"]["resources"]["requests"]["storage"], "50Gi");

    // Delete: VM, disks, claims and records go; the quota is released; DNS forgets it.
    api.delete("his", &DeleteParams::default()).await.unwrap();
    let start = Instant::now();
    while api.get_opt("his").await.unwrap().is_some() {
        assert!(start.elapsed() < Duration::from_secs(60), "the TenantVM was not removed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let lp = ListParams::default().labels("pdc.io/tenantvm=his");
    assert!(vms.list(&lp).await.unwrap().items.is_empty());
    assert!(dvs.list(&lp).await.unwrap().items.is_empty());
    assert!(Api::<AddressClaim>::namespaced(client.clone(), &dept).list(&lp).await.unwrap().items.is_empty());
    let start = Instant::now();
    while !Api::<DnsRecord>::namespaced(client.clone(), &dept).list(&lp).await.unwrap().items.is_empty() || knot.dig(&fqdn, "A", false).unwrap().contains(&v4) {
        assert!(start.elapsed() < Duration::from_secs(60), "the VM's records stayed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let d = Api::<Department>::all(client.clone()).get(&dept).await.unwrap();
    assert!(!d.status.unwrap().quota_ledger.contains_key("vm/his"));
}

#[tokio::test]
async fn fifty_vms_against_a_quota_of_ten() {
    let env = env();
    let client = env.client().await.unwrap();
    let dept = "so-tai-chinh".to_string();
    load_plan(&client, "app", 24, std::slice::from_ref(&dept)).await.unwrap();
    apply_yaml(&client, SIZES, None).await.unwrap();
    set_quota(&client, &dept, serde_json::json!({"vcpu": 100, "memory": "200Gi", "storage": {"ssd": "10Ti", "hdd": "10Ti"}, "vms": 10})).await;
    let api: Api<TenantVM> = Api::namespaced(client.clone(), &dept);
    futures::stream::iter(0..50)
        .map(|i| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), &tenant_vm(&format!("vm-{i:02}"), "m1.small", "app")).await.unwrap() }
        })
        .buffer_unordered(50)
        .collect::<Vec<_>>()
        .await;
    let start = Instant::now();
    let (admitted, refused) = loop {
        let items = api.list(&ListParams::default()).await.unwrap().items;
        let decided: Vec<_> = items.iter().filter_map(|v| cond(v, "QuotaAccepted")).collect();
        if decided.len() == 50 {
            break decided.into_iter().partition::<Vec<_>, _>(|c| c.0 == "True");
        }
        assert!(start.elapsed() < Duration::from_secs(90), "only {} of 50 decided", decided.len());
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(admitted.len(), 10, "exactly the quota is admitted");
    assert_eq!(refused.len(), 40);
    for c in &refused {
        assert!(c.2.contains("VMs: asks 1, 10 of 10 already in use, 1 over"), "{}", c.2);
    }
    let d = Api::<Department>::all(client.clone()).get(&dept).await.unwrap();
    assert_eq!(d.status.unwrap().quota_ledger.len(), 10);

    // Deleting an admitted VM frees its share: one waiting VM takes it.
    let items = api.list(&ListParams::default()).await.unwrap().items;
    let gone = items.iter().find(|v| cond(v, "QuotaAccepted").is_some_and(|c| c.0 == "True")).unwrap().name_any();
    api.delete(&gone, &DeleteParams::default()).await.unwrap();
    let start = Instant::now();
    loop {
        let items = api.list(&ListParams::default()).await.unwrap().items;
        let live: Vec<_> = items.iter().filter(|v| v.name_any() != gone).collect();
        let admitted = live.iter().filter(|v| cond(v, "QuotaAccepted").is_some_and(|c| c.0 == "True")).count();
        if admitted == 10 && live.len() == 49 {
            break;
        }
        assert!(admitted <= 10, "over-admitted: {admitted}");
        assert!(start.elapsed() < Duration::from_secs(60), "the freed share was not taken ({admitted} admitted)");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let d = Api::<Department>::all(client.clone()).get(&dept).await.unwrap();
    assert_eq!(d.status.unwrap().quota_ledger.len(), 10);

    // Metrics: the department's quota use against its limit, per resource.
    let used = format!("pdc_quota_used{{department=\"{dept}\",resource=\"vms\"}}");
    let start = Instant::now();
    let body = loop {
        let (_, body) = env.metrics_get("/metrics").unwrap();
        if pdc_tests::operator::metric_value(&body, &used) == 10.0 {
            break body;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{used} not 10");
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(pdc_tests::operator::metric_value(&body, &format!("pdc_quota_limit{{department=\"{dept}\",resource=\"vms\"}}")), 10.0);
    assert!(body.contains("pdc_tenantvms{phase="), "VMs by phase");
    pdc_tests::operator::promtool_check_metrics(&body).unwrap();
}

#[tokio::test]
async fn bad_requests_are_refused_with_a_reason() {
    let env = env();
    let client = env.client().await.unwrap();
    let dept = "so-xay-dung".to_string();
    load_plan(&client, "app", 24, std::slice::from_ref(&dept)).await.unwrap();
    apply_yaml(&client, SIZES, None).await.unwrap();
    set_quota(&client, &dept, serde_json::json!({"vcpu": 16, "memory": "32Gi", "storage": {"ssd": "500Gi", "hdd": "1Ti"}, "vms": 5})).await;
    let api: Api<TenantVM> = Api::namespaced(client.clone(), &dept);
    let pp = PostParams::default();

    // At the API: a hostname with diacritics, an image with two sources.
    let mut v = serde_json::to_value(tenant_vm("web", "m1.small", "app")).unwrap();
    v["spec"]["hostname"] = "cổng".into();
    let e = api.create(&pp, &serde_json::from_value(v).unwrap()).await.unwrap_err().to_string();
    assert!(e.contains("pdcctl slug"), "{e}");
    let mut v = serde_json::to_value(tenant_vm("web", "m1.small", "app")).unwrap();
    v["spec"]["image"]["registry"] = "docker://quay.io/containerdisks/ubuntu:24.04".into();
    let e = api.create(&pp, &serde_json::from_value(v).unwrap()).await.unwrap_err().to_string();
    assert!(e.contains("exactly one of url, registry or dataSource"), "{e}");
    // At the API, against the department (its namespace's zones) and the province (its
    // image libraries): a zone not the department's; another department's disk image.
    let e = api.create(&pp, &tenant_vm("dmz1", "m1.small", "dmz")).await.unwrap_err().to_string();
    assert!(e.contains(&format!("zone(s) dmz are not allowed for department {dept} (its zones: app)")), "{e}");
    let from = |source: &str| {
        let mut v = serde_json::to_value(tenant_vm("golden", "m1.small", "app")).unwrap();
        v["spec"]["image"] = serde_json::json!({"dataSource": source});
        serde_json::from_value::<TenantVM>(v).unwrap()
    };
    let e = api.create(&pp, &from("so-tai-chinh/ke-toan-db")).await.unwrap_err().to_string();
    assert!(e.contains("image.dataSource so-tai-chinh/ke-toan-db is in namespace so-tai-chinh") && e.contains("(pdc-images)"), "{e}");
    let dry = PostParams { dry_run: true, ..Default::default() };
    for ok in ["pdc-images/ubuntu-24.04", "ubuntu-24.04", &format!("{dept}/ubuntu-24.04")] {
        api.create(&dry, &from(ok)).await.unwrap_or_else(|e| panic!("{ok}: {e}"));
    }

    // An image CDI cannot import (the image server answers 404): CDI's importer keeps
    // failing and restarting; the VM says which disk and why.
    let mut noimg = tenant_vm("noimg", "m1.small", "app");
    noimg.spec.image.url = Some("https://images.daklak.gov.vn/missing/ubuntu.qcow2".into());
    api.create(&pp, &noimg).await.unwrap();
    let v = wait_for(&api, "noimg", Duration::from_secs(60), "DiskFailed", |v| cond(v, READY).is_some_and(|c| c.1 == "DiskFailed")).await.unwrap();
    assert!(cond(&v, READY).unwrap().2.contains("disk root: Unable to connect to http data source: expected status code 200, got 404"), "{:?}", cond(&v, READY));
    api.delete("noimg", &DeleteParams::default()).await.unwrap();
    let start = Instant::now();
    while api.get_opt("noimg").await.unwrap().is_some() {
        assert!(start.elapsed() < Duration::from_secs(60), "noimg was not removed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // By the operator: an unknown size, a tier the province lacks.
    api.create(&pp, &tenant_vm("big", "m9.huge", "app")).await.unwrap();
    let mut t = tenant_vm("tape", "m1.small", "app");
    t.spec.root_disk.tier = "tape".into();
    api.create(&pp, &t).await.unwrap();
    for (name, reason, words) in [("big", "UnknownSize", "m1.large, m1.small"), ("tape", "UnknownTier", "ssd, hdd")] {
        let vm = wait_for(&api, name, Duration::from_secs(60), reason, |v| cond(v, READY).is_some_and(|c| c.1 == reason)).await.unwrap();
        let msg = cond(&vm, READY).unwrap().2;
        assert!(msg.contains(words), "{name}: {msg}");
        // Nothing was made for it, and it holds no quota.
        let lp = ListParams::default().labels(&format!("pdc.io/tenantvm={name}"));
        assert!(Api::<AddressClaim>::namespaced(client.clone(), &dept).list(&lp).await.unwrap().items.is_empty());
    }
    let d = Api::<Department>::all(client.clone()).get(&dept).await.unwrap();
    assert!(d.status.unwrap().quota_ledger.is_empty());

    // pdcctl vm create waits, shows progress, and stops at a refusal with its reason.
    let (code, out) = pdc_tests::pdcctl(
        &env.kubeconfig,
        &["vm", "create", "cli", "-d", &dept, "--size", "m9.huge", "--image", "https://images.daklak.gov.vn/u.qcow2", "--zone", "app"],
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("m9.huge") && out.contains("is not a SizeClass"), "{out}");
}

#[tokio::test]
async fn volumes_grow_attach_detach_and_snapshot() {
    let env = env();
    let client = env.client().await.unwrap();
    let dept = "so-noi-vu".to_string();
    load_plan(&client, "app", 24, std::slice::from_ref(&dept)).await.unwrap();
    apply_yaml(&client, SIZES, None).await.unwrap();
    set_quota(&client, &dept, serde_json::json!({"vcpu": 8, "memory": "16Gi", "storage": {"ssd": "100Gi", "hdd": "100Gi"}, "vms": 2})).await;
    let vms: Api<TenantVM> = Api::namespaced(client.clone(), &dept);
    vms.create(&PostParams::default(), &tenant_vm("db", "m1.small", "app")).await.unwrap();
    wait_for(&vms, "db", Duration::from_secs(60), "addresses", |v| cond(v, "AddressesAllocated").is_some_and(|c| c.0 == "True")).await.unwrap();
    let kv: Api<DynamicObject> = Api::namespaced_with(client.clone(), &dept, &vm_resource());
    let dvs: Api<DynamicObject> = Api::namespaced_with(client.clone(), &dept, &dv_resource());
    let vols: Api<pdc_api::TenantVolume> = Api::namespaced(client.clone(), &dept);
    let vcond = |v: &pdc_api::TenantVolume, t: &str| v.status.as_ref().and_then(|s| conditions::find(&s.conditions, t)).map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()));
    let hotplugged = |o: &DynamicObject| {
        o.data["spec"]["template"]["spec"]["volumes"].as_array().into_iter().flatten().any(|v| v["dataVolume"]["name"] == "vol-data1" && v["dataVolume"]["hotpluggable"] == true)
    };

    // Created and attached with pdcctl: a DataVolume on the tier's class, a hotplug disk of the VM.
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["volume", "create", "data1", "-d", &dept, "--size", "30Gi", "--tier", "ssd", "--vm", "db"]);
    assert_eq!(code, 0, "{out}");
    wait_for(&vols, "data1", Duration::from_secs(60), "quota accepted", |v| vcond(v, "QuotaAccepted").is_some_and(|c| c.0 == "True")).await.unwrap();
    let dv = dvs.get("vol-data1").await.unwrap();
    assert_eq!(dv.data["spec"]["storage"]["storageClassName"], "pdc-ssd");
    assert_eq!(dv.data["spec"]["storage"]["resources"]["requests"]["storage"], "30Gi");
    wait_for(&kv, "db", Duration::from_secs(60), "hotplug disk", hotplugged).await.unwrap();
    wait_for(&vols, "data1", Duration::from_secs(60), "Ready", |v| vcond(v, READY).is_some_and(|c| c.0 == "True")).await.unwrap();

    // Grows through its claim (CDI refuses a DataVolume spec change); never shrinks
    // (refused at the API).
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["volume", "expand", "data1", "-d", &dept, "--size", "40Gi"]);
    assert_eq!(code, 0, "{out}");
    let pvcs: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> = Api::namespaced(client.clone(), &dept);
    let capacity = |p: &k8s_openapi::api::core::v1::PersistentVolumeClaim| p.status.as_ref().and_then(|s| s.capacity.as_ref()).and_then(|c| c.get("storage")).map(|q| q.0.clone());
    wait_for(&pvcs, "vol-data1", Duration::from_secs(60), "capacity 40Gi", |p| capacity(p).as_deref() == Some("40Gi")).await.unwrap();
    let v = wait_for(&vols, "data1", Duration::from_secs(60), "Provisioned at 40Gi", |v| vcond(v, READY).is_some_and(|c| c.1 == "Provisioned" && c.2.contains("40Gi"))).await.unwrap();
    assert_eq!(v.status.unwrap().observed_generation, v.metadata.generation);
    assert_eq!(dvs.get("vol-data1").await.unwrap().data["spec"]["storage"]["resources"]["requests"]["storage"], "30Gi", "the DataVolume's spec never changes");
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["volume", "expand", "data1", "-d", &dept, "--size", "10Gi"]);
    assert!(code != 0 && out.contains("cannot shrink"), "{out}");
    let d = Api::<Department>::all(client.clone()).get(&dept).await.unwrap();
    assert_eq!(d.status.unwrap().quota_ledger["volume/data1"].storage["ssd"], 40 << 30);

    // Over the ssd quota (20Gi root + 40Gi + 50Gi > 100Gi): refused with the numbers.
    let big: pdc_api::TenantVolume = serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "TenantVolume", "metadata": {"name": "big"}, "spec": {"size": "50Gi", "tier": "ssd"}
    }))
    .unwrap();
    vols.create(&PostParams::default(), &big).await.unwrap();
    let b = wait_for(&vols, "big", Duration::from_secs(60), "quota refused", |v| vcond(v, "QuotaAccepted").is_some_and(|c| c.0 == "False")).await.unwrap();
    assert!(vcond(&b, "QuotaAccepted").unwrap().2.contains("ssd storage: asks 50Gi, 60Gi of 100Gi already in use, 10Gi over"));
    assert!(dvs.get_opt("vol-big").await.unwrap().is_none(), "nothing made for a refused volume");

    // A snapshot of its claim.
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["volume", "snapshot", "data1", "-d", &dept, "--snapshot", "data1-before-upgrade"]);
    assert_eq!(code, 0, "{out}");
    let snaps: Api<DynamicObject> = Api::namespaced_with(client.clone(), &dept, &pdc_operator::compute::build::snapshot_resource());
    assert_eq!(snaps.get("data1-before-upgrade").await.unwrap().data["spec"]["source"]["persistentVolumeClaimName"], "vol-data1");

    // Detach, then delete: the hotplug disk leaves the VM, the DataVolume and its charge go.
    vols.patch("data1", &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"vm": null}}))).await.unwrap();
    wait_for(&kv, "db", Duration::from_secs(60), "hotplug disk removed", |o| !hotplugged(o)).await.unwrap();
    vols.delete("data1", &DeleteParams::default()).await.unwrap();
    let start = Instant::now();
    while vols.get_opt("data1").await.unwrap().is_some() || dvs.get_opt("vol-data1").await.unwrap().is_some() {
        assert!(start.elapsed() < Duration::from_secs(60), "the volume was not removed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let d = Api::<Department>::all(client.clone()).get(&dept).await.unwrap();
    assert!(!d.status.unwrap().quota_ledger.contains_key("volume/data1"));

    // A DR-protected VM takes no hot-plugged volume (its copy at the standby site would
    // start without it): the volume says why and what to do instead.
    let mut guarded = tenant_vm("guarded", "m1.small", "app");
    guarded.spec.dr_protected = true;
    vms.create(&PostParams::default(), &guarded).await.unwrap();
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["volume", "create", "logs", "-d", &dept, "--size", "10Gi", "--tier", "ssd", "--vm", "guarded"]);
    assert_eq!(code, 0, "{out}");
    let v = wait_for(&vols, "logs", Duration::from_secs(60), "not attached", |v| vcond(v, "Attached").is_some_and(|c| c.0 == "False")).await.unwrap();
    let (_, reason, msg) = vcond(&v, "Attached").unwrap();
    assert_eq!(reason, "DrProtected");
    assert!(msg.contains("spec.disks"), "{msg}");
    wait_for(&kv, "guarded", Duration::from_secs(60), "defined", |_| true).await.unwrap();
    let has_logs = |o: &DynamicObject| o.data["spec"]["template"]["spec"]["volumes"].as_array().into_iter().flatten().any(|v| v["dataVolume"]["name"] == "vol-logs");
    assert!(!has_logs(&kv.get("guarded").await.unwrap()), "hot-plugged into a protected VM");
}

/// What the real kube-controller-manager does with what pdc made: the ResourceQuota
/// counts the VMs and claims, and the garbage collector leaves `Retain` disks when
/// their VM goes (namespace deletion: the department test).
#[tokio::test]
async fn quota_usage_and_garbage_collection_are_real() {
    let env = env();
    let client = env.client().await.unwrap();
    let dept = "so-tu-phap".to_string();
    load_plan(&client, "app", 24, std::slice::from_ref(&dept)).await.unwrap();
    apply_yaml(&client, SIZES, None).await.unwrap();
    set_quota(&client, &dept, serde_json::json!({"vcpu": 16, "memory": "32Gi", "storage": {"ssd": "500Gi", "hdd": "1Ti"}, "vms": 5})).await;
    let api: Api<TenantVM> = Api::namespaced(client.clone(), &dept);
    let mut kept = tenant_vm("kept", "m1.small", "app");
    kept.spec.disk_deletion_policy = pdc_api::DiskDeletionPolicy::Retain;
    api.create(&PostParams::default(), &kept).await.unwrap();
    api.create(&PostParams::default(), &tenant_vm("gone", "m1.small", "app")).await.unwrap();
    // Running (its disks imported, KubeVirt started it); no DNS zone is needed here.
    for n in ["kept", "gone"] {
        wait_for(&api, n, Duration::from_secs(90), "Running", |v| v.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")).await.unwrap();
    }

    // The department's ResourceQuota counts both VirtualMachines and the four claims.
    let rqs: Api<k8s_openapi::api::core::v1::ResourceQuota> = Api::namespaced(client.clone(), &dept);
    let used = |q: &k8s_openapi::api::core::v1::ResourceQuota, k: &str| q.status.as_ref().and_then(|s| s.used.as_ref()).and_then(|u| u.get(k)).map(|v| v.0.clone());
    let q = match wait_for(&rqs, "pdc-guest-quota", Duration::from_secs(60), "usage counted", |q| used(q, "count/virtualmachines.kubevirt.io").as_deref() == Some("2")).await {
        Ok(q) => q,
        Err(_) => panic!("quota usage not counted: {:?}", rqs.get("pdc-guest-quota").await.unwrap().status),
    };
    assert_eq!(used(&q, "requests.storage").as_deref(), Some("140Gi"), "{:?}", q.status);
    assert_eq!(used(&q, "pdc-ssd.storageclass.storage.k8s.io/requests.storage").as_deref(), Some("40Gi"));

    // Retained disks have no owner: deleting their VM leaves them to the department.
    let dvs: Api<DynamicObject> = Api::namespaced_with(client.clone(), &dept, &dv_resource());
    assert!(dvs.get("kept-root").await.unwrap().metadata.owner_references.unwrap_or_default().is_empty());
    for n in ["kept", "gone"] {
        api.delete(n, &DeleteParams::default()).await.unwrap();
    }
    let start = Instant::now();
    while api.get_opt("kept").await.unwrap().is_some() || dvs.get_opt("gone-root").await.unwrap().is_some() {
        assert!(start.elapsed() < Duration::from_secs(60), "the VMs or the deleted disks stayed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The garbage collector has had its chance (it removed the VM's instance and the
    // deleted disks' claims): the retained disks and their claims are still there.
    let pvcs: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> = Api::namespaced(client.clone(), &dept);
    let start = Instant::now();
    while pvcs.get_opt("gone-root").await.unwrap().is_some() {
        assert!(start.elapsed() < Duration::from_secs(60), "the garbage collector did not remove the deleted disk's claim");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for d in ["kept-root", "kept-data"] {
        assert!(dvs.get_opt(d).await.unwrap().is_some(), "retained disk {d} was deleted");
        assert!(pvcs.get_opt(d).await.unwrap().is_some(), "the claim of retained disk {d} was deleted");
    }
}
