//! pdcctl as a kubectl user expects it, run as the built binary against a real API
//! server with the chart applied and the operator running: `-n` and `-d` name the same
//! namespace, the context's namespace is the default, `-A` and `-l` on lists, several
//! KUBECONFIG files merged as kubectl merges them, `--request-timeout` and `--timeout`,
//! `--yes` before failover, relocate and delete, KubeVirt's console and VNC (and the
//! department admin's right to them, checked by the API server's RBAC), and the hint
//! when there is no SizeClass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use pdc_api::{Department, DrPlan, TenantVM, TenantVolume};
use pdc_tests::cluster::{TestEnv, shared_env, unique};

const TIMEOUT: Duration = Duration::from_secs(60);

async fn env() -> (&'static TestEnv, Client) {
    let env = shared_env(true).unwrap_or_else(|e| panic!("test environment: {e}"));
    let client = env.client().await.unwrap();
    pdc_tests::cluster::apply_sample_province(&client).await.unwrap();
    (env, client)
}

/// What one run of pdcctl did.
#[derive(Debug)]
struct Run {
    code: i32,
    out: String,
    err: String,
    took: Duration,
}

/// Run the workspace's pdcctl with `KUBECONFIG=kubeconfig` (one file or a list) and
/// no terminal on standard input.
fn pdcctl(kubeconfig: impl AsRef<OsStr>, args: &[&str]) -> Run {
    let bin = pdc_tests::operator::workspace_binary("pdcctl").unwrap();
    let start = Instant::now();
    let o = Command::new(bin).args(args).env("KUBECONFIG", kubeconfig).stdin(Stdio::null()).output().unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
        took: start.elapsed(),
    }
}

/// Run pdcctl on a terminal (a pseudo-terminal from util-linux's `script`, which
/// Debian always has), typing `typed`: what a person at a terminal sees and answers.
fn pdcctl_on_terminal(kubeconfig: &Path, args: &[&str], typed: &str) -> Run {
    use std::io::Write;
    let bin = pdc_tests::operator::workspace_binary("pdcctl").unwrap();
    let line: Vec<String> = std::iter::once(bin.to_string_lossy().into_owned()).chain(args.iter().map(|a| a.to_string())).map(|a| format!("'{a}'")).collect();
    let start = Instant::now();
    let mut child = Command::new("script")
        .args(["-qec", &line.join(" "), "/dev/null"])
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(typed.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
        took: start.elapsed(),
    }
}

/// The `-o name` lines of a run, as a set.
fn names(r: &Run) -> BTreeSet<String> {
    assert_eq!(r.code, 0, "{r:?}");
    r.out.lines().map(str::to_string).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A Department made by the operator, with `zones` and `admins`; returned once its
/// namespace and its admins' RoleBinding exist (a Department whose zones do not exist
/// never becomes Ready, but has both).
async fn department(client: &Client, name: &str, code: &str, zones: &[&str], admins: &[&str]) {
    let d: Department = serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "Department", "metadata": {"name": name},
        "spec": {"displayName": format!("Đơn vị {name}"), "code": code, "zones": zones, "admins": {"users": admins},
                 "quota": {"vcpu": 8, "memory": "16Gi", "vms": 4, "storage": {"ssd": "100Gi"}}}
    }))
    .unwrap();
    Api::<Department>::all(client.clone()).create(&PostParams::default(), &d).await.unwrap();
    let start = Instant::now();
    while Api::<RoleBinding>::namespaced(client.clone(), name).get_opt("pdc-department-admin").await.unwrap().is_none() {
        assert!(start.elapsed() < TIMEOUT, "no namespace and bindings for Department {name}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn volume(client: &Client, ns: &str, name: &str, labels: serde_json::Value) {
    let v: TenantVolume = serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "TenantVolume", "metadata": {"name": name, "labels": labels},
        "spec": {"size": "1Gi", "tier": "ssd"}
    }))
    .unwrap();
    Api::<TenantVolume>::namespaced(client.clone(), ns).create(&PostParams::default(), &v).await.unwrap();
}

