//! The zone writer: one reconcile at a time per DnsZone. It reads the zone from its
//! primary server (the SOA serial, and a transfer whenever the serial moved), plans
//! with `pdc_core::dnsplan` against what the DnsRecords (and, in a reverse zone, the
//! named AddressAllocations) want, and sends the plan as RFC 2136 updates in batches,
//! each change guarded by its prerequisite. Then it reports, on the records, the zone,
//! and in metrics.
//!
//! A zone that cannot be read is never taken as empty: nothing is planned until a
//! full transfer arrives. A failed write leaves the changes pending; the next attempt
//! reads the zone again. Out-of-band edits to pdc's sets are repaired at the next
//! serial check; sets pdc does not own are reported, never changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, ResourceExt};
use pdc_api::conditions::{self, AT_OTHER_SITE, Cond, READY};
use pdc_api::{AddressAllocation, DnsRecord, DnsRecordType, DnsZone, DnsZoneStatus, NetworkZone, Province, ZoneKind};
use pdc_core::dnsplan::{self, Change, RRset, RecordType, Zone};
use pdc_core::ipam::{Addr, Prefix};
use pdc_dns::{DnsIoError, Key, Server, Transfer};
use tracing::{info, warn};

use super::alias::{self, Aliases, UnderDname, Verdicts};
use super::record::{PROGRAMMED, set_condition, set_finalizer};
use super::{has_finalizer, subdomain_of, zone_for};
use crate::context::Context;
use crate::dr::{DrView, NamesAt};
use crate::department::spec_or_lifecycle;
use crate::error::{Error, Result};

const CONTROLLER: &str = "dnszone";
pub const DNSSEC_VALID: &str = "DnssecValid";
/// Status patches of DnsRecords in flight at once.
const STATUS_WRITES: usize = 32;

pub struct WriterContext {
    pub base: Arc<Context>,
    pub records: Store<DnsRecord>,
    pub namespaces: Store<Namespace>,
    pub allocations: Store<AddressAllocation>,
    pub netzones: Store<NetworkZone>,
    pub provinces: Store<Province>,
    pub zones: Store<DnsZone>,
    /// The operator's namespace, where TSIG Secrets live.
    pub namespace: String,
    /// How often a zone's serial is checked for out-of-band edits.
    pub resync: Duration,
    /// The longest wait between attempts at an unreachable server.
    pub max_backoff: Duration,
    /// DR plans: which protected VMs' names this site carries.
    pub dr: DrView,
    cache: Mutex<HashMap<String, ZoneCache>>,
}

impl WriterContext {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        base: Arc<Context>,
        records: Store<DnsRecord>,
        namespaces: Store<Namespace>,
        allocations: Store<AddressAllocation>,
        netzones: Store<NetworkZone>,
        provinces: Store<Province>,
        zones: Store<DnsZone>,
        namespace: String,
        resync: Duration,
        max_backoff: Duration,
        dr: DrView,
    ) -> Self {
        Self { base, records, namespaces, allocations, netzones, provinces, zones, namespace, resync, max_backoff, dr, cache: Mutex::default() }
    }
}

/// The zone as last read, good while the serial has not moved and the base that an
/// incremental transfer brings up to date when it has.
#[derive(Default)]
struct ZoneCache {
    transfer: Option<Arc<Transfer>>,
    failures: u32,
}

type SetKey = (String, RecordType);

