//! The shipped alert rules: valid for promtool, behave as their unit tests say,
//! render into the chart's PrometheusRule unchanged (but for the runbook links'
//! base address), and each links a runbook that exists and names only commands
//! and resources that do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn promtool(args: &[&str], dir: &PathBuf) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool not found: run `bash tests/setup.sh` (installs Debian's prometheus)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {}: {text}", args.join(" "));
    text
}

#[test]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    let out = promtool(&["check", "rules", "charts/pdc/rules/pdc.rules.yaml"], &root());
    assert!(out.contains("SUCCESS: 16 rules found"), "{out}");
    for t in ["ipam_test.yaml", "dns_test.yaml", "dr_test.yaml", "dr_schedule_test.yaml", "reorg_test.yaml"] {
        let out = promtool(&["test", "rules", t], &root().join("tests/promtool"));
        assert!(out.contains("SUCCESS"), "{t}: {out}");
    }
}

/// The PrometheusRule the chart renders with `set`.
fn rendered_rule(set: &str) -> serde_json::Value {
    let rendered = pdc_tests::cluster::helm(&[
        "template",
        "pdc",
        &root().join("charts/pdc").display().to_string(),
        "--set",
        set,
        "--show-only",
        "templates/prometheusrule.yaml",
        "--kube-version",
        "1.36.3",
    ])
    .unwrap();
    serde_yaml::from_str(&rendered).unwrap()
}

fn rules_file() -> serde_json::Value {
    serde_yaml::from_str(&std::fs::read_to_string(root().join("charts/pdc/rules/pdc.rules.yaml")).unwrap()).unwrap()
}

/// Every alerting rule of a `groups` list.
fn alerts(groups: &serde_json::Value) -> Vec<&serde_json::Value> {
    groups.as_array().unwrap().iter().flat_map(|g| g["rules"].as_array().unwrap()).filter(|r| r.get("alert").is_some()).collect()
}

#[test]
fn the_chart_ships_the_same_rules() {
    let file = rules_file();
    let doc = rendered_rule("prometheusRule.enabled=true");
    assert_eq!(doc["kind"], "PrometheusRule");
    assert_eq!(doc["spec"]["groups"], file["groups"]);

    // With a base address each runbook_url becomes a link under it (one slash
    // between, however the address ends); nothing else changes.
    for base in ["https://git.daklak.gov.vn/pdc/pdc/src/branch/main", "https://git.daklak.gov.vn/pdc/pdc/src/branch/main/"] {
        let doc = rendered_rule(&format!("prometheusRule.enabled=true,prometheusRule.runbookBaseUrl={base}"));
        let mut groups = doc["spec"]["groups"].clone();
        let mut linked = 0;
        for g in groups.as_array_mut().unwrap() {
            for r in g["rules"].as_array_mut().unwrap().iter_mut().filter(|r| r.get("alert").is_some()) {
                let url = r["annotations"]["runbook_url"].as_str().unwrap().to_string();
                let path = url.strip_prefix("https://git.daklak.gov.vn/pdc/pdc/src/branch/main/").unwrap_or_else(|| panic!("{base}: {url}"));
                assert!(path.starts_with("docs/runbooks/"), "{url}");
                r["annotations"]["runbook_url"] = serde_json::Value::String(path.to_string());
                linked += 1;
            }
        }
        assert_eq!(linked, alerts(&file["groups"]).len());
        assert_eq!(groups, file["groups"], "{base}: only the runbook links differ");
    }
}

/// The fenced `sh` blocks of a Markdown text, one command a line.
fn shell_lines(markdown: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut inside = false;
    for line in markdown.lines() {
        match line.trim() {
            "```sh" => inside = true,
            "```" => inside = false,
            l if inside && !l.is_empty() => lines.push(l.to_string()),
            _ => {}
        }
    }
    lines
}

