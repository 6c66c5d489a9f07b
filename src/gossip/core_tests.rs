//! Pure-core tests on a simulated, lossless, zero-latency network with synthetic time.

use super::*;
use crate::gossip::key::GossipKey;

const STEP: Duration = Duration::from_millis(10);

fn key(text: &[u8]) -> GossipKey {
    GossipKey::from_bytes(text, "test").unwrap()
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1 + i as u8], 7946))
}

fn name(i: usize) -> String {
    format!("node-{i}")
}

struct Sim {
    now: Instant,
    nodes: Vec<Option<GossipCore>>,
    /// Every datagram ever sent, for replay tests.
    wire: Vec<(SocketAddr, Vec<u8>)>,
}

impl Sim {
    fn new(count: usize) -> Self {
        let mut sim = Sim {
            now: Instant::now(),
            nodes: Vec::new(),
            wire: Vec::new(),
        };
        for i in 0..count {
            sim.add(i, b"0123456789abcdef", 1000);
        }
        sim
    }

    /// Starts node `i` (seeded with node 0's address), or restarts it, as incarnation
    /// `incarnation`.
    fn add(&mut self, i: usize, secret: &[u8], incarnation: u64) {
        self.add_with_seeds(i, secret, incarnation, &[addr(0)]);
    }

    fn add_with_seeds(&mut self, i: usize, secret: &[u8], incarnation: u64, seeds: &[SocketAddr]) {
        let identity = NodeId {
            name: name(i),
            addr: addr(i),
            incarnation,
            generation: 0,
        };
        let core = GossipCore::new(
            identity,
            &key(secret).into(),
            seeds,
            &SwimTiming::default(),
            i as u64 + incarnation,
            self.now,
        );
        if self.nodes.len() <= i {
            self.nodes.resize_with(i + 1, || None);
        }
        self.nodes[i] = Some(core);
    }

    fn node(&self, i: usize) -> &GossipCore {
        self.nodes[i].as_ref().unwrap()
    }

    fn deliver(&mut self, to: SocketAddr, packet: &[u8]) {
        let now = self.now;
        if let Some(core) = self
            .nodes
            .iter_mut()
            .flatten()
            .find(|c| c.identity().addr == to)
        {
            core.handle_datagram(packet, now);
        }
    }

    /// Delivers everything in flight, repeatedly, until the network is quiet.
    fn flush(&mut self) {
        loop {
            let mut batch = Vec::new();
            for core in self.nodes.iter_mut().flatten() {
                while let Some(t) = core.poll_transmit() {
                    batch.push(t);
                }
            }
            if batch.is_empty() {
                return;
            }
            for (to, packet) in batch {
                self.deliver(to, &packet);
                self.wire.push((to, packet));
            }
        }
    }

    fn step(&mut self) {
        self.now += STEP;
        let now = self.now;
        for core in self.nodes.iter_mut().flatten() {
            core.handle_timeout(now);
        }
        self.flush();
    }

    /// Steps until `done` holds; returns the simulated time it took, or `None` after `limit`.
    fn run_until(&mut self, limit: Duration, done: impl Fn(&Sim) -> bool) -> Option<Duration> {
        let start = self.now;
        while self.now - start < limit {
            if done(self) {
                return Some(self.now - start);
            }
            self.step();
        }
        done(self).then(|| self.now - start)
    }

    fn members_of(&self, i: usize) -> BTreeSet<String> {
        self.node(i).live_members()
    }
}

/// `count` members, started and converged on each other.
fn converged(count: usize) -> Sim {
    let mut sim = Sim::new(count);
    let all: Vec<usize> = (0..count).collect();
    sim.run_until(Duration::from_secs(5), |s| {
        (0..count).all(|i| s.members_of(i) == names(&all))
    })
    .expect("converged");
    sim
}

fn names(ids: &[usize]) -> BTreeSet<String> {
    ids.iter().map(|&i| name(i)).collect()
}

#[test]
fn three_members_converge_through_one_seed() {
    let mut sim = Sim::new(3);
    let took = sim.run_until(Duration::from_secs(5), |s| {
        (0..3).all(|i| s.members_of(i) == names(&[0, 1, 2]))
    });
    assert!(
        took.is_some(),
        "no convergence: {:?}",
        (0..3).map(|i| sim.members_of(i)).collect::<Vec<_>>()
    );
    assert_eq!(
        sim.node(0).member_counts(),
        MemberCounts {
            alive: 3,
            suspect: 0,
            down: 0
        }
    );
    // Idle for a while on a perfect network: nobody is ever suspected.
    for _ in 0..500 {
        sim.step();
        for i in 0..3 {
            assert_eq!(sim.node(i).member_counts().suspect, 0);
            assert_eq!(sim.members_of(i), names(&[0, 1, 2]));
        }
    }
    assert_eq!(sim.node(1).drops(), DropCounts::default());
}

