//! Which IPs this node announces (pure): the one election path of both speaker modes. Each mode
//! works out, per service, the nodes its advertisements and the health rules allow
//! ([`crate::advertise::candidates`]; Kubernetes: [`super::kubernetes::cluster`], static:
//! [`super::static_mode::static_ads`]), then [`place`] elects one owner per address group and says where it
//! announces, and [`owned_by`] turns the decisions into this node's owned set.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use crate::advertise::{self, Cause, Decision, Eligible, Interfaces, Reach};
use crate::placement::{self, Claims, Policy};

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
/// its services ([`crate::election::group_owner`]) among the nodes every member allows. Announcements
/// come back in the candidates' order.
pub fn elect(candidates: Vec<Candidate>) -> Vec<Announcement> {
    let members: Vec<Member<'_>> = candidates
        .iter()
        .map(|c| (c.ips.as_slice(), &c.eligible, None))
        .collect();
    let owners: Vec<Option<String>> = group_owners(&members, &Withdrawn::new(), Steering::ranked())
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

/// A member of the election: its IPs, its eligible nodes and its advertisements' reach (for
/// the preference scores; `None`: no preferences).
type Member<'a> = (&'a [IpAddr], &'a BTreeSet<String>, Option<&'a [Reach]>);

/// How a placement is steered beyond MetalLB's ranking: the policy and, for a policy that
/// reads them, the claims (see [`placement`]).
#[derive(Debug, Clone, Copy)]
pub struct Steering<'a> {
    pub policy: Policy,
    pub claims: &'a Claims,
}

impl Steering<'_> {
    /// MetalLB's ranking.
    pub fn ranked() -> Steering<'static> {
        static NONE: std::sync::LazyLock<Claims> = std::sync::LazyLock::new(Claims::default);
        Steering {
            policy: Policy::default(),
            claims: &NONE,
        }
    }
}

/// For members: each one's elected node and the next one (see [`elect`]; the highest
/// preference score first, then the ranking, under `steer`'s policy; a node that withdrew
/// from one of the group's addresses is passed over) and group key, and the groups.
fn group_owners<'a>(
    members: &[Member<'a>],
    withdrawn: &Withdrawn,
    steer: Steering<'_>,
) -> (Vec<(Elected<'a>, usize)>, Groups) {
    let mut out: Vec<(Elected<'a>, usize)> = vec![((None, None), 0); members.len()];
    let groups = address_groups(members.iter().map(|(ips, _, _)| *ips));
    let mut spans: Vec<&[usize]> = Vec::new();
    let mut offered: Vec<placement::Group<'a>> = Vec::new();
    for group in groups.iter() {
        let Some((first, rest)) = group.split_first() else {
            continue;
        };
        let Some(lowest) = group.iter().filter_map(|&i| members[i].0.first()).min() else {
            continue;
        };
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
        // A node's score for the group: its preference scores summed over the members (a
        // group of one scores as MetalLB scores that Service).
        let candidates = common
            .map(|n| {
                let score = group
                    .iter()
                    .map(|&m| {
                        members[m]
                            .2
                            .map_or(0, |reach| advertise::preference_score(reach, n))
                    })
                    .sum();
                (n, score)
            })
            .collect();
        let mut claimants: Vec<&'a str> = Vec::new();
        if !steer.policy.is_ranked() {
            for ip in group.iter().flat_map(|&m| members[m].0) {
                for node in steer.claims.of(ip) {
                    // Only a candidate's claim is read: borrow its name from the candidates.
                    if let Some(name) = members[*first].1.get(node)
                        && !claimants.contains(&name.as_str())
                    {
                        claimants.push(name.as_str());
                    }
                }
            }
        }
        spans.push(group);
        offered.push(placement::Group {
            lowest: *lowest,
            candidates,
            claimants,
        });
    }
    let placed = placement::assign(steer.policy, &offered);
    for ((group, g), (owner, next)) in spans.iter().zip(&offered).zip(placed) {
        let name = |c: Option<usize>| c.map(|c| g.candidates[c].0);
        for &m in *group {
            out[m] = ((name(owner), name(next)), group[0]);
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
/// them; `withdrawn`, the addresses nodes withdrew from; `steer`, the placement policy).
/// Results come back in the offers' order.
pub fn place<'a>(
    offers: impl IntoIterator<Item = &'a Offer>,
    known: &BTreeMap<String, BTreeSet<String>>,
    withdrawn: &Withdrawn,
    steer: Steering<'_>,
) -> Vec<Placed> {
    let offers: Vec<&Offer> = offers.into_iter().collect();
    let eligible: Vec<(usize, &[IpAddr], &BTreeSet<String>)> = offers
        .iter()
        .enumerate()
        .filter_map(|(i, o)| Some((i, &*o.ips, &**o.eligible.as_ref().ok()?)))
        .collect();
    let members: Vec<Member<'_>> = eligible
        .iter()
        .map(|(i, ips, e)| (*ips, *e, Some(&*offers[*i].reach)))
        .collect();
    let (owners, groups) = group_owners(&members, withdrawn, steer);
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
#[path = "ownership_tests.rs"]
mod tests;
