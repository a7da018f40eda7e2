//! pdc-operator: runs the pdc controllers while it holds the leader lease.

// No function longer than 80 lines (clippy.toml sets the threshold): a long body is
// split into named steps.
#![warn(clippy::too_many_lines)]

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures::{FutureExt, StreamExt};
use kube::runtime::{Controller, WatchStreamExt, reflector, watcher};
use kube::Client;
use k8s_openapi::api::core::v1::Namespace;
use pdc_api::{AddressAllocation, Province, SizeClass, Site, TenantVolume};
use tracing::{error, info, warn};

use pdc_operator::context::Context;
use pdc_operator::leader::{LeaderElector, LeaseConfig};
use pdc_operator::metrics::{self, Metrics};
use pdc_operator::ipam::{self, Ipam};
use pdc_operator::{cache, compute, department, dns, dr, health, province, reorg, report};

#[derive(Parser, Debug)]
#[command(name = "pdc-operator", version, about = "The pdc operator: a province's private cloud on Kubernetes")]
struct Args {
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, env = "PDC_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: String,
    /// Whether /metrics asks for a bearer token allowed `get` on /metrics (checked with
    /// TokenReview and SubjectAccessReview). /healthz and /readyz stay open.
    #[arg(long, env = "PDC_METRICS_AUTH", default_value_t = true, action = clap::ArgAction::Set)]
    metrics_auth: bool,
    /// Namespace of the leader Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "pdc-system")]
    namespace: String,
    /// The operator's ServiceAccount (in `namespace`): bound to ClusterRole
    /// pdc-operator-namespaced in each department namespace it makes.
    #[arg(long, env = "PDC_SERVICE_ACCOUNT", default_value = "pdc-operator")]
    service_account: String,
    /// The ServiceAccount (in `namespace`) whose token the other DR site's operator
    /// uses here: bound to ClusterRole pdc-dr-peer-namespaced in each department
    /// namespace. Empty: none.
    #[arg(long, env = "PDC_DR_PEER_SERVICE_ACCOUNT", default_value = "pdc-dr-peer")]
    dr_peer_service_account: String,
    /// This replica's identity in the Lease (the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Name of the leader Lease.
    #[arg(long, env = "PDC_LEASE_NAME", default_value = "pdc-operator")]
    lease_name: String,
    /// How long a lease holds without renewal before a standby may take over.
    #[arg(long, env = "PDC_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops leading.
    #[arg(long, env = "PDC_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    renew_deadline: Duration,
    /// How often the lease is renewed or tried.
    #[arg(long, env = "PDC_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    retry_period: Duration,
    /// How many objects of one kind reconcile at once.
    #[arg(long, env = "PDC_CONCURRENCY", default_value_t = 16)]
    concurrency: u16,
    /// Log format: json (default, for log collectors) or text.
    #[arg(long, env = "PDC_LOG_FORMAT", default_value = "json")]
    log_format: String,
    /// How often each DNS zone's SOA serial is checked for edits made outside pdc.
    #[arg(long, env = "PDC_DNS_RESYNC", default_value = "30s", value_parser = parse_duration)]
    dns_resync: Duration,
    /// The longest pause between attempts at a DNS server that fails.
    #[arg(long, env = "PDC_DNS_MAX_BACKOFF", default_value = "60s", value_parser = parse_duration)]
    dns_max_backoff: Duration,
    /// The Site this operator's cluster is (e.g. daklak, phuyen). Needed for DR
    /// plans; it also limits the reverse-zone PTRs this operator owns to the site's
    /// prefixes.
    #[arg(long, env = "PDC_SITE")]
    site: Option<String>,
    /// A pause after each DR action step's effects, before it is recorded done (for
    /// crash tests and demonstrations).
    #[arg(long, env = "PDC_DR_STEP_PAUSE", default_value = "0s", value_parser = parse_duration)]
    dr_step_pause: Duration,
    /// A pause after each reorganization step's effects, before it is recorded done
    /// (for crash tests and demonstrations).
    #[arg(long, env = "PDC_REORG_STEP_PAUSE", default_value = "0s", value_parser = parse_duration)]
    reorg_step_pause: Duration,
    /// How long a watch may fail to list or watch, with no success between, before
    /// /healthz fails (its kind's CRD deleted, the operator's rights to it revoked).
    #[arg(long, env = "PDC_WATCH_FAILURE_LIMIT", default_value = "5m", value_parser = parse_duration)]
    watch_failure_limit: Duration,
    /// Check mode: GET this URL (e.g. http://pdc-operator-metrics.pdc-system.svc:8080/readyz),
    /// exit 0 on a 2xx answer and 1 otherwise, and run nothing else. The chart's
    /// `helm test` Pod runs the operator image this way.
    #[arg(long, value_name = "URL")]
    probe: Option<String>,
}

