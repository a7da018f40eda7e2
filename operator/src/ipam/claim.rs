//! The AddressClaim controller: one address pair (or one address) per claim, each
//! address held by an AddressAllocation named after it. A claim is bound exactly
//! once: allocations carry the claim's UID, so after a crash the operator adopts
//! what it created instead of allocating again; a dual-stack pair is both or
//! neither (a half-made pair is rolled back).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, ObjectMeta};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::Controller;
use kube::{Api, Client, ResourceExt};
use pdc_api::conditions::{self, Cond, READY};
use pdc_api::labels as l;
use pdc_api::{
    AddressAllocation, AddressAllocationSpec, AddressClaim, AddressClaimStatus, ClaimRef, ClaimedAddress, Department, IpFamilies,
    NetworkZone, Site, SiteRole,
};
use pdc_core::ipam::{Addr, Family, HostPool, IpamError, Prefix, Want};
use pdc_core::report::Ipv4Phase;
use tracing::{info, warn};

use super::{Ipam, PoolKey, is_conflict, is_not_found, zone};
use crate::context::Context;
use crate::error::{Error, Result};

const CONTROLLER: &str = "addressclaim";
const ATTEMPTS: usize = 32;

pub struct ClaimContext {
    pub base: Arc<Context>,
    pub ipam: Arc<Ipam>,
    pub departments: Store<Department>,
    pub zones: Store<NetworkZone>,
    pub sites: Store<Site>,
}

/// Why a claim cannot be bound now, with the reason for its condition and when to look again.
struct NotBound {
    reason: &'static str,
    message: String,
    retry: Option<Duration>,
}

fn not_bound(reason: &'static str, message: String, retry: Option<Duration>) -> NotBound {
    NotBound { reason, message, retry }
}

fn want_of(f: IpFamilies) -> Want {
    match f {
        IpFamilies::DualStack => Want::DualStack,
        IpFamilies::IPv4 => Want::V4Only,
        IpFamilies::IPv6 => Want::V6Only,
    }
}

/// The Site a claim is for: its own, or the Primary.
pub fn site_of(claim: &AddressClaim, sites: &Store<Site>) -> Option<String> {
    if let Some(s) = &claim.spec.site {
        return Some(s.clone());
    }
    let mut primaries: Vec<String> = sites.state().iter().filter(|s| s.spec.role == SiteRole::Primary).map(|s| s.name_any()).collect();
    primaries.sort();
    primaries.into_iter().next()
}

async fn reconcile(claim: Arc<AddressClaim>, ctx: Arc<ClaimContext>) -> Result<Action> {
    let ns = claim.namespace().unwrap_or_default();
    let api: Api<AddressClaim> = Api::namespaced(ctx.base.client.clone(), &ns);
    ctx.ipam.wait_synced().await;
    let c = ctx.as_ref();
    ctx.base.finalized(CONTROLLER, &api, l::CLAIM_FINALIZER, claim, |cl| async move { bind(&cl, c).await }, |cl| async move { release(&cl, c).await }).await
}

