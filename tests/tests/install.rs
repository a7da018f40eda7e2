//! `pdcctl install crds` run as the built binary against a real API server with the
//! chart installed: an older CRD is upgraded whoever wrote it (another installer, as
//! helm or kubectl would, or an older pdcctl), fields a newer pdc dropped go, a
//! second run changes nothing, `--dry-run` reports the same and stores nothing, a
//! missing CRD is created, and a user without the rights is refused before anything
//! changes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use pdc_tests::cluster::{TestEnv, private_env};
use serde_json::{Value, json};

const SITES: &str = "sites.pdc.io";

/// Run the workspace's pdcctl with `KUBECONFIG=kubeconfig`: exit code, stdout, stderr.
fn pdcctl(kubeconfig: &Path, args: &[&str]) -> (i32, String, String) {
    let bin = pdc_tests::operator::workspace_binary("pdcctl").unwrap();
    let o = Command::new(bin).args(args).env("KUBECONFIG", kubeconfig).stdin(Stdio::null()).output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// `pdcctl install crds <extra> -o json`, which must succeed: its report by CRD name.
fn install(env: &TestEnv, extra: &[&str]) -> BTreeMap<String, Value> {
    let mut args = vec!["install", "crds", "-o", "json"];
    args.extend_from_slice(extra);
    let (code, out, err) = pdcctl(&env.kubeconfig, &args);
    assert_eq!(code, 0, "pdcctl {args:?}: {out}{err}");
    let report: Vec<Value> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(report.len(), pdc_api::all_crds().len(), "one entry per CRD: {out}");
    report.into_iter().map(|r| (r["name"].as_str().unwrap().to_string(), r)).collect()
}

/// Every pdc CRD's resourceVersion: what a write would move.
async fn versions(crds: &Api<CustomResourceDefinition>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for crd in pdc_api::all_crds() {
        let live = crds.get(&crd.name_any()).await.unwrap();
        out.insert(crd.name_any(), live.resource_version().unwrap());
    }
    out
}

/// The CRD as pdcctl ships it.
fn shipped(name: &str) -> CustomResourceDefinition {
    pdc_api::all_crds().into_iter().find(|c| c.name_any() == name).unwrap()
}

/// The Site spec's properties in a CRD's schema.
fn site_fields(crd: &CustomResourceDefinition) -> Value {
    let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
    schema["openAPIV3Schema"]["properties"]["spec"]["properties"].clone()
}

/// sites.pdc.io as an older pdc had it: no `location` yet, and a `legacyCode` since
/// removed.
fn older_sites() -> CustomResourceDefinition {
    let mut v = serde_json::to_value(shipped(SITES)).unwrap();
    let fields = v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"].as_object_mut().unwrap();
    assert!(fields.remove("location").is_some());
    fields.insert("legacyCode".into(), json!({"description": "The site's code in an older plan.", "type": "string"}));
    serde_json::from_value(v).unwrap()
}

/// Whether the API server keeps a Site's `location` (a server dry-run create: a
/// field its CRD does not know is pruned).
async fn keeps_location(client: &kube::Client) -> bool {
    let sites: Api<pdc_api::Site> = Api::all(client.clone());
    let site: pdc_api::Site = serde_json::from_value(json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "Site", "metadata": {"name": "install-probe"},
        "spec": {"displayName": "Probe", "location": "Buôn Ma Thuột"}
    }))
    .unwrap();
    let stored = sites.create(&PostParams { dry_run: true, ..Default::default() }, &site).await.unwrap();
    serde_json::to_value(&stored).unwrap()["spec"].get("location").is_some()
}

/// Check the report: `sites.pdc.io` `change`, every other CRD unchanged.
fn assert_report(report: &BTreeMap<String, Value>, sites: &str, dry_run: bool) {
    for (name, r) in report {
        let want = if name == SITES { sites } else { "unchanged" };
        assert_eq!(r["change"], want, "{name}: {r}");
        assert_eq!(r["dryRun"], dry_run, "{name}: {r}");
        assert_eq!(r["versions"], json!(["v1alpha1"]), "{name}: {r}");
    }
}

/// Wait for the upgraded schema to take effect for new objects: the API server
/// rebuilds a CRD's handler a moment after the update.
async fn wait_keeps_location(client: &kube::Client) {
    wait_schema(client, true).await;
}

