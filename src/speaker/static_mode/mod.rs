//! `ferrolb speaker --static FILE`: the speaker fed by a YAML file instead of the Kubernetes API.
//!
//! The file is polled once a second and re-applied when its contents change. Polling (rather
//! than inotify) needs no extra dependency, survives the file being replaced by rename (how
//! editors and ConfigMap mounts update files), and costs one small read a second.
//!
//! With a `bgp:` section the speaker also runs a BGP session per peer of this node and announces
//! every address this node may announce to each ([`static_bgp`]; no election: ECMP); a reload
//! hands the sessions their new routes, and a shutdown sends each router a Cease first.

pub mod static_ads;
pub mod static_bgp;
pub mod static_config;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use prometheus::Registry;
use thiserror::Error;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::advertise::Cause;
use crate::gossip::{
    Gossip, GossipConfig, GossipError, GossipHandle, KeyError, KeyFiles, SwimTiming, joined_differs,
};
use crate::runtime::sleep_until;
use crate::telemetry::{Health, TextRegistry};

use super::announcer::{AnnouncerOptions, OwnedSet};
use super::bgp::BgpAnnouncer;
use super::election_gate::{ElectionGate, SettledMembers};
use super::link_state::others_up;
use super::links::OwnLinks;
use super::metrics::{AnnouncedMetric, Layer2Metrics, ServiceIpsMetric, VerifyMetrics};
use super::ownership::Withdrawn;
use super::publish::{publish_scoped, spawn_announcer};
use super::verify::Verification;
use crate::metrics::Naming;
use static_config::{StaticConfig, StaticConfigError};

/// How often the static file is checked for changes.
pub const FILE_POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct StaticOptions {
    pub file: PathBuf,
    /// `--memberlist-key-file` and `--memberlist-accept-key-file`; the file's own
    /// `gossip.key-file` wins over the first when both are given.
    pub keys: KeyFiles,
    pub announcer: AnnouncerOptions,
    pub timing: SwimTiming,
    /// `--link-debounce-ms`: how long a link stays down before it counts as down.
    pub link_debounce: std::time::Duration,
    /// Metric names: ferrolb's or MetalLB's.
    pub naming: Naming,
    /// `--bgp-listen-port`: where the BGP peers' own connections are taken (0: dial only).
    pub bgp_listen_port: u16,
}

