//! Per-IP owner election (pure).
//!
//! Every speaker computes the same answer from the same inputs, so no coordination is needed beyond
//! agreeing on who is alive: the eligible nodes for a service are ranked by
//! `sha256(node_name + "#" + ip)` ascending and the first one owns the IP. The hash spreads IPs
//! evenly over nodes and, unlike "lowest name wins", a node's death only moves the IPs it owned.
//!
//! The inputs are plain Rust types so the Kubernetes edge and the static mode feed the same code.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// What the speaker knows about one node, whatever the source (Node object or static file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub name: String,
    /// The Node's `Ready` condition is `True`. Only consulted when gossip is disabled.
    pub ready: bool,
    /// The Node's `NetworkUnavailable` condition is `True`.
    pub network_unavailable: bool,
    /// The Node carries the taint [`OUT_OF_SERVICE_TAINT`] (any effect): an operator declared
    /// the node gone, so it announces nothing whatever gossip or its Ready condition say.
    pub out_of_service: bool,
    /// The Node carries the label [`EXCLUDE_LB_LABEL`] (any value, as Kubernetes does).
    pub exclude_from_external_lb: bool,
}

/// The well-known label that keeps a node out of external load balancers.
pub const EXCLUDE_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// The well-known taint an operator puts on a node that is shut down for good (Kubernetes'
/// non-graceful node shutdown): a node carrying it never announces.
pub const OUT_OF_SERVICE_TAINT: &str = "node.kubernetes.io/out-of-service";

/// How liveness is decided.
#[derive(Debug, Clone, Copy)]
pub enum Liveness<'a> {
    /// Gossip is on: a node is alive when its speaker is a live member.
    Gossip(&'a BTreeSet<String>),
    /// Gossip is off (`--gossip=false`): a Ready Node running a speaker (these names; the
    /// deciding speaker counts its own node). A Ready Node without a speaker would win
    /// addresses that nobody then answers.
    NodeReady(&'a BTreeSet<String>),
}

/// Which nodes may announce a given service, beyond being healthy.
#[derive(Debug, Clone, Copy)]
pub enum TrafficScope<'a> {
    /// `externalTrafficPolicy: Cluster`: any healthy node.
    Cluster,
    /// `externalTrafficPolicy: Local`: only nodes holding a ready or serving endpoint (see
    /// [`local_endpoint_nodes`]).
    Local(&'a BTreeSet<String>),
}

/// Cluster-wide eligibility switches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EligibilityOptions {
    /// `--ignore-exclude-lb`: announce from nodes carrying [`EXCLUDE_LB_LABEL`] too.
    pub ignore_exclude_lb: bool,
}

/// One endpoint of a service as an EndpointSlice reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStatus {
    /// Shared by every endpoint on the node ([`crate::k8s::node::shared_name`]).
    pub node_name: Option<Arc<str>>,
    /// `conditions.ready`; `None` is "unknown", which the API says to read as ready.
    pub ready: Option<bool>,
    /// `conditions.serving`; `None` means the cluster does not report it, so `ready` decides.
    pub serving: Option<bool>,
}

impl EndpointStatus {
    /// Ready, or still serving while terminating (so a rolling update keeps the IP announced from
    /// the node until its last serving endpoint is gone).
    pub fn counts_for_local(&self) -> bool {
        self.ready.unwrap_or(true) || self.serving == Some(true)
    }
}

/// The nodes that hold at least one ready or serving endpoint, for [`TrafficScope::Local`].
pub fn local_endpoint_nodes<'a>(
    endpoints: impl IntoIterator<Item = &'a EndpointStatus>,
) -> BTreeSet<String> {
    endpoints
        .into_iter()
        .filter(|ep| ep.counts_for_local())
        .filter_map(|ep| Some(ep.node_name.as_deref()?.to_owned()))
        .collect()
}

/// The names of the nodes allowed to announce a service, sorted and deduplicated.
pub fn eligible_nodes<'a>(
    nodes: &'a [NodeStatus],
    liveness: Liveness<'_>,
    scope: TrafficScope<'_>,
    options: EligibilityOptions,
) -> Vec<&'a str> {
    let mut eligible: Vec<&str> = nodes
        .iter()
        .filter(|node| match liveness {
            Liveness::Gossip(alive) => alive.contains(&node.name),
            Liveness::NodeReady(speakers) => node.ready && speakers.contains(&node.name),
        })
        .filter(|node| !node.out_of_service)
        .filter(|node| !node.network_unavailable)
        .filter(|node| options.ignore_exclude_lb || !node.exclude_from_external_lb)
        .filter(|node| match scope {
            TrafficScope::Cluster => true,
            TrafficScope::Local(with_endpoint) => with_endpoint.contains(&node.name),
        })
        .map(|node| node.name.as_str())
        .collect();
    eligible.sort_unstable();
    eligible.dedup();
    eligible
}

