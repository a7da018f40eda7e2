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

/// The ledger and whether its watches have listed everything once.
#[derive(Default)]
pub struct Ipam {
    pub ledger: Ledger,
    subnets_synced: AtomicBool,
    addresses_synced: AtomicBool,
    notify: Notify,
}

impl Ipam {
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
    let subnets = {
        let ipam = ipam.clone();
        let mut relisted_subnets = std::collections::HashSet::new();
        watcher(Api::<SubnetAllocation>::all(client.clone()), watcher::Config::default().any_semantic())
            .default_backoff()
            .for_each(move |ev| {
                match ev {
                    Ok(Event::Apply(a)) => ipam.ledger.subnet_seen(&a),
                    Ok(Event::InitApply(a)) => {
                        relisted_subnets.insert(a.name_any());
                        ipam.ledger.subnet_seen(&a);
                    }
                    Ok(Event::Delete(a)) => ipam.ledger.subnet_gone(&a.name_any()),
                    Ok(Event::InitDone) => {
                        // A re-list after a broken watch: drop what was deleted meanwhile.
                        ipam.ledger.retain_subnets(&std::mem::take(&mut relisted_subnets));
                        ipam.mark(&ipam.subnets_synced);
                    }
                    Ok(Event::Init) => relisted_subnets.clear(),
                    Err(e) => tracing::warn!(error = %e, "watching SubnetAllocations failed; retrying"),
                }
                futures::future::ready(())
            })
    };
    let addresses = {
        let ipam = ipam.clone();
        let mut relisted_addresses = std::collections::HashSet::new();
        watcher(Api::<AddressAllocation>::all(client), watcher::Config::default().any_semantic())
            .default_backoff()
            .for_each(move |ev| {
                match ev {
                    Ok(Event::Apply(a)) => ipam.ledger.address_seen(&a),
                    Ok(Event::InitApply(a)) => {
                        relisted_addresses.insert(a.name_any());
                        ipam.ledger.address_seen(&a);
                    }
                    Ok(Event::Delete(a)) => ipam.ledger.address_gone(&a.name_any()),
                    Ok(Event::InitDone) => {
                        ipam.ledger.retain_addresses(&std::mem::take(&mut relisted_addresses));
                        ipam.mark(&ipam.addresses_synced);
                    }
                    Ok(Event::Init) => relisted_addresses.clear(),
                    Err(e) => tracing::warn!(error = %e, "watching AddressAllocations failed; retrying"),
                }
                futures::future::ready(())
            })
    };
    tokio::join!(subnets, addresses);
}

use kube::runtime::watcher::watcher;

/// Whether a kube error is the API server's "already exists".
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Whether a kube error is "not found".
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}