/// The resource names kubectl knows pdc's and its integrations' kinds by (plural,
/// singular, short names, kind), read from the CRDs the chart and the tests install.
fn crd_resource_names() -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for dir in ["charts/pdc/crds", "tests/crds"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let crd = <serde_json::Value as serde::Deserialize>::deserialize(doc).unwrap();
                let n = &crd["spec"]["names"];
                for key in ["plural", "singular", "kind"] {
                    if let Some(v) = n[key].as_str() {
                        names.insert(v.to_lowercase());
                    }
                }
                for short in n["shortNames"].as_array().into_iter().flatten() {
                    names.insert(short.as_str().unwrap().to_string());
                }
            }
        }
    }
    names
}

/// Kubernetes' own kinds the runbooks name, as kubectl accepts them.
const CORE_RESOURCES: [&str; 14] = [
    "pods", "pod", "deploy", "deployment", "lease", "leases", "events", "svc", "service", "endpointslices", "networkpolicy", "networkpolicies", "secret", "secrets",
];

#[test]
fn every_alert_links_a_runbook_that_says_what_it_means_how_to_check_and_how_to_fix() {
    let file = rules_file();
    let pdcctl = pdc_tests::operator::workspace_binary("pdcctl").unwrap();
    let resources = crd_resource_names();
    let mut commands = 0;
    let mut linked = std::collections::BTreeSet::new();
    for rule in alerts(&file["groups"]) {
        let name = rule["alert"].as_str().unwrap();
        let url = rule["annotations"]["runbook_url"].as_str().unwrap_or_else(|| panic!("{name} has no runbook_url"));
        assert_eq!(url, format!("docs/runbooks/{name}.md"), "{name}");
        let text = std::fs::read_to_string(root().join(url)).unwrap_or_else(|e| panic!("{name}: {url}: {e}"));
        assert!(text.starts_with(&format!("# {name}\n")), "{url} is not titled {name}");
        for section in ["## Meaning", "## Check", "## Fix"] {
            assert!(text.contains(&format!("\n{section}\n")), "{url} has no {section:?} section");
        }
        let severity = rule["labels"]["severity"].as_str().unwrap();
        assert!(text.contains(&format!("Severity: {severity}.")), "{url} does not give the severity {severity}");
        let lines = shell_lines(&text);
        assert!(!lines.is_empty(), "{url} gives no command to check with");
        for line in lines {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words[0] {
                // pdcctl's command and subcommand exist (its --help answers).
                "pdcctl" => {
                    let out = Command::new(&pdcctl).args(&words[1..3]).arg("--help").output().unwrap();
                    assert!(out.status.success(), "{url}: `{line}`: {}", String::from_utf8_lossy(&out.stderr));
                }
                // kubectl get/describe/logs name a resource kubectl knows.
                "kubectl" => {
                    let mut rest = words[1..].iter().copied();
                    let mut positional = Vec::new();
                    while let Some(w) = rest.next() {
                        match w {
                            "-n" | "--namespace" | "-l" | "-o" | "--field-selector" => {
                                rest.next();
                            }
                            w if w.starts_with('-') => {}
                            w => positional.push(w),
                        }
                    }
                    if let ["get" | "describe" | "logs", resource, ..] = positional.as_slice() {
                        let kind = resource.split('/').next().unwrap();
                        for k in kind.split(',') {
                            assert!(resources.contains(k) || CORE_RESOURCES.contains(&k), "{url}: `{line}` names {k}, which kubectl does not know");
                        }
                    }
                }
                "helm" => assert_eq!(words.get(1), Some(&"test"), "{url}: `{line}`"),
                other => panic!("{url}: `{line}`: {other} is not a command the runbooks use"),
            }
            commands += 1;
        }
        linked.insert(format!("{name}.md"));
    }
    assert!(commands >= 30, "only {commands} commands in the runbooks");

    // No runbook for an alert that does not exist, and the index lists them all.
    let index = std::fs::read_to_string(root().join("docs/runbooks/README.md")).unwrap();
    for entry in std::fs::read_dir(root().join("docs/runbooks")).unwrap() {
        let file = entry.unwrap().file_name().into_string().unwrap();
        if file != "README.md" {
            assert!(linked.contains(&file), "docs/runbooks/{file} belongs to no alert");
            assert!(index.contains(&format!("]({file})")), "docs/runbooks/README.md does not list {file}");
        }
    }
}
