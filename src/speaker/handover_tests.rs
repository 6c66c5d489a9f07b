use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::placement::{self, Claims, Group, Policy};

fn v4(i: u32) -> IpAddr {
    IpAddr::from(Ipv4Addr::from(0xC000_0200u32 + i))
}

fn set(ips: &[u32]) -> BTreeSet<IpAddr> {
    ips.iter().map(|i| v4(*i)).collect()
}

fn claimed(answering: &[u32], pending: &[u32]) -> Claimed {
    Claimed {
        answering: set(answering),
        pending: set(pending),
    }
}

#[test]
fn a_new_address_is_claimed_first_and_answered_after_the_hold() {
    let t0 = Instant::now();
    let mut h = Handover::new("node-a".into());
    assert!(h.step(&set(&[1]), &BTreeMap::new(), t0));
    assert!(h.answering().is_empty());
    assert_eq!(h.claimed(), claimed(&[], &[1]));
    assert_eq!(h.next_deadline(), Some(t0 + HOLD));
    h.step(&set(&[1]), &BTreeMap::new(), t0 + HOLD);
    assert_eq!(h.answering(), &set(&[1]));
    assert_eq!(h.next_deadline(), None);
    // Not elected any more: released at once.
    assert!(h.step(&set(&[]), &BTreeMap::new(), t0 + HOLD * 2));
    assert_eq!(h.claimed(), Claimed::default());
}

#[test]
fn an_address_another_node_answers_is_taken_only_after_its_release() {
    let t0 = Instant::now();
    let mut h = Handover::new("node-a".into());
    let mut others = BTreeMap::from([("node-b".to_string(), claimed(&[1], &[]))]);
    h.step(&set(&[1]), &others, t0);
    h.step(&set(&[1]), &others, t0 + HOLD * 4);
    assert!(h.answering().is_empty(), "node-b still answers");
    assert!(h.claimed().pending.is_empty(), "nothing claimed meanwhile");
    // Released (node-b is still a member): the hold runs from now.
    others.insert("node-b".into(), Claimed::default());
    h.step(&set(&[1]), &others, t0 + HOLD * 5);
    assert!(h.answering().is_empty());
    h.step(&set(&[1]), &others, t0 + HOLD * 6);
    assert_eq!(h.answering(), &set(&[1]));
}

#[test]
fn a_dead_owners_addresses_are_answered_at_once() {
    let t0 = Instant::now();
    let mut h = Handover::new("node-a".into());
    let others = BTreeMap::from([("node-b".to_string(), claimed(&[1], &[]))]);
    h.step(&set(&[]), &others, t0);
    // node-b left the members: its address is taken without a hold.
    h.step(&set(&[1]), &BTreeMap::new(), t0 + Duration::from_millis(1));
    assert_eq!(h.answering(), &set(&[1]));
}

#[test]
fn of_two_pending_claims_the_first_ranked_node_answers() {
    let ip = v4(7);
    let ranked = election::rank(ip, ["node-a", "node-b"]);
    let (winner, loser) = (ranked[0], ranked[1]);
    let t0 = Instant::now();
    let mut w = Handover::new(winner.into());
    let mut l = Handover::new(loser.into());
    w.step(&set(&[7]), &BTreeMap::new(), t0);
    l.step(&set(&[7]), &BTreeMap::new(), t0);
    let heard = |h: &Handover, name: &str| BTreeMap::from([(name.to_string(), h.claimed())]);
    let (from_w, from_l) = (heard(&w, winner), heard(&l, loser));
    w.step(&set(&[7]), &from_l, t0 + HOLD);
    l.step(&set(&[7]), &from_w, t0 + HOLD);
    assert_eq!(w.answering(), &set(&[7]));
    assert!(l.answering().is_empty() && l.claimed().pending.is_empty());
    // Two answering (a partition healed): the first-ranked keeps it, the other lets go.
    let mut l2 = Handover::new(loser.into());
    l2.step(&set(&[7]), &BTreeMap::new(), t0);
    l2.step(&set(&[7]), &BTreeMap::new(), t0 + HOLD);
    assert_eq!(l2.answering(), &set(&[7]));
    l2.step(
        &set(&[7]),
        &BTreeMap::from([(winner.to_string(), w.claimed())]),
        t0 + HOLD * 2,
    );
    assert!(l2.answering().is_empty());
}

// The cluster model: speakers that decide from their own view of the Services, the same live
// members, and the claims gossip carries a round late.

/// Each Service as one speaker sees it: its address and the nodes it allows.
type View = BTreeMap<u32, BTreeSet<&'static str>>;

const NODES: [&str; 4] = ["node-a", "node-b", "node-c", "node-d"];

/// `me`'s pass over `view` with the live members `alive`: the placement from everyone's
/// claims, then the handover.
fn pass(
    policy: Policy,
    h: &mut Handover,
    me: &str,
    (view, alive): (&View, &BTreeSet<&str>),
    heard: &BTreeMap<String, Claimed>,
    now: Instant,
) {
    let mut all = heard.clone();
    all.insert(me.to_owned(), h.claimed());
    let claims = Claims::new(all.iter().map(|(n, c)| (n.as_str(), c.all())));
    let keys: Vec<u32> = view.keys().copied().collect();
    let groups: Vec<Group<'_>> = keys
        .iter()
        .map(|g| Group {
            lowest: v4(*g),
            candidates: view[g]
                .iter()
                .filter(|n| alive.contains(*n))
                .map(|n| (*n, 0))
                .collect(),
            claimants: claims.of(&v4(*g)).iter().map(String::as_str).collect(),
        })
        .collect();
    let elected: BTreeSet<IpAddr> = placement::assign(policy, &groups)
        .into_iter()
        .zip(&groups)
        .filter(|((o, _), g)| o.is_some_and(|c| g.candidates[c].0 == me))
        .map(|(_, g)| g.lowest)
        .collect();
    let others: BTreeMap<String, Claimed> = heard
        .iter()
        .filter(|(n, _)| *n != me)
        .map(|(n, c)| (n.clone(), c.clone()))
        .collect();
    h.step(&elected, &others, now);
}