/// What the API wants of one zone.
#[derive(Default)]
struct Want {
    sets: Zone,
    owned: BTreeSet<(String, RecordType)>,
    /// Valid, live records and the key each declares.
    members: Vec<(Arc<DnsRecord>, (String, RecordType))>,
    /// Records being deleted whose set this zone holds or might hold, with the set
    /// each was programmed with.
    deleting: Vec<(Arc<DnsRecord>, Option<SetKey>)>,
    /// Records refused because another record holds their name: reason, message.
    refused: Vec<(Arc<DnsRecord>, &'static str, String)>,
    /// Alias records whose names answer through a DNAME: message.
    covered: Vec<(Arc<DnsRecord>, String)>,
    /// Records whose names the other DR site carries: message.
    elsewhere: Vec<(Arc<DnsRecord>, String)>,
    /// The aliases, for deciding which DNAMEs answer.
    aliases: Aliases,
    /// Reverse zones: the NetworkZone prefixes whose PTRs are pdc's.
    ptr_prefixes: Vec<Prefix>,
}

fn default_ttl(z: &DnsZone, provinces: &Store<Province>) -> u32 {
    z.spec
        .default_ttl
        .or_else(|| provinces.state().first().map(|p| p.spec.default_ttl))
        .and_then(|t| u32::try_from(t).ok())
        .unwrap_or(300)
}

/// What the records want of a forward zone, with the DNAME aliases that answer as
/// `dnames` says (none until the zone has been read: see [`alias::verdicts`]).
fn forward_want(z: &DnsZone, ctx: &WriterContext, ttl: u32, dnames: &Verdicts) -> Want {
    let mut w = Want::default();
    let zones = ctx.zones.state();
    let me = z.name_any();
    let in_zone = |fqdn: &str| zone_for(fqdn, ZoneKind::Forward, &zones).is_some_and(|h| h.name_any() == me);
    let mut records = ctx.records.state();
    // The oldest record wins a name (within the same second, one already
    // programmed); the order is the same on every replica.
    let order = |r: &DnsRecord| (r.metadata.creation_timestamp.as_ref().map(|t| t.0), r.programmed_key().is_none(), r.namespace(), r.name_any());
    records.sort_by_cached_key(|r| order(r));
    let mut holder: BTreeMap<(String, RecordType), String> = BTreeMap::new();
    let mut types_at: BTreeMap<String, Vec<RecordType>> = BTreeMap::new();
    let aliases = aliases_of(&records, ctx, ttl);
    let on: BTreeMap<&String, &alias::Dname> = aliases.dnames.iter().filter(|(o, d)| !d.expired && dnames.get(*o).is_some_and(Result::is_ok)).collect();
    // The old apex's types under a DNAME that answers: they answer with the new apex's sets.
    let mut apex: BTreeSet<SetKey> = BTreeSet::new();
    let mut adopted: BTreeSet<SetKey> = BTreeSet::new();
    for rec in records {
        if !has_finalizer(&rec) {
            continue;
        }
        let ns = rec.namespace().unwrap_or_default();
        let set = subdomain_of(&ctx.namespaces, &ns).and_then(|sub| rec.rrset(&sub, ttl).ok());
        // A DR-protected VM's names: carried by one site at a time.
        let at = crate::dr::vm_of(rec.as_ref()).and_then(|vm| ctx.dr.names_at(&ns, &vm));
        if let Some(other @ (NamesAt::Unsettled | NamesAt::Elsewhere(_))) = at {
            w.take_other_site(&rec, other, set.as_ref().is_some_and(|s| in_zone(&s.name)));
            continue;
        }
        let prev = rec.programmed_key().filter(|(n, _)| in_zone(n));
        if rec.metadata.deletion_timestamp.is_some() {
            // Only a set the record was programmed with is removed; one it never got
            // (someone else's, say) stays.
            let in_zone_now = set.as_ref().is_some_and(|s| in_zone(&s.name));
            if prev.is_some() || in_zone_now {
                w.deleting.push((rec.clone(), prev));
            }
            continue;
        }
        // An invalid record keeps what it was programmed with: neither wanted nor removed.
        let Some(set) = set.filter(|s| in_zone(&s.name)) else { continue };
        let under = alias::under_dname(&rec, &set, &on);
        if w.take_under_dname(&rec, &set, under.as_ref(), prev.clone(), &mut apex) {
            continue;
        }
        let member = matches!(under, Some(UnderDname::Member));
        if let Some((reason, msg)) = alias::aliased(&rec, &set, &aliases, dnames).filter(|_| !member) {
            // Kept out of the zone by an alias (or waiting to be one): what it was
            // programmed with goes in the same update that brings the alias.
            w.owned.extend(prev);
            w.refused.push((rec.clone(), reason, msg));
            continue;
        }
        let key = (set.name.clone(), set.rtype);
        if let Some(other) = holder.get(&key) {
            let msg = format!("{} {} is already declared by DnsRecord {other}", set.name, set.rtype.as_str());
            w.refused.push((rec.clone(), "Duplicate", msg));
            continue;
        }
        let types = types_at.entry(set.name.clone()).or_default();
        if (set.rtype == RecordType::CNAME && !types.is_empty()) || types.contains(&RecordType::CNAME) {
            let msg = format!("{} already has {} records from other DnsRecords; a CNAME cannot share its name", set.name, types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "));
            w.refused.push((rec.clone(), "CnameConflict", msg));
            continue;
        }
        types.push(set.rtype);
        holder.insert(key.clone(), format!("{ns}/{}", rec.name_any()));
        // pdc owns what it programmed: a set found at a new record's name before
        // pdc wrote it is someone else's (a conflict) unless the record adopts it,
        // and a renamed record's old set is still pdc's, so it is removed.
        if let Some(p) = prev {
            w.owned.insert(p);
        }
        // After a failover or relocate here, the set the other site programmed at
        // this name is taken over.
        if at == Some(NamesAt::Here) {
            w.owned.insert(key.clone());
        }
        // An adopted record takes over the set that already runs at its name and type.
        if adopting(&rec) {
            adopted.insert(key.clone());
        }
        w.sets.insert(key.clone(), set);
        w.members.push((rec, key));
    }
    alias::apex_sets(&mut w.sets, apex, &on);
    w.aliases = aliases;
    w.owned = pdc_core::dnsadopt::owned_with_adopted(&w.owned, &w.sets, &adopted);
    for (_, key) in &w.deleting {
        w.owned.extend(key.iter().cloned());
    }
    w
}

/// The aliases among the live records.
fn aliases_of(records: &[Arc<DnsRecord>], ctx: &WriterContext, ttl: u32) -> Aliases {
    let live = |r: &&Arc<DnsRecord>| r.metadata.deletion_timestamp.is_none() && has_finalizer(r);
    let answering: BTreeSet<String> = records.iter().filter(live).filter(|r| is_programmed(r)).filter_map(|r| r.status.as_ref()?.fqdn.as_deref().map(alias::norm)).collect();
    alias::states(records.iter().filter(live), |r| subdomain_of(&ctx.namespaces, &r.namespace().unwrap_or_default()).and_then(|sub| r.rrset(&sub, ttl).ok()), |n| answering.contains(n))
}

impl Want {
    /// A record whose names carry the other DR site's addresses: neither programmed
    /// nor removed; said so (when in this zone) once the plan is settled with the peer.
    fn take_other_site(&mut self, rec: &Arc<DnsRecord>, at: NamesAt, in_this_zone: bool) {
        if rec.metadata.deletion_timestamp.is_some() {
            self.deleting.push((rec.clone(), None));
        } else if let NamesAt::Elsewhere(msg) = at
            && in_this_zone
        {
            self.elsewhere.push((rec.clone(), msg));
        }
    }

    /// A record at or below a DNAME that answers: an alias answers through it, any
    /// other is kept out (at the DNAME's owner, its type is noted in `apex`). Whether
    /// `rec` was taken care of here.
    fn take_under_dname(&mut self, rec: &Arc<DnsRecord>, set: &RRset, under: Option<&UnderDname>, prev: Option<SetKey>, apex: &mut BTreeSet<SetKey>) -> bool {
        match under {
            Some(UnderDname::Member) | None => false,
            Some(UnderDname::Covered(msg)) => {
                self.owned.extend(prev);
                self.covered.push((rec.clone(), msg.clone()));
                true
            }
            Some(UnderDname::KeptOut { owner, message }) => {
                self.owned.extend(prev);
                if set.name == *owner {
                    apex.insert((owner.clone(), set.rtype));
                }
                self.refused.push((rec.clone(), "Aliased", message.clone()));
                true
            }
        }
    }
}

fn reverse_want(z: &DnsZone, ctx: &WriterContext, ttl: u32) -> Want {
    let mut w = Want::default();
    let zones = ctx.zones.state();
    let me = z.name_any();
    for nz in ctx.netzones.state() {
        // An operator with a site owns the PTRs of that site's prefixes only; the
        // other site's operator keeps its own.
        for s in nz.spec.sites.iter().filter(|s| ctx.dr.site.as_ref().is_none_or(|me| *me == s.site)) {
            w.ptr_prefixes.extend([&s.ipv4, &s.ipv6].into_iter().flatten().filter_map(|p| Prefix::parse(p).ok()));
        }
    }
    for a in ctx.allocations.state() {
        let (Some(host), Ok(addr)) = (a.spec.hostname.as_ref(), Addr::parse(&a.spec.address)) else { continue };
        // A released address held back from reuse no longer answers to its old name.
        if a.metadata.deletion_timestamp.is_some() || a.labels().contains_key(pdc_api::labels::HOLD_UNTIL) {
            continue;
        }
        let vm = crate::compute::build::vm_of_claim(&a.spec.claim.name);
        if vm.and_then(|v| ctx.dr.names_at(&a.spec.claim.namespace, v)).is_some_and(|at| at != NamesAt::Here) {
            continue;
        }
        let name = addr.reverse_name();
        if zone_for(&name, ZoneKind::Reverse, &zones).is_none_or(|h| h.name_any() != me) {
            continue;
        }
        let Ok(value) = dnsplan::canonical_value(RecordType::PTR, host) else { continue };
        let key = (name.clone(), RecordType::PTR);
        w.owned.insert(key.clone());
        w.sets.insert(key, RRset { name, rtype: RecordType::PTR, ttl, values: BTreeSet::from([value]) });
    }
    // The other site's addresses of VMs whose names moved here: their PTRs go.
    for a in ctx.dr.peer_addresses() {
        let Ok(addr) = Addr::parse(&a) else { continue };
        let name = addr.reverse_name();
        if zone_for(&name, ZoneKind::Reverse, &zones).is_some_and(|h| h.name_any() == me) && !w.sets.contains_key(&(name.clone(), RecordType::PTR)) {
            w.owned.insert((name, RecordType::PTR));
        }
    }
    w
}

fn read_key(secret: &Secret, z: &DnsZone) -> std::result::Result<Key, String> {
    let t = &z.spec.tsig;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&t.secret_key))
        .ok_or_else(|| format!("Secret {} has no key {:?} (the TSIG secret, base64)", t.secret_name, t.secret_key))?;
    let text = String::from_utf8(bytes.0.clone()).map_err(|_| format!("Secret {} key {:?} is not text", t.secret_name, t.secret_key))?;
    Key::from_base64(&t.name, &t.algorithm, &text).map_err(|e| e.to_string())
}