async fn bind(claim: &AddressClaim, ctx: &ClaimContext) -> Result<Action> {
    use crate::cache::synced;
    // Unfilled caches would read as "not a department" or "no such zone".
    if !(synced(&ctx.departments) && synced(&ctx.zones) && synced(&ctx.sites)) {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    match try_bind(claim, ctx).await? {
        Ok(status) => {
            write_status(claim, ctx, status).await?;
            Ok(Action::await_change())
        }
        Err(nb) => {
            let mut status = claim.status.clone().unwrap_or_default();
            status.conditions = conditions::merge(
                &status.conditions,
                &[Cond::new(READY, false, nb.reason, nb.message)],
                claim.metadata.generation,
                Timestamp::now(),
            );
            status.observed_generation = claim.metadata.generation;
            write_status(claim, ctx, status).await?;
            Ok(nb.retry.map_or_else(Action::await_change, Action::requeue))
        }
    }
}

/// Where a claim's addresses come from: its pool, the department's subnets there,
/// and the host-number pairing between them.
struct Pool {
    key: PoolKey,
    v4: Option<Prefix>,
    v6: Option<Prefix>,
    template: HostPool,
    /// The FQDN the claim names, for its PTRs.
    hostname: Option<String>,
}

impl Pool {
    fn subnet(&self, f: Family) -> Option<Prefix> {
        if f == Family::V4 { self.v4 } else { self.v6 }
    }

    fn addresses(&self, families: &[Family], h: u128) -> String {
        families.iter().filter_map(|f| self.template.address(*f, h)).map(|a| a.to_string()).collect::<Vec<_>>().join(" / ")
    }
}

/// The claim's pool: its department, zone and site, and the department's subnets
/// there (the claim waits, with a reason, while one is missing).
fn pool_of(claim: &AddressClaim, ctx: &ClaimContext, want: Want) -> Result<std::result::Result<Pool, NotBound>> {
    let ns = claim.namespace().unwrap_or_default();
    let later = Some(Duration::from_secs(30));
    let Some(dept) = ctx.departments.get(&ObjectRef::new(&ns)) else {
        let msg = format!("namespace {ns} is not a Department's namespace; AddressClaims live in a department namespace");
        return Ok(Err(not_bound("NoDepartment", msg, later)));
    };
    let zname = &claim.spec.zone;
    if !dept.spec.zones.contains(zname) {
        let allowed = if dept.spec.zones.is_empty() { "none".to_string() } else { dept.spec.zones.join(", ") };
        let msg = format!("Department {ns} may not use zone {zname} (allowed: {allowed}); ask the province's engineers to add it to the Department's spec.zones");
        return Ok(Err(not_bound("ZoneNotAllowed", msg, later)));
    }
    let Some(z) = ctx.zones.get(&ObjectRef::new(zname)) else {
        return Ok(Err(not_bound("UnknownZone", format!("zone {zname} does not exist"), later)));
    };
    let Some(site) = site_of(claim, &ctx.sites) else {
        return Ok(Err(not_bound("NoSite", "no Site has role Primary; give spec.site".into(), later)));
    };
    if !z.spec.sites.iter().any(|s| s.site == site) {
        return Ok(Err(not_bound("ZoneNotAtSite", format!("zone {zname} has no prefixes at site {site}"), None)));
    }
    if z.spec.externally_assigned {
        let msg = format!("zone {zname}'s addresses are assigned outside pdc (spec.externallyAssigned); pdc records them and hands none out, so ask the zone's planners for an address");
        return Ok(Err(not_bound("ZoneExternallyAssigned", msg, None)));
    }
    let key = PoolKey { department: ns.clone(), zone: zname.clone(), site: site.clone() };
    let (v4, v6) = (ctx.ipam.ledger.subnet_of(&key, Family::V4), ctx.ipam.ledger.subnet_of(&key, Family::V6));
    for f in want.families() {
        if (if *f == Family::V4 { v4 } else { v6 }).is_none() {
            let offered = zone::prefix_at(&z, &site, *f).is_some();
            let msg = if offered {
                format!("the department's {f} subnet in zone {zname} at site {site} is not allocated yet (see the Department's status)")
            } else {
                format!("zone {zname} has no {f} prefix at site {site}; ask for families: {}", if *f == Family::V4 { "IPv6" } else { "IPv4" })
            };
            return Ok(Err(not_bound("SubnetPending", msg, Some(Duration::from_secs(if offered { 2 } else { 60 })))));
        }
    }
    let reserved = u128::try_from(z.spec.reserved_hosts.max(1)).unwrap_or(1);
    let template = HostPool::new(v4, v6, reserved).map_err(|e| Error::Invalid(e.to_string()))?;
    let hostname = claim.spec.hostname.as_ref().map(|h| format!("{h}.{}", dept.status.as_ref().and_then(|s| s.subdomain.clone()).unwrap_or_default()));
    Ok(Ok(Pool { key, v4, v6, template, hostname }))
}

/// A specific address asked for: its host number, the pair being consistent.
fn specific_host(claim: &AddressClaim, template: &HostPool) -> std::result::Result<Option<u128>, NotBound> {
    let mut specific: Option<u128> = None;
    for (text, fam) in [(&claim.spec.ipv4_address, Family::V4), (&claim.spec.ipv6_address, Family::V6)] {
        let Some(text) = text else { continue };
        let h = Addr::parse(text).and_then(|a| template.host_of(&a)).map_err(|e| not_bound("InvalidAddress", e.to_string(), None))?;
        if let Some(prev) = specific
            && prev != h
        {
            let partner = template.address(fam, prev).map_or_else(String::new, |a| a.to_string());
            let msg = format!("{text} is not the partner of the IPv4 address asked for; under the pairing rule its partner is {partner}");
            return Err(not_bound("InvalidAddress", msg, None));
        }
        specific = Some(h);
    }
    Ok(specific)
}

/// One attempt's end.
enum Attempt {
    Bound(u128),
    /// Start again from what the claim holds now.
    Again,
    Refused(NotBound),
}

/// The families a claim gets under its zone's IPv4 phase
/// ([`pdc_core::report::claim_families`]): what it asks in an Active zone; IPv6 only
/// for a new claim in a Deprecated or Off zone, which refuses a claim asking IPv4
/// itself. IPv4 the claim already holds stays.
fn phase_want(claim: &AddressClaim, ctx: &ClaimContext) -> std::result::Result<Want, NotBound> {
    let want = want_of(claim.spec.families);
    // An unknown zone is reported by `pool_of`.
    let Some(z) = ctx.zones.get(&ObjectRef::new(&claim.spec.zone)) else { return Ok(want) };
    let phase = z.spec.ipv4_phase.core();
    let asks_v4 = claim.spec.families == IpFamilies::IPv4 || claim.spec.ipv4_address.is_some();
    let holds_v4 = ctx.ipam.ledger.claim_addresses(&claim.uid().unwrap_or_default()).iter().any(|(_, f, _)| *f == Family::V4);
    pdc_core::report::claim_families(&claim.spec.zone, phase, want, asks_v4, holds_v4).map_err(|e| {
        let reason = if e.phase == Ipv4Phase::Off { "ZoneIPv4Off" } else { "ZoneIPv4Deprecated" };
        // The zone may be set back to Active: look again now and then.
        not_bound(reason, e.to_string(), Some(Duration::from_secs(60)))
    })
}

async fn try_bind(claim: &AddressClaim, ctx: &ClaimContext) -> Result<std::result::Result<AddressClaimStatus, NotBound>> {
    let want = match phase_want(claim, ctx) {
        Ok(w) => w,
        Err(nb) => return Ok(Err(nb)),
    };
    let pool = match pool_of(claim, ctx, want)? {
        Ok(p) => p,
        Err(nb) => return Ok(Err(nb)),
    };
    let specific = match specific_host(claim, &pool.template) {
        Ok(s) => s,
        Err(nb) => return Ok(Err(nb)),
    };
    for _ in 0..ATTEMPTS {
        match attempt(claim, ctx, &pool, want, specific).await? {
            Attempt::Bound(h) => {
                let note = if want == want_of(claim.spec.families) { String::new() } else { format!(" (IPv6 only: zone {}'s IPv4 is being switched off)", claim.spec.zone) };
                return Ok(Ok(status_for(claim, &pool.template, want, h, &pool.key.site, &note)));
            }
            Attempt::Refused(nb) => return Ok(Err(nb)),
            Attempt::Again => {}
        }
    }
    Ok(Err(not_bound(
        "Contended",
        format!("no address could be allocated after {ATTEMPTS} attempts; other writers keep taking the proposed addresses"),
        Some(Duration::from_secs(1)),
    )))
}

/// One attempt: keep what the claim holds if it is what it asks for, reserve a host
/// for what is missing, and create its allocations.
async fn attempt(claim: &AddressClaim, ctx: &ClaimContext, pool: &Pool, want: Want, specific: Option<u128>) -> Result<Attempt> {
    let api: Api<AddressAllocation> = Api::all(ctx.base.client.clone());
    // What this claim already holds (a crash may have left half a pair).
    let held = ctx.ipam.ledger.claim_addresses(&claim.uid().unwrap_or_default());
    let host = held.first().map(|(_, _, h)| *h);
    let consistent = held.iter().all(|(_, f, h)| Some(*h) == host && want.families().contains(f));
    if !consistent || (specific.is_some() && host.is_some() && host != specific) {
        // Not what the claim asks for: release and start again.
        for (name, _, _) in &held {
            delete_allocation(&api, &ctx.ipam, name).await?;
        }
        return Ok(Attempt::Again);
    }
    let missing: Vec<Family> = want.families().iter().copied().filter(|f| !held.iter().any(|(_, g, _)| g == f)).collect();
    if missing.is_empty()
        && let Some(h) = host
    {
        return Ok(Attempt::Bound(h));
    }
    let missing_want = match missing.as_slice() {
        [Family::V4] => Want::V4Only,
        [Family::V6] => Want::V6Only,
        _ => Want::DualStack,
    };
    let h = match ctx.ipam.ledger.reserve_host(&pool.key, &pool.template, missing_want, host.or(specific)) {
        Ok(h) => h,
        Err(IpamError::Taken(_)) if host.is_some() && specific.is_none() => {
            // The other half of our pair is someone else's now: drop ours, choose again.
            for (name, _, _) in &held {
                delete_allocation(&api, &ctx.ipam, name).await?;
            }
            return Ok(Attempt::Again);
        }
        Err(IpamError::Taken(_)) => {
            let h = specific.or(host).unwrap_or_default();
            let holder = missing.iter().find_map(|f| ctx.ipam.ledger.holder(&pool.key, *f, h));
            let holder = match holder.as_deref() {
                None => "to another claim".to_string(),
                Some("") => "outside pdc: an external address from the declared plan".to_string(),
                Some(uid) => format!("to claim UID {uid}"),
            };
            let msg = format!("{} is already allocated ({holder}); ask for another address or none", pool.addresses(&missing, h));
            return Ok(Attempt::Refused(not_bound("AddressTaken", msg, Some(Duration::from_secs(30)))));
        }
        Err(e @ IpamError::Exhausted(_)) => {
            let msg = format!("{e}; release unused claims or ask for a larger zone");
            return Ok(Attempt::Refused(not_bound("PoolExhausted", msg, Some(Duration::from_secs(60)))));
        }
        Err(e) => return Ok(Attempt::Refused(not_bound("InvalidAddress", e.to_string(), None))),
    };
    if create_pair(claim, ctx, pool, &missing, h).await? {
        return Ok(Attempt::Bound(h));
    }
    if specific.is_some() {
        let msg = format!("{} is already allocated to another claim; ask for another address or none", pool.addresses(&missing, h));
        return Ok(Attempt::Refused(not_bound("AddressTaken", msg, Some(Duration::from_secs(30)))));
    }
    Ok(Attempt::Again)
}

/// Create the allocations of `missing` at host `h`. `false`: another writer holds one
/// of them; half a pair is no pair, so this attempt's creations are undone.
async fn create_pair(claim: &AddressClaim, ctx: &ClaimContext, pool: &Pool, missing: &[Family], h: u128) -> Result<bool> {
    let api: Api<AddressAllocation> = Api::all(ctx.base.client.clone());
    let uid = claim.uid().unwrap_or_default();
    let mut created: Vec<String> = Vec::new();
    for f in missing {
        let (Some(addr), Some(subnet)) = (pool.template.address(*f, h), pool.subnet(*f)) else { continue };
        let obj = allocation(claim, &pool.key, addr, &subnet, pool.hostname.clone());
        let name = addr.object_name();
        match crate::apply::create(&api, &obj).await {
            Ok(_) => {
                ctx.ipam.ledger.address_created(&name, &pool.key, *f, h, &uid);
                created.push(name);
            }
            Err(e) if is_conflict(&e) => match api.get_opt(&name).await {
                Ok(Some(a)) if a.spec.claim.uid == uid => {
                    ctx.ipam.ledger.address_seen(&a);
                    created.push(name);
                }
                Ok(Some(a)) => {
                    ctx.ipam.ledger.address_seen(&a);
                    rollback(&api, &ctx.ipam, &pool.key, missing, h, &created).await;
                    return Ok(false);
                }
                // Gone again meanwhile: try once more from the top.
                Ok(None) => {
                    rollback(&api, &ctx.ipam, &pool.key, missing, h, &created).await;
                    return Ok(false);
                }
                Err(source) => {
                    rollback(&api, &ctx.ipam, &pool.key, missing, h, &created).await;
                    return Err(Error::Read { what: format!("AddressAllocation {name}"), source });
                }
            },
            Err(source) => {
                rollback(&api, &ctx.ipam, &pool.key, missing, h, &created).await;
                return Err(Error::Create { what: format!("AddressAllocation {name}"), source });
            }
        }
    }
    Ok(true)
}

/// Undo one attempt: delete what it created, and free its reservations in the ledger.
async fn rollback(api: &Api<AddressAllocation>, ipam: &Ipam, key: &PoolKey, reserved: &[Family], h: u128, created: &[String]) {
    for name in created {
        if let Err(e) = delete_allocation(api, ipam, name).await {
            warn!(allocation = %name, error = %e, "rolling back an allocation failed; the orphan sweep will remove it");
        }
    }
    for f in reserved {
        ipam.ledger.release_host(key, *f, h);
    }
}

async fn delete_allocation(api: &Api<AddressAllocation>, ipam: &Ipam, name: &str) -> Result<()> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(source) => return Err(Error::Delete { what: format!("AddressAllocation {name}"), source }),
    }
    ipam.ledger.address_gone(name);
    Ok(())
}