#[derive(Debug, Error)]
pub enum StaticSpeakerError {
    #[error("cannot read static speaker file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("static speaker file {path} is invalid")]
    Invalid {
        path: PathBuf,
        #[source]
        source: StaticConfigError,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Gossip(#[from] GossipError),
    #[error("cannot register metrics")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    GossipStopped(#[from] super::GossipStopped),
}

/// One version of the file, told apart without reading it: a replaced file (editors, ConfigMap
/// volumes and `mv` all swap in a new inode) or one rewritten in place (new mtime or length)
/// gets a new stamp. Polling the stamp instead of the contents keeps the once-a-second check
/// from reading (and the speaker from keeping a copy of) a file that lists thousands of IPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

fn file_stamp(path: &PathBuf) -> std::io::Result<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok(FileStamp {
        dev: meta.dev(),
        ino: meta.ino(),
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

/// Reads and parses the file, with the stamp it had before reading (so a write racing the read
/// shows up as a new stamp at the next poll).
fn load(path: &PathBuf) -> Result<(Option<FileStamp>, StaticConfig), StaticSpeakerError> {
    let stamp = file_stamp(path).ok();
    let text = std::fs::read_to_string(path).map_err(|source| StaticSpeakerError::Read {
        path: path.clone(),
        source,
    })?;
    let config = static_config::parse(&text).map_err(|source| StaticSpeakerError::Invalid {
        path: path.clone(),
        source,
    })?;
    Ok((stamp, config))
}

/// Runs the static speaker until `shutdown` completes, then stops answering, leaves the gossip
/// cluster (so the others take over at once) and returns. `health` turns ready once sockets are
/// open and gossip has joined. The per-IP metrics go to `text_metrics`, the others to `registry`.
pub async fn run(
    options: StaticOptions,
    registry: &Registry,
    text_metrics: &TextRegistry,
    health: Health,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StaticSpeakerError> {
    let (stamp, config) = load(&options.file)?;
    let key_files = KeyFiles {
        key: config.gossip.key_file.clone().or(options.keys.key.clone()),
        accept: options.keys.accept.clone(),
    };
    let keys = key_files.load()?;
    let membership = Gossip::start(GossipConfig {
        node_name: config.node.clone(),
        bind_addr: config.gossip.bind,
        advertise_addr: None,
        seeds: config.gossip.seeds.clone(),
        keys,
        reload: key_files.reloadable().then_some(key_files),
        timing: options.timing.clone(),
        withdrawn: false,
    })
    .await?;
    let file = Loaded { stamp, config };
    serve(
        options,
        file,
        &membership,
        registry,
        text_metrics,
        health,
        shutdown,
    )
    .await
}

/// The file as [`run`] first read it.
struct Loaded {
    stamp: Option<FileStamp>,
    config: StaticConfig,
}

/// [`run`]'s loop over a started gossip member: ends with `shutdown` (`Ok`) or when the member's
/// task ends under it ([`super::GossipStopped`]), releasing every IP and leaving either way.
async fn serve(
    options: StaticOptions,
    file: Loaded,
    membership: &GossipHandle,
    registry: &Registry,
    text_metrics: &TextRegistry,
    health: Health,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StaticSpeakerError> {
    let Loaded {
        mut stamp,
        mut config,
    } = file;
    let l2_metrics = Layer2Metrics::with_names(text_metrics, options.naming);
    let announced = AnnouncedMetric::with_names(text_metrics, options.naming);
    let service_ips = ServiceIpsMetric::register(registry, options.naming)?;
    crate::gossip::register_metrics(registry, membership)?;
    let mut members = membership.members();
    let mut stats = membership.stats_watch();

    let me = config.node.clone();
    let mut bgp = BgpAnnouncer::new(&me);
    if options.bgp_listen_port != 0 {
        bgp = bgp.listening_on(options.bgp_listen_port);
    }
    set_bgp_peers(&mut bgp, &config).await;
    let started = spawn_announcer(options.announcer.clone(), l2_metrics);
    let (owned_tx, mut sockets_rx, announcer) = (started.owned, started.sockets, started.task);
    let mut verify = Verification::new(
        me.clone(),
        options.announcer.answer_checks_per_second,
        options.announcer.excludes.clone(),
        started.heal,
        Some(VerifyMetrics::register(registry, options.naming)?),
    );
    let mut targets = BTreeMap::new();
    // Counts the elections (the targets' version for the checker).
    let mut addresses_elected = 0u64;
    let others_seeded = config
        .gossip
        .seeds
        .iter()
        .any(|s| *s != membership.local_addr());
    let mut gate = ElectionGate::new(others_seeded);
    // The members the election counts: one that just appeared only after it settled.
    let mut settled = SettledMembers::default();
    let mut owned_now: static_ads::Serving = Default::default();
    let mut reported: BTreeMap<String, Cause> = BTreeMap::new();
    // What the last election was run on. The loop wakes for many reasons (the file poll every
    // second, gossip counters), and with thousands of services an election is milliseconds of
    // hashing and cloning, so it only runs again when one of its inputs changed.
    let mut elected_on: Option<ElectionInputs> = None;
    let mut addresses_version = 0u64;
    let mut poll = tokio::time::interval(FILE_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut links = OwnLinks::new(options.link_debounce, Some(membership));
    let mut own_up = None;
    tokio::pin!(shutdown);

    let end = loop {
        let now = std::time::Instant::now();
        gate.observe(stats.borrow().joined, now);
        if let Some(up) = links
            .refresh(&options.announcer.excludes, Some(membership), now)
            .await
        {
            own_up = Some(up);
        }
        let states = links.states();
        let mut known = others_up(&states, &me);
        if let Some(up) = &own_up {
            known.insert(me.clone(), up.clone());
        }
        let owned = owned_now.0.keys().copied().collect();
        let withdrawn = verify.withdrawn(&states, &owned, now);
        verify.take_part(Some(membership), true).await;
        let inputs = ElectionInputs {
            addresses_version,
            may_elect: gate.may_elect(now) && !verify.withdrawn_from_all(),
            live: settled.observe(&members.borrow(), &me, now),
            known,
            withdrawn,
        };
        if elected_on.as_ref() != Some(&inputs) {
            service_ips.set(config.addresses.iter().map(|s| s.ips.len()).sum());
            let next = if inputs.may_elect {
                let decisions = static_ads::decide(
                    &config.addresses,
                    config.advertisements.as_deref(),
                    &inputs.live,
                    &inputs.known,
                    &inputs.withdrawn,
                );
                report_causes(&decisions, &mut reported);
                targets = static_ads::targets(&me, &decisions);
                addresses_elected += 1;
                static_ads::serving(&me, &decisions)
            } else {
                targets.clear();
                addresses_elected += 1;
                Default::default()
            };
            if next != owned_now {
                apply(&owned_tx, &announced, &me, &owned_now, &next, &inputs.live);
                owned_now = next;
            }
            elected_on = Some(inputs);
        }
        health.set_ready(*sockets_rx.borrow() && (gate.joined() || !others_seeded));
        // Static mode has no Services to put a Warning on: the news are logged.
        verify.check(addresses_elected, &targets, &states);
        verify.news();
        verify.heal();
        links
            .publish_news(Some(membership), verify.gossiped(), Default::default())
            .await;

        let wake = crate::runtime::earliest([
            gate.next_check(now),
            links.next_deadline(),
            settled.next_check(now),
            verify.next_deadline(),
        ]);
        tokio::select! {
            _ = &mut shutdown => break super::LoopEnd::Shutdown,
            r = members.changed() => if r.is_err() { break super::LoopEnd::GossipStopped },
            () = links.changed() => {}
            () = verify.changed() => {}
            r = joined_differs(&mut stats, gate.joined()) => if r.is_err() { break super::LoopEnd::GossipStopped },
            _ = sockets_rx.changed() => {}
            _ = poll.tick() => {
                if reload(&options.file, &mut stamp, &mut config) {
                    addresses_version += 1;
                    set_bgp_peers(&mut bgp, &config).await;
                }
            }
            _ = sleep_until(wake) => {}
        }
    };

    // Stop answering first, then tell the others: for the few milliseconds in between nobody
    // answers, which clients ride out, whereas the other order would briefly give two answerers.
    info!("shutting down: telling BGP peers, releasing every IP and leaving the gossip cluster");
    // First, and bounded (1 s): a Cease makes each router withdraw this node's routes at once.
    bgp.shutdown().await;
    let live = members.borrow().clone();
    apply(
        &owned_tx,
        &announced,
        &me,
        &owned_now,
        &Default::default(),
        &live,
    );
    health.set_ready(false);
    membership.leave().await;
    drop(owned_tx);
    let _ = announcer.await;
    Ok(end.into_result()?)
}

/// Hands the BGP sessions this node runs, with their routes, to the announcer; a peer that
/// cannot start is reported (the file was checked, so this is the spec's own limits).
async fn set_bgp_peers(bgp: &mut BgpAnnouncer, config: &StaticConfig) {
    let addresses = config.bgp_addresses();
    let peers = static_bgp::peers_for(&config.node, config.bgp.as_ref(), &addresses);
    for e in bgp.set(peers).await {
        error!(error = %e, "BGP peer not started");
    }
}

fn apply(
    owned_tx: &watch::Sender<OwnedSet>,
    announced: &AnnouncedMetric,
    me: &str,
    before: &static_ads::Serving,
    after: &static_ads::Serving,
    live: &BTreeSet<String>,
) {
    info!(owned = after.0.len(), restricted = after.1.len(), live = ?live, "ownership changed");
    publish_scoped(owned_tx, announced, me, &before.0, &after.0, &after.1);
}

/// Logs each service that no node announces, once per change of its cause.
fn report_causes(decisions: &[static_ads::StaticDecision], reported: &mut BTreeMap<String, Cause>) {
    let mut next = BTreeMap::new();
    for d in decisions {
        let Some(cause) = &d.decision.cause else {
            continue;
        };
        if reported.get(&*d.service) != Some(cause) {
            match cause {
                Cause::NoAdvertisement { .. } => {
                    warn!(service = %d.service, "not announced: no advertisement selects {}", d.service)
                }
                other => warn!(service = %d.service, "{other}"),
            }
        }
        next.insert(d.service.to_string(), cause.clone());
    }
    *reported = next;
}

/// Everything the election depends on besides the fixed node name.
#[derive(Debug, PartialEq, Eq)]
struct ElectionInputs {
    /// Bumped whenever a reload replaces the addresses.
    addresses_version: u64,
    may_elect: bool,
    live: BTreeSet<String>,
    /// Each node's usable interfaces with their link, where known (gossip, and this node's own).
    known: BTreeMap<String, BTreeSet<String>>,
    /// The addresses nodes withdrew from (answer verification).
    withdrawn: Withdrawn,
}

/// Re-reads the file when its stamp changed; a valid file with other addresses replaces them
/// (and `true` is returned). Node name and gossip settings need a restart (they identify this
/// member), so changes to them are reported, not applied. An invalid file is reported once and
/// the last good one stays in force.
fn reload(path: &PathBuf, stamp: &mut Option<FileStamp>, config: &mut StaticConfig) -> bool {
    let Ok(now) = file_stamp(path) else {
        warn!(path = %path.display(), "cannot read static speaker file; keeping the last good one");
        return false;
    };
    if *stamp == Some(now) {
        return false;
    }
    *stamp = Some(now);
    let Ok(text) = std::fs::read_to_string(path) else {
        warn!(path = %path.display(), "cannot read static speaker file; keeping the last good one");
        return false;
    };
    match static_config::parse(&text) {
        Ok(new) => {
            if new.node != config.node || new.gossip != config.gossip {
                warn!("static speaker file: `node` and `gossip` changes take effect on restart");
            }
            info!(
                services = new.addresses.len(),
                "static speaker file reloaded"
            );
            let changed = config.addresses != new.addresses
                || config.advertisements != new.advertisements
                || config.bgp != new.bgp;
            config.addresses = new.addresses;
            config.advertisements = new.advertisements;
            config.bgp = new.bgp;
            changed
        }
        Err(e) => {
            error!(path = %path.display(), error = %crate::telemetry::error_chain(&e), "static speaker file rejected; keeping the last good one");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    const HEAD: &str = "node: node-a\ngossip:\n  bind: 192.0.2.11:7946\naddresses:\n";

    fn write(path: &PathBuf, body: &str) {
        // Write then rename, as editors and ConfigMap volumes do: a new inode every time.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{HEAD}{body}")).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    #[test]
    fn a_stopped_gossip_ends_the_static_speaker_with_an_error() {
        let error = StaticSpeakerError::from(crate::speaker::GossipStopped);
        assert!(error.to_string().contains("gossip stopped"));
    }

    #[test]
    fn reload_reports_only_address_changes_and_keeps_the_last_good_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("static.yaml");
        write(&path, "- service: a\n  ips: [192.0.2.1]\n");
        let (mut stamp, mut config) = load(&path).unwrap();
        assert!(!reload(&path, &mut stamp, &mut config), "untouched file");

        write(&path, "- service: a\n  ips: [192.0.2.2]\n");
        assert!(reload(&path, &mut stamp, &mut config));
        assert_eq!(config.addresses[0].ips, [ip("192.0.2.2")]);
        assert!(!reload(&path, &mut stamp, &mut config), "already applied");

        // Rewritten with the same addresses (a comment added): nothing to re-elect.
        write(&path, "# same\n- service: a\n  ips: [192.0.2.2]\n");
        assert!(!reload(&path, &mut stamp, &mut config));

        // Rewritten in place (same inode) with other addresses: still seen.
        std::fs::write(&path, format!("{HEAD}- service: a\n  ips: [192.0.2.33]\n")).unwrap();
        assert!(reload(&path, &mut stamp, &mut config));
        assert_eq!(config.addresses[0].ips, [ip("192.0.2.33")]);

        // Broken, then missing: the last good addresses stay.
        write(&path, "- service: [unclosed\n");
        assert!(!reload(&path, &mut stamp, &mut config));
        std::fs::remove_file(&path).unwrap();
        assert!(!reload(&path, &mut stamp, &mut config));
        assert_eq!(config.addresses[0].ips, [ip("192.0.2.33")]);

        // Back with new addresses.
        write(&path, "- service: b\n  ips: [192.0.2.4]\n");
        assert!(reload(&path, &mut stamp, &mut config));
        assert_eq!(config.addresses[0].service, "b");
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Nothing from outside ends the gossip member's task (socket errors are logged and it reads
    /// on; bad datagrams and key files are dropped), so the loop is driven with a real member
    /// whose task is aborted, as a crash would end it, once the speaker announces its IP: the
    /// speaker must release the IP and return `GossipStopped` (main exits non-zero on it) by
    /// itself, with no shutdown signal.
    #[tokio::test]
    async fn a_member_task_that_ends_stops_the_speaker_with_gossip_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "ferrolb-static-mode-test-key-0123456789").unwrap();
        let path = dir.path().join("static.yaml");
        let text = format!(
            "node: node-a\ngossip:\n  bind: 127.0.0.1:0\n  key-file: {}\naddresses:\n\
             - service: web\n  ips: [192.0.2.1]\n",
            key.display()
        );
        std::fs::write(&path, text).unwrap();
        let (stamp, config) = load(&path).unwrap();
        let membership = Gossip::start(GossipConfig {
            node_name: config.node.clone(),
            bind_addr: config.gossip.bind,
            advertise_addr: None,
            seeds: Vec::new(),
            keys: KeyFiles {
                key: Some(key),
                accept: None,
            }
            .load()
            .unwrap(),
            reload: None,
            timing: SwimTiming::default(),
            withdrawn: false,
        })
        .await
        .unwrap();
        let options = StaticOptions {
            file: path,
            keys: KeyFiles::default(),
            // No interface at all: the test announces nothing on the host's networks.
            announcer: AnnouncerOptions {
                excludes: crate::layer2::iface::ExcludePatterns::new(["*"]),
                garp_interval: None,
                answer_checks_per_second: 0,
            },
            timing: SwimTiming::default(),
            link_debounce: crate::speaker::link_state::DEFAULT_DEBOUNCE,
            naming: Naming::default(),
            bgp_listen_port: 0,
        };
        let (registry, text, health) = (Registry::new(), TextRegistry::default(), Health::new());
        let announced = |text: &TextRegistry| {
            let mut out = String::new();
            text.write_text(&mut out);
            out.lines()
                .any(|l| l.starts_with("ferrolb_speaker_announced{") && l.contains("192.0.2.1"))
        };
        let speaker = serve(
            options,
            Loaded { stamp, config },
            &membership,
            &registry,
            &text,
            health.clone(),
            std::future::pending(),
        );
        let crash = async {
            while !announced(&text) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            membership.abort();
            std::future::pending::<()>().await;
        };
        let ended = tokio::time::timeout(Duration::from_secs(30), async {
            tokio::select! {
                result = speaker => result,
                () = crash => unreachable!(),
            }
        })
        .await
        .expect("the speaker ended by itself when its gossip task ended");
        assert!(
            matches!(ended, Err(StaticSpeakerError::GossipStopped(_))),
            "{ended:?}"
        );
        assert!(!announced(&text), "the IP is released before returning");
        assert!(!health.is_ready());
    }
}
