//! The operator's picture of the address plan, kept from the watch streams of
//! SubnetAllocation and AddressAllocation plus its own reservations in flight.
//!
//! The ledger only makes allocation fast: it proposes a free prefix or host. The
//! guarantee that nothing is allocated twice is the API server's — each allocation
//! is an object named after its prefix or address, and a second create of that name
//! fails with 409. After a restart the ledger is rebuilt from the watches' initial
//! lists before any allocation is proposed.

use std::collections::HashMap;
use std::sync::Mutex;

use pdc_api::{AddressAllocation, SubnetAllocation};
use pdc_core::ipam::{Addr, Family, HostPool, IntervalSet, IpamError, Prefix, Want, carve, pairing};

/// A department's subnet pair in one zone at one site.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolKey {
    pub department: String,
    pub zone: String,
    pub site: String,
}

/// A zone's prefix at one site in one family.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZoneKey {
    pub zone: String,
    pub site: String,
    pub family: Family,
}

#[derive(Clone, Debug)]
struct AddressEntry {
    pool: PoolKey,
    family: Family,
    host: u128,
    claim_uid: String,
}

#[derive(Default)]
struct State {
    /// Blocks carved from each zone prefix.
    carved: HashMap<ZoneKey, IntervalSet>,
    /// Each department's subnet, by pool and family.
    subnets: HashMap<(PoolKey, Family), Prefix>,
    /// SubnetAllocation name → what it holds.
    subnet_names: HashMap<String, (PoolKey, Family, Prefix)>,
    /// Host numbers held in each pool.
    pools: HashMap<PoolKey, HostPool>,
    /// AddressAllocation name → what it holds.
    address_names: HashMap<String, AddressEntry>,
    /// Claim UID → AddressAllocation names.
    by_claim: HashMap<String, Vec<String>>,
    /// External addresses in a zone but in no department subnet (AddressAllocation
    /// name → zone prefix and address): carved as single points, so no department
    /// subnet is ever carved over them.
    points: HashMap<String, (ZoneKey, u128)>,
}

/// The in-memory ledger. Every method takes the lock briefly and never awaits.
#[derive(Default)]
pub struct Ledger {
    state: Mutex<State>,
}


impl Ledger {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-written in a way
        // that matters: they are a cache of the API server. Keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    // ---- watch events ----

    /// A SubnetAllocation exists (watch event or own create).
    pub fn subnet_seen(&self, a: &SubnetAllocation) {
        let Ok(prefix) = Prefix::parse(&a.spec.prefix) else { return };
        let name = kube::ResourceExt::name_any(a);
        let key = PoolKey { department: a.spec.department.clone(), zone: a.spec.zone.clone(), site: a.spec.site.clone() };
        let mut s = self.lock();
        hold_subnet(&mut s, &name, key, prefix);
    }

    /// A SubnetAllocation is gone.
    pub fn subnet_gone(&self, name: &str) {
        let mut s = self.lock();
        if let Some((key, family, prefix)) = s.subnet_names.remove(name) {
            let zk = ZoneKey { zone: key.zone.clone(), site: key.site.clone(), family };
            if let Some(set) = s.carved.get_mut(&zk) {
                set.remove(prefix.first(), prefix.last());
            }
            if s.subnets.get(&(key.clone(), family)) == Some(&prefix) {
                s.subnets.remove(&(key, family));
            }
        }
    }

    /// An AddressAllocation exists (watch event or own create).
    pub fn address_seen(&self, a: &AddressAllocation) {
        let (Ok(addr), Ok(subnet)) = (Addr::parse(&a.spec.address), Prefix::parse(&a.spec.subnet)) else { return };
        if a.spec.external.is_some() && a.spec.department.is_empty() {
            let zk = ZoneKey { zone: a.spec.zone.clone(), site: a.spec.site.clone(), family: addr.family };
            let mut s = self.lock();
            let name = kube::ResourceExt::name_any(a);
            if !s.points.contains_key(&name) && s.carved.entry(zk.clone()).or_default().insert(addr.value, addr.value).is_ok() {
                s.points.insert(name, (zk, addr.value));
            }
            return;
        }
        let Some(host) = host_number(&subnet, &addr) else { return };
        let key = PoolKey { department: a.spec.department.clone(), zone: a.spec.zone.clone(), site: a.spec.site.clone() };
        let name = kube::ResourceExt::name_any(a);
        let mut s = self.lock();
        hold_address(&mut s, &name, AddressEntry { pool: key, family: addr.family, host, claim_uid: a.spec.claim.uid.clone() });
    }

