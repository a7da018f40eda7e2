//! pdc's test harness: real control planes ([`controlplane`]), their PKI
//! ([`pki`]), cluster helpers ([`cluster`]) and operator processes ([`operator`]).

pub mod addressing;
pub mod bench;
pub mod cluster;
pub mod controlplane;
pub mod dns;
pub mod operator;
pub mod pki;

use std::path::PathBuf;
use std::time::Duration;

/// What can go wrong while setting up the test environment.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{0} is missing: run `bash tests/controlplane/build.sh` first (it builds kube-apiserver, etcd and helm from their Go modules)")]
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
