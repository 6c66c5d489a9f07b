use super::*;
use crate::config::parse_file;

const POOLS: &str = "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: front, namespace: ferrolb}
spec:
  addresses: [192.0.2.0/28]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lonely, namespace: ferrolb}
spec:
  addresses: [198.51.100.0/28]
";

fn config(ads: &str) -> Config {
    parse_file(&format!("{POOLS}{ads}")).unwrap().config
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn healthy(name: &str) -> NodeStatus {
    NodeStatus {
        name: name.into(),
        ready: true,
        network_unavailable: false,
        out_of_service: false,
        exclude_from_external_lb: false,
    }
}

/// Two advertisements for pool `front`: zone=a nodes on eth1, node-c on eth2 and eth3, and a
/// third one only for Services labelled `tier: web` that adds every interface on node-b.
const ADS: &str = "
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: zone-a, namespace: ferrolb}
spec:
  ipAddressPools: [front]
  nodeSelectors: [{matchLabels: {zone: a}}]
  interfaces: [eth1]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: node-c, namespace: ferrolb}
spec:
  ipAddressPools: [front]
  nodeSelectors: [{matchLabels: {kubernetes.io/hostname: node-c}}]
  interfaces: [eth2, eth3]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: web-anywhere, namespace: ferrolb}
spec:
  ipAddressPools: [front]
  nodeSelectors: [{matchLabels: {kubernetes.io/hostname: node-b}}]
  serviceSelectors: [{matchLabels: {tier: web}}]
";

struct Cluster {
    labels: Vec<(String, Labels)>,
}

impl Cluster {
    fn new() -> Self {
        let node = |name: &str, zone: &str| {
            (
                name.to_string(),
                labels(&[("kubernetes.io/hostname", name), ("zone", zone)]),
            )
        };
        Cluster {
            labels: vec![
                node("node-a", "a"),
                node("node-b", "a"),
                node("node-c", "b"),
                node("node-d", "b"),
            ],
        }
    }

    fn view(&self) -> Vec<(&str, &Labels)> {
        self.labels.iter().map(|(n, l)| (n.as_str(), l)).collect()
    }
}

fn layer2(reach: PoolReach) -> Vec<Reach> {
    match reach {
        PoolReach::Layer2(r) => r,
        other => panic!("expected layer 2, got {other:?}"),
    }
}

#[test]
fn nodes_and_interfaces_are_unions_over_the_selecting_advertisements() {
    let cfg = config(ADS);
    let cluster = Cluster::new();
    let plain = layer2(pool_reach(
        &cfg,
        ip("192.0.2.1"),
        &Labels::new(),
        &cluster.view(),
    ));
    assert_eq!(
        plain.len(),
        2,
        "the web-only advertisement does not select this Service"
    );
    assert_eq!(
        reach_nodes(&plain),
        BTreeSet::from(["node-a", "node-b", "node-c"])
    );
    assert_eq!(
        interfaces_of(&plain, "node-c"),
        Some(Interfaces::Named(names(&["eth2", "eth3"])))
    );
    assert_eq!(
        interfaces_of(&plain, "node-b"),
        Some(Interfaces::Named(names(&["eth1"])))
    );
    assert_eq!(interfaces_of(&plain, "node-d"), None);

    // The web Service also gets the advertisement without `interfaces` on node-b: all of them.
    let web = layer2(pool_reach(
        &cfg,
        ip("192.0.2.1"),
        &labels(&[("tier", "web")]),
        &cluster.view(),
    ));
    assert_eq!(web.len(), 3);
    assert_eq!(interfaces_of(&web, "node-b"), Some(Interfaces::All));
    assert_eq!(
        interfaces_of(&web, "node-a"),
        Some(Interfaces::Named(names(&["eth1"])))
    );
    let usable = names(&["eth0", "eth1", "virbr0-excluded-upstream"]);
    assert_eq!(Interfaces::All.on(&usable).len(), 3);
    assert_eq!(
        Interfaces::Named(names(&["eth1", "eth9"])).on(&usable),
        BTreeSet::from(["eth1"])
    );
}