fn server_of(z: &DnsZone) -> std::result::Result<Server, String> {
    let ip: IpAddr = z.spec.server.parse().map_err(|_| format!("server {:?} is not an IP address", z.spec.server))?;
    let port = u16::try_from(z.spec.port).map_err(|_| format!("port {} is out of range", z.spec.port))?;
    Ok(Server::new(SocketAddr::new(ip, port)))
}

/// A failed sync: a condition reason and message, and the error label for metrics.
struct Failure {
    reason: &'static str,
    message: String,
    metric: &'static str,
}

impl From<DnsIoError> for Failure {
    fn from(e: DnsIoError) -> Self {
        let reason = match &e {
            DnsIoError::Unreachable { .. } => "ServerUnreachable",
            DnsIoError::Tsig { .. } => "TsigRefused",
            DnsIoError::Prerequisite { .. } => "ZoneChanged",
            DnsIoError::Refused { .. } => "Refused",
            DnsIoError::Protocol { .. } => "BadReply",
            DnsIoError::Invalid(_) => "Invalid",
        };
        Failure { reason, message: e.to_string(), metric: e.reason() }
    }
}

/// Read the zone: its serial, and its contents. The contents last read serve while
/// the serial holds; when it moved (pdc's own updates move it too), an incremental
/// transfer brings them up to date, so a sync costs what changed, not the whole
/// zone. A full transfer is the fallback.
async fn read_zone(ctx: &WriterContext, obj: &str, server: &Server, zone: &str, key: &Key) -> std::result::Result<Arc<Transfer>, DnsIoError> {
    let (serial, _) = pdc_dns::soa(server, zone).await?;
    let held = {
        let mut cache = ctx.cache.lock().map_err(|_| DnsIoError::Invalid("cache poisoned".into()))?;
        let entry = cache.entry(obj.to_string()).or_default();
        match &entry.transfer {
            Some(t) if t.serial == serial => return Ok(t.clone()),
            _ => entry.transfer.take(),
        }
    };
    let transfers = &ctx.base.metrics.dns_transfers;
    let mut fresh = None;
    if let Some(base) = held {
        match pdc_dns::incremental(server, zone, key, Arc::unwrap_or_clone(base)).await {
            Ok(t) => {
                transfers.with_label_values(&[zone, "incremental"]).inc();
                fresh = Some(t);
            }
            Err(e) => warn!(zone = %zone, error = %e, "incremental transfer failed; reading the whole zone"),
        }
    }
    let t = match fresh {
        Some(t) => Arc::new(t),
        None => {
            let t = Arc::new(pdc_dns::transfer(server, zone, key).await?);
            transfers.with_label_values(&[zone, "full"]).inc();
            t
        }
    };
    if let Ok(mut cache) = ctx.cache.lock() {
        cache.entry(obj.to_string()).or_default().transfer = Some(t.clone());
    }
    Ok(t)
}