/// A duration such as `15s`, `500ms`, `2.5s`, `1m` or `1m30s` (humantime's format:
/// every number needs a unit).
fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("{s:?} is not a duration such as 15s, 500ms or 1m: {e}"))
}

/// Leader election works only with retry period < renew deadline < lease duration
/// (as client-go requires): a leader must give up before a standby may take over,
/// and try more than once before it gives up.
fn check_lease_timings(args: &Args) -> Result<(), String> {
    let (lease, renew, retry) = (args.lease_duration, args.renew_deadline, args.retry_period);
    if retry.is_zero() {
        return Err("the retry period (PDC_RETRY_PERIOD) must be longer than 0s".into());
    }
    if !(retry < renew && renew < lease) {
        return Err(format!(
            "leader election needs retry period < renew deadline < lease duration; got {} < {} < {} (PDC_RETRY_PERIOD, PDC_RENEW_DEADLINE, PDC_LEASE_DURATION)",
            humantime::format_duration(retry),
            humantime::format_duration(renew),
            humantime::format_duration(lease)
        ));
    }
    Ok(())
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,kube=warn".into());
    let b = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "text" { b.init() } else { b.json().flatten_event(true).with_current_span(true).init() }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Some(url) = &args.probe {
        return probe(url);
    }
    init_logging(&args.log_format);
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "operator stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `--probe URL`: one GET, its answer on stdout or what failed on stderr.
fn probe(url: &str) -> std::process::ExitCode {
    match metrics::probe(url, Duration::from_secs(10)) {
        Ok(status) => {
            println!("{url}: {status}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pdc-operator --probe: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The API verb of a request, as the API server's audit log names it.
fn verb(req: &http::Request<kube::client::Body>) -> &'static str {
    match *req.method() {
        http::Method::GET if req.uri().query().is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1")) => "watch",
        http::Method::GET => "get",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "other",
    }
}

/// A client for the cluster the operator runs in (or the kubeconfig's), each request
/// counted in `pdc_kube_api_requests_total`.
async fn counted_client(metrics: &Arc<Metrics>) -> Result<Client, String> {
    let config = kube::Config::infer().await.map_err(|e| format!("reading the Kubernetes client configuration failed: {e}"))?;
    let requests = metrics.kube_requests.clone();
    let count = tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
        requests.with_label_values(&[verb(&req)]).inc();
        req
    });
    let builder = kube::client::ClientBuilder::try_from(config).map_err(|e| format!("connecting to the Kubernetes API failed: {e}"))?;
    Ok(builder.with_layer(&count).build())
}

async fn run(args: Args) -> Result<(), String> {
    check_lease_timings(&args)?;
    // Listening from the start: a signal that came while nothing listened would be lost.
    let mut signals = Signals::new()?;
    health::global().set_failure_limit(args.watch_failure_limit);
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("pdc-operator-{}", std::process::id()));
    let metrics = Arc::new(Metrics::new().map_err(|e| format!("building metrics failed: {e}"))?);
    let client = counted_client(&metrics).await?;
    let listener = tokio::net::TcpListener::bind(&args.metrics_addr)
        .await
        .map_err(|e| format!("binding the metrics address {} failed: {e}", args.metrics_addr))?;
    info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving /metrics, /healthz, /readyz");
    let guard = args.metrics_auth.then(|| Arc::new(metrics::MetricsGuard::new(client.clone())));
    let server = tokio::spawn(metrics::serve(listener, metrics.clone(), guard));

    let mut elector = LeaderElector::new(
        client.clone(),
        LeaseConfig {
            name: args.lease_name.clone(),
            namespace: args.namespace.clone(),
            identity: identity.clone(),
            lease_duration: args.lease_duration,
            renew_deadline: args.renew_deadline,
            retry_period: args.retry_period,
        },
    );
    // Standing by is healthy and ready: the replica answers probes while it waits.
    metrics.set_ready();
    tokio::select! {
        () = elector.acquire() => {}
        signal = signals.recv() => {
            info!(signal, "stopping (standing by, nothing to hand over)");
            return Ok(());
        }
    }
    metrics.leader.set(1);
    let ctx = Arc::new(Context::new(client.clone(), metrics.clone(), &identity));
    let outcome = lead(ctx, client, &args, &mut elector, &mut signals, server).await;
    metrics.leader.set(0);
    if outcome.is_ok() {
        elector.release().await;
    }
    outcome
}

/// Run the controllers until leadership is lost (an error: the process exits and
/// restarts as a standby) or a signal asks to stop (then the controllers drain first).
async fn lead(
    ctx: Arc<Context>,
    client: Client,
    args: &Args,
    elector: &mut LeaderElector,
    signals: &mut Signals,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
) -> Result<(), String> {
    let metrics = ctx.metrics.clone();
    let controllers = run_controllers(ctx, client, args);
    tokio::pin!(controllers);
    tokio::select! {
        // The signal first: some controllers also stop on the signal themselves
        // (kube's shutdown_on_signal), and the registry must know it is a shutdown
        // before their loops are polled to their end.
        biased;
        signal = signals.recv() => info!(signal, "shutting down: no new reconciles, waiting for the running ones"),
        () = &mut controllers => return Err("controllers stopped".to_string()),
        lost = elector.hold() => return Err(format!("lost leadership: {lost}")),
        r = server => return Err(format!("metrics server stopped: {r:?}")),
    }
    // The lease was renewed at most a retry period ago and holds at least until the
    // renew deadline after that: within this, no standby can have taken over while
    // the reconciles still running finish.
    let limit = args.renew_deadline.saturating_sub(args.retry_period);
    health::global().begin_shutdown();
    let start = std::time::Instant::now();
    let finished = async {
        while metrics.reconciles_in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        () = &mut controllers => info!(took_ms = start.elapsed().as_millis(), "controllers stopped"),
        () = finished => info!(took_ms = start.elapsed().as_millis(), "running reconciles finished"),
        () = tokio::time::sleep(limit) => {
            warn!(in_flight = metrics.reconciles_in_flight(), limit_ms = limit.as_millis(), "reconciles still running at the limit are cancelled");
        }
        signal = signals.recv() => warn!(signal, in_flight = metrics.reconciles_in_flight(), "second signal: running reconciles are cancelled"),
    }
    Ok(())
}

/// SIGTERM (the kubelet stopping the pod) and SIGINT (Ctrl-C).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self, String> {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind, name: &str| signal(kind).map_err(|e| format!("listening for {name} failed: {e}"));
        Ok(Self { term: listen(SignalKind::terminate(), "SIGTERM")?, int: listen(SignalKind::interrupt(), "SIGINT")? })
    }

    /// The next signal's name.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// A cache of `K` kept by a watch that wakes nothing: the cache, and the future that
