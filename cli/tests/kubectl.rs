//! pdcctl behaves as a kubectl user expects, run as the built binary and with no
//! cluster: the plugin's name in help, exit codes, completion, the man page, and
//! `--no-headers` / `-o name` on commands that work offline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::Command;

const PDCCTL: &str = env!("CARGO_BIN_EXE_pdcctl");

/// A sample manifest of the repository.
fn sample(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/samples").join(name).to_string_lossy().into_owned()
}

/// A fresh directory for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pdcctl-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Run `bin` with `args` against no cluster at all: exit code, stdout, stderr.
fn run(bin: &Path, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(bin).args(args).env("KUBECONFIG", "/nonexistent/kubeconfig").output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn pdcctl(args: &[&str]) -> (i32, String, String) {
    run(Path::new(PDCCTL), args)
}

#[cfg(unix)]
#[test]
fn invoked_through_a_kubectl_pdc_symlink_help_and_usage_say_kubectl_pdc() {
    let dir = scratch("plugin");
    let plugin = dir.join("kubectl-pdc");
    std::os::unix::fs::symlink(PDCCTL, &plugin).unwrap();

    let (code, help, _) = run(&plugin, &["--help"]);
    assert_eq!(code, 0, "{help}");
    assert!(help.contains("Usage: kubectl pdc [OPTIONS] <COMMAND>"), "{help}");
    assert!(!help.contains("pdcctl"), "{help}");
    let (code, help, _) = run(&plugin, &["vm", "list", "--help"]);
    assert_eq!(code, 0, "{help}");
    assert!(help.contains("Usage: kubectl pdc vm list [OPTIONS]"), "{help}");
    let (code, _, err) = run(&plugin, &["vm", "lst"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("Usage: kubectl pdc vm [OPTIONS] <COMMAND>"), "{err}");
    let (_, version, _) = run(&plugin, &["--version"]);
    assert!(version.starts_with("kubectl-pdc "), "{version}");

    // The same binary under its own name still says pdcctl.
    let (_, help, _) = pdcctl(&["--help"]);
    assert!(help.contains("Usage: pdcctl [OPTIONS] <COMMAND>"), "{help}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_usage_error_exits_2_and_so_does_an_output_the_command_does_not_offer() {
    let (code, _, err) = pdcctl(&["vm", "list", "--bogus"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unexpected argument '--bogus'") && err.contains("Usage: pdcctl vm list"), "{err}");
    let (code, _, err) = pdcctl(&["slug", "Sở Y tế", "-o", "name"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("-o name prints API objects"), "{err}");
    let (code, _, err) = pdcctl(&["slug", "Sở Y tế", "-o", "csv"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn a_refused_offline_plan_exits_1_and_one_that_holds_exits_0() {
    // The commune merger sample against the Phú Yên estate: none of its units exist.
    let act = sample("reorg-communes.yaml");
    let estate = sample("phuyen-estate.yaml");
    let (code, out, err) = pdcctl(&["reorg", "plan", "-f", &act, "--estate", &estate, "--domain", "daklak.gov.vn"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("REFUSED") && out.contains("successor xa-ea-sup does not exist"), "{out}");
    let (code, out, err) = pdcctl(&["reorg", "plan", "-f", &sample("reorg-phuyen.yaml"), "--estate", &estate]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("The plan holds"), "{out}");
}

#[test]
fn a_refused_dns_manifest_exits_1_not_2() {
    let dir = scratch("dns-refused");
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "apiVersion: pdc.io/v1alpha1\nkind: DnsRecord\nmetadata: {name: vn}\nspec: {name: cổng-thông-tin, type: A, values: [10.15.0.1]}\n").unwrap();
    let (code, out, err) = pdcctl(&["dns", "plan", "-f", bad.to_str().unwrap(), "--department", "so-y-te", "--subdomain", "so-y-te.daklak.gov.vn"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("refused: vn:") && out.contains("cong-thong-tin"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn colliding_slugs_exit_1() {
    let (code, out, err) = pdcctl(&["slug", "Xã Ea Súp", "Xa Ea Sup"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("collides with Xa Ea Sup"), "{out}");
}

#[test]
fn no_headers_prints_the_rows_alone() {
    let (code, out, err) = pdcctl(&["slug", "Sở Y tế", "Xã Cư M’gar", "--no-headers"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines, vec![vec!["Sở", "Y", "tế", "so-y-te", "so-y-te.daklak.gov.vn"], vec!["Xã", "Cư", "M’gar", "xa-cu-mgar", "xa-cu-mgar.daklak.gov.vn"]], "{out}");

    let args = ["dns", "plan", "-f", &sample("so-y-te-dns.yaml"), "--subdomain", "so-y-te.daklak.gov.vn"];
    let (code, with, _) = pdcctl(&args);
    assert_eq!(code, 0, "{with}");
    let (code, without, _) = pdcctl(&[&args[..], &["--no-headers"]].concat());
    assert_eq!(code, 0, "{without}");
    assert!(with.starts_with("ACTION"), "{with}");
    assert_eq!(without.lines().count(), with.lines().count() - 1, "{without}");
    assert!(without.lines().all(|l| l.starts_with("create ")), "{without}");
}

#[cfg(unix)]
#[test]
fn bash_completes_the_commands_and_the_output_formats() {
    let complete = |words: &str, cword: usize| {
        let script = format!(
            "source <({PDCCTL} completion bash) && COMP_WORDS=({words}) && COMP_CWORD={cword} && _pdcctl pdcctl \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\" && printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let o = Command::new("bash").arg("-c").arg(script).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(complete("pdcctl d", 1), ["department", "dept", "dns", "dr"]);
    assert!(complete("pdcctl vm ''", 2).iter().any(|w| w == "sizes"));
    assert_eq!(complete("pdcctl vm list -o ''", 4), ["table", "wide", "name", "json", "yaml", "csv", "nftables"]);
    assert!(complete("pdcctl ''", 1).iter().any(|w| w == "completion"));
}

#[test]
fn the_man_page_is_roff_for_pdcctl_and_names_its_commands() {
    let (code, page, err) = pdcctl(&["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(page.contains(".TH pdcctl 1"), "{page}");
    for c in ["department", "ip", "dns", "vm", "dr", "volume", "zone", "reorg", "slug", "completion", "man"] {
        assert!(page.contains(&format!("\n.TP\npdcctl\\-{c}(1)\n")), "{c} missing: {page}");
    }
    assert!(page.contains(".SH \"EXIT STATUS\""), "{page}");
    // Rendered by man(1) where the machine has it: the sections and commands shown.
    let rendered = Command::new("man")
        .args(["-l", "-"])
        .env("MANWIDTH", "100")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(page.as_bytes())?;
            child.wait_with_output()
        });
    if let Some(o) = rendered.ok().filter(|o| o.status.success()) {
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("EXIT STATUS") && text.contains("pdcctl-reorg(1)") && text.contains("--no-headers"), "{text}");
    }
}
