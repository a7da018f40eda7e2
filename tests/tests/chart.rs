//! The chart on its own, with helm: its values schema refuses bad values by name,
//! every setting the operator reads is set from a value, the PodDisruptionBudget comes only with standbys, the operator's scheduling
//! defaults spread the replicas and give way to the user's, the install notes
//! render, the operator's NetworkPolicy lets through what it needs and nothing
//! else, and the `helm test` Pod runs the operator's image in its check mode (run
//! here as the kubelet would, against a real operator).
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
        "leaderElection.leaseName=pdc-operator.daklak,concurrency=1,watchFailureLimit=1h,dns.resync=1m30s,dns.maxBackoff=500ms",
        "concurrency=1000,dr.peerAccess=false,dr.stepPause=2s",
        "metricsPort=1,site=phuyen",
        "image.pullPolicy=Always,image.tag=v0.2.0-rc.1",
        "imageLibraries={golden-images,windows-images}",
        "serviceMonitor.enabled=true,serviceMonitor.interval=1m30s",
        "prometheusRule.enabled=true,prometheusRule.runbookBaseUrl=https://git.daklak.gov.vn/pdc/pdc/src/branch/main",
        "dashboard.enabled=true,dashboard.namespace=monitoring,dashboard.labels.grafana_dashboard=null,dashboard.annotations.grafana_folder=pdc",
        "networkPolicy.enabled=false",
        "networkPolicy.metrics.namespaces=null,networkPolicy.apiServer.cidrs={10.10.0.10/32,fd00:10::10/128},networkPolicy.apiServer.ports={6443}",
        "site=daklak,networkPolicy.drPeer.cidrs={172.20.0.10/32},networkPolicy.dnsServers.cidrs={10.20.0.53/32},networkPolicy.dnsServers.ports={53,5353}",
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
        ("leaderElection.leaseName=Pdc_Operator", "'/leaderElection/leaseName'"),
        ("concurrency=0", "'/concurrency'"),
        ("concurrency=many", "'/concurrency'"),
        ("watchFailureLimit=300", "'/watchFailureLimit'"),
        ("dns.resync=30", "'/dns/resync'"),
        ("dns.maxBackoff=1 minute", "'/dns/maxBackoff'"),
        ("dns.resyncPeriod=30s", "'resyncPeriod'"),
        ("dr.peerAccess=maybe", "'/dr/peerAccess'"),
        ("dr.stepPause=-1s", "'/dr/stepPause'"),
        ("reorganization.stepPause=soon", "'/reorganization/stepPause'"),
        ("metricsPort=70000", "'/metricsPort'"),
        ("image.pullPolicy=Sometimes", "'/image/pullPolicy'"),
        ("site=Dak Lak", "'/site'"),
        ("imageLibraries={Golden_Images}", "'/imageLibraries/0'"),
        ("serviceMonitor.interval=soon", "'/serviceMonitor/interval'"),
        ("serviceMonitor.enable=true", "'enable'"),
        ("affinity.podAntiAfinity.x=1", "'podAntiAfinity'"),
        ("metrics.readers[0].kind=ServiceAccount,metrics.readers[0].name=prometheus", "'/metrics/readers/0'"),
        ("prometheusRule.runbookBaseUrl=docs/runbooks", "'/prometheusRule/runbookBaseUrl'"),
        ("dashboard.enabled=yes", "'/dashboard/enabled'"),
        ("dashboard.namespace=Monitoring", "'/dashboard/namespace'"),
        ("dashboard.labels.grafana_dashboard=1", "'/dashboard/labels/grafana_dashboard'"),
        ("dashboard.annotations.grafana_folder=true", "'/dashboard/annotations/grafana_folder'"),
        ("dashboard.folder=pdc", "'folder'"),
        ("networkPolicy.enabled=maybe", "'/networkPolicy/enabled'"),
        ("networkPolicy.metrics.namespaces={Monitoring}", "'/networkPolicy/metrics/namespaces/0'"),
        ("networkPolicy.metrics.from[0].pods.app=prometheus", "'pods'"),
        ("networkPolicy.apiServer.cidrs={10.0.0.1}", "'/networkPolicy/apiServer/cidrs/0'"),
        ("networkPolicy.apiServer.ports={70000}", "'/networkPolicy/apiServer/ports/0'"),
        ("networkPolicy.clusterDns.namespace=kube_system", "'/networkPolicy/clusterDns/namespace'"),
        ("networkPolicy.clusterDns.podLabels=null", "'podLabels'"),
        ("networkPolicy.dnsServers.cidrs={10.20.0.53/33}", "'/networkPolicy/dnsServers/cidrs/0'"),
        ("networkPolicy.drPeer.ports=null", "'ports'"),
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