fn forget(ctx: &WriterContext, obj: &str) {
    if let Ok(mut cache) = ctx.cache.lock() {
        cache.entry(obj.to_string()).or_default().transfer = None;
    }
}

/// Count a failure and return how long to wait before the next attempt.
fn backoff(ctx: &WriterContext, obj: &str) -> Duration {
    let n = ctx.cache.lock().map(|mut c| {
        let e = c.entry(obj.to_string()).or_default();
        e.failures = e.failures.saturating_add(1);
        e.failures
    });
    let secs = 1u64 << n.unwrap_or(1).min(10);
    Duration::from_secs(secs).min(ctx.max_backoff)
}

fn succeeded(ctx: &WriterContext, obj: &str) {
    if let Ok(mut c) = ctx.cache.lock() {
        c.entry(obj.to_string()).or_default().failures = 0;
    }
}

async fn reconcile(z: Arc<DnsZone>, ctx: Arc<WriterContext>) -> Result<Action> {
    let timer = ctx.base.metrics.reconcile_started(CONTROLLER);
    let res = sync(&z, &ctx).await;
    timer.finish(res.is_ok());
    res
}

/// Whether every cache the writer plans from holds its first full list. Until then an
/// empty one would read as "remove everything" and a missing DR plan as "this site
/// carries the name".
fn caches_synced(ctx: &WriterContext) -> bool {
    use crate::cache::synced;
    synced(&ctx.records)
        && synced(&ctx.allocations)
        && synced(&ctx.namespaces)
        && synced(&ctx.netzones)
        && synced(&ctx.provinces)
        && synced(&ctx.zones)
        && synced(&ctx.dr.plans)
}