/// keeps it.
fn plain_cache<K>(client: &Client, config: watcher::Config) -> (reflector::Store<K>, impl std::future::Future<Output = ()> + Send + 'static)
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (store, events) = cache::reflected::<K>(client.clone(), config);
    (store, events.for_each(|_| futures::future::ready(())))
}

/// DNS: the record checker, and one writer per zone.
#[allow(clippy::too_many_arguments)]
fn run_dns<P>(
    ctx: &Arc<Context>,
    client: &Client,
    args: &Args,
    namespaces: reflector::Store<Namespace>,
    netzones: reflector::Store<pdc_api::NetworkZone>,
    provinces: reflector::Store<Province>,
    dr: dr::DrView,
    plan_changes: P,
) -> (impl Future<Output = ()> + Send + 'static, impl Future<Output = ()> + Send + 'static, reflector::Store<pdc_api::DnsRecord>)
where
    P: futures::Stream<Item = Result<pdc_api::DrPlan, watcher::Error>> + Send + 'static,
{
    let dns_zones = graceful(dns::writer::controller(client.clone()));
    let (dns_records, record_changes) = dns::record::controller(client.clone(), args.concurrency);
    let dns_records = graceful(dns_records);
    let writer_records = dns_records.store();
    let (allocations, allocation_changes) = cache::watch::<AddressAllocation>(client.clone());
    let record_ctx = Arc::new(dns::record::RecordContext { base: ctx.clone(), namespaces: namespaces.clone(), zones: dns_zones.store() });
    let zones = dns_zones.store();
    let writer_ctx = Arc::new(dns::writer::WriterContext::new(
        ctx.clone(),
        writer_records,
        namespaces,
        allocations,
        netzones,
        provinces,
        zones,
        args.namespace.clone(),
        args.dns_resync,
        args.dns_max_backoff,
        dr,
    ));
    let records = dns_records.store();
    (dns::record::run(record_ctx, dns_records), dns::writer::run(writer_ctx, dns_zones, record_changes, allocation_changes, plan_changes), records)
}

