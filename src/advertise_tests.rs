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
    assert_eq!(
        pool_reach(&legacy, ip("203.0.113.1"), &Labels::new(), &cluster.view()),
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
