//! The NetworkZone controller: checks each zone's prefixes (inside their site's
//! blocks, no overlap with another zone), and reports utilisation per site and
//! family in status and metrics.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use pdc_api::conditions::{self, Cond, READY};
use pdc_api::{NetworkZone, NetworkZoneStatus, Site, ZoneUsage};
use pdc_core::ipam::{self, Family, Prefix};

use super::Ipam;
use super::ledger::ZoneKey;
use crate::apply;
use crate::context::Context;
use crate::error::{Error, Result};

const CONTROLLER: &str = "networkzone";

/// A zone's prefix at one site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZonePrefix {
    pub site: String,
    pub prefix: Prefix,
}

/// The zone's prefixes, parsed (those that do not parse are reported by [`problems`]).
pub fn prefixes(zone: &NetworkZone) -> Vec<ZonePrefix> {
    let mut out = Vec::new();
    for s in &zone.spec.sites {
        for text in [&s.ipv4, &s.ipv6].into_iter().flatten() {
            if let Ok(prefix) = Prefix::parse(text) {
                out.push(ZonePrefix { site: s.site.clone(), prefix });
            }
        }
    }
    out
}

/// The zone's prefix at `site` in `family`.
pub fn prefix_at(zone: &NetworkZone, site: &str, family: Family) -> Option<Prefix> {
    prefixes(zone).into_iter().find(|p| p.site == site && p.prefix.family == family).map(|p| p.prefix)
}

/// Department subnet length of a family in a zone.
pub fn subnet_len(zone: &NetworkZone, family: Family) -> u8 {
    let v = match family {
        Family::V4 => zone.spec.subnet_sizes.ipv4,
        Family::V6 => zone.spec.subnet_sizes.ipv6,
    };
    u8::try_from(v).unwrap_or(family.bits())
}

/// Whether zone `a` takes precedence over zone `b` when their prefixes overlap: the
/// older one keeps its prefix.
fn precedes(a: &NetworkZone, b: &NetworkZone) -> bool {
    (a.metadata.creation_timestamp.as_ref().map(|t| t.0), a.name_any()) < (b.metadata.creation_timestamp.as_ref().map(|t| t.0), b.name_any())
}

/// What is wrong with a zone, each as a sentence the province's engineers can act on.
/// Empty when the zone can hand out subnets.
pub fn problems(zone: &NetworkZone, zones: &[Arc<NetworkZone>], sites: &Store<Site>) -> Vec<String> {
    let name = zone.name_any();
    let mut out = Vec::new();
    for s in &zone.spec.sites {
        for text in [&s.ipv4, &s.ipv6].into_iter().flatten() {
            if let Err(e) = Prefix::parse(text) {
                out.push(format!("site {}: {e}", s.site));
            }
        }
        let Some(site) = sites.get(&ObjectRef::new(&s.site)) else {
            out.push(format!("site {} does not exist; create the Site or fix spec.sites", s.site));
            continue;
        };
        for p in prefixes(zone).iter().filter(|p| p.site == s.site) {
            let blocks = match p.prefix.family {
                Family::V4 => &site.spec.ipv4_blocks,
                Family::V6 => &site.spec.ipv6_blocks,
            };
            let parsed: Vec<Prefix> = blocks.iter().filter_map(|b| Prefix::parse(b).ok()).collect();
            if !parsed.is_empty() && !parsed.iter().any(|b| b.covers(&p.prefix)) {
                out.push(format!(
                    "{} prefix {} at site {} is outside the site's blocks ({})",
                    p.prefix.family,
                    p.prefix,
                    s.site,
                    blocks.join(", ")
                ));
            }
        }
    }
    // Overlaps: between the zone's own sites, and with older zones (they keep theirs).
    let mut entries: Vec<((String, String), Prefix)> = prefixes(zone).into_iter().map(|p| ((name.clone(), p.site), p.prefix)).collect();
    for z in zones.iter().filter(|z| z.name_any() != name && precedes(z, zone)) {
        entries.extend(prefixes(z).into_iter().map(|p| ((z.name_any(), p.site), p.prefix)));
    }
    for (i, j) in ipam::overlaps(&entries) {
        let (Some(((za, sa), pa)), Some(((zb, sb), pb))) = (entries.get(i), entries.get(j)) else { continue };
        let (mine, other) = if *za == name { ((sa, pa), (zb, sb, pb)) } else if *zb == name { ((sb, pb), (za, sa, pa)) } else { continue };
        let whose = if *other.0 == name { "this zone".to_string() } else { format!("zone {}", other.0) };
        out.push(format!(
            "{} prefix {} at site {} overlaps {whose}'s {} at site {}; zones' prefixes must not overlap",
            mine.1.family, mine.1, mine.0, other.2, other.1
        ));
    }
    out.sort();
    out.dedup();
    out
}

pub struct ZoneContext {
    pub base: Arc<Context>,
    pub ipam: Arc<Ipam>,
    pub zones: Store<NetworkZone>,
    pub sites: Store<Site>,
}

