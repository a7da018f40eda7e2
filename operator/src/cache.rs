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
