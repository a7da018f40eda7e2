//! Disaster recovery between two real API servers (daklak, the primary; phuyen, the
//! standby), each with its own operator under the chart's RBAC, and one real Knot
//! DNS server. KubeVirt and VolSync are played by `pdc_tests::sites` (VMs report what
//! their run strategy says; movers sync every 2 s or on a manual trigger).
//!
//! One test walks a plan through its life, in order: steady state (standby copies,
//! replication, lag and RPO, a mover error), a dry run, a drill, a failover with the
//! standby's operator killed at every step, a relocate back, and a failover with the
//! primary's API server stopped, then its return and fence.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::{Client, ResourceExt};
use pdc_api::conditions::{self, READY};
use pdc_api::{DrPlan, TenantVM};
use pdc_operator::compute::build::{dv_resource, vm_resource};
use pdc_operator::dr::{rd_resource, rs_resource};
use pdc_tests::cluster::wait_for;
use pdc_tests::sites::{PRIMARY, STANDBY, TwoSites, plan, vm};

const DEPT: &str = "so-y-te";

fn cond(p: &DrPlan, t: &str) -> Option<(String, String, String)> {
    let c = conditions::find(&p.status.as_ref()?.conditions, t)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

async fn wait_plan(client: &Client, what: &str, secs: u64, ok: impl Fn(&DrPlan) -> bool) -> DrPlan {
    wait_for(&Api::<DrPlan>::namespaced(client.clone(), DEPT), DEPT, Duration::from_secs(secs), what, ok).await.unwrap_or_else(|e| panic!("{e}"))
}

fn fqdn(host: &str) -> String {
    format!("{host}.{DEPT}.daklak.gov.vn.")
}

/// Poll the DNS server until `name`'s `rtype` answer contains `want` (or, with
/// `absent`, no longer contains it).
fn wait_dns(s: &TwoSites, name: &str, rtype: &str, want: &str, absent: bool, secs: u64) {
    let start = Instant::now();
    loop {
        let got = s.knot.dig(name, rtype, false).unwrap();
        if got.contains(want) != absent {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(secs), "{name} {rtype}: wanted {}{want} within {secs}s; the server answers: {got}", if absent { "no " } else { "" });
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn run_strategy(client: &Client, name: &str) -> Option<String> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), DEPT, &vm_resource());
    api.get_opt(name).await.ok().flatten().and_then(|o| o.data.pointer("/spec/runStrategy").and_then(|r| r.as_str()).map(str::to_string))
}

async fn address(client: &Client, name: &str) -> String {
    let v = Api::<TenantVM>::namespaced(client.clone(), DEPT).get(name).await.unwrap();
    v.status.unwrap().nics[0].ipv4.clone().unwrap()
}

