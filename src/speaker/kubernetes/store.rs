//! The speaker's object caches: a map from each object's key to its projection, fed by a
//! watch, and nothing else.
//!
//! Every speaker caches every Service, EndpointSlice and Node of the cluster, so what a cached
//! object costs is the speaker's memory. kube-runtime's reflector store keeps each object whole
//! (its `ObjectMeta`, 360 bytes before any string, is what its `Resource` trait hands out) under
//! an `ObjectRef` key of four strings. This store keeps only the projection ([`View`]), under
//! the key the projection already holds (`namespace/name`, shared, not copied).
//!
//! The watch still needs each object's resourceVersion to resume: it decodes into a
//! [`Decoded`], the projection plus a name-and-version `ObjectMeta` that lives only as long as
//! the event. A re-list replaces the cache as a whole when it completes (as the reflector
//! does), sharing every projection that did not change with the old cache.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::watcher;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use tokio::sync::watch;

/// A projection of an API object, as a cache keeps it.
pub trait View: Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static {
    /// The API type the projection reads.
    type Object: Resource<DynamicType = ()>;

    /// What the watch decodes: the fields of `Object` the projection reads
    /// ([`super::wire`]), every other field skipped while decoding.
    type Wire: DeserializeOwned + Into<Self::Object>;

    fn project(object: Self::Object) -> Self;

    /// Its key in the cache: `namespace/name`, or the name of a cluster-scoped object.
    fn key(&self) -> &Arc<str>;
}

/// What a watch decodes: the projection, and the name and resourceVersion the watch itself
/// reads (never cached).
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded<V> {
    metadata: ObjectMeta,
    pub view: V,
}

impl<V: View> Decoded<V> {
    pub fn new(object: V::Object) -> Self {
        let meta = object.meta();
        let metadata = ObjectMeta {
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
            resource_version: meta.resource_version.clone(),
            ..ObjectMeta::default()
        };
        Self {
            metadata,
            view: V::project(object),
        }
    }
}

impl<'de, V: View> Deserialize<'de> for Decoded<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        V::Wire::deserialize(d).map(|wire| Self::new(wire.into()))
    }
}

impl<V: View> Resource for Decoded<V> {
    type DynamicType = ();
    type Scope = <V::Object as Resource>::Scope;

    fn kind(_: &()) -> Cow<'_, str> {
        V::Object::kind(&())
    }

    fn group(_: &()) -> Cow<'_, str> {
        V::Object::group(&())
    }

    fn version(_: &()) -> Cow<'_, str> {
        V::Object::version(&())
    }

    fn plural(_: &()) -> Cow<'_, str> {
        V::Object::plural(&())
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

type Map<V> = HashMap<Arc<str>, Arc<V>>;

/// The read side of a cache (cheap to clone; every clone sees the same objects).
#[derive(Clone)]
pub struct Store<V> {
    map: Arc<RwLock<Map<V>>>,
    ready: watch::Receiver<bool>,
}

impl<V> std::fmt::Debug for Store<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// The watch has ended: the cache will not fill.
#[derive(Debug, thiserror::Error)]
#[error("the watch feeding this cache has stopped")]
pub struct WatchStopped;

fn read<V>(map: &RwLock<Map<V>>) -> std::sync::RwLockReadGuard<'_, Map<V>> {
    // Writers replace whole entries, so a poisoned map is still consistent.
    map.read().unwrap_or_else(PoisonError::into_inner)
}

impl<V> Store<V> {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Map<V>> {
        read(&self.map)
    }

    /// Every cached object, in no particular order.
    pub fn state(&self) -> Vec<Arc<V>> {
        self.read().values().cloned().collect()
    }

    pub fn get(&self, key: &str) -> Option<Arc<V>> {
        self.read().get(key).cloned()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the first complete list is in.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Resolves once the first complete list is in.
    pub async fn wait_until_ready(&self) -> Result<(), WatchStopped> {
        let mut ready = self.ready.clone();
        ready
            .wait_for(|r| *r)
            .await
            .map(|_| ())
            .map_err(|_| WatchStopped)
    }
}

/// The write side of a cache, owned by its watch task.
pub struct Writer<V> {
    map: Arc<RwLock<Map<V>>>,
    ready: watch::Sender<bool>,
    reader: watch::Receiver<bool>,
    /// The re-list in progress.
    relist: Option<Map<V>>,
}

impl<V: View> Default for Writer<V> {
    fn default() -> Self {
        let (ready, reader) = watch::channel(false);
        Self {
            map: Arc::default(),
            ready,
            reader,
            relist: None,
        }
    }
}

impl<V: View> crate::k8s::reflect::Cache for Writer<V> {
    type Reader = Store<V>;

    fn reader(&self) -> Store<V> {
        self.as_reader()
    }
}

impl<V: View> Writer<V> {
    pub fn as_reader(&self) -> Store<V> {
        Store {
            map: self.map.clone(),
            ready: self.reader.clone(),
        }
    }

    /// The cached projection under `key`.
    pub fn get(&self, key: &str) -> Option<Arc<V>> {
        read(&self.map).get(key).cloned()
    }

    /// Puts one watch event in the cache.
    pub fn apply(&mut self, event: &watcher::Event<Decoded<V>>) {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Apply(d) => {
                map.insert(d.view.key().clone(), Arc::new(d.view.clone()));
            }
            watcher::Event::Delete(d) => {
                map.remove(&**d.view.key());
            }
            watcher::Event::Init => self.relist = Some(Map::new()),
            watcher::Event::InitApply(d) => {
                let view = match map.get(&**d.view.key()) {
                    // Unchanged: share the cached one rather than hold it twice.
                    Some(old) if **old == d.view => old.clone(),
                    _ => Arc::new(d.view.clone()),
                };
                self.relist
                    .get_or_insert_with(Map::new)
                    .insert(d.view.key().clone(), view);
            }
            watcher::Event::InitDone => {
                let mut fresh = self.relist.take().unwrap_or_default();
                fresh.shrink_to_fit();
                *map = fresh;
                drop(map);
                self.ready.send_replace(true);
            }
        }
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
