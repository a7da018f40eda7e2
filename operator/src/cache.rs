//! Caches whose changes wake a controller.

use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use crate::department::spec_or_lifecycle;
use crate::health;

/// What a cached object keeps of its metadata: no managed fields and no
/// `kubectl apply` copy of the whole object. Both are often larger than the rest of
/// the object, and nothing in the operator reads them (server-side apply keeps field
/// ownership on the API server). Every reflector of the operator passes its objects
/// through this.
pub fn slim<K: kube::Resource>(o: &mut K) {
    let m = o.meta_mut();
    m.managed_fields = None;
    if let Some(a) = m.annotations.as_mut() {
        a.remove(LAST_APPLIED);
        if a.is_empty() {
            m.annotations = None;
        }
    }
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A slim cache of the `K` that `config` selects and the watch events that fill it:
/// the cache is updated before an event is passed on, so a reconcile always sees
/// what woke it. The watch reports to the process's [`health`] registry as
/// `watch of <plural>` (with its label selector, if any).
pub fn reflected<K>(client: Client, config: watcher::Config) -> (Store<K>, impl futures::Stream<Item = std::result::Result<watcher::Event<K>, watcher::Error>> + Send + 'static)
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let name = match &config.label_selector {
        Some(selector) => format!("watch of {} ({selector})", K::plural(&())),
        None => format!("watch of {}", K::plural(&())),
    };
    let (reader, writer) = kube::runtime::reflector::store();
    let events = watcher(Api::<K>::all(client), config).default_backoff().modify(slim).reflect(writer);
    (reader, health::watched(events, health::global().register(&name)))
}

/// A cache of `K` and the stream of its changes that call for work: spec,
/// finalizers, deletion (status writes do not), deletions included.
pub fn watch<K>(client: Client) -> (Store<K>, impl futures::Stream<Item = std::result::Result<K, watcher::Error>> + Send + 'static)
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (reader, events) = reflected(client, watcher::Config::default());
    (reader, events.touched_objects().predicate_filter(spec_or_lifecycle, Default::default()))
}

/// A controller of `K` over a slim cache, woken when `predicate`'s value for an
/// object changes (e.g. [`spec_or_lifecycle`]: status writes, the operator's own
/// included, do not wake it).
pub fn controller<K>(client: Client, predicate: fn(&K) -> Option<u64>) -> kube::runtime::Controller<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (reader, events) = reflected(client, watcher::Config::default());
    kube::runtime::Controller::for_stream(events.applied_objects().predicate_filter(predicate, Default::default()), reader)
}

/// Every object of a cache, owned: for engines that take plain objects.
pub fn cloned<K>(store: &Store<K>) -> Vec<K>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.state().iter().map(|o| K::clone(o)).collect()
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
    fn a_slim_object_keeps_everything_but_field_ownership_and_the_kubectl_copy() {
        use kube::api::ObjectMeta;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
        let mut cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some("a".into()),
                annotations: Some([("kubectl.kubernetes.io/last-applied-configuration".to_string(), "{}".to_string()), ("pdc.io/x".to_string(), "y".to_string())].into()),
                managed_fields: Some(vec![ManagedFieldsEntry { manager: Some("kubectl".into()), ..Default::default() }]),
                ..Default::default()
            },
            data: Some([("k".to_string(), "v".to_string())].into()),
            ..Default::default()
        };
        super::slim(&mut cm);
        assert_eq!(cm.metadata.managed_fields, None);
        assert_eq!(cm.metadata.annotations, Some([("pdc.io/x".to_string(), "y".to_string())].into()));
        assert_eq!(cm.data, Some([("k".to_string(), "v".to_string())].into()));
        cm.metadata.annotations = Some([("kubectl.kubernetes.io/last-applied-configuration".to_string(), "{}".to_string())].into());
        super::slim(&mut cm);
        assert_eq!(cm.metadata.annotations, None, "no empty map is kept");
    }

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
