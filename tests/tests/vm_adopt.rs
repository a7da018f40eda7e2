//! Adopting VMs pdc did not make, on a real kube-apiserver with kube-controller-manager,
//! the operator under the chart's RBAC, the KubeVirt and CDI stand-ins and a real Knot
//! DNS: a running VirtualMachine made as another system would make it is taken over
//! by `pdcctl vm import` with its addresses, disks and names, and its instance is
//! never deleted; adoptions that would double-allocate an address or overrun the
//! quota are refused with nothing changed; a VM of the old hypervisor is recorded as
//! external and then moved onto KubeVirt with a CDI import, keeping its addresses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use pdc_api::conditions::{self, READY};
use pdc_api::{AddressAllocation, AddressClaim, Department, DnsRecord, NetworkZone, TenantVM};
use pdc_core::ipam::{Addr, Family, HostPool, Prefix};
use pdc_operator::compute::build::{dv_resource, vm_resource, vmi_resource};
use pdc_tests::addressing::load_plan;
use pdc_tests::cluster::{apply_yaml, shared_env, wait_for};
use pdc_tests::dns::{KnotServer, register_zones};

const SIZES: &str = "apiVersion: pdc.io/v1alpha1\nkind: SizeClass\nmetadata: {name: m1.small}\nspec: {vcpu: 2, memory: 4Gi}\n---\n\
apiVersion: pdc.io/v1alpha1\nkind: SizeClass\nmetadata: {name: m1.large}\nspec: {vcpu: 4, memory: 8Gi}\n";

fn cond(vm: &TenantVM, t: &str) -> Option<(String, String, String)> {
    let c = conditions::find(&vm.status.as_ref()?.conditions, t)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// The department's subnets in zone app and the address pair at host `h` there.
async fn pair(client: &Client, dept: &str, h: u128) -> (String, String) {
    let d = Api::<Department>::all(client.clone()).get(dept).await.unwrap();
    let s = d.status.unwrap().subnets.into_iter().find(|s| s.zone == "app").unwrap();
    let z = Api::<NetworkZone>::all(client.clone()).get("app").await.unwrap();
    let pool = HostPool::new(Some(Prefix::parse(s.ipv4.as_deref().unwrap()).unwrap()), Some(Prefix::parse(s.ipv6.as_deref().unwrap()).unwrap()), u128::try_from(z.spec.reserved_hosts.max(1)).unwrap()).unwrap();
    (pool.address(Family::V4, h).unwrap().to_string(), pool.address(Family::V6, h).unwrap().to_string())
}

/// Create `o`; the department's ResourceQuota refuses creations until the quota
/// controller has counted the namespace ("status unknown for quota"): try again.
async fn create(api: &Api<DynamicObject>, pp: &PostParams, o: &DynamicObject) {
    let start = std::time::Instant::now();
    loop {
        match api.create(pp, o).await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("status unknown for quota") && start.elapsed() < Duration::from_secs(120) => {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("creating {}: {e}", o.name_any()),
        }
    }
}

/// A VM as another system makes it: a DataVolume of its own naming, a pod-network
/// NIC and a bridge NIC on the zone's network, 2 vCPU as two sockets, run strategy
/// Always; once KubeVirt runs it, its guest agent reports `addrs` on the bridge NIC.
async fn foreign_vm(client: &Client, ns: &str, name: &str, addrs: &[&str], deprecated_running: bool) -> DynamicObject {
    let pp = PostParams { field_manager: Some("legacy-provisioner".into()), ..Default::default() };
    let dvs: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &dv_resource());
    let mut dv = DynamicObject::new(&format!("{name}-os"), &dv_resource()).within(ns);
    dv.data = serde_json::json!({"spec": {"source": {"blank": {}}, "storage": {"resources": {"requests": {"storage": "30Gi"}}, "storageClassName": "pdc-ssd", "accessModes": ["ReadWriteOnce"]}}});
    create(&dvs, &pp, &dv).await;
    let vms: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &vm_resource());
    let mut vm = DynamicObject::new(name, &vm_resource()).within(ns);
    vm.data = serde_json::json!({"spec": {"runStrategy": "Always", "template": {"metadata": {"labels": {"app": "legacy"}}, "spec": {
        "hostname": name,
        "domain": {"cpu": {"sockets": 2, "cores": 1}, "memory": {"guest": "4Gi"},
                   "devices": {"disks": [{"name": "os", "bootOrder": 1, "disk": {"bus": "virtio"}}],
                               "interfaces": [{"name": "default", "masquerade": {}}, {"name": "lan", "bridge": {}, "macAddress": "02:aa:00:00:00:01"}]}},
        "networks": [{"name": "default", "pod": {}}, {"name": "lan", "multus": {"networkName": "pdc-zone-app"}}],
        "volumes": [{"name": "os", "dataVolume": {"name": format!("{name}-os")}}]
    }}}});
    if deprecated_running {
        // An older tool's VM: `running: true`, which KubeVirt refuses beside a run strategy.
        let spec = vm.data["spec"].as_object_mut().unwrap();
        spec.remove("runStrategy");
        spec.insert("running".into(), serde_json::json!(true));
    }
    create(&vms, &pp, &vm).await;
    let vmis: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &vmi_resource());
    let vmi = wait_for(&vmis, name, Duration::from_secs(60), "running", |i| i.data["status"]["phase"] == "Running").await.unwrap();
    let mut ips = vec!["fe80::aa:ff:fe00:1".to_string()];
    ips.extend(addrs.iter().map(|a| a.to_string()));
    let st = serde_json::json!({"status": {"interfaces": [
        {"name": "default", "ipAddress": "10.244.1.5", "ipAddresses": ["10.244.1.5"], "mac": "02:00:00:aa:bb:cc"},
        {"name": "lan", "ipAddresses": ips, "mac": "02:aa:00:00:00:01", "interfaceName": "eth1"}
    ]}});
    vmis.patch_status(name, &PatchParams::default(), &Patch::Merge(&st)).await.unwrap();
    vmi
}