/// The zone's TSIG key (from its Secret) and primary server.
async fn credentials(z: &DnsZone, ctx: &WriterContext) -> Result<std::result::Result<(Key, Server), String>> {
    let name = &z.spec.tsig.secret_name;
    let key = match Api::<Secret>::namespaced(ctx.base.client.clone(), &ctx.namespace).get_opt(name).await {
        Ok(Some(s)) => read_key(&s, z),
        Ok(None) => Err(format!("Secret {}/{name} with the TSIG key does not exist", ctx.namespace)),
        Err(source) => return Err(Error::Read { what: format!("Secret {name}"), source }),
    };
    Ok(key.and_then(|k| server_of(z).map(|s| (k, s))))
}

/// How sending a plan ended.
enum Sent {
    /// The server applied every change.
    All,
    /// Someone wrote to the zone since it was read: read it again now.
    Raced,
    /// A write failed: this many changes are still pending.
    Failed(usize, DnsIoError),
}

/// Send the plan's changes as RFC 2136 updates in batches of the zone's size.
async fn send(z: &DnsZone, ctx: &WriterContext, server: &Server, zone: &str, key: &Key, changes: &[Change]) -> Sent {
    let m = &ctx.base.metrics;
    let batch = usize::try_from(z.spec.batch_size).unwrap_or(100).max(1);
    let mut sent = 0usize;
    for chunk in pdc_dns::batches(changes, batch) {
        let t = Instant::now();
        let res = pdc_dns::update(server, zone, key, chunk).await;
        m.dns_update_duration.with_label_values(&[zone]).observe(t.elapsed().as_secs_f64());
        match res {
            Ok(()) => sent += chunk.len(),
            Err(e) => {
                forget(ctx, &z.name_any());
                let pending = changes.len() - sent;
                if matches!(e, DnsIoError::Prerequisite { .. }) {
                    m.dns_errors.with_label_values(&[zone, e.reason()]).inc();
                    m.dns_pending_changes.with_label_values(&[zone]).set(pending as f64);
                    return Sent::Raced;
                }
                return Sent::Failed(pending, e);
            }
        }
    }
    Sent::All
}

/// Events for replaced sets: on the zone when changes put back sets pdc manages
/// that were edited outside pdc; on the record when a set it adopts differed from
/// it and was replaced (what the server had is in the note, as it is gone now).
async fn report_replaced(z: &DnsZone, ctx: &WriterContext, zone: &str, want: &Want, changes: &[Change]) {
    let shown = |s: &RRset| format!("{} (TTL {})", s.values.iter().cloned().collect::<Vec<_>>().join(", "), s.ttl);
    let mut repaired = 0usize;
    for c in changes {
        let Change::Replace { expect, new } = c else {
            continue;
        };
        let key = (expect.name.clone(), expect.rtype);
        let Some((rec, _)) = want.members.iter().find(|(_, k)| *k == key) else {
            continue;
        };
        if is_programmed(rec) {
            repaired += 1;
        } else if adopting(rec) {
            let msg = format!(
                "adopted {} {}: the server had {}, which differs from this record; replaced with {}",
                expect.name,
                expect.rtype.as_str(),
                shown(expect),
                shown(new)
            );
            info!(zone = %zone, name = %expect.name, rtype = expect.rtype.as_str(), was = %shown(expect), "adopted set replaced");
            ctx.base.event(rec.as_ref(), false, "AdoptedSetReplaced", &msg).await;
        }
    }
    if repaired > 0 {
        let msg = format!("{repaired} record set(s) pdc manages were edited outside pdc and were put back");
        info!(zone = %zone, repaired, "repaired out-of-band edits");
        ctx.base.event(z, true, "Repaired", &msg).await;
    }
}