/// The admin kubeconfig as YAML, to write variants of.
fn admin_kubeconfig(env: &TestEnv) -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(&env.kubeconfig).unwrap()).unwrap()
}

fn write_yaml(path: &Path, v: &serde_yaml::Value) -> PathBuf {
    std::fs::write(path, serde_yaml::to_string(v).unwrap()).unwrap();
    path.to_path_buf()
}

fn scratch(env: &TestEnv, test: &str) -> PathBuf {
    let dir = env.dir.join(unique(test));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn namespace_and_department_flags_the_context_namespace_all_namespaces_and_selectors() {
    let (env, client) = env().await;
    let (a, b) = (unique("so-cli-a"), unique("so-cli-b"));
    department(&client, &a, "H15.201", &[], &[]).await;
    department(&client, &b, "H15.202", &[], &[]).await;
    let run_id = unique("run");
    volume(&client, &a, "data-a", serde_json::json!({"pdc-cli-test": run_id, "tier": "web"})).await;
    volume(&client, &a, "logs-a", serde_json::json!({"pdc-cli-test": run_id, "tier": "db"})).await;
    volume(&client, &b, "data-b", serde_json::json!({"pdc-cli-test": run_id, "tier": "web"})).await;
    let kc = env.kubeconfig.as_os_str();

    // -n and -d are one flag under two names: a department's namespace is its name.
    let in_a = set(&["tenantvolume.pdc.io/data-a", "tenantvolume.pdc.io/logs-a"]);
    assert_eq!(names(&pdcctl(kc, &["volume", "list", "-n", &a, "-o", "name"])), in_a);
    assert_eq!(names(&pdcctl(kc, &["volume", "list", "-d", &a, "-o", "name"])), in_a);
    assert_eq!(names(&pdcctl(kc, &["volume", "list", "--namespace", &a, "--department", &a, "-o", "name"])), in_a);
    let table_n = pdcctl(kc, &["volume", "list", "-n", &b]);
    let table_d = pdcctl(kc, &["volume", "list", "--department", &b]);
    assert!(table_n.code == 0 && table_n.out.contains("data-b") && table_n.out.contains(&b), "{table_n:?}");
    assert_eq!(table_n.out.lines().map(|l| l.split_whitespace().take(5).collect::<Vec<_>>()).collect::<Vec<_>>(), table_d.out.lines().map(|l| l.split_whitespace().take(5).collect::<Vec<_>>()).collect::<Vec<_>>());
    for cmd in [&["vm", "list"][..], &["dns", "records"], &["dr", "status"]] {
        let by_n = pdcctl(kc, &[cmd, &["-n", &a, "-o", "json"]].concat());
        let by_d = pdcctl(kc, &[cmd, &["-d", &a, "-o", "json"]].concat());
        assert!(by_n.code == 0 && by_n.out == by_d.out, "{cmd:?}: {by_n:?} {by_d:?}");
    }
    // Two names for different namespaces, or a namespace beside -A: usage errors.
    let r = pdcctl(kc, &["volume", "list", "-n", &a, "-d", &b]);
    assert!(r.code == 2 && r.err.contains("different namespaces"), "{r:?}");
    let r = pdcctl(kc, &["volume", "list", "-A", "-n", &a]);
    assert!(r.code == 2 && r.err.contains("cannot be used with"), "{r:?}");

    // Neither flag: the context's namespace; the test kubeconfig's context names none,
    // so that is `default`, as for kubectl.
    assert!(names(&pdcctl(kc, &["volume", "list", "-o", "name"])).is_empty());
    let mut with_ns = admin_kubeconfig(env);
    with_ns["contexts"][0]["context"]["namespace"] = b.clone().into();
    let dir = scratch(env, "context-ns");
    let kc_b = write_yaml(&dir.join("kubeconfig"), &with_ns);
    assert_eq!(names(&pdcctl(&kc_b, &["volume", "list", "-o", "name"])), set(&["tenantvolume.pdc.io/data-b"]));
    assert_eq!(names(&pdcctl(&kc_b, &["volume", "list", "-n", &a, "-o", "name"])), in_a, "a flag beats the context");

    // -A lists every namespace; -l goes to the API server's list.
    let all = names(&pdcctl(kc, &["volume", "list", "-A", "-o", "name"]));
    assert!(all.is_superset(&set(&["tenantvolume.pdc.io/data-a", "tenantvolume.pdc.io/logs-a", "tenantvolume.pdc.io/data-b"])), "{all:?}");
    let web = pdcctl(kc, &["volume", "list", "-A", "-l", &format!("pdc-cli-test={run_id},tier=web")]);
    assert_eq!(web.code, 0, "{web:?}");
    let rows: BTreeSet<(String, String)> = web.out.lines().skip(1).map(|l| {
        let cells: Vec<&str> = l.split_whitespace().collect();
        (cells[0].to_string(), cells[1].to_string())
    }).collect();
    assert_eq!(rows, [(a.clone(), "data-a".to_string()), (b.clone(), "data-b".to_string())].into_iter().collect());
    let db = names(&pdcctl(kc, &["volume", "list", "-n", &a, "-l", &format!("pdc-cli-test={run_id},tier!=web"), "-o", "name"]));
    assert_eq!(db, set(&["tenantvolume.pdc.io/logs-a"]));
    let r = pdcctl(kc, &["volume", "list", "-A", "-l", "tier in (web"]);
    assert!(r.code == 1 && r.err.contains("error from the API server (BadRequest): unable to parse requirement"), "the API server refuses a bad selector: {r:?}");
}

#[tokio::test]
async fn kubeconfig_files_merge_as_kubectl_merges_them() {
    let (env, client) = env().await;
    let a = unique("so-cli-kc");
    department(&client, &a, "H15.203", &[], &[]).await;
    volume(&client, &a, "merged", serde_json::json!({})).await;
    let admin = admin_kubeconfig(env);
    let (cluster, user) = (admin["clusters"][0]["name"].as_str().unwrap().to_string(), admin["users"][0]["name"].as_str().unwrap().to_string());
    let dir = scratch(env, "merge");
    // The first file: a context of its own (namespace a) and the current context,
    // using the cluster and user of the second file (the admin's).
    let first: serde_yaml::Value = serde_yaml::from_str(&format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: cli\ncontexts:\n- name: cli\n  context: {{cluster: {cluster}, user: {user}, namespace: {a}}}\n"
    ))
    .unwrap();
    let first = write_yaml(&dir.join("first"), &first);
    let join = |files: &[&Path]| std::env::join_paths(files).unwrap();
    let merged = join(&[&first, &dir.join("missing"), &env.kubeconfig]);
    assert_eq!(names(&pdcctl(&merged, &["volume", "list", "-o", "name"])), set(&["tenantvolume.pdc.io/merged"]));
    // The other order: the admin file's current context (no namespace) wins, and the
    // first file's context is still there to choose.
    let reversed = join(&[&env.kubeconfig, &first]);
    assert!(names(&pdcctl(&reversed, &["volume", "list", "-o", "name"])).is_empty());
    assert_eq!(names(&pdcctl(&reversed, &["--context", "cli", "volume", "list", "-o", "name"])), set(&["tenantvolume.pdc.io/merged"]));
    // The first file to name a cluster wins it, even when the second's works.
    let mut dead = admin.clone();
    dead["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9".into();
    dead["users"] = serde_yaml::Value::Sequence(Vec::new());
    dead["contexts"] = serde_yaml::Value::Sequence(Vec::new());
    let dead = write_yaml(&dir.join("dead"), &dead);
    let r = pdcctl(join(&[&dead, &env.kubeconfig]), &["volume", "list", "-A"]);
    assert!(r.code == 1 && r.err.contains("cannot reach the API server https://127.0.0.1:9/") && r.err.contains("refused"), "{r:?}");
    // --kubeconfig names one file and overrides KUBECONFIG; it must exist.
    let r = pdcctl(&merged, &["--kubeconfig", env.kubeconfig.to_str().unwrap(), "volume", "list", "-o", "name"]);
    assert!(names(&r).is_empty(), "the admin file alone: its context, namespace default");
    let r = pdcctl(&merged, &["--kubeconfig", dir.join("nope").to_str().unwrap(), "volume", "list"]);
    assert!(r.code == 1 && r.err.contains("nope"), "{r:?}");
    let r = pdcctl(join(&[&dir.join("x"), &dir.join("y")]), &["volume", "list"]);
    assert!(r.code == 1 && r.err.contains("none of the kubeconfig files in KUBECONFIG exists"), "{r:?}");
    let r = pdcctl(&merged, &["--context", "no-such-context", "volume", "list"]);
    assert!(r.code == 1 && r.err.contains("no-such-context"), "{r:?}");
}

#[tokio::test]
async fn request_timeout_reads_as_kubectl_and_bounds_each_request() {
    let (env, _) = env().await;
    let kc = env.kubeconfig.as_os_str();
    for bad in ["abc", "-1", "1x", "1 m", "s"] {
        let r = pdcctl(kc, &[&format!("--request-timeout={bad}"), "department", "list"]);
        assert!(r.code == 2 && r.err.contains("is not a duration") && r.err.contains("--request-timeout"), "{bad}: {r:?}");
    }
    for good in ["0", "30", "30s", "1m", "1m30s"] {
        let r = pdcctl(kc, &["--request-timeout", good, "department", "list", "-o", "json"]);
        assert_eq!(r.code, 0, "{good}: {r:?}");
    }
    // A server that takes connections and never answers: the request gives up after
    // the timeout, not after kube's defaults.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming() {
            held.push(conn);
        }
    });
    let mut cfg = admin_kubeconfig(env);
    cfg["clusters"][0]["cluster"]["server"] = format!("https://127.0.0.1:{port}").into();
    let dir = scratch(env, "silent");
    let silent_kc = write_yaml(&dir.join("kubeconfig"), &cfg);
    let r = pdcctl(&silent_kc, &["--request-timeout", "1s", "department", "list"]);
    assert!(r.code == 1 && r.err.contains("no answer from the API server within 1s (--request-timeout)"), "{r:?}");
    assert!(r.took < Duration::from_secs(10), "{r:?}");
}

