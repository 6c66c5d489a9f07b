//! Which IPs this node announces (pure): the one election path of both speaker modes. Each mode
//! works out, per service, the nodes its advertisements and the health rules allow
//! ([`crate::advertise::candidates`]; Kubernetes: [`super::kubernetes::cluster`], static:
//! [`super::static_mode::static_ads`]), then [`place`] elects one owner per address group and says where it
//! announces, and [`owned_by`] turns the decisions into this node's owned set.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use crate::advertise::{self, Cause, Decision, Eligible, Interfaces, Reach};
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
    let members: Vec<(&[IpAddr], &BTreeSet<String>)> = candidates
        .iter()
        .map(|c| (c.ips.as_slice(), &c.eligible))
        .collect();
    let owners: Vec<Option<String>> = group_owners(&members, &Withdrawn::new())
        .0
        .into_iter()
        .map(|((node, _), _)| node.map(str::to_owned))
        .collect();
    candidates
        .into_iter()
        .zip(owners)
        .map(|(c, node)| Announcement {
            node,
            service: c.service,
            ips: c.ips,
        })
        .collect()
}

/// Members elected together (joined by shared addresses): each member's group key (the
/// smallest index in its group), and the members in the order of their groups.
struct Groups {
    key: Vec<usize>,
    order: Vec<usize>,
}

impl Groups {
    /// Every group's members (never empty).
    fn iter(&self) -> impl Iterator<Item = &[usize]> {
        self.order.chunk_by(|a, b| self.key[*a] == self.key[*b])
    }

    /// The members of the group keyed `key`.
    fn of(&self, key: usize) -> &[usize] {
        let start = self.order.partition_point(|&m| self.key[m] < key);
        let end = self.order.partition_point(|&m| self.key[m] <= key);
        &self.order[start..end]
    }
}

/// The addresses each node has withdrawn from: a node told by the node ranked after it that it
/// does not answer for an address stops answering it (`speaker::answer_check`), and every
/// speaker then elects each group holding one of those addresses without it.
pub type Withdrawn = BTreeMap<String, BTreeSet<IpAddr>>;

/// A group's elected node and the node ranked after it.
type Elected<'a> = (Option<&'a str>, Option<&'a str>);

/// For members given as (ips, eligible nodes): each one's elected node and the next one (see
/// [`elect`]; a node that withdrew from one of the group's addresses is passed over) and group
/// key, and the groups.
fn group_owners<'a>(
    members: &[(&[IpAddr], &'a BTreeSet<String>)],
    withdrawn: &Withdrawn,
) -> (Vec<(Elected<'a>, usize)>, Groups) {
    let mut out: Vec<(Elected<'a>, usize)> = vec![((None, None), 0); members.len()];
    let groups = address_groups(members.iter().map(|(ips, _)| *ips));
    for group in groups.iter() {
        let Some((first, rest)) = group.split_first() else {
            continue;
        };
        let firsts = group.iter().filter_map(|&i| members[i].0.first());
        let holds = |node: &str| {
            withdrawn.get(node).is_some_and(|gone| {
                group
                    .iter()
                    .any(|&m| members[m].0.iter().any(|ip| gone.contains(ip)))
            })
        };
        // The nodes every member allows: the first member's, kept where all others allow it.
        let common = members[*first]
            .1
            .iter()
            .filter(|n| rest.iter().all(|&m| members[m].1.contains(*n)))
            .map(String::as_str)
            .filter(|n| !holds(n));
        let elected = election::group_owner_and_next(firsts, common);
        for &m in group {
            out[m] = (elected, *first);
        }
    }
    (out, groups)
}

/// Members joined by shared addresses (union-find over member indices).
fn address_groups<'a>(ips: impl Iterator<Item = &'a [IpAddr]>) -> Groups {
    let ips: Vec<&[IpAddr]> = ips.collect();
    let mut parent: Vec<usize> = (0..ips.len()).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut first_holder: HashMap<IpAddr, usize> = HashMap::new();
    for (i, held) in ips.iter().enumerate() {
        for ip in *held {
            let other = *first_holder.entry(*ip).or_insert(i);
            let (a, b) = (find(&mut parent, i), find(&mut parent, other));
            parent[a.max(b)] = a.min(b);
        }
    }
    let key: Vec<usize> = (0..ips.len()).map(|i| find(&mut parent, i)).collect();
    let mut order: Vec<usize> = (0..ips.len()).collect();
    // Stable, and already in order when no address is shared.
    order.sort_by_key(|&i| key[i]);
    Groups { key, order }
}

/// One service offered to the election: its advertisements' reach and the nodes that may
/// announce it, or why none may.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The key, shared with the cache and every map of the pass.
    pub service: Arc<str>,
    /// Shared with the cache.
    pub ips: Arc<[IpAddr]>,
    /// Shared by every Service of a pool whose advertisements select no Service by label.
    pub reach: Arc<[Reach]>,
    pub eligible: Eligible,
}

/// A service's election result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub service: Arc<str>,
    pub ips: Arc<[IpAddr]>,
    pub decision: Decision,
}

