//! Reorganization acts on a real kube-apiserver with the chart's admission policies
//! and the operator under the chart's RBAC: what the API refuses outright, the plan
//! the operator writes into an act's status and `pdcctl reorg plan` prints (against
//! the cluster and offline from manifests, the same planner), and a Retiring unit's
//! freeze tried by its own admin (real RBAC, impersonated by client certificate).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::time::Duration;

use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use pdc_api::conditions;
use pdc_api::{AddressClaim, Department, DnsRecord, Reorganization, TenantVM};
use pdc_tests::addressing::{claim, load_plan};
use pdc_tests::cluster::{apply_yaml, shared_env, unique, wait_for};

use pdc_tests::acts::SIZES;

fn tenant_vm(name: &str) -> TenantVM {
    pdc_tests::acts::small_vm(name).unwrap()
}

fn record(name: &str) -> DnsRecord {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "DnsRecord", "metadata": {"name": name},
        "spec": {"name": name, "type": "A", "values": ["10.15.0.10"]}
    }))
    .unwrap()
}

fn act(name: &str, spec: serde_json::Value) -> Reorganization {
    pdc_tests::acts::act(name, spec).unwrap()
}

async fn set_quota(client: &Client, dept: &str, vms: i32) {
    pdc_tests::acts::set_quota(client, dept, vms).await.unwrap();
}

fn refused(r: Result<Reorganization, kube::Error>) -> String {
    match r {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422, "{}", s.message);
            s.message
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(a) => panic!("{} was accepted", a.name_any()),
    }
}

#[tokio::test]
async fn the_api_refuses_acts_that_cannot_be_carried_out() {
    let client = shared_env(true).unwrap().client().await.unwrap();
    let api: Api<Reorganization> = Api::all(client);
    let pp = PostParams::default();
    let base = |extra: serde_json::Value| {
        let mut s = serde_json::json!({"reference": "Nghị quyết 1/2025", "effectiveDate": "2025-07-01"});
        s.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        s
    };
    let twice = base(serde_json::json!({"merges": [{"units": ["xa-a", "xa-b"], "successor": "xa-moi"}, {"units": ["xa-a"], "successor": "xa-khac"}]}));
    assert!(refused(api.create(&pp, &act("twice", twice)).await).contains("a unit appears in two merges"));
    let dissolved = base(serde_json::json!({"merges": [{"units": ["xa-a"], "successor": "huyen-x"}], "dissolutions": [{"unit": "huyen-x"}]}));
    assert!(refused(api.create(&pp, &act("dissolved", dissolved)).await).contains("successor is dissolved by the same act"));
    let chained = base(serde_json::json!({"merges": [{"units": ["xa-a"], "successor": "xa-b"}, {"units": ["xa-b"], "successor": "xa-c"}]}));
    assert!(refused(api.create(&pp, &act("chained", chained)).await).contains("merge into the final successor"));
    let codes = base(serde_json::json!({"codeReissues": [{"from": "H45", "to": "H15.300", "deadline": "2025-08-01"}, {"from": "H08", "to": "H15.300", "deadline": "2025-08-01"}]}));
    assert!(refused(api.create(&pp, &act("codes", codes)).await).contains("each new code is issued once"));
    let date = base(serde_json::json!({"effectiveDate": "1/7/2025"}));
    assert!(refused(api.create(&pp, &act("date", date)).await).contains("effectiveDate must be a date"));
    let keep = base(serde_json::json!({"merges": [{"units": ["xa-a"], "successor": "xa-moi", "keep": ["Cổng thông tin"]}]}));
    assert!(refused(api.create(&pp, &act("keep", keep)).await).contains("keep entries must be unit/vm"));
    let token = base(serde_json::json!({"action": "Apply"}));
    assert!(refused(api.create(&pp, &act("token", token)).await).contains("needs an actionToken"));
}

fn planned(a: &Reorganization) -> Option<(String, String)> {
    let c = conditions::find(&a.status.as_ref()?.conditions, "Planned")?;
    Some((c.status.clone(), c.message.clone()))
}

