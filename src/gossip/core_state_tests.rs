//! Node states spread by gossip (`GossipCore::publish_state`), on the simulated network of the
//! core's tests.

use super::*;
use crate::gossip::node_state::InterfaceState;

fn state(up: bool) -> NodeState {
    NodeState {
        interfaces: vec![InterfaceState {
            name: "eth1".into(),
            up,
            addresses: vec!["198.51.100.11".parse().unwrap()],
        }],
        ..NodeState::default()
    }
}

fn publish(sim: &mut Sim, i: usize, state: NodeState) {
    let now = sim.now;
    sim.nodes[i].as_mut().unwrap().publish_state(state, now);
    sim.flush();
}

/// What node `i` has heard of node `of`, taking the changes it has not taken yet.
fn heard(sim: &mut Sim, heard: &mut BTreeMap<usize, BTreeMap<String, NodeState>>, i: usize) {
    if let Some(states) = sim.nodes[i].as_mut().unwrap().take_node_states() {
        heard.insert(i, states);
    }
}

#[test]
fn a_published_state_and_its_change_reach_every_member() {
    let mut sim = converged(5);
    let mut seen = BTreeMap::new();
    publish(&mut sim, 2, state(true));
    let spread = |sim: &mut Sim, seen: &mut BTreeMap<_, _>, want: &NodeState| {
        let start = sim.now;
        while sim.now - start < Duration::from_secs(2) {
            for i in 0..5 {
                heard(sim, seen, i);
            }
            if (0..5).all(|i| seen.get(&i).and_then(|s| s.get(&name(2))) == Some(want)) {
                return Some(sim.now - start);
            }
            sim.step();
        }
        None
    };
    let took = spread(&mut sim, &mut seen, &state(true));
    assert!(took.is_some(), "not every member heard the state: {seen:?}");
    // The link goes down: the new state replaces the old everywhere.
    publish(&mut sim, 2, state(false));
    let took = spread(&mut sim, &mut seen, &state(false));
    assert!(
        took.is_some(),
        "not every member heard the change: {seen:?}"
    );
}

#[test]
fn a_member_that_joins_later_learns_the_state_from_its_refresh() {
    let mut sim = converged(3);
    publish(&mut sim, 0, state(true));
    // Long after the broadcast was spread and dropped from foca's backlog.
    sim.run_until(Duration::from_secs(3), |_| false);
    sim.add(3, b"0123456789abcdef", 1000);
    let mut seen = BTreeMap::new();
    let took = sim.run_until(node_state::REFRESH * 2, |s| s.members_of(3).len() == 4);
    assert!(took.is_some(), "node 3 joined");
    let learned = {
        let start = sim.now;
        loop {
            heard(&mut sim, &mut seen, 3);
            if seen.get(&3).and_then(|s| s.get(&name(0))) == Some(&state(true)) {
                break true;
            }
            if sim.now - start > node_state::REFRESH * 2 {
                break false;
            }
            sim.step();
        }
    };
    assert!(
        learned,
        "the late member never heard node 0's state: {seen:?}"
    );
}

#[test]
fn a_withdrawn_member_publishes_when_it_rejoins() {
    let mut sim = converged(3);
    let now = sim.now;
    sim.nodes[1].as_mut().unwrap().withdraw(now);
    sim.flush();
    publish(&mut sim, 1, state(false));
    sim.run_until(Duration::from_secs(2), |_| false);
    let mut seen = BTreeMap::new();
    heard(&mut sim, &mut seen, 0);
    assert!(
        seen.get(&0).and_then(|s| s.get(&name(1))).is_none(),
        "a withdrawn member sent its state: {seen:?}"
    );
    let now = sim.now;
    sim.nodes[1].as_mut().unwrap().rejoin(now);
    sim.flush();
    let took = sim.run_until(Duration::from_secs(5), |s| s.members_of(0).len() == 3);
    assert!(took.is_some(), "rejoined");
    let start = sim.now;
    while sim.now - start < Duration::from_secs(3) {
        heard(&mut sim, &mut seen, 0);
        if seen.get(&0).and_then(|s| s.get(&name(1))) == Some(&state(false)) {
            return;
        }
        sim.step();
    }
    panic!("node 1's state never arrived after its rejoin: {seen:?}");
}
