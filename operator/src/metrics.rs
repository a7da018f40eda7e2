//! Prometheus metrics and the `/metrics`, `/healthz`, `/readyz` endpoints.
//! Labels are bounded: controller name, result, error kind — never object names.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::core::Collector;
use prometheus::{Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    /// Every registered metric, to announce the families with no series yet.
    collectors: Vec<Box<dyn Collector>>,
    reconciles: IntCounterVec,
    duration: HistogramVec,
    errors: IntCounterVec,
    pub leader: IntGauge,
    pub departments_ready: IntGauge,
    pub departments_total: IntGauge,
    pub ipam_subnets_allocated: GaugeVec,
    pub ipam_subnets_capacity: GaugeVec,
    pub ipam_addresses_allocated: GaugeVec,
    pub ipam_addresses_capacity: GaugeVec,
    /// Changes (record sets) waiting to be written, per DNS zone.
    pub dns_pending_changes: GaugeVec,
    /// UNIX time of the last sync that left a zone as its DnsRecords say.
    pub dns_last_sync: GaugeVec,
    /// 1 while a zone is in sync, 0 while its server cannot be read or written.
    pub dns_zone_in_sync: GaugeVec,
    /// Record sets pdc wants that another owner's set holds, per zone.
    pub dns_conflicts: GaugeVec,
    /// Record sets pdc manages in a zone.
    pub dns_record_sets: GaugeVec,
    /// Round trip of one UPDATE message, per zone.
    pub dns_update_duration: HistogramVec,
    /// Failed exchanges with a DNS server by zone and reason.
    pub dns_errors: IntCounterVec,
    /// Zone transfers read, by zone and kind (`full`: AXFR; `incremental`: IXFR).
    pub dns_transfers: IntCounterVec,
    /// TenantVMs by phase.
    pub tenantvms: GaugeVec,
    /// Quota held and allowed per department and resource (vcpu, memory_bytes, vms, storage_<tier>_bytes).
    pub quota_used: GaugeVec,
    pub quota_limit: GaugeVec,
    /// TenantVM creation → first Ready.
    pub tenantvm_provision: prometheus::Histogram,
    /// Per DrPlan (namespace, plan) as seen at this site: seconds since the oldest
    /// disk's last sync, that sync's UNIX time, the RPO, 1 while Protected.
    pub dr_lag: GaugeVec,
    pub dr_last_sync: GaugeVec,
    pub dr_rpo: GaugeVec,
    pub dr_protected: GaugeVec,
    /// UNIX time of the last passed drill (or relocate), and of the last time the
    /// standby was shown able to run the VMs.
    pub dr_last_drill: GaugeVec,
    pub dr_last_standby_check: GaugeVec,
    /// Action request → done, per action.
    pub dr_action_duration: HistogramVec,
    /// Requests this operator sent to the Kubernetes API, by verb (benchmarks divide
    /// it by the objects handled).
    pub kube_requests: IntCounterVec,
    /// Reorganization steps carried out, by step and result (`Done`, `Failed`).
    reorg_steps: IntCounterVec,
    /// Per act: when its current step should be done by.
    pub reorg_step_deadline: GaugeVec,
    /// Per act: when its aliases go (the transition's end), while they are there.
    pub reorg_alias_expiry: GaugeVec,
    /// Per act: old names and redeclared names that must answer and do not.
    pub reorg_not_answering: GaugeVec,
    /// Per act: archive snapshots kept past their retention date.
    pub reorg_archives_past_retention: GaugeVec,
    /// Per act: units still on codes the act reissued, and the reissue's deadline.
    pub reorg_absorbed_codes: GaugeVec,
    pub reorg_code_deadline: GaugeVec,
    /// Per department: its IPv6 readiness (see `pdc_core::report::ipv6_readiness`).
    pub ipv6_ready_ratio: GaugeVec,
    /// Per zone: 1 for its IPv4 phase, 0 for the others (a state set).
    pub zone_ipv4_phase: GaugeVec,
    ready: AtomicBool,
    /// Reconciles started and not yet finished (what a shutdown waits for).
    in_flight: AtomicUsize,
}

impl Metrics {
    /// Drop a deleted DrPlan's series.
    pub fn forget_plan(&self, namespace: &str, plan: &str) {
        for g in [&self.dr_lag, &self.dr_last_sync, &self.dr_rpo, &self.dr_protected, &self.dr_last_drill, &self.dr_last_standby_check] {
            let _ = g.remove_label_values(&[namespace, plan]);
        }
    }
}

