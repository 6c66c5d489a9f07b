use super::*;
use crate::election;

/// A service as the speaker sees it, whatever the source (static file or Kubernetes).
#[derive(Debug, Clone, PartialEq, Eq)]
struct AnnouncedService {
    service: String,
    ips: Vec<IpAddr>,
    /// Nodes allowed to announce beyond liveness (static `nodes`, or `Local` endpoints and node
    /// conditions in Kubernetes); `None` = every live node.
    allowed: Option<BTreeSet<String>>,
}

/// Each service's eligible nodes are the live members it allows.
fn announcers(services: &[AnnouncedService], live: &BTreeSet<String>) -> Vec<Announcement> {
    let candidates = services
        .iter()
        .map(|svc| Candidate {
            service: svc.service.clone(),
            ips: svc.ips.clone(),
            eligible: live
                .iter()
                .filter(|n| svc.allowed.as_ref().is_none_or(|a| a.contains(*n)))
                .cloned()
                .collect(),
        })
        .collect();
    elect(candidates)
}

fn svc(name: &str, ips: &[&str], allowed: Option<&[&str]>) -> AnnouncedService {
    AnnouncedService {
        service: name.into(),
        ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
        allowed: allowed.map(|a| a.iter().map(|s| s.to_string()).collect()),
    }
}