/// `controller`, which stops taking work once the operator shuts down and ends when
/// its running reconciles have finished.
fn graceful<K>(controller: Controller<K>) -> Controller<K>
where
    K: Clone + kube::Resource + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    controller.graceful_shutdown_on(health::global().shutdown_requested())
}

/// Run the leader's work, each loop registered with the health registry by name
/// (the caches register their watches themselves).
async fn run_controllers(ctx: Arc<Context>, client: Client, args: &Args) {
    let work = leader_work(ctx, client, args);
    let health = health::global();
    futures::future::join_all(work.into_iter().map(|(name, w)| health::supervised(health, name, w))).await;
}

/// The controllers and the caches they read, by name.
fn leader_work(ctx: Arc<Context>, client: Client, args: &Args) -> Vec<(&'static str, futures::future::BoxFuture<'static, ()>)> {
    let concurrency = args.concurrency;
    let bound = department::build::Bound {
        namespace: args.namespace.clone(),
        operator: args.service_account.clone(),
        dr_peer: Some(args.dr_peer_service_account.clone()).filter(|s| !s.is_empty()),
    };
    let (province_cache, province_events) = cache::reflected::<Province>(client.clone(), watcher::Config::default());
    let provinces = graceful(Controller::for_stream(province_events.applied_objects(), province_cache));
    let departments = graceful(department::controller(client.clone(), concurrency));
    let zones = graceful(ipam::zone::controller(client.clone()));
    let claims = graceful(ipam::claim::controller(client.clone(), concurrency));
    let province_store = provinces.store();
    let department_store = departments.store();
    let zone_store = zones.store();

    // Sites: a plain cache (no controller of their own yet).
    let (site_store, sites) = plain_cache::<Site>(&client, watcher::Config::default());

    let ipam = Arc::new(Ipam::default());
    let follow = ipam::follow(client.clone(), ipam.clone());
    let claim_ctx = Arc::new(ipam::claim::ClaimContext {
        base: ctx.clone(),
        ipam: ipam.clone(),
        departments: department_store.clone(),
        zones: zone_store.clone(),
        sites: site_store.clone(),
    });
    // DNS: the record checker and one writer per zone.
    let (ns_store, namespaces) = plain_cache::<Namespace>(&client, watcher::Config::default().labels(pdc_api::labels::DEPARTMENT));
    // DR plans: one controller; the VM controller and the DNS writer see the plans
    // through caches of their own, fed by the streams that wake them.
    let drplans = graceful(dr::controller(client.clone()));
    let dr_view = dr::DrView::new(args.site.clone().filter(|s| !s.is_empty()), drplans.store());
    let (vm_plans, vm_plan_changes) = dr::watch_plans(client.clone());
    let (writer_plans, writer_plan_changes) = dr::watch_plans(client.clone());
    let (dns_records, dns_zones, record_store) =
        run_dns(&ctx, &client, args, ns_store, zone_store.clone(), province_store.clone(), dr_view.with_plans(writer_plans), writer_plan_changes);
    // Tenant VMs.
    let (size_store, sizes) = plain_cache::<SizeClass>(&client, watcher::Config::default());
    let tenant_vms = graceful(compute::vm::controller(client.clone(), concurrency));
    let (vm_volumes, volume_changes) = cache::watch::<TenantVolume>(client.clone());
    let (vm_children, vm_child_writers) = compute::vm::child_caches();
    let vm_ctx = Arc::new(compute::vm::VmContext {
        children: vm_children,
        volumes: vm_volumes,
        base: ctx.clone(),
        departments: department_store.clone(),
        provinces: province_store.clone(),
        sizes: size_store,
        zones: zone_store.clone(),
        dr: Arc::new(dr_view.with_plans(vm_plans)),
    });
    let (vms, volumes, claim_store) = (tenant_vms.store(), vm_ctx.volumes.clone(), claims.store());
    let reorg_caches = reorg::Caches { provinces: province_store.clone(), departments: department_store.clone(), vms, volumes, claims: claim_store, records: record_store.clone() };
    let report_caches = report::Caches { departments: department_store.clone(), zones: zone_store.clone(), provinces: province_store.clone(), vms: tenant_vms.store(), records: record_store };
    let dr_ctx = Arc::new(dr::DrContext::new(
        ctx.clone(),
        dr_view,
        tenant_vms.store(),
        site_store.clone(),
        province_store.clone(),
        args.namespace.clone(),
        args.dr_step_pause,
    ));
    let volumes = compute::volume::run(
        Arc::new(compute::volume::VolumeContext { base: ctx.clone(), provinces: province_store.clone(), departments: department_store.clone() }),
        graceful(compute::volume::controller(client.clone())),
    );
    vec![
        ("cache of sites", sites.boxed()),
        ("cache of department namespaces", namespaces.boxed()),
        ("cache of sizeclasses", sizes.boxed()),
        ("IPAM ledger", follow.boxed()),
        ("controller provinces", province::run(ctx.clone(), department_store, provinces).boxed()),
        ("controller networkzones", ipam::zone::run(ctx.clone(), ipam.clone(), zones, site_store.clone()).boxed()),
        ("controller addressclaims", ipam::claim::run(claim_ctx, claims).boxed()),
        ("controller tenantvms", compute::vm::run(vm_ctx, tenant_vms, volume_changes, vm_plan_changes, vm_child_writers).boxed()),
        ("controller drplans", dr::run(dr_ctx, drplans).boxed()),
        ("controller tenantvolumes", volumes.boxed()),
        ("controller dnsrecords", dns_records.boxed()),
        ("controller dnszones", dns_zones.boxed()),
        ("controller reorganizations", reorg::run(ctx.clone(), args.reorg_step_pause, reorg_caches).boxed()),
        ("report gauges", report::run(ctx.clone(), report_caches).boxed()),
        ("controller departments", run_departments(ctx, province_store, ipam, zone_store, site_store, bound, departments).boxed()),
    ]
}