#[tokio::test]
async fn a_wait_that_runs_out_exits_4_and_says_what_did_not_happen() {
    let (env, client) = env().await;
    // A zone that does not exist: the Department never becomes Ready (NetworkPending),
    // and nothing in it needs a change from the person waiting either.
    let name = unique("so-cli-wait");
    let zone = unique("no-such-zone");
    let r = pdcctl(&env.kubeconfig, &["department", "create", "Sở Chờ", "--code", "H15.204", "--name", &name, "--zone", &zone, "--timeout", "2s"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.err.contains("timed out after 2s (--timeout)") && r.err.contains("1 of 1 not Ready"), "{r:?}");
    assert!(r.took >= Duration::from_secs(2) && r.took < Duration::from_secs(20), "{r:?}");
    // The Department is there and the operator goes on with it.
    Api::<Department>::all(client.clone()).get(&name).await.unwrap();
    let r = pdcctl(&env.kubeconfig, &["department", "create", "Sở Chờ", "--code", "H15.204", "--timeout", "soon"]);
    assert!(r.code == 2 && r.err.contains("is not a duration"), "{r:?}");
    let r = pdcctl(&env.kubeconfig, &["--help"]);
    assert!(r.out.contains("4  a wait ran out (--timeout)"), "{}", r.out);
}

#[tokio::test]
async fn failover_relocate_and_delete_ask_on_a_terminal_and_need_yes_without_one() {
    let (env, client) = env().await;
    let (ns, zone) = (unique("so-cli-yes"), unique("zone-cli"));
    department(&client, &ns, "H15.205", &[&zone], &[]).await;
    let plan: DrPlan = serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "DrPlan", "metadata": {"name": "portal"},
        "spec": {"primarySite": "daklak", "standbySite": "phuyen", "rpo": "15m"}
    }))
    .unwrap();
    let plans: Api<DrPlan> = Api::namespaced(client.clone(), &ns);
    plans.create(&PostParams::default(), &plan).await.unwrap();
    let vm: TenantVM = serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "TenantVM", "metadata": {"name": "web"},
        "spec": {"size": "m1.small", "image": {"url": "https://images.daklak.gov.vn/u.qcow2"}, "rootDisk": {"size": "10Gi", "tier": "ssd"},
                 "nics": [{"zone": zone}], "hostname": "web"}
    }))
    .unwrap();
    let vms: Api<TenantVM> = Api::namespaced(client.clone(), &ns);
    vms.create(&PostParams::default(), &vm).await.unwrap();

    for action in ["failover", "relocate"] {
        let r = pdcctl(&env.kubeconfig, &["dr", action, "portal", "-n", &ns]);
        assert!(r.code == 1 && r.err.contains("not confirmed") && r.err.contains("pass --yes"), "{action}: {r:?}");
        let p = plans.get("portal").await.unwrap();
        assert_eq!((p.spec.action, p.spec.action_token.as_deref()), (pdc_api::DrAction::None, None), "{action} was not asked for");
    }
    // A dry run changes nothing, so it does not ask.
    let r = pdcctl(&env.kubeconfig, &["dr", "failover", "portal", "-n", &ns, "--dry-run", "--no-wait"]);
    assert!(r.code == 0 && r.out.contains("dry run"), "{r:?}");

    let r = pdcctl(&env.kubeconfig, &["vm", "delete", "web", "-d", &ns]);
    assert!(r.code == 1 && r.err.contains("Delete tenantvm") && r.err.contains("pass --yes"), "{r:?}");
    assert!(vms.get("web").await.unwrap().metadata.deletion_timestamp.is_none(), "not deleted without --yes");
    // On a terminal it asks; anything but y or yes keeps the VM.
    let r = pdcctl_on_terminal(&env.kubeconfig, &["vm", "delete", "web", "-d", &ns], "n\n");
    assert!(r.code == 1 && r.out.contains(&format!("Delete tenantvm {ns}/web")) && r.out.contains("[y/N]") && r.out.contains("not confirmed"), "{r:?}");
    assert!(vms.get("web").await.unwrap().metadata.deletion_timestamp.is_none(), "not deleted when the answer is no");
    let r = pdcctl_on_terminal(&env.kubeconfig, &["dr", "relocate", "portal", "-n", &ns, "--no-wait"], "\n");
    assert!(r.code == 1 && r.out.contains("Relocate") && r.out.contains("not confirmed"), "{r:?}");
    let r = pdcctl(&env.kubeconfig, &["vm", "delete", "nothing-here", "-d", &ns]);
    assert!(r.code == 1 && r.err.contains("not found"), "a VM that is not there is said so first: {r:?}");
    let r = pdcctl_on_terminal(&env.kubeconfig, &["vm", "delete", "web", "-d", &ns], "y\n");
    assert!(r.code == 0 && r.out.contains(&format!("tenantvm {ns}/web deleted")), "{r:?}");
    let gone = vms.get_opt("web").await.unwrap();
    assert!(gone.is_none_or(|v| v.metadata.deletion_timestamp.is_some()), "deleted when the answer is y");
    // --yes deletes without asking, on a terminal or not.
    let mut api_vm = vm.clone();
    api_vm.metadata.name = Some("api".into());
    api_vm.spec.hostname = "api".into();
    vms.create(&PostParams::default(), &api_vm).await.unwrap();
    let r = pdcctl(&env.kubeconfig, &["vm", "delete", "api", "-n", &ns, "--yes"]);
    assert!(r.code == 0 && r.out.contains(&format!("tenantvm {ns}/api deleted")) && !r.err.contains("[y/N]"), "{r:?}");
    assert!(vms.get_opt("api").await.unwrap().is_none_or(|v| v.metadata.deletion_timestamp.is_some()), "deleted with --yes");
}