/// Read the zone, plan against what the API wants, send the plan, report.
async fn sync(z: &DnsZone, ctx: &WriterContext) -> Result<Action> {
    if !caches_synced(ctx) {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let obj = z.name_any();
    let zone = z.spec.zone.trim_end_matches('.').to_ascii_lowercase();
    let ttl = default_ttl(z, &ctx.provinces);
    let mut want = match z.spec.kind {
        ZoneKind::Forward => forward_want(z, ctx, ttl, &Verdicts::new()),
        ZoneKind::Reverse => reverse_want(z, ctx, ttl),
    };
    let (key, server) = match credentials(z, ctx).await? {
        Ok(ks) => ks,
        Err(message) => {
            report_refused(ctx, &want).await?;
            return fail(z, ctx, &want, None, Failure { reason: "KeyUnusable", message, metric: "key" }).await;
        }
    };
    let current = match read_zone(ctx, &obj, &server, &zone, &key).await {
        Ok(t) => t,
        Err(e) => {
            report_refused(ctx, &want).await?;
            return fail(z, ctx, &want, None, e.into()).await;
        }
    };
    // A reorganization's DNAMEs answer where the zone as read allows it.
    if !want.aliases.dnames.is_empty() {
        let verdicts = alias::verdicts(&want.aliases, &current.sets, |k| want.owned.contains(k) || want.sets.contains_key(k));
        want = forward_want(z, ctx, ttl, &verdicts);
    }
    report_refused(ctx, &want).await?;
    if z.spec.kind == ZoneKind::Reverse {
        // Every PTR of an address inside pdc's prefixes is pdc's to keep right.
        let mine = current.sets.keys().filter(|(n, t)| {
            *t == RecordType::PTR && Addr::from_reverse_name(n).is_some_and(|a| want.ptr_prefixes.iter().any(|p| p.contains(&a)))
        });
        want.owned.extend(mine.cloned().collect::<Vec<_>>());
    }
    let plan = dnsplan::plan(&current.sets, &want.sets, &want.owned);
    match send(z, ctx, &server, &zone, &key, &plan.changes).await {
        // The next read brings the zone up to date with pdc's own changes by IXFR.
        Sent::All => {}
        Sent::Raced => {
            info!(zone = %zone, "zone changed under the writer; reading it again");
            return Ok(Action::requeue(Duration::from_millis(200)));
        }
        Sent::Failed(pending, e) => return fail(z, ctx, &want, Some(pending), e.into()).await,
    }
    succeeded(ctx, &obj);
    report_replaced(z, ctx, &zone, &want, &plan.changes).await;
    let changed: BTreeSet<(String, RecordType)> = plan
        .changes
        .iter()
        .map(|c| match c {
            Change::Create(s) | Change::Delete(s) | Change::Replace { new: s, .. } => (s.name.clone(), s.rtype),
        })
        .collect();
    let conflicts: BTreeMap<(String, RecordType), &RRset> = plan.conflicts.iter().map(|c| ((c.wanted.name.clone(), c.wanted.rtype), &c.found)).collect();
    report_members(ctx, z, &want, &changed, &conflicts).await?;
    release_deleted(ctx, &want).await?;
    let (serial, signed) = pdc_dns::soa(&server, &zone).await.unwrap_or((current.serial, current.signed));
    report_synced(z, ctx, &zone, &server, &key, want.sets.len().saturating_sub(conflicts.len()), conflicts.len(), serial, signed).await?;
    if !plan.changes.is_empty() {
        info!(zone = %zone, changes = plan.changes.len(), conflicts = conflicts.len(), serial, "zone updated");
    }
    Ok(Action::requeue(ctx.resync))
}

/// The zone's own status and metrics after a sync.
#[allow(clippy::too_many_arguments)]
async fn report_synced(z: &DnsZone, ctx: &WriterContext, zone: &str, server: &Server, key: &Key, sets: usize, conflicts: usize, serial: u32, signed: bool) -> Result<()> {
    let m = &ctx.base.metrics;
    m.dns_pending_changes.with_label_values(&[zone]).set(0.0);
    m.dns_conflicts.with_label_values(&[zone]).set(conflicts as f64);
    m.dns_record_sets.with_label_values(&[zone]).set(sets as f64);
    m.dns_zone_in_sync.with_label_values(&[zone]).set(1.0);
    m.dns_last_sync.with_label_values(&[zone]).set(Timestamp::now().as_second() as f64);
    let mut conds = vec![Cond::new(READY, true, "Synced", format!("{} answers for {zone} and accepts key {:?}; {sets} record set(s) in sync", server.addr, key.name))];
    if z.spec.dnssec {
        conds.push(if signed {
            Cond::new(DNSSEC_VALID, true, "Signed", format!("the {zone} SOA answer carries an unexpired RRSIG"))
        } else {
            Cond::new(DNSSEC_VALID, false, "Unsigned", format!("answers for {zone} carry no valid RRSIG: check the server's DNSSEC signing policy"))
        });
    }
    set_zone_status(ctx, z, &conds, |s| {
        s.serial = Some(i64::from(serial));
        s.pending = 0;
        s.record_sets = i32::try_from(sets).unwrap_or(i32::MAX);
        s.conflicts = i32::try_from(conflicts).unwrap_or(i32::MAX);
        s.last_sync_time = Some(Time(Timestamp::now()));
    })
    .await
}

/// The `Programmed=True` message of a record programmed as `key` on `server`.
fn programmed_message(key: &(String, RecordType), server: &str) -> String {
    format!("{} {} answers from {server}", key.0, key.1.as_str())
}

/// Whether `rec`'s status already says it is programmed as `key` on `server`, as
/// [`report_members`] would write it.
fn reported(rec: &DnsRecord, key: &(String, RecordType), server: &str) -> bool {
    let Some(st) = rec.status.as_ref() else { return false };
    st.fqdn.as_deref() == Some(key.0.as_str())
        && st.programmed_type == DnsRecordType::from_core(key.1)
        && st.last_change_time.is_some()
        && st.observed_generation == rec.metadata.generation
        && is_programmed(rec)
        && conditions::find(&st.conditions, PROGRAMMED).is_some_and(|c| c.reason == "Programmed" && c.message == programmed_message(key, server))
}

fn is_programmed(rec: &DnsRecord) -> bool {
    rec.status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, PROGRAMMED))
        .is_some_and(|c| c.status == "True" && c.observed_generation == rec.metadata.generation)
}