/// Prefix of every metric name.
const PREFIX: &str = "pdc";

/// Registers each metric as it is made, and keeps it.
struct Reg(Registry, Vec<Box<dyn Collector>>);

impl Reg {
    fn add<C: Collector + Clone + 'static>(&mut self, c: C) -> Result<C, prometheus::Error> {
        self.0.register(Box::new(c.clone()))?;
        self.1.push(Box::new(c.clone()));
        Ok(c)
    }
    fn counter(&mut self, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec, prometheus::Error> {
        self.add(IntCounterVec::new(Opts::new(name, help), labels)?)
    }
    fn gauge(&mut self, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
        self.add(IntGauge::new(name, help)?)
    }
    fn gauges(&mut self, name: &str, help: &str, labels: &[&str]) -> Result<GaugeVec, prometheus::Error> {
        self.add(GaugeVec::new(Opts::new(name, help), labels)?)
    }
    /// Histogram with exponential buckets from `start`, doubling 12 or 14 times.
    fn histograms(&mut self, name: &str, help: &str, start: f64, count: usize, labels: &[&str]) -> Result<HistogramVec, prometheus::Error> {
        self.add(HistogramVec::new(HistogramOpts::new(name, help).buckets(prometheus::exponential_buckets(start, 2.0, count)?), labels)?)
    }
}

const SITE: &[&str] = &["zone", "site", "family"];
const ZONE: &[&str] = &["zone"];
const PLAN: &[&str] = &["namespace", "plan"];
/// The labels of a reorganization act's gauges.
const ACT: &[&str] = &["reorganization"];