#[test]
fn a_crashed_member_is_declared_down_within_a_second_of_simulated_time() {
    let mut sim = Sim::new(3);
    sim.run_until(Duration::from_secs(5), |s| {
        (0..3).all(|i| s.members_of(i).len() == 3)
    })
    .expect("converged");
    sim.nodes[2] = None; // crash: no leave, no more packets
    let took = sim
        .run_until(Duration::from_secs(10), |s| {
            (0..2).all(|i| s.members_of(i) == names(&[0, 1]))
        })
        .expect("crashed member never declared down");
    // Synthetic time on an ideal network: this checks the protocol tuning, not machine speed.
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(sim.node(0).member_counts().down, 1);
}

#[test]
fn graceful_leave_is_seen_at_once() {
    let mut sim = Sim::new(3);
    sim.run_until(Duration::from_secs(5), |s| {
        (0..3).all(|i| s.members_of(i).len() == 3)
    })
    .expect("converged");
    let now = sim.now;
    sim.nodes[2].as_mut().unwrap().leave(now);
    assert!(!sim.members_of(2).contains(&name(2)));
    sim.flush(); // deliver the leave, no time passes
    assert_eq!(sim.members_of(0), names(&[0, 1]));
    assert_eq!(sim.members_of(1), names(&[0, 1]));
    // The departed core stays inert.
    assert_eq!(sim.node(2).poll_timeout(), None);
}

#[test]
fn a_withdrawn_member_is_down_for_the_others_at_once_and_comes_back_when_it_rejoins() {
    let mut sim = Sim::new(3);
    sim.run_until(Duration::from_secs(5), |s| {
        (0..3).all(|i| s.members_of(i).len() == 3)
    })
    .expect("converged");
    let now = sim.now;
    sim.nodes[2].as_mut().unwrap().withdraw(now);
    assert!(sim.node(2).is_withdrawn());
    sim.flush(); // no time passes: the others elect again at once
    assert_eq!(sim.members_of(0), names(&[0, 1]));
    assert_eq!(sim.members_of(1), names(&[0, 1]));
    assert_eq!(sim.members_of(2), names(&[2]), "it hears nobody meanwhile");
    // Seconds later it is still out: nothing it hears (probes, announces) takes it back in.
    sim.run_until(Duration::from_secs(3), |_| false);
    assert_eq!(sim.members_of(0), names(&[0, 1]));
    let now = sim.now;
    sim.nodes[2].as_mut().unwrap().rejoin(now);
    sim.run_until(Duration::from_secs(2), |s| {
        (0..3).all(|i| s.members_of(i).len() == 3)
    })
    .expect("back in everyone's view");
    assert_eq!(sim.node(2).identity().generation, 1, "a renewed identity");
}

#[test]
fn a_member_started_withdrawn_joins_nobody_until_it_rejoins() {
    let mut sim = Sim::new(2);
    let now = sim.now;
    sim.nodes[1].as_mut().unwrap().withdraw(now);
    sim.run_until(Duration::from_secs(3), |_| false);
    assert_eq!(sim.members_of(0), names(&[0]));
    assert_eq!(sim.members_of(1), names(&[1]));
    let now = sim.now;
    sim.nodes[1].as_mut().unwrap().rejoin(now);
    sim.run_until(Duration::from_secs(2), |s| {
        s.members_of(0).len() == 2 && s.members_of(1).len() == 2
    })
    .expect("joined after the rejoin");
}

#[test]
fn a_member_with_the_wrong_key_never_joins_and_is_counted() {
    let mut sim = Sim::new(2);
    sim.add(2, b"another-secret-0123", 1000);
    for _ in 0..300 {
        sim.step();
    }
    assert_eq!(sim.members_of(0), names(&[0, 1]));
    assert_eq!(sim.members_of(1), names(&[0, 1]));
    assert_eq!(sim.members_of(2), names(&[2]));
    // It keeps announcing to the seed, which drops every one as unauthenticated.
    assert!(sim.node(0).drops().auth >= 2, "{:?}", sim.node(0).drops());
}

