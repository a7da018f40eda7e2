//! The shipped alert rules: valid for promtool, behave as their unit tests say, and
//! render into the chart's PrometheusRule unchanged.
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
    assert!(out.contains("SUCCESS: 11 rules found"), "{out}");
    for t in ["ipam_test.yaml", "dns_test.yaml", "dr_test.yaml", "dr_schedule_test.yaml"] {
        let out = promtool(&["test", "rules", t], &root().join("tests/promtool"));
        assert!(out.contains("SUCCESS"), "{t}: {out}");
    }
}

#[test]
fn the_chart_ships_the_same_rules() {
    let rendered = pdc_tests::cluster::helm(&[
        "template",
        "pdc",
        &root().join("charts/pdc").display().to_string(),
        "--set",
        "prometheusRule.enabled=true",
        "--show-only",
        "templates/prometheusrule.yaml",
        "--kube-version",
        "1.36.3",
    ])
    .unwrap();
    let doc: serde_json::Value = serde_yaml::from_str(&rendered).unwrap();
    let file: serde_json::Value = serde_yaml::from_str(&std::fs::read_to_string(root().join("charts/pdc/rules/pdc.rules.yaml")).unwrap()).unwrap();
    assert_eq!(doc["kind"], "PrometheusRule");
    assert_eq!(doc["spec"]["groups"], file["groups"]);
}