/// Every deletion of a VMI in `ns` and every VMI UID seen, while the test runs.
fn watch_instances(client: &Client, ns: &str) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &vmi_resource());
    let s = seen.clone();
    tokio::spawn(async move {
        let mut w = watcher(api, watcher::Config::default()).boxed();
        while let Some(e) = w.next().await {
            let mut s = s.lock().unwrap();
            match e {
                Ok(watcher::Event::Delete(o)) => s.push(format!("deleted {} {}", o.name_any(), o.uid().unwrap_or_default())),
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) if o.metadata.deletion_timestamp.is_some() => s.push(format!("deleting {}", o.name_any())),
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => s.push(format!("uid {} {}", o.name_any(), o.uid().unwrap_or_default())),
                _ => {}
            }
        }
    });
    seen
}

#[tokio::test]
async fn running_vms_are_adopted_without_a_restart_and_external_ones_recorded() {
    let env = shared_env(true).unwrap_or_else(|e| panic!("test environment: {e}"));
    let client = env.client().await.unwrap();
    let dept = "so-noi-vu".to_string();
    load_plan(&client, "app", 24, std::slice::from_ref(&dept)).await.unwrap();
    apply_yaml(&client, SIZES, None).await.unwrap();
    let quota = serde_json::json!({"spec": {"quota": {"vcpu": 16, "memory": "32Gi", "storage": {"ssd": "500Gi", "hdd": "1Ti"}, "vms": 5}}});
    Api::<Department>::all(client.clone()).patch(&dept, &PatchParams::default(), &Patch::Merge(&quota)).await.unwrap();
    let knot = KnotServer::start(&env.dir, &["daklak.gov.vn", "15.10.in-addr.arpa"]).unwrap();
    register_zones(&client, &knot, "vm-adopt-tsig").await.unwrap();
    let instances = watch_instances(&client, &dept);

    let legacy_uid = adopt_running(env, &client, &dept, &knot).await;
    refusals(env, &client, &dept).await;
    external_then_moved(env, &client, &dept).await;

    // The adopted VM's instance was never deleted, nor replaced, during the whole test.
    let seen = instances.lock().unwrap().clone();
    assert!(!seen.iter().any(|e| e.starts_with("delet") && e.contains("legacy")), "{seen:?}");
    assert!(seen.iter().filter(|e| e.starts_with("uid legacy ")).all(|e| e.ends_with(&legacy_uid)), "{seen:?}");
}

