//! Prometheus metrics and the `/metrics`, `/healthz`, `/readyz` endpoints.
//! Labels are bounded: controller name, result, error kind — never object names.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub controller: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: &'static str,
    pub error: &'static str,
}

pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    duration: Family<ControllerLabels, Histogram>,
    errors: Family<ErrorLabels, Counter>,
    pub leader: Gauge,
    pub departments_ready: Gauge,
    pub departments_total: Gauge,
    ready: AtomicBool,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pdc");
        let reconciles = Family::<ResultLabels, Counter>::default();
        let duration =
            Family::<ControllerLabels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.005, 2.0, 14)));
        let errors = Family::<ErrorLabels, Counter>::default();
        let leader = Gauge::default();
        let departments_ready = Gauge::default();
        let departments_total = Gauge::default();
        registry.register("reconcile", "Reconciles by controller and result", reconciles.clone());
        registry.register("reconcile_duration_seconds", "Reconcile duration by controller", duration.clone());
        registry.register("reconcile_errors", "Reconcile errors by controller and error kind", errors.clone());
        registry.register("leader", "1 while this replica holds the leader lease", leader.clone());
        registry.register("departments_ready", "Departments whose Ready condition is True", departments_ready.clone());
        registry.register("departments", "Departments known to the operator", departments_total.clone());
        Self {
            registry,
            reconciles,
            duration,
            errors,
            leader,
            departments_ready,
            departments_total,
            ready: AtomicBool::new(false),
        }
    }

    /// Start timing one reconcile of `controller`.
    pub fn reconcile_started(&self, controller: &'static str) -> ReconcileTimer<'_> {
        ReconcileTimer { metrics: self, controller, start: Instant::now() }
    }

    pub fn reconcile_failed(&self, controller: &'static str, error: &'static str) {
        self.errors.get_or_create(&ErrorLabels { controller, error }).inc();
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Records the duration and result of one reconcile when finished.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    controller: &'static str,
    start: Instant,
}

impl ReconcileTimer<'_> {
    pub fn finish(self, ok: bool) {
        let labels = ControllerLabels { controller: self.controller };
        self.metrics.duration.get_or_create(&labels).observe(self.start.elapsed().as_secs_f64());
        let result = if ok { "success" } else { "error" };
        self.metrics.reconciles.get_or_create(&ResultLabels { controller: self.controller, result }).inc();
    }
}

async fn metrics(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    match m.encode() {
        Ok(body) => (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn readyz(State(m): State<Arc<Metrics>>) -> StatusCode {
    if m.ready.load(Ordering::Relaxed) { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }
}

/// Serve `/metrics`, `/healthz` and `/readyz` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, m: Arc<Metrics>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(m);
    axum::serve(listener, app).await
}