fn steps(p: &DrPlan) -> Vec<(String, String)> {
    p.status.as_ref().and_then(|s| s.last_action.as_ref()).map(|a| a.steps.iter().map(|s| (s.name.clone(), s.state.clone())).collect()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_replicates_drills_fails_over_through_crashes_relocates_and_survives_losing_the_primary() {
    // A full department: its quota is exactly the three VMs below. The standby holds
    // the halted copies and their replicas, and a drill or failover adds the restored
    // copies beside them: the ResourceQuota must leave room for both.
    let mut s = TwoSites::start(DEPT, 3, &[("PDC_DR_STEP_PAUSE", "1s")]).await.unwrap();
    let (pc, sc) = (s.primary.client().await.unwrap(), s.standby.client().await.unwrap());
    let players = s.players.clone();

    // Two protected VMs and one that is not, at the primary. The portal's cloud-init
    // user data is a Secret of the department's: KubeVirt starts no VM without it.
    let userdata = Secret {
        metadata: kube::api::ObjectMeta { name: Some("portal-userdata".into()), ..Default::default() },
        string_data: Some([("userdata".to_string(), "#cloud-config\npackages: [nginx]\n".to_string())].into()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(pc.clone(), DEPT).create(&PostParams::default(), &userdata).await.unwrap();
    let pvms: Api<TenantVM> = Api::namespaced(pc.clone(), DEPT);
    for (n, protected) in [("his", true), ("portal", true), ("scratch", false)] {
        let mut v = vm(n, protected).unwrap();
        if n == "portal" {
            v.spec.cloud_init_secret = Some("portal-userdata".into());
        }
        pvms.create(&PostParams::default(), &v).await.unwrap();
    }
    for n in ["his", "portal", "scratch"] {
        wait_for(&pvms, n, Duration::from_secs(90), "Ready at the primary", |v| v.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY))).await.unwrap();
    }
    let his_p = address(&pc, "his").await;
    assert!(his_p.starts_with("10.15."), "{his_p}");
    wait_dns(&s, &fqdn("his"), "A", &his_p, false, 60);
    Api::<DrPlan>::namespaced(pc.clone(), DEPT).create(&PostParams::default(), &plan(DEPT, "15m").unwrap()).await.unwrap();

    // Standby: the protected VMs are defined and halted, with phuyen's addresses.
    let svms: Api<TenantVM> = Api::namespaced(sc.clone(), DEPT);
    for n in ["his", "portal"] {
        let v = wait_for(&svms, n, Duration::from_secs(90), "standing by", |v| {
            v.status.as_ref().is_some_and(|s| conditions::find(&s.conditions, READY).is_some_and(|c| c.reason == "Standby") && s.nics.first().is_some_and(|n| n.ipv4.is_some()))
        })
        .await
        .unwrap();
        let a = v.status.clone().unwrap().nics[0].ipv4.clone().unwrap();
        assert!(a.starts_with("10.45."), "standby address of {n}: {a}");
        assert_eq!(run_strategy(&sc, n).await.as_deref(), Some("Halted"));
        assert_eq!(v.annotations().get("pdc.io/dr-peer-addresses").map(|x| x.split(',').next().unwrap_or_default().to_string()), Some(address(&pc, n).await));
    }
    assert!(svms.get_opt("scratch").await.unwrap().is_none(), "an unprotected VM was copied");
    // The Secret the portal mounts is copied with it, so its copy can start there.
    let copied = wait_for(&Api::<Secret>::namespaced(sc.clone(), DEPT), "portal-userdata", Duration::from_secs(30), "copied", |_| true).await.unwrap();
    assert_eq!(copied.labels().get("pdc.io/dr-plan").map(String::as_str), Some(DEPT));
    let his_s = address(&sc, "his").await;
    // DNS untouched by the standby.
    assert!(!s.knot.dig(&fqdn("his"), "A", false).unwrap().contains(&his_s));

    // VolSync: a source here per disk on a schedule from the RPO, a destination there,
    // the rsync-TLS key Secret copied here; lag and RPO in status.
    let p = wait_plan(&pc, "Protected and within RPO", 90, |p| cond(p, "Protected").is_some_and(|c| c.0 == "True") && cond(p, "RpoMet").is_some_and(|c| c.0 == "True")).await;
    let st = p.status.clone().unwrap();
    assert_eq!(st.volumes.len(), 2, "{st:?}");
    assert!(st.volumes.iter().all(|v| v.last_sync_time.is_some()) && st.lag_seconds.unwrap() < 60, "{st:?}");
    assert_eq!(st.site.as_deref(), Some(PRIMARY));
    let rs = Api::<DynamicObject>::namespaced_with(pc.clone(), DEPT, &rs_resource()).get("his-root").await.unwrap();
    assert_eq!(rs.data["spec"]["trigger"]["schedule"], "*/5 * * * *");
    assert_eq!(rs.data["spec"]["sourcePVC"], "his-root");
    let rd = Api::<DynamicObject>::namespaced_with(sc.clone(), DEPT, &rd_resource()).get("his-root").await.unwrap();
    assert_eq!(rd.data["spec"]["rsyncTLS"]["capacity"], "20Gi");
    assert_eq!(rd.data["spec"]["rsyncTLS"]["storageClassName"], "pdc-ssd");
    assert!(Api::<Secret>::namespaced(pc.clone(), DEPT).get_opt("volsync-rsync-tls-his-root").await.unwrap().is_some());
    let sp = wait_plan(&sc, "the standby's view", 60, |p| p.status.as_ref().is_some_and(|s| s.phase.as_deref() == Some("Standby") && s.volumes.iter().all(|v| v.latest_image.is_some()) && s.volumes.len() == 2)).await;
    assert!(sp.status.unwrap().peer_addresses.contains(&his_p));

    // pdcctl and metrics.
    let (code, out) = pdc_tests::pdcctl(&s.primary.env.kubeconfig, &["dr", "status", "-A"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("PLAN") && out.contains(DEPT) && out.contains(STANDBY) && out.contains("15m") && out.contains("Protected") && out.contains("never"), "{out}");
    let op = s.primary.operator.as_ref().unwrap();
    let start = Instant::now();
    while op.metric(&format!("pdc_dr_rpo_seconds{{namespace=\"{DEPT}\",plan=\"{DEPT}\"}}")).unwrap() != 900.0 {
        assert!(start.elapsed() < Duration::from_secs(30), "no pdc_dr_rpo_seconds");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(op.metric(&format!("pdc_dr_protected{{namespace=\"{DEPT}\",plan=\"{DEPT}\"}}")).unwrap(), 1.0);
    pdc_tests::operator::promtool_check_metrics(&op.http_get("/metrics").unwrap().1).unwrap();

    // A mover error is Protected=False with the mover's words, then recovers.
    players.failing.lock().unwrap().insert("his-root".into());
    let p = wait_plan(&pc, "Protected=False", 30, |p| cond(p, "Protected").is_some_and(|c| c.0 == "False")).await;
    let msg = cond(&p, "Protected").unwrap().2;
    assert!(msg.contains("his-root") && msg.contains("mover failed") && msg.contains("error in socket IO"), "{msg}");
    players.failing.lock().unwrap().clear();
    wait_plan(&pc, "Protected again", 30, |p| cond(p, "Protected").is_some_and(|c| c.0 == "True")).await;

    // A dry run prints the steps and changes nothing.
    let (code, out) = pdc_tests::pdcctl(&s.standby.env.kubeconfig, &["dr", "failover", DEPT, "-d", DEPT, "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Planned") && out.contains("Fence") && out.contains("Promote") && out.contains("his-root ← volsync-his-root-dst") && out.contains("SwitchDNS"), "{out}");
    assert_eq!(Api::<DrPlan>::namespaced(sc.clone(), DEPT).get(DEPT).await.unwrap().active_site(), PRIMARY);
    // Asking the active site for a failover is refused with where to ask.
    let (code, out) = pdc_tests::pdcctl(&s.primary.env.kubeconfig, &["dr", "failover", DEPT, "-d", DEPT, "--yes"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("already runs") && out.contains(STANDBY), "{out}");

    // A drill at the standby: copies run under the drill subdomain, then go; the
    // primary keeps serving.
    let (code, out) = pdc_tests::pdcctl(&s.standby.env.kubeconfig, &["dr", "drill", DEPT, "-d", DEPT]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Passed") && out.contains(&format!("his.drill.{DEPT}.daklak.gov.vn.")) && out.contains("Teardown"), "{out}");
    let sp = Api::<DrPlan>::namespaced(sc.clone(), DEPT).get(DEPT).await.unwrap().status.unwrap();
    assert_eq!(sp.last_drill.as_ref().unwrap().result, "Passed");
    assert!(sp.last_standby_check.is_some());
    assert!(Api::<DynamicObject>::namespaced_with(sc.clone(), DEPT, &vm_resource()).get_opt("his-drill").await.unwrap().is_none());
    wait_dns(&s, &format!("his.drill.{DEPT}.daklak.gov.vn."), "A", &his_s, true, 40);
    assert_eq!(run_strategy(&pc, "his").await.as_deref(), Some("Always"));
    assert!(s.knot.dig(&fqdn("his"), "A", false).unwrap().contains(&his_p));

    // Failover with both sites up, the standby's operator killed in every step.
    let (code, out) = pdc_tests::pdcctl(&s.standby.env.kubeconfig, &["dr", "failover", DEPT, "-d", DEPT, "--no-wait", "--yes"]);
    assert_eq!(code, 0, "{out}");
    let splans: Api<DrPlan> = Api::namespaced(sc.clone(), DEPT);
    for step in ["Fence", "Promote", "StartVMs", "SwitchDNS"] {
        let start = Instant::now();
        loop {
            let p = splans.get(DEPT).await.unwrap();
            // A quick step can begin and end between two reads: one that has begun
            // (Running or Done in the timeline) counts, and the kill then lands just
            // after it.
            let begun = steps(&p).iter().any(|(n, st)| n == step && st != "Pending");
            if p.status.as_ref().and_then(|s| s.current_step.as_deref()) == Some(step) || begun {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(90), "step {step} never began: {:?}", steps(&p));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if step == "Fence" {
            // Deleting the plan mid-action is refused at the API.
            let e = splans.delete(DEPT, &DeleteParams::default()).await.unwrap_err().to_string();
            assert!(e.contains("carrying out Failover"), "{e}");
        }
        s.standby.kill_operator();
        s.standby.start_operator().unwrap();
    }
    let p = wait_plan(&sc, "failover done", 120, |p| p.status.as_ref().and_then(|s| s.last_action.as_ref()).is_some_and(|a| a.result != "Running")).await;
    let a = p.status.clone().unwrap().last_action.unwrap();
    assert_eq!(a.result, "Succeeded", "{a:?}");
    assert_eq!(steps(&p), ["Fence", "Promote", "StartVMs", "SwitchDNS"].map(|n| (n.to_string(), "Done".to_string())));
    assert!(a.steps.iter().all(|s| s.started.is_some() && s.finished.is_some()));
    assert_eq!(p.active_site(), STANDBY);
    wait_dns(&s, &fqdn("his"), "A", &his_s, false, 60);
    wait_dns(&s, &fqdn("his"), "A", &his_p, true, 60);
    let rev = |a: &str| pdc_core::ipam::Addr::parse(a).unwrap().reverse_name();
    wait_dns(&s, &rev(&his_s), "PTR", &fqdn("his"), false, 60);
    wait_dns(&s, &rev(&his_p), "PTR", &fqdn("his"), true, 60);
    // At the old primary, the VM's records say the standby carries the name, and
    // `pdcctl dns check` there does not call phuyen's answer a difference.
    let precords: Api<pdc_api::DnsRecord> = Api::namespaced(pc.clone(), DEPT);
    let lp = ListParams::default().labels(&format!("{}=his", pdc_operator::compute::build::VM_LABEL));
    let start = Instant::now();
    loop {
        let recs = precords.list(&lp).await.unwrap().items;
        let at_other = |r: &pdc_api::DnsRecord| {
            r.status.as_ref().and_then(|s| conditions::find(&s.conditions, "Programmed")).is_some_and(|c| c.status == "False" && c.reason == "AtOtherSite" && c.message.contains(&format!("site {STANDBY} carries this name")))
        };
        if !recs.is_empty() && recs.iter().all(at_other) {
            break;
        }
        let seen: Vec<_> = recs.iter().map(|r| r.status.as_ref().map(|s| s.conditions.clone())).collect();
        assert!(start.elapsed() < Duration::from_secs(60), "the old primary's records of his: {seen:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, out) = pdc_tests::pdcctl(&s.primary.env.kubeconfig, &["dns", "check", &fqdn("his"), "--type", "A"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&his_s) && out.contains(&format!("not compared: site {STANDBY} carries this name")), "{out}");
    assert_eq!(run_strategy(&pc, "his").await.as_deref(), Some("Halted"));
    assert_eq!(Api::<DrPlan>::namespaced(pc.clone(), DEPT).get(DEPT).await.unwrap().active_site(), STANDBY);
    let dv = Api::<DynamicObject>::namespaced_with(sc.clone(), DEPT, &dv_resource()).get("his-root").await.unwrap();
    assert!(dv.data["spec"]["source"]["snapshot"]["name"].as_str().unwrap().starts_with("volsync-his-root-dst"), "{:?}", dv.data);
    assert!(players.violations.lock().unwrap().is_empty(), "{:?}", players.violations.lock().unwrap());

    // A relocate while phuyen does not replicate back (its mover fails) would lose
    // data: refused, saying why.
    players.failing.lock().unwrap().insert("his-root".into());
    wait_plan(&sc, "phuyen's mover failing", 60, |p| cond(p, "Protected").is_some_and(|c| c.0 == "False" && c.2.contains("mover failed"))).await;
    let (code, out) = pdc_tests::pdcctl(&s.primary.env.kubeconfig, &["dr", "relocate", DEPT, "-d", DEPT, "--yes"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("does not replicate here yet") && out.contains("use Failover"), "{out}");
    players.failing.lock().unwrap().clear();
    // Relocate back: replication now runs phuyen → daklak; the standby's VMs stop,
    // sync once more, and the primary takes over.
    wait_plan(&sc, "replicating back to the primary", 90, |p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Protected") && cond(p, "Protected").is_some_and(|c| c.0 == "True")).await;
    let (code, out) = pdc_tests::pdcctl(&s.primary.env.kubeconfig, &["dr", "relocate", DEPT, "-d", DEPT, "--yes"]);
    assert_eq!(code, 0, "{out}");
    for st in ["Fence", "StopSource", "FinalSync", "Promote", "StartVMs", "SwitchDNS", "Succeeded"] {
        assert!(out.contains(st), "{st}: {out}");
    }
    wait_dns(&s, &fqdn("his"), "A", &his_p, false, 60);
    assert_eq!(run_strategy(&sc, "his").await.as_deref(), Some("Halted"));
    assert_eq!(run_strategy(&pc, "his").await.as_deref(), Some("Always"));
    let dv = Api::<DynamicObject>::namespaced_with(pc.clone(), DEPT, &dv_resource()).get("his-root").await.unwrap();
    assert!(dv.annotations().get("pdc.io/dr-restored-from").is_some_and(|s| s.starts_with("volsync-his-root-dst")), "{:?}", dv.metadata);
    let pp = Api::<DrPlan>::namespaced(pc.clone(), DEPT).get(DEPT).await.unwrap().status.unwrap();
    assert!(pp.last_drill.unwrap().message.contains("relocated"));
    assert!(players.violations.lock().unwrap().is_empty(), "{:?}", players.violations.lock().unwrap());

    // The primary is lost (its API server stops): failover needs nothing from it.
    wait_plan(&pc, "replicating to the standby again", 90, |p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Protected") && cond(p, "Protected").is_some_and(|c| c.0 == "True")).await;
    players.down.lock().unwrap().insert(0);
    s.primary.plane.stop_apiserver();
    let t = Instant::now();
    let (code, out) = pdc_tests::pdcctl(&s.standby.env.kubeconfig, &["dr", "failover", DEPT, "-d", DEPT, "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("does not answer") && out.contains("Succeeded"), "{out}");
    wait_dns(&s, &fqdn("his"), "A", &his_s, false, 60);
    eprintln!("failover with the primary down: {:.1}s", t.elapsed().as_secs_f64());
    let sp = splans.get(DEPT).await.unwrap().status.unwrap();
    assert!(!sp.fence.as_ref().unwrap().confirmed);
    assert_eq!(run_strategy(&sc, "his").await.as_deref(), Some("Always"));

    // It comes back (API server and operator restart): its VMs are halted by the
    // fence, it takes the newer epoch's record, and DNS stays at the standby.
    s.primary.plane.start_apiserver().unwrap();
    s.primary.kill_operator();
    s.primary.start_operator().unwrap();
    players.down.lock().unwrap().clear();
    let back = Instant::now();
    wait_plan(&pc, "the primary's copy names the standby active", 60, |p| p.active_site() == STANDBY).await;
    let start = Instant::now();
    while run_strategy(&pc, "his").await.as_deref() != Some("Halted") {
        assert!(start.elapsed() < Duration::from_secs(60), "the returning primary's VM was not halted");
        // Not for a moment does the name go back to the returning primary.
        assert!(!s.knot.dig(&fqdn("his"), "A", false).unwrap().contains(&his_p), "the returning primary took the name back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("returning primary fenced in {:.1}s", back.elapsed().as_secs_f64());
    wait_plan(&sc, "fence confirmed", 60, |p| p.status.as_ref().and_then(|s| s.fence.as_ref()).is_some_and(|f| f.confirmed)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(s.knot.dig(&fqdn("his"), "A", false).unwrap().contains(&his_s));
    assert!(!s.knot.dig(&fqdn("his"), "A", false).unwrap().contains(&his_p));

    // The plan is deleted at the active site (phuyen): its copy at daklak goes with the
    // halted VM copies there, the replication objects and copied Secrets go at both
    // sites, and the VMs keep running at phuyen.
    splans.delete(DEPT, &DeleteParams::default()).await.unwrap();
    let pplans = Api::<DrPlan>::namespaced(pc.clone(), DEPT);
    let start = Instant::now();
    while splans.get_opt(DEPT).await.unwrap().is_some() || pplans.get_opt(DEPT).await.unwrap().is_some() {
        if start.elapsed() > Duration::from_secs(60) {
            let log = [s.primary.log(), s.standby.log()].into_iter().flatten().filter_map(|p| std::fs::read_to_string(p).ok()).collect::<Vec<_>>().join("\n");
            let lines: Vec<&str> = log.lines().filter(|l| l.contains("\"drplan\"") || l.contains("DrPlan removed")).collect();
            panic!("the plan or its copy at the other site stayed:\n{}", lines.iter().rev().take(6).cloned().collect::<Vec<_>>().join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dr_label = ListParams::default().labels(&format!("pdc.io/dr-plan={DEPT}"));
    let start = Instant::now();
    loop {
        let mut left = Vec::new();
        for (site, c) in [("daklak", &pc), ("phuyen", &sc)] {
            for ar in [rs_resource(), rd_resource()] {
                let n = Api::<DynamicObject>::namespaced_with(c.clone(), DEPT, &ar).list(&dr_label).await.unwrap().items.len();
                if n > 0 {
                    left.push(format!("{n} {} at {site}", ar.plural));
                }
            }
            let secrets = Api::<Secret>::namespaced(c.clone(), DEPT).list(&dr_label).await.unwrap().items;
            if !secrets.is_empty() {
                left.push(format!("Secrets at {site}: {:?}", secrets.iter().map(|s| s.name_any()).collect::<Vec<_>>()));
            }
        }
        for n in ["his", "portal"] {
            if pvms.get_opt(n).await.unwrap().is_some() {
                left.push(format!("the halted copy of {n} at daklak"));
            }
        }
        if left.is_empty() {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let log = [s.primary.log(), s.standby.log()].into_iter().flatten().filter_map(|p| std::fs::read_to_string(p).ok()).collect::<Vec<_>>().join("\n");
            let lines: Vec<&str> = log.lines().filter(|l| l.contains("removed") || l.contains("Secret") || l.contains("drplan")).collect();
            panic!("left behind after deleting the plan: {}\n{}", left.join("; "), lines.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for n in ["his", "portal"] {
        assert_eq!(run_strategy(&sc, n).await.as_deref(), Some("Always"), "{n} stopped at the active site");
        assert!(svms.get_opt(n).await.unwrap().is_some());
    }
    players.stop();
}
