//! A member's host answering ICMP port unreachable (`GossipCore::handle_port_unreachable`), on
//! the simulated network of the core's tests.

use super::*;

fn unreachable(sim: &mut Sim, i: usize, addr: SocketAddr) {
    let now = sim.now;
    sim.nodes[i]
        .as_mut()
        .unwrap()
        .handle_port_unreachable(addr, now);
}

fn events(sim: &mut Sim, i: usize) -> Vec<GossipEvent> {
    let core = sim.nodes[i].as_mut().unwrap();
    std::iter::from_fn(|| core.poll_event()).collect()
}

fn suspected(events: &[GossipEvent]) -> Vec<(String, Duration)> {
    events
        .iter()
        .filter_map(|e| match e {
            GossipEvent::SuspectedUnreachable { id, down_after } => {
                Some((id.name.clone(), *down_after))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_port_unreachable_marks_the_member_suspect_at_once() {
    let mut sim = converged(3);
    events(&mut sim, 0);
    sim.nodes[2] = None; // crashed; its host answers for it
    unreachable(&mut sim, 0, addr(2));
    // Suspect at once, with no time passing: still live (suspects are), counted, and told.
    assert_eq!(sim.node(0).member_counts().suspect, 1);
    assert_eq!(sim.members_of(0), names(&[0, 1, 2]));
    assert_eq!(sim.node(0).icmp_suspicions(), 1);
    let timing = SwimTiming::default();
    assert_eq!(
        suspected(&events(&mut sim, 0)),
        [(name(2), timing.icmp_suspect_to_down_after)]
    );
    // The suspicion is gossiped at once: the other survivor suspects it too.
    sim.flush();
    assert_eq!(sim.node(1).member_counts().suspect, 1);
    // Another report about a member already suspect changes nothing.
    unreachable(&mut sim, 0, addr(2));
    assert_eq!(sim.node(0).icmp_suspicions(), 1);
    assert!(events(&mut sim, 0).is_empty());
}

#[test]
fn an_unrefuted_suspicion_ends_in_down_when_its_timeout_ends_and_not_before() {
    let mut sim = converged(3);
    sim.nodes[2] = None;
    unreachable(&mut sim, 0, addr(2));
    let down_after = SwimTiming::default().icmp_suspect_to_down_after;
    let start = sim.now;
    while sim.now + STEP < start + down_after {
        sim.step();
        assert_eq!(sim.members_of(0), names(&[0, 1, 2]), "down too early");
        assert_eq!(sim.members_of(1), names(&[0, 1, 2]), "down too early");
    }
    let took = sim
        .run_until(Duration::from_secs(1), |s| {
            (0..2).all(|i| s.members_of(i) == names(&[0, 1]))
        })
        .expect("never declared down");
    // Simulated time: the suspicion's own timeout, not SWIM's probe and suspicion timeouts.
    assert!(sim.now - start <= down_after + STEP, "took {took:?} more");
    assert!(
        events(&mut sim, 0)
            .iter()
            .any(|e| matches!(e, GossipEvent::UnreachableConfirmed(id) if id.name == name(2)))
    );
    assert_eq!(sim.node(0).member_counts().down, 1);
}

#[test]
fn a_live_member_refutes_forged_port_unreachables_and_is_never_evicted() {
    let mut sim = converged(3);
    // A forger sends node 0 a port unreachable "from" node 1's host every step for 2 s.
    for _ in 0..200 {
        unreachable(&mut sim, 0, addr(1));
        assert_eq!(sim.node(0).member_counts().suspect, 1);
        sim.flush(); // node 1 hears the suspicion and refutes it
        assert_eq!(sim.node(0).member_counts().suspect, 0);
        sim.step();
        for i in 0..3 {
            assert_eq!(sim.members_of(i), names(&[0, 1, 2]));
            assert_eq!(sim.node(i).member_counts().down, 0);
        }
    }
    // Every report counted (each suspected a refuted, so alive, member), none confirmed.
    assert_eq!(sim.node(0).icmp_suspicions(), 200);
    let events = events(&mut sim, 0);
    assert!(
        !events.iter().any(|e| matches!(
            e,
            GossipEvent::UnreachableConfirmed(_) | GossipEvent::Down(_)
        )),
        "{events:?}"
    );
}

#[test]
fn reports_about_nobody_ourselves_or_the_dead_change_nothing() {
    let mut sim = converged(3);
    events(&mut sim, 0);
    unreachable(&mut sim, 0, addr(7));
    unreachable(&mut sim, 0, addr(0));
    unreachable(&mut sim, 0, SocketAddr::from(([192, 0, 2, 2], 7947)));
    assert_eq!(sim.node(0).member_counts().suspect, 0);
    assert_eq!(sim.node(0).icmp_suspicions(), 0);
    assert!(events(&mut sim, 0).is_empty());
    assert!(sim.node(0).transmits.is_empty());

    sim.nodes[2] = None;
    sim.run_until(Duration::from_secs(5), |s| {
        s.members_of(0) == names(&[0, 1])
    })
    .expect("declared down");
    events(&mut sim, 0);
    unreachable(&mut sim, 0, addr(2));
    assert_eq!(sim.node(0).icmp_suspicions(), 0);
    assert!(events(&mut sim, 0).is_empty());
}

/// Beyond the members one gossip round reaches, the suspicion gets to the suspect only by
/// dissemination: the usual suspicion timeout applies.
#[test]
fn in_a_larger_cluster_the_usual_suspicion_timeout_applies() {
    let mut sim = converged(5);
    events(&mut sim, 0);
    sim.nodes[4] = None;
    unreachable(&mut sim, 0, addr(4));
    let timing = SwimTiming::default();
    assert_eq!(
        suspected(&events(&mut sim, 0)),
        [(name(4), timing.suspect_to_down_after)]
    );
    sim.run_until(Duration::from_secs(2), |s| {
        (0..4).all(|i| s.members_of(i) == names(&[0, 1, 2, 3]))
    })
    .expect("declared down");
}
