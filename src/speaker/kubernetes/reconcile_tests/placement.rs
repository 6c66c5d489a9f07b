//! Sticky ownership and even spread across three whole passes (one Reconciler per node, each
//! with its own caches), their claims handed between them as gossip would, and the plan's
//! preview (`cluster::announcements`) against what the speakers settle on.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::*;
use crate::placement::Policy;
use crate::speaker::handover::{Claimed, HOLD};
use crate::speaker::kubernetes::cluster::{self, ViewOptions};

const STICKY: Policy = Policy::STICKY;
const EVEN: Policy = Policy::EVEN;

struct Speaker {
    rec: Reconciler,
    services: Fed<Decoded<ServiceView>>,
    slices: Fed<Decoded<SliceView>>,
}

fn speaker(me: &str, policy: Policy, count: u32) -> Speaker {
    let (stores, feeds) = feeds();
    let view = ViewOptions {
        placement: policy,
        ..ViewOptions::default()
    };
    let mut s = Speaker {
        rec: Reconciler::new(me.into(), view, stores),
        services: feeds.services,
        slices: feeds.slices,
    };
    for i in 0..count {
        let name = format!("svc-{i}");
        put(
            &mut s.services,
            service(&name, &format!("192.0.2.{}", i + 1), "Cluster"),
        );
        put(&mut s.slices, slice(&name, NODES[0]));
    }
    s
}

/// A cluster of speakers passing in turn, 10 ms apart, each hearing the others' claims.
struct Cluster {
    speakers: BTreeMap<&'static str, Speaker>,
    now: Instant,
}

impl Cluster {
    fn new(policy: Policy, count: u32) -> Self {
        let speakers = NODES
            .iter()
            .map(|n| (*n, speaker(n, policy, count)))
            .collect();
        Self {
            speakers,
            now: Instant::now(),
        }
    }

    /// Passes until nothing changes for a hold's time, checking after every pass that no
    /// address is answered by two nodes.
    fn settle(&mut self) {
        let mut quiet = Duration::ZERO;
        for _ in 0..400 {
            let live: BTreeSet<String> = self.speakers.keys().map(|n| n.to_string()).collect();
            let mut changed = false;
            let names: Vec<&'static str> = self.speakers.keys().copied().collect();
            for me in names {
                let others: BTreeMap<String, Claimed> = self
                    .speakers
                    .iter()
                    .filter(|(n, _)| **n != me)
                    .map(|(n, s)| (n.to_string(), s.rec.claimed()))
                    .collect();
                let s = self.speakers.get_mut(me).unwrap();
                s.rec.set_claims(others);
                let pass = s.rec.pass_at(Some(&live), true, self.now);
                changed |= pass.changed_from.is_some() || pass.claims_changed;
                self.now += Duration::from_millis(10);
                assert_eq!(self.doubles(), Vec::<IpAddr>::new(), "answered twice");
            }
            quiet = if changed {
                Duration::ZERO
            } else {
                quiet + Duration::from_millis(30)
            };
            if quiet > HOLD * 2 {
                return;
            }
        }
        panic!("the speakers never settled");
    }

    fn doubles(&self) -> Vec<IpAddr> {
        let mut seen = BTreeSet::new();
        let mut twice = Vec::new();
        for s in self.speakers.values() {
            twice.extend(s.rec.owned().keys().filter(|ip| !seen.insert(**ip)));
        }
        twice
    }

    fn owners(&self) -> BTreeMap<IpAddr, &'static str> {
        self.speakers
            .iter()
            .flat_map(|(n, s)| s.rec.owned().keys().map(move |ip| (*ip, *n)))
            .collect()
    }
}

fn counts(owners: &BTreeMap<IpAddr, &'static str>) -> BTreeMap<&'static str, usize> {
    let mut out = BTreeMap::new();
    for n in owners.values() {
        *out.entry(*n).or_insert(0) += 1;
    }
    out
}

fn moved(a: &BTreeMap<IpAddr, &str>, b: &BTreeMap<IpAddr, &str>) -> usize {
    a.iter().filter(|(ip, n)| b.get(ip) != Some(n)).count()
}

/// The owner dies: its successor takes its addresses; it comes back (a restarted speaker,
/// claiming nothing): nothing moves back.
#[test]
fn sticky_keeps_the_successor_when_the_owner_returns() {
    let mut cluster = Cluster::new(STICKY, 30);
    cluster.settle();
    let first = cluster.owners();
    assert_eq!(first.len(), 30);
    let dead = *counts(&first).iter().max_by_key(|(_, c)| **c).unwrap().0;
    cluster.speakers.remove(dead);
    cluster.settle();
    let after = cluster.owners();
    assert_eq!(after.len(), 30);
    assert!(after.values().all(|n| *n != dead));
    assert_eq!(
        moved(&first, &after),
        counts(&first)[dead],
        "only the dead node's moved"
    );
    cluster.speakers.insert(dead, speaker(dead, STICKY, 30));
    cluster.settle();
    assert_eq!(cluster.owners(), after, "the returning node takes nothing");
}

/// 60 addresses over three nodes are 20 each; a death moves only the dead node's, its return
/// about a third; the plan's preview is what the speakers settled on from a fresh start.
#[test]
fn even_spread_over_three_speakers_matches_the_plan() {
    let mut cluster = Cluster::new(EVEN, 60);
    cluster.settle();
    let first = cluster.owners();
    assert_eq!(counts(&first).values().collect::<Vec<_>>(), [&20, &20, &20]);
    let s = &cluster.speakers["node-a"].rec;
    let stores = s.stores();
    let config = s.loader.config().unwrap().clone();
    let view = ViewOptions {
        placement: EVEN,
        ..ViewOptions::default()
    };
    let alive = live(&NODES);
    let (planned, _) = cluster::announcements(
        &config,
        &stores.services.state(),
        &stores.slices.state(),
        &stores.nodes.state(),
        crate::election::Liveness::Gossip(&alive),
        &BTreeMap::new(),
        &view,
    );
    for a in planned {
        for ip in &a.ips {
            assert_eq!(a.node.as_deref(), first.get(ip).copied(), "{ip}");
        }
    }
    cluster.speakers.remove("node-b");
    cluster.settle();
    let after = cluster.owners();
    assert_eq!(counts(&after).values().collect::<Vec<_>>(), [&30, &30]);
    assert_eq!(moved(&first, &after), 20, "only node-b's moved");
    cluster
        .speakers
        .insert("node-b", speaker("node-b", EVEN, 60));
    cluster.settle();
    let back = cluster.owners();
    assert_eq!(counts(&back).values().collect::<Vec<_>>(), [&20, &20, &20]);
    assert_eq!(
        moved(&after, &back),
        20,
        "the returning node takes its share"
    );
}