impl Metrics {
    /// Build the registry (fails only on an invalid metric definition).
    pub fn new() -> Result<Self, prometheus::Error> {
        let mut r = Reg(Registry::new_custom(Some(PREFIX.into()), None)?, Vec::new());
        let tenantvm_provision = prometheus::Histogram::with_opts(
            HistogramOpts::new("tenantvm_provision_duration_seconds", "TenantVM creation to first Ready").buckets(prometheus::exponential_buckets(0.25, 2.0, 12)?),
        )?;
        Ok(Self {
            reconciles: r.counter("reconcile_total", "Reconciles by controller and result", &["controller", "result"])?,
            errors: r.counter("reconcile_errors_total", "Reconcile errors by controller and error kind", &["controller", "error"])?,
            kube_requests: r.counter("kube_api_requests_total", "Requests sent to the Kubernetes API by verb", &["verb"])?,
            duration: r.histograms("reconcile_duration_seconds", "Reconcile duration by controller", 0.005, 14, &["controller"])?,
            leader: r.gauge("leader", "1 while this replica holds the leader lease")?,
            departments_ready: r.gauge("departments_ready", "Departments whose Ready condition is True")?,
            departments_total: r.gauge("departments", "Departments known to the operator")?,
            ipam_subnets_allocated: r.gauges("ipam_subnets_allocated", "Department subnets allocated from a zone's prefix, per site and family", SITE)?,
            ipam_subnets_capacity: r.gauges("ipam_subnets_capacity", "Department subnets a zone's prefix holds, per site and family", SITE)?,
            ipam_addresses_allocated: r.gauges("ipam_addresses_allocated", "Addresses allocated in a zone's department subnets, per site and family", SITE)?,
            ipam_addresses_capacity: r.gauges("ipam_addresses_capacity", "Usable addresses in a zone's allocated department subnets, per site and family", SITE)?,
            dns_pending_changes: r.gauges("dns_pending_changes", "Record sets waiting to be written to a DNS zone", ZONE)?,
            dns_last_sync: r.gauges("dns_last_sync_timestamp_seconds", "UNIX time a DNS zone was last found or made as its DnsRecords say", ZONE)?,
            dns_zone_in_sync: r.gauges("dns_zone_in_sync", "1 while a DNS zone is in sync, 0 while its server cannot be read or written", ZONE)?,
            dns_conflicts: r.gauges("dns_conflicts", "Record sets pdc wants that a set it does not own holds", ZONE)?,
            dns_record_sets: r.gauges("dns_record_sets", "Record sets pdc manages in a DNS zone", ZONE)?,
            dns_update_duration: r.histograms("dns_update_duration_seconds", "Round trip of one RFC 2136 UPDATE message", 0.001, 14, ZONE)?,
            dns_errors: r.counter("dns_errors_total", "Failed exchanges with a DNS server by zone and reason", &["zone", "reason"])?,
            dns_transfers: r.counter("dns_transfers_total", "Zone transfers read by zone and kind (full: AXFR, incremental: IXFR)", &["zone", "kind"])?,
            tenantvms: r.gauges("tenantvms", "TenantVMs by phase", &["phase"])?,
            quota_used: r.gauges("quota_used", "Quota held by a department's VMs and volumes, per resource", &["department", "resource"])?,
            quota_limit: r.gauges("quota_limit", "A department's quota, per resource", &["department", "resource"])?,
            tenantvm_provision: r.add(tenantvm_provision)?,
            dr_lag: r.gauges("dr_lag_seconds", "Seconds since the last completed sync of a DR plan's least recent disk", PLAN)?,
            dr_last_sync: r.gauges("dr_last_sync_timestamp_seconds", "UNIX time of the last completed sync of a DR plan's least recent disk", PLAN)?,
            dr_rpo: r.gauges("dr_rpo_seconds", "A DR plan's recovery point objective", PLAN)?,
            dr_protected: r.gauges("dr_protected", "1 while a DR plan's VMs are defined at the standby and every disk replicates", PLAN)?,
            dr_last_drill: r.gauges("dr_last_drill_timestamp_seconds", "UNIX time of a DR plan's last passed drill or relocate", PLAN)?,
            dr_last_standby_check: r.gauges(
                "dr_last_standby_check_timestamp_seconds",
                "UNIX time the standby last ran a DR plan's VMs (drill, relocate or failover)",
                PLAN,
            )?,
            dr_action_duration: r.histograms("dr_action_duration_seconds", "DR action request to its last step done", 0.5, 12, &["action"])?,
            reorg_steps: r.counter("reorganization_steps_total", "Reorganization steps carried out, by step and result", &["step", "result"])?,
            reorg_step_deadline: r.gauges(
                "reorganization_step_deadline_timestamp_seconds",
                "UNIX time by which an act's current step should be done (its date plus a day, or its start plus an hour)",
                &["reorganization", "step"],
            )?,
            reorg_alias_expiry: r.gauges("reorganization_alias_expiry_timestamp_seconds", "UNIX time an act's aliases go (the end of its transition)", ACT)?,
            reorg_not_answering: r.gauges("reorganization_names_not_answering", "Names an act keeps answering (aliases, redeclared records) that the zone does not answer", ACT)?,
            reorg_archives_past_retention: r.gauges("reorganization_archives_past_retention", "Archive snapshots an act made that are kept past their retention date", ACT)?,
            reorg_absorbed_codes: r.gauges("reorganization_absorbed_codes_in_use", "Units still holding a code an act reissued", ACT)?,
            reorg_code_deadline: r.gauges("reorganization_code_deadline_timestamp_seconds", "UNIX time of the earliest deadline of an act's code reissues", ACT)?,
            ipv6_ready_ratio: r.gauges(
                "ipv6_ready_ratio",
                "A department's IPv6 readiness, 0 to 1: the mean of its shares of address names with AAAA, VMs with IPv6 and zones with an IPv6 prefix",
                &["department"],
            )?,
            zone_ipv4_phase: r.gauges("zone_ipv4_phase", "1 for a zone's IPv4 phase (Active, Deprecated, Off), 0 for the others", &["zone", "phase"])?,
            registry: r.0,
            collectors: r.1,
            ready: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        })
    }

    /// Start timing one reconcile of `controller`.
    pub fn reconcile_started(&self, controller: &'static str) -> ReconcileTimer<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        ReconcileTimer { metrics: self, controller, start: Instant::now() }
    }

    /// Reconciles of any controller running now.
    pub fn reconciles_in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub fn reconcile_failed(&self, controller: &'static str, error: &'static str) {
        self.errors.with_label_values(&[controller, error]).inc();
    }

