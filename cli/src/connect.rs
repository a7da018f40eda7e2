//! Which cluster and namespace a command talks to, decided as kubectl decides it:
//! `--kubeconfig`, else every file in `KUBECONFIG` merged (the first file to name a
//! cluster, user or context wins, and so does the first `current-context`), else
//! `~/.kube/config`; `--context`; `--request-timeout` on every request; and the
//! namespace from `-n`/`-d`, else the context's.

use std::ffi::OsStr;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use kube::api::ListParams;
use kube::client::{Body, ClientBuilder};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Resource};

use crate::wait::format_duration;
use crate::{Cli, CliError};

/// The merged kubeconfig: `explicit` (`--kubeconfig`, one file, which must exist),
/// else the files of `env` (`KUBECONFIG`, separated as PATH is; missing files are
/// skipped as kubectl skips them), else `~/.kube/config`.
pub fn load_kubeconfig(explicit: Option<&Path>, env: Option<&OsStr>, home: Option<&Path>) -> Result<Kubeconfig, CliError> {
    let read = |p: &Path| Kubeconfig::read_from(p).map_err(|e| CliError::Connect(format!("kubeconfig {}: {e}", p.display())));
    if let Some(path) = explicit {
        return read(path);
    }
    let listed: Vec<PathBuf> = env.map(|v| std::env::split_paths(v).filter(|p| !p.as_os_str().is_empty()).collect()).unwrap_or_default();
    if listed.is_empty() {
        let default = home.map(|h| h.join(".kube/config")).ok_or_else(|| CliError::Connect("no kubeconfig: set KUBECONFIG, pass --kubeconfig, or write ~/.kube/config".into()))?;
        return read(&default);
    }
    let mut merged: Option<Kubeconfig> = None;
    for p in listed.iter().filter(|p| p.exists()) {
        let next = read(p)?;
        merged = Some(match merged {
            None => next,
            Some(m) => m.merge(next).map_err(|e| CliError::Connect(format!("merging kubeconfig {}: {e}", p.display())))?,
        });
    }
    merged.ok_or_else(|| {
        let names: Vec<String> = listed.iter().map(|p| p.display().to_string()).collect();
        CliError::Connect(format!("none of the kubeconfig files in KUBECONFIG exists: {}", names.join(", ")))
    })
}

/// The API server the command talks to, for messages about not reaching it.
static SERVER: OnceLock<String> = OnceLock::new();

/// A client for the cluster `cli` names, each request bounded by `--request-timeout`.
pub async fn client(cli: &Cli) -> Result<Client, CliError> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let env = std::env::var_os("KUBECONFIG");
    let kc = load_kubeconfig(cli.kubeconfig.as_deref(), env.as_deref(), home.as_deref())?;
    let opts = KubeConfigOptions { context: cli.context.clone(), ..Default::default() };
    let config = kube::Config::from_custom_kubeconfig(kc, &opts).await.map_err(|e| CliError::Connect(e.to_string()))?;
    let _ = SERVER.set(config.cluster_url.to_string());
    let builder = ClientBuilder::try_from(config).map_err(|e| CliError::Connect(e.to_string()))?;
    Ok(match cli.request_timeout.filter(|t| !t.is_zero()) {
        Some(limit) => builder.with_layer(&RequestDeadline(limit)).build(),
        None => builder.build(),
    })
}

/// Where a namespaced command acts. A Department's namespace is its name (its
/// slug: `so-y-te` → namespace `so-y-te`), so `-d so-y-te` and `-n so-y-te` are the
/// same; with neither, the kubeconfig context's namespace.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Scope {
    /// The namespace to act in (a department's namespace is its name).
    #[arg(short = 'n', long = "namespace", value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// The department to act in: the same as `-n <department>`.
    #[arg(short = 'd', long = "department", value_name = "DEPARTMENT")]
    pub department: Option<String>,
}

impl Scope {
    /// The namespace the flags name, if any; two flags naming different ones are a
    /// usage error.
    pub fn explicit(&self) -> Result<Option<String>, CliError> {
        match (&self.namespace, &self.department) {
            (Some(n), Some(d)) if n != d => Err(CliError::Flag(format!(
                "-n {n} and -d {d} name different namespaces (a department's namespace is its name): give one of them"
            ))),
            (n, d) => Ok(n.clone().or_else(|| d.clone())),
        }
    }