/// A client for `user` in `groups` through the admin's credentials and the API
/// server's impersonation (Impersonate-User, Impersonate-Group).
async fn impersonating(env: &TestEnv, user: &str, groups: &[&str]) -> Client {
    let kc = Kubeconfig::read_from(&env.kubeconfig).unwrap();
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.unwrap();
    cfg.auth_info.impersonate = Some(user.to_string());
    cfg.auth_info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
    Client::try_from(cfg).unwrap()
}

/// Whether the API server lets the client's user `verb` the VMI subresource in `ns`.
async fn may(client: &Client, verb: &str, subresource: &str, ns: &str) -> bool {
    pdc_tests::cluster::allowed(client, verb, "subresources.kubevirt.io", &format!("virtualmachineinstances/{subresource}"), ns).await.unwrap()
}

#[tokio::test]
async fn a_department_admin_may_open_the_console_and_vnc_of_its_own_vms_only() {
    let (env, client) = env().await;
    let (a, b) = (unique("so-cli-rbac-a"), unique("so-cli-rbac-b"));
    let admin = format!("admin@{a}");
    department(&client, &a, "H15.206", &[], &[&admin]).await;
    department(&client, &b, "H15.207", &[], &[]).await;
    let as_admin = impersonating(env, &admin, &["tenants"]).await;
    pdc_tests::cluster::wait_allowed(&as_admin, "get", "subresources.kubevirt.io", "virtualmachineinstances/console", &a, TIMEOUT).await.unwrap();
    for sub in ["console", "vnc"] {
        assert!(may(&as_admin, "get", sub, &a).await, "{sub} in its own namespace");
        assert!(!may(&as_admin, "get", sub, &b).await, "{sub} in another department's");
        assert!(!may(&as_admin, "create", sub, &a).await, "only get on {sub}");
    }
    for sub in ["portforward", "pause", "migrate", "guestosinfo"] {
        assert!(!may(&as_admin, "get", sub, &a).await && !may(&as_admin, "update", sub, &a).await, "nothing else: {sub}");
    }
    // The same review for someone with no binding at all.
    let stranger = impersonating(env, &format!("nobody@{a}"), &["tenants"]).await;
    assert!(!may(&stranger, "get", "console", &a).await);

    // This cluster has no KubeVirt: pdcctl says what is missing.
    for stream in ["console", "vnc"] {
        let r = pdcctl(&env.kubeconfig, &["vm", stream, "web", "-n", &a]);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(
            r.err.contains("does not serve the API subresources.kubevirt.io/v1") && r.err.contains("needs KubeVirt installed") && r.err.contains(&format!("virtualmachineinstances/{stream}")),
            "{r:?}"
        );
    }
}