    pub fn reorg_step(&self, step: &str, result: &str) {
        self.reorg_steps.with_label_values(&[step, result]).inc();
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// The text exposition of every family. A family with no series yet (a vector
    /// none of whose labels has been set, a histogram of an action never run) is
    /// still announced by its HELP and TYPE lines, so a fresh operator shows every
    /// name it exports to dashboards and rules checked against it.
    fn encode(&self) -> Result<Vec<u8>, prometheus::Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        let mut empty: Vec<(String, String, String)> = self
            .collectors
            .iter()
            .flat_map(|c| c.collect())
            .filter(|f| f.get_metric().is_empty())
            .map(|f| (format!("{PREFIX}_{}", f.name()), f.help().replace('\\', "\\\\").replace('\n', "\\n"), format!("{:?}", f.get_field_type()).to_lowercase()))
            .collect();
        empty.sort();
        for (name, help, kind) in empty {
            out.extend_from_slice(format!("# HELP {name} {help}\n# TYPE {name} {kind}\n").as_bytes());
        }
        Ok(out)
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
        self.metrics.duration.with_label_values(&[self.controller]).observe(self.start.elapsed().as_secs_f64());
        let result = if ok { "success" } else { "error" };
        self.metrics.reconciles.with_label_values(&[self.controller, result]).inc();
    }
}

impl Drop for ReconcileTimer<'_> {
    /// Finished or cancelled, the reconcile is no longer in flight.
    fn drop(&mut self) {
        self.metrics.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Who may read `/metrics`: a bearer token the API server authenticates
/// (TokenReview) for a user it allows `get` on the non-resource URL `/metrics`
/// (SubjectAccessReview), as the API server and kubelet guard their own. Answers are
/// kept for a minute (ten seconds when refused), so a scrape every 30 s costs the API
/// server about one review pair per scraper per minute.
pub struct MetricsGuard {
    client: kube::Client,
    seen: std::sync::Mutex<std::collections::HashMap<String, (Instant, Verdict)>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Verdict {
    Allowed,
    Unauthenticated,
    Forbidden(String),
}

impl MetricsGuard {
    pub fn new(client: kube::Client) -> Self {
        Self { client, seen: Default::default() }
    }

    async fn check(&self, authorization: Option<&str>) -> Verdict {
        let Some(token) = authorization.and_then(|h| h.strip_prefix("Bearer ")).map(str::trim).filter(|t| !t.is_empty()) else {
            return Verdict::Unauthenticated;
        };
        if let Ok(seen) = self.seen.lock()
            && let Some((at, v)) = seen.get(token)
            && at.elapsed() < if *v == Verdict::Allowed { std::time::Duration::from_secs(60) } else { std::time::Duration::from_secs(10) }
        {
            return v.clone();
        }
        let v = self.review(token).await;
        if let Ok(mut seen) = self.seen.lock() {
            if seen.len() >= 256 {
                seen.clear();
            }
            seen.insert(token.to_string(), (Instant::now(), v.clone()));
        }
        v
    }

    async fn review(&self, token: &str) -> Verdict {
        use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
        use k8s_openapi::api::authorization::v1::{NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
        let review = TokenReview { spec: TokenReviewSpec { token: token.to_string(), audiences: None }, ..Default::default() };
        let user = match kube::Api::<TokenReview>::all(self.client.clone()).create(&Default::default(), &review).await {
            Ok(r) => match r.status.filter(|s| s.authenticated == Some(true)).and_then(|s| s.user) {
                Some(u) => u,
                None => return Verdict::Unauthenticated,
            },
            Err(e) => {
                tracing::warn!(error = %e, "a TokenReview for /metrics failed");
                return Verdict::Unauthenticated;
            }
        };
        let name = user.username.clone().unwrap_or_default();
        let sar = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username,
                groups: user.groups,
                uid: user.uid,
                extra: user.extra,
                non_resource_attributes: Some(NonResourceAttributes { path: Some("/metrics".into()), verb: Some("get".into()) }),
                ..Default::default()
            },
            ..Default::default()
        };
        match kube::Api::<SubjectAccessReview>::all(self.client.clone()).create(&Default::default(), &sar).await {
            Ok(r) if r.status.as_ref().is_some_and(|s| s.allowed) => Verdict::Allowed,
            Ok(_) => Verdict::Forbidden(name),
            Err(e) => {
                tracing::warn!(error = %e, "a SubjectAccessReview for /metrics failed");
                Verdict::Forbidden(name)
            }
        }
    }
}

#[derive(Clone)]
struct Served {
    metrics: Arc<Metrics>,
    guard: Option<Arc<MetricsGuard>>,
}

async fn metrics(State(s): State<Served>, headers: axum::http::HeaderMap) -> axum::response::Response {
    if let Some(g) = &s.guard {
        let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        match g.check(auth).await {
            Verdict::Allowed => {}
            Verdict::Unauthenticated => {
                return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "a bearer token the API server accepts is needed\n")
                    .into_response();
            }
            Verdict::Forbidden(user) => {
                return (StatusCode::FORBIDDEN, format!("{user} may not get /metrics (bind ClusterRole pdc-metrics-reader)\n")).into_response();
            }
        }
    }
    match s.metrics.encode() {
        Ok(body) => (StatusCode::OK, [(header::CONTENT_TYPE, TextEncoder::new().format_type().to_string())], body).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn readyz(State(s): State<Served>) -> StatusCode {
    if s.metrics.ready.load(Ordering::Relaxed) { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }
}

/// 200 while every registered watch and controller loop runs; 503 naming each one
/// that stopped (see [`crate::health`]).
async fn healthz() -> (StatusCode, String) {
    let problems = crate::health::global().problems(Instant::now());
    if problems.is_empty() {
        (StatusCode::OK, "ok\n".into())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("stopped:\n{}\n", problems.join("\n")))
    }
}

/// Serve `/metrics` (behind `guard` when given), `/healthz` and `/readyz` (open, for
/// the kubelet's probes) on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, m: Arc<Metrics>, guard: Option<Arc<MetricsGuard>>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Served { metrics: m, guard });
    axum::serve(listener, app).await
}