#[test]
fn a_pool_without_advertisement_or_in_bgp_is_not_announced_and_says_why() {
    let cfg = config(ADS);
    let cluster = Cluster::new();
    assert_eq!(
        pool_reach(&cfg, ip("198.51.100.1"), &Labels::new(), &cluster.view()),
        PoolReach::NoAdvertisement {
            pool: "lonely".into()
        }
    );
    assert_eq!(
        pool_reach(&cfg, ip("203.0.113.1"), &Labels::new(), &cluster.view()),
        PoolReach::OutsidePools
    );
    let legacy = crate::config::parse(
        "address-pools:\n- name: routed\n  protocol: bgp\n  addresses: [203.0.113.0/28]\n\
         peers:\n- my-asn: 64500\n  peer-asn: 64501\n  peer-address: 192.0.2.254\n",
    )
    .unwrap();
    // Announced over BGP to the peer, not over layer 2.
    assert_eq!(
        pool_reach(&legacy, ip("203.0.113.1"), &Labels::new(), &cluster.view()),
        PoolReach::BgpOnly
    );
    // Without a peer nobody announces it, and the reach says why.
    let unpeered = crate::config::parse(
        "address-pools:\n- name: routed\n  protocol: bgp\n  addresses: [203.0.113.0/28]\n",
    )
    .unwrap();
    assert_eq!(
        pool_reach(
            &unpeered,
            ip("203.0.113.1"),
            &Labels::new(),
            &cluster.view()
        ),
        PoolReach::Bgp {
            pool: "routed".into()
        }
    );
    // A legacy layer2 pool is advertised from every node on every interface.
    let l2 = crate::config::parse(
        "address-pools:\n- name: lan\n  protocol: layer2\n  addresses: [203.0.113.0/28]\n",
    )
    .unwrap();
    let reach = layer2(pool_reach(
        &l2,
        ip("203.0.113.1"),
        &Labels::new(),
        &cluster.view(),
    ));
    assert_eq!(reach_nodes(&reach).len(), 4);
    assert_eq!(interfaces_of(&reach, "node-d"), Some(Interfaces::All));
}

fn health<'a>(
    nodes: &'a [NodeStatus],
    live: &'a BTreeSet<String>,
    known: &'a BTreeMap<String, BTreeSet<String>>,
) -> Health<'a> {
    Health {
        nodes,
        liveness: Liveness::Gossip(live),
        scope: TrafficScope::Cluster,
        options: EligibilityOptions::default(),
        known_interfaces: known,
    }
}

fn reach(nodes: &[&str], interfaces: Option<&[&str]>) -> Reach {
    Reach {
        nodes: names(nodes),
        interfaces: match interfaces {
            None => Interfaces::All,
            Some(i) => Interfaces::Named(names(i)),
        },
        preferred: BTreeMap::new(),
    }
}

#[test]
fn the_owner_is_the_first_ranked_of_the_selected_healthy_nodes() {
    let nodes: Vec<NodeStatus> = ["node-a", "node-b", "node-c"].map(healthy).to_vec();
    let live = names(&["node-a", "node-b", "node-c"]);
    let known = BTreeMap::new();
    // 10.0.0.1 ranks node-b, node-a, node-c: restricted to {a, c} the owner is node-a.
    let r = [reach(&["node-a", "node-c"], Some(&["eth1"]))];
    let d = decide(&[ip("10.0.0.1")], &r, health(&nodes, &live, &known));
    assert_eq!(d.node.as_deref(), Some("node-a"));
    assert_eq!(d.interfaces, Interfaces::Named(names(&["eth1"])));
    assert_eq!(d.cause, None);
    // node-a dies: node-c, never node-b (not selected).
    let live = names(&["node-b", "node-c"]);
    let d = decide(&[ip("10.0.0.1")], &r, health(&nodes, &live, &known));
    assert_eq!(d.node.as_deref(), Some("node-c"));
    // Both selected nodes dead: nobody, with counts per reason.
    let live = names(&["node-b"]);
    let d = decide(&[ip("10.0.0.1")], &r, health(&nodes, &live, &known));
    assert_eq!(d.node, None);
    let cause = d.cause.unwrap();
    assert_eq!(
        cause,
        Cause::NoEligibleNode {
            counts: BTreeMap::from([(NodeReason::NotSelected, 1), (NodeReason::NotAlive, 2)])
        }
    );
    assert_eq!(
        cause.to_string(),
        "not announced: no eligible node (1 not selected by an advertisement, 2 not alive)"
    );
    assert_eq!(cause.label(), "no_eligible_node");
}