/// Speakers in `order` (speaker, whether it has seen `after`), ten to a round of 100 ms; claims
/// reach the others at the start of the next round; a dead speaker (`None`) neither passes nor
/// answers, and drops out of the members at once. No address may have two answering nodes.
fn run(
    policy: Policy,
    views: [&View; 2],
    order: &[(usize, bool)],
    speakers: &mut [Option<Handover>],
    t0: Instant,
) -> Result<(), TestCaseError> {
    let alive: BTreeSet<&str> = (0..NODES.len())
        .filter(|i| speakers[*i].is_some())
        .map(|i| NODES[i])
        .collect();
    let mut heard: BTreeMap<String, Claimed> = BTreeMap::new();
    for (step, (s, ahead)) in order.iter().enumerate() {
        let now = t0 + Duration::from_millis(10 * step as u64);
        if step % 10 == 0 {
            heard = speakers
                .iter()
                .flatten()
                .map(|h| (h.me.clone(), h.claimed()))
                .collect();
        }
        let me = NODES[*s];
        let Some(h) = speakers[*s].as_mut() else {
            continue;
        };
        let view = (views[usize::from(*ahead)], &alive);
        pass(policy, h, me, view, &heard, now);
        let mut seen = BTreeSet::new();
        for h in speakers.iter().flatten() {
            for ip in h.answering() {
                prop_assert!(seen.insert(*ip), "{ip} answered twice at step {step}");
            }
        }
    }
    Ok(())
}

fn settle(
    policy: Policy,
    view: &View,
    speakers: &mut [Option<Handover>],
    t0: Instant,
) -> Result<(), TestCaseError> {
    let order: Vec<(usize, bool)> = (0..80).map(|i| (i % NODES.len(), false)).collect();
    run(policy, [view, view], &order, speakers, t0)
}

/// Every address with a live candidate answered by one node, the others by none.
fn answered_once(view: &View, speakers: &[Option<Handover>]) -> Result<(), TestCaseError> {
    for (g, nodes) in view {
        let holders = speakers
            .iter()
            .flatten()
            .filter(|h| h.answering().contains(&v4(*g)))
            .count();
        let live = nodes.iter().any(|n| {
            let i = NODES.iter().position(|m| m == n).unwrap_or(usize::MAX);
            speakers.get(i).is_some_and(Option::is_some)
        });
        prop_assert_eq!(holders, usize::from(live), "group {}", g);
    }
    Ok(())
}

fn view_strategy() -> impl Strategy<Value = View> {
    proptest::collection::btree_map(
        0u32..16,
        proptest::sample::subsequence(NODES.to_vec(), 1..=4)
            .prop_map(|ns| ns.into_iter().collect::<BTreeSet<_>>()),
        0..12,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Speakers with the same view converge to one answering node per address with a
    /// candidate; while they see a Service change in different orders (speaker 0 first, each
    /// other one at its own step, never back), no address is answered by two nodes. Then a
    /// member dies and comes back (a restarted speaker claims nothing): no address is answered
    /// twice meanwhile, and they converge again each time.
    #[test]
    fn one_answering_node_per_address_whatever_order_speakers_see_changes(
        policy in prop_oneof![
            Just(Policy::STICKY),
            Just(Policy::EVEN),
            Just(Policy::STICKY_EVEN),
        ],
        before in view_strategy(),
        after in view_strategy(),
        order in proptest::collection::vec(0usize..4, 0..60),
        switch in proptest::collection::vec(0usize..60, 4),
        dies in 0usize..4,
        meanwhile in proptest::collection::vec(0usize..4, 0..30),
    ) {
        let t0 = Instant::now();
        let mut speakers: Vec<Option<Handover>> =
            NODES.iter().map(|n| Some(Handover::new(n.to_string()))).collect();
        settle(policy, &before, &mut speakers, t0)?;
        answered_once(&before, &speakers)?;
        let ahead: Vec<(usize, bool)> = order
            .iter()
            .enumerate()
            .map(|(step, s)| (*s, *s == 0 || switch[*s] <= step))
            .collect();
        let t1 = t0 + Duration::from_secs(10);
        run(policy, [&before, &after], &ahead, &mut speakers, t1)?;
        settle(policy, &after, &mut speakers, t1 + Duration::from_secs(10))?;
        answered_once(&after, &speakers)?;
        let steps: Vec<(usize, bool)> = meanwhile.iter().map(|s| (*s, false)).collect();
        speakers[dies] = None;
        let t2 = t1 + Duration::from_secs(20);
        run(policy, [&after, &after], &steps, &mut speakers, t2)?;
        settle(policy, &after, &mut speakers, t2 + Duration::from_secs(10))?;
        answered_once(&after, &speakers)?;
        speakers[dies] = Some(Handover::new(NODES[dies].to_string()));
        let t3 = t2 + Duration::from_secs(20);
        run(policy, [&after, &after], &steps, &mut speakers, t3)?;
        settle(policy, &after, &mut speakers, t3 + Duration::from_secs(10))?;
        answered_once(&after, &speakers)?;
    }
}