/// The settings the operator reads from its environment, as its source declares
/// them (`#[arg(..., env = "NAME", default_value = ...)]` in operator/src/main.rs):
/// each variable's name and its default, if it has one.
fn operator_settings() -> Vec<(String, Option<String>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../operator/src/main.rs");
    let source = std::fs::read_to_string(path).unwrap();
    let after = |line: &str, key: &str, end: &[char]| {
        line.split_once(key).and_then(|(_, rest)| rest.split_once(end)).map(|(value, _)| value.to_string())
    };
    source
        .lines()
        .filter(|line| line.trim_start().starts_with("#[arg("))
        .filter_map(|line| {
            let name = after(line, "env = \"", &['"'])?;
            let default = after(line, "default_value = \"", &['"']).or_else(|| after(line, "default_value_t = ", &[',', ')']));
            Some((name, default))
        })
        .collect()
}

/// The operator container's environment: variable → its literal value, or `None`
/// when it comes from elsewhere (the downward API).
fn operator_env(objects: &[Value]) -> std::collections::BTreeMap<String, Option<String>> {
    let (pod, _) = operator_pods(objects);
    let container = pod["containers"].as_array().unwrap().iter().find(|c| c["name"] == "operator").expect("the operator container");
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e["value"].as_str().map(str::to_string)))
        .collect()
}

/// Every setting the operator reads is set by the chart from a value, so a new
/// setting without a chart value fails here; the chart's defaults are the
/// operator's own, and each value reaches its variable.
#[test]
fn the_deployment_sets_every_setting_the_operator_reads() {
    let chart = chart_dir();
    let settings = operator_settings();
    let pdc: Vec<&str> = settings.iter().map(|(n, _)| n.as_str()).filter(|n| n.starts_with("PDC_")).collect();
    assert!(pdc.len() >= 15 && pdc.contains(&"PDC_WATCH_FAILURE_LIMIT"), "reading operator/src/main.rs found only {pdc:?}");

    // A province's install: with a site. Without one, PDC_SITE alone stays unset
    // (the operator would read an empty one as a site named "").
    let env = operator_env(&template(&chart, &["--set", "site=daklak"]).unwrap());
    for (name, _) in &settings {
        assert!(env.contains_key(name), "the operator reads {name} but the chart's Deployment does not set it: add a value for it");
    }
    let defaults = operator_env(&template(&chart, &[]).unwrap());
    let unset: Vec<&str> = settings.iter().map(|(n, _)| n.as_str()).filter(|n| !defaults.contains_key(*n)).collect();
    assert_eq!(unset, ["PDC_SITE"], "{defaults:?}");

    // The chart's defaults change nothing the operator would choose by itself.
    for (name, default) in &settings {
        if let (Some(Some(chart_value)), Some(default)) = (defaults.get(name), default) {
            assert_eq!(chart_value, default, "{name}: the chart's default differs from the operator's");
        }
    }

    // Each value reaches its variable.
    let cases = [
        ("metricsPort=9090", "PDC_METRICS_ADDR", "0.0.0.0:9090"),
        ("metrics.auth=false", "PDC_METRICS_AUTH", "false"),
        ("dr.peerAccess=false", "PDC_DR_PEER_SERVICE_ACCOUNT", ""),
        ("leaderElection.leaseName=pdc-lease-daklak", "PDC_LEASE_NAME", "pdc-lease-daklak"),
        ("leaderElection.leaseDuration=1m", "PDC_LEASE_DURATION", "1m"),
        ("leaderElection.renewDeadline=40s", "PDC_RENEW_DEADLINE", "40s"),
        ("leaderElection.retryPeriod=5s", "PDC_RETRY_PERIOD", "5s"),
        ("concurrency=7", "PDC_CONCURRENCY", "7"),
        ("logFormat=text", "PDC_LOG_FORMAT", "text"),
        ("dns.resync=45s", "PDC_DNS_RESYNC", "45s"),
        ("dns.maxBackoff=2m", "PDC_DNS_MAX_BACKOFF", "2m"),
        ("site=phuyen", "PDC_SITE", "phuyen"),
        ("dr.stepPause=1500ms", "PDC_DR_STEP_PAUSE", "1500ms"),
        ("reorganization.stepPause=2s", "PDC_REORG_STEP_PAUSE", "2s"),
        ("watchFailureLimit=1h", "PDC_WATCH_FAILURE_LIMIT", "1h"),
    ];
    let set: Vec<&str> = cases.iter().map(|(set, _, _)| *set).collect();
    let env = operator_env(&template(&chart, &["--set", &set.join(",")]).unwrap());
    for (set, name, want) in cases {
        assert_eq!(env[name].as_deref(), Some(want), "--set {set}");
    }
    let untested: Vec<&str> = pdc.iter().copied().filter(|n| *n != "PDC_SERVICE_ACCOUNT" && !cases.iter().any(|(_, c, _)| c == n)).collect();
    assert!(untested.is_empty(), "no value is checked to reach {untested:?}");

    // The ServiceAccounts named are the ones the chart makes: the operator's is
    // the pod's own, the DR peer's is the chart's pdc-dr-peer.
    let objects = template(&chart, &[]).unwrap();
    let (pod, _) = operator_pods(&objects);
    let container = &pod["containers"][0];
    let sa_env = container["env"].as_array().unwrap().iter().find(|e| e["name"] == "PDC_SERVICE_ACCOUNT").unwrap();
    assert_eq!(sa_env["valueFrom"]["fieldRef"]["fieldPath"], "spec.serviceAccountName", "{sa_env}");
    let accounts: Vec<&Value> = of_kind(&objects, "ServiceAccount").into_iter().map(|a| &a["metadata"]["name"]).collect();
    assert!(accounts.contains(&&pod["serviceAccountName"]), "{accounts:?}");
    let peer = operator_env(&objects)["PDC_DR_PEER_SERVICE_ACCOUNT"].clone().unwrap();
    assert!(accounts.contains(&&Value::String(peer.clone())), "{peer} is not among the chart's ServiceAccounts {accounts:?}");
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
        "pdcctl install crds",
        "No site is set",
    ] {
        assert!(text.contains(want), "the notes lack {want:?}:\n{text}");
    }

    // No operator running: no commands to check it; a site set: no warning.
    let text = notes(&["--set", "replicas=0,site=daklak"]);
    assert!(text.contains("The operator does not run (replicas: 0)"), "{text}");
    assert!(!text.contains("get deploy pdc-operator") && !text.contains("No site is set"), "{text}");
    assert!(text.contains("charts/pdc/crds/"), "{text}");
    // The lease the chart names is the one to look at.
    let text = notes(&["--set", "leaderElection.leaseName=pdc-leader"]);
    assert!(text.contains("get lease pdc-leader") && !text.contains("get lease pdc-operator"), "{text}");
}

