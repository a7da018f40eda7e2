//! A reorganization carried out on a real kube-apiserver with the operator, the
//! KubeVirt, CDI and CSI-snapshot stand-ins, and a real Knot signing the zone:
//! communes merge into a new one (a VM, a standalone volume and a standalone claim
//! with a name move to it), a district unit dissolves. A prober asks every name
//! that must keep answering every 200 ms during the whole act; old names end up
//! answering through a signed DNAME of the new subdomain where every name of a unit
//! moved, and with signed CNAMEs where one did not or where a set pdc does not own
//! lies below the old subdomain (which stays untouched), VMs not kept are halted with their disks archived,
//! the district's volume is archived, and after the (shortened) transition and
//! retention the aliases go and the addresses are held back for the cool-down.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use pdc_api::conditions;
use pdc_api::{AddressAllocation, AddressClaim, Department, DnsRecord, Reorganization, TenantVM, TenantVolume};
use pdc_tests::addressing::{claim, load_plan};
use pdc_tests::cluster::{apply_yaml, shared_env, unique, wait_for};
use pdc_tests::dns::{KnotServer, register_zones};

use pdc_tests::acts::SIZES;

fn tenant_vm(name: &str) -> TenantVM {
    pdc_tests::acts::small_vm(name).unwrap()
}

fn record(name: &str, value: &str) -> DnsRecord {
    let obj = if name == "@" { "apex".to_string() } else { name.to_string() };
    serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "DnsRecord", "metadata": {"name": obj},
        "spec": {"name": name, "type": "A", "values": [value]}
    }))
    .unwrap()
}

async fn set_quota(client: &Client, dept: &str, vms: i32) {
    pdc_tests::acts::set_quota(client, dept, vms).await.unwrap();
}

fn volume(name: &str) -> TenantVolume {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "TenantVolume", "metadata": {"name": name}, "spec": {"size": "10Gi", "tier": "ssd"}
    }))
    .unwrap()
}

fn ready(conds: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>) -> bool {
    conds.and_then(|c| conditions::find(c, "Ready")).is_some_and(|c| c.status == "True")
}

fn dv_resource() -> kube::api::ApiResource {
    kube::api::ApiResource::from_gvk_with_plural(&kube::api::GroupVersionKind::gvk("cdi.kubevirt.io", "v1beta1", "DataVolume"), "datavolumes")
}