/// `sha256(node_name + "#" + ip)`, the rank key of `node` for `ip`. IPv6 uses the canonical
/// (RFC 5952) text form so every speaker hashes the same string.
pub fn rank_key(node: &str, ip: IpAddr) -> [u8; 32] {
    key_of(node, &ip.to_string())
}

/// [`rank_key`] with the IP already in its text form (written once for every node ranked).
fn key_of(node: &str, ip: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(node.as_bytes());
    hasher.update(b"#");
    hasher.update(ip.as_bytes());
    hasher.finalize().into()
}

/// The given nodes in election order for `ip` (first = owner). Duplicates are removed, so the
/// result is a permutation of the distinct input names.
pub fn rank<'a>(ip: IpAddr, nodes: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let text = ip.to_string();
    let mut keyed: Vec<([u8; 32], &str)> = nodes
        .into_iter()
        .map(|node| (key_of(node, &text), node))
        .collect();
    // The name breaks ties so the order is total even if two names ever hashed alike.
    keyed.sort_unstable();
    keyed.dedup_by(|a, b| a.1 == b.1);
    keyed.into_iter().map(|(_, node)| node).collect()
}

/// Indices of `candidates` (node, preference score) in election order for `ip`: the highest
/// score first, then `sha256(node + "#" + ip)` ascending (MetalLB's `preferredNodeSelectors`
/// rule); a name listed twice keeps its first place only.
pub fn scored_order(ip: IpAddr, candidates: &[(&str, u32)]) -> Vec<usize> {
    let text = ip.to_string();
    let mut keyed: Vec<((u32, [u8; 32]), usize)> = candidates
        .iter()
        .enumerate()
        .map(|(i, (node, score))| ((u32::MAX - score, key_of(node, &text)), i))
        .collect();
    keyed.sort_unstable();
    let mut seen: Vec<&str> = Vec::with_capacity(keyed.len());
    keyed
        .into_iter()
        .filter(|(_, i)| {
            let node = candidates[*i].0;
            let new = !seen.contains(&node);
            seen.push(node);
            new
        })
        .map(|(_, i)| i)
        .collect()
}

/// The first two of [`scored_order`], without ordering the rest (MetalLB's ranking needs only
/// the owner and the node after it).
pub fn scored_first_two(ip: IpAddr, candidates: &[(&str, u32)]) -> (Option<usize>, Option<usize>) {
    let text = ip.to_string();
    type Keyed = ((u32, [u8; 32]), usize);
    let mut best: [Option<Keyed>; 2] = [None, None];
    for (i, (node, score)) in candidates.iter().enumerate() {
        let keyed = ((u32::MAX - score, key_of(node, &text)), i);
        let same =
            |b: Option<((u32, [u8; 32]), usize)>| b.is_some_and(|b| candidates[b.1].0 == *node);
        if best[0].is_none_or(|b| keyed.0 < b.0) {
            if !same(best[0]) {
                best[1] = best[0];
            }
            best[0] = Some(keyed);
        } else if !same(best[0]) && best[1].is_none_or(|b| keyed.0 < b.0) {
            best[1] = Some(keyed);
        }
    }
    (best[0].map(|b| b.1), best[1].map(|b| b.1))
}

/// The node that announces `ip`, or `None` when no node is eligible.
pub fn owner<'a>(ip: IpAddr, eligible: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let text = ip.to_string();
    eligible
        .into_iter()
        .map(|node| (key_of(node, &text), node))
        .min()
        .map(|(_, node)| node)
}

/// The node that announces a group of IPs announced together: the owner of the lowest of
/// `firsts`, the first IPs of the group's services. A service that shares no address is ranked by
/// its own first IP (as MetalLB ranks it), so its dual-stack IPs move together; services sharing
/// an address are ranked by one IP whatever each one's first IP is, so one node answers for the
/// shared address. `None` when there is no IP or no node is eligible.
pub fn group_owner<'a, 'i>(
    firsts: impl IntoIterator<Item = &'i IpAddr>,
    eligible: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lowest = firsts.into_iter().min()?;
    owner(*lowest, eligible)
}

