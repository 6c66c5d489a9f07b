//! `ferrolb speaker` in Kubernetes: watches Services, EndpointSlices, Nodes and the ConfigMap,
//! runs gossip with the other speakers (seeded with the Nodes' InternalIPs, since speakers run
//! on the host network), elects per Service and drives the announcer.

pub mod bgp_events;
pub mod bgp_routes;
pub mod bgp_side;
pub mod cache;
pub mod candidacy;
pub mod cluster;
pub mod config_load;
pub mod events;
pub mod holders;
pub mod l2status;
pub mod l2status_edge;
pub mod reconcile;
pub mod status;
pub mod store;
pub mod unannounced;
mod watches;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use kube::Client;
use thiserror::Error;
use tokio::sync::watch;
use tracing::info;

use crate::gossip::{
    Gossip, GossipConfig, GossipError, GossipHandle, KeyError, KeyFiles, SwimTiming, joined_differs,
};
use crate::k8s::metallb::ConfigSource;
use crate::runtime::sleep_until;
use crate::telemetry::{Health, TextRegistry, ThreadTime};

use super::announcer::{AnnouncerOptions, OwnedSet};
use super::bgp_metrics::BgpMetrics;
use super::election_gate::{ElectionGate, SettledMembers};
use super::link_state::others_up;
use super::metrics::{
    AnnouncedMetric, CandidateMetric, Layer2Metrics, ServiceIpsMetric, VerifyMetrics,
};
use super::owned::Owned;
use super::publish::{publish_scoped, spawn_announcer};
use super::verify::Verification;
use crate::metrics::{ConfigMetrics, Naming};
use bgp_side::BgpSide;
use cache::Changes;
use candidacy::{config_state, no_config_warning, ready, take_part, verification_warnings};
use cluster::ViewOptions;
use events::EventWriter;
use l2status_edge::{Inputs, StatusWriter};
use reconcile::Reconciler;
use status::bgp::{self as bgp_status, BgpInputs};
use unannounced::UnannouncedMetric;

/// The API writes that follow a change of what this node announces (its ServiceL2Status
/// objects, its events) start this long after the change, and changes within it join them: a
/// takeover's first second belongs to answering ARP and NDP, not to thousands of API calls.
pub const WRITE_SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a start waits for the first list of a BGP kind before reading it as empty.
const OPTIONAL_KIND_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct KubeOptions {
    pub node_name: String,
    /// `--pod-name`: owner of the ServiceL2Status objects.
    pub pod_name: Option<String>,
    pub namespace: String,
    pub config_source: ConfigSource,
    pub config_name: String,
    /// `--ml-labels`: label selector of the speaker pods in `namespace`.
    pub speaker_labels: String,
    pub view: ViewOptions,
    /// `None` = `--gossip=false`: liveness from the Node Ready condition.
    pub gossip: Option<GossipOptions>,
    pub announcer: AnnouncerOptions,
    /// `--link-debounce-ms`: how long a link stays down before it counts as down.
    pub link_debounce: std::time::Duration,
    /// Metric names: ferrolb's or MetalLB's.
    pub naming: Naming,
    /// `--bgp-listen-port`: where the BGP peers' own connections are taken (0: dial only).
    pub bgp_listen_port: u16,
}

#[derive(Debug, Clone)]
pub struct GossipOptions {
    pub port: u16,
    /// `--host-ip`: the address the other speakers reach this one at.
    pub host_ip: IpAddr,
    pub keys: KeyFiles,
    pub timing: SwimTiming,
}

