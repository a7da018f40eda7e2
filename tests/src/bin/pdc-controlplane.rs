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

use std::path::PathBuf;
use std::process::ExitCode;

use pdc_tests::controlplane::ControlPlane;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("apply") {
        return apply(std::env::args().skip(2).collect());
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

fn apply(files: Vec<String>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pdc-controlplane apply: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), String> = rt.block_on(async {
        let client = kube::Client::try_default().await.map_err(|e| format!("connecting: {e}"))?;
        for f in &files {
            let text = std::fs::read_to_string(f).map_err(|e| format!("reading {f}: {e}"))?;
            pdc_tests::cluster::apply_yaml(&client, &text, None).await.map_err(|e| format!("{f}: {e}"))?;
            eprintln!("applied {f}");
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pdc-controlplane apply: {e}");
            ExitCode::FAILURE
        }
    }
}
