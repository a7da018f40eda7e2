//! The chart's Grafana dashboard: it renders into a ConfigMap the Grafana sidecar
//! loads, every panel's query is PromQL that promtool accepts, and every metric a
//! query names is one a real operator exports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use pdc_tests::cluster::{chart_dir, helm, shared_env};
use serde::Deserialize;
use serde_json::Value;

/// Render the dashboard's template with `set`: the ConfigMaps it renders.
fn render(set: &[&str]) -> Vec<Value> {
    let chart = chart_dir().display().to_string();
    let mut args = vec!["template", "pdc", chart.as_str(), "--namespace", "pdc-system", "--kube-version", "1.36.3"];
    for s in set {
        args.extend_from_slice(&["--set", s]);
    }
    let out = helm(&args).unwrap();
    serde_yaml::Deserializer::from_str(&out)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|o| o["kind"] == "ConfigMap" && o["data"].get("pdc.json").is_some())
        .collect()
}

/// The dashboard the chart ships, as Grafana's sidecar would read it.
fn dashboard() -> Value {
    let maps = render(&["dashboard.enabled=true"]);
    assert_eq!(maps.len(), 1, "one dashboard ConfigMap");
    serde_json::from_str(maps[0]["data"]["pdc.json"].as_str().unwrap()).expect("the dashboard is JSON")
}

/// Every panel, rows' nested panels included.
fn panels(dash: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

/// (panel title, query) of every target.
fn queries(dash: &Value) -> Vec<(String, String)> {
    panels(dash)
        .into_iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or_default().to_string();
            p["targets"].as_array().into_iter().flatten().map(move |t| (title.clone(), t["expr"].as_str().unwrap_or_default().to_string()))
        })
        .collect()
}

/// Grafana's own interval variables and a value that makes each a valid duration.
const BUILTINS: [(&str, &str); 4] = [("__rate_interval", "5m"), ("__interval", "1m"), ("__range", "1h"), ("__range_s", "3600")];