/// Elects every offer with eligible nodes one owner per address group ([`elect`]), and places
/// each on the interfaces its advertisements allow on that owner
/// ([`advertise::placement`]; `known` holds the usable interfaces of nodes that published
/// them; `withdrawn`, the addresses nodes withdrew from). Results come back in the offers'
/// order.
pub fn place<'a>(
    offers: impl IntoIterator<Item = &'a Offer>,
    known: &BTreeMap<String, BTreeSet<String>>,
    withdrawn: &Withdrawn,
) -> Vec<Placed> {
    let offers: Vec<&Offer> = offers.into_iter().collect();
    let eligible: Vec<(usize, &[IpAddr], &BTreeSet<String>)> = offers
        .iter()
        .enumerate()
        .filter_map(|(i, o)| Some((i, &*o.ips, &**o.eligible.as_ref().ok()?)))
        .collect();
    let members: Vec<(&[IpAddr], &BTreeSet<String>)> =
        eligible.iter().map(|(_, ips, e)| (*ips, *e)).collect();
    let (owners, groups) = group_owners(&members, withdrawn);
    // One name per node for the whole election, not one per Service.
    let mut names: Vec<Arc<str>> = Vec::new();
    let mut name = |node: &str| -> Arc<str> {
        match names.iter().find(|n| &***n == node) {
            Some(n) => n.clone(),
            None => {
                let n: Arc<str> = Arc::from(node);
                names.push(n.clone());
                n
            }
        }
    };
    let mut elected: Vec<Option<(Elected<'_>, usize)>> = vec![None; offers.len()];
    for ((i, _, _), owner) in eligible.iter().zip(owners) {
        elected[*i] = Some(owner);
    }
    offers
        .iter()
        .zip(elected)
        .map(|(o, elected)| {
            let decision = match (&o.eligible, elected) {
                (Err(cause), _) => Decision {
                    node: None,
                    interfaces: Interfaces::All,
                    next: None,
                    cause: Some(cause.clone()),
                },
                (Ok(_), Some(((Some(node), next), _))) => {
                    let (interfaces, cause) = advertise::placement(&o.reach, node, known);
                    Decision {
                        node: Some(name(node)),
                        interfaces,
                        next: next.map(&mut name),
                        cause,
                    }
                }
                (Ok(_), unowned) => Decision {
                    node: None,
                    interfaces: Interfaces::All,
                    next: None,
                    cause: Some(Cause::NoCommonNode {
                        sharers: unowned
                            .map(|(_, key)| groups.of(key))
                            .unwrap_or_default()
                            .iter()
                            .map(|&m| offers[eligible[m].0].service.to_string())
                            .collect(),
                    }),
                },
            };
            Placed {
                service: o.service.clone(),
                ips: o.ips.clone(),
                decision,
            }
        })
        .collect()
}

/// The interfaces each address placed on `me` is restricted to, from the decisions of the
/// Services holding it: an address several Services share takes the interfaces *every* sharer
/// allows (their intersection, possibly none), not those of whichever sharer comes first. An
/// address every holder allows on every interface is absent.
pub fn address_interfaces<'a>(
    me: &str,
    placed: impl IntoIterator<Item = (&'a [IpAddr], &'a Decision)>,
) -> BTreeMap<IpAddr, BTreeSet<String>> {
    let mut by_ip: BTreeMap<IpAddr, Interfaces> = BTreeMap::new();
    for (ips, decision) in placed {
        if decision.node.as_deref() != Some(me) {
            continue;
        }
        for ip in ips {
            let next = match by_ip.remove(ip) {
                None => decision.interfaces.clone(),
                Some(held) => held.intersect(&decision.interfaces),
            };
            by_ip.insert(*ip, next);
        }
    }
    by_ip
        .into_iter()
        .filter_map(|(ip, i)| match i {
            Interfaces::All => None,
            Interfaces::Named(names) => Some((ip, names)),
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
        let before = place(&offers, &known, &Withdrawn::new());
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
        let after = place(&offers, &known, &withdrawn);
        for p in &after[..2] {
            assert_eq!(p.decision.node, Some(next.clone()));
            assert_eq!(p.decision.next.as_deref(), Some(ranked[2]));
        }
        // Another group is not touched.
        assert_eq!(after[2].decision, before[2].decision);
    }
}