#[derive(Debug, Error)]
pub enum KubeSpeakerError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Gossip(#[from] GossipError),
    #[error("cannot register metrics")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    GossipStopped(#[from] super::GossipStopped),
    #[error("the {0} watch stopped before its first list completed")]
    Watch(&'static str),
}

/// Waits while the key file does not exist: the chart mounts the Secret as an optional volume and
/// the controller creates the Secret on first install, so a speaker may start before it and the
/// kubelet fills the volume in later. Other read errors are left to `load`, which reports them.
async fn wait_for_key_file(keys: &KeyFiles) {
    if !keys.key_file_missing() {
        return;
    }
    let file = keys.key.as_deref().map(|p| p.display().to_string());
    info!(
        file = file.as_deref().unwrap_or("-"),
        "gossip key file missing (the memberlist Secret may not be created yet); waiting for it"
    );
    while keys.key_file_missing() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    info!("gossip key file appeared");
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
    let l2_metrics = Layer2Metrics::with_names(text, options.naming);
    let announced = AnnouncedMetric::with_names(text, options.naming);
    let service_ips = ServiceIpsMetric::register(registry, options.naming)?;
    let candidate_metric = CandidateMetric::register(registry, options.naming)?;
    let config_metrics = ConfigMetrics::register(registry, options.naming)?;
    let unannounced = UnannouncedMetric::new(text);
    let changes = Changes::default();
    let stores = watches::stores(&client, &options, &changes).await?;

    let membership = match &options.gossip {
        Some(g) => {
            wait_for_key_file(&g.keys).await;
            let keys = g.keys.load()?;
            let handle = Gossip::start(GossipConfig {
                node_name: options.node_name.clone(),
                bind_addr: SocketAddr::new(g.host_ip, g.port),
                advertise_addr: None,
                seeds: seeds(&stores.node_addresses(), g.port),
                keys,
                reload: g.keys.reloadable().then(|| g.keys.clone()),
                timing: g.timing.clone(),
                // In once the first pass shows a config this speaker can announce with.
                withdrawn: true,
            })
            .await?;
            crate::gossip::register_metrics(registry, &handle)?;
            Some(handle)
        }
        None => None,
    };
    let mut members = membership.as_ref().map(GossipHandle::members);
    let mut stats = membership.as_ref().map(GossipHandle::stats_watch);

    let me = options.node_name.clone();
    let announcer = spawn_announcer(options.announcer.clone(), l2_metrics);
    let (owned_tx, mut sockets_rx, announcer_task) =
        (announcer.owned, announcer.sockets, announcer.task);
    let mut verify = Verification::new(
        me.clone(),
        options.announcer.answer_checks_per_second,
        options.announcer.excludes.clone(),
        announcer.heal,
        Some(VerifyMetrics::register(registry, options.naming)?),
    );
    let events = EventWriter::new(client.clone(), me.clone()).spawn();
    let mut reconciler = Reconciler::new(me.clone(), options.view.clone(), stores)
        .with_config_metrics(config_metrics);
    let (status_tx, status_rx) = watch::channel(Inputs::default());
    let status_task = StatusWriter {
        client: client.clone(),
        namespace: options.namespace.clone(),
        me: me.clone(),
        pod_name: options.pod_name.clone(),
    }
    .spawn(status_rx);
    // BGP: every eligible node announces to its peers (no election), and writes its
    // ServiceBGPStatus objects.
    let mut bgp = BgpSide::new(
        &me,
        BgpMetrics::with_names(text, options.naming),
        options.bgp_listen_port,
    );
    let mut bgp_pending = true;
    let (bgp_status_tx, bgp_status_rx) = watch::channel(BgpInputs::default());
    let bgp_status_task = StatusWriter {
        client: client.clone(),
        namespace: options.namespace.clone(),
        me: me.clone(),
        pod_name: options.pod_name.clone(),
    }
    .spawn(bgp_status_rx);
    let mut own_interfaces = None;
    let mut links = super::links::OwnLinks::new(options.link_debounce, membership.as_ref());
    // The ServiceL2Status objects this node should hold, built again only when what they are
    // made of changed (not on every wake-up): then an unchanged set compares by pointer.
    let mut desired = std::sync::Arc::new(BTreeMap::new());
    let mut desired_from = None;
    let mut gossip_seeds = Vec::new();
    let reads_claims = !options.view.placement.is_ranked();
    let mut gate = ElectionGate::new(membership.is_some() && reconciler.others_expected())
        .needing_claims(reads_claims);
    let mut settled = SettledMembers::default();
    // Whether this speaker takes part in the elections (`None` before the first pass).
    let mut candidate: Option<bool> = None;
    tokio::pin!(shutdown);
    let end = loop {
        let now = std::time::Instant::now();
        let others_expected = reconciler.others_expected();
        gate.set_needs_join(membership.is_some() && others_expected);
        if let Some(stats) = &stats {
            gate.observe(stats.borrow().joined, now);
        }
        if let (Some(m), Some(g)) = (&membership, &options.gossip) {
            let wanted = seeds(&reconciler.stores().node_addresses(), g.port);
            if wanted != gossip_seeds {
                gossip_seeds = wanted.clone();
                m.set_seeds(wanted).await;
            }
        }
        // Every live member (ServiceL2Status objects of the others), and those the election
        // counts: a member that just appeared only after it settled.
        let live = members.as_ref().map(|m| m.borrow().clone());
        let counted = live.as_ref().map(|l| settled.observe(l, &me, now));
        if let Some(up) = links
            .refresh(&options.announcer.excludes, membership.as_ref(), now)
            .await
        {
            own_interfaces = Some(up.clone());
            reconciler.set_own_interfaces(up);
        }
        let states = links.states();
        reconciler.set_claims(super::links::claims_of(&states, &me));
        let heard = live
            .iter()
            .flatten()
            .all(|m| *m == me || states.contains_key(m));
        gate.observe_states(heard, now);
        reconciler.set_other_interfaces(others_up(&states, &me));
        let owned_now = reconciler.owned().keys().copied().collect();
        reconciler.set_withdrawn(verify.withdrawn(&states, &owned_now, now));
        let pass_started = std::time::Instant::now();
        let thread_before = ThreadTime::now();
        let may_elect = gate.may_elect(now) && !verify.withdrawn_from_all();
        let pass = reconciler.pass_at(counted.as_ref(), may_elect, now);
        // How long this wake-up took to a decision: the pass (its own work, and the time this
        // thread waited for a core meanwhile), and before it the interface scan (a takeover's
        // latency after gossip declares the owner down).
        let took = Took {
            woke: now.elapsed(),
            pass: pass_started.elapsed(),
            thread: thread_before
                .zip(ThreadTime::now())
                .map(|(b, a)| a.since(b)),
            evaluated: pass.evaluated,
        };
        if pass.elected > 0 {
            tracing::debug!(
                evaluated = pass.evaluated,
                elected = pass.elected,
                "services decided again"
            );
        }
        let can_announce = reconciler.can_announce();
        verify.take_part(membership.as_ref(), can_announce).await;
        verify.check(reconciler.targets_version(), reconciler.targets(), &states);
        let (silent, deafened) = verify.news();
        let pod = options.pod_name.as_deref();
        events.send(verification_warnings(&reconciler, pod, silent, deafened));
        if candidate != Some(can_announce) {
            take_part(&membership, can_announce, candidate.is_some()).await;
            if !can_announce {
                events.send(vec![no_config_warning(
                    &reconciler,
                    options.pod_name.as_deref(),
                )]);
                // Coming back, it waits to hear the others again before electing.
                gate = ElectionGate::new(membership.is_some() && others_expected)
                    .needing_claims(reads_claims);
            }
            candidate_metric.set(can_announce);
            candidate = Some(can_announce);
        }
        let remade = pass.changed_from.is_some()
            || pass.announced_changed
            || !desired_from.as_ref().is_some_and(|(only_on, own)| {
                only_on == reconciler.only_on() && *own == own_interfaces
            });
        if let Some(before) = &pass.changed_from {
            apply(
                &owned_tx,
                &announced,
                &me,
                before,
                reconciler.owned(),
                reconciler.only_on(),
                Some(took),
            );
        } else if remade
            && owned_tx.borrow().as_ref()
                != &Owned::new(reconciler.owned().keys().copied(), reconciler.only_on())
        {
            // Same IPs, other interfaces (an advertisement's `interfaces` changed).
            apply(
                &owned_tx,
                &announced,
                &me,
                reconciler.owned(),
                reconciler.owned(),
                reconciler.only_on(),
                Some(took),
            );
        }
        verify.heal();
        links
            .publish_news(membership.as_ref(), verify.gossiped(), reconciler.claimed())
            .await;
        unannounced.set(reconciler.unannounced());
        if remade {
            desired = std::sync::Arc::new(l2status::desired(
                reconciler.announced(),
                reconciler.only_on(),
                own_interfaces.as_ref(),
            ));
            desired_from = Some((reconciler.only_on().clone(), own_interfaces.clone()));
        }
        status_tx.send_if_modified(|inputs| {
            let next = Inputs {
                desired: desired.clone(),
                alive: match &live {
                    Some(l) => l.iter().cloned().chain([me.clone()]).collect(),
                    None => reconciler.speaker_nodes(),
                },
                config: config_state(&reconciler),
            };
            (*inputs != next).then(|| *inputs = next).is_some()
        });
        bgp_pending |= pass.objects_changed;
        if bgp_pending {
            bgp_pending = false;
            let stores = reconciler.stores();
            let routes = reconciler.config().and_then(|config| {
                bgp_routes::routes(
                    config,
                    &me,
                    stores.nodes.get(&me).as_deref(),
                    &stores.services.state(),
                    &stores.slices.state(),
                    options.view.lb_class.as_deref(),
                    options.view.ignore_exclude_lb,
                )
            });
            let metallb = stores.metallb.clone();
            let secret = |name: &str| metallb.as_ref()?.secret_password(name);
            bgp.apply(reconciler.config(), routes, &secret).await;
            announced.set_bgp(&me, bgp.addresses().clone());
        }
        bgp.refresh();
        events.send(bgp_events::to_events(
            bgp.take_news(),
            reconciler.stores(),
            &me,
        ));
        bgp_status_tx.send_if_modified(|inputs| {
            let next = bgp_status::inputs(bgp.services(), status_tx.borrow().alive.clone());
            (*inputs != next).then(|| *inputs = next).is_some()
        });
        events.send(pass.assigned);
        service_ips.set(pass.service_ips);
        health.set_ready(
            can_announce
                && ready(
                    *sockets_rx.borrow(),
                    membership.is_some(),
                    gate.joined(),
                    others_expected,
                ),
        );

        let wake = crate::runtime::earliest([
            gate.next_check(now),
            links.next_deadline(),
            settled.next_check(now),
            verify.next_deadline(),
            reconciler.handover_deadline(),
        ]);
        tokio::select! {
            _ = &mut shutdown => break super::LoopEnd::Shutdown,
            () = changes.changed() => {}
            Some(r) = changed(&mut members) => if r.is_err() { break super::LoopEnd::GossipStopped },
            Some(r) = async {
                match &mut stats {
                    Some(rx) => Some(joined_differs(rx, gate.joined()).await),
                    None => std::future::pending().await,
                }
            } => if r.is_err() { break super::LoopEnd::GossipStopped },
            _ = sockets_rx.changed() => {}
            () = links.changed() => {}
            () = verify.changed() => {}
            () = bgp.changed() => {}
            _ = sleep_until(wake) => {}
        }
    };
    info!(
        "shutting down: telling the BGP peers, releasing every IP and leaving the gossip cluster"
    );
    // Cease first (within a second): each router withdraws this node's routes at once.
    bgp.shutdown().await;
    announced.set_bgp(&me, Default::default());
    apply(
        &owned_tx,
        &announced,
        &me,
        reconciler.owned(),
        &BTreeMap::new(),
        &BTreeMap::new(),
        None,
    );
    health.set_ready(false);
    if let Some(m) = &membership {
        m.leave().await;
    }
    drop(owned_tx);
    // Objects left behind go with this pod (owner reference) or are removed by the next
    // announcer; the writer stops here so shutdown never waits for the API server.
    status_task.abort();
    bgp_status_task.abort();
    let _ = announcer_task.await;
    Ok(end.into_result()?)
}

async fn changed<T>(
    rx: &mut Option<watch::Receiver<T>>,
) -> Option<Result<(), watch::error::RecvError>> {
    match rx {
        Some(rx) => Some(rx.changed().await),
        None => std::future::pending().await,
    }
}

fn seeds(addresses: &[IpAddr], port: u16) -> Vec<SocketAddr> {
    let mut s: Vec<SocketAddr> = addresses
        .iter()
        .map(|ip| SocketAddr::new(*ip, port))
        .collect();
    s.sort();
    s
}

/// The time a decision took, logged with the ownership change it made.
#[derive(Debug, Clone, Copy)]
struct Took {
    /// From the loop waking (a watch, gossip, a timer) to the decision.
    woke: std::time::Duration,
    /// The pass alone.
    pass: std::time::Duration,
    /// The pass's thread meanwhile: on a core, and runnable but waiting for one.
    thread: Option<ThreadTime>,
    /// Services whose part in the election was worked out again.
    evaluated: usize,
}

fn apply(
    owned_tx: &watch::Sender<OwnedSet>,
    announced: &AnnouncedMetric,
    me: &str,
    before: &BTreeMap<IpAddr, std::sync::Arc<str>>,
    after: &BTreeMap<IpAddr, std::sync::Arc<str>>,
    only_on: &BTreeMap<IpAddr, BTreeSet<String>>,
    took: Option<Took>,
) {
    match took {
        Some(t) => info!(
            owned = after.len(),
            restricted = only_on.len(),
            evaluated = t.evaluated,
            pass_ms = t.pass.as_millis() as u64,
            pass_cpu_ms = t.thread.map(|c| c.on_cpu.as_millis() as u64),
            pass_wait_ms = t.thread.map(|c| c.waiting.as_millis() as u64),
            since_wake_ms = t.woke.as_millis() as u64,
            "ownership changed"
        ),
        None => info!(
            owned = after.len(),
            restricted = only_on.len(),
            "ownership changed"
        ),
    }
    publish_scoped(owned_tx, announced, me, before, after, only_on);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_gossip_ends_the_kubernetes_speaker_with_an_error() {
        let error = KubeSpeakerError::from(crate::speaker::GossipStopped);
        assert!(error.to_string().contains("gossip stopped"));
    }
}

#[cfg(test)]
pub(crate) mod test_logs;