/// `expr` with Grafana's variables replaced: its interval variables by durations,
/// the dashboard's own variables (`variables`, used in `=~` matchers) by `.*`. An
/// unknown variable fails.
fn substitute(expr: &str, variables: &BTreeSet<String>) -> String {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = match after.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}').unwrap_or_else(|| panic!("unclosed ${{ in {expr}"));
                (&braced[..end], end + 2)
            }
            None => {
                let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        match BUILTINS.iter().find(|(b, _)| *b == name) {
            Some((_, value)) => out.push_str(value),
            None if variables.contains(name) => out.push_str(".*"),
            None => panic!("{expr} uses ${name}, which is neither Grafana's nor one of the dashboard's variables {variables:?}"),
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// The metric names a PromQL expression selects: identifiers outside strings, label
/// matchers (`{…}`), ranges (`[…]`) and grouping lists (`by (…)`, `on (…)`), that are
/// neither keywords nor function calls.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: [&str; 27] = [
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio",
        "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan",
    ];
    const GROUPING: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    // Skip from an opening bracket to its closing one, strings inside included.
    let skip = |mut i: usize, open: char, close: char| {
        let mut depth = 0;
        while i < chars.len() {
            match chars[i] {
                c @ ('"' | '\'' | '`') => {
                    i += 1;
                    while i < chars.len() && chars[i] != c {
                        i += if chars[i] == '\\' { 2 } else { 1 };
                    }
                }
                c if c == open => depth += 1,
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        i
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '{' {
            i = skip(i, '{', '}');
        } else if c == '[' {
            i = skip(i, '[', ']');
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            // A number or a duration (5m, 1e3, 0x1f).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let called = chars.get(next) == Some(&'(');
            if GROUPING.contains(&word.as_str()) && called {
                i = skip(next, '(', ')');
            } else if !KEYWORDS.contains(&word.as_str()) && !called {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_told_apart_from_functions_labels_and_keywords() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(r#"histogram_quantile(0.95, sum by (controller, le) (rate(pdc_reconcile_duration_seconds_bucket{controller=~"dns.*"}[5m])))"#),
        ["pdc_reconcile_duration_seconds_bucket"]
    );
    assert_eq!(
        names("max by (zone) (a_total) / on (zone) group_left (site) b_info > 0.9 and c offset 1h unless d or vector(0)"),
        ["a_total", "b_info", "c", "d"]
    );
    assert_eq!(names(r#"time() - max(pdc_x{family="IPv6", re="a{1}[b]"}) > bool 1e3"#), ["pdc_x"]);
    assert_eq!(names("sum without (pod) (rate(x[5m:1m]))"), ["x"]);
}

#[test]
fn the_dashboard_renders_for_the_grafana_sidecar_where_asked() {
    assert!(render(&[]).is_empty(), "no dashboard unless dashboard.enabled");
    let maps = render(&["dashboard.enabled=true"]);
    assert_eq!(maps.len(), 1);
    assert_eq!(maps[0]["metadata"]["namespace"], "pdc-system", "the release's namespace by default");
    assert_eq!(maps[0]["metadata"]["labels"]["grafana_dashboard"], "1", "the sidecar's default label");
    let shipped = std::fs::read_to_string(chart_dir().join("dashboards/pdc.json")).unwrap();
    assert_eq!(maps[0]["data"]["pdc.json"].as_str().unwrap(), shipped.trim_end(), "the file as it is");

    let maps = render(&[
        "dashboard.enabled=true,dashboard.namespace=monitoring,dashboard.labels.grafana_dashboard=null",
        "dashboard.labels.dashboards=pdc,dashboard.annotations.grafana_folder=Tỉnh",
    ]);
    let meta = &maps[0]["metadata"];
    assert_eq!(meta["namespace"], "monitoring");
    assert_eq!(meta["labels"]["dashboards"], "pdc");
    assert!(meta["labels"].get("grafana_dashboard").is_none(), "null drops the default label: {meta}");
    assert_eq!(meta["annotations"]["grafana_folder"], "Tỉnh");
}

#[test]
fn every_panel_queries_prometheus_through_the_data_source_variable() {
    let dash = dashboard();
    assert!(dash["uid"].as_str().is_some_and(|u| !u.is_empty() && u.len() <= 40), "a stable uid: {}", dash["uid"]);
    let variables: Vec<&Value> = dash["templating"]["list"].as_array().unwrap().iter().collect();
    assert!(variables.iter().any(|v| v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus"));
    let mut seen = 0;
    for p in panels(&dash).into_iter().filter(|p| p["type"] != "row") {
        let targets = p["targets"].as_array().unwrap_or_else(|| panic!("panel {} has no queries", p["title"]));
        assert!(!targets.is_empty(), "panel {} has no queries", p["title"]);
        assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {}", p["title"]);
        for t in targets {
            assert!(t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()), "panel {}: an empty query", p["title"]);
            seen += 1;
        }
    }
    assert!(seen >= 20, "only {seen} queries");
}

/// Each query (and each variable's `label_values` query) as a recording rule in a
/// rules file that `promtool check rules` must accept, then the names they select
/// against a scrape of a real operator.
#[test]
fn every_query_parses_and_names_only_metrics_the_operator_exports() {
    let dash = dashboard();
    let list = dash["templating"]["list"].as_array().unwrap();
    let variables: BTreeSet<String> = list.iter().filter_map(|v| v["name"].as_str().map(String::from)).collect();
    let mut exprs: Vec<(String, String)> = queries(&dash).into_iter().map(|(title, e)| (title, substitute(&e, &variables))).collect();
    // `label_values(metric, label)`: the metric must exist too.
    for v in list.iter().filter(|v| v["type"] == "query") {
        let q = v["query"]["query"].as_str().or_else(|| v["query"].as_str()).unwrap();
        let inner = q.strip_prefix("label_values(").and_then(|r| r.strip_suffix(')')).unwrap_or_else(|| panic!("variable {}: {q}", v["name"]));
        let (metric, label) = inner.rsplit_once(',').unwrap();
        assert!(!label.trim().is_empty(), "variable {}: {q}", v["name"]);
        exprs.push((format!("variable {}", v["name"]), substitute(metric.trim(), &variables)));
    }

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("dashboard-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = serde_json::json!({"groups": [{"name": "pdc-dashboard", "rules":
        exprs.iter().enumerate().map(|(i, (_, e))| serde_json::json!({"record": format!("pdc:dashboard:query{i}"), "expr": e})).collect::<Vec<_>>()}]});
    let file = dir.join("dashboard.rules.yaml");
    std::fs::write(&file, serde_yaml::to_string(&rules).unwrap()).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool not found: run `bash tests/setup.sh` (installs Debian's prometheus)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool refused a dashboard query:\n{text}\n{}", serde_yaml::to_string(&rules).unwrap());
    assert!(text.contains(&format!("SUCCESS: {} rules found", exprs.len())), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();

    // What a real operator exports: every family it registers, series or not.
    let env = shared_env(true).unwrap_or_else(|e| panic!("test environment: {e}"));
    let started = std::time::Instant::now();
    let (code, body) = loop {
        match env.metrics_get("/metrics") {
            Ok(answer) => break answer,
            // Still starting: it serves /metrics once it has its client.
            Err(_) if started.elapsed() < std::time::Duration::from_secs(60) => {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => panic!("the operator does not serve /metrics: {e}"),
        }
    };
    assert_eq!(code, 200, "{body}");
    pdc_tests::operator::promtool_check_metrics(&body).unwrap();
    let exported = exported_names(&body);
    assert!(exported.contains("pdc_dns_pending_changes"), "families with no series yet are announced too:\n{body}");

    let mut used = BTreeSet::new();
    for (title, e) in &exprs {
        let names = metric_names(e);
        assert!(!names.is_empty(), "{title}: {e} selects no metric");
        for n in names {
            assert!(exported.contains(&n), "{title}: {e} selects {n}, which the operator does not export; it exports {exported:?}");
            used.insert(n);
        }
    }
    // The dashboard covers what it is for: zones per site and family, DNS sync and
    // pending changes, VM phases and provisioning latency, quota per department, DR
    // lag against RPO and drill age, the operator's leader, errors and durations.
    for want in [
        "pdc_ipam_subnets_allocated",
        "pdc_ipam_subnets_capacity",
        "pdc_ipam_addresses_allocated",
        "pdc_ipam_addresses_capacity",
        "pdc_dns_zone_in_sync",
        "pdc_dns_pending_changes",
        "pdc_dns_last_sync_timestamp_seconds",
        "pdc_tenantvms",
        "pdc_tenantvm_provision_duration_seconds_bucket",
        "pdc_quota_used",
        "pdc_quota_limit",
        "pdc_dr_lag_seconds",
        "pdc_dr_rpo_seconds",
        "pdc_dr_last_drill_timestamp_seconds",
        "pdc_leader",
        "pdc_reconcile_errors_total",
        "pdc_reconcile_duration_seconds_bucket",
    ] {
        assert!(used.contains(want), "no panel shows {want}");
    }
}

/// The names a scrape lets a query select: each family's name; a histogram's
/// `_bucket`, `_sum` and `_count` series instead; a summary's `_sum` and `_count` too.
fn exported_names(body: &str) -> BTreeSet<String> {
    let kinds: BTreeMap<&str, &str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let mut names = BTreeSet::new();
    for (name, kind) in kinds {
        match kind {
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            "summary" => {
                for suffix in ["", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                names.insert(name.to_string());
            }
        }
    }
    names
}