/// Departments need the Province, zones and sites: they start once those caches have synced.
async fn run_departments(
    ctx: Arc<Context>,
    provinces: reflector::Store<Province>,
    ipam: Arc<Ipam>,
    zones: reflector::Store<pdc_api::NetworkZone>,
    sites: reflector::Store<Site>,
    bound: department::build::Bound,
    departments: Controller<pdc_api::Department>,
) {
    if provinces.wait_until_ready().await.is_ok() && zones.wait_until_ready().await.is_ok() && sites.wait_until_ready().await.is_ok() {
        department::run(ctx, provinces, ipam, zones, sites, bound, departments).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(env: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("pdc-operator").chain(env.iter().copied()))
    }

    #[test]
    fn durations_read_as_before_and_in_humantimes_other_forms() {
        for (text, want) in [
            ("15s", Duration::from_secs(15)),
            ("500ms", Duration::from_millis(500)),
            ("1m", Duration::from_secs(60)),
            ("0s", Duration::ZERO),
            ("2.5s", Duration::from_millis(2500)),
            ("1m30s", Duration::from_secs(90)),
            ("1h", Duration::from_secs(3600)),
            (" 10s ", Duration::from_secs(10)),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn bad_durations_are_refused_naming_the_value_and_the_form_expected() {
        for (text, why) in [("15", "unit needed"), ("ten seconds", "expected number"), ("5x", "unknown time unit"), ("", "empty"), ("-1s", "")] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.starts_with(&format!("{text:?} is not a duration such as 15s, 500ms or 1m: ")), "{err}");
            assert!(err.contains(why), "{text:?}: {err}");
        }
        let err = args(&["--lease-duration", "15"]).unwrap_err().to_string();
        assert!(err.contains("--lease-duration") && err.contains("\"15\" is not a duration"), "{err}");
    }

    #[test]
    fn lease_timings_must_be_ordered_retry_renew_lease() {
        assert_eq!(check_lease_timings(&args(&[]).unwrap()), Ok(()), "the defaults 2s < 10s < 15s");
        let a = args(&["--lease-duration", "4s", "--renew-deadline", "3s", "--retry-period", "500ms"]).unwrap();
        assert_eq!(check_lease_timings(&a), Ok(()));
        let a = args(&["--lease-duration", "10s", "--renew-deadline", "10s"]).unwrap();
        let err = check_lease_timings(&a).unwrap_err();
        assert!(err.contains("got 2s < 10s < 10s"), "{err}");
        let a = args(&["--retry-period", "0s"]).unwrap();
        assert!(check_lease_timings(&a).unwrap_err().contains("longer than 0s"));
    }

    #[test]
    fn the_watch_failure_limit_defaults_to_five_minutes() {
        assert_eq!(args(&[]).unwrap().watch_failure_limit, Duration::from_secs(300));
        assert_eq!(args(&["--watch-failure-limit", "2s"]).unwrap().watch_failure_limit, Duration::from_secs(2));
    }
}
