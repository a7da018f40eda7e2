use thiserror::Error;

/// What a reconcile can fail at. Variants are named after the failed action; the
/// metric label is [`Error::kind`], never the message.
#[derive(Debug, Error)]
pub enum Error {
    #[error("reading {what} failed: {source}")]
    Read { what: String, #[source] source: kube::Error },

    #[error("applying {what} failed: {source}")]
    Apply { what: String, #[source] source: kube::Error },

    #[error("creating {what} failed: {source}")]
    Create { what: String, #[source] source: kube::Error },

    /// A request that cannot be carried out as given; the message says why.
    #[error("{0}")]
    Invalid(String),

    #[error("deleting {what} failed: {source}")]
    Delete { what: String, #[source] source: kube::Error },

    #[error("updating the status of {what} failed: {source}")]
    PatchStatus { what: String, #[source] source: kube::Error },

    #[error("discovering pdc resource kinds failed: {0}")]
    Discover(#[source] kube::Error),

    /// The object cannot be deleted yet; the message says what to do. Retried slowly.
    #[error("{0}")]
    DeletionBlocked(String),

    #[error("finalizer step failed: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// The error itself, out of the finalizer's wrapping (the reconcile's own failure
    /// of an apply or cleanup step).
    pub fn root(&self) -> &Error {
        match self {
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e) | kube::runtime::finalizer::Error::CleanupFailed(e) => e.root(),
                _ => self,
            },
            e => e,
        }
    }

    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Read { .. } => "read",
            Error::Apply { .. } => "apply",
            Error::Delete { .. } => "delete",
            Error::Create { .. } => "create",
            Error::Invalid(_) => "invalid",
            Error::PatchStatus { .. } => "patch_status",
            Error::Discover(_) => "discover",
            Error::DeletionBlocked(_) => "deletion_blocked",
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e) | kube::runtime::finalizer::Error::CleanupFailed(e) => e.kind(),
                _ => "finalizer",
            },
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether a kube error is the API server's "already exists" (or a lost update race).
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Whether a kube error is "not found".
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}