/// `pdcctl vm import` of a running VM: its addresses are claimed, its disk and size
/// charged, its names declared, and its instance keeps running.
async fn adopt_running(env: &pdc_tests::cluster::TestEnv, client: &Client, dept: &str, knot: &KnotServer) -> String {
    let (v4, v6) = pair(client, dept, 50).await;
    let vmi = foreign_vm(client, dept, "legacy", &[&v4, &v6], false).await;
    let uid = vmi.uid().unwrap();
    // A dry run shows what would be claimed and changes nothing.
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["vm", "import", "legacy", "-d", dept, "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&v4) && out.contains(&v6) && out.contains("m1.small") && out.contains("30Gi") && out.contains("02:aa:00:00:00:01"), "{out}");
    let api: Api<TenantVM> = Api::namespaced(client.clone(), dept);
    assert!(api.get_opt("legacy").await.unwrap().is_none());
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["vm", "import", "legacy", "-d", dept, "--yes"]);
    assert_eq!(code, 0, "{out}");
    let tvm = api.get("legacy").await.unwrap();
    assert!(cond(&tvm, READY).is_some_and(|c| c.0 == "True"), "{:?}", tvm.status);
    let st = tvm.status.clone().unwrap();
    assert_eq!((st.phase.as_deref(), st.nics[0].ipv4.as_deref(), st.nics[0].ipv6.as_deref()), (Some("Running"), Some(v4.as_str()), Some(v6.as_str())));
    assert_eq!(st.nics[0].mac.as_deref(), Some("02:aa:00:00:00:01"));
    assert_eq!(cond(&tvm, "RestartRequired").unwrap().0, "False");
    // The claim holds exactly its addresses.
    let claim = Api::<AddressClaim>::namespaced(client.clone(), dept).get("legacy-nic0").await.unwrap();
    let cs = claim.status.unwrap();
    assert_eq!((cs.ipv4.unwrap().address, cs.ipv6.unwrap().address), (v4.clone(), v6.clone()));
    let allocs: Api<AddressAllocation> = Api::all(client.clone());
    for a in [&v4, &v6] {
        let al = allocs.get(&Addr::parse(a).unwrap().object_name()).await.unwrap();
        assert_eq!((al.spec.claim.namespace.as_str(), al.spec.claim.name.as_str()), (dept, "legacy-nic0"));
    }
    // Quota: 2 vCPU, 4Gi and the 30Gi disk on ssd.
    let d = Api::<Department>::all(client.clone()).get(dept).await.unwrap();
    let charge = d.status.unwrap().quota_ledger["vm/legacy"].clone();
    assert_eq!((charge.vcpu, charge.memory, charge.storage["ssd"], charge.vms), (2, 4 << 30, 30 << 30, 1));
    // Names: A and AAAA, answering on the DNS server.
    let recs = Api::<DnsRecord>::namespaced(client.clone(), dept);
    assert_eq!(recs.get("legacy-a").await.unwrap().spec.values, vec![v4.clone()]);
    let fqdn = st.fqdn.clone().unwrap();
    assert!(knot.dig(&fqdn, "A", false).unwrap().contains(&v4));
    // pdc owns the VM and its disk; the template the instance runs is as it was.
    let kv = Api::<DynamicObject>::namespaced_with(client.clone(), dept, &vm_resource()).get("legacy").await.unwrap();
    assert_eq!(kv.owner_references()[0].uid, tvm.uid().unwrap());
    assert_eq!(kv.data["spec"]["template"]["spec"]["domain"]["cpu"], serde_json::json!({"sockets": 2, "cores": 1}));
    assert_eq!(kv.data["spec"]["template"]["spec"]["volumes"][0]["dataVolume"]["name"], "legacy-os");
    let dv = Api::<DynamicObject>::namespaced_with(client.clone(), dept, &dv_resource()).get("legacy-os").await.unwrap();
    assert_eq!(dv.labels().get("pdc.io/tenantvm").map(String::as_str), Some("legacy"));
    let vmis: Api<DynamicObject> = Api::namespaced_with(client.clone(), dept, &vmi_resource());
    let now = vmis.get("legacy").await.unwrap();
    assert_eq!((now.uid().unwrap(), &now.data["spec"]), (uid.clone(), &vmi.data["spec"]));
    assert!(kv.data["status"]["conditions"].as_array().unwrap().iter().all(|c| c["type"] != "RestartRequired"), "{}", kv.data["status"]);

    // Another claim in the zone never gets those addresses: asked for, refused; not
    // asked for, another.
    let claims: Api<AddressClaim> = Api::namespaced(client.clone(), dept);
    let mut squat = pdc_tests::addressing::claim("squatter", "app");
    squat.spec.ipv4_address = Some(v4.clone());
    claims.create(&PostParams::default(), &squat).await.unwrap();
    let c = wait_for(&claims, "squatter", Duration::from_secs(30), "refused", |c| c.status.as_ref().is_some_and(|s| conditions::find(&s.conditions, READY).is_some_and(|r| r.reason == "AddressTaken"))).await.unwrap();
    assert!(c.status.unwrap().ipv4.is_none());
    claims.create(&PostParams::default(), &pdc_tests::addressing::claim("other", "app")).await.unwrap();
    let o = wait_for(&claims, "other", Duration::from_secs(30), "bound", |c| c.status.as_ref().is_some_and(|s| s.ipv4.is_some())).await.unwrap();
    assert_ne!(o.status.unwrap().ipv4.unwrap().address, v4);

    // A TenantVolume attached to it is hot-plugged into the running instance, as into
    // any TenantVM; the VM's own disks stay.
    let vol: pdc_api::TenantVolume = serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "TenantVolume", "metadata": {"name": "scans"}, "spec": {"size": "10Gi", "tier": "ssd", "vm": "legacy"}
    }))
    .unwrap();
    Api::<pdc_api::TenantVolume>::namespaced(client.clone(), dept).create(&PostParams::default(), &vol).await.unwrap();
    let hot = |v: &serde_json::Value| v.as_array().into_iter().flatten().any(|v| v["dataVolume"]["name"] == "vol-scans" && v["dataVolume"]["hotpluggable"] == true);
    let i = wait_for(&vmis, "legacy", Duration::from_secs(60), "the volume hot-plugged", |i| hot(&i.data["spec"]["volumes"])).await.unwrap();
    assert_eq!(i.uid().unwrap(), uid);
    assert!(i.data["spec"]["volumes"].as_array().unwrap().iter().any(|v| v["dataVolume"]["name"] == "legacy-os"));
    let kv = Api::<DynamicObject>::namespaced_with(client.clone(), dept, &vm_resource()).get("legacy").await.unwrap();
    assert!(kv.data["status"]["conditions"].as_array().unwrap().iter().all(|c| c["type"] != "RestartRequired"), "{}", kv.data["status"]);

    // A resize waits for a restart the user asks for: the template changes, the instance does not.
    api.patch("legacy", &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"size": "m1.large"}}))).await.unwrap();
    let t = wait_for(&api, "legacy", Duration::from_secs(30), "RestartRequired", |v| cond(v, "RestartRequired").is_some_and(|c| c.0 == "True")).await.unwrap();
    assert!(cond(&t, "RestartRequired").unwrap().2.contains("2 vCPU and 4Gi memory, as adopted"), "{:?}", cond(&t, "RestartRequired"));
    let kv = Api::<DynamicObject>::namespaced_with(client.clone(), dept, &vm_resource()).get("legacy").await.unwrap();
    assert_eq!(kv.data["spec"]["template"]["spec"]["domain"]["cpu"]["cores"], 4);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(vmis.get("legacy").await.unwrap().uid().unwrap(), uid);
    uid
}

