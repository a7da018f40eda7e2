//! Department subnets: for every zone a Department may use and every site the zone
//! spans, an IPv4 and an IPv6 subnet carved from the zone's prefix, each held by a
//! SubnetAllocation named after it.

use std::sync::Arc;

use kube::api::{DeleteParams, ListParams, ObjectMeta};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use pdc_api::labels as l;
use pdc_api::{Department, DepartmentSubnet, NetworkZone, Site, SubnetAllocation, SubnetAllocationSpec};
use pdc_core::ipam::{Family, Prefix};
use tracing::info;

use super::{Ipam, PoolKey, is_conflict, is_not_found, zone};
use crate::error::{Error, Result};

/// How often a carve is retried when another writer took the proposed prefix.
const ATTEMPTS: usize = 16;

/// The outcome for one Department: its subnets, and what keeps others from it.
#[derive(Debug, Default)]
pub struct Outcome {
    pub subnets: Vec<DepartmentSubnet>,
    pub problems: Vec<String>,
}

/// Allocate what the Department's zones call for; release subnets of zones it no
/// longer lists when they hold no addresses.
pub async fn ensure(client: &Client, ipam: &Ipam, dept: &Department, zones: &Store<NetworkZone>, sites: &Store<Site>) -> Result<Outcome> {
    let name = dept.name_any();
    let all_zones = zones.state();
    let mut out = Outcome::default();
    for zone_name in &dept.spec.zones {
        let Some(z) = zones.get(&ObjectRef::new(zone_name)) else {
            out.problems.push(format!("zone {zone_name} does not exist (spec.zones)"));
            continue;
        };
        if z.spec.externally_assigned {
            // Nothing is carved here; the subnets imported from the declared plan are shown.
            out.subnets.extend(z.spec.sites.iter().filter_map(|s| imported(ipam, &name, zone_name, &s.site)));
            continue;
        }
        let problems = zone::problems(&z, &all_zones, sites);
        if !problems.is_empty() {
            out.problems.push(format!("zone {zone_name} cannot hand out subnets: {}", problems.join("; ")));
            continue;
        }
        for s in &z.spec.sites {
            let key = PoolKey { department: name.clone(), zone: zone_name.clone(), site: s.site.clone() };
            let mut entry = DepartmentSubnet { zone: zone_name.clone(), site: s.site.clone(), ipv4: None, ipv6: None };
            for family in [Family::V4, Family::V6] {
                let Some(parent) = zone::prefix_at(&z, &s.site, family) else { continue };
                // Once the zone's IPv4 is Deprecated or Off, a department without an
                // IPv4 subnet there gets none; one it holds stays.
                let holds = ipam.ledger.subnet_of(&key, family).is_some();
                if family == Family::V4 && !pdc_core::report::carves_ipv4_subnet(z.spec.ipv4_phase.core(), holds) {
                    continue;
                }
                match allocate(client, ipam, &key, &parent, zone::subnet_len(&z, family)).await? {
                    Some(p) => match family {
                        Family::V4 => entry.ipv4 = Some(p.to_string()),
                        Family::V6 => entry.ipv6 = Some(p.to_string()),
                    },
                    None => out.problems.push(format!(
                        "zone {zone_name} has no free {} /{} left at site {} ({parent} is fully allocated); ask the province's engineers to extend the zone",
                        family,
                        zone::subnet_len(&z, family),
                        s.site
                    )),
                }
            }
            out.subnets.push(entry);
        }
    }
    // Zones dropped from spec.zones: release their subnets once no address is held.
    if let Some(status) = &dept.status {
        for old in &status.subnets {
            if dept.spec.zones.contains(&old.zone) {
                continue;
            }
            let key = PoolKey { department: name.clone(), zone: old.zone.clone(), site: old.site.clone() };
            let held: u128 = [Family::V4, Family::V6].iter().map(|f| ipam.ledger.pool_usage(&key, *f).0).sum();
            if held > 0 {
                out.problems.push(format!(
                    "zone {} was removed from spec.zones but {held} address(es) are still allocated in it at site {}; delete those AddressClaims first",
                    old.zone, old.site
                ));
                out.subnets.push(old.clone());
                continue;
            }
            for p in [&old.ipv4, &old.ipv6].into_iter().flatten() {
                if let Ok(prefix) = Prefix::parse(p) {
                    delete(client, ipam, &prefix.object_name()).await?;
                }
            }
        }
    }
    out.subnets.sort_by(|a, b| (&a.zone, &a.site).cmp(&(&b.zone, &b.site)));
    Ok(out)
}