/// Whether `rec` takes over the set found at its name and type: marked for adoption
/// and not programmed yet. Once programmed, the set is pdc's as the record's own; a
/// record whose name or type changes later takes nothing over at the new one.
fn adopting(rec: &DnsRecord) -> bool {
    rec.programmed_key().is_none() && rec.annotations().get(pdc_api::labels::ADOPT).is_some_and(|v| v == "true")
}

/// Records another record's name keeps out of the zone.
async fn report_refused(ctx: &WriterContext, want: &Want) -> Result<()> {
    for (rec, reason, msg) in &want.refused {
        if set_condition(&ctx.base.client, rec, Cond::new(PROGRAMMED, false, reason, msg.clone()), |_| {}).await? {
            ctx.base.event(rec.as_ref(), true, reason, msg).await;
        }
    }
    // An alias whose name answers through a DNAME answers: Programmed, as it says.
    for (rec, msg) in &want.covered {
        set_condition(&ctx.base.client, rec, Cond::new(PROGRAMMED, true, "ThroughDname", msg.clone()), |_| {}).await?;
    }
    // A name the other DR site carries is not this site's to program: not Programmed
    // here (a TenantVM's DNS condition, and a failover's SwitchDNS step, must not take
    // the other site's answer for this site's), saying where it is.
    for (rec, msg) in &want.elsewhere {
        if set_condition(&ctx.base.client, rec, Cond::new(PROGRAMMED, false, AT_OTHER_SITE, msg.clone()), |_| {}).await? {
            ctx.base.event(rec.as_ref(), false, AT_OTHER_SITE, msg).await;
        }
    }
    Ok(())
}

/// A record newly in conflict, and the message it got.
type Conflicted = (Arc<DnsRecord>, String);

