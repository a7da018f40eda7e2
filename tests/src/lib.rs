//! pdc's test harness: real control planes ([`controlplane`]), their PKI
//! ([`pki`]), cluster helpers ([`cluster`]) and operator processes ([`operator`]).

pub mod acts;
pub mod addressing;
pub mod bench;
pub mod cluster;
pub mod controlplane;
pub mod dns;
pub mod operator;
pub mod pki;
pub mod players;
pub mod sites;

use std::path::PathBuf;
use std::time::Duration;

/// What can go wrong while setting up the test environment.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{0} is missing: run `bash tests/controlplane/build.sh` first (it builds kube-apiserver, kube-controller-manager, etcd and helm from their Go modules)")]
    MissingBinary(PathBuf),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("creating test certificates failed: {0}")]
    Pki(String),
    #[error("{0} exited ({1}) while starting; last lines of its log:\n{2}")]
    Exited(String, String, String),
    #[error("control plane {0} did not become ready within {1:?}")]
    NotReady(String, Duration),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Other(String),
}

/// Run `cmd` (with `input` on its stdin, if any) to completion: its stdout and stderr
/// together, or an error naming `what` with that output when it fails.
pub fn run_command(cmd: &mut std::process::Command, input: Option<&str>, what: &str) -> Result<String, HarnessError> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| HarnessError::Io(format!("running {what} (install it with `bash tests/setup.sh`)"), e))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).map_err(|e| HarnessError::Io(format!("writing to {what}"), e))?;
    }
    let out = child.wait_with_output().map_err(|e| HarnessError::Io(format!("waiting for {what}"), e))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() { Ok(text) } else { Err(HarnessError::Other(format!("{what}: {text}"))) }
}

/// Run the workspace's `pdcctl` with `KUBECONFIG=kubeconfig`: (exit code, stdout + stderr).
pub fn pdcctl(kubeconfig: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = operator::workspace_binary("pdcctl").and_then(|bin| {
        std::process::Command::new(bin).args(args).env("KUBECONFIG", kubeconfig).output().map_err(|e| HarnessError::Io("running pdcctl".into(), e))
    });
    match out {
        Ok(o) => (o.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))),
        Err(e) => (-1, e.to_string()),
    }
}