    /// The namespace: the flags', else the context's.
    pub fn namespace(&self, client: &Client) -> Result<String, CliError> {
        Ok(self.explicit()?.unwrap_or_else(|| client.default_namespace().to_string()))
    }
}

/// Where a list looks: one namespace as [`Scope`] decides, or all of them (`-A`);
/// `-l` is passed to the API server's list.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ListScope {
    #[command(flatten)]
    pub scope: Scope,
    /// List in every namespace (every department).
    #[arg(short = 'A', long = "all-namespaces", conflicts_with_all = ["namespace", "department"])]
    pub all_namespaces: bool,
    /// Only objects whose labels match, e.g. `-l tier=web,env!=test` (a Kubernetes
    /// label selector, applied by the API server).
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,
}

impl ListScope {
    /// The Api the list reads: every namespace, or the one the flags or context name.
    pub fn api<K>(&self, client: Client) -> Result<Api<K>, CliError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        if self.all_namespaces {
            return Ok(Api::all(client));
        }
        let ns = self.scope.namespace(&client)?;
        Ok(Api::namespaced(client, &ns))
    }

    pub fn params(&self) -> ListParams {
        match &self.selector {
            Some(s) => ListParams::default().labels(s),
            None => ListParams::default(),
        }
    }
}

/// A request that got no whole answer within `--request-timeout`.
#[derive(Debug, thiserror::Error)]
#[error("no answer from the API server within {} (--request-timeout)", format_duration(*.0))]
pub struct RequestTimedOut(pub Duration);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The tower layer that bounds each request, its answer's body included, as
/// kubectl's `--request-timeout` does.
#[derive(Debug, Clone, Copy)]
struct RequestDeadline(Duration);

impl<S> tower::Layer<S> for RequestDeadline {
    type Service = Deadlined<S>;
    fn layer(&self, inner: S) -> Deadlined<S> {
        Deadlined { inner, limit: self.0 }
    }
}

#[derive(Debug, Clone)]
struct Deadlined<S> {
    inner: S,
    limit: Duration,
}

impl<S, B> tower::Service<http::Request<Body>> for Deadlined<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<DeadlineBody<B>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let limit = self.limit;
        let deadline = tokio::time::Instant::now() + limit;
        let answer = self.inner.call(req);
        Box::pin(async move {
            match tokio::time::timeout_at(deadline, answer).await {
                Ok(Ok(res)) => Ok(res.map(|inner| DeadlineBody { inner, limit, expiry: Box::pin(tokio::time::sleep_until(deadline)) })),
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err(Box::new(RequestTimedOut(limit)) as BoxError),
            }
        })
    }
}

/// An answer's body that fails once the request's time is up.
struct DeadlineBody<B> {
    inner: B,
    limit: Duration,
    expiry: Pin<Box<tokio::time::Sleep>>,
}

