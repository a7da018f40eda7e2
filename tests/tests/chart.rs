//! The chart on its own, with helm and no cluster: its values schema refuses bad
//! values by name, the PodDisruptionBudget comes only with standbys, the operator's
//! scheduling defaults spread the replicas and give way to the user's, and the
//! install notes render.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::Command;

use pdc_tests::cluster::{chart_dir, helm};
use serde::Deserialize;
use serde_json::{json, Value};

const KUBE_VERSION: &str = "1.36.3";
const NAMESPACE: &str = "pdc-system";

/// `helm lint --strict` of `chart` with `args`: whether it passed, and everything it
/// printed (lint reports its findings on stdout, which the shared helper drops).
fn lint(chart: &Path, args: &[&str]) -> (bool, String) {
    let bin = pdc_tests::controlplane::bin_dir().join("helm");
    assert!(bin.is_file(), "{} is missing: run `bash tests/setup.sh`", bin.display());
    let mut cmd = Command::new(bin);
    cmd.args(["lint", &chart.display().to_string(), "--strict", "--kube-version", KUBE_VERSION]).args(args);
    match pdc_tests::run_command(&mut cmd, None, "helm lint") {
        Ok(out) => (true, out),
        Err(e) => (false, e.to_string()),
    }
}

/// `helm template` of `chart` with `args`: the rendered objects, or helm's message.
fn template(chart: &Path, args: &[&str]) -> Result<Vec<Value>, String> {
    let chart = chart.display().to_string();
    let mut all = vec!["template", "pdc", chart.as_str(), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION];
    all.extend_from_slice(args);
    let out = helm(&all).map_err(|e| e.to_string())?;
    Ok(serde_yaml::Deserializer::from_str(&out).map(|doc| Value::deserialize(doc).unwrap()).filter(|doc| !doc.is_null()).collect())
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// The operator Deployment's pod spec and pod labels.
fn operator_pods(objects: &[Value]) -> (Value, Value) {
    let deploys = of_kind(objects, "Deployment");
    assert_eq!(deploys.len(), 1, "one Deployment: {deploys:?}");
    let template = &deploys[0]["spec"]["template"];
    (template["spec"].clone(), template["metadata"]["labels"].clone())
}

/// Whether every label `selector` asks for is on `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let wanted = selector["matchLabels"].as_object().expect("a selector with matchLabels");
    !wanted.is_empty() && wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn defaults_and_values_the_operator_accepts_lint_clean() {
    let chart = chart_dir();
    let (ok, out) = lint(&chart, &[]);
    assert!(ok, "{out}");
    assert!(!out.contains("[ERROR]") && !out.contains("[WARNING]"), "{out}");
    // The edges of each range, the other log format, the units the operator reads,
    // and replicas 0, which the demo installs with (it runs the operator itself).
    for set in [
        "replicas=0",
        "replicas=10",
        "logFormat=text",
        "leaderElection.leaseDuration=1m,leaderElection.renewDeadline=2.5s,leaderElection.retryPeriod=500ms",
        "metricsPort=1,site=phuyen",
        "image.pullPolicy=Always,image.tag=v0.2.0-rc.1",
        "imageLibraries={golden-images,windows-images}",
        "serviceMonitor.enabled=true,serviceMonitor.interval=1m30s",
    ] {
        let (ok, out) = lint(&chart, &["--set", set]);
        assert!(ok, "--set {set}: {out}");
    }
}

#[test]
fn bad_values_are_refused_by_lint_and_template_naming_the_key() {
    let chart = chart_dir();
    // (the --set, what helm's message must name)
    let cases = [
        ("replicas=-1", "'/replicas'"),
        ("replicas=two", "'/replicas'"),
        ("replicas=1.5", "'/replicas'"),
        ("replica=2", "'replica'"),
        ("logFormat=xml", "'/logFormat'"),
        ("leaderElection.leaseDuration=15", "'/leaderElection/leaseDuration'"),
        ("leaderElection.renewDeadline=10 seconds", "'/leaderElection/renewDeadline'"),
        ("metricsPort=70000", "'/metricsPort'"),
        ("image.pullPolicy=Sometimes", "'/image/pullPolicy'"),
        ("site=Dak Lak", "'/site'"),
        ("imageLibraries={Golden_Images}", "'/imageLibraries/0'"),
        ("serviceMonitor.interval=soon", "'/serviceMonitor/interval'"),
        ("serviceMonitor.enable=true", "'enable'"),
        ("affinity.podAntiAfinity.x=1", "'podAntiAfinity'"),
        ("metrics.readers[0].kind=ServiceAccount,metrics.readers[0].name=prometheus", "'/metrics/readers/0'"),
    ];
    for (set, key) in cases {
        let (ok, out) = lint(&chart, &["--set", set]);
        assert!(!ok, "helm lint --strict accepted --set {set}: {out}");
        assert!(out.contains(key), "helm lint's refusal of --set {set} does not name {key}: {out}");
        let err = template(&chart, &["--set", set]).expect_err(set);
        assert!(err.contains("values don't meet the specifications of the schema"), "--set {set}: {err}");
        assert!(err.contains(key), "helm template's refusal of --set {set} does not name {key}: {err}");
    }
}

/// Every key in values.yaml has its entry in the schema, with a description, so the
/// schema cannot fall behind the values it checks.
#[test]
fn every_value_has_a_described_schema_entry() {
    let chart = chart_dir();
    let values: Value = serde_yaml::from_str(&std::fs::read_to_string(chart.join("values.yaml")).unwrap()).unwrap();
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(chart.join("values.schema.json")).unwrap()).unwrap();
    assert_eq!(schema["additionalProperties"], false, "unknown top-level keys must be refused");
    let mut checked = 0;
    walk(&values, &schema, &schema, "", &mut checked);
    assert!(checked >= 25, "only {checked} keys checked");

    fn walk(values: &Value, node: &Value, schema: &Value, path: &str, checked: &mut usize) {
        let Some(map) = values.as_object() else { return };
        for (key, value) in map {
            let at = format!("{path}.{key}");
            let entry = match node["properties"].get(key) {
                Some(entry) => {
                    assert!(entry["description"].is_string(), "{at} has no description in the schema");
                    *checked += 1;
                    resolve(entry, schema)
                }
                // A map of free keys (labels, resource quantities): its entries are
                // checked by the map's own schema.
                None if node["additionalProperties"].is_object() => resolve(&node["additionalProperties"], schema),
                None => panic!("{at} is in values.yaml but not in values.schema.json"),
            };
            walk(value, entry, schema, &at, checked);
        }
    }
    fn resolve<'a>(entry: &'a Value, schema: &'a Value) -> &'a Value {
        match entry["$ref"].as_str().and_then(|r| r.strip_prefix("#/definitions/")) {
            Some(name) => &schema["definitions"][name],
            None => entry,
        }
    }
}