fn snapshot_resource() -> kube::api::ApiResource {
    kube::api::ApiResource::from_gvk_with_plural(&kube::api::GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshot"), "volumesnapshots")
}

fn programmed(r: &DnsRecord) -> bool {
    r.status.as_ref().and_then(|s| conditions::find(&s.conditions, "Programmed")).is_some_and(|c| c.status == "True")
}

fn phase(a: &Reorganization) -> Option<String> {
    a.status.as_ref().and_then(|s| s.phase.clone())
}

fn steps(a: &Reorganization) -> String {
    a.status.iter().flat_map(|s| s.steps.iter().map(|x| format!("{}={} ({})", x.name, x.state, x.message))).collect::<Vec<_>>().join("; ")
}

/// Asks each name for A every 200 ms until stopped; every answer that is not
/// NOERROR with at least one record is a lost answer: (name, rcode) each time.
fn prober(addr: SocketAddr, names: Vec<String>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(usize, Vec<(String, String)>)> {
    tokio::spawn(async move {
        let server = pdc_dns::Server::new(addr);
        let (mut asked, mut lost) = (0, Vec::new());
        let t0 = std::time::Instant::now();
        while !stop.load(Ordering::SeqCst) {
            for n in &names {
                asked += 1;
                let at = t0.elapsed().as_millis();
                match answer(&server, n).await {
                    Ok(()) => {}
                    Err(why) => lost.push((n.clone(), format!("{why} at {at} ms"))),
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        (asked, lost)
    })
}

/// Whether `name` answers A with at least one record (a CNAME counts).
async fn answer(server: &pdc_dns::Server, name: &str) -> Result<(), String> {
    match pdc_dns::query(server, name, "A", false).await {
        Ok(a) if a.rcode == "No Error" || a.rcode == "NoError" => {
            if a.records.is_empty() { Err("NODATA".into()) } else { Ok(()) }
        }
        Ok(a) => Err(a.rcode),
        Err(e) => Err(e.to_string()),
    }
}

async fn wait_phase(acts: &Api<Reorganization>, name: &str, want: &str, secs: u64) -> Reorganization {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let a = acts.get(name).await.unwrap();
        if phase(&a).as_deref() == Some(want) {
            return a;
        }
        assert!(std::time::Instant::now() < deadline, "{name} did not reach {want}: phase {:?}, steps {}", phase(&a), steps(&a));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The units, names and act of a reorganization and the prober watching it.
struct World {
    xa_a: String,
    xa_b: String,
    xa_c: String,
    huyen: String,
    so: String,
    /// A department renamed to a new slug, and that slug.
    so_f: String,
    so_g: String,
    successor: String,
    name: String,
    today: String,
    names: Vec<String>,
    stop: Arc<AtomicBool>,
    probe: tokio::task::JoinHandle<(usize, Vec<(String, String)>)>,
}

fn sub(u: &str) -> String {
    format!("{u}.daklak.gov.vn")
}

/// Three communes (a VM kept, portals, a web name; a standalone volume and a
/// standalone claim with a name) and a district (a VM, a claim, a volume) running,
/// their names answering and probed, and the act planned.
async fn world(client: &Client, dir: &std::path::Path, knot: &KnotServer) -> World {
    let client = client.clone();
    let [xa_a, xa_b, xa_c, huyen, so, so_f, so_g] = ["xa-a", "xa-b", "xa-c", "huyen-d", "so-e", "so-f", "so-g"].map(unique);
    let units = vec![xa_a.clone(), xa_b.clone(), xa_c.clone(), huyen.clone(), so.clone(), so_f.clone()];
    load_plan(&client, "app", 24, &units).await.unwrap();
    apply_yaml(&client, SIZES, None).await.unwrap();
    for u in [&xa_a, &huyen] {
        set_quota(&client, u, 2).await;
    }
    set_quota(&client, &xa_b, 1).await;
    set_quota(&client, &so_f, 1).await;
    register_zones(&client, knot, "reorg-tsig").await.unwrap();

    // What runs: a VM in a merged commune and one in the district; portals and a
    // web name; a claim in the district.
    for (u, vm) in [(&xa_a, "mot"), (&huyen, "hai"), (&so_f, "ba")] {
        Api::<TenantVM>::namespaced(client.clone(), u).create(&PostParams::default(), &tenant_vm(vm)).await.unwrap();
    }
    for (u, name, v) in [(&xa_a, "@", "10.15.9.1"), (&xa_b, "@", "10.15.9.2"), (&xa_b, "www", "10.15.9.3"), (&so, "@", "10.15.9.5"), (&so_f, "@", "10.15.9.6"), (&so_f, "www", "10.15.9.7")] {
        Api::<DnsRecord>::namespaced(client.clone(), u).create(&PostParams::default(), &record(name, v)).await.unwrap();
    }
    Api::<AddressClaim>::namespaced(client.clone(), &huyen).create(&PostParams::default(), &claim("camera", "app")).await.unwrap();
    // A set pdc does not own below a merged commune's subdomain: a DNAME there would
    // hide it, so that commune's names answer as CNAMEs instead.
    knot.update(&format!("zone daklak.gov.vn.\nupdate add ngoai.{}. 300 TXT \"not pdc's\"", sub(&xa_b))).unwrap();
    // A commune's own data: a volume no VM uses, and a claimed address with a name.
    Api::<TenantVolume>::namespaced(client.clone(), &xa_b).create(&PostParams::default(), &volume("du-lieu")).await.unwrap();
    Api::<TenantVolume>::namespaced(client.clone(), &huyen).create(&PostParams::default(), &volume("luu-tru")).await.unwrap();
    // A volume hot-plugged into the VM the merge keeps: it goes with the VM.
    let mut data = volume("mot-data");
    data.spec.vm = Some("mot".into());
    Api::<TenantVolume>::namespaced(client.clone(), &xa_a).create(&PostParams::default(), &data).await.unwrap();
    let claims_b: Api<AddressClaim> = Api::namespaced(client.clone(), &xa_b);
    claims_b.create(&PostParams::default(), &claim("camera", "app")).await.unwrap();
    let cam = wait_for(&claims_b, "camera", Duration::from_secs(60), "bound", pdc_tests::addressing::bound).await.unwrap();
    let cam_v4 = cam.status.unwrap().ipv4.unwrap().address;
    Api::<DnsRecord>::namespaced(client.clone(), &xa_b).create(&PostParams::default(), &record("camera", &cam_v4)).await.unwrap();
    for (u, v) in [(&xa_b, "du-lieu"), (&huyen, "luu-tru"), (&xa_a, "mot-data")] {
        let vols: Api<TenantVolume> = Api::namespaced(client.clone(), u);
        wait_for(&vols, v, Duration::from_secs(60), "ready", |x| ready(x.status.as_ref().map(|s| &s.conditions))).await.unwrap();
    }
    let names = vec![
        sub(&xa_a),
        sub(&xa_b),
        format!("www.{}", sub(&xa_b)),
        format!("camera.{}", sub(&xa_b)),
        format!("mot.{}", sub(&xa_a)),
        format!("hai.{}", sub(&huyen)),
        sub(&so),
        sub(&so_f),
        format!("www.{}", sub(&so_f)),
        format!("ba.{}", sub(&so_f)),
    ];
    for (u, vm) in [(&xa_a, "mot"), (&huyen, "hai"), (&so_f, "ba")] {
        wait_for(&Api::<TenantVM>::namespaced(client.clone(), u), vm, Duration::from_secs(120), "running", |v| {
            v.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .await
        .unwrap();
    }
    for u in &units {
        let recs: Api<DnsRecord> = Api::namespaced(client.clone(), u);
        for r in recs.list(&ListParams::default()).await.unwrap() {
            wait_for(&recs, &r.name_any(), Duration::from_secs(90), "programmed", programmed).await.unwrap();
        }
    }
    let addr: SocketAddr = format!("127.0.0.1:{}", knot.port).parse().unwrap();
    let server = pdc_dns::Server::new(addr);
    for n in &names {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while let Err(why) = answer(&server, n).await {
            assert!(std::time::Instant::now() < deadline, "{n} does not answer before the act: {why}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let probe = prober(addr, names.clone(), stop.clone());

    // The act, effective today, with a transition and retention longer than the test.
    let today = k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    let successor = unique("xa-moi");
    let name = unique("nq-xa-moi");
    let spec = serde_json::json!({
        "reference": "Nghị quyết 1680/NQ-UBTVQH15", "effectiveDate": today, "transitionDays": 30, "retentionDays": 60, "coolDownDays": 30,
        "merges": [{"units": [&xa_a, &xa_b, &xa_c], "successor": &successor, "successorDisplayName": "Xã Ea Mới", "successorCode": "H15.9.1", "keep": [format!("{xa_a}/mot")]}],
        "dissolutions": [{"unit": &huyen, "lookupsGoTo": &so}],
        "renames": [{"unit": &so_f, "displayName": "Sở F (tên mới)", "newName": &so_g}]
    });
    let acts: Api<Reorganization> = Api::all(client.clone());
    let act = pdc_tests::acts::act(&name, spec).unwrap();
    acts.create(&PostParams::default(), &act).await.unwrap();
    wait_for(&acts, &name, Duration::from_secs(60), "planned", |a| a.status.as_ref().is_some_and(|s| s.phase.as_deref() == Some("Planned"))).await.unwrap();
    let _ = dir;
    World { xa_a, xa_b, xa_c, huyen, so, so_f, so_g, successor, name, today, names, stop, probe }
}

/// Whether a `kdig` answer holds an RRSIG over `rtype`.
fn signed(answer: &str, rtype: &str) -> bool {
    answer.lines().any(|l| l.split_whitespace().nth(3) == Some("RRSIG") && l.split_whitespace().nth(4) == Some(rtype))
}

/// Whether a `kdig` answer holds a record of `rtype` with `value`.
fn holds(answer: &str, rtype: &str, value: &str) -> bool {
    answer.lines().any(|l| l.split_whitespace().nth(3) == Some(rtype) && l.split_whitespace().nth(4) == Some(value))
}

/// Ask Knot (with DNSSEC) until `ok` holds for the answer, for 60 s at most.
async fn dig_until(knot: &KnotServer, name: &str, rtype: &str, what: &str, ok: impl Fn(&str) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let a = knot.dig(name, rtype, true).unwrap();
        if ok(&a) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{name} {rtype} does not answer {what}: {a}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What the act has done once it waits for the transition's end.
async fn check_carried_out(client: &Client, knot: &KnotServer, w: &World) {
    let World { xa_a, xa_b, xa_c, huyen, so, successor, name, today, .. } = w;
    let (xa_a, xa_b, xa_c, huyen, so, successor, name, today) = (xa_a.as_str(), xa_b.as_str(), xa_c.as_str(), huyen.as_str(), so.as_str(), successor.as_str(), name.as_str(), today.as_str());
    let client = client.clone();
    let acts: Api<Reorganization> = Api::all(client.clone());
    let done = wait_phase(&acts, name, "InTransition", 240).await;
    let st = done.status.clone().unwrap();
    for s in ["Freeze", "CreateUnits", "MoveVMs", "Archive", "Redeclare", "Retire"] {
        assert!(st.steps.iter().any(|x| x.name == s && x.state == "Done"), "{s}: {}", steps(&done));
    }

    // Old names answer with signed CNAMEs to the successor's names: one per name
    // where a set pdc does not own lies below the old subdomain (xa-b) or a unit
    // has no successor (the district), ...
    let depts: Api<Department> = Api::all(client.clone());
    let by_name = [
        (sub(xa_b), sub(successor)),
        (format!("www.{}", sub(xa_b)), format!("www.{}", sub(successor))),
        (format!("camera.{}", sub(xa_b)), format!("camera.{}", sub(successor))),
        (format!("hai.{}", sub(huyen)), sub(so)),
    ];
    for (old, new) in by_name {
        dig_until(knot, &old, "A", &format!("a signed CNAME to {new}"), |a| signed(a, "CNAME") && holds(a, "CNAME", &format!("{new}."))).await;
    }
    // ... and through a signed DNAME of the new subdomain where every name of the
    // unit moved (a merged commune, the renamed department); the old apex answers
    // the new apex's addresses beside it.
    for (old, new, apex) in [(sub(xa_a), sub(successor), "10.15.9.1"), (sub(&w.so_f), sub(&w.so_g), "10.15.9.6")] {
        dig_until(knot, &old, "DNAME", &format!("a signed DNAME of {new}"), |a| signed(a, "DNAME") && holds(a, "DNAME", &format!("{new}."))).await;
        dig_until(knot, &old, "A", &format!("{apex}, signed"), |a| signed(a, "A") && holds(a, "A", apex)).await;
    }
    for (old, new) in [
        (format!("mot.{}", sub(xa_a)), format!("mot.{}", sub(successor))),
        (format!("www.{}", sub(&w.so_f)), format!("www.{}", sub(&w.so_g))),
        (format!("ba.{}", sub(&w.so_f)), format!("ba.{}", sub(&w.so_g))),
    ] {
        dig_until(knot, &old, "A", &format!("through the signed DNAME to {new}"), |a| signed(a, "DNAME") && holds(a, "CNAME", &format!("{new}."))).await;
    }
    // Why xa-b answers name by name, on its DNAME's DnsRecord; the foreign set stays.
    let dname = Api::<DnsRecord>::namespaced(client.clone(), xa_b).get(&format!("dname.{}", sub(xa_b))).await.unwrap();
    let why = dname.status.as_ref().and_then(|s| conditions::find(&s.conditions, "Programmed")).cloned().unwrap();
    assert!(why.status == "False" && why.reason == "NameByName" && why.message.contains(&format!("ngoai.{}.", sub(xa_b))), "{why:?}");
    assert!(knot.dig(&format!("ngoai.{}", sub(xa_b)), "TXT", false).unwrap().contains("not pdc's"));
    // The kept VM moved: it runs at the successor from copies of its disks (cloned
    // across namespaces from the move's snapshots), with new addresses; the old VM
    // is gone and its addresses are held back for the cool-down.
    let mot = Api::<TenantVM>::namespaced(client.clone(), successor).get("mot").await.unwrap();
    assert_eq!(mot.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Running"));
    assert_eq!(mot.annotations().get("pdc.io/moved-from"), Some(&format!("{xa_a}/{name}")));
    let dvs: Api<DynamicObject> = Api::namespaced_with(client.clone(), successor, &kube::api::ApiResource::from_gvk_with_plural(&kube::api::GroupVersionKind::gvk("cdi.kubevirt.io", "v1beta1", "DataVolume"), "datavolumes"));
    let root = dvs.get("mot-root").await.unwrap();
    assert_eq!(root.data["spec"]["source"]["snapshot"]["namespace"], xa_a);
    assert!(Api::<TenantVM>::namespaced(client.clone(), xa_a).get_opt("mot").await.unwrap().is_none(), "the old VM is gone");
    let new_v4 = mot.status.as_ref().unwrap().nics[0].ipv4.clone().unwrap();
    assert!(knot.dig(&format!("mot.{}", sub(successor)), "A", false).unwrap().contains(&new_v4));
    let reusable_move = pdc_core::reorg::Day::parse(today).unwrap().plus(30).format();
    let held_move: Vec<AddressAllocation> =
        Api::<AddressAllocation>::all(client.clone()).list(&ListParams::default()).await.unwrap().items.into_iter().filter(|a| a.spec.claim.namespace == xa_a).collect();
    assert_eq!(held_move.len(), 2, "the moved VM's two old addresses are held");
    assert!(held_move.iter().all(|a| a.labels().get("pdc.io/hold-until") == Some(&reusable_move) && a.spec.address != new_v4));
    // The VMs not kept: halted, their disks snapshotted until the retention date.
    let retain = pdc_core::reorg::Day::parse(today).unwrap().plus(60).format();
    for (u, vm) in [(huyen, "hai")] {
        let v = Api::<TenantVM>::namespaced(client.clone(), u).get(vm).await.unwrap();
        assert_eq!(v.spec.run_strategy, pdc_api::RunStrategy::Halted, "{u}/{vm}");
        let snaps: Api<DynamicObject> = Api::namespaced_with(client.clone(), u, &snapshot_resource());
        let s = snaps.get(&format!("archive.{name}.{vm}-root")).await.unwrap();
        assert_eq!(s.labels().get("pdc.io/retain-until"), Some(&retain));
        assert_eq!(s.data["spec"]["source"]["persistentVolumeClaimName"], format!("{vm}-root"));
        assert_eq!(s.data["status"]["readyToUse"], true);
    }
    for u in [&xa_a, &xa_b, &xa_c, &huyen, &w.so_f.as_str()] {
        let d = depts.get(u).await.unwrap();
        assert_eq!(d.spec.lifecycle, pdc_api::Lifecycle::Retired, "{u}");
    }
    check_renamed(&client, knot, w).await;
    // The successor holds the merged communes' own names.
    let copies: Vec<DnsRecord> =
        Api::<DnsRecord>::namespaced(client.clone(), successor).list(&ListParams::default()).await.unwrap().items.into_iter().filter(|r| r.owner_references().is_empty()).collect();
    assert_eq!(copies.len(), 3, "{:?}", copies.iter().map(|r| r.spec.name.clone()).collect::<Vec<_>>());
    assert!(knot.dig(&format!("www.{}", sub(successor)), "A", false).unwrap().contains("10.15.9.3"));
    check_data_moved(&client, knot, w).await;
}

/// The department renamed to a new slug moved whole: a Department of the new name
/// with the new display name and the old one's code, its VM running there, its
/// names under the new subdomain (the old ones checked as signed CNAMEs above).
async fn check_renamed(client: &Client, knot: &KnotServer, w: &World) {
    let (so_f, so_g) = (w.so_f.as_str(), w.so_g.as_str());
    let depts: Api<Department> = Api::all(client.clone());
    let (old, new) = (depts.get(so_f).await.unwrap(), depts.get(so_g).await.unwrap());
    assert_eq!(old.spec.successor.as_deref(), Some(so_g));
    assert_eq!((new.spec.display_name.as_str(), new.spec.code.as_str(), new.spec.lifecycle), ("Sở F (tên mới)", old.spec.code.as_str(), pdc_api::Lifecycle::Active));
    let ba = Api::<TenantVM>::namespaced(client.clone(), so_g).get("ba").await.unwrap();
    assert_eq!(ba.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Running"));
    assert!(Api::<TenantVM>::namespaced(client.clone(), so_f).get_opt("ba").await.unwrap().is_none(), "the old VM is gone");
    let v4 = ba.status.as_ref().unwrap().nics[0].ipv4.clone().unwrap();
    assert!(knot.dig(&format!("ba.{}", sub(so_g)), "A", false).unwrap().contains(&v4));
    for (n, v) in [(sub(so_g), "10.15.9.6"), (format!("www.{}", sub(so_g)), "10.15.9.7")] {
        assert!(knot.dig(&n, "A", false).unwrap().contains(v), "{n} does not answer {v}");
    }
}

/// The commune's standalone volume and claim moved with it, the district's volume
/// archived.
async fn check_data_moved(client: &Client, knot: &KnotServer, w: &World) {
    let (xa_b, huyen, successor, name) = (w.xa_b.as_str(), w.huyen.as_str(), w.successor.as_str(), w.name.as_str());
    // The volume: restored at the successor from the act's snapshot of the old one,
    // charged there and no longer at the old unit; the old volume and the snapshot
    // are gone.
    let vol = Api::<TenantVolume>::namespaced(client.clone(), successor).get("du-lieu").await.unwrap();
    assert!(ready(vol.status.as_ref().map(|s| &s.conditions)), "{:?}", vol.status);
    assert_eq!(vol.annotations().get("pdc.io/moved-from"), Some(&format!("{xa_b}/{name}")));
    let dv = Api::<DynamicObject>::namespaced_with(client.clone(), successor, &dv_resource()).get("vol-du-lieu").await.unwrap();
    assert_eq!(dv.data["spec"]["source"]["snapshot"], serde_json::json!({"namespace": xa_b, "name": format!("move.{name}.vol-du-lieu")}));
    assert_eq!(dv.data["status"]["phase"], "Succeeded");
    assert!(Api::<TenantVolume>::namespaced(client.clone(), xa_b).get_opt("du-lieu").await.unwrap().is_none(), "the old volume is gone");
    let snaps_b: Api<DynamicObject> = Api::namespaced_with(client.clone(), xa_b, &snapshot_resource());
    assert!(snaps_b.get_opt(&format!("move.{name}.vol-du-lieu")).await.unwrap().is_none(), "the move's snapshot is gone");
    let depts: Api<Department> = Api::all(client.clone());
    let ledger = |d: &Department| d.status.as_ref().map(|s| s.quota_ledger.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (at_succ, at_old) = (ledger(&depts.get(successor).await.unwrap()), ledger(&depts.get(xa_b).await.unwrap()));
        if at_succ.contains(&"volume/du-lieu".to_string()) && !at_old.contains(&"volume/du-lieu".to_string()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the volume's charge did not move: successor {at_succ:?}, old unit {at_old:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The volume on the moved VM went with it and is plugged into it there.
    let xa_a = w.xa_a.as_str();
    let data = Api::<TenantVolume>::namespaced(client.clone(), successor).get("mot-data").await.unwrap();
    assert!(ready(data.status.as_ref().map(|s| &s.conditions)) && data.spec.vm.as_deref() == Some("mot"), "{:?}", data.status);
    let dv = Api::<DynamicObject>::namespaced_with(client.clone(), successor, &dv_resource()).get("vol-mot-data").await.unwrap();
    assert_eq!(dv.data["spec"]["source"]["snapshot"], serde_json::json!({"namespace": xa_a, "name": format!("move.{name}.vol-mot-data")}));
    assert!(Api::<TenantVolume>::namespaced(client.clone(), xa_a).get_opt("mot-data").await.unwrap().is_none(), "the old volume is gone");
    let kv = kube::api::ApiResource::from_gvk_with_plural(&kube::api::GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachine"), "virtualmachines");
    let vm = Api::<DynamicObject>::namespaced_with(client.clone(), successor, &kv).get("mot").await.unwrap();
    let plugged = vm.data["spec"]["template"]["spec"]["volumes"].as_array().cloned().unwrap_or_default();
    assert!(plugged.iter().any(|v| v["dataVolume"]["name"] == "vol-mot-data" && v["dataVolume"]["hotpluggable"] == true), "{plugged:?}");
    // The claim: new addresses from the successor's subnets, its name follows; the
    // old claim is gone and its addresses are held back for the cool-down.
    let cam = Api::<AddressClaim>::namespaced(client.clone(), successor).get("camera").await.unwrap();
    assert!(pdc_tests::addressing::bound(&cam), "{:?}", cam.status);
    let new_v4 = cam.status.as_ref().unwrap().ipv4.clone().unwrap().address;
    let old = cam.annotations().get("pdc.io/moved-addresses").cloned().unwrap_or_default();
    let old_v4 = old.split(',').next().unwrap_or_default().to_string();
    assert!(!old_v4.is_empty() && old_v4 != new_v4, "old {old}, new {new_v4}");
    assert!(Api::<AddressClaim>::namespaced(client.clone(), xa_b).get_opt("camera").await.unwrap().is_none(), "the old claim is gone");
    let held: Vec<AddressAllocation> =
        Api::<AddressAllocation>::all(client.clone()).list(&ListParams::default()).await.unwrap().items.into_iter().filter(|a| a.spec.claim.namespace == xa_b).collect();
    assert_eq!(held.len(), 2, "the claim's two old addresses are held");
    assert!(held.iter().any(|a| a.spec.address == old_v4) && held.iter().all(|a| a.labels().contains_key("pdc.io/hold-until")));
    let answer = knot.dig(&format!("camera.{}", sub(successor)), "A", false).unwrap();
    assert!(answer.contains(&new_v4) && !answer.contains(&old_v4), "camera answers {answer}, want {new_v4}");
    // The district's unattached volume: snapshotted, kept until the retention date.
    let retain = pdc_core::reorg::Day::parse(&w.today).unwrap().plus(60).format();
    let s = Api::<DynamicObject>::namespaced_with(client.clone(), huyen, &snapshot_resource()).get(&format!("archive.{name}.vol-luu-tru")).await.unwrap();
    assert_eq!(s.labels().get("pdc.io/retain-until"), Some(&retain));
    assert_eq!(s.data["spec"]["source"]["persistentVolumeClaimName"], "vol-luu-tru");
    assert_eq!(s.data["status"]["readyToUse"], true);

}

#[tokio::test]
async fn communes_merge_and_a_district_dissolves_without_losing_an_answer() {
    let env = shared_env(true).unwrap();
    let client = env.client().await.unwrap();
    let knot = KnotServer::start(&env.dir, &["daklak.gov.vn", "15.10.in-addr.arpa"]).unwrap();
    let w = world(&client, &env.dir, &knot).await;
    let acts: Api<Reorganization> = Api::all(client.clone());
    let (xa_b, huyen, successor, name, today) = (w.xa_b.clone(), w.huyen.clone(), w.successor.clone(), w.name.clone(), w.today.clone());
    // pdcctl carries it out and follows the steps until it waits for the transition's end.
    let kubeconfig = env.kubeconfig.clone();
    let act_name = name.clone();
    let (code, out) = tokio::task::spawn_blocking(move || pdc_tests::pdcctl(&kubeconfig, &["reorg", "apply", &act_name, "--yes", "--timeout", "4m"])).await.unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("MoveVMs Running") && out.contains("[7/9] InTransition"), "live progress: {out}");
    assert!(out.lines().any(|l| l.starts_with("MoveVMs") && l.contains("Done") && l.contains("2 VMs moved") && l.contains("2 volumes and 1 standalone claims moved")), "{out}");
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["reorg", "status"]);
    assert!(code == 0 && out.lines().any(|l| l.starts_with(&name) && l.contains("InTransition") && l.contains("7/9")), "{out}");
    check_carried_out(&client, &knot, &w).await;
    // Monitoring sees every name answering and when the aliases go (a pass after
    // the last alias answered: the act is looked at again).
    acts.patch(&name, &PatchParams::default(), &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"pdc.io/replan": "metrics"}}}))).await.unwrap();
    let expiry = pdc_core::reorg::Day::parse(&today).unwrap().plus(30).0 * 86_400;
    let want = [
        format!("pdc_reorganization_names_not_answering{{reorganization=\"{name}\"}} 0"),
        format!("pdc_reorganization_alias_expiry_timestamp_seconds{{reorganization=\"{name}\"}} {expiry}"),
        format!("pdc_reorganization_step_deadline_timestamp_seconds{{reorganization=\"{name}\",step=\"RemoveAliases\"}} {}", expiry + 86_400),
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, metrics) = env.metrics_get("/metrics").unwrap();
        if want.iter().all(|w| metrics.lines().any(|l| l == w)) {
            break;
        }
        let ours: Vec<&str> = metrics.lines().filter(|l| l.contains(&name)).collect();
        assert!(std::time::Instant::now() < deadline, "want {want:?}, the act's series: {ours:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Nothing was lost while the act ran.
    let World { names, stop, probe, .. } = w;
    stop.store(true, Ordering::SeqCst);
    let (asked, lost) = probe.await.unwrap();
    assert!(asked > names.len() * 10, "the prober asked only {asked} times");
    assert!(lost.is_empty(), "{} of {asked} answers lost: {:?}", lost.len(), &lost[..lost.len().min(20)]);

    // The transition ends (shortened): the aliases go, the old names are reclaimed.
    acts.patch(&name, &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"transitionDays": 0}}))).await.unwrap();
    wait_phase(&acts, &name, "Retained", 90).await;
    for old in [sub(&xa_b), format!("www.{}", sub(&xa_b)), format!("hai.{}", sub(&huyen)), sub(&w.xa_a), format!("mot.{}", sub(&w.xa_a)), format!("www.{}", sub(&w.so_f))] {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !knot.dig(&old, "A", false).unwrap().trim().is_empty() {
            assert!(std::time::Instant::now() < deadline, "{old} still answers after the transition");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    assert!(knot.dig(&sub(&w.xa_a), "DNAME", false).unwrap().trim().is_empty(), "the DNAME goes with the transition");
    assert!(knot.dig(&format!("ngoai.{}", sub(&xa_b)), "TXT", false).unwrap().contains("not pdc's"), "a set pdc does not own is never touched");
    assert!(knot.dig(&format!("www.{}", sub(&successor)), "A", false).unwrap().contains("10.15.9.3"), "the successor's name must stay");

    // The retention ends (shortened): the district's addresses are held back for the
    // cool-down, its VMs, claims and records go; the archives stay.
    let allocations: Api<AddressAllocation> = Api::all(client.clone());
    let of_huyen = |a: &AddressAllocation| a.spec.claim.namespace == huyen;
    let before: Vec<String> = allocations.list(&ListParams::default()).await.unwrap().items.iter().filter(|a| of_huyen(a)).map(|a| a.spec.address.clone()).collect();
    assert!(before.len() >= 4, "the VM's and the claim's addresses: {before:?}");
    acts.patch(&name, &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"retentionDays": 1}}))).await.unwrap();
    // Effective today with one day of retention, Release would wait for tomorrow:
    // the effective date moves back a day.
    let back = pdc_core::reorg::Day(pdc_core::reorg::Day::parse(&today).unwrap().0 - 1).format();
    acts.patch(&name, &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"effectiveDate": back}}))).await.unwrap();
    let finished = wait_phase(&acts, &name, "Done", 120).await;
    assert!(finished.status.unwrap().steps.iter().any(|s| s.name == "Release" && s.state == "Done"));
    assert!(Api::<TenantVM>::namespaced(client.clone(), &huyen).list(&ListParams::default()).await.unwrap().items.is_empty());
    assert!(Api::<AddressClaim>::namespaced(client.clone(), &huyen).list(&ListParams::default()).await.unwrap().items.is_empty());
    assert!(Api::<TenantVolume>::namespaced(client.clone(), &huyen).list(&ListParams::default()).await.unwrap().items.is_empty());
    let held: Vec<AddressAllocation> = allocations.list(&ListParams::default()).await.unwrap().items.into_iter().filter(|a| of_huyen(a)).collect();
    let mut held_addresses: Vec<String> = held.iter().map(|a| a.spec.address.clone()).collect();
    let mut before_sorted = before.clone();
    held_addresses.sort();
    before_sorted.sort();
    assert_eq!(held_addresses, before_sorted, "every released address is held");
    let reusable = pdc_core::reorg::Day::parse(&back).unwrap().plus(1 + 30).format();
    assert!(held.iter().all(|a| a.labels().get("pdc.io/hold-until") == Some(&reusable)), "{:?}", held.iter().map(|a| a.labels().clone()).collect::<Vec<_>>());
    let snaps: Api<DynamicObject> = Api::namespaced_with(client.clone(), &huyen, &snapshot_resource());
    assert!(snaps.get_opt(&format!("archive.{name}.hai-root")).await.unwrap().is_some(), "the archive stays");
    assert!(snaps.get_opt(&format!("archive.{name}.vol-luu-tru")).await.unwrap().is_some(), "the volume's archive stays");

    // The cool-down ends (the hold's day set back): the addresses are free again,
    // and `pdcctl ip usage` counts them out of the zone's allocated addresses.
    let in_use_before = allocated(&env.kubeconfig);
    for a in &held {
        allocations.patch(&a.name_any(), &PatchParams::default(), &Patch::Merge(serde_json::json!({"metadata": {"labels": {"pdc.io/hold-until": back}}}))).await.unwrap();
    }
    acts.patch(&name, &PatchParams::default(), &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"pdc.io/replan": "cool-down"}}}))).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while allocations.list(&ListParams::default()).await.unwrap().items.iter().any(of_huyen) {
        assert!(std::time::Instant::now() < deadline, "held addresses were not freed after the cool-down");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let freed_v4 = held.iter().filter(|a| !a.spec.address.contains(':')).count() as u64;
    let freed_v6 = held.len() as u64 - freed_v4;
    assert!(freed_v4 > 0 && freed_v6 > 0, "{held_addresses:?}");
    let in_use_after = allocated(&env.kubeconfig);
    assert_eq!(in_use_after, (in_use_before.0 - freed_v4, in_use_before.1 - freed_v6), "pdcctl ip usage of zone app, (IPv4, IPv6) allocated, before {in_use_before:?}");
}