    /// An AddressAllocation is gone.
    pub fn address_gone(&self, name: &str) {
        let mut s = self.lock();
        release_address(&mut s, name);
    }

    /// After a re-list: forget SubnetAllocations the API server no longer has.
    pub fn retain_subnets(&self, names: &std::collections::HashSet<String>) {
        let gone: Vec<String> = self.lock().subnet_names.keys().filter(|n| !names.contains(*n)).cloned().collect();
        for n in gone {
            self.subnet_gone(&n);
        }
    }

    /// After a re-list: forget AddressAllocations the API server no longer has.
    pub fn retain_addresses(&self, names: &std::collections::HashSet<String>) {
        let mut s = self.lock();
        let gone: Vec<String> = s.address_names.keys().chain(s.points.keys()).filter(|n| !names.contains(*n)).cloned().collect();
        for n in gone {
            release_address(&mut s, &n);
        }
    }

    // ---- subnets ----

    /// The department's subnet in a zone at a site, if allocated.
    pub fn subnet_of(&self, key: &PoolKey, family: Family) -> Option<Prefix> {
        self.lock().subnets.get(&(key.clone(), family)).copied()
    }

    /// Propose and reserve the first free `/len` of `parent` for `key`. `Ok(None)`
    /// when the zone prefix is full.
    pub fn reserve_subnet(&self, key: &PoolKey, parent: &Prefix, len: u8) -> Result<Option<Prefix>, IpamError> {
        let mut s = self.lock();
        let family = parent.family;
        if let Some(p) = s.subnets.get(&(key.clone(), family)) {
            return Ok(Some(*p));
        }
        let zk = ZoneKey { zone: key.zone.clone(), site: key.site.clone(), family };
        let carved = s.carved.entry(zk).or_default();
        let Some(p) = carve(parent, len, carved)? else { return Ok(None) };
        hold_subnet(&mut s, &p.object_name(), key.clone(), p);
        Ok(Some(p))
    }

    /// Mark a prefix as taken by someone else (a 409 on create): it stays carved.
    pub fn subnet_taken_elsewhere(&self, key: &PoolKey, prefix: &Prefix) {
        let mut s = self.lock();
        if s.subnets.get(&(key.clone(), prefix.family)) == Some(prefix) {
            s.subnets.remove(&(key.clone(), prefix.family));
        }
    }

    /// Undo a reservation whose create failed for another reason.
    pub fn unreserve_subnet(&self, prefix: &Prefix) {
        self.subnet_gone(&prefix.object_name());
    }

    /// How many addresses of `parent` are carved into department subnets.
    pub fn carved_in(&self, zk: &ZoneKey, parent: &Prefix) -> u128 {
        self.lock().carved.get(zk).map_or(0, |set| set.count_in(parent.first(), parent.last()))
    }

    // ---- addresses ----

    /// Names of the AddressAllocations a claim holds, with family and host number.
    pub fn claim_addresses(&self, claim_uid: &str) -> Vec<(String, Family, u128)> {
        let s = self.lock();
        s.by_claim
            .get(claim_uid)
            .map(|names| {
                names.iter().filter_map(|n| s.address_names.get(n).map(|e| (n.clone(), e.family, e.host))).collect()
            })
            .unwrap_or_default()
    }

    /// Reserve a host for a claim: `specific` when given, else the lowest free for
    /// `want` (skipping hosts in `families_present` that the claim already holds).
    /// Returns the host number.
    pub fn reserve_host(&self, key: &PoolKey, template: &HostPool, want: Want, specific: Option<u128>) -> Result<u128, IpamError> {
        let mut s = self.lock();
        let pool = s.pools.entry(key.clone()).or_insert_with(HostPool::empty);
        pool.v4 = template.v4;
        pool.v6 = template.v6;
        pool.reserved = template.reserved;
        let h = match specific {
            Some(h) => h,
            None => pool.next_free(want)?,
        };
        pool.hold(h, want.families())?;
        Ok(h)
    }

