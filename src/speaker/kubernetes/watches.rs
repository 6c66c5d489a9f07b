//! The speaker's watch caches: each kind it reads, watched into its cache, and the start that
//! waits for their first lists.

use std::future::Future;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::DynamicObject;
use kube::runtime::reflector::{self, Store as ReflectorStore};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use tracing::{info, warn};

use crate::k8s::metallb::{ConfigSource, KINDS, Kind, L2, POOL};
use crate::k8s::reflect::reflect;
use crate::k8s::source_hint::tell_if_not_served;

use super::cache::{self, Changes, NodeView, ServiceView, SliceView, Watched};
use super::config_load::MetallbStores;
use super::reconcile::Stores;
use super::store::{self, Decoded, Store};
use super::{KubeOptions, KubeSpeakerError, OPTIONAL_KIND_WAIT};

/// Starts every watch and waits for their first lists (a BGP kind: a while at most).
pub(super) async fn stores(
    client: &Client,
    options: &KubeOptions,
    changes: &Changes,
) -> Result<Stores, KubeSpeakerError> {
    let client = client.clone();
    let services = watch_view(
        Api::<Decoded<ServiceView>>::all(client.clone()),
        changes,
        "Service",
    );
    let slices = watch_view(
        Api::<Decoded<SliceView>>::all(client.clone()),
        changes,
        "EndpointSlice",
    );
    let nodes = watch_view(
        Api::<Decoded<NodeView>>::all(client.clone()),
        changes,
        "Node",
    );
    let (configmaps, metallb) = match options.config_source {
        ConfigSource::Configmap => {
            let store = watch_whole(
                Api::<ConfigMap>::namespaced(client.clone(), &options.namespace),
                watcher::Config::default()
                    .fields(&format!("metadata.name={}", options.config_name)),
                reflector::store::Writer::default(),
                changes,
                "ConfigMap",
                true,
            );
            synced(store.wait_until_ready(), "ConfigMap").await?;
            (store, None)
        }
        ConfigSource::Crds => {
            // A cluster without MetalLB's CRDs (a switch from the legacy ConfigMap): said once,
            // with what to do, while the watches below wait for the kinds.
            let hint_client = client.clone();
            let namespace = options.namespace.clone();
            tokio::spawn(async move {
                let configmaps = Api::<ConfigMap>::namespaced(hint_client.clone(), &namespace);
                tell_if_not_served(&hint_client, configmaps, "speaker", &namespace).await
            });
            let pools = watch_metallb(&client, &options.namespace, POOL, changes);
            let l2 = watch_metallb(&client, &options.namespace, L2, changes);
            synced(pools.wait_until_ready(), "IPAddressPool").await?;
            synced(l2.wait_until_ready(), "L2Advertisement").await?;
            // The BGP kinds: each waited for a while, then read as empty until its CRD is
            // served (a cluster that never installed MetalLB's BGP CRDs).
            let mut bgp = Vec::new();
            for kind in KINDS.into_iter().filter(|k| !k.required) {
                let store = watch_metallb(&client, &options.namespace, kind, changes);
                let ready = tokio::time::timeout(OPTIONAL_KIND_WAIT, store.wait_until_ready());
                if ready.await.is_err() {
                    warn!(
                        kind = kind.kind,
                        "not served yet; read as empty until it is"
                    );
                }
                bgp.push((kind, store));
            }
            let secrets = watch_secrets(&client, &options.namespace, changes);
            let listed = tokio::time::timeout(OPTIONAL_KIND_WAIT, secrets.wait_until_ready());
            if listed.await.is_err() {
                warn!("Secrets not listed yet: a passwordSecret waits for them");
            }
            let stores = MetallbStores {
                namespace: options.namespace.clone(),
                pools,
                l2,
                bgp,
                secrets,
            };
            (reflector::store().0, Some(stores))
        }
    };
    let speakers = watch_whole(
        Api::<Pod>::namespaced(client.clone(), &options.namespace),
        watcher::Config::default().labels(&options.speaker_labels),
        reflector::store::Writer::default(),
        changes,
        "Pod",
        false,
    );
    synced(services.wait_until_ready(), "Service").await?;
    synced(slices.wait_until_ready(), "EndpointSlice").await?;
    synced(nodes.wait_until_ready(), "Node").await?;
    synced(speakers.wait_until_ready(), "Pod").await?;
    info!("caches synced");
    let stores = Stores {
        services,
        slices,
        nodes,
        configmaps,
        speakers,
        metallb,
        changes: changes.clone(),
    };
    Ok(stores)
}

/// Watches a projected kind into its cache, recording in `changes` what each event changed.
fn watch_view<K: Watched>(api: Api<Decoded<K>>, changes: &Changes, what: &'static str) -> Store<K> {
    let changes = changes.clone();
    let writer = store::Writer::default();
    reflect(
        api,
        watcher::Config::default(),
        what,
        writer,
        move |w, e| cache::apply(w, &changes, e),
    )
}

/// Watches a kind whose every change concerns the whole pass (`config`: the config objects,
/// loaded again; otherwise a pass runs and compares what it reads).
fn watch_whole<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: reflector::store::Writer<K>,
    changes: &Changes,
    what: &'static str,
    is_config: bool,
) -> ReflectorStore<K>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let changes = changes.clone();
    reflect(api, config, what, writer, move |writer, event| {
        cache::apply_whole(writer, &changes, event, is_config)
    })
}

/// A cache of one MetalLB kind in `namespace`.
fn watch_metallb(
    client: &Client,
    namespace: &str,
    kind: Kind,
    changes: &Changes,
) -> ReflectorStore<DynamicObject> {
    let resource = kind.api_resource();
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource);
    let writer = reflector::store::Writer::new(resource);
    watch_whole(
        api,
        watcher::Config::default(),
        writer,
        changes,
        kind.kind,
        true,
    )
}

/// Waits for a cache's first complete list (`ready`: its `wait_until_ready`); the error names
/// the kind whose watch stopped.
async fn synced<E>(
    ready: impl Future<Output = Result<(), E>>,
    what: &'static str,
) -> Result<(), KubeSpeakerError> {
    ready.await.map_err(|_| KubeSpeakerError::Watch(what))
}

/// The `kubernetes.io/basic-auth` Secrets of the namespace: a BGPPeer's `passwordSecret` is
/// read from them (a change is a config change: the sessions are set again).
fn watch_secrets(client: &Client, namespace: &str, changes: &Changes) -> ReflectorStore<Secret> {
    watch_whole(
        Api::<Secret>::namespaced(client.clone(), namespace),
        watcher::Config::default().fields("type=kubernetes.io/basic-auth"),
        reflector::store::Writer::default(),
        changes,
        "Secret",
        true,
    )
}