fn live(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn exactly_one_live_node_owns_each_service_and_it_is_the_first_ranked() {
    let services = vec![
        svc("a", &["10.0.0.1"], None),
        svc("b", &["10.0.0.2", "2001:db8::2"], None),
    ];
    let all = live(&["node-a", "node-b", "node-c"]);
    // The election's test vector: 10.0.0.1 -> node-b first; 10.0.0.2 -> node-b first.
    let b = owned_by("node-b", &announcers(&services, &all));
    assert_eq!(b.len(), 3, "node-b owns both services, dual-stack together");
    assert!(owned_by("node-a", &announcers(&services, &all)).is_empty());
    // node-b dies: 10.0.0.1 goes to node-a, 10.0.0.2 (and its v6 sibling) to node-c.
    let rest = live(&["node-a", "node-c"]);
    let a = owned_by("node-a", &announcers(&services, &rest));
    let c = owned_by("node-c", &announcers(&services, &rest));
    assert_eq!(
        a.keys().map(|i| i.to_string()).collect::<Vec<_>>(),
        ["10.0.0.1"]
    );
    assert_eq!(c.len(), 2);
    assert_eq!(c.values().next().map(String::as_str), Some("b"));
}

/// A RequireDualStack Service and an IPv6-only Service sharing its IPv6 address: one node
/// announces both, whichever order the Services come in and whatever their first IPs rank.
#[test]
fn services_sharing_an_address_are_announced_from_one_node() {
    let all = live(&["node-a", "node-b", "node-c"]);
    let names = ["node-a", "node-b", "node-c"];
    // IPs whose own owners differ, so ranking each Service by its own first IP would split.
    let (v4, v6) = (1..=254)
        .flat_map(|i| (1..=254).map(move |j| (format!("192.0.2.{i}"), format!("2001:db8::{j:x}"))))
        .find(|(a, b)| {
            election::owner(a.parse().unwrap(), names) != election::owner(b.parse().unwrap(), names)
        })
        .unwrap();
    let dual = svc("shop/dual", &[&v4, &v6], None);
    let only6 = svc("shop/v6", &[&v6], None);
    for services in [vec![dual.clone(), only6.clone()], vec![only6, dual]] {
        let decided = announcers(&services, &all);
        let nodes: BTreeSet<_> = decided.iter().map(|a| a.node.clone()).collect();
        assert_eq!(nodes.len(), 1, "one answerer for the group: {decided:?}");
        // The group is ranked by its lowest first IP, the IPv4 address here.
        let expected = election::owner(v4.parse().unwrap(), names).map(str::to_owned);
        assert_eq!(nodes.into_iter().next().unwrap(), expected);
        let owner = decided[0].node.clone().unwrap();
        assert_eq!(owned_by(&owner, &decided).len(), 2, "{decided:?}");
    }
    // Sharing chains: a shares with b, b with c; all three go together.
    let chain = vec![
        svc("a", &["192.0.2.1"], None),
        svc("b", &["192.0.2.1", "192.0.2.2"], None),
        svc("c", &["192.0.2.2", "192.0.2.3"], None),
        svc("alone", &["192.0.2.9"], None),
    ];
    let decided = announcers(&chain, &all);
    assert_eq!(decided[0].node, decided[1].node);
    assert_eq!(decided[1].node, decided[2].node);
    let alone = election::owner("192.0.2.9".parse().unwrap(), names).map(str::to_owned);
    assert_eq!(
        decided[3].node, alone,
        "a Service sharing nothing keeps its own rank"
    );
}

#[test]
fn a_group_is_announced_only_from_nodes_every_sharer_allows() {
    let all = live(&["node-a", "node-b", "node-c"]);
    // An address x alone would give to node-a: only the intersection rule picks node-b.
    let ip = (1..=254)
        .map(|i| format!("192.0.2.{i}"))
        .find(|ip| election::owner(ip.parse().unwrap(), ["node-a", "node-b"]) == Some("node-a"))
        .unwrap();
    let services = vec![
        svc("x", &[&ip], Some(&["node-a", "node-b"])),
        svc("y", &[&ip], Some(&["node-b", "node-c"])),
    ];
    let decided = announcers(&services, &all);
    assert_eq!(decided[0].node.as_deref(), Some("node-b"));
    assert_eq!(decided[1].node.as_deref(), Some("node-b"));
}

#[test]
fn allowed_nodes_restrict_the_election() {
    let services = vec![svc("a", &["10.0.0.1"], Some(&["node-c"]))];
    let all = live(&["node-a", "node-b", "node-c"]);
    assert_eq!(owned_by("node-c", &announcers(&services, &all)).len(), 1);
    assert!(owned_by("node-b", &announcers(&services, &all)).is_empty());
    let without_c = live(&["node-a", "node-b"]);
    assert_eq!(announcers(&services, &without_c)[0].node, None);
}

fn offer(name: &str, ips: &[&str], nodes: &[&str], interfaces: Option<&[&str]>) -> Offer {
    let reach = vec![Reach {
        nodes: live(nodes),
        interfaces: match interfaces {
            None => Interfaces::All,
            Some(names) => Interfaces::Named(live(names)),
        },
        preferred: BTreeMap::new(),
    }];
    Offer {
        service: name.into(),
        ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
        reach: reach.into(),
        eligible: Ok(Arc::new(live(nodes))),
    }
}

/// Sharers whose advertisements select different nodes: elected among the nodes both allow,
/// each placed on its own advertisement's interfaces; with no node in common, neither is
/// announced and both say why; a refused offer keeps its own cause.
#[test]
fn place_elects_groups_within_their_advertisements_and_reports_no_common_node() {
    let known = BTreeMap::new();
    let placed = place(
        &vec![
            offer("x", &["192.0.2.7"], &["node-a", "node-b"], Some(&["eth1"])),
            offer("y", &["192.0.2.7"], &["node-b", "node-c"], None),
        ],
        &known,
        &Withdrawn::new(),
        Steering::ranked(),
    );
    assert_eq!(placed[0].decision.node.as_deref(), Some("node-b"));
    assert_eq!(placed[1].decision.node.as_deref(), Some("node-b"));
    assert_eq!(
        placed[0].decision.interfaces,
        Interfaces::Named(live(&["eth1"]))
    );
    assert_eq!(placed[1].decision.interfaces, Interfaces::All);
    assert_eq!(placed[0].decision.cause, None);

    let mut refused = offer("z", &["192.0.2.9"], &["node-a"], None);
    refused.eligible = Err(Cause::NoServingEndpoint);
    let placed = place(
        &vec![
            offer("x", &["192.0.2.7"], &["node-a"], None),
            offer("y", &["192.0.2.7"], &["node-c"], None),
            refused,
        ],
        &known,
        &Withdrawn::new(),
        Steering::ranked(),
    );
    for p in &placed[..2] {
        assert_eq!(p.decision.node, None);
        assert_eq!(
            p.decision.cause,
            Some(Cause::NoCommonNode {
                sharers: vec!["x".into(), "y".into()]
            })
        );
    }
    assert_eq!(placed[2].decision.cause, Some(Cause::NoServingEndpoint));
}

/// A node known to lack every advertised interface is elected only when no other node has
/// one, and then says so.
#[test]
fn place_reports_an_elected_node_without_the_interface() {
    let known = BTreeMap::from([
        ("node-a".to_string(), live(&["eth0"])),
        ("node-b".to_string(), live(&["eth0"])),
    ]);
    let placed = place(
        &vec![offer(
            "x",
            &["192.0.2.7"],
            &["node-a", "node-b"],
            Some(&["eth1"]),
        )],
        &known,
        &Withdrawn::new(),
        Steering::ranked(),
    );
    let node = placed[0].decision.node.as_deref().unwrap().to_owned();
    assert_eq!(placed[0].decision.cause, Some(Cause::NoInterface { node }));
}

/// An address shared by Services whose advertisements name different interfaces is
/// restricted to those every sharer allows, in any order; an unrestricted sharer restricts
/// nothing; an address held alone keeps its own; other nodes' placements count for nothing.
#[test]
fn address_interfaces_intersect_over_every_sharer() {
    let placed = place(
        &vec![
            offer(
                "a",
                &["192.0.2.7", "192.0.2.8"],
                &["node-b"],
                Some(&["eth1", "eth2"]),
            ),
            offer("b", &["192.0.2.7"], &["node-b"], Some(&["eth2", "eth3"])),
            offer("c", &["192.0.2.7"], &["node-b"], None),
            offer("d", &["192.0.2.9"], &["node-b"], Some(&["eth4"])),
            offer("e", &["192.0.2.9"], &["node-b"], Some(&["eth5"])),
            offer("f", &["192.0.2.10"], &["node-c"], Some(&["eth6"])),
        ],
        &BTreeMap::new(),
        &Withdrawn::new(),
        Steering::ranked(),
    );
    let of = |order: &[usize]| {
        let decisions = order
            .iter()
            .map(|&i| (&*placed[i].ips, &placed[i].decision));
        address_interfaces("node-b", decisions)
    };
    let want = BTreeMap::from([
        ("192.0.2.7".parse().unwrap(), live(&["eth2"])),
        ("192.0.2.8".parse().unwrap(), live(&["eth1", "eth2"])),
        ("192.0.2.9".parse().unwrap(), live(&[])),
    ]);
    assert_eq!(of(&[0, 1, 2, 3, 4, 5]), want);
    assert_eq!(of(&[5, 4, 3, 2, 1, 0]), want);
    assert_eq!(
        of(&[2, 0]).get(&"192.0.2.7".parse().unwrap()),
        Some(&live(&["eth1", "eth2"]))
    );
    assert!(of(&[2]).is_empty());
}

/// A node that withdrew from an address is passed over for the whole group holding it (its
/// sharers included) and the next node answers; the node ranked after the owner is named,
/// and no group names its owner as next.
#[test]
fn a_withdrawn_address_moves_its_group_to_the_next_node() {
    let nodes = ["node-a", "node-b", "node-c"];
    let offers = vec![
        offer("x", &["192.0.2.7"], &nodes, None),
        offer("y", &["192.0.2.7", "192.0.2.8"], &nodes, None),
        offer("z", &["192.0.2.9"], &nodes, None),
    ];
    let known = BTreeMap::new();
    let before = place(&offers, &known, &Withdrawn::new(), Steering::ranked());
    let owner = before[0].decision.node.clone().unwrap();
    let next = before[0].decision.next.clone().unwrap();
    assert_ne!(owner, next);
    assert_eq!(before[1].decision.node, Some(owner.clone()));
    let ranked = election::rank("192.0.2.7".parse().unwrap(), nodes);
    assert_eq!([&*owner, &*next], ranked[..2]);

    // The owner withdrew from the sharer's second address only: the group moves whole.
    let withdrawn = Withdrawn::from([(
        owner.to_string(),
        BTreeSet::from(["192.0.2.8".parse().unwrap()]),
    )]);
    let after = place(&offers, &known, &withdrawn, Steering::ranked());
    for p in &after[..2] {
        assert_eq!(p.decision.node, Some(next.clone()));
        assert_eq!(p.decision.next.as_deref(), Some(ranked[2]));
    }
    // Another group is not touched.
    assert_eq!(after[2].decision, before[2].decision);
}