fn string_map(v: &Value) -> std::collections::BTreeMap<String, String> {
    v.as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect()).unwrap_or_default()
}

/// The rendered NetworkPolicy, and whether the operator pods may open `protocol`
/// connections to `dest` on `port` under it (the egress semantics of the players).
struct OperatorPolicy {
    policy: Value,
    pod_labels: std::collections::BTreeMap<String, String>,
}

impl OperatorPolicy {
    fn render(args: &[&str]) -> Option<Self> {
        let objects = template(&chart_dir(), args).unwrap();
        let policies = of_kind(&objects, "NetworkPolicy");
        assert!(policies.len() <= 1, "{policies:?}");
        let policy = (*policies.first()?).clone();
        let (_, labels) = operator_pods(&objects);
        assert!(selects(&policy["spec"]["podSelector"], &labels), "the policy does not select the operator pods: {policy}");
        assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        Some(Self { policy, pod_labels: string_map(&labels) })
    }

    fn egress(&self, dest: &pdc_tests::players::netpol::Destination, protocol: &str, port: i32) -> bool {
        let np: k8s_openapi::api::networking::v1::NetworkPolicy = serde_json::from_value(self.policy.clone()).unwrap();
        let ns_labels = [("kubernetes.io/metadata.name".to_string(), NAMESPACE.to_string())].into();
        pdc_tests::players::netpol::egress_allowed(&[std::sync::Arc::new(np)], NAMESPACE, &ns_labels, &self.pod_labels, dest, protocol, port)
    }

    fn external(&self, addr: &str, protocol: &str, port: i32) -> bool {
        self.egress(&pdc_tests::players::netpol::Destination::External(addr), protocol, port)
    }
}