/// After a sync: each live record is programmed, or in conflict with a set pdc does not own.
async fn report_members(
    ctx: &WriterContext,
    z: &DnsZone,
    want: &Want,
    changed: &BTreeSet<(String, RecordType)>,
    conflicts: &BTreeMap<(String, RecordType), &RRset>,
) -> Result<()> {
    let now = Timestamp::now();
    let server = format!("{}:{}", z.spec.server, z.spec.port);
    // Most members of a large zone are already reported as they are: only the others
    // cost a status comparison and, where it differs, a write.
    let to_report = want.members.iter().filter(|(rec, key)| conflicts.contains_key(key) || changed.contains(key) || !reported(rec, key, &server));
    let writes: Vec<_> = to_report.map(|(rec, key)| {
        let client = ctx.base.client.clone();
        let server = server.clone();
        let conflict = conflicts.get(key).map(|f| (*f).clone());
        let was_changed = changed.contains(key);
        async move {
            match conflict {
                Some(found) => {
                    let msg = format!(
                        "{} {} already holds {} in the zone, a set pdc does not manage; the province's DNS administrators must remove it before pdc writes this record",
                        found.name,
                        found.rtype.as_str(),
                        found.values.iter().cloned().collect::<Vec<_>>().join(", ")
                    );
                    let first = set_condition(&client, rec, Cond::new(PROGRAMMED, false, "Conflict", msg.clone()), |_| {}).await?;
                    Ok::<_, Error>(first.then_some((rec.clone(), msg)))
                }
                None => {
                    let msg = programmed_message(key, &server);
                    set_condition(&client, rec, Cond::new(PROGRAMMED, true, "Programmed", msg), |s| {
                        s.fqdn = Some(key.0.clone());
                        s.programmed_type = DnsRecordType::from_core(key.1);
                        if was_changed || s.last_change_time.is_none() {
                            s.last_change_time = Some(Time(now));
                        }
                    })
                    .await?;
                    Ok(None)
                }
            }
        }
    }).collect();
    let results: Vec<Result<Option<Conflicted>>> = futures::stream::iter(writes).buffer_unordered(STATUS_WRITES).collect().await;
    let mut first_err = None;
    for r in results {
        match r {
            Ok(Some((rec, msg))) => {
                warn!(record = %rec.name_any(), namespace = %rec.namespace().unwrap_or_default(), "DnsRecord conflicts with a set pdc does not own");
                ctx.base.event(rec.as_ref(), true, "Conflict", &msg).await;
            }
            Ok(None) => {}
            Err(e) => first_err = first_err.or(Some(e)),
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Deleted records whose sets are gone from the zone may go.
async fn release_deleted(ctx: &WriterContext, want: &Want) -> Result<()> {
    let writes: Vec<_> = want.deleting.iter().map(|(rec, _)| set_finalizer(&ctx.base.client, rec, false)).collect();
    let results: Vec<Result<()>> = futures::stream::iter(writes).buffer_unordered(STATUS_WRITES).collect().await;
    results.into_iter().collect()
}

/// A sync that could not finish: the zone says why, waiting records say they wait,
/// and the next attempt comes after a growing pause.
async fn fail(z: &DnsZone, ctx: &WriterContext, want: &Want, pending: Option<usize>, f: Failure) -> Result<Action> {
    let zone = z.spec.zone.trim_end_matches('.').to_ascii_lowercase();
    let obj = z.name_any();
    let m = &ctx.base.metrics;
    let waiting: Vec<&Arc<DnsRecord>> = want.members.iter().map(|(r, _)| r).filter(|r| !is_programmed(r)).collect();
    let pending = pending.unwrap_or(waiting.len() + want.deleting.len());
    m.dns_errors.with_label_values(&[&zone, f.metric]).inc();
    m.dns_pending_changes.with_label_values(&[&zone]).set(pending as f64);
    m.dns_zone_in_sync.with_label_values(&[&zone]).set(0.0);
    let wait = backoff(ctx, &obj);
    warn!(zone = %zone, reason = f.reason, error = %f.message, pending, retry_in = ?wait, "DNS zone not synced");
    let became = !z.status.as_ref().and_then(|s| conditions::find(&s.conditions, READY)).is_some_and(|c| c.status == "False" && c.reason == f.reason);
    if became {
        ctx.base.event(z, true, f.reason, &f.message).await;
    }
    set_zone_status(ctx, z, &[Cond::new(READY, false, f.reason, f.message.clone())], |s| {
        s.pending = i32::try_from(pending).unwrap_or(i32::MAX);
    })
    .await?;
    let msg = format!("waiting for zone {zone}: {}", f.message);
    let writes: Vec<_> = waiting.into_iter().map(|rec| set_condition(&ctx.base.client, rec, Cond::new(PROGRAMMED, false, "Pending", msg.clone()), |_| {})).collect();
    let results: Vec<Result<bool>> = futures::stream::iter(writes).buffer_unordered(STATUS_WRITES).collect().await;
    results.into_iter().collect::<Result<Vec<bool>>>()?;
    Ok(Action::requeue(wait))
}

async fn set_zone_status(ctx: &WriterContext, z: &DnsZone, conds: &[Cond], f: impl FnOnce(&mut DnsZoneStatus)) -> Result<()> {
    let old = z.status.clone().unwrap_or_default();
    let mut new = old.clone();
    new.conditions = conditions::merge(&old.conditions, conds, z.metadata.generation, Timestamp::now());
    new.observed_generation = z.metadata.generation;
    f(&mut new);
    if new == old {
        return Ok(());
    }
    crate::apply::patch_status(&Api::<DnsZone>::all(ctx.base.client.clone()), &z.name_any(), &new).await
}

fn error_policy(z: Arc<DnsZone>, err: &Error, ctx: Arc<WriterContext>) -> Action {
    ctx.base.failed(CONTROLLER, z.as_ref(), err, Duration::from_secs(2))
}

pub fn controller(client: Client) -> Controller<DnsZone> {
    crate::cache::controller::<DnsZone>(client, spec_or_lifecycle)
}

/// Run the writers: a DnsRecord's change wakes the forward zones, an
/// AddressAllocation's the reverse zones (both from [`crate::cache::watch`]).
/// `plans`: changes of the DrPlans in `ctx.dr` (see [`crate::dr::watch_plans`]).
pub async fn run<R, A, P>(ctx: Arc<WriterContext>, controller: Controller<DnsZone>, records: R, allocations: A, plans: P)
where
    R: futures::Stream<Item = std::result::Result<DnsRecord, watcher::Error>> + Send + 'static,
    A: futures::Stream<Item = std::result::Result<AddressAllocation, watcher::Error>> + Send + 'static,
    P: futures::Stream<Item = std::result::Result<pdc_api::DrPlan, watcher::Error>> + Send + 'static,
{
    let zones = ctx.zones.clone();
    let zones2 = ctx.zones.clone();
    let zones3 = ctx.zones.clone();
    let of_kind = |zones: &Store<DnsZone>, kind: ZoneKind| -> Vec<ObjectRef<DnsZone>> {
        zones.state().iter().filter(|z| z.spec.kind == kind).map(|z| ObjectRef::from_obj(z.as_ref())).collect()
    };
    // No debounce: a steady stream of record changes would postpone the sync for as
    // long as it lasts. Changes arriving during a sync wake exactly one more.
    controller
        .watches_stream(records, move |_r: DnsRecord| of_kind(&zones, ZoneKind::Forward))
        .watches_stream(allocations, move |_a: AddressAllocation| of_kind(&zones2, ZoneKind::Reverse))
        // A DR plan moved its names between sites: every zone looks again.
        .watches_stream(plans, move |_p: pdc_api::DrPlan| zones3.state().iter().map(|z| ObjectRef::from_obj(z.as_ref())).collect::<Vec<_>>())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}
