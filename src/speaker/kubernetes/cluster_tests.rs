use super::*;
use crate::election::EXCLUDE_LB_LABEL;
use crate::k8s::endpoints::SERVICE_NAME_LABEL;
use crate::k8s::node::node_address;
use crate::speaker::ownership::owned_by;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

fn views<V: crate::speaker::kubernetes::store::View>(objects: &[V::Object]) -> Vec<Arc<V>>
where
    V::Object: Clone,
{
    objects
        .iter()
        .cloned()
        .map(|o| Arc::new(V::project(o)))
        .collect()
}

/// [`super::announcements`] over the full API objects, projected as the watches would.
fn announcements(
    config: &Config,
    services: &[Service],
    slices: &[EndpointSlice],
    nodes: &[Node],
    liveness: Liveness<'_>,
    known: &BTreeMap<String, BTreeSet<String>>,
    options: &ViewOptions,
) -> (Vec<Announcement>, Unannounced) {
    super::announcements(
        config,
        &views::<ServiceView>(services),
        &views::<SliceView>(slices),
        &views::<NodeView>(nodes),
        liveness,
        known,
        options,
    )
}

fn config() -> Config {
    crate::config::parse(
        "address-pools:\n- name: l2\n  protocol: layer2\n  addresses: [192.0.2.0/24, 2001:db8::/120]\n\
         - name: bgp\n  protocol: bgp\n  addresses: [198.51.100.0/24]\n",
    )
    .unwrap()
}

fn service(name: &str, ips: &[&str], policy: &str, class: Option<&str>) -> Service {
    let ingress: Vec<_> = ips.iter().map(|ip| json!({ "ip": ip })).collect();
    serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": "default" },
        "spec": { "type": "LoadBalancer", "externalTrafficPolicy": policy,
                  "loadBalancerClass": class },
        "status": { "loadBalancer": { "ingress": ingress } }
    }))
    .unwrap()
}

fn node(name: &str, ready: bool, unavailable: bool, excluded: bool) -> Node {
    let labels = if excluded {
        json!({ EXCLUDE_LB_LABEL: "" })
    } else {
        json!({})
    };
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": labels },
        "status": {
            "conditions": [
                { "type": "Ready", "status": if ready { "True" } else { "False" } },
                { "type": "NetworkUnavailable", "status": if unavailable { "True" } else { "False" } }
            ],
            "addresses": [ { "type": "Hostname", "address": name },
                           { "type": "InternalIP", "address": "192.0.2.5" } ]
        }
    }))
    .unwrap()
}

fn slice(service: &str, endpoints: &[(&str, bool)]) -> EndpointSlice {
    let eps: Vec<_> = endpoints
        .iter()
        .map(|(node, ready)| {
            json!({ "addresses": ["10.0.0.1"], "nodeName": node, "conditions": { "ready": ready } })
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": { "name": format!("{service}-x"), "namespace": "default",
                      "labels": { SERVICE_NAME_LABEL: service } },
        "addressType": "IPv4",
        "endpoints": eps
    }))
    .unwrap()
}

/// A ready endpoint (on node-a) for each of these Services, so they are announced at all.
fn serving(services: &[&str]) -> Vec<EndpointSlice> {
    services
        .iter()
        .map(|s| slice(s, &[("node-a", true)]))
        .collect()
}