/// The ledger entry and claim a refused adoption must not have made, and the VM's
/// owners it must not have changed.
async fn assert_untouched(client: &Client, dept: &str, name: &str) {
    let d = Api::<Department>::all(client.clone()).get(dept).await.unwrap();
    assert!(!d.status.unwrap().quota_ledger.contains_key(&format!("vm/{name}")));
    assert!(Api::<AddressClaim>::namespaced(client.clone(), dept).get_opt(&format!("{name}-nic0")).await.unwrap().is_none());
    let kv = Api::<DynamicObject>::namespaced_with(client.clone(), dept, &vm_resource()).get(name).await.unwrap();
    assert!(kv.metadata.owner_references.is_none() && !kv.labels().contains_key("pdc.io/tenantvm"), "{:?}", kv.metadata);
}

/// Apply `v`, wait for its refusal with `reason`, check nothing changed, delete it.
async fn refused(client: &Client, dept: &str, v: &TenantVM, reason: &str, says: &str) {
    let api: Api<TenantVM> = Api::namespaced(client.clone(), dept);
    api.create(&PostParams::default(), v).await.unwrap();
    let name = v.name_any();
    let got = wait_for(&api, &name, Duration::from_secs(30), reason, |t| cond(t, READY).is_some_and(|c| c.1 == reason)).await.unwrap();
    assert!(cond(&got, READY).unwrap().2.contains(says), "{:?}", cond(&got, READY));
    assert_untouched(client, dept, &name).await;
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    let start = std::time::Instant::now();
    while api.get_opt(&name).await.unwrap().is_some() {
        assert!(start.elapsed() < Duration::from_secs(30), "{name} not deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The foreign VM is still there and still runs.
    assert_untouched(client, dept, &name).await;
}

/// Adoptions that would overrun the quota or take an address someone holds.
async fn refusals(env: &pdc_tests::cluster::TestEnv, client: &Client, dept: &str) {
    let (v4, _) = pair(client, dept, 60).await;
    foreign_vm(client, dept, "ledger", &[&v4], true).await;
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["vm", "import", "ledger", "-d", dept, "--dry-run", "-o", "json"]);
    assert_eq!(code, 0, "{out}");
    let v: TenantVM = serde_json::from_str(&out).unwrap();
    assert_eq!(v.spec.nics[0].ipv4.as_deref(), Some(v4.as_str()));
    // Over the quota's 16 vCPU.
    let mut big = v.clone();
    big.spec.size = "m1.huge".into();
    apply_yaml(client, "apiVersion: pdc.io/v1alpha1\nkind: SizeClass\nmetadata: {name: m1.huge}\nspec: {vcpu: 16, memory: 8Gi}\n", None).await.unwrap();
    refused(client, dept, &big, "QuotaExceeded", "vCPU").await;
    // Held by another claim.
    let claims: Api<AddressClaim> = Api::namespaced(client.clone(), dept);
    let mut holder = pdc_tests::addressing::claim("holder", "app");
    holder.spec.ipv4_address = Some(v4.clone());
    holder.spec.families = pdc_api::IpFamilies::IPv4;
    claims.create(&PostParams::default(), &holder).await.unwrap();
    wait_for(&claims, "holder", Duration::from_secs(30), "bound", |c| c.status.as_ref().is_some_and(|s| s.ipv4.is_some())).await.unwrap();
    refused(client, dept, &v, "AddressTaken", &format!("{v4} is already allocated to AddressClaim {dept}/holder")).await;
    claims.delete("holder", &DeleteParams::default()).await.unwrap();
    // Held outside pdc, as an address of the declared plan.
    let allocs: Api<AddressAllocation> = Api::all(client.clone());
    let name = Addr::parse(&v4).unwrap().object_name();
    let start = std::time::Instant::now();
    while allocs.get_opt(&name).await.unwrap().is_some() {
        assert!(start.elapsed() < Duration::from_secs(30), "holder's allocation not released");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ext: AddressAllocation = serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "AddressAllocation", "metadata": {"name": name, "labels": {"pdc.io/external": "true"}},
        "spec": {"address": v4, "subnet": "10.15.0.0/16", "zone": "app", "site": "daklak", "department": "", "claim": {"namespace": "", "name": "", "uid": ""},
                 "external": {"role": "server", "plan": "plan.yaml"}}
    }))
    .unwrap();
    allocs.create(&PostParams::default(), &ext).await.unwrap();
    refused(client, dept, &v, "AddressTaken", "held outside pdc as an external address").await;
    allocs.delete(&name, &DeleteParams::default()).await.unwrap();

    // Released, the VM is adopted; it keeps its deprecated `running` (pdc writes no
    // run strategy beside it, which KubeVirt would refuse).
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["vm", "import", "ledger", "-d", dept, "--yes"]);
    assert_eq!(code, 0, "{out}");
    let kv = Api::<DynamicObject>::namespaced_with(client.clone(), dept, &vm_resource()).get("ledger").await.unwrap();
    assert_eq!((&kv.data["spec"]["running"], kv.data["spec"].get("runStrategy")), (&serde_json::json!(true), None));
    assert_eq!(kv.labels().get("pdc.io/tenantvm").map(String::as_str), Some("ledger"));
}