#[test]
fn an_out_of_service_node_is_counted_as_such_when_nobody_is_eligible() {
    let mut gone = healthy("node-a");
    gone.out_of_service = true;
    let nodes = vec![gone];
    let live = names(&["node-a"]);
    let known = BTreeMap::new();
    let d = decide(
        &[ip("10.0.0.1")],
        &[reach(&["node-a"], None)],
        health(&nodes, &live, &known),
    );
    assert_eq!(d.node, None);
    let cause = d.cause.unwrap();
    assert_eq!(
        cause.to_string(),
        "not announced: no eligible node (1 out-of-service taint)"
    );
}

#[test]
fn local_policy_without_endpoints_reports_no_serving_endpoint() {
    let nodes: Vec<NodeStatus> = ["node-a", "node-b"].map(healthy).to_vec();
    let live = names(&["node-a", "node-b"]);
    let known = BTreeMap::new();
    let none = BTreeSet::new();
    let mut h = health(&nodes, &live, &known);
    h.scope = TrafficScope::Local(&none);
    let d = decide(&[ip("10.0.0.1")], &[reach(&["node-a", "node-b"], None)], h);
    assert_eq!(d.cause, Some(Cause::NoServingEndpoint));
    // An endpoint on an unselected node is still no eligible node, counted as such.
    let on_b = names(&["node-b"]);
    h.scope = TrafficScope::Local(&on_b);
    let d = decide(&[ip("10.0.0.1")], &[reach(&["node-a"], None)], h);
    assert_eq!(
        d.cause,
        Some(Cause::NoEligibleNode {
            counts: BTreeMap::from([(NodeReason::NotSelected, 1), (NodeReason::NoEndpoint, 1)])
        })
    );
}

#[test]
fn nodes_known_to_lack_the_interface_are_skipped_while_another_has_it() {
    let nodes: Vec<NodeStatus> = ["node-a", "node-b", "node-c"].map(healthy).to_vec();
    let live = names(&["node-a", "node-b", "node-c"]);
    let r = [reach(&["node-a", "node-b", "node-c"], Some(&["eth1"]))];
    // 10.0.0.1 ranks node-b first; node-b has no eth1 (only eth0): node-a takes it.
    let mut known = BTreeMap::from([("node-b".to_string(), names(&["eth0"]))]);
    let d = decide(&[ip("10.0.0.1")], &r, health(&nodes, &live, &known));
    assert_eq!(d.node.as_deref(), Some("node-a"));
    assert_eq!(d.cause, None);
    // Nobody has eth1: the first ranked is elected, announces nothing, and the cause says so.
    known.insert("node-a".into(), names(&["eth0"]));
    known.insert("node-c".into(), names(&["eth0", "eth2"]));
    let d = decide(&[ip("10.0.0.1")], &r, health(&nodes, &live, &known));
    assert_eq!(d.node.as_deref(), Some("node-b"));
    assert_eq!(
        d.cause,
        Some(Cause::NoInterface {
            node: "node-b".into()
        })
    );
}

/// MetalLB's `preferredNodeSelectors` rule as its documentation states it, written out on its
/// own: each advertisement that applies to the Service gives each node it selects the sum of
/// the weights of its preferences that node's labels match; a node's score is the sum over
/// the advertisements; the highest score wins and `sha256(node#firstIP)` breaks ties.
fn metallb_preferred_owner(config: &Config, first: IpAddr, nodes: &[(&str, &Labels)]) -> String {
    let pool = config
        .address_pools
        .iter()
        .find(|p| p.contains(first))
        .unwrap();
    let ads = config.l2_advertisements_for(pool);
    let score = |labels: &Labels| -> u32 {
        ads.iter()
            .filter(|ad| ad.selects_node(labels))
            .flat_map(|ad| ad.preferred.iter())
            .filter(|p| p.preference.matches(labels))
            .map(|p| p.weight)
            .sum::<u32>()
    };
    let selected: Vec<(&str, u32)> = nodes
        .iter()
        .filter(|(_, labels)| ads.iter().any(|ad| ad.selects_node(labels)))
        .map(|(n, labels)| (*n, score(labels)))
        .collect();
    let best = selected.iter().map(|(_, s)| *s).max().unwrap();
    let tied: Vec<&str> = selected
        .iter()
        .filter(|(_, s)| *s == best)
        .map(|(n, _)| *n)
        .collect();
    election::rank(first, tied)[0].to_owned()
}