    /// Who holds a family's host in a pool: the claim UID, when known.
    pub fn holder(&self, key: &PoolKey, family: Family, host: u128) -> Option<String> {
        let s = self.lock();
        s.address_names.values().find(|e| e.pool == *key && e.family == family && e.host == host).map(|e| e.claim_uid.clone())
    }

    /// Record an AddressAllocation the operator created (before its watch event).
    pub fn address_created(&self, name: &str, key: &PoolKey, family: Family, host: u128, claim_uid: &str) {
        let mut s = self.lock();
        hold_address(&mut s, name, AddressEntry { pool: key.clone(), family, host, claim_uid: claim_uid.into() });
    }

    /// Release a reservation whose create failed, or that was rolled back.
    pub fn release_host(&self, key: &PoolKey, family: Family, host: u128) {
        let mut s = self.lock();
        // Keep it held if an allocation object for it is known.
        let known = s.address_names.values().any(|e| e.pool == *key && e.family == family && e.host == host);
        if !known && let Some(pool) = s.pools.get_mut(key) {
            pool.release(host, &[family]);
        }
    }

    /// Addresses allocated and usable in a pool, per family.
    pub fn pool_usage(&self, key: &PoolKey, family: Family) -> (u128, u128) {
        self.lock().pools.get(key).map_or((0, 0), |p| p.usage(family))
    }

    /// Every pool key the ledger knows for a zone at a site.
    pub fn pools_in(&self, zone: &str, site: &str) -> Vec<PoolKey> {
        let s = self.lock();
        let mut keys: Vec<PoolKey> = s.subnets.keys().filter(|(k, _)| k.zone == zone && k.site == site).map(|(k, _)| k.clone()).collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Number of address allocations known (for metrics and tests).
    pub fn addresses(&self) -> usize {
        self.lock().address_names.len()
    }
}

fn hold_subnet(s: &mut State, name: &str, key: PoolKey, prefix: Prefix) {
    let family = prefix.family;
    let zk = ZoneKey { zone: key.zone.clone(), site: key.site.clone(), family };
    let set = s.carved.entry(zk).or_default();
    let _ = set.insert(prefix.first(), prefix.last());
    s.subnets.insert((key.clone(), family), prefix);
    s.subnet_names.insert(name.to_string(), (key, family, prefix));
}

fn hold_address(s: &mut State, name: &str, e: AddressEntry) {
    if let Some(old) = s.address_names.get(name)
        && old.host == e.host
        && old.pool == e.pool
        && old.claim_uid == e.claim_uid
    {
        return;
    }
    release_address(s, name);
    let pool = s.pools.entry(e.pool.clone()).or_insert_with(HostPool::empty);
    // Already held by our own reservation: fine.
    let _ = pool.hold(e.host, &[e.family]);
    // External addresses (empty claim UID) belong to no claim.
    if !e.claim_uid.is_empty() {
        s.by_claim.entry(e.claim_uid.clone()).or_default().push(name.to_string());
    }
    s.address_names.insert(name.to_string(), e);
}

fn release_address(s: &mut State, name: &str) {
    if let Some((zk, v)) = s.points.remove(name)
        && let Some(set) = s.carved.get_mut(&zk)
    {
        set.remove(v, v);
    }
    if let Some(e) = s.address_names.remove(name) {
        if let Some(pool) = s.pools.get_mut(&e.pool) {
            pool.release(e.host, &[e.family]);
        }
        if let Some(names) = s.by_claim.get_mut(&e.claim_uid) {
            names.retain(|n| n != name);
            if names.is_empty() {
                s.by_claim.remove(&e.claim_uid);
            }
        }
    }
}

/// The host number of `addr` in `subnet` under the pairing rule.
pub fn host_number(subnet: &Prefix, addr: &Addr) -> Option<u128> {
    if !subnet.contains(addr) {
        return None;
    }
    let offset = addr.value - subnet.network;
    match addr.family {
        Family::V4 => Some(offset),
        Family::V6 => pairing::host_of_interface_id(offset),
    }
}