#[test]
fn garbled_replayed_and_invalid_swim_packets_are_dropped_and_counted() {
    let mut sim = Sim::new(2);
    sim.run_until(Duration::from_secs(5), |s| s.members_of(0).len() == 2)
        .expect("converged");
    let before = sim.node(0).drops();

    sim.deliver(
        addr(0),
        b"not a gossip packet at all, just some bytes........",
    );
    sim.deliver(addr(0), &[]);
    let after_garbage = sim.node(0).drops();
    assert_eq!(
        after_garbage.auth + after_garbage.decode,
        before.auth + before.decode + 2
    );

    // Replay a packet node 1 already sent to node 0.
    let captured = sim
        .wire
        .iter()
        .rev()
        .find(|(to, _)| *to == addr(0))
        .unwrap()
        .1
        .clone();
    sim.deliver(addr(0), &captured);
    assert_eq!(sim.node(0).drops().replay, before.replay + 1);

    // A key holder sending a sealed payload that is not SWIM.
    let mut rogue = Sealer::new(PacketKey::derive(&key(b"0123456789abcdef")), "rogue", 1);
    sim.deliver(addr(0), &rogue.seal(&[0xff; 40]));
    assert_eq!(sim.node(0).drops().decode, after_garbage.decode + 1);

    // None of it changed the membership.
    assert_eq!(sim.members_of(0), names(&[0, 1]));
}

#[test]
fn a_restarted_member_rejoins_as_a_new_incarnation() {
    let mut sim = Sim::new(3);
    sim.run_until(Duration::from_secs(5), |s| {
        (0..3).all(|i| s.members_of(i).len() == 3)
    })
    .expect("converged");
    sim.nodes[2] = None;
    sim.run_until(Duration::from_secs(10), |s| s.members_of(0).len() == 2)
        .expect("declared down");
    sim.add(2, b"0123456789abcdef", 2000); // same name and address, new process
    sim.run_until(Duration::from_secs(5), |s| {
        (0..3).all(|i| s.members_of(i).len() == 3)
    })
    .expect("restarted member rejoined");
    let incarnations: Vec<u64> = sim
        .node(0)
        .swim
        .iter_members()
        .filter(|m| m.id().name == name(2))
        .map(|m| m.id().incarnation)
        .collect();
    assert_eq!(incarnations, vec![2000]);
}

/// The restarted process's identity number is lower than its former self's (on main it was the
/// wall-clock start time, so a clock stepped back produced this): it must rejoin all the same,
/// both after its former self was declared down and while the others still think it alive.
#[test]
fn a_member_restarted_with_a_lower_number_rejoins() {
    for wait_for_down in [true, false] {
        let mut sim = Sim::new(3);
        sim.run_until(Duration::from_secs(5), |s| {
            (0..3).all(|i| s.members_of(i).len() == 3)
        })
        .expect("converged");
        sim.nodes[2] = None;
        if wait_for_down {
            sim.run_until(Duration::from_secs(10), |s| s.members_of(0).len() == 2)
                .expect("declared down");
        }
        sim.add(2, b"0123456789abcdef", 500);
        sim.run_until(Duration::from_secs(5), |s| {
            (0..3).all(|i| s.members_of(i).len() == 3)
        })
        .expect("restarted member rejoined");
        // And it stays in: its former self, still known to the others, never displaces it.
        for _ in 0..300 {
            sim.step();
        }
        for i in 0..3 {
            assert_eq!(
                sim.members_of(i),
                names(&[0, 1, 2]),
                "node {i} (wait_for_down {wait_for_down})"
            );
        }
        assert_eq!(sim.node(0).drops().replay, 0);
        // Every packet ever sent to node 0, replayed (the former self's included): refused or
        // harmless, the restarted member stays in.
        let captured: Vec<Vec<u8>> = sim
            .wire
            .iter()
            .filter(|(to, _)| *to == addr(0))
            .map(|(_, p)| p.clone())
            .collect();
        for packet in &captured {
            sim.deliver(addr(0), packet);
        }
        for _ in 0..300 {
            sim.step();
        }
        assert_eq!(sim.members_of(0), names(&[0, 1, 2]));
    }
}