/// [`group_owner`] with preference scores (MetalLB's `preferredNodeSelectors`: a higher score
/// ranks first, the hash breaks ties), and the node ranked right after the owner: the one that
/// checks the owner answers (`speaker::answer_check`), and takes over if it does not.
pub fn group_owner_and_next<'a, 'i>(
    firsts: impl IntoIterator<Item = &'i IpAddr>,
    eligible: impl IntoIterator<Item = (&'a str, u32)>,
) -> (Option<&'a str>, Option<&'a str>) {
    let Some(lowest) = firsts.into_iter().min() else {
        return (None, None);
    };
    let candidates: Vec<(&'a str, u32)> = eligible.into_iter().collect();
    let (owner, next) = scored_first_two(*lowest, &candidates);
    (
        owner.map(|i| candidates[i].0),
        next.map(|i| candidates[i].0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn healthy(name: &str) -> NodeStatus {
        NodeStatus {
            name: name.to_string(),
            ready: true,
            network_unavailable: false,
            out_of_service: false,
            exclude_from_external_lb: false,
        }
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn ranking_matches_the_design_test_vector() {
        let nodes = ["node-a", "node-b", "node-c"];
        assert_eq!(rank(ip("10.0.0.1"), nodes), ["node-b", "node-a", "node-c"]);
        assert_eq!(rank(ip("10.0.0.2"), nodes), ["node-b", "node-c", "node-a"]);
        // Input order must not matter.
        let reversed = ["node-c", "node-b", "node-a"];
        assert_eq!(
            rank(ip("10.0.0.2"), reversed),
            ["node-b", "node-c", "node-a"]
        );
    }

    #[test]
    fn owner_is_first_ranked_and_moves_only_when_it_dies() {
        assert_eq!(
            owner(ip("10.0.0.1"), ["node-a", "node-b", "node-c"]),
            Some("node-b")
        );
        // node-b gone: the next in 10.0.0.1's ranking takes over.
        assert_eq!(owner(ip("10.0.0.1"), ["node-a", "node-c"]), Some("node-a"));
        assert_eq!(owner(ip("10.0.0.2"), ["node-a", "node-c"]), Some("node-c"));
        assert_eq!(owner(ip("10.0.0.1"), std::iter::empty::<&str>()), None);
    }

    #[test]
    fn ipv6_is_hashed_in_canonical_form() {
        let long = ip("2001:0db8:0000:0000:0000:0000:0000:0001");
        assert_eq!(
            rank_key("node-a", long),
            rank_key("node-a", ip("2001:db8::1"))
        );
        let mut hasher = Sha256::new();
        hasher.update(b"node-a#2001:db8::1");
        let expected: [u8; 32] = hasher.finalize().into();
        assert_eq!(rank_key("node-a", long), expected);
    }

    #[test]
    fn group_follows_its_lowest_first_ip() {
        let nodes = ["node-a", "node-b", "node-c"];
        let second_alone = owner(ip("2001:db8::5"), nodes).unwrap();
        let first_alone = owner(ip("10.0.0.1"), nodes).unwrap();
        assert_ne!(
            first_alone, second_alone,
            "the test needs IPs with different owners"
        );
        // A lone Service's first IP, or the lowest of sharers' first IPs, in any order.
        assert_eq!(group_owner(&[ip("10.0.0.1")], nodes), Some(first_alone));
        assert_eq!(group_owner(&[ip("2001:db8::5")], nodes), Some(second_alone));
        let firsts = [ip("2001:db8::5"), ip("10.0.0.1")];
        assert_eq!(group_owner(&firsts, nodes), Some(first_alone));
        assert_eq!(group_owner(&[], nodes), None);
    }

    #[test]
    fn gossip_liveness_decides_when_gossip_is_on() {
        let mut not_ready = healthy("node-b");
        not_ready.ready = false;
        let nodes = vec![healthy("node-a"), not_ready, healthy("node-c")];
        let alive = set(&["node-a", "node-b", "node-x"]);
        let eligible = eligible_nodes(
            &nodes,
            Liveness::Gossip(&alive),
            TrafficScope::Cluster,
            EligibilityOptions::default(),
        );
        // node-b is alive in gossip (Ready is ignored), node-c is not, node-x is no known node.
        assert_eq!(eligible, ["node-a", "node-b"]);
    }

    #[test]
    fn node_ready_with_a_speaker_decides_when_gossip_is_off() {
        let mut not_ready = healthy("node-b");
        not_ready.ready = false;
        let nodes = vec![healthy("node-a"), not_ready, healthy("node-c")];
        // node-c is Ready but runs no speaker: it must not win addresses nobody would answer.
        let speakers = set(&["node-a", "node-b"]);
        let eligible = eligible_nodes(
            &nodes,
            Liveness::NodeReady(&speakers),
            TrafficScope::Cluster,
            EligibilityOptions::default(),
        );
        assert_eq!(eligible, ["node-a"]);
    }

    #[test]
    fn network_unavailable_excludes_a_node() {
        let mut broken = healthy("node-a");
        broken.network_unavailable = true;
        let nodes = vec![broken, healthy("node-b")];
        let alive = set(&["node-a", "node-b"]);
        let eligible = eligible_nodes(
            &nodes,
            Liveness::Gossip(&alive),
            TrafficScope::Cluster,
            EligibilityOptions::default(),
        );
        assert_eq!(eligible, ["node-b"]);
    }

    #[test]
    fn an_out_of_service_node_is_excluded_whatever_says_it_is_alive() {
        let mut gone = healthy("node-a");
        gone.out_of_service = true;
        let nodes = vec![gone, healthy("node-b")];
        let alive = set(&["node-a", "node-b"]);
        for liveness in [Liveness::Gossip(&alive), Liveness::NodeReady(&alive)] {
            let eligible = eligible_nodes(
                &nodes,
                liveness,
                TrafficScope::Cluster,
                EligibilityOptions {
                    ignore_exclude_lb: true,
                },
            );
            assert_eq!(eligible, ["node-b"], "{liveness:?}");
        }
    }

    #[test]
    fn exclude_label_is_honoured_unless_ignored() {
        let mut labelled = healthy("node-a");
        labelled.exclude_from_external_lb = true;
        let nodes = vec![labelled, healthy("node-b")];
        let alive = set(&["node-a", "node-b"]);
        let strict = eligible_nodes(
            &nodes,
            Liveness::Gossip(&alive),
            TrafficScope::Cluster,
            EligibilityOptions::default(),
        );
        assert_eq!(strict, ["node-b"]);
        let ignoring = eligible_nodes(
            &nodes,
            Liveness::Gossip(&alive),
            TrafficScope::Cluster,
            EligibilityOptions {
                ignore_exclude_lb: true,
            },
        );
        assert_eq!(ignoring, ["node-a", "node-b"]);
    }

    #[test]
    fn local_policy_needs_a_ready_or_serving_endpoint_on_the_node() {
        let endpoints = [
            // ready
            EndpointStatus {
                node_name: Some("node-a".into()),
                ready: Some(true),
                serving: None,
            },
            // terminating but still serving
            EndpointStatus {
                node_name: Some("node-b".into()),
                ready: Some(false),
                serving: Some(true),
            },
            // neither
            EndpointStatus {
                node_name: Some("node-c".into()),
                ready: Some(false),
                serving: Some(false),
            },
            // not ready and serving unreported: not serving
            EndpointStatus {
                node_name: Some("node-d".into()),
                ready: Some(false),
                serving: None,
            },
            // unknown readiness counts as ready, per the EndpointSlice API
            EndpointStatus {
                node_name: Some("node-e".into()),
                ready: None,
                serving: None,
            },
            // no node: cannot count for any node
            EndpointStatus {
                node_name: None,
                ready: Some(true),
                serving: Some(true),
            },
        ];
        let with_endpoint = local_endpoint_nodes(&endpoints);
        assert_eq!(with_endpoint, set(&["node-a", "node-b", "node-e"]));

        let nodes: Vec<NodeStatus> = ["node-a", "node-b", "node-c", "node-d", "node-e", "node-f"]
            .map(healthy)
            .to_vec();
        let alive = set(&["node-a", "node-b", "node-c", "node-d", "node-f"]);
        let eligible = eligible_nodes(
            &nodes,
            Liveness::Gossip(&alive),
            TrafficScope::Local(&with_endpoint),
            EligibilityOptions::default(),
        );
        // node-e has an endpoint but is dead; node-f is alive without an endpoint.
        assert_eq!(eligible, ["node-a", "node-b"]);
    }

    fn node_strategy() -> impl Strategy<Value = NodeStatus> {
        (
            "[a-z]{1,3}",
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(name, ready, network_unavailable, out_of_service, exclude_from_external_lb)| {
                    NodeStatus {
                        name,
                        ready,
                        network_unavailable,
                        out_of_service,
                        exclude_from_external_lb,
                    }
                },
            )
    }

    fn ip_strategy() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
        ]
    }

    proptest! {
        #[test]
        fn owner_is_always_an_eligible_node(
            nodes in proptest::collection::vec(node_strategy(), 0..8),
            alive in proptest::collection::btree_set("[a-z]{1,3}", 0..8),
            with_endpoint in proptest::collection::btree_set("[a-z]{1,3}", 0..8),
            local in any::<bool>(),
            gossip in any::<bool>(),
            ignore_exclude_lb in any::<bool>(),
            ips in proptest::collection::vec(ip_strategy(), 0..3),
        ) {
            let speakers: BTreeSet<String> = nodes.iter().map(|n| n.name.clone()).collect();
            let liveness = if gossip { Liveness::Gossip(&alive) } else { Liveness::NodeReady(&speakers) };
            let scope = if local { TrafficScope::Local(&with_endpoint) } else { TrafficScope::Cluster };
            let options = EligibilityOptions { ignore_exclude_lb };
            let eligible = eligible_nodes(&nodes, liveness, scope, options);
            for name in &eligible {
                // Every eligible node satisfies every rule for at least one entry of that name.
                let satisfied = nodes.iter().any(|n| {
                    let live = if gossip { alive.contains(&n.name) } else { n.ready };
                    n.name == *name
                        && live
                        && !n.network_unavailable
                        && !n.out_of_service
                        && (ignore_exclude_lb || !n.exclude_from_external_lb)
                        && (!local || with_endpoint.contains(&n.name))
                });
                prop_assert!(satisfied, "{} is not eligible", name);
            }
            match group_owner(&ips, eligible.iter().copied()) {
                Some(chosen) => {
                    prop_assert!(eligible.contains(&chosen));
                    let lowest = ips.iter().min().copied().unwrap_or(ips[0]);
                    prop_assert_eq!(Some(chosen), rank(lowest, eligible.iter().copied()).first().copied());
                }
                None => prop_assert!(ips.is_empty() || eligible.is_empty()),
            }
        }

        #[test]
        fn ranking_is_a_permutation_independent_of_input_order(
            names in proptest::collection::vec("[a-z0-9-]{1,6}", 0..10),
            addr in ip_strategy(),
        ) {
            let ranked = rank(addr, names.iter().map(String::as_str));
            let distinct: BTreeSet<&str> = names.iter().map(String::as_str).collect();
            prop_assert_eq!(ranked.len(), distinct.len());
            prop_assert_eq!(ranked.iter().copied().collect::<BTreeSet<_>>(), distinct);
            let reversed = rank(addr, names.iter().rev().map(String::as_str));
            prop_assert_eq!(&ranked, &reversed);
            for pair in ranked.windows(2) {
                prop_assert!(rank_key(pair[0], addr) < rank_key(pair[1], addr));
            }
        }
    }

    proptest! {
        /// The shortcut's two are the full scored order's first two.
        #[test]
        fn first_two_are_the_scored_orders_first_two(
            nodes in proptest::collection::vec(("[a-d]{1,3}", 0u32..3), 0..8),
            last in 0u8..255,
        ) {
            let address = IpAddr::from([192, 0, 2, last]);
            let cands: Vec<(&str, u32)> = nodes.iter().map(|(n, s)| (n.as_str(), *s)).collect();
            let order = scored_order(address, &cands);
            let name = |i: Option<usize>| i.map(|i| cands[i].0);
            let (a, b) = scored_first_two(address, &cands);
            prop_assert_eq!(name(a), name(order.first().copied()));
            prop_assert_eq!(name(b), name(order.get(1).copied()));
        }

        /// The owner and the next node are the first two of the full ranking.
        #[test]
        fn owner_and_next_are_the_first_two_ranked(
            nodes in proptest::collection::vec("[a-d]{1,3}", 0..8),
            last in 0u8..255,
        ) {
            let address = IpAddr::from([192, 0, 2, last]);
            let ranked = rank(address, nodes.iter().map(String::as_str));
            let (owner, next) =
                group_owner_and_next(&[address], nodes.iter().map(|n| (n.as_str(), 0)));
            prop_assert_eq!(owner, ranked.first().copied());
            prop_assert_eq!(next, ranked.get(1).copied());
        }
    }
}