impl<B> http_body::Body for DeadlineBody<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, BoxError>>> {
        if self.expiry.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(RequestTimedOut(self.limit)))));
        }
        Pin::new(&mut self.inner).poll_frame(cx).map(|f| f.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A client error as kubectl words it: the server's refusal with its reason, a
/// request that ran out of `--request-timeout`, or the server that could not be
/// reached with every cause.
pub fn describe(e: &kube::Error) -> String {
    let mut causes = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<RequestTimedOut>() {
            return t.to_string();
        }
        causes.push(s.to_string());
        source = s.source();
    }
    match e {
        kube::Error::Api(s) if s.reason.is_empty() => format!("error from the API server ({}): {}", s.code, s.message),
        kube::Error::Api(s) => format!("error from the API server ({}): {}", s.reason, s.message),
        kube::Error::Service(_) | kube::Error::HyperError(_) => {
            // Each cause repeats the next; the deepest ones say what happened.
            let detail = causes.iter().skip(1).cloned().collect::<Vec<_>>().join(": ");
            format!("cannot reach the API server {}: {detail}", SERVER.get().map(String::as_str).unwrap_or("(no server)"))
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(dir: &Path, file: &str, text: &str) -> PathBuf {
        let p = dir.join(file);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pdcctl-connect-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const FIRST: &str = "apiVersion: v1\nkind: Config\ncurrent-context: site-a\nclusters:\n- name: a\n  cluster: {server: 'https://a.example:6443'}\n- name: shared\n  cluster: {server: 'https://first.example:6443'}\ncontexts:\n- name: site-a\n  context: {cluster: a, user: u, namespace: so-y-te}\nusers:\n- name: u\n  user: {token: one}\n";
    const SECOND: &str = "apiVersion: v1\nkind: Config\ncurrent-context: site-b\nclusters:\n- name: b\n  cluster: {server: 'https://b.example:6443'}\n- name: shared\n  cluster: {server: 'https://second.example:6443'}\ncontexts:\n- name: site-b\n  context: {cluster: shared, user: u}\nusers:\n- name: u\n  user: {token: two}\n";

    #[test]
    fn kubeconfig_files_merge_first_wins_and_missing_ones_are_skipped() {
        let dir = scratch("merge");
        let (a, b) = (kubeconfig(&dir, "a", FIRST), kubeconfig(&dir, "b", SECOND));
        let list = std::env::join_paths([a.clone(), dir.join("missing"), b.clone()]).unwrap();
        let kc = load_kubeconfig(None, Some(&list), None).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("site-a"));
        let clusters: Vec<(String, String)> = kc.clusters.iter().map(|c| (c.name.clone(), c.cluster.as_ref().unwrap().server.clone().unwrap())).collect();
        assert_eq!(
            clusters,
            [("a".into(), "https://a.example:6443".into()), ("shared".into(), "https://first.example:6443".into()), ("b".into(), "https://b.example:6443".into())]
        );
        let contexts: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(contexts, ["site-a", "site-b"]);
        assert_eq!(kc.auth_infos.len(), 1, "user u from the first file only");
        // The second file first: its current context and its `shared` cluster win.
        let list = std::env::join_paths([b, a]).unwrap();
        let kc = load_kubeconfig(None, Some(&list), None).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("site-b"));
        assert_eq!(kc.clusters.iter().find(|c| c.name == "shared").unwrap().cluster.as_ref().unwrap().server.as_deref(), Some("https://second.example:6443"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_explicit_kubeconfig_must_exist_and_so_must_one_of_the_listed() {
        let dir = scratch("missing");
        let e = load_kubeconfig(Some(&dir.join("nope")), None, None).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
        let list = std::env::join_paths([dir.join("x"), dir.join("y")]).unwrap();
        let e = load_kubeconfig(None, Some(&list), None).unwrap_err().to_string();
        assert!(e.contains("none of the kubeconfig files in KUBECONFIG exists") && e.contains("/x") && e.contains("/y"), "{e}");
        let home = scratch("home");
        std::fs::create_dir_all(home.join(".kube")).unwrap();
        kubeconfig(&home.join(".kube"), "config", FIRST);
        assert_eq!(load_kubeconfig(None, Some(OsStr::new("")), Some(&home)).unwrap().current_context.as_deref(), Some("site-a"));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&home);
    }

    #[test]
    fn api_errors_read_as_kubectl_words_them() {
        let refused = kube::Error::Api(kube::core::Status::failure("tenantvms.pdc.io \"web-1\" not found", "NotFound").with_code(404).boxed());
        assert_eq!(describe(&refused), "error from the API server (NotFound): tenantvms.pdc.io \"web-1\" not found");
        let timed_out = kube::Error::Service(Box::new(RequestTimedOut(Duration::from_secs(30))));
        assert_eq!(describe(&timed_out), "no answer from the API server within 30s (--request-timeout)");
        let unreachable = kube::Error::Service(Box::new(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused")));
        assert!(describe(&unreachable).starts_with("cannot reach the API server ") && describe(&unreachable).ends_with(": Connection refused"), "{}", describe(&unreachable));
    }

    #[test]
    fn department_and_namespace_name_the_same_namespace() {
        let s = |n: Option<&str>, d: Option<&str>| Scope { namespace: n.map(Into::into), department: d.map(Into::into) };
        assert_eq!(s(Some("so-y-te"), None).explicit().unwrap().as_deref(), Some("so-y-te"));
        assert_eq!(s(None, Some("so-y-te")).explicit().unwrap().as_deref(), Some("so-y-te"));
        assert_eq!(s(Some("so-y-te"), Some("so-y-te")).explicit().unwrap().as_deref(), Some("so-y-te"));
        assert_eq!(s(None, None).explicit().unwrap(), None);
        let e = s(Some("so-y-te"), Some("so-tai-chinh")).explicit().unwrap_err();
        assert!(matches!(&e, CliError::Flag(m) if m.contains("different namespaces")), "{e}");
    }
}
