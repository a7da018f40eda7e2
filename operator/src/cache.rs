//! Caches whose changes wake a controller.

use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use crate::department::spec_or_lifecycle;

/// A cache of `K` and the stream of its changes that call for work: spec,
/// finalizers, deletion (status writes do not). The cache is updated before a
/// change is passed on, so a reconcile always sees what woke it. Managed fields are
/// dropped from the cache.
pub fn watch<K>(client: Client) -> (Store<K>, impl futures::Stream<Item = std::result::Result<K, watcher::Error>> + Send + 'static)
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = kube::runtime::reflector::store();
    let stream = watcher(Api::<K>::all(client), watcher::Config::default())
        .default_backoff()
        .modify(|o| o.meta_mut().managed_fields = None)
        .reflect(writer)
        .touched_objects()
        .predicate_filter(spec_or_lifecycle, Default::default());
    (reader, stream)
}

/// Whether a cache holds its first full list. A cache that has not is empty, not
/// "nothing exists": work that reads it waits (a writer that took an unsynced cache
/// of records for the truth would remove names; a VM controller that took an
/// unsynced cache of DR plans for "no plan" would start a fenced VM).
pub fn synced<K>(store: &Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    use futures::FutureExt;
    store.wait_until_ready().now_or_never().is_some_and(|r| r.is_ok())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher::Event;

    use super::synced;

    #[test]
    fn a_cache_is_synced_only_after_its_first_full_list() {
        let (reader, mut writer) = kube::runtime::reflector::store::<ConfigMap>();
        assert!(!synced(&reader));
        writer.apply_watcher_event(&Event::Init);
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("a".into());
        cm.metadata.namespace = Some("b".into());
        writer.apply_watcher_event(&Event::InitApply(cm));
        assert!(!synced(&reader), "a list still arriving is not the truth");
        writer.apply_watcher_event(&Event::InitDone);
        assert!(synced(&reader));
    }
}