/// The addresses `pdcctl ip usage -o json` counts allocated in zone `app`: (IPv4, IPv6).
fn allocated(kubeconfig: &std::path::Path) -> (u64, u64) {
    let (code, out) = pdc_tests::pdcctl(kubeconfig, &["ip", "usage", "-o", "json"]);
    assert_eq!(code, 0, "{out}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let count = |family: &str| {
        rows.iter()
            .filter(|r| r["zone"] == "app" && r["family"] == family)
            .map(|r| r["addressesAllocated"].as_str().and_then(|n| n.parse::<u64>().ok()).unwrap_or_else(|| panic!("{r}")))
            .sum::<u64>()
    };
    (count("IPv4"), count("IPv6"))
}

/// The operator killed (SIGKILL, no cleanup) at every step of an act and at every
/// stage a step reports while it waits: each time the status shows a new running
/// step or stage, the operator is killed and another one started, which resumes
/// from the API server alone. The act ends as it does uninterrupted, and no name
/// that must keep answering stops answering.
#[tokio::test]
async fn an_operator_killed_at_every_step_resumes_and_ends_the_same() {
    use pdc_tests::operator::{OperatorOptions, OperatorProcess};
    let (env, plane) = pdc_tests::cluster::private_env("pdc-reorg-crash").await.unwrap();
    let players = pdc_tests::players::Players::start(vec![("pdc".into(), plane.kubeconfig())]).unwrap();
    let client = env.client().await.unwrap();
    // Each step's effects stay unrecorded for a second: the window a crash leaves.
    let opts = |id: String| OperatorOptions {
        lease_duration: "4s",
        renew_deadline: "3s",
        retry_period: "500ms",
        env: vec![("PDC_REORG_STEP_PAUSE".into(), "1s".into())],
        ..OperatorOptions::new(&id)
    };
    let mut operator = OperatorProcess::start(&env.operator_kubeconfig, &opts("reorg-0".into()), &env.dir).unwrap();
    let knot = KnotServer::start(&env.dir, &["daklak.gov.vn", "15.10.in-addr.arpa"]).unwrap();
    let w = world(&client, &env.dir, &knot).await;
    let acts: Api<Reorganization> = Api::all(client.clone());
    acts.patch(&w.name, &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"action": "Apply", "actionToken": "1"}}))).await.unwrap();

    let mut seen = std::collections::BTreeSet::new();
    let mut timeline = pdc_tests::acts::Timeline::new();
    let mut self_exits = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(480);
    loop {
        let a = acts.get(&w.name).await.unwrap();
        timeline.record(&a);
        if phase(&a).as_deref() == Some("InTransition") {
            break;
        }
        let st = a.status.clone().unwrap_or_default();
        let running = st.steps.iter().find(|s| s.state == "Running").map(|s| format!("{}: {}", s.name, s.message));
        if let Some(stage) = running.filter(|r| seen.insert(r.clone())) {
            operator.kill();
            eprintln!("killed the operator at {stage}");
            timeline.note(&format!("killed {} at {stage}", operator.identity));
            operator = OperatorProcess::start(&env.operator_kubeconfig, &opts(format!("reorg-{}", seen.len())), &env.dir).unwrap();
        }
        if let Some(exit) = operator.exit_status() {
            // An operator that loses its lease steps down and exits (on this loaded
            // 2-core machine a renewal can miss the 3 s deadline); its Deployment
            // would start it again, so the test does, a few times at most: more is a
            // crash loop, said at once rather than at the deadline.
            timeline.note(&format!("{} exited on its own: {exit}", operator.identity));
            eprintln!("{} exited on its own ({exit}); started again", operator.identity);
            self_exits += 1;
            if self_exits <= 3 {
                operator = OperatorProcess::start(&env.operator_kubeconfig, &opts(format!("reorg-restart-{self_exits}")), &env.dir).unwrap();
            }
        }
        if std::time::Instant::now() >= deadline || operator.exit_status().is_some() {
            let units = [w.xa_a.as_str(), w.xa_b.as_str(), w.huyen.as_str(), w.so_f.as_str(), w.so_g.as_str(), w.successor.as_str()];
            let why = pdc_tests::acts::explain(&client, &w.name, &timeline, &units, &mut operator, &env.dir).await;
            panic!("the act did not reach InTransition: {}\n{why}", steps(&a));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started: std::collections::BTreeSet<&str> = seen.iter().filter_map(|s| s.split(':').next()).collect();
    for s in ["Freeze", "CreateUnits", "MoveVMs", "Archive", "Redeclare", "Retire"] {
        assert!(started.contains(s), "no kill during {s}: {seen:?}");
    }
    check_carried_out(&client, &knot, &w).await;
    // Exactly one of each: the moved VM, its disks, the archives.
    assert_eq!(Api::<TenantVM>::all(client.clone()).list(&ListParams::default()).await.unwrap().items.iter().filter(|v| v.name_any() == "mot" || v.name_any() == "ba").count(), 2);
    assert_eq!(Api::<TenantVolume>::all(client.clone()).list(&ListParams::default()).await.unwrap().items.iter().filter(|v| v.name_any() == "du-lieu" || v.name_any() == "mot-data").count(), 2);
    assert_eq!(Api::<AddressClaim>::all(client.clone()).list(&ListParams::default()).await.unwrap().items.iter().filter(|c| c.name_any() == "camera" && c.namespace().as_deref() != Some(w.huyen.as_str())).count(), 1);
    let World { names, stop, probe, .. } = w;
    stop.store(true, Ordering::SeqCst);
    let (asked, lost) = probe.await.unwrap();
    eprintln!("{} kills; {asked} answers asked for, {} lost", seen.len(), lost.len());
    assert!(asked > names.len() * 10, "the prober asked only {asked} times");
    assert!(lost.is_empty(), "{} of {asked} answers lost: {:?}", lost.len(), &lost[..lost.len().min(20)]);
    operator.stop();
    players.stop();
}