/// Three communes merge into a fourth whose quota is too small for what they keep:
/// refused by the operator, by `pdcctl reorg plan` against the cluster and offline
/// from the same objects as manifests; then the quota is raised and the plan holds.
#[tokio::test]
async fn a_merge_is_planned_alike_by_the_operator_and_pdcctl_online_and_offline() {
    let env = shared_env(true).unwrap();
    let client = env.client().await.unwrap();
    let units: Vec<String> = ["xa-a", "xa-b", "xa-c", "xa-moi"].iter().map(|p| unique(p)).collect();
    load_plan(&client, "app", 24, &units).await.unwrap();
    apply_yaml(&client, SIZES, None).await.unwrap();
    set_quota(&client, &units[0], 2).await;
    set_quota(&client, &units[3], 1).await;
    let vms: Api<TenantVM> = Api::namespaced(client.clone(), &units[0]);
    for n in ["portal", "hoso"] {
        vms.create(&PostParams::default(), &tenant_vm(n)).await.unwrap();
        wait_for(&vms, n, Duration::from_secs(60), "quota charged", |v| {
            v.status.as_ref().and_then(|s| conditions::find(&s.conditions, "QuotaAccepted")).is_some_and(|c| c.status == "True")
        })
        .await
        .unwrap();
        // The VM's own name (its A record), which the plan aliases to the successor's.
        wait_for(&Api::<DnsRecord>::namespaced(client.clone(), &units[0]), &format!("{n}-a"), Duration::from_secs(90), "the VM's A record", |_| true).await.unwrap();
    }
    Api::<DnsRecord>::namespaced(client.clone(), &units[1]).create(&PostParams::default(), &record("www")).await.unwrap();
    Api::<AddressClaim>::namespaced(client.clone(), &units[2]).create(&PostParams::default(), &claim("camera", "app")).await.unwrap();

    let name = unique("nq-sap-nhap");
    let spec = serde_json::json!({
        "reference": "Nghị quyết 1680/NQ-UBTVQH15", "effectiveDate": "2025-07-01", "transitionDays": 90,
        "merges": [{"units": [&units[0], &units[1], &units[2]], "successor": &units[3], "keep": [format!("{}/*", units[0])]}]
    });
    let a = act(&name, spec);
    let acts: Api<Reorganization> = Api::all(client.clone());
    acts.create(&PostParams::default(), &a).await.unwrap();
    let got = wait_for(&acts, &name, Duration::from_secs(60), "planned", |a| planned(a).is_some()).await.unwrap();
    let (status, message) = planned(&got).unwrap();
    assert_eq!(status, "False", "{message}");
    assert!(message.contains(&format!("successor {}'s quota is too small", units[3])) && message.contains("VMs: asks 2"), "{message}");
    assert_eq!(got.status.as_ref().unwrap().phase.as_deref(), Some("Refused"));

    // pdcctl against the cluster: the same refusal, exit 1.
    let file = env.dir.join(format!("{name}.yaml"));
    std::fs::write(&file, serde_yaml::to_string(&a).unwrap()).unwrap();
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["reorg", "plan", "-f", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("REFUSED") && out.contains("quota is too small"), "{out}");

    // Offline: the same objects as manifests, no cluster (an unreachable kubeconfig).
    let estate = env.dir.join(format!("{name}-estate.yaml"));
    let lp = ListParams::default();
    let mut docs = Vec::new();
    for u in &units {
        docs.push(serde_yaml::to_string(&Api::<Department>::all(client.clone()).get(u).await.unwrap()).unwrap());
        for v in Api::<TenantVM>::namespaced(client.clone(), u).list(&lp).await.unwrap() {
            docs.push(serde_yaml::to_string(&v).unwrap());
        }
        for r in Api::<DnsRecord>::namespaced(client.clone(), u).list(&lp).await.unwrap() {
            docs.push(serde_yaml::to_string(&r).unwrap());
        }
    }
    std::fs::write(&estate, docs.join("---\n")).unwrap();
    let nowhere = env.dir.join("nowhere.kubeconfig");
    std::fs::write(&nowhere, "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n").unwrap();
    let (code, out) =
        pdc_tests::pdcctl(&nowhere, &["reorg", "plan", "-f", file.to_str().unwrap(), "--estate", estate.to_str().unwrap(), "--domain", "daklak.gov.vn"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("successor {}'s quota is too small", units[3])), "{out}");

    // Raised quota: the plan holds; the kept VMs move, the portal's names alias.
    set_quota(&client, &units[3], 4).await;
    acts.patch(&name, &PatchParams::default(), &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"pdc.io/replan": "1"}}}))).await.unwrap();
    let got = wait_for(&acts, &name, Duration::from_secs(60), "plan holds", |a| planned(a).is_some_and(|p| p.0 == "True")).await.unwrap();
    let st = got.status.unwrap();
    assert_eq!(st.phase.as_deref(), Some("Planned"));
    assert_eq!((st.summary["vmsMoved"], st.summary["units"]), (2, 3), "{:?}", st.summary);
    assert_eq!(st.steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), pdc_core::reorg::STEPS.map(|s| s.as_str()));
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["reorg", "plan", "-f", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let old = format!("portal.{}.daklak.gov.vn", units[0]);
    let new = format!("portal.{}.daklak.gov.vn", units[3]);
    assert!(out.lines().any(|l| l.contains(&old) && l.contains("CNAME") && l.contains(&new)), "{out}");
    assert!(out.contains("re-claimed in the successor's subnets"), "{out}");
    // The standalone claim moves with its commune: re-claimed at the successor.
    assert!(out.lines().any(|l| l.contains(&format!("{}/camera", units[2])) && l.contains(&units[3]) && l.contains("same zone")), "{out}");
    assert_eq!(st.summary.get("claimsMoved"), Some(&1), "{:?}", st.summary);
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["reorg", "show", &name]);
    assert!(code == 0 && out.contains("vmsMoved") && out.contains("RemoveAliases"), "{out}");

    // Planned, not applied: nothing changed.
    for u in &units {
        assert_eq!(Api::<Department>::all(client.clone()).get(u).await.unwrap().spec.lifecycle, pdc_api::Lifecycle::Active);
    }
}