/// The documented rotation: add the new key as accepted everywhere, then send with it
/// everywhere (old one accepted), then drop the old one; each step reaches the nodes one at a
/// time, as a Secret update does. Nobody is ever suspected and nothing is dropped as
/// unauthenticated.
#[test]
fn key_rotation_in_three_steps_never_loses_a_member() {
    let old = key(b"0123456789abcdef");
    let new = key(b"fedcba9876543210-new");
    let steps = [
        KeyRing {
            send: old.clone(),
            accept: Some(new.clone()),
        },
        KeyRing {
            send: new.clone(),
            accept: Some(old.clone()),
        },
        KeyRing::from(new.clone()),
    ];
    let mut sim = Sim::new(3);
    sim.run_until(Duration::from_secs(5), |s| {
        (0..3).all(|i| s.members_of(i).len() == 3)
    })
    .expect("converged");
    for ring in &steps {
        for i in 0..3 {
            sim.nodes[i].as_mut().unwrap().set_keys(ring);
            for _ in 0..100 {
                sim.step();
                for j in 0..3 {
                    assert_eq!(sim.node(j).member_counts().suspect, 0, "node {j}");
                    assert_eq!(sim.members_of(j), names(&[0, 1, 2]));
                }
            }
        }
    }
    for i in 0..3 {
        assert_eq!(sim.node(i).drops().auth, 0, "node {i}");
        assert_eq!(sim.node(i).key_count(), 1);
    }
    // And the old key is refused now.
    sim.add(3, b"0123456789abcdef", 77);
    for _ in 0..100 {
        sim.step();
    }
    assert_eq!(sim.members_of(3), names(&[3]));
}

/// What the rotation must avoid: one node switching to a key the others do not accept yet is cut
/// off (so the procedure has the "accept first" step).
#[test]
fn sending_with_a_key_nobody_accepts_cuts_the_node_off() {
    let mut sim = Sim::new(3);
    sim.run_until(Duration::from_secs(5), |s| {
        (0..3).all(|i| s.members_of(i).len() == 3)
    })
    .expect("converged");
    sim.nodes[2]
        .as_mut()
        .unwrap()
        .set_keys(&key(b"fedcba9876543210-new").into());
    sim.run_until(Duration::from_secs(5), |s| {
        s.members_of(0) == names(&[0, 1])
    })
    .expect("node 2 cut off");
    assert!(sim.node(0).drops().auth > 0);
}

#[test]
fn seeds_are_retried_while_alone() {
    let mut sim = Sim::new(1);
    // Node 1 starts and announces to node 0's address before node 0 exists.
    sim.nodes[0] = None;
    sim.add(1, b"0123456789abcdef", 1000);
    for _ in 0..50 {
        sim.step();
    }
    assert_eq!(sim.members_of(1), names(&[1]));
    sim.add(0, b"0123456789abcdef", 1000);
    sim.run_until(Duration::from_secs(3), |s| {
        s.members_of(0).len() == 2 && s.members_of(1).len() == 2
    })
    .expect("node 1 retried its seed and joined");
}

#[test]
fn seeds_learned_later_are_announced_to_at_once() {
    let mut sim = Sim::new(1);
    sim.add_with_seeds(1, b"0123456789abcdef", 1000, &[]);
    sim.add_with_seeds(2, b"0123456789abcdef", 1000, &[addr(1)]);
    // Two groups form: {0} alone and {1, 2}.
    sim.run_until(Duration::from_secs(3), |s| s.members_of(1).len() == 2)
        .expect("1 and 2 joined");
    for _ in 0..100 {
        sim.step();
    }
    assert_eq!(sim.members_of(0), names(&[0]));
    // Node 1 learns of node 0 (say, a new speaker pod) and is not alone, yet announces at once.
    let now = sim.now;
    sim.nodes[1]
        .as_mut()
        .unwrap()
        .set_seeds(&[addr(0), addr(1)], now);
    sim.flush();
    assert!(
        sim.members_of(0).contains(&name(1)),
        "{:?}",
        sim.members_of(0)
    );
    sim.run_until(Duration::from_secs(3), |s| {
        (0..3).all(|i| s.members_of(i).len() == 3)
    })
    .expect("the groups merged");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Arbitrary bytes, raw or sealed with the right key (a buggy or hostile key holder), never
    /// panic the core, and every unauthenticated one is counted.
    #[test]
    fn arbitrary_datagrams_never_panic(
        packets in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), 1..20),
    ) {
        let mut sim = Sim::new(2);
        sim.run_until(Duration::from_secs(5), |s| s.members_of(0).len() == 2).expect("converged");
        let before = sim.node(0).drops();
        for packet in &packets {
            sim.deliver(addr(0), packet);
        }
        let after = sim.node(0).drops();
        proptest::prop_assert_eq!(
            (after.auth + after.decode) - (before.auth + before.decode),
            packets.len() as u64
        );
        let mut rogue = Sealer::new(PacketKey::derive(&key(b"0123456789abcdef")), "rogue", 1);
        for packet in &packets {
            let sealed = rogue.seal(packet);
            sim.deliver(addr(0), &sealed);
        }
        sim.step();
    }
}

#[path = "core_icmp_tests.rs"]
mod port_unreachable;

#[cfg(test)]
#[path = "core_state_tests.rs"]
mod node_states;
