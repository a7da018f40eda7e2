//! The address plan in the cluster: the ledger fed by watches, the NetworkZone
//! controller (validation, overlaps, utilisation), department subnets, and the
//! AddressClaim controller.

pub mod attach;
pub mod claim;
pub mod ledger;
pub mod subnets;
pub mod zone;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, ResourceExt};
use pdc_api::{AddressAllocation, SubnetAllocation};
use tokio::sync::Notify;

pub use ledger::{Ledger, PoolKey};

/// The ledger, whether its watches have listed everything once, and a signal of
/// released addresses (by pool) for claims waiting on a full pool.
pub struct Ipam {
    pub ledger: Ledger,
    subnets_synced: AtomicBool,
    addresses_synced: AtomicBool,
    notify: Notify,
    released: tokio::sync::broadcast::Sender<PoolKey>,
}

impl Default for Ipam {
    fn default() -> Self {
        Ipam {
            ledger: Ledger::default(),
            subnets_synced: AtomicBool::new(false),
            addresses_synced: AtomicBool::new(false),
            notify: Notify::new(),
            released: tokio::sync::broadcast::channel(1024).0,
        }
    }
}

impl Ipam {
    /// Pools in which an address was released, as they happen. `Lagged` from the
    /// receiver means some were missed: treat every pool as released.
    pub fn released(&self) -> tokio::sync::broadcast::Receiver<PoolKey> {
        self.released.subscribe()
    }

    pub fn synced(&self) -> bool {
        self.subnets_synced.load(Ordering::Acquire) && self.addresses_synced.load(Ordering::Acquire)
    }

    /// Wait until the ledger holds every allocation the API server has.
    pub async fn wait_synced(&self) {
        loop {
            let notified = self.notify.notified();
            if self.synced() {
                return;
            }
            notified.await;
        }
    }

    fn mark(&self, flag: &AtomicBool) {
        flag.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }
}

/// Keep the ledger in step with the API server's allocations, forever.
pub async fn follow(client: Client, ipam: Arc<Ipam>) {
    let subnets = follow_kind(Api::<SubnetAllocation>::all(client.clone()), ipam.clone(), Tracker {
        seen: |l, a| l.subnet_seen(a),
        gone: |i, a| i.ledger.subnet_gone(&a.name_any()),
        retain: Ledger::retain_subnets,
        synced: |i| &i.subnets_synced,
    });
    let addresses = follow_kind(Api::<AddressAllocation>::all(client), ipam, Tracker {
        seen: |l, a| l.address_seen(a),
        gone: |i, a| {
            i.ledger.address_gone(&a.name_any());
            let key = PoolKey { department: a.spec.department.clone(), zone: a.spec.zone.clone(), site: a.spec.site.clone() };
            // No receiver yet (controllers not started) is fine: nobody waits.
            let _ = i.released.send(key);
        },
        retain: Ledger::retain_addresses,
        synced: |i| &i.addresses_synced,
    });
    tokio::join!(subnets, addresses);
}

/// How the ledger takes one kind's watch events.
struct Tracker<K> {
    seen: fn(&Ledger, &K),
    gone: fn(&Ipam, &K),
    retain: fn(&Ledger, &std::collections::HashSet<String>),
    synced: fn(&Ipam) -> &AtomicBool,
}

async fn follow_kind<K>(api: Api<K>, ipam: Arc<Ipam>, t: Tracker<K>)
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let mut relisted = std::collections::HashSet::new();
    watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .for_each(move |ev| {
            match ev {
                Ok(Event::Apply(a)) => (t.seen)(&ipam.ledger, &a),
                Ok(Event::InitApply(a)) => {
                    relisted.insert(a.name_any());
                    (t.seen)(&ipam.ledger, &a);
                }
                Ok(Event::Delete(a)) => (t.gone)(&ipam, &a),
                Ok(Event::InitDone) => {
                    // A re-list after a broken watch: drop what was deleted meanwhile.
                    (t.retain)(&ipam.ledger, &std::mem::take(&mut relisted));
                    ipam.mark((t.synced)(&ipam));
                }
                Ok(Event::Init) => relisted.clear(),
                Err(e) => tracing::warn!(error = %e, kind = %K::kind(&()), "watching allocations failed; retrying"),
            }
            futures::future::ready(())
        })
        .await;
}

/// Labels of an allocation object: who it belongs to, and its family.
pub fn allocation_labels(key: &PoolKey, family: pdc_core::ipam::Family) -> std::collections::BTreeMap<String, String> {
    use pdc_api::labels as l;
    let family = match family {
        pdc_core::ipam::Family::V4 => "ipv4",
        pdc_core::ipam::Family::V6 => "ipv6",
    };
    std::collections::BTreeMap::from([
        (l::MANAGED_BY.to_string(), l::MANAGED_BY_VALUE.to_string()),
        (l::DEPARTMENT.to_string(), key.department.clone()),
        (l::ZONE.to_string(), key.zone.clone()),
        (l::SITE.to_string(), key.site.clone()),
        (l::FAMILY.to_string(), family.to_string()),
    ])
}

use kube::runtime::watcher::watcher;

pub use crate::error::{is_conflict, is_not_found};