/// Utilisation of a zone: per site and family.
pub fn usage(zone: &NetworkZone, ipam: &Ipam) -> Vec<ZoneUsage> {
    let name = zone.name_any();
    let mut out = Vec::new();
    for p in prefixes(zone) {
        let len = subnet_len(zone, p.prefix.family);
        let total = ipam::blocks_in(&p.prefix, len);
        let zk = ZoneKey { zone: name.clone(), site: p.site.clone(), family: p.prefix.family };
        let carved = ipam.ledger.carved_in(&zk, &p.prefix);
        let block = Prefix { family: p.prefix.family, network: 0, len }.size();
        let subnets = carved.checked_div(block).unwrap_or(0);
        let (mut alloc, mut usable) = (0u128, 0u128);
        for key in ipam.ledger.pools_in(&name, &p.site) {
            let (a, t) = ipam.ledger.pool_usage(&key, p.prefix.family);
            alloc = alloc.saturating_add(a);
            usable = usable.saturating_add(t);
        }
        out.push(ZoneUsage {
            site: p.site,
            family: p.prefix.family.label().to_string(),
            prefix: p.prefix.to_string(),
            subnets_allocated: subnets.to_string(),
            subnets_total: total.to_string(),
            addresses_allocated: alloc.to_string(),
            addresses_total: usable.to_string(),
        });
    }
    out
}

async fn reconcile(zone: Arc<NetworkZone>, ctx: Arc<ZoneContext>) -> Result<Action> {
    let timer = ctx.base.metrics.reconcile_started(CONTROLLER);
    let res = reconcile_inner(&zone, &ctx).await;
    timer.finish(res.is_ok());
    res
}

async fn reconcile_inner(zone: &NetworkZone, ctx: &ZoneContext) -> Result<Action> {
    ctx.ipam.wait_synced().await;
    let problems = problems(zone, &ctx.zones.state(), &ctx.sites);
    let cond = if problems.is_empty() {
        Cond::new(READY, true, "Valid", "prefixes are valid and overlap no other zone".to_string())
    } else {
        Cond::new(READY, false, "InvalidPrefixes", problems.join("; "))
    };
    let usage = usage(zone, &ctx.ipam);
    let name = zone.name_any();
    for u in &usage {
        let labels = [name.as_str(), u.site.as_str(), u.family.as_str()];
        let f = |s: &str| s.parse::<f64>().unwrap_or(0.0);
        ctx.base.metrics.ipam_subnets_allocated.with_label_values(&labels).set(f(&u.subnets_allocated));
        ctx.base.metrics.ipam_subnets_capacity.with_label_values(&labels).set(f(&u.subnets_total));
        ctx.base.metrics.ipam_addresses_allocated.with_label_values(&labels).set(f(&u.addresses_allocated));
        ctx.base.metrics.ipam_addresses_capacity.with_label_values(&labels).set(f(&u.addresses_total));
    }
    let summary = summary(&usage);
    let old = zone.status.clone().unwrap_or_default();
    let new = NetworkZoneStatus {
        observed_generation: zone.metadata.generation,
        conditions: conditions::merge(&old.conditions, &[cond], zone.metadata.generation, Timestamp::now()),
        usage,
        summary: Some(summary),
    };
    if new != old {
        apply::patch_status(&Api::<NetworkZone>::all(ctx.base.client.clone()), &name, &new).await?;
    }
    Ok(Action::requeue(Duration::from_secs(30)))
}

fn summary(usage: &[ZoneUsage]) -> String {
    let mut parts = Vec::new();
    for fam in ["IPv4", "IPv6"] {
        let rows: Vec<&ZoneUsage> = usage.iter().filter(|u| u.family == fam).collect();
        if rows.is_empty() {
            continue;
        }
        let sum = |f: fn(&ZoneUsage) -> &str| rows.iter().map(|u| f(u).parse::<u128>().unwrap_or(0)).fold(0u128, u128::saturating_add);
        parts.push(format!("{} {}/{}", if fam == "IPv4" { "v4" } else { "v6" }, sum(|u| &u.subnets_allocated), sum(|u| &u.subnets_total)));
    }
    parts.join(", ")
}

fn error_policy(zone: Arc<NetworkZone>, err: &Error, ctx: Arc<ZoneContext>) -> Action {
    ctx.base.failed(CONTROLLER, zone.as_ref(), err, Duration::from_secs(5))
}

/// Zone events that change a spec (status writes, including usage, do not).
pub fn spec_changes(api: Api<NetworkZone>) -> impl futures::Stream<Item = std::result::Result<NetworkZone, watcher::Error>> + Send + 'static {
    watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .predicate_filter(kube::runtime::predicates::generation, Default::default())
}

/// The NetworkZone controller: reconciles on spec changes and every 30 s (usage).
pub fn controller(client: kube::Client) -> Controller<NetworkZone> {
    crate::cache::controller::<NetworkZone>(client, kube::runtime::predicates::generation)
}

/// Run the NetworkZone controller. Any zone or site change re-checks every zone (an
/// overlap involves two).
pub async fn run(base: Arc<Context>, ipam: Arc<Ipam>, controller: Controller<NetworkZone>, sites: Store<Site>) {
    let client = base.client.clone();
    let zones = controller.store();
    let all = zones.clone();
    let all2 = zones.clone();
    let ctx = Arc::new(ZoneContext { base, ipam, zones, sites });
    controller
        .watches(Api::<Site>::all(client.clone()), watcher::Config::default(), move |_| {
            all.state().into_iter().map(|z| ObjectRef::from_obj(&*z)).collect::<Vec<_>>()
        })
        .watches_stream(spec_changes(Api::<NetworkZone>::all(client)), move |_| {
            all2.state().into_iter().map(|z| ObjectRef::from_obj(&*z)).collect::<Vec<_>>()
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}