/// The Department's subnets imported in a zone that pdc does not carve from.
fn imported(ipam: &Ipam, department: &str, zone: &str, site: &str) -> Option<DepartmentSubnet> {
    let key = PoolKey { department: department.to_string(), zone: zone.to_string(), site: site.to_string() };
    let (v4, v6) = (ipam.ledger.subnet_of(&key, Family::V4), ipam.ledger.subnet_of(&key, Family::V6));
    (v4.is_some() || v6.is_some()).then(|| DepartmentSubnet { zone: zone.to_string(), site: site.to_string(), ipv4: v4.map(|p| p.to_string()), ipv6: v6.map(|p| p.to_string()) })
}

/// The Department's subnet in `parent`: already held, or carved now.
async fn allocate(client: &Client, ipam: &Ipam, key: &PoolKey, parent: &Prefix, len: u8) -> Result<Option<Prefix>> {
    let api: Api<SubnetAllocation> = Api::all(client.clone());
    for _ in 0..ATTEMPTS {
        if let Some(p) = ipam.ledger.subnet_of(key, parent.family) {
            return Ok(Some(p));
        }
        let Some(p) = ipam.ledger.reserve_subnet(key, parent, len).map_err(|e| Error::Invalid(e.to_string()))? else {
            return Ok(None);
        };
        let obj = object(key, &p);
        match crate::apply::create(&api, &obj).await {
            Ok(created) => {
                ipam.ledger.subnet_seen(&created);
                info!(department = %key.department, zone = %key.zone, site = %key.site, prefix = %p, "subnet allocated");
                return Ok(Some(p));
            }
            Err(e) if is_conflict(&e) => {
                // Someone holds that name. Ours from before a crash? Then adopt it.
                let existing = api.get_opt(&p.object_name()).await.map_err(|source| Error::Read { what: format!("SubnetAllocation {}", p.object_name()), source })?;
                match existing {
                    Some(a) if a.spec.department == key.department && a.spec.zone == key.zone && a.spec.site == key.site => {
                        ipam.ledger.subnet_seen(&a);
                        return Ok(Some(p));
                    }
                    _ => ipam.ledger.subnet_taken_elsewhere(key, &p),
                }
            }
            Err(source) => {
                ipam.ledger.unreserve_subnet(&p);
                return Err(Error::Create { what: format!("SubnetAllocation {}", p.object_name()), source });
            }
        }
    }
    Err(Error::Invalid(format!("could not allocate a subnet in {parent} after {ATTEMPTS} attempts: other writers keep taking the proposed prefixes")))
}

fn object(key: &PoolKey, p: &Prefix) -> SubnetAllocation {
    SubnetAllocation {
        metadata: ObjectMeta {
            name: Some(p.object_name()),
            labels: Some(super::allocation_labels(key, p.family)),
            ..Default::default()
        },
        spec: SubnetAllocationSpec { prefix: p.to_string(), zone: key.zone.clone(), site: key.site.clone(), department: key.department.clone() },
    }
}

async fn delete(client: &Client, ipam: &Ipam, name: &str) -> Result<()> {
    let api: Api<SubnetAllocation> = Api::all(client.clone());
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(source) => return Err(Error::Delete { what: format!("SubnetAllocation {name}"), source }),
    }
    ipam.ledger.subnet_gone(name);
    info!(subnet = %name, "subnet released");
    Ok(())
}

/// Release every subnet of a Department being deleted (its namespace is empty).
pub async fn release_all(client: &Client, ipam: &Arc<Ipam>, department: &str) -> Result<()> {
    let api: Api<SubnetAllocation> = Api::all(client.clone());
    let list = api
        .list_metadata(&ListParams::default().labels(&format!("{}={department}", l::DEPARTMENT)))
        .await
        .map_err(|source| Error::Read { what: format!("SubnetAllocations of {department}"), source })?;
    for a in list.items {
        delete(client, ipam, &a.name_any()).await?;
    }
    Ok(())
}
