//! The operator's liveness, for `/healthz`: every watch that fills a cache and every
//! controller loop registers here and reports when it stops, so that a replica whose
//! leader work has silently stopped fails its liveness probe and the kubelet
//! restarts it (a standby takes over meanwhile).
//!
//! A part is stopped when
//! - its stream ended or its loop returned: kube's watcher retries for ever, so only
//!   a bug or a consumer that went away ends one, and nothing restarts it;
//! - it was dropped while the operator runs (whatever polled it is gone);
//! - a watch failed to list or watch, with no success since, for longer than the
//!   failure limit (its kind's CRD deleted, the operator's RBAC for it revoked):
//!   it delivers nothing, and a restart turns a quiet stall into a visible one.
//!
//! On shutdown ([`Health::begin_shutdown`]) parts stop on purpose: that is not
//! reported. The same call is what the controllers' graceful shutdown waits for.

use std::fmt::Display;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;

/// How long a watch may fail before it counts as stopped, unless the operator is told
/// otherwise (`--watch-failure-limit`). Long enough for an API server rollout or a
/// CRD upgrade; a leader that cannot reach the API server at all stops leading within
/// its renew deadline anyway.
pub const DEFAULT_FAILURE_LIMIT: Duration = Duration::from_secs(300);

/// The parts of the process and how each stands.
pub struct Health {
    parts: Mutex<Vec<Part>>,
    failure_limit: Mutex<Duration>,
    shutting_down: AtomicBool,
    shutdown: tokio::sync::watch::Sender<bool>,
}

struct Part {
    name: String,
    state: State,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Running,
    Failing { since: Instant, error: String },
    Stopped(&'static str),
}

static GLOBAL: LazyLock<Arc<Health>> = LazyLock::new(|| Arc::new(Health::new(DEFAULT_FAILURE_LIMIT)));

/// The process's registry: what `/healthz` reports and what [`crate::cache`]'s watches
/// and the operator's controller loops register with.
pub fn global() -> &'static Arc<Health> {
    &GLOBAL
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Health {
    pub fn new(failure_limit: Duration) -> Self {
        Self {
            parts: Mutex::new(Vec::new()),
            failure_limit: Mutex::new(failure_limit),
            shutting_down: AtomicBool::new(false),
            shutdown: tokio::sync::watch::channel(false).0,
        }
    }

    pub fn set_failure_limit(&self, limit: Duration) {
        *lock(&self.failure_limit) = limit;
    }

    /// Register a part named `name` (a second part of the same name is numbered).
    pub fn register(self: &Arc<Self>, name: &str) -> Registration {
        let mut parts = lock(&self.parts);
        let same = parts.iter().filter(|p| p.name == name || p.name.starts_with(&format!("{name} #"))).count();
        let name = if same == 0 { name.to_string() } else { format!("{name} #{}", same + 1) };
        parts.push(Part { name, state: State::Running });
        Registration { health: self.clone(), index: parts.len() - 1 }
    }

    /// What is wrong at `now`, one line per stopped part; empty while all run, and
    /// during a shutdown.
    pub fn problems(&self, now: Instant) -> Vec<String> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Vec::new();
        }
        let limit = *lock(&self.failure_limit);
        lock(&self.parts)
            .iter()
            .filter_map(|p| match &p.state {
                State::Running => None,
                State::Stopped(why) => Some(format!("{}: {why}", p.name)),
                State::Failing { since, error } => {
                    let failing = now.saturating_duration_since(*since);
                    (failing >= limit).then(|| format!("{}: failing for {}s (limit {}s): {error}", p.name, failing.as_secs(), limit.as_secs()))
                }
            })
            .collect()
    }

    /// The parts stop from now on on purpose: no longer reported, and
    /// [`Self::shutdown_requested`] resolves.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.shutdown.send_replace(true);
    }

    /// Resolves once [`Self::begin_shutdown`] was called: a controller's graceful
    /// shutdown trigger.
    pub fn shutdown_requested(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.shutdown.subscribe();
        async move {
            // An error means the registry is gone: nothing will ask any more.
            let _ = rx.wait_for(|down| *down).await;
        }
    }

    fn set(&self, index: usize, state: State) {
        if let Some(p) = lock(&self.parts).get_mut(index) {
            p.state = state;
        }
    }
}

/// One part's handle on the registry.
pub struct Registration {
    health: Arc<Health>,
    index: usize,
}

impl Registration {
    pub fn name(&self) -> String {
        lock(&self.health.parts).get(self.index).map(|p| p.name.clone()).unwrap_or_default()
    }

    /// It works (again).
    pub fn succeeded(&self) {
        self.health.set(self.index, State::Running);
    }

    /// It failed; the failure counts from the first of a run of failures.
    pub fn failed(&self, error: &dyn Display) {
        let mut parts = lock(&self.health.parts);
        if let Some(p) = parts.get_mut(self.index) {
            let since = match &p.state {
                State::Failing { since, .. } => *since,
                _ => Instant::now(),
            };
            p.state = State::Failing { since, error: error.to_string() };
        }
    }

