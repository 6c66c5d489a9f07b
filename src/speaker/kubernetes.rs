//! `ferrolb speaker` in Kubernetes: watches Services, EndpointSlices, Nodes and the ConfigMap,
//! runs gossip with the other speakers (seeded with the Nodes' InternalIPs, since speakers run
//! on the host network), elects per Service and drives the announcer.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::membership::{
    KeyError, MemberlistKey, Membership, MembershipConfig, MembershipError, MembershipHandle,
    SwimTiming, joined_differs,
};
use crate::telemetry::{Health, TextRegistry};

use super::announcer::{AnnouncerOptions, OwnedSet};
use super::cluster::{self, ViewOptions};
use super::election_gate::ElectionGate;
use super::metrics::{AnnouncedMetric, Layer2Metrics};
use super::publish::{publish, spawn_announcer};
use super::reconcile::{EventWriter, Reconciler, Stores, ready};

#[derive(Debug, Clone)]
pub struct KubeOptions {
    pub node_name: String,
    pub namespace: String,
    pub config_name: String,
    pub view: ViewOptions,
    /// `None` = `--gossip=false`: liveness from the Node Ready condition.
    pub gossip: Option<GossipOptions>,
    pub announcer: AnnouncerOptions,
}

#[derive(Debug, Clone)]
pub struct GossipOptions {
    pub port: u16,
    /// `--host-ip`: the address the other speakers reach this one at.
    pub host_ip: IpAddr,
    pub key_file: Option<PathBuf>,
    pub timing: SwimTiming,
}

#[derive(Debug, Error)]
pub enum KubeSpeakerError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Membership(#[from] MembershipError),
    #[error("cannot register metrics")]
    Metrics(#[from] prometheus::Error),
    #[error("the {0} watch stopped before its first list completed")]
    Watch(&'static str),
}

/// Starts a reflector for `api` that pokes `dirty` on every change.
fn watch_kind<K>(
    api: Api<K>,
    config: watcher::Config,
    dirty: mpsc::Sender<()>,
    what: &'static str,
) -> Store<K>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                warn!(kind = what, error = %crate::telemetry::error_chain(&e), "watch error; retrying with backoff");
                continue;
            }
            // A full channel already holds a pending poke, which is all we need.
            let _ = dirty.try_send(());
        }
    });
    reader
}

/// Waits for a store's first complete list; the error names the kind whose watch stopped.
async fn synced<K>(store: &Store<K>, what: &'static str) -> Result<(), KubeSpeakerError>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store
        .wait_until_ready()
        .await
        .map_err(|_| KubeSpeakerError::Watch(what))
}

