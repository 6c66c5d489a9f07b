//! The one way ferrolb watches a kind into a cache: a watch (with [`super::backoff`]'s retry
//! delay, errors logged by how they read) on a task of its own, each event put into a cache
//! whose reader the caller keeps. The cache is kube-runtime's reflector store or one of our own
//! (the speaker's projected stores): anything that hands out a reader ([`Cache`]).

use kube::runtime::reflector::{Store, store::Writer};
use kube::runtime::watcher;

use super::backoff::spawn_events;

/// The write side of a cache a watch fills, and the reader it hands out (cheap to clone; every
/// clone sees what the writer puts in).
pub trait Cache: Send + 'static {
    type Reader;

    fn reader(&self) -> Self::Reader;
}

impl<K> Cache for Writer<K>
where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    type Reader = Store<K>;

    fn reader(&self) -> Store<K> {
        self.as_reader()
    }
}

/// Watches `api` (`config` selects the objects; `kind` names them in the log) into `cache` on a
/// task of its own: `apply` puts each event into the cache (and tells whoever should hear of
/// it). Returns the cache's reader.
pub fn reflect<K, C: Cache>(
    api: kube::Api<K>,
    config: watcher::Config,
    kind: &'static str,
    mut cache: C,
    mut apply: impl FnMut(&mut C, &watcher::Event<K>) + Send + 'static,
) -> C::Reader
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let reader = cache.reader();
    spawn_events(api, config, kind, move |event| apply(&mut cache, &event));
    reader
}