fn live(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn nodes() -> Vec<Node> {
    ["node-a", "node-b", "node-c"]
        .iter()
        .map(|n| node(n, true, false, false))
        .collect()
}

/// The node announcing `svc` alone (no other Services), with these slices, nodes and members;
/// `None` when its one announcement has no node.
fn announcer(
    svc: &Service,
    slices: &[EndpointSlice],
    nodes: &[Node],
    liveness: Liveness<'_>,
    options: &ViewOptions,
) -> Option<String> {
    let (ann, _) = announcements(
        &config(),
        std::slice::from_ref(svc),
        slices,
        nodes,
        liveness,
        &BTreeMap::new(),
        options,
    );
    match ann.as_slice() {
        [] => None,
        [a] => a.node.clone(),
        other => panic!("expected one announcement for {svc:?}, got {other:?}"),
    }
}

#[test]
fn cluster_policy_follows_the_ranking_of_the_first_ip() {
    let svc = service("web", &["192.0.2.10", "2001:db8::10"], "Cluster", None);
    let all = live(&["node-a", "node-b", "node-c"]);
    let (ann, skipped) = announcements(
        &config(),
        &[svc],
        &serving(&["web"]),
        &nodes(),
        Liveness::Gossip(&all),
        &BTreeMap::new(),
        &ViewOptions::default(),
    );
    assert_eq!(skipped, Unannounced::default());
    let expected = election::rank(
        "192.0.2.10".parse().unwrap(),
        ["node-a", "node-b", "node-c"],
    )[0];
    assert_eq!(ann[0].node.as_deref(), Some(expected));
    assert_eq!(ann[0].ips.len(), 2);
    assert_eq!(
        owned_by(expected, &ann).len(),
        2,
        "both families move together"
    );
    assert_eq!(
        node_address(&nodes()[0]),
        Some("192.0.2.5".parse().unwrap())
    );
}

#[test]
fn local_policy_needs_a_ready_endpoint_on_the_node() {
    let svc = service("web", &["192.0.2.11"], "Local", None);
    let slices = [slice("web", &[("node-c", true), ("node-a", false)])];
    let all = live(&["node-a", "node-b", "node-c"]);
    assert_eq!(
        announcer(
            &svc,
            &slices,
            &nodes(),
            Liveness::Gossip(&all),
            &ViewOptions::default()
        )
        .as_deref(),
        Some("node-c")
    );
    assert_eq!(
        announcer(
            &svc,
            &[],
            &nodes(),
            Liveness::Gossip(&all),
            &ViewOptions::default()
        ),
        None,
        "no endpoint anywhere: nobody announces"
    );
}

#[test]
fn dead_unavailable_and_excluded_nodes_are_skipped() {
    let svc = service("web", &["192.0.2.12"], "Cluster", None);
    let ns = vec![
        node("node-a", true, true, false),
        node("node-b", true, false, true),
        node("node-c", true, false, false),
    ];
    let all = live(&["node-a", "node-b", "node-c"]);
    assert_eq!(
        announcer(
            &svc,
            &serving(&["web"]),
            &ns,
            Liveness::Gossip(&all),
            &ViewOptions::default()
        )
        .as_deref(),
        Some("node-c")
    );
    let only_ab = live(&["node-a", "node-b"]);
    assert_eq!(
        announcer(
            &svc,
            &serving(&["web"]),
            &ns,
            Liveness::Gossip(&only_ab),
            &ViewOptions::default()
        ),
        None,
        "node-c is not alive in gossip"
    );
    let ignore = ViewOptions {
        ignore_exclude_lb: true,
        ..ViewOptions::default()
    };
    assert_eq!(
        announcer(
            &svc,
            &serving(&["web"]),
            &ns,
            Liveness::Gossip(&only_ab),
            &ignore
        )
        .as_deref(),
        Some("node-b")
    );
}

#[test]
fn without_gossip_node_ready_decides() {
    let svc = service("web", &["192.0.2.13"], "Cluster", None);
    let ns = vec![
        node("node-a", false, false, false),
        node("node-b", true, false, false),
    ];
    assert_eq!(
        announcer(
            &svc,
            &serving(&["web"]),
            &ns,
            Liveness::NodeReady(&live(&["node-a", "node-b"])),
            &ViewOptions::default(),
        )
        .as_deref(),
        Some("node-b")
    );
}

#[test]
fn bgp_foreign_and_other_class_services_are_not_announced() {
    let services = [
        service("bgp", &["198.51.100.7"], "Cluster", None),
        service("stray", &["203.0.113.9"], "Cluster", None),
        service(
            "other",
            &["192.0.2.14"],
            "Cluster",
            Some("example.com/other"),
        ),
    ];
    let all = live(&["node-a"]);
    let (ann, skipped) = announcements(
        &config(),
        &services,
        &serving(&["bgp", "stray", "other"]),
        &nodes(),
        Liveness::Gossip(&all),
        &BTreeMap::new(),
        &ViewOptions::default(),
    );
    assert!(ann.is_empty(), "{ann:?}");
    assert_eq!(skipped.bgp, BTreeSet::from(["default/bgp".to_string()]));
    assert_eq!(
        skipped.outside_pools,
        BTreeSet::from(["default/stray".to_string()])
    );
    let ours = ViewOptions {
        lb_class: Some("example.com/other".into()),
        ..ViewOptions::default()
    };
    let (ann, _) = announcements(
        &config(),
        &services,
        &serving(&["other"]),
        &nodes(),
        Liveness::Gossip(&all),
        &BTreeMap::new(),
        &ours,
    );
    assert_eq!(ann.len(), 1);
    assert_eq!(ann[0].service, "default/other");
}

#[test]
fn a_service_without_a_ready_or_serving_endpoint_is_not_announced() {
    let svc = service("web", &["192.0.2.15"], "Cluster", None);
    let all = live(&["node-a", "node-b", "node-c"]);
    let unready = [slice("web", &[("node-b", false)])];
    let (ann, skipped) = announcements(
        &config(),
        std::slice::from_ref(&svc),
        &unready,
        &nodes(),
        Liveness::Gossip(&all),
        &BTreeMap::new(),
        &ViewOptions::default(),
    );
    assert!(ann.is_empty(), "{ann:?}");
    assert_eq!(
        skipped.no_endpoints,
        BTreeSet::from(["default/web".to_string()])
    );
    // Where the ready endpoint runs does not matter with the Cluster policy.
    let ready = [slice("web", &[("node-b", true)])];
    let expected = election::rank(
        "192.0.2.15".parse().unwrap(),
        ["node-a", "node-b", "node-c"],
    )[0];
    assert_eq!(
        announcer(
            &svc,
            &ready,
            &nodes(),
            Liveness::Gossip(&all),
            &ViewOptions::default()
        )
        .as_deref(),
        Some(expected)
    );
}

fn labelled(name: &str, zone: &str) -> Node {
    let mut n = node(name, true, false, false);
    n.metadata.labels = Some(
        [("zone".to_string(), zone.to_string())]
            .into_iter()
            .collect(),
    );
    n
}

#[test]
fn advertisements_choose_nodes_interfaces_and_report_unannounced_services() {
    let cfg = crate::config::parse_file(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: front, namespace: f}\n\
         spec: {addresses: [192.0.2.0/24]}\n---\n\
         apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lonely, namespace: f}\n\
         spec: {addresses: [198.51.100.0/24]}\n---\n\
         apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: a, namespace: f}\n\
         spec: {ipAddressPools: [front], nodeSelectors: [{matchLabels: {zone: a}}], interfaces: [eth1]}\n",
    )
    .unwrap()
    .config;
    let ns = vec![
        labelled("node-a", "a"),
        labelled("node-b", "b"),
        labelled("node-c", "a"),
    ];
    let services = [
        service("web", &["192.0.2.10"], "Cluster", None),
        service("lonely", &["198.51.100.10"], "Cluster", None),
    ];
    let all = live(&["node-a", "node-b", "node-c"]);
    let ready = [
        slice("web", &[("node-b", true)]),
        slice("lonely", &[("node-b", true)]),
    ];
    let (ann, skipped) = announcements(
        &cfg,
        &services,
        &ready,
        &ns,
        Liveness::Gossip(&all),
        &BTreeMap::new(),
        &ViewOptions::default(),
    );
    let expected = election::rank("192.0.2.10".parse().unwrap(), ["node-a", "node-c"])[0];
    assert_eq!(ann.len(), 1);
    assert_eq!(ann[0].node.as_deref(), Some(expected));
    assert_eq!(
        skipped.interfaces.get("default/web"),
        Some(&BTreeSet::from(["eth1".to_string()]))
    );
    let (_, cause) = &skipped.causes["default/lonely"];
    assert_eq!(cause.label(), "no_advertisement");
    assert!(cause.to_string().contains("pool lonely"), "{cause}");
    // Relabelling the zone-a nodes leaves web with no eligible node, counted per reason.
    let relabelled = vec![
        labelled("node-a", "b"),
        labelled("node-b", "b"),
        labelled("node-c", "a"),
    ];
    let only_ab = live(&["node-a", "node-b"]);
    let (ann, skipped) = announcements(
        &cfg,
        &services[..1],
        &ready,
        &relabelled,
        Liveness::Gossip(&only_ab),
        &BTreeMap::new(),
        &ViewOptions::default(),
    );
    assert_eq!(ann[0].node, None);
    let (_, cause) = &skipped.causes["default/web"];
    assert_eq!(
        cause.to_string(),
        "not announced: no eligible node (2 not selected by an advertisement, 1 not alive)"
    );
}

