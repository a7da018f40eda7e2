//! Starts real control planes for local use (the demo, manual poking) and keeps them
//! until interrupted:
//!
//!     pdc-controlplane --count 2 --env-file /tmp/pdc/env
//!
//! writes `KUBECONFIG=...` (and `PDC_STANDBY_KUBECONFIG=...` for a second plane) to the
//! env file once every plane answers /readyz, then waits for SIGINT/SIGTERM and stops
//! them by pid.
//!
//!     pdc-controlplane apply FILE...
//!
//! applies manifests server-side to the cluster of $KUBECONFIG (CRDs first, waiting
//! until they are Established), for scripts that should not need kubectl.
//!
//!     pdc-controlplane token-kubeconfig NAMESPACE SERVICEACCOUNT OUT
//!
//! writes to OUT a kubeconfig for the cluster of $KUBECONFIG that acts as the service
//! account, with a token from the TokenRequest API (24 h), so the demo runs the
//! operator under the chart's RBAC, as the tests do.

use std::path::PathBuf;
use std::process::ExitCode;

use pdc_tests::controlplane::ControlPlane;

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("apply") => return run(apply(std::env::args().skip(2).collect())),
        Some("token-kubeconfig") => return run(token_kubeconfig(std::env::args().skip(2).collect())),
        _ => {}
    }
    let mut count = 1usize;
    let mut env_file: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--count" => count = args.next().and_then(|n| n.parse().ok()).unwrap_or(1),
            "--env-file" => env_file = args.next().map(PathBuf::from),
            _ => {
                eprintln!("usage: pdc-controlplane [--count N] [--env-file FILE] | pdc-controlplane apply FILE...");
                return ExitCode::from(2);
            }
        }
    }
    let base = std::env::temp_dir().join("pdc-controlplane");
    let mut planes = Vec::new();
    for i in 0..count {
        let name = if i == 0 { "primary".to_string() } else { format!("standby{}", if i == 1 { String::new() } else { i.to_string() }) };
        match ControlPlane::start(&name, &base) {
            Ok(p) => {
                eprintln!("control plane {name}: https://127.0.0.1:{} (files in {})", p.port, p.dir.display());
                planes.push(p);
            }
            Err(e) => {
                eprintln!("pdc-controlplane: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut env = String::new();
    for (i, p) in planes.iter().enumerate() {
        let var = match i {
            0 => "KUBECONFIG".to_string(),
            1 => "PDC_STANDBY_KUBECONFIG".to_string(),
            n => format!("PDC_PLANE{n}_KUBECONFIG"),
        };
        env.push_str(&format!("export {var}={}\n", p.kubeconfig().display()));
    }
    match &env_file {
        Some(f) => {
            let tmp = f.with_extension("tmp");
            if let Err(e) = std::fs::write(&tmp, &env).and_then(|()| std::fs::rename(&tmp, f)) {
                eprintln!("pdc-controlplane: writing {}: {e}", f.display());
                return ExitCode::FAILURE;
            }
        }
        None => print!("{env}"),
    }
    wait_for_signal();
    eprintln!("stopping control planes");
    drop(planes);
    ExitCode::SUCCESS
}

fn wait_for_signal() {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(_) => return,
    };
    rt.block_on(async {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
}

/// Run `work` on a runtime of its own and turn its error into a message and a failure.
fn run(work: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let result = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(work),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pdc-controlplane: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn token_kubeconfig(args: Vec<String>) -> Result<(), String> {
    use kube::config::{AuthInfo, Context, Kubeconfig, NamedAuthInfo, NamedContext};
    let [ns, sa, out] = args.as_slice() else {
        return Err("usage: pdc-controlplane token-kubeconfig NAMESPACE SERVICEACCOUNT OUT".into());
    };
    let client = kube::Client::try_default().await.map_err(|e| format!("connecting: {e}"))?;
    let token = pdc_tests::cluster::service_account_token(&client, ns, sa).await.map_err(|e| format!("a token for {ns}/{sa}: {e}"))?;
    let mut kc = Kubeconfig::read().map_err(|e| format!("reading the kubeconfig: {e}"))?;
    let current = kc.current_context.clone().unwrap_or_default();
    let cluster = kc.contexts.iter().find(|c| c.name == current).and_then(|c| c.context.as_ref()).map(|c| c.cluster.clone()).ok_or("the kubeconfig has no current context")?;
    let user = format!("system:serviceaccount:{ns}:{sa}");
    kc.auth_infos = vec![NamedAuthInfo { name: user.clone(), auth_info: Some(AuthInfo { token: Some(token.into()), ..Default::default() }), ..Default::default() }];
    kc.contexts = vec![NamedContext { name: user.clone(), context: Some(Context { cluster, user: Some(user.clone()), ..Default::default() }), ..Default::default() }];
    kc.current_context = Some(user);
    let yaml = serde_yaml::to_string(&kc).map_err(|e| e.to_string())?;
    // It holds a token: readable by its owner only.
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(out)
        .and_then(|mut f| f.write_all(yaml.as_bytes()))
        .map_err(|e| format!("writing {out}: {e}"))?;
    eprintln!("wrote {out}: the cluster of the current context, as {ns}/{sa}");
    Ok(())
}

async fn apply(files: Vec<String>) -> Result<(), String> {
    let client = kube::Client::try_default().await.map_err(|e| format!("connecting: {e}"))?;
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("reading {f}: {e}"))?;
        pdc_tests::cluster::apply_yaml(&client, &text, None).await.map_err(|e| format!("{f}: {e}"))?;
        eprintln!("applied {f}");
    }
    Ok(())
}