fn allocation(claim: &AddressClaim, key: &PoolKey, addr: Addr, subnet: &Prefix, hostname: Option<String>) -> AddressAllocation {
    let uid = claim.uid().unwrap_or_default();
    let mut labels = super::allocation_labels(key, addr.family);
    labels.insert(l::CLAIM_UID.to_string(), uid.clone());
    AddressAllocation {
        metadata: ObjectMeta {
            name: Some(addr.object_name()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: AddressAllocationSpec {
            address: addr.to_string(),
            subnet: subnet.to_string(),
            zone: key.zone.clone(),
            site: key.site.clone(),
            department: key.department.clone(),
            claim: ClaimRef { namespace: claim.namespace().unwrap_or_default(), name: claim.name_any(), uid },
            hostname: hostname.filter(|h| !h.ends_with('.')),
            external: None,
        },
    }
}

fn status_for(claim: &AddressClaim, pool: &HostPool, want: Want, h: u128, site: &str, note: &str) -> AddressClaimStatus {
    let claimed = |f: Family| -> Option<ClaimedAddress> {
        if !want.families().contains(&f) {
            return None;
        }
        let subnet = if f == Family::V4 { pool.v4? } else { pool.v6? };
        Some(ClaimedAddress {
            address: pool.address(f, h)?.to_string(),
            prefix_length: i32::from(subnet.len),
            gateway: pool.gateway(f)?.to_string(),
            subnet: subnet.to_string(),
        })
    };
    let (ipv4, ipv6) = (claimed(Family::V4), claimed(Family::V6));
    let shown: Vec<String> = [&ipv4, &ipv6].into_iter().flatten().map(|c| c.address.clone()).collect();
    let old = claim.status.clone().unwrap_or_default();
    AddressClaimStatus {
        observed_generation: claim.metadata.generation,
        conditions: conditions::merge(
            &old.conditions,
            &[Cond::new(READY, true, "Bound", format!("allocated {}{note}", shown.join(" and ")))],
            claim.metadata.generation,
            Timestamp::now(),
        ),
        site: Some(site.to_string()),
        ipv4,
        ipv6,
    }
}

async fn write_status(claim: &AddressClaim, ctx: &ClaimContext, status: AddressClaimStatus) -> Result<()> {
    if claim.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<AddressClaim> = Api::namespaced(ctx.base.client.clone(), &claim.namespace().unwrap_or_default());
    crate::apply::patch_status(&api, &claim.name_any(), &status).await
}

async fn release(claim: &AddressClaim, ctx: &ClaimContext) -> Result<Action> {
    let uid = claim.uid().unwrap_or_default();
    let api: Api<AddressAllocation> = Api::all(ctx.base.client.clone());
    // The ledger knows them; the API list also finds any it has not seen yet.
    let mut names: Vec<String> = ctx.ipam.ledger.claim_addresses(&uid).into_iter().map(|(n, _, _)| n).collect();
    let listed = api
        .list_metadata(&ListParams::default().labels(&format!("{}={uid}", l::CLAIM_UID)))
        .await
        .map_err(|source| Error::Read { what: format!("AddressAllocations of claim {}", claim.name_any()), source })?;
    names.extend(listed.items.iter().map(|a| a.name_any()));
    names.sort();
    names.dedup();
    // Addresses a reorganization holds back from reuse stay (see reorg::release), and
    // so do external ones (imported from the declared plan; no claim owns them).
    let held: Vec<String> =
        listed.items.iter().filter(|a| a.labels().contains_key(l::HOLD_UNTIL) || a.labels().contains_key(l::EXTERNAL)).map(|a| a.name_any()).collect();
    names.retain(|n| !held.contains(n));
    for n in &names {
        delete_allocation(&api, &ctx.ipam, n).await?;
    }
    if !names.is_empty() {
        info!(claim = %claim.name_any(), namespace = ?claim.namespace(), addresses = ?names, "addresses released");
    }
    Ok(Action::await_change())
}

/// Delete AddressAllocations whose claim no longer exists (a claim removed without
/// its finalizer running). Returns how many were removed.
pub async fn sweep_orphans(client: &Client, ipam: &Ipam, known: &Store<AddressClaim>) -> Result<usize> {
    let api: Api<AddressAllocation> = Api::all(client.clone());
    let all = api.list(&ListParams::default()).await.map_err(|source| Error::Read { what: "AddressAllocations".into(), source })?;
    let mut removed = 0;
    for a in all.items {
        // Held back from reuse by a reorganization: its claim is gone on purpose.
        // External (imported from the declared plan): no claim ever owned it.
        if a.labels().contains_key(l::HOLD_UNTIL) || a.labels().contains_key(l::EXTERNAL) || a.spec.external.is_some() {
            continue;
        }
        let cached = known.get(&ObjectRef::new(&a.spec.claim.name).within(&a.spec.claim.namespace));
        if cached.and_then(|c| c.uid()).as_deref() == Some(a.spec.claim.uid.as_str()) {
            continue;
        }
        // Not in the cache: ask the API server before removing anything.
        let claims: Api<AddressClaim> = Api::namespaced(client.clone(), &a.spec.claim.namespace);
        let owner = claims
            .get_opt(&a.spec.claim.name)
            .await
            .map_err(|source| Error::Read { what: format!("AddressClaim {}/{}", a.spec.claim.namespace, a.spec.claim.name), source })?;
        if owner.as_ref().and_then(|c| c.uid()) != Some(a.spec.claim.uid.clone()) {
            warn!(allocation = %a.name_any(), claim = %a.spec.claim.name, namespace = %a.spec.claim.namespace, "removing an allocation whose claim is gone");
            delete_allocation(&api, ipam, &a.name_any()).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn ready(c: &AddressClaim) -> bool {
    c.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY))
}

fn error_policy(claim: Arc<AddressClaim>, err: &Error, ctx: Arc<ClaimContext>) -> Action {
    ctx.base.failed(CONTROLLER, claim.as_ref(), err, Duration::from_secs(2))
}

/// The AddressClaim controller: triggered by spec, finalizer and deletion changes.
pub fn controller(client: Client, concurrency: u16) -> Controller<AddressClaim> {
    crate::cache::controller::<AddressClaim>(client, crate::department::spec_or_lifecycle).with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
}

/// Run the AddressClaim controller, and the orphan sweep every five minutes. A
/// released address wakes the claims of its department that are still waiting.
pub async fn run(ctx: Arc<ClaimContext>, controller: Controller<AddressClaim>) {
    // The ledger's own watch reports releases; `None` stands for "some were missed".
    let waiting = controller.store();
    let released = futures::stream::unfold(ctx.ipam.released(), |mut rx| async move {
        use tokio::sync::broadcast::error::RecvError;
        match rx.recv().await {
            Ok(key) => Some((Some(key), rx)),
            Err(RecvError::Lagged(_)) => Some((None, rx)),
            Err(RecvError::Closed) => None,
        }
    });
    let wake = released.flat_map(move |key: Option<PoolKey>| {
        let claims: Vec<ObjectRef<AddressClaim>> = waiting
            .state()
            .into_iter()
            .filter(|c| {
                !ready(c)
                    && key.as_ref().is_none_or(|k| c.namespace().as_deref() == Some(k.department.as_str()) && c.spec.zone == k.zone)
            })
            .map(|c| ObjectRef::from_obj(&*c))
            .collect();
        futures::stream::iter(claims)
    });
    let controller = controller.reconcile_on(wake);
    let sweeper = {
        let ctx = ctx.clone();
        let known = controller.store();
        async move {
            ctx.ipam.wait_synced().await;
            if known.wait_until_ready().await.is_err() {
                return;
            }
            loop {
                match sweep_orphans(&ctx.base.client, &ctx.ipam, &known).await {
                    Ok(0) => {}
                    Ok(n) => info!(removed = n, "orphaned address allocations removed"),
                    Err(e) => warn!(error = %e, "orphan sweep failed"),
                }
                tokio::time::sleep(Duration::from_secs(300)).await;
            }
        }
    };
    let controller = controller.run(reconcile, error_policy, ctx).for_each(|_| futures::future::ready(()));
    tokio::join!(sweeper, controller);
}