#[test]
fn the_operator_network_policy_lets_in_scrapers_only_and_out_the_api_server_dns_and_the_dr_peer_only() {
    use pdc_tests::players::netpol::Destination;
    let p = OperatorPolicy::render(&[]).expect("a NetworkPolicy by default");

    // Ingress: one rule, the metrics port only, from the monitoring namespace and the
    // chart's own test Pod.
    let ingress = p.policy["spec"]["ingress"].as_array().unwrap();
    assert_eq!(ingress.len(), 1, "{ingress:?}");
    assert_eq!(ingress[0]["ports"], json!([{"protocol": "TCP", "port": 8080}]));
    let from = ingress[0]["from"].as_array().unwrap();
    assert!(from.contains(&json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}})), "{from:?}");
    let test_pods = of_kind(&template(&chart_dir(), &[]).unwrap(), "Pod").into_iter().cloned().collect::<Vec<_>>();
    assert_eq!(test_pods.len(), 1);
    let test_labels = &test_pods[0]["metadata"]["labels"];
    assert!(from.iter().any(|peer| peer.get("namespaceSelector").is_none() && selects(&peer["podSelector"], test_labels)), "the helm test Pod is not let in: {from:?}");
    assert_eq!(from.len(), 2, "{from:?}");

    // Egress: the cluster DNS pods on 53, the API server (any address until its
    // CIDRs are given) on 443 and 6443, the DNS servers on 53; nothing else.
    let kube_system: std::collections::BTreeMap<String, String> = [("kubernetes.io/metadata.name".to_string(), "kube-system".to_string())].into();
    let kube_dns: std::collections::BTreeMap<String, String> = [("k8s-app".to_string(), "kube-dns".to_string())].into();
    let other: std::collections::BTreeMap<String, String> = [("app".to_string(), "metrics-server".to_string())].into();
    for protocol in ["UDP", "TCP"] {
        assert!(p.egress(&Destination::Pod { namespace_labels: &kube_system, labels: &kube_dns }, protocol, 53), "{protocol} 53 to kube-dns");
    }
    assert!(!p.egress(&Destination::Pod { namespace_labels: &kube_system, labels: &other }, "TCP", 53));
    assert!(!p.egress(&Destination::Pod { namespace_labels: &kube_system, labels: &kube_dns }, "TCP", 8080));
    for addr in ["10.0.0.1", "192.168.10.5", "fd00:10::1"] {
        assert!(p.external(addr, "TCP", 443) && p.external(addr, "TCP", 6443), "the API server at {addr}");
        assert!(p.external(addr, "UDP", 53) && p.external(addr, "TCP", 53), "a DNS server at {addr}");
        assert!(!p.external(addr, "TCP", 80) && !p.external(addr, "TCP", 22) && !p.external(addr, "UDP", 6443), "{addr}");
    }

    // CIDRs given: only those addresses; the DR peer's rule once a site is set.
    let p = OperatorPolicy::render(&[
        "--set",
        "site=daklak,networkPolicy.apiServer.cidrs={10.10.0.10/32,fd00:10::10/128},networkPolicy.apiServer.ports={6443}",
        "--set",
        "networkPolicy.dnsServers.cidrs={10.20.0.53/32},networkPolicy.dnsServers.ports={53,5353}",
        "--set",
        "networkPolicy.drPeer.cidrs={172.20.0.10/32},networkPolicy.drPeer.ports={6443}",
    ])
    .unwrap();
    assert!(p.external("10.10.0.10", "TCP", 6443) && p.external("fd00:10::10", "TCP", 6443));
    assert!(!p.external("10.10.0.10", "TCP", 443) && !p.external("10.10.0.11", "TCP", 6443));
    assert!(p.external("10.20.0.53", "UDP", 53) && p.external("10.20.0.53", "TCP", 5353));
    assert!(!p.external("10.20.0.54", "UDP", 53) && !p.external("10.10.0.10", "UDP", 53));
    assert!(p.external("172.20.0.10", "TCP", 6443), "the DR peer");
    assert!(!p.external("172.20.0.11", "TCP", 6443) && !p.external("172.20.0.10", "TCP", 22));

    // No site and no DR peer CIDRs: no DR peer rule; scrapers of the user's choosing.
    let peer = json!({"namespaceSelector": {"matchLabels": {"team": "sre"}}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}});
    let p = OperatorPolicy::render(&[
        "--set",
        "networkPolicy.apiServer.cidrs={10.10.0.10/32},networkPolicy.metrics.namespaces=null",
        "--set-json",
        &format!("networkPolicy.metrics.from=[{peer}]"),
    ])
    .unwrap();
    assert!(!p.external("172.20.0.10", "TCP", 6443), "a DR peer rule without a site");
    assert_eq!(p.policy["spec"]["egress"].as_array().unwrap().len(), 3, "{}", p.policy);
    let from = p.policy["spec"]["ingress"][0]["from"].as_array().unwrap();
    assert_eq!(from.len(), 2, "{from:?}");
    assert_eq!(from[1], peer);

    assert!(OperatorPolicy::render(&["--set", "networkPolicy.enabled=false"]).is_none());
}

