//! Passes do work for what changed, and decide exactly what a pass from scratch decides.

use proptest::prelude::*;

use super::speakers::speaker_pod;
use super::*;

const ME: &str = "node-a";

fn reconciler(stores: Stores) -> Reconciler {
    Reconciler::new(ME.into(), ViewOptions::default(), stores)
}

fn ip(i: usize) -> String {
    format!("192.0.2.{}", i + 1)
}

fn node_ready(name: &str, ready: bool) -> Node {
    let mut n = node(name);
    if let Some(c) = n
        .status
        .as_mut()
        .and_then(|s| s.conditions.as_mut())
        .and_then(|c| c.first_mut())
    {
        c.status = if ready { "True" } else { "False" }.into();
    }
    n
}

/// Services `s0`..`s{n-1}` on addresses `ip(0)`.., each with a ready endpoint here.
fn add_services(f: &mut Feeds, n: usize) {
    for i in 0..n {
        let name = format!("s{i}");
        put(&mut f.services, service(&name, &ip(i), "Cluster"));
        put(&mut f.slices, slice(&name, ME));
    }
}

/// 200 Services, and one (`twin`) sharing the address of `s0`: after the first pass, a change
/// to one Service decides that one again and elects its group again, nothing else; a change no
/// decision reads does nothing; a change every decision reads decides them all.
#[test]
fn a_pass_decides_again_only_what_changed() {
    const N: usize = 200;
    let (stores, mut f) = feeds();
    let mut rec = reconciler(stores);
    add_services(&mut f, N);
    put(&mut f.services, service("twin", &ip(0), "Cluster"));
    put(&mut f.slices, slice("twin", ME));
    let all = live(&NODES);
    let first = rec.pass(Some(&all), true);
    assert_eq!((first.evaluated, first.elected), (N + 1, N + 1));
    assert_eq!(first.service_ips, N + 1);

    let idle = rec.pass(Some(&all), true);
    assert_eq!((idle.evaluated, idle.elected), (0, 0));
    assert!(idle.changed_from.is_none() && idle.assigned.is_empty());

    // One Service's status moves to another address.
    put(&mut f.services, service("s5", "192.0.2.250", "Cluster"));
    let moved = rec.pass(Some(&all), true);
    assert_eq!((moved.evaluated, moved.elected), (1, 1));
    let owner = ranked("192.0.2.250")[0] == ME;
    assert_eq!(
        rec.owned().contains_key(&"192.0.2.250".parse().unwrap()),
        owner
    );

    // Its last endpoint stops serving: decided again, and reported.
    put(
        &mut f.slices,
        slice_with("s5", &[(ME, Some(false), Some(false))]),
    );
    let unserved = rec.pass(Some(&all), true);
    assert_eq!((unserved.evaluated, unserved.elected), (1, 0));
    assert_eq!(
        rec.unannounced().get("shop/s5"),
        Some(&Cause::NoServingEndpoint)
    );

    // A sharer changes: its whole group is elected again.
    let twin: Service = service_ips("twin", &[&ip(0), "2001:db8::9"], "Cluster");
    put(&mut f.services, twin);
    let shared = rec.pass(Some(&all), true);
    assert_eq!((shared.evaluated, shared.elected), (1, 2));

    // A label no advertisement selects on: decided again, no election.
    let mut relabelled = service("s7", &ip(7), "Cluster");
    relabelled.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
    put(&mut f.services, relabelled);
    let label = rec.pass(Some(&all), true);
    assert_eq!((label.evaluated, label.elected), (1, 0));

    // A Node's heartbeat changes nothing the election reads; a Node going down, everything.
    let mut beat = node("node-b");
    beat.metadata.resource_version = Some("2".into());
    put(&mut f.nodes, beat);
    assert_eq!(rec.pass(Some(&all), true).evaluated, 0);
    put(&mut f.nodes, node_ready("node-b", false));
    assert_eq!(rec.pass(Some(&all), true).evaluated, N + 1);
    put(&mut f.nodes, node_ready("node-b", true));
    assert_eq!(rec.pass(Some(&all), true).evaluated, N + 1);

    // A member leaving: every Service's eligible nodes are worked out again, but only the
    // groups it owned or stood next in line for (the node that checks the owner answers) are
    // elected again (s5 is unserved; the twin goes with s0).
    let served = |i: &usize| *i != 5;
    let first_two = |i: usize| ranked(&ip(i))[..2].contains(&"node-b");
    let of_b = (0..N).filter(served).filter(|i| first_two(*i)).count();
    let twin_too = usize::from(first_two(0));
    assert!(of_b > N / 5, "node-b owns its share: {of_b}");
    let two = live(&["node-a", "node-c"]);
    let left = rec.pass(Some(&two), true);
    assert_eq!((left.evaluated, left.elected), (N + 1, of_b + twin_too));
    let owns = |rec: &Reconciler, members: &[&str]| {
        (0..N).filter(served).all(|i| {
            rec.owned().contains_key(&ip(i).parse().unwrap())
                == (election::rank(ip(i).parse().unwrap(), members.iter().copied())[0] == ME)
        })
    };
    assert!(
        owns(&rec, &["node-a", "node-c"]),
        "every Service's owner follows the new members"
    );
    // It comes back: it may outrank any owner, so every group is elected again.
    let back = rec.pass(Some(&all), true);
    assert_eq!((back.evaluated, back.elected), (N + 1, N));
    assert!(owns(&rec, &NODES), "node-b's groups are its own again");
}