/// Runs until `shutdown`, then releases every IP, leaves gossip and returns.
pub async fn run(
    client: Client,
    options: KubeOptions,
    registry: &prometheus::Registry,
    text: &TextRegistry,
    health: Health,
    shutdown: impl Future<Output = ()>,
) -> Result<(), KubeSpeakerError> {
    let l2_metrics = Layer2Metrics::new(text);
    let announced = AnnouncedMetric::new(text);
    let (dirty_tx, mut dirty) = mpsc::channel::<()>(1);
    let services = watch_kind(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        dirty_tx.clone(),
        "Service",
    );
    let slices = watch_kind(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default(),
        dirty_tx.clone(),
        "EndpointSlice",
    );
    let nodes = watch_kind(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        dirty_tx.clone(),
        "Node",
    );
    let configmaps = watch_kind(
        Api::<ConfigMap>::namespaced(client.clone(), &options.namespace),
        watcher::Config::default().fields(&format!("metadata.name={}", options.config_name)),
        dirty_tx.clone(),
        "ConfigMap",
    );
    drop(dirty_tx);
    synced(&services, "Service").await?;
    synced(&slices, "EndpointSlice").await?;
    synced(&nodes, "Node").await?;
    synced(&configmaps, "ConfigMap").await?;
    info!("caches synced");
    let stores = Stores {
        services,
        slices,
        nodes,
        configmaps,
    };

    let membership = match &options.gossip {
        Some(g) => {
            let key = MemberlistKey::load(g.key_file.as_deref())?;
            let handle = Membership::start(MembershipConfig {
                node_name: options.node_name.clone(),
                bind_addr: SocketAddr::new(g.host_ip, g.port),
                advertise_addr: None,
                seeds: seeds(&stores.nodes(), g.port),
                key,
                timing: g.timing.clone(),
            })
            .await?;
            crate::membership::register_metrics(registry, &handle)?;
            Some(handle)
        }
        None => None,
    };
    let mut members = membership.as_ref().map(MembershipHandle::members);
    let mut stats = membership.as_ref().map(MembershipHandle::stats_watch);

    let (owned_tx, mut sockets_rx, announcer_task) =
        spawn_announcer(options.announcer.clone(), l2_metrics);

    let me = options.node_name.clone();
    let events = EventWriter::new(client.clone(), me.clone()).spawn();
    let mut reconciler = Reconciler::new(me.clone(), options.view.clone(), stores);
    let mut gossip_seeds = Vec::new();
    let mut gate =
        ElectionGate::new(membership.is_some() && reconciler.stores().nodes.state().len() > 1);
    tokio::pin!(shutdown);
    loop {
        let now = std::time::Instant::now();
        if let Some(stats) = &stats {
            gate.observe(stats.borrow().joined, now);
        }
        if let (Some(m), Some(g)) = (&membership, &options.gossip) {
            let wanted = seeds(&reconciler.stores().nodes(), g.port);
            if wanted != gossip_seeds {
                gossip_seeds = wanted.clone();
                m.set_seeds(wanted).await;
            }
        }
        let live = members.as_ref().map(|m| m.borrow().clone());
        let pass = reconciler.pass(live.as_ref(), gate.may_elect(now));
        if let Some(before) = &pass.changed_from {
            apply(&owned_tx, &announced, &me, before, reconciler.owned());
        }
        events.send(pass.assigned);
        health.set_ready(ready(
            *sockets_rx.borrow(),
            membership.is_some(),
            gate.joined(),
            reconciler.stores().nodes.state().len(),
        ));

        let wake = gate.next_check(now).map(tokio::time::Instant::from_std);
        tokio::select! {
            _ = &mut shutdown => break,
            Some(()) = dirty.recv() => {}
            Some(r) = changed(&mut members) => if r.is_err() { warn!("gossip stopped"); break },
            Some(r) = async {
                match &mut stats {
                    Some(rx) => Some(joined_differs(rx, gate.joined()).await),
                    None => std::future::pending().await,
                }
            } => if r.is_err() { warn!("gossip stopped"); break },
            _ = sockets_rx.changed() => {}
            _ = async { match wake { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } } => {}
        }
    }
    info!("shutting down: releasing every IP and leaving the gossip cluster");
    apply(
        &owned_tx,
        &announced,
        &me,
        reconciler.owned(),
        &BTreeMap::new(),
    );
    health.set_ready(false);
    if let Some(m) = &membership {
        m.leave().await;
    }
    drop(owned_tx);
    let _ = announcer_task.await;
    Ok(())
}

async fn changed<T>(
    rx: &mut Option<watch::Receiver<T>>,
) -> Option<Result<(), watch::error::RecvError>> {
    match rx {
        Some(rx) => Some(rx.changed().await),
        None => std::future::pending().await,
    }
}

fn seeds(nodes: &[Node], port: u16) -> Vec<SocketAddr> {
    let mut s: Vec<SocketAddr> = nodes
        .iter()
        .filter_map(cluster::node_address)
        .map(|ip| SocketAddr::new(ip, port))
        .collect();
    s.sort();
    s
}

fn apply(
    owned_tx: &watch::Sender<OwnedSet>,
    announced: &AnnouncedMetric,
    me: &str,
    before: &BTreeMap<IpAddr, String>,
    after: &BTreeMap<IpAddr, String>,
) {
    info!(owned = after.len(), "ownership changed");
    publish(owned_tx, announced, me, before, after);
}