/// Wait until new sites keep `location` (`true`) or lose it (`false`).
async fn wait_schema(client: &kube::Client, keeps: bool) {
    let start = std::time::Instant::now();
    while keeps_location(client).await != keeps {
        assert!(start.elapsed() < Duration::from_secs(30), "sites.pdc.io did not take effect within 30 s (keeps location: {keeps})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_crd_is_upgraded_whoever_wrote_it_a_second_run_changes_nothing_and_a_dry_run_stores_nothing() {
    let (env, _plane) = private_env("install").await.unwrap();
    let client = env.client().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());

    // Another installer (helm's create and kubectl's replace write this way) puts
    // back the older sites.pdc.io.
    let mut live = crds.get(SITES).await.unwrap();
    live.spec = older_sites().spec;
    crds.replace(SITES, &PostParams { field_manager: Some("helm".into()), ..Default::default() }, &live).await.unwrap();
    // The older CRD prunes location (once the API server has rebuilt the handler).
    wait_schema(&client, false).await;

    // The dry run says what would change and stores nothing.
    let before = versions(&crds).await;
    let report = install(&env, &["--dry-run"]);
    assert_report(&report, "updated", true);
    let from = report[SITES]["takenOverFrom"].as_array().unwrap();
    assert!(from.contains(&json!("helm")) && from.contains(&json!("pdc-tests")), "{from:?}");
    assert_eq!(versions(&crds).await, before, "the dry run wrote");
    let (code, table, err) = pdcctl(&env.kubeconfig, &["install", "crds", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    let line = table.lines().find(|l| l.starts_with(SITES)).unwrap_or_else(|| panic!("{table}"));
    assert!(line.contains("updated (server dry run)"), "{table}");
    assert_eq!(versions(&crds).await, before, "the dry run wrote");

    // The upgrade: location is there, legacyCode is gone though helm set it, and
    // the schema is the one pdcctl ships.
    assert_report(&install(&env, &[]), "updated", false);
    let upgraded = crds.get(SITES).await.unwrap();
    assert_eq!(site_fields(&upgraded), site_fields(&shipped(SITES)));
    assert!(site_fields(&upgraded).get("legacyCode").is_none());
    wait_keeps_location(&client).await;

    // Again: nothing to do, nothing written, nothing left to take over.
    let before = versions(&crds).await;
    let report = install(&env, &[]);
    assert_report(&report, "unchanged", false);
    assert!(report.values().all(|r| r["takenOverFrom"] == json!([])), "{report:?}");
    assert_eq!(versions(&crds).await, before, "an unchanged CRD was written");

    // An older pdcctl's apply: the upgrade is a plain apply, which removes what
    // that apply set and the new one does not.
    crds.patch(SITES, &PatchParams::apply("pdcctl").force(), &Patch::Apply(older_sites())).await.unwrap();
    let before = versions(&crds).await;
    let (code, yaml, err) = pdcctl(&env.kubeconfig, &["install", "crds", "--dry-run", "-o", "yaml"]);
    assert_eq!(code, 0, "{err}");
    let report: Vec<Value> = serde_yaml::from_str(&yaml).unwrap();
    let sites = report.iter().find(|r| r["name"] == SITES).unwrap();
    assert_eq!((&sites["change"], &sites["dryRun"], &sites["takenOverFrom"]), (&json!("updated"), &json!(true), &json!([])), "{yaml}");
    assert_eq!(versions(&crds).await, before, "the dry run wrote");
    assert_report(&install(&env, &[]), "updated", false);
    assert_eq!(site_fields(&crds.get(SITES).await.unwrap()), site_fields(&shipped(SITES)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_crd_is_created_and_a_user_without_the_rights_is_refused_before_anything_changes() {
    let (env, plane) = private_env("install-rights").await.unwrap();
    let client = env.client().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());

    // A user with no rights, then one who may only read CRDs: each refused, naming
    // the user and what is missing, with nothing changed.
    crds.delete(SITES, &DeleteParams::default()).await.unwrap();
    let start = std::time::Instant::now();
    while crds.get_opt(SITES).await.unwrap().is_some() {
        assert!(start.elapsed() < Duration::from_secs(30), "{SITES} not deleted within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reader_rights = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: crd-reader}\n\
        rules: [{apiGroups: [apiextensions.k8s.io], resources: [customresourcedefinitions], verbs: [get, list, watch]}]\n---\n\
        apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: crd-reader}\n\
        roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: crd-reader}\n\
        subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: reader}]\n";
    pdc_tests::cluster::apply_yaml(&client, reader_rights, None).await.unwrap();
    let before = crds.list(&Default::default()).await.unwrap().items.iter().map(|c| (c.name_any(), c.resource_version())).collect::<Vec<_>>();
    for (user, missing) in [("nobody", "get, create, patch, update"), ("reader", "create, patch, update")] {
        let kubeconfig = plane.kubeconfig_for(user, &[]).unwrap();
        for extra in [&[][..], &["--dry-run"][..]] {
            let mut args = vec!["install", "crds"];
            args.extend_from_slice(extra);
            let (code, out, err) = pdcctl(&kubeconfig, &args);
            assert_eq!(code, 1, "{user} {args:?}: {out}{err}");
            assert!(out.is_empty(), "{out}");
            for want in [format!("user {user} may not {missing} customresourcedefinitions.apiextensions.k8s.io"), "nothing was changed".into(), "cluster-admin".into()] {
                assert!(err.contains(&want), "{user} {args:?}: {err:?} lacks {want:?}");
            }
        }
    }
    let after = crds.list(&Default::default()).await.unwrap().items.iter().map(|c| (c.name_any(), c.resource_version())).collect::<Vec<_>>();
    assert_eq!(after, before, "a refused install changed CRDs");

    // An administrator's run creates it, Established before pdcctl returns.
    let report = install(&env, &[]);
    assert_report(&report, "created", false);
    let created = crds.get(SITES).await.unwrap();
    let established = created.status.and_then(|s| s.conditions).unwrap_or_default().iter().any(|c| c.type_ == "Established" && c.status == "True");
    assert!(established, "{SITES} not Established when pdcctl returned");
    assert_eq!(site_fields(&crds.get(SITES).await.unwrap()), site_fields(&shipped(SITES)));
}