/// Nodes publish their usable interfaces: the ranked node without any of the advertised ones is
/// passed over for the next one that has one, placed on it; when none has one, the ranked node is
/// elected and says why.
#[test]
fn a_node_without_the_advertised_interface_is_passed_over_when_another_has_it() {
    let cfg = crate::config::parse_file(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: front, namespace: f}\n\
         spec: {addresses: [192.0.2.0/24]}\n---\n\
         apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: a, namespace: f}\n\
         spec: {ipAddressPools: [front], interfaces: [eth1]}\n",
    )
    .unwrap()
    .config;
    let svc = service("web", &["192.0.2.10"], "Cluster", None);
    let all = live(&["node-a", "node-b", "node-c"]);
    let order = election::rank(
        "192.0.2.10".parse().unwrap(),
        ["node-a", "node-b", "node-c"],
    );
    let with = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    let elect = |known: &BTreeMap<String, BTreeSet<String>>| {
        announcements(
            &cfg,
            std::slice::from_ref(&svc),
            &serving(&["web"]),
            &nodes(),
            Liveness::Gossip(&all),
            known,
            &ViewOptions::default(),
        )
    };
    // Nothing published: the ranked node, as MetalLB elects.
    let (ann, _) = elect(&BTreeMap::new());
    assert_eq!(ann[0].node.as_deref(), Some(order[0]));

    let mut known = BTreeMap::new();
    known.insert(order[0].to_string(), with(&["eth0"]));
    known.insert(order[1].to_string(), with(&["eth0", "eth1"]));
    known.insert(order[2].to_string(), with(&["eth0", "eth1"]));
    let (ann, skipped) = elect(&known);
    assert_eq!(ann[0].node.as_deref(), Some(order[1]), "{skipped:?}");
    assert!(!skipped.causes.contains_key("default/web"), "{skipped:?}");
    assert_eq!(skipped.interfaces["default/web"], with(&["eth1"]));

    for node in &order {
        known.insert(node.to_string(), with(&["eth0"]));
    }
    let (ann, skipped) = elect(&known);
    assert_eq!(ann[0].node.as_deref(), Some(order[0]));
    assert_eq!(skipped.causes["default/web"].1.label(), "no_interface");
}