/// Table of `preferredNodeSelectors` cases, each checked over 16 addresses against the rule as
/// written ([`metallb_preferred_owner`]) and against what the case says.
#[test]
fn preferred_node_selectors_score_as_metallb_documents() {
    let a = labels(&[("zone", "a"), ("rack", "r1")]);
    let b = labels(&[("zone", "a"), ("rack", "r2"), ("disk", "ssd")]);
    let c = labels(&[("zone", "b"), ("rack", "r1")]);
    let d = labels(&[("zone", "b"), ("rack", "r3")]);
    let nodes: Vec<(&str, &Labels)> = vec![
        ("node-a", &a),
        ("node-b", &b),
        ("node-c", &c),
        ("node-d", &d),
    ];
    let statuses: Vec<NodeStatus> = ["node-a", "node-b", "node-c", "node-d"]
        .map(healthy)
        .to_vec();
    let live = names(&["node-a", "node-b", "node-c", "node-d"]);
    let known = BTreeMap::new();
    let ad = |name: &str, selectors: &str, preferred: &str| {
        format!(
            "---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: {name}, \
             namespace: ferrolb}}\nspec:\n  ipAddressPools: [front]\n{selectors}  \
             preferredNodeSelectors:\n{preferred}"
        )
    };
    let pref = |weight: u32, key: &str, value: &str| {
        format!("  - weight: {weight}\n    preference: {{matchLabels: {{{key}: {value}}}}}\n")
    };
    type Expect = fn(&str, &str) -> bool;
    let cases: Vec<(&str, String, Expect)> = vec![
        // A preference matching no node: the plain ranking.
        (
            "matches nothing",
            ad("one", "", &pref(90, "rack", "r9")),
            |owner, plain| owner == plain,
        ),
        // A preference matching only a node outside the advertisement's nodeSelectors scores
        // nothing for it: the plain ranking among the selected nodes.
        (
            "outside nodeSelectors",
            ad(
                "one",
                "  nodeSelectors: [{matchLabels: {zone: a}}]\n",
                &pref(100, "zone", "b"),
            ),
            |owner, _| owner == "node-a" || owner == "node-b",
        ),
        // Weights sum within and across advertisements: node-b has 30 + 20, node-a and node-c
        // 40 each: node-b always.
        (
            "sums across advertisements",
            format!(
                "{}{}",
                ad("one", "", &pref(40, "rack", "r1")),
                ad(
                    "two",
                    "",
                    &format!("{}{}", pref(30, "rack", "r2"), pref(20, "disk", "ssd"))
                )
            ),
            |owner, _| owner == "node-b",
        ),
        // node-a and node-c tie at 50: the hash decides between them, never b or d.
        (
            "ties",
            ad("one", "", &pref(50, "rack", "r1")),
            |owner, _| owner == "node-a" || owner == "node-c",
        ),
    ];
    for (case, ads, expect) in cases {
        let config = config(&ads);
        let mut owners = BTreeSet::new();
        for last in 0..16u8 {
            let first = IpAddr::from([192, 0, 2, last]);
            let reach = layer2(pool_reach(&config, first, &Labels::new(), &nodes));
            let d = decide(&[first], &reach, health(&statuses, &live, &known));
            let owner = d.node.as_deref().unwrap().to_owned();
            assert_eq!(
                owner,
                metallb_preferred_owner(&config, first, &nodes),
                "{case}: {first}"
            );
            let plain = election::rank(first, ["node-a", "node-b", "node-c", "node-d"])[0];
            assert!(expect(&owner, plain), "{case}: {first} went to {owner}");
            owners.insert(owner);
        }
        if case == "ties" {
            assert_eq!(
                owners,
                names(&["node-a", "node-c"]),
                "both tied nodes win some"
            );
        }
    }
}