/// GET `url` (`http://host:port/path`) once, as the chart's `helm test` Pod asks the
/// operator's metrics Service: the status line when the answer is 2xx, else what
/// failed. Plain HTTP/1.0, the scheme the metrics server speaks.
pub fn probe(url: &str, timeout: std::time::Duration) -> Result<String, String> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url:?}: only http:// URLs can be probed"))?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, p.parse::<u16>().map_err(|_| format!("{url:?}: {p:?} is not a port"))?),
        _ => (authority, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    let addrs: Vec<_> = (host, port).to_socket_addrs().map_err(|e| format!("resolving {host}: {e}"))?.collect();
    let mut last = format!("{host} resolved to no address");
    for addr in addrs {
        let mut stream = match std::net::TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => s,
            Err(e) => {
                last = format!("connecting to {addr}: {e}");
                continue;
            }
        };
        let io = |e: std::io::Error| format!("GET {url}: {e}");
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: pdc-operator-probe\r\n\r\n").map_err(io)?;
        let mut answer = Vec::new();
        stream.take(64 * 1024).read_to_end(&mut answer).map_err(io)?;
        let answer = String::from_utf8_lossy(&answer);
        let status = answer.lines().next().unwrap_or_default().trim().to_string();
        let code = status.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok());
        return match code {
            Some(200..=299) => Ok(status),
            Some(_) => Err(format!("GET {url} answered {status:?}: {}", answer.split_once("\r\n\r\n").map_or("", |(_, b)| b).trim())),
            None => Err(format!("GET {url}: not an HTTP answer ({status:?})")),
        };
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_with_no_series_yet_are_announced_once() {
        let m = Metrics::new().unwrap();
        let text = String::from_utf8(m.encode().unwrap()).unwrap();
        for (name, kind) in [("pdc_dns_pending_changes", "gauge"), ("pdc_dns_errors_total", "counter"), ("pdc_dr_action_duration_seconds", "histogram")] {
            assert!(text.contains(&format!("\n# TYPE {name} {kind}\n")), "{name} is not announced:\n{text}");
        }
        assert!(text.contains("\npdc_leader 0\n"), "{text}");
        m.dns_pending_changes.with_label_values(&["daklak.gov.vn"]).set(3.0);
        let text = String::from_utf8(m.encode().unwrap()).unwrap();
        assert_eq!(text.matches("# TYPE pdc_dns_pending_changes gauge").count(), 1, "{text}");
        assert!(text.contains("pdc_dns_pending_changes{zone=\"daklak.gov.vn\"} 3\n"), "{text}");
    }

    #[test]
    fn probe_refuses_what_it_cannot_ask() {
        let t = std::time::Duration::from_secs(1);
        assert!(probe("https://pdc-operator-metrics:8080/readyz", t).unwrap_err().contains("only http://"));
        assert!(probe("http://pdc-operator-metrics:http/readyz", t).unwrap_err().contains("is not a port"));
        assert!(probe("http://:8080/readyz", t).unwrap_err().contains("names no host"));
    }
}