/// The addresses the Services draw from (shared when drawn twice): both families, ranked first
/// by different nodes (a, b, c, a, b), a BGP pool's, one outside every pool.
const IPS: [&str; 7] = [
    "192.0.2.7",
    "192.0.2.2",
    "192.0.2.1",
    "2001:db8::5",
    "2001:db8::1",
    "198.51.100.1",
    "203.0.113.9",
];

#[derive(Debug, Clone)]
enum Op {
    Service {
        i: usize,
        ips: Vec<usize>,
        local: bool,
    },
    DeleteService(usize),
    Slice {
        i: usize,
        node: usize,
        ready: bool,
    },
    DeleteSlice(usize),
    /// `s{i}`'s slice now labelled for `s{to}`.
    Relabel {
        i: usize,
        to: usize,
    },
    Node {
        n: usize,
        ready: bool,
    },
    Pod {
        n: usize,
        ready: bool,
    },
    Members(Vec<bool>),
    GossipOff,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..6usize, prop::collection::vec(0..IPS.len(), 0..3), any::<bool>())
            .prop_map(|(i, ips, local)| Op::Service { i, ips, local }),
        1 => (0..6usize).prop_map(Op::DeleteService),
        3 => (0..6usize, 0..3usize, any::<bool>())
            .prop_map(|(i, node, ready)| Op::Slice { i, node, ready }),
        1 => (0..6usize).prop_map(Op::DeleteSlice),
        1 => (0..6usize, 0..6usize).prop_map(|(i, to)| Op::Relabel { i, to }),
        1 => (0..3usize, any::<bool>()).prop_map(|(n, ready)| Op::Node { n, ready }),
        1 => (0..3usize, any::<bool>()).prop_map(|(n, ready)| Op::Pod { n, ready }),
        1 => prop::collection::vec(any::<bool>(), 3).prop_map(Op::Members),
        1 => Just(Op::GossipOff),
    ]
}