    /// It stopped for good (unless the operator is shutting down, when that is the
    /// point). Logged a moment later, and only if no shutdown began meanwhile: some
    /// controllers also stop on the signal themselves (kube's `shutdown_on_signal`),
    /// and may be polled to their end just before the operator's own signal handling
    /// calls [`Health::begin_shutdown`].
    pub fn stopped(&self, why: &'static str) {
        if self.health.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        self.health.set(self.index, State::Stopped(why));
        let part = self.name();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(part, why, "stopped; /healthz fails from now on");
            return;
        };
        let health = self.health.clone();
        drop(runtime.spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if !health.shutting_down.load(Ordering::SeqCst) {
                tracing::error!(part, why, "stopped; /healthz fails from now on");
            }
        }));
    }
}

/// `stream` (a watch's events), reported to `registration`: an error marks it failing
/// (logged once per run of failures), the next event marks it working, its end or
/// its being dropped marks it stopped.
pub fn watched<S, T, E>(stream: S, registration: Registration) -> Watched<S>
where
    S: Stream<Item = Result<T, E>>,
    E: Display,
{
    Watched { stream: Box::pin(stream), registration, failing: false, ended: false }
}

/// See [`watched`].
pub struct Watched<S> {
    stream: Pin<Box<S>>,
    registration: Registration,
    failing: bool,
    ended: bool,
}

impl<S, T, E> Stream for Watched<S>
where
    S: Stream<Item = Result<T, E>>,
    E: Display,
{
    type Item = Result<T, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.stream.as_mut().poll_next(cx);
        match &item {
            Poll::Ready(Some(Ok(_))) if self.failing => {
                self.failing = false;
                self.registration.succeeded();
                tracing::info!(watch = %self.registration.name(), "watch works again");
            }
            Poll::Ready(Some(Err(e))) => {
                if !self.failing {
                    tracing::warn!(watch = %self.registration.name(), error = %e, "watch failed; retrying with backoff");
                }
                self.failing = true;
                self.registration.failed(e);
            }
            Poll::Ready(None) if !self.ended => {
                self.ended = true;
                self.registration.stopped("its stream ended");
            }
            _ => {}
        }
        item
    }
}

impl<S> Drop for Watched<S> {
    fn drop(&mut self) {
        if !self.ended {
            self.registration.stopped("it was dropped");
        }
    }
}

/// Run `work` (a controller's loop) registered as `name`: it is stopped once it
/// returns, or when it is dropped before (its caller stopped polling it).
pub async fn supervised<F: Future<Output = ()>>(health: &Arc<Health>, name: &str, work: F) {
    struct Guard(Registration, &'static str);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.stopped(self.1);
        }
    }
    let mut guard = Guard(health.register(name), "it was dropped");
    work.await;
    guard.1 = "its loop returned";
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn health() -> Arc<Health> {
        Arc::new(Health::new(Duration::from_secs(30)))
    }

    #[tokio::test]
    async fn a_watch_is_stopped_when_its_stream_ends_and_numbered_when_its_name_repeats() {
        let h = health();
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<u32, String>>();
        let mut first = watched(rx, h.register("watch of sizeclasses"));
        let mut second = watched(futures::stream::pending::<Result<u32, String>>(), h.register("watch of sizeclasses"));
        tx.unbounded_send(Ok(1)).unwrap();
        assert_eq!(first.next().await, Some(Ok(1)));
        assert!(h.problems(Instant::now()).is_empty());
        drop(tx);
        assert_eq!(first.next().await, None);
        assert_eq!(h.problems(Instant::now()), ["watch of sizeclasses: its stream ended"]);
        assert!(futures::poll!(second.next()).is_pending());
        drop(second);
        assert_eq!(h.problems(Instant::now()), ["watch of sizeclasses: its stream ended", "watch of sizeclasses #2: it was dropped"]);
    }

    #[tokio::test]
    async fn a_watch_failing_past_the_limit_is_stopped_until_it_works_again() {
        let h = health();
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<u32, String>>();
        let mut w = watched(rx, h.register("watch of sites"));
        tx.unbounded_send(Err("404 the server could not find the requested resource".into())).unwrap();
        w.next().await;
        let start = Instant::now();
        tx.unbounded_send(Err("404 again".into())).unwrap();
        w.next().await;
        assert!(h.problems(start + Duration::from_secs(29)).is_empty(), "within the limit");
        let later = h.problems(start + Duration::from_secs(31));
        assert_eq!(later.len(), 1, "{later:?}");
        assert!(later[0].starts_with("watch of sites: failing for 3"), "{later:?}");
        assert!(later[0].ends_with("(limit 30s): 404 again"), "the last error is named: {later:?}");
        tx.unbounded_send(Ok(7)).unwrap();
        w.next().await;
        assert!(h.problems(start + Duration::from_secs(60)).is_empty());
    }

    #[tokio::test]
    async fn a_loop_that_returns_is_stopped_but_not_during_shutdown() {
        let h = health();
        supervised(&h, "controller provinces", async {}).await;
        assert_eq!(h.problems(Instant::now()), ["controller provinces: its loop returned"]);

        let h = health();
        let cancelled = supervised(&h, "controller departments", futures::future::pending());
        assert!(futures::poll!(Box::pin(cancelled)).is_pending());
        assert_eq!(h.problems(Instant::now()), ["controller departments: it was dropped"]);

        let h = health();
        let trigger = h.shutdown_requested();
        let stopping = supervised(&h, "controller zones", trigger);
        let mut stopping = Box::pin(stopping);
        assert!(futures::poll!(stopping.as_mut()).is_pending());
        h.begin_shutdown();
        stopping.await;
        assert!(h.problems(Instant::now()).is_empty(), "{:?}", h.problems(Instant::now()));
    }
}
