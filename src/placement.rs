//! Placement policies (pure): which of a group's candidates announces it, the same in every
//! speaker. [`election`] ranks the candidates (MetalLB's rule: the highest
//! `preferredNodeSelectors` score, then `sha256(node + "#" + firstIP)`); a policy decides from
//! that ranking and the *claims*: the addresses each live node says, through gossip, that it
//! announces now.
//!
//! - **Ranked** (the default, MetalLB's): the first-ranked candidate. Claims are not read.
//! - **Sticky**: a candidate that claims one of the group's addresses keeps the group (the
//!   first-ranked such claimant if several do); a group nobody eligible claims goes to the
//!   first-ranked candidate, which then claims it and keeps it. A node that joins or returns
//!   takes nothing announced elsewhere.
//! - **Even spread**: the groups are spread so that the owners' counts differ by at most one
//!   when every group may go to every candidate node (`G` groups over `N` nodes: each node
//!   holds `⌊G/N⌋`, and `G mod N` of them one more). A claimant keeps its group while its count
//!   allows (the groups it ranks best on first); the rest go, in a fixed order, to their
//!   first-ranked candidate with room. So a node that leaves moves only its own groups, and one
//!   that joins takes about its share. Groups that only some nodes may announce are placed
//!   first (fewest candidates first); a group whose candidates are all full stays with its
//!   claimant, else goes to its first-ranked candidate, so the bound only holds as far as
//!   eligibility allows.
//! - **Sticky and even**: claimants keep everything; only unclaimed groups are placed by
//!   count. The spread evens out as addresses come and go, never by moving one.
//!
//! Every speaker computes the same owners from the same inputs. What keeps two nodes from
//! answering one address while their inputs differ (a watch a little behind, claims still in
//! flight) is the speaker's handover: under a policy that reads claims, a node answers an
//! address only once no other live node claims it, so a group changes hands only after its old
//! owner released it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::election;

/// How owners are placed (both off: MetalLB's ranking).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// `--sticky-ownership`.
    pub sticky: bool,
    /// `--even-spread`.
    pub even: bool,
}

impl Policy {
    /// MetalLB's ranking.
    pub const RANKED: Policy = Policy {
        sticky: false,
        even: false,
    };
    pub const STICKY: Policy = Policy {
        sticky: true,
        even: false,
    };
    pub const EVEN: Policy = Policy {
        sticky: false,
        even: true,
    };
    pub const STICKY_EVEN: Policy = Policy {
        sticky: true,
        even: true,
    };

    /// MetalLB's ranking alone: claims are neither read nor gossiped.
    pub fn is_ranked(self) -> bool {
        !self.sticky && !self.even
    }

    /// How logs and `plan` name it.
    pub fn label(self) -> &'static str {
        match (self.sticky, self.even) {
            (false, false) => "ranked",
            (true, false) => "sticky",
            (false, true) => "even",
            (true, true) => "sticky-even",
        }
    }
}

/// The addresses each live node claims (announces now, as it said through gossip; this
/// node's own owned set for itself), indexed by address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    by_ip: BTreeMap<IpAddr, Vec<String>>,
}

impl Claims {
    /// Claims from each node's claimed addresses.
    pub fn new<'a, I>(nodes: impl IntoIterator<Item = (&'a str, I)>) -> Self
    where
        I: IntoIterator<Item = &'a IpAddr>,
    {
        let mut by_ip: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
        for (node, addresses) in nodes {
            for ip in addresses {
                let holders = by_ip.entry(*ip).or_default();
                if !holders.iter().any(|h| h == node) {
                    holders.push(node.to_owned());
                }
            }
        }
        Self { by_ip }
    }

    /// The nodes claiming `ip`.
    pub fn of(&self, ip: &IpAddr) -> &[String] {
        self.by_ip.get(ip).map_or(&[], Vec::as_slice)
    }

    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }
}

/// One address group offered to the placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group<'a> {
    /// The IP the group is ranked by (the lowest first IP of its Services).
    pub lowest: IpAddr,
    /// The eligible nodes, each with its preference score.
    pub candidates: Vec<(&'a str, u32)>,
    /// The nodes claiming one of the group's addresses, candidates or not.
    pub claimants: Vec<&'a str>,
}