#[test]
fn a_disruption_budget_only_when_a_standby_can_take_over() {
    let chart = chart_dir();
    for replicas in ["0", "1"] {
        let objects = template(&chart, &["--set", &format!("replicas={replicas}")]).unwrap();
        assert!(of_kind(&objects, "PodDisruptionBudget").is_empty(), "replicas {replicas}: a budget would block every drain");
    }
    for replicas in ["2", "3"] {
        let objects = template(&chart, &["--set", &format!("replicas={replicas}")]).unwrap();
        let budgets = of_kind(&objects, "PodDisruptionBudget");
        assert_eq!(budgets.len(), 1, "replicas {replicas}");
        let spec = &budgets[0]["spec"];
        assert_eq!(spec["minAvailable"], 1, "replicas {replicas}: a drain may take all but the one that leads or takes over");
        let (_, pod_labels) = operator_pods(&objects);
        assert!(selects(&spec["selector"], &pod_labels), "the budget does not cover the operator pods: {spec}");
    }
}

#[test]
fn replicas_spread_over_nodes_and_zones_unless_the_user_says_otherwise() {
    let chart = chart_dir();
    let (pod, labels) = operator_pods(&template(&chart, &[]).unwrap());

    // Preferred, not required: a one-node cluster still runs every replica.
    let anti = &pod["affinity"]["podAntiAffinity"];
    assert!(anti.get("requiredDuringSchedulingIgnoredDuringExecution").is_none(), "{anti}");
    let preferred = anti["preferredDuringSchedulingIgnoredDuringExecution"].as_array().unwrap();
    assert_eq!(preferred.len(), 1, "{anti}");
    let term = &preferred[0]["podAffinityTerm"];
    assert_eq!(term["topologyKey"], "kubernetes.io/hostname");
    assert!(selects(&term["labelSelector"], &labels), "the anti-affinity does not select the operator's own pods: {term}");

    let spread = pod["topologySpreadConstraints"].as_array().unwrap();
    assert_eq!(spread.len(), 1, "{spread:?}");
    assert_eq!(spread[0]["topologyKey"], "topology.kubernetes.io/zone");
    assert_eq!(spread[0]["whenUnsatisfiable"], "ScheduleAnyway", "a one-zone cluster must still schedule");
    assert!(selects(&spread[0]["labelSelector"], &labels), "the spread does not count the operator's own pods: {}", spread[0]);

    // The user's values replace the defaults whole (no merge with them).
    let affinity = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]}]}}});
    let constraints = json!([{"maxSkew": 2, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "pdc"}}}]);
    let tolerations = json!([{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]);
    let (pod, _) = operator_pods(
        &template(&chart, &[
            "--set-json",
            &format!("affinity={affinity}"),
            "--set-json",
            &format!("topologySpreadConstraints={constraints}"),
            "--set-json",
            &format!("tolerations={tolerations}"),
            "--set",
            "nodeSelector.kubernetes\\.io/os=linux,priorityClassName=system-cluster-critical",
        ])
        .unwrap(),
    );
    assert_eq!(pod["affinity"], affinity);
    assert_eq!(pod["topologySpreadConstraints"], constraints);
    assert_eq!(pod["tolerations"], tolerations);
    assert_eq!(pod["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");

    // null: none at all.
    let (pod, _) = operator_pods(&template(&chart, &["--set", "affinity=null,topologySpreadConstraints=null"]).unwrap());
    assert!(pod.get("affinity").is_none() && pod.get("topologySpreadConstraints").is_none(), "{pod}");
    // Unset scheduling values leave no empty fields behind.
    assert!(pod.get("priorityClassName").is_none() && pod.get("nodeSelector").is_none() && pod.get("tolerations").is_none(), "{pod}");
}

/// NOTES.txt as helm would print it after an install with `args`. helm renders notes
/// only for `install`/`upgrade`, which need a cluster, so a copy of the chart renders
/// the same file with `tpl` (the same engine, values and release) into a ConfigMap.
fn notes(args: &[&str]) -> String {
    static RENDERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RENDERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let copy = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("chart-notes-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    copy_dir(&chart_dir(), &copy);
    std::fs::copy(copy.join("templates/NOTES.txt"), copy.join("notes.txt")).unwrap();
    std::fs::write(
        copy.join("templates/notes-under-test.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: {{ tpl (.Files.Get \"notes.txt\") . | quote }}\n",
    )
    .unwrap();
    let mut all = vec!["--show-only", "templates/notes-under-test.yaml"];
    all.extend_from_slice(args);
    let rendered = template(&copy, &all);
    std::fs::remove_dir_all(&copy).unwrap();
    rendered.unwrap()[0]["data"]["notes"].as_str().unwrap().to_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn install_notes_say_how_to_check_the_operator_use_pdcctl_and_upgrade_the_crds() {
    let text = notes(&[]);
    for want in [
        "in namespace pdc-system",
        "kubectl -n pdc-system get deploy pdc-operator",
        "kubectl -n pdc-system get lease pdc-operator",
        "kubectl -n pdc-system logs",
        "kubectl pdc department list",
        "cargo install --path cli",
        "Helm installs the CRDs in crds/ on the first install only",
        "kubectl apply --server-side --force-conflicts -f charts/pdc/crds/",
        "No site is set",
    ] {
        assert!(text.contains(want), "the notes lack {want:?}:\n{text}");
    }

    // No operator running: no commands to check it; a site set: no warning.
    let text = notes(&["--set", "replicas=0,site=daklak"]);
    assert!(text.contains("The operator does not run (replicas: 0)"), "{text}");
    assert!(!text.contains("get deploy pdc-operator") && !text.contains("No site is set"), "{text}");
    assert!(text.contains("charts/pdc/crds/"), "{text}");
}