#[tokio::test]
async fn with_no_size_class_vm_sizes_and_vm_create_say_how_to_add_one() {
    let (env, client) = env().await;
    let ns = unique("so-cli-sizes");
    department(&client, &ns, "H15.208", &[], &[]).await;
    assert!(Api::<pdc_api::SizeClass>::all(client.clone()).list(&Default::default()).await.unwrap().items.is_empty(), "this environment has no SizeClass");
    let r = pdcctl(&env.kubeconfig, &["vm", "sizes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.out.starts_with("NAME") && r.out.lines().count() == 1, "{r:?}");
    assert!(r.err.contains("There are no SizeClasses yet") && r.err.contains("kind: SizeClass") && r.err.contains("vcpu: 2"), "{r:?}");
    let r = pdcctl(&env.kubeconfig, &["vm", "sizes", "-o", "json"]);
    assert!(r.code == 0 && r.out.trim() == "[]" && r.err.is_empty(), "data for scripts stays clean: {r:?}");
    let r = pdcctl(&env.kubeconfig, &["vm", "create", "web", "-n", &ns, "--size", "m1.small", "--image", "https://images.daklak.gov.vn/u.qcow2", "--zone", "app"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.err.contains("\"m1.small\" is not a SizeClass") && r.err.contains("There are no SizeClasses yet") && !r.err.contains("sizes: "), "{r:?}");
    assert!(Api::<TenantVM>::namespaced(client.clone(), &ns).get_opt("web").await.unwrap().is_none(), "nothing created");
    // The namespace exists all the same (a department's).
    Api::<Namespace>::all(client).get(&ns).await.unwrap();
}