/// Each group's owner and the candidate ranked first after it (the one that checks the owner
/// answers), as indices into its `candidates`.
pub fn assign(policy: Policy, groups: &[Group<'_>]) -> Vec<(Option<usize>, Option<usize>)> {
    if policy.is_ranked() {
        // The owner and the next node only: no full ordering per group.
        return groups
            .iter()
            .map(|g| election::scored_first_two(g.lowest, &g.candidates))
            .collect();
    }
    let ranked: Vec<Vec<usize>> = groups
        .iter()
        .map(|g| election::scored_order(g.lowest, &g.candidates))
        .collect();
    let owners: Vec<Option<usize>> = {
        let kept = groups
            .iter()
            .zip(&ranked)
            .map(|(g, r)| {
                r.iter()
                    .copied()
                    .find(|&c| g.claimants.contains(&g.candidates[c].0))
            })
            .collect();
        if policy.even {
            spread(policy.sticky, groups, &ranked, kept)
        } else {
            kept.into_iter()
                .zip(&ranked)
                .map(|(k, r)| k.or_else(|| r.first().copied()))
                .collect()
        }
    };
    owners
        .into_iter()
        .zip(&ranked)
        .map(|(owner, r)| (owner, r.iter().copied().find(|&c| Some(c) != owner)))
        .collect()
}

/// Even spread: `kept` (each group's eligible claimant) trimmed to each node's share unless
/// `sticky`, then the rest placed by count.
fn spread(
    sticky: bool,
    groups: &[Group<'_>],
    ranked: &[Vec<usize>],
    mut owners: Vec<Option<usize>>,
) -> Vec<Option<usize>> {
    let name = |g: usize, c: usize| groups[g].candidates[c].0;
    let claimant = owners.clone();
    let mut load: BTreeMap<&str, usize> = BTreeMap::new();
    for (g, r) in ranked.iter().enumerate() {
        for &c in r {
            load.entry(name(g, c)).or_insert(0);
        }
    }
    if load.is_empty() {
        return owners;
    }
    let placeable = ranked.iter().filter(|r| !r.is_empty()).count();
    let (base, extra) = (placeable / load.len(), placeable % load.len());
    // Nodes holding one more than `base`.
    let mut over = 0;
    if sticky {
        for (g, owner) in owners.iter().enumerate() {
            if let Some(c) = owner {
                *load.entry(name(g, *c)).or_insert(0) += 1;
            }
        }
        over = load.values().filter(|l| **l > base).count();
    } else {
        // Each node keeps the groups it ranks best on (its place in their ranking, then the
        // group's IP), up to its share.
        let mut held: BTreeMap<&str, Vec<(usize, IpAddr, usize)>> = BTreeMap::new();
        for (g, owner) in owners.iter().enumerate() {
            if let Some(c) = owner {
                let place = ranked[g].iter().position(|x| x == c).unwrap_or(usize::MAX);
                held.entry(name(g, *c))
                    .or_default()
                    .push((place, groups[g].lowest, g));
            }
        }
        for (node, mut list) in held {
            list.sort_unstable();
            let mut keep = base.min(list.len());
            if list.len() > base && over < extra {
                keep += 1;
                over += 1;
            }
            for &(_, _, g) in &list[keep..] {
                owners[g] = None;
            }
            load.insert(node, keep);
        }
    }
    // The rest: fewest candidates first, then by IP, each to its first-ranked node with room.
    let mut rest: Vec<usize> = (0..groups.len())
        .filter(|&g| owners[g].is_none() && !ranked[g].is_empty())
        .collect();
    rest.sort_unstable_by_key(|&g| (ranked[g].len(), groups[g].lowest));
    for g in rest {
        let room = |l: usize, over: usize| l < base || (l == base && over < extra);
        // No candidate has room (eligibility is uneven): its claimant keeps it, else the
        // first-ranked takes it, so a placement fed its own result gives it again.
        let pick = ranked[g]
            .iter()
            .copied()
            .find(|&c| room(load[name(g, c)], over))
            .or(claimant[g])
            .unwrap_or(ranked[g][0]);
        let l = load.entry(name(g, pick)).or_insert(0);
        if *l == base {
            over += 1;
        }
        *l += 1;
        owners[g] = Some(pick);
    }
    owners
}

#[cfg(test)]
#[path = "placement_tests.rs"]
mod tests;