/// A Retiring unit takes nothing new: its admin (now a viewer) is refused VMs,
/// records and claims with the act's name; the operator's own writes still pass.
#[tokio::test]
async fn a_retiring_units_admin_cannot_create_and_reads_as_a_viewer() {
    let env = shared_env(true).unwrap();
    let client = env.client().await.unwrap();
    let unit = unique("huyen-cu");
    load_plan(&client, "app", 24, std::slice::from_ref(&unit)).await.unwrap();
    let admin = format!("admin@{unit}.daklak.gov.vn");
    let depts: Api<Department> = Api::all(client.clone());
    depts.patch(&unit, &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"admins": {"users": [&admin]}}}))).await.unwrap();
    let as_admin = env.client_as(&admin, &[]).await.unwrap();
    let records: Api<DnsRecord> = Api::namespaced(as_admin.clone(), &unit);
    // Active: the admin creates (the binding may take a moment to appear).
    let start = std::time::Instant::now();
    while records.create(&PostParams::default(), &record("truoc")).await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "the admin never could create a record");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let patch = serde_json::json!({"metadata": {"annotations": {"pdc.io/reorganization": "nq-giai-the"}}, "spec": {"lifecycle": "Retiring"}});
    depts.patch(&unit, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    wait_for(&nss, &unit, Duration::from_secs(30), "namespace marked Retiring", |n| n.annotations().get("pdc.io/lifecycle").is_some_and(|l| l == "Retiring")).await.unwrap();
    let refusal = |r: Result<String, kube::Error>| match r {
        Err(kube::Error::Api(s)) => (s.code, s.message),
        Err(e) => panic!("{e}"),
        Ok(n) => panic!("{n} was created in a Retiring unit"),
    };
    // Anyone but the operator (here the cluster admin) is refused by the policy, which
    // names the act.
    // (The API server's admission sees namespaces through an informer: a create that
    // raced the annotation is removed and tried again under another name.)
    let vms: Api<TenantVM> = Api::namespaced(client.clone(), &unit);
    let start = std::time::Instant::now();
    let (code, msg) = loop {
        let name = unique("moi");
        match vms.create(&PostParams::default(), &tenant_vm(&name)).await {
            Ok(_) => {
                vms.delete(&name, &Default::default()).await.unwrap();
                assert!(start.elapsed() < Duration::from_secs(10), "TenantVMs are still admitted in a Retiring unit");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            r => break refusal(r.map(|v| v.name_any())),
        }
    };
    assert_eq!(code, 403, "{msg}");
    assert!(msg.contains(&format!("department {unit} is Retiring under reorganization nq-giai-the")), "{msg}");
    let (_, msg) = refusal(Api::<AddressClaim>::namespaced(client.clone(), &unit).create(&PostParams::default(), &claim("moi", "app")).await.map(|c| c.name_any()));
    assert!(msg.contains("takes nothing new"), "{msg}");
    // The admin, now a viewer, is refused by RBAC itself.
    let start = std::time::Instant::now();
    loop {
        let (code, msg) = refusal(records.create(&PostParams::default(), &record("sau2")).await.map(|r| r.name_any()));
        if code == 403 && msg.contains("cannot create") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the admin's rights were not reduced to a viewer's: {code} {msg}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // …and still reads, as a viewer.
    assert!(records.get("truoc").await.is_ok());
}

fn step_states(a: &Reorganization) -> Vec<(String, String)> {
    a.status.iter().flat_map(|s| s.steps.iter().map(|x| (x.name.clone(), x.state.clone()))).collect()
}

/// Two communes merge into a new one, a district dissolves, a department's code is
/// reissued and its name changed, all carried out as steps. The operator "crashed"
/// in the middle of the first step (the status says Freeze is running, one unit is
/// already Retiring): Apply resumes there, runs every step once, and a later pass
/// changes nothing.
#[tokio::test]
async fn an_act_is_carried_out_as_steps_and_resumes_where_it_stopped() {
    let env = shared_env(true).unwrap();
    let client = env.client().await.unwrap();
    let units: Vec<String> = ["xa-p", "xa-q", "huyen-r", "so-s"].iter().map(|p| unique(p)).collect();
    load_plan(&client, "app", 24, &units).await.unwrap();
    let depts: Api<Department> = Api::all(client.clone());
    let pp = PatchParams::default();
    set_quota(&client, &units[0], 1).await;
    set_quota(&client, &units[1], 2).await;
    depts.patch(&units[0], &pp, &Patch::Merge(serde_json::json!({"spec": {"admins": {"users": ["chu-tich@xa-p.vn"]}}}))).await.unwrap();
    depts.patch(&units[1], &pp, &Patch::Merge(serde_json::json!({"spec": {"admins": {"groups": ["xa-q-admins"]}}}))).await.unwrap();
    let n = std::process::id() % 900 + 100;
    let (old_code, new_code) = (format!("H45.{n}.7"), format!("H15.{n}.7.1"));
    depts.patch(&units[3], &pp, &Patch::Merge(serde_json::json!({"spec": {"code": &old_code}}))).await.unwrap();

    let name = unique("nq-thuc-hien");
    let successor = unique("xa-moi");
    let spec = serde_json::json!({
        "reference": "Nghị quyết 1680/NQ-UBTVQH15", "effectiveDate": "2025-07-01",
        "merges": [{"units": [&units[0], &units[1]], "successor": &successor, "successorDisplayName": "Xã Ea Mới", "successorCode": format!("H15.{n}.8")}],
        "dissolutions": [{"unit": &units[2], "lookupsGoTo": &units[3]}],
        "renames": [{"unit": &units[3], "displayName": "Sở S (mới)"}],
        "codeReissues": [{"from": &old_code, "to": &new_code, "deadline": "2025-08-01"}]
    });
    let acts: Api<Reorganization> = Api::all(client.clone());
    acts.create(&PostParams::default(), &act(&name, spec)).await.unwrap();
    // Planned from the operator's caches, which may not have every patch above yet: the
    // plan holds once they have.
    let got = wait_for(&acts, &name, Duration::from_secs(60), "planned", |a| planned(a).is_some_and(|p| p.0 == "True")).await;
    assert!(got.is_ok(), "{got:?}");

    // The state a crash in the middle of Freeze leaves: the step started, one unit done.
    let started = "2026-01-01T00:00:00Z";
    let seeded: Vec<serde_json::Value> = pdc_core::reorg::STEPS
        .iter()
        .map(|s| match s.as_str() {
            "Freeze" => serde_json::json!({"name": "Freeze", "state": "Running", "started": started}),
            "CreateUnits" | "ReissueCodes" | "Retire" => serde_json::json!({"name": s.as_str(), "state": "Pending"}),
            other => serde_json::json!({"name": other, "state": "Done", "message": "nothing to do"}),
        })
        .collect();
    let status = serde_json::json!({"status": {"token": "1", "phase": "Applying", "currentStep": "Freeze", "steps": seeded}});
    acts.patch_status(&name, &pp, &Patch::Merge(&status)).await.unwrap();
    depts.patch(&units[0], &pp, &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"pdc.io/reorganization": &name}}, "spec": {"lifecycle": "Retiring"}}))).await.unwrap();

    acts.patch(&name, &pp, &Patch::Merge(serde_json::json!({"spec": {"action": "Apply", "actionToken": "1"}}))).await.unwrap();
    let done = wait_for(&acts, &name, Duration::from_secs(90), "carried out", |a| a.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Done")).await.unwrap();
    let st = done.status.clone().unwrap();
    assert!(step_states(&done).iter().all(|(_, s)| s == "Done"), "{:?}", step_states(&done));
    let freeze = st.steps.iter().find(|s| s.name == "Freeze").unwrap();
    // Resumed, not restarted: the step keeps its start and is finished now.
    assert_eq!(freeze.started.as_ref().unwrap().0.to_string().as_str(), started, "{freeze:?}");
    assert!(freeze.finished.as_ref().unwrap().0.to_string().as_str() > started, "Freeze did not run again: {freeze:?}");
    assert!(freeze.message.contains(&units[1]) && freeze.message.contains(&units[2]), "{}", freeze.message);
    let applied = conditions::find(&st.conditions, "Applied").unwrap();
    assert_eq!((applied.status.as_str(), applied.reason.as_str()), ("True", "Applied"));

    // What the steps did.
    for (u, to) in [(&units[0], &successor), (&units[1], &successor), (&units[2], &units[3])] {
        let d = depts.get(u).await.unwrap();
        assert_eq!((d.spec.lifecycle, d.spec.successor.as_deref()), (pdc_api::Lifecycle::Retired, Some(to.as_str())), "{u}");
        assert_eq!(d.annotations().get("pdc.io/reorganization"), Some(&name), "{u}");
    }
    let new = depts.get(&successor).await.unwrap();
    assert_eq!((new.spec.display_name.as_str(), new.spec.code.clone()), ("Xã Ea Mới", format!("H15.{n}.8")));
    assert_eq!((new.spec.quota.vms, new.spec.quota.vcpu), (3, 6), "the merged units' quotas: {:?}", new.spec.quota);
    assert_eq!(pdc_core::quantity::parse(&new.spec.quota.memory).ok(), Some(12 << 30), "{:?}", new.spec.quota);
    assert_eq!((new.spec.admins.users.clone(), new.spec.admins.groups.clone()), (vec!["chu-tich@xa-p.vn".to_string()], vec!["xa-q-admins".to_string()]));
    let s = depts.get(&units[3]).await.unwrap();
    assert_eq!((s.spec.code.as_str(), s.spec.previous_codes.clone(), s.spec.display_name.as_str()), (new_code.as_str(), vec![old_code.clone()], "Sở S (mới)"));
    assert_eq!(s.spec.lifecycle, pdc_api::Lifecycle::Active);

    // Another pass (a re-plan) changes nothing: the act stays done, and its field
    // manager's last write on each Department is the one it made.
    let act_writes = || async {
        let mut out = Vec::new();
        for u in [&successor, &units[0], &units[3]] {
            let d = depts.get(u).await.unwrap();
            let mine: Vec<_> = d.metadata.managed_fields.iter().flatten().filter(|m| m.manager.as_deref().is_some_and(|x| x.starts_with("pdc-reorganization-"))).map(|m| (m.manager.clone(), m.time.clone())).collect();
            assert!(!mine.is_empty(), "{u}: the act wrote nothing");
            out.push(mine);
        }
        out
    };
    let before = act_writes().await;
    acts.patch(&name, &pp, &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"pdc.io/replan": "1"}}}))).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = acts.get(&name).await.unwrap();
    assert_eq!(again.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Done"));
    assert_eq!(act_writes().await, before);

    // The act's series are there while it exists and go when it is deleted.
    let label = format!("reorganization=\"{name}\"");
    let series = || env.metrics_get("/metrics").unwrap().1.lines().filter(|l| l.contains(&label)).map(str::to_string).collect::<Vec<_>>();
    assert!(series().iter().any(|l| l.starts_with("pdc_reorganization_names_not_answering")), "{:?}", series());
    acts.delete(&name, &Default::default()).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !series().is_empty() {
        assert!(std::time::Instant::now() < deadline, "series of a deleted act linger: {:?}", series());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
