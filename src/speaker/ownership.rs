//! Which IPs this node announces (pure): the one election path of both speaker modes. Each mode
//! works out, per service, the nodes its advertisements and the health rules allow
//! ([`crate::advertise::candidates`]; Kubernetes: [`super::cluster`], static:
//! [`super::static_ads`]), then [`place`] elects one owner per address group and says where it
//! announces, and [`owned_by`] turns the decisions into this node's owned set.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use crate::advertise::{self, Cause, Decision, Interfaces, Reach};
use crate::election;

/// The announcing decision for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// `namespace/name` in Kubernetes, the file's name in static mode.
    pub service: String,
    /// The IPs announced together, in order.
    pub ips: Vec<IpAddr>,
    /// The elected node, if any is eligible.
    pub node: Option<String>,
}

/// One service before the election: its IPs and the nodes that may announce it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub service: String,
    pub ips: Vec<IpAddr>,
    pub eligible: BTreeSet<String>,
}

/// Elects the announcer of every candidate, one per address group: services that share an
/// address (directly or through a chain of sharers) are announced from one node, since two nodes
/// answering for one address would split its clients. A group is ranked by the lowest first IP of
/// its services ([`election::group_owner`]) among the nodes every member allows. Announcements
/// come back in the candidates' order.
pub fn elect(candidates: Vec<Candidate>) -> Vec<Announcement> {
    let groups = address_groups(&candidates);
    let mut owners: BTreeMap<usize, Option<String>> = BTreeMap::new();
    for (root, members) in &groups {
        let firsts: Vec<IpAddr> = members
            .iter()
            .filter_map(|&i| candidates[i].ips.first().copied())
            .collect();
        let mut allowed = members.iter().map(|&i| &candidates[i].eligible);
        let first = allowed.next().cloned().unwrap_or_default();
        let common: BTreeSet<String> =
            allowed.fold(first, |acc, e| acc.intersection(e).cloned().collect());
        let node = election::group_owner(&firsts, common.iter().map(String::as_str));
        owners.insert(*root, node.map(str::to_owned));
    }
    let root_of: BTreeMap<usize, usize> = groups
        .iter()
        .flat_map(|(root, members)| members.iter().map(move |&m| (m, *root)))
        .collect();
    candidates
        .into_iter()
        .enumerate()
        .map(|(i, c)| Announcement {
            node: root_of
                .get(&i)
                .and_then(|r| owners.get(r))
                .cloned()
                .flatten(),
            service: c.service,
            ips: c.ips,
        })
        .collect()
}

/// Candidates joined by shared addresses (union-find over candidate indices): each group's
/// smallest index and its members.
fn address_groups(candidates: &[Candidate]) -> BTreeMap<usize, Vec<usize>> {
    let mut parent: Vec<usize> = (0..candidates.len()).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut first_holder: HashMap<IpAddr, usize> = HashMap::new();
    for (i, c) in candidates.iter().enumerate() {
        for ip in &c.ips {
            let other = *first_holder.entry(*ip).or_insert(i);
            let (a, b) = (find(&mut parent, i), find(&mut parent, other));
            parent[a.max(b)] = a.min(b);
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..candidates.len() {
        let root = find(&mut parent, i);
        groups.entry(root).or_default().push(i);
    }
    groups
}

/// One service offered to the election: its advertisements' reach and the nodes that may
/// announce it, or why none may.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub service: String,
    pub ips: Vec<IpAddr>,
    pub reach: Vec<Reach>,
    pub eligible: Result<BTreeSet<String>, Cause>,
}

/// A service's election result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub service: String,
    pub ips: Vec<IpAddr>,
    pub decision: Decision,
}

/// Elects every offer with eligible nodes one owner per address group ([`elect`]), and places
/// each on the interfaces its advertisements allow on that owner
/// ([`advertise::placement`]; `known` holds the usable interfaces of nodes that published
/// them). Results come back in the offers' order.
pub fn place(offers: Vec<Offer>, known: &BTreeMap<String, BTreeSet<String>>) -> Vec<Placed> {
    let candidates: Vec<Candidate> = offers
        .iter()
        .filter_map(|o| {
            Some(Candidate {
                service: o.service.clone(),
                ips: o.ips.clone(),
                eligible: o.eligible.as_ref().ok()?.clone(),
            })
        })
        .collect();
    let groups = address_groups(&candidates);
    let mut sharers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for members in groups.values() {
        let names: Vec<String> = members
            .iter()
            .map(|&i| candidates[i].service.clone())
            .collect();
        for name in &names {
            sharers.insert(name.clone(), names.clone());
        }
    }
    let mut elected: BTreeMap<String, Option<String>> = elect(candidates.clone())
        .into_iter()
        .map(|a| (a.service, a.node))
        .collect();
    offers
        .into_iter()
        .map(|o| {
            let decision = match o.eligible {
                Err(cause) => Decision {
                    node: None,
                    interfaces: Interfaces::All,
                    cause: Some(cause),
                },
                Ok(_) => match elected.remove(&o.service).flatten() {
                    Some(node) => {
                        let (interfaces, cause) = advertise::placement(&o.reach, &node, known);
                        Decision {
                            node: Some(node),
                            interfaces,
                            cause,
                        }
                    }
                    None => Decision {
                        node: None,
                        interfaces: Interfaces::All,
                        cause: Some(Cause::NoCommonNode {
                            sharers: sharers.remove(&o.service).unwrap_or_default(),
                        }),
                    },
                },
            };
            Placed {
                service: o.service,
                ips: o.ips,
                decision,
            }
        })
        .collect()
}

/// The IPs `me` must answer for, each with the service it belongs to.
pub fn owned_by(me: &str, announcements: &[Announcement]) -> BTreeMap<IpAddr, String> {
    announcements
        .iter()
        .filter(|a| a.node.as_deref() == Some(me))
        .flat_map(|a| a.ips.iter().map(|ip| (*ip, a.service.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
            .flat_map(|i| {
                (1..=254).map(move |j| (format!("192.0.2.{i}"), format!("2001:db8::{j:x}")))
            })
            .find(|(a, b)| {
                election::owner(a.parse().unwrap(), names)
                    != election::owner(b.parse().unwrap(), names)
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
        }];
        Offer {
            service: name.into(),
            ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
            reach,
            eligible: Ok(live(nodes)),
        }
    }

    /// Sharers whose advertisements select different nodes: elected among the nodes both allow,
    /// each placed on its own advertisement's interfaces; with no node in common, neither is
    /// announced and both say why; a refused offer keeps its own cause.
    #[test]
    fn place_elects_groups_within_their_advertisements_and_reports_no_common_node() {
        let known = BTreeMap::new();
        let placed = place(
            vec![
                offer("x", &["192.0.2.7"], &["node-a", "node-b"], Some(&["eth1"])),
                offer("y", &["192.0.2.7"], &["node-b", "node-c"], None),
            ],
            &known,
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
            vec![
                offer("x", &["192.0.2.7"], &["node-a"], None),
                offer("y", &["192.0.2.7"], &["node-c"], None),
                refused,
            ],
            &known,
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
            vec![offer(
                "x",
                &["192.0.2.7"],
                &["node-a", "node-b"],
                Some(&["eth1"]),
            )],
            &known,
        );
        let node = placed[0].decision.node.clone().unwrap();
        assert_eq!(placed[0].decision.cause, Some(Cause::NoInterface { node }));
    }
}
