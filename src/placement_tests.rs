use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

const STICKY: Policy = Policy::STICKY;
const EVEN: Policy = Policy::EVEN;
const BOTH: Policy = Policy::STICKY_EVEN;
const RANKED: Policy = Policy::RANKED;

fn v4(i: u32) -> IpAddr {
    IpAddr::from(std::net::Ipv4Addr::from(
        0xC000_0200u32 + (i % 250) + ((i / 250) << 8),
    ))
}

/// Owners by name: each group's owner under `policy`, `candidates` eligible for every group,
/// `claims` the current owners (group index → node).
fn owners(
    policy: Policy,
    count: u32,
    candidates: &[&str],
    claims: &BTreeMap<u32, &str>,
) -> BTreeMap<u32, String> {
    let groups: Vec<Group<'_>> = (0..count)
        .map(|i| Group {
            lowest: v4(i),
            candidates: candidates.iter().map(|n| (*n, 0)).collect(),
            claimants: claims.get(&i).into_iter().copied().collect(),
        })
        .collect();
    assign(policy, &groups)
        .into_iter()
        .enumerate()
        .filter_map(|(i, (owner, _))| Some((i as u32, groups[i].candidates[owner?].0.to_owned())))
        .collect()
}

fn counts(owners: &BTreeMap<u32, String>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for node in owners.values() {
        *out.entry(node.clone()).or_insert(0) += 1;
    }
    out
}

fn as_claims(owners: &BTreeMap<u32, String>) -> BTreeMap<u32, &str> {
    owners.iter().map(|(g, n)| (*g, n.as_str())).collect()
}

fn moved(a: &BTreeMap<u32, String>, b: &BTreeMap<u32, String>) -> usize {
    a.iter().filter(|(g, n)| b.get(g) != Some(n)).count()
}

#[test]
fn ranked_is_the_election_ranking_and_ignores_claims() {
    let all = ["node-a", "node-b", "node-c"];
    let claims: BTreeMap<u32, &str> = (0..30).map(|g| (g, "node-c")).collect();
    let got = owners(RANKED, 30, &all, &claims);
    for (g, node) in &got {
        assert_eq!(
            *node,
            election::rank(v4(*g), all)[0],
            "group {g} follows the ranking"
        );
    }
    assert!(counts(&got)["node-c"] < 30, "claims are not read");
}

#[test]
fn sticky_keeps_a_live_eligible_claimant_and_ranks_the_rest() {
    let all = ["node-a", "node-b", "node-c"];
    let plain = owners(RANKED, 40, &all, &BTreeMap::new());
    // node-a took over every group while the others were away; they are back.
    let claims: BTreeMap<u32, &str> = (0..40).map(|g| (g, "node-a")).collect();
    assert!(
        owners(STICKY, 40, &all, &claims)
            .values()
            .all(|n| n == "node-a"),
        "a returning node takes nothing announced elsewhere"
    );
    // A claimant that is not a candidate (dead, ineligible) keeps nothing: the ranking places.
    assert_eq!(owners(STICKY, 40, &["node-b", "node-c"], &claims), {
        owners(RANKED, 40, &["node-b", "node-c"], &BTreeMap::new())
    });
    // Nothing claimed: the ranking.
    assert_eq!(owners(STICKY, 40, &all, &BTreeMap::new()), plain);
}

/// 60 addresses over three nodes: 20 each; a death moves only the dead node's 20 (10 to each
/// survivor), and the return moves 20 back.
#[test]
fn even_spread_is_exact_and_moves_only_what_it_must() {
    let all = ["node-a", "node-b", "node-c"];
    let fresh = owners(EVEN, 60, &all, &BTreeMap::new());
    assert_eq!(counts(&fresh).values().collect::<Vec<_>>(), [&20, &20, &20]);
    let plain = counts(&owners(RANKED, 60, &all, &BTreeMap::new()));
    assert_ne!(
        plain.values().max(),
        Some(&20),
        "the ranking alone is uneven here"
    );
    let survivors = ["node-a", "node-c"];
    let after = owners(EVEN, 60, &survivors, &as_claims(&fresh));
    assert_eq!(counts(&after).values().collect::<Vec<_>>(), [&30, &30]);
    for (g, node) in &fresh {
        if node != "node-b" {
            assert_eq!(&after[g], node, "group {g} stays where it was");
        }
    }
    let back = owners(EVEN, 60, &all, &as_claims(&after));
    assert_eq!(counts(&back).values().collect::<Vec<_>>(), [&20, &20, &20]);
    assert_eq!(
        moved(&after, &back),
        20,
        "the returning node takes its share"
    );
    // Sticky and even: the returning node takes nothing, new groups go to it first.
    let both = owners(BOTH, 63, &all, &as_claims(&after));
    assert_eq!(both.values().filter(|n| *n == "node-b").count(), 3);
    assert_eq!(moved(&after, &both), 0);
}

#[test]
fn uneven_counts_differ_by_one_and_restricted_groups_are_placed_first() {
    let all = ["node-a", "node-b", "node-c"];
    let got = counts(&owners(EVEN, 61, &all, &BTreeMap::new()));
    let mut loads: Vec<usize> = got.values().copied().collect();
    loads.sort_unstable();
    assert_eq!(loads, [20, 20, 21]);
    // Ten groups only node-a may announce, twenty any node: node-a gets the ten, the others
    // share the twenty (base 10 each).
    let mut groups: Vec<Group<'_>> = (0..10)
        .map(|i| Group {
            lowest: v4(100 + i),
            candidates: vec![("node-a", 0)],
            claimants: vec![],
        })
        .collect();
    groups.extend((0..20).map(|i| Group {
        lowest: v4(i),
        candidates: all.iter().map(|n| (*n, 0)).collect(),
        claimants: vec![],
    }));
    let mut load: BTreeMap<&str, usize> = BTreeMap::new();
    for (g, (owner, _)) in groups.iter().zip(assign(EVEN, &groups)) {
        *load.entry(g.candidates[owner.unwrap()].0).or_insert(0) += 1;
    }
    assert_eq!(load.values().collect::<Vec<_>>(), [&10, &10, &10]);
}

#[test]
fn preference_comes_before_room() {
    let groups: Vec<Group<'_>> = (0..6)
        .map(|i| Group {
            lowest: v4(i),
            candidates: vec![("node-a", 0), ("node-b", 0), ("node-c", 50)],
            claimants: vec![],
        })
        .collect();
    let got = assign(EVEN, &groups);
    // node-c is preferred: it fills its share first, the rest spread over the others.
    let on_c = got.iter().filter(|(o, _)| *o == Some(2)).count();
    assert_eq!(on_c, 2);
    for (owner, next) in got {
        assert!(owner.is_some() && next.is_some() && owner != next);
    }
}

const NODES: [&str; 4] = ["node-a", "node-b", "node-c", "node-d"];

proptest! {
    /// Even spread with every group open to every node: counts differ by at most one.
    #[test]
    fn even_counts_differ_by_at_most_one(count in 0u32..200, nodes in 1usize..5) {
        let names = &NODES[..nodes];
        let got = counts(&owners(EVEN, count, names, &BTreeMap::new()));
        let loads: Vec<usize> = names.iter().map(|n| got.get(*n).copied().unwrap_or(0)).collect();
        let (min, max) = (loads.iter().min().copied().unwrap_or(0), loads.iter().max().copied().unwrap_or(0));
        prop_assert!(max - min <= 1, "{:?}", loads);
    }
}