fn name(i: usize) -> String {
    format!("s{i}")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// After any sequence of changes, the pass that decided only what changed owns, restricts
    /// and reports exactly what a speaker deciding everything from scratch does.
    #[test]
    fn incremental_passes_decide_as_a_pass_from_scratch(ops in prop::collection::vec(op(), 1..40)) {
        let (stores, mut f) = feeds();
        let mut rec = reconciler(stores);
        let mut members: Option<BTreeSet<String>> = Some(live(&NODES));
        for op in ops {
            match op {
                Op::Service { i, ips, local } => {
                    let ips: Vec<&str> = ips.iter().map(|&k| IPS[k]).collect();
                    let policy = if local { "Local" } else { "Cluster" };
                    put(&mut f.services, service_ips(&name(i), &ips, policy));
                }
                Op::DeleteService(i) => remove(&mut f.services, service_ips(&name(i), &[], "Cluster")),
                Op::Slice { i, node, ready } => {
                    put(&mut f.slices, slice_with(&name(i), &[(NODES[node], Some(ready), None)]));
                }
                // Deleted as labelled for `s{i}`, whatever it was relabelled to.
                Op::DeleteSlice(i) => remove(&mut f.slices, slice_with(&name(i), &[])),
                Op::Relabel { i, to } => {
                    let mut moved = slice_with(&name(i), &[(NODES[i % 3], Some(true), None)]);
                    moved.metadata.labels =
                        Some([("kubernetes.io/service-name".to_string(), name(to))].into());
                    put(&mut f.slices, moved);
                }
                Op::Node { n, ready } => put(&mut f.nodes, node_ready(NODES[n], ready)),
                Op::Pod { n, ready } => put(&mut f.speakers, speaker_pod(NODES[n], ready)),
                Op::Members(up) => {
                    let names: Vec<&str> = NODES.iter().zip(up).filter(|(_, u)| *u).map(|(n, _)| *n).collect();
                    members = Some(live(&names));
                }
                Op::GossipOff => members = None,
            }
            rec.pass(members.as_ref(), true);
            let scratch_stores = Stores { changes: Changes::default(), ..rec.stores().clone() };
            let mut scratch = reconciler(scratch_stores);
            scratch.pass(members.as_ref(), true);
            prop_assert_eq!(rec.owned(), scratch.owned());
            prop_assert_eq!(rec.only_on(), scratch.only_on());
            prop_assert_eq!(rec.unannounced(), scratch.unannounced());
            // What the next passes start from: each Service's offer and election result.
            prop_assert_eq!(&rec.evaluated, &scratch.evaluated);
            prop_assert_eq!(&rec.placed, &scratch.placed);
        }
    }
}

/// This node checks exactly the addresses it stands next in line for, each naming its owner;
/// when the owner withdraws from one, the group moves to this node (it owns it, and no longer
/// checks it) while nothing else changes, and the withdrawal taken back gives it back.
#[test]
fn the_next_node_checks_its_addresses_and_takes_a_withdrawn_one() {
    const N: usize = 60;
    let (stores, mut f) = feeds();
    let mut rec = reconciler(stores);
    add_services(&mut f, N);
    let all = live(&NODES);
    rec.pass(Some(&all), true);
    let next_of: Vec<usize> = (0..N).filter(|i| ranked(&ip(*i))[1] == ME).collect();
    assert!(!next_of.is_empty());
    let targets = rec.targets().clone();
    assert_eq!(
        targets.keys().copied().collect::<Vec<IpAddr>>(),
        next_of
            .iter()
            .map(|i| ip(*i).parse().unwrap())
            .collect::<Vec<IpAddr>>()
    );
    for (address, t) in &targets {
        assert_eq!(&*t.owner, ranked(&address.to_string())[0]);
        assert_eq!(t.interfaces, None);
    }
    // The owner of the first one withdraws from it.
    let (address, target) = targets.iter().next().unwrap();
    let version = rec.targets_version();
    rec.set_withdrawn(Withdrawn::from([(
        target.owner.to_string(),
        BTreeSet::from([*address]),
    )]));
    let pass = rec.pass(Some(&all), true);
    assert!(rec.owned().contains_key(address));
    assert_eq!(
        pass.changed_from.map(|before| before.len()),
        Some(rec.owned().len() - 1)
    );
    assert!(!rec.targets().contains_key(address));
    assert_ne!(rec.targets_version(), version);
    rec.set_withdrawn(Withdrawn::new());
    rec.pass(Some(&all), true);
    assert!(!rec.owned().contains_key(address));
    assert_eq!(rec.targets(), &targets);
}