/// The rendered `helm test` Pods.
fn test_pods(args: &[&str]) -> Vec<Value> {
    of_kind(&template(&chart_dir(), args).unwrap(), "Pod").into_iter().filter(|p| p["metadata"]["annotations"]["helm.sh/hook"] == "test").cloned().collect()
}

#[test]
fn the_helm_test_pod_probes_the_metrics_service_with_the_operator_image() {
    for args in [&[][..], &["--set", "image.repository=registry.daklak.gov.vn/pdc/pdc-operator,image.tag=0.2.0,metricsPort=9090"][..]] {
        let objects = template(&chart_dir(), args).unwrap();
        let pods = test_pods(args);
        assert_eq!(pods.len(), 1, "{args:?}");
        let pod = &pods[0];
        assert_eq!(pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"], "before-hook-creation,hook-succeeded");
        assert_eq!(pod["metadata"]["namespace"], NAMESPACE);
        let spec = &pod["spec"];
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["automountServiceAccountToken"], false);
        let (operator, _) = operator_pods(&objects);
        let container = &spec["containers"][0];
        assert_eq!(container["image"], operator["containers"][0]["image"], "{args:?}: the operator's own image");
        assert_eq!(container["imagePullPolicy"], operator["containers"][0]["imagePullPolicy"]);
        assert!(container.get("command").is_none(), "the image's entrypoint (the operator) runs");
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
        // --probe the Service the chart renders, on its port.
        let service = of_kind(&objects, "Service").into_iter().find(|s| s["metadata"]["name"] == "pdc-operator-metrics").unwrap();
        let port = service["spec"]["ports"][0]["port"].as_u64().unwrap();
        assert_eq!(container["args"], json!(["--probe", format!("http://pdc-operator-metrics.{NAMESPACE}.svc:{port}/readyz")]), "{args:?}");
    }
    assert!(test_pods(&["--set", "image.repository=registry.daklak.gov.vn/pdc/pdc-operator,image.tag=0.2.0"])[0]["spec"]["containers"][0]["image"] == "registry.daklak.gov.vn/pdc/pdc-operator:0.2.0");
    assert!(test_pods(&["--set", "replicas=0"]).is_empty(), "no operator runs: nothing to test");
}

/// What the kubelet would run for `helm test`: the test Pod's arguments given to the
/// operator binary, with the Service's address replaced by a real operator's.
#[test]
fn the_helm_test_passes_against_a_serving_operator_and_fails_otherwise() {
    let env = pdc_tests::cluster::shared_env(true).unwrap_or_else(|e| panic!("test environment: {e}"));
    let port = env.operator_metrics_port.unwrap();
    let args: Vec<String> = serde_json::from_value(test_pods(&[])[0]["spec"]["containers"][0]["args"].clone()).unwrap();
    let service = format!("pdc-operator-metrics.{NAMESPACE}.svc:8080");
    let operator = pdc_tests::operator::workspace_binary("pdc-operator").unwrap();
    let run = |args: &[String]| {
        let out = Command::new(&operator).args(args).env_clear().output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let local = |to: &str| args.iter().map(|a| a.replace(&service, to)).collect::<Vec<_>>();
    assert!(args.iter().any(|a| a.contains(&service)), "{args:?}");

    // The operator serves as soon as it has started: retry until then.
    let started = std::time::Instant::now();
    let (code, out, err) = loop {
        let answer = run(&local(&format!("127.0.0.1:{port}")));
        if answer.0 == Some(0) || started.elapsed() > std::time::Duration::from_secs(60) {
            break answer;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("200 OK"), "{out}");

    // /metrics without a token: refused, and the probe says so.
    let (code, _, err) = run(&local(&format!("127.0.0.1:{port}")).iter().map(|a| a.replace("/readyz", "/metrics")).collect::<Vec<_>>());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("401"), "{err}");
    // Nothing listening: fails, naming the address.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (code, _, err) = run(&local(&format!("127.0.0.1:{closed}")));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{closed}")), "{err}");
}