/// A VM of the old hypervisor: recorded as external (addresses held, quota charged,
/// names declared, no VirtualMachine), then moved with a CDI import of its image.
async fn external_then_moved(env: &pdc_tests::cluster::TestEnv, client: &Client, dept: &str) {
    let (v4, v6) = pair(client, dept, 70).await;
    let args = ["vm", "import", "erp", "-d", dept, "--external", "--size", "m1.small", "--address", &v4, "--address", &v6, "--mac", "02:BB:00:00:00:07", "--root", "40Gi:hdd", "--yes"];
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &args);
    assert_eq!(code, 0, "{out}");
    let api: Api<TenantVM> = Api::namespaced(client.clone(), dept);
    let t = api.get("erp").await.unwrap();
    assert_eq!((t.status.as_ref().unwrap().phase.as_deref(), cond(&t, READY).unwrap().1.as_str()), (Some("External"), "External"));
    let vms: Api<DynamicObject> = Api::namespaced_with(client.clone(), dept, &vm_resource());
    assert!(vms.get_opt("erp").await.unwrap().is_none());
    let d = Api::<Department>::all(client.clone()).get(dept).await.unwrap();
    assert_eq!(d.status.unwrap().quota_ledger["vm/erp"].storage["hdd"], 40 << 30);
    let claim = Api::<AddressClaim>::namespaced(client.clone(), dept).get("erp-nic0").await.unwrap();
    let claim_uid = claim.uid().unwrap();
    assert_eq!(claim.status.unwrap().ipv4.unwrap().address, v4);
    assert_eq!(Api::<DnsRecord>::namespaced(client.clone(), dept).get("erp-aaaa").await.unwrap().spec.values, vec![v6.clone()]);

    // The move: its root disk is imported from the exported image; it keeps its addresses.
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["vm", "import", "erp", "-d", dept, "--from-image", "https://images.daklak.gov.vn/export/erp.qcow2", "--yes"]);
    assert_eq!(code, 0, "{out}");
    let t = api.get("erp").await.unwrap();
    assert_eq!(t.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
    assert_eq!(t.status.as_ref().unwrap().nics[0].ipv4.as_deref(), Some(v4.as_str()));
    let dv = Api::<DynamicObject>::namespaced_with(client.clone(), dept, &dv_resource()).get("erp-root").await.unwrap();
    assert_eq!(dv.data["spec"]["source"]["http"]["url"], "https://images.daklak.gov.vn/export/erp.qcow2");
    let kv = vms.get("erp").await.unwrap();
    let net = kv.data["spec"]["template"]["spec"]["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "cloudinit").unwrap()["cloudInitNoCloud"]["networkData"].as_str().unwrap().to_string();
    assert!(net.contains(&format!("{v4}/24")) && net.contains(&format!("{v6}/64")), "{net}");
    // The guest keeps the MAC it had on the old hypervisor.
    assert_eq!(kv.data["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]["macAddress"], "02:bb:00:00:00:07");
    // The same claim holds the same addresses throughout.
    let claim = Api::<AddressClaim>::namespaced(client.clone(), dept).get("erp-nic0").await.unwrap();
    assert_eq!((claim.uid().unwrap(), claim.status.unwrap().ipv6.unwrap().address), (claim_uid, v6));
}
