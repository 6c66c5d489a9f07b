use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::*;
use crate::config::{DynamicAsn, LabelSelector, Peer};

fn config(ads: Vec<BgpAd>, peers: Vec<Peer>) -> Config {
    let mut config = crate::config::parse(
        "address-pools:\n\
         - name: bgp\n  protocol: bgp\n  addresses: [198.51.100.0/24, 2001:db8:5::/64]\n\
         - name: l2\n  protocol: layer2\n  addresses: [192.0.2.0/24]\n",
    )
    .expect("valid config");
    config.bgp_advertisements = ads;
    config.peers = peers;
    config
}

fn ad(name: &str) -> BgpAd {
    BgpAd {
        name: name.into(),
        pools: vec!["bgp".into()],
        pool_selectors: Vec::new(),
        node_selectors: Vec::new(),
        service_selectors: Vec::new(),
        peers: Vec::new(),
        aggregation_length: 32,
        aggregation_length_v6: 128,
        local_pref: None,
        communities: Vec::new(),
    }
}

fn peer(name: &str, address: &str) -> Peer {
    Peer::new(name, 64500, 64501, address.parse().expect("IP"))
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn selector(key: &str, value: &str) -> LabelSelector {
    LabelSelector {
        match_labels: [(key.to_owned(), value.to_owned())].into(),
        match_expressions: Vec::new(),
    }
}

fn node<'a>(labels: &'a Labels) -> BgpNode<'a> {
    BgpNode {
        name: "node-a",
        labels,
        network_unavailable: false,
        exclude_from_external_lb: false,
    }
}

fn service<'a>(key: &'a str, ips: &'a [IpAddr], labels: &'a Labels) -> BgpService<'a> {
    BgpService {
        key,
        ips,
        labels,
        local: false,
        serving_here: false,
        serving_anywhere: true,
    }
}

fn net(text: &str) -> IpNet {
    text.parse().expect("prefix")
}

fn ips(texts: &[&str]) -> Vec<IpAddr> {
    texts.iter().map(|t| t.parse().expect("IP")).collect()
}

fn prefixes(routes: &NodeRoutes, peer: &str) -> Vec<String> {
    routes.peers[peer].keys().map(ToString::to_string).collect()
}

#[test]
fn each_address_goes_to_every_peer_of_its_family_as_a_host_route() {
    let cfg = config(
        vec![ad("all")],
        vec![peer("v4", "192.0.2.1"), peer("v6", "2001:db8::1")],
    );
    let none = Labels::new();
    let web = ips(&["198.51.100.7", "2001:db8:5::7"]);
    let out = node_routes(&cfg, node(&none), [service("apps/web", &web, &none)], false);
    assert_eq!(prefixes(&out, "v4"), ["198.51.100.7/32"]);
    assert_eq!(prefixes(&out, "v6"), ["2001:db8:5::7/128"]);
    assert_eq!(
        out.services["apps/web"],
        BTreeSet::from(["v4".to_owned(), "v6".to_owned()])
    );
}

#[test]
fn a_dual_stack_peer_gets_both_families() {
    let mut both = peer("both", "192.0.2.1");
    both.dual_stack = true;
    let cfg = config(vec![ad("all")], vec![both]);
    let none = Labels::new();
    let web = ips(&["198.51.100.7", "2001:db8:5::7"]);
    let out = node_routes(&cfg, node(&none), [service("apps/web", &web, &none)], false);
    assert_eq!(
        prefixes(&out, "both"),
        ["198.51.100.7/32", "2001:db8:5::7/128"]
    );
}

#[test]
fn an_address_only_peers_of_the_other_family_would_get_is_reported_unreachable() {
    let cfg = config(vec![ad("all")], vec![peer("v4", "192.0.2.1")]);
    let none = Labels::new();
    let web = ips(&["198.51.100.7", "2001:db8:5::7"]);
    let v6 = ips(&["2001:db8:5::8"]);
    let out = node_routes(
        &cfg,
        node(&none),
        [
            service("apps/web", &web, &none),
            service("apps/v6", &v6, &none),
        ],
        false,
    );
    // The IPv4 address goes; the IPv6 one has no session to go on, and says so.
    assert_eq!(prefixes(&out, "v4"), ["198.51.100.7/32"]);
    assert_eq!(out.unreachable["apps/web"], BTreeSet::from([web[1]]));
    assert_eq!(out.addresses["apps/web"], BTreeSet::from([web[0]]));
    assert!(!out.addresses.contains_key("apps/v6"));
    assert_eq!(out.withheld["apps/v6"], Withheld::NoPeer);
    assert_eq!(out.unreachable["apps/v6"], BTreeSet::from([v6[0]]));
    // A peer the advertisement does not name is no gap: the node is not meant to announce.
    let mut other = ad("other");
    other.peers = vec!["elsewhere".into()];
    let cfg = config(vec![other], vec![peer("v4", "192.0.2.1")]);
    let out = node_routes(&cfg, node(&none), [service("apps/v6", &v6, &none)], false);
    assert!(out.unreachable.is_empty(), "{out:?}");
}

#[test]
fn aggregation_merges_services_into_one_route_and_a_host_route_can_ride_beside_it() {
    let mut wide = ad("wide");
    wide.aggregation_length = 24;
    wide.communities = vec![Community::Standard(0xfde8_0001)];
    let mut host = ad("host");
    host.communities = vec![Community::Standard(0xffff_ff02)];
    let cfg = config(vec![wide, host], vec![peer("r", "192.0.2.1")]);
    let none = Labels::new();
    let (a, b) = (ips(&["198.51.100.7"]), ips(&["198.51.100.9"]));
    let out = node_routes(
        &cfg,
        node(&none),
        [service("apps/a", &a, &none), service("apps/b", &b, &none)],
        false,
    );
    assert_eq!(
        prefixes(&out, "r"),
        ["198.51.100.0/24", "198.51.100.7/32", "198.51.100.9/32"]
    );
    let routes = &out.peers["r"];
    assert_eq!(
        routes[&net("198.51.100.0/24")].communities,
        BTreeSet::from([Community::Standard(0xfde8_0001)])
    );
    assert_eq!(
        routes[&net("198.51.100.7/32")].communities,
        BTreeSet::from([Community::Standard(0xffff_ff02)])
    );
}

#[test]
fn two_advertisements_of_one_prefix_merge_communities_and_conflicting_local_prefs_withhold() {
    let mut one = ad("one");
    one.communities = vec![Community::Standard(1)];
    one.local_pref = Some(200);
    let mut two = ad("two");
    two.communities = vec![Community::Standard(2)];
    two.local_pref = Some(200);
    let cfg = config(vec![one.clone(), two.clone()], vec![peer("r", "192.0.2.1")]);
    let none = Labels::new();
    let web = ips(&["198.51.100.7"]);
    let out = node_routes(&cfg, node(&none), [service("apps/web", &web, &none)], false);
    let route = &out.peers["r"][&net("198.51.100.7/32")];
    assert_eq!(route.local_pref, Some(200));
    assert_eq!(
        route.communities,
        BTreeSet::from([Community::Standard(1), Community::Standard(2)])
    );

    two.local_pref = Some(100);
    let cfg = config(vec![one.clone(), two.clone()], vec![peer("r", "192.0.2.1")]);
    let out = node_routes(&cfg, node(&none), [service("apps/web", &web, &none)], false);
    assert!(out.peers["r"].is_empty());
    assert_eq!(
        out.withheld["apps/web"].label(),
        "conflictingAdvertisements"
    );

    // Disjoint peers: no conflict.
    one.peers = vec!["r".into()];
    two.peers = vec!["s".into()];
    let cfg = config(
        vec![one, two],
        vec![peer("r", "192.0.2.1"), peer("s", "192.0.2.2")],
    );
    let out = node_routes(&cfg, node(&none), [service("apps/web", &web, &none)], false);
    assert_eq!(
        out.peers["r"][&net("198.51.100.7/32")].local_pref,
        Some(200)
    );
    assert_eq!(
        out.peers["s"][&net("198.51.100.7/32")].local_pref,
        Some(100)
    );
}

#[test]
fn peers_and_advertisements_pick_nodes_by_label_and_advertisements_pick_peers_by_name() {
    let mut rack1 = peer("tor1", "192.0.2.1");
    rack1.node_selectors = vec![selector("rack", "1")];
    let mut rack2 = peer("tor2", "192.0.2.2");
    rack2.node_selectors = vec![selector("rack", "2")];
    let mut only_tor1 = ad("to-tor1");
    only_tor1.peers = vec!["tor1".into()];
    let cfg = config(vec![only_tor1], vec![rack1, rack2]);
    let web = ips(&["198.51.100.7"]);
    let none = Labels::new();
    let in_rack1 = labels(&[("rack", "1")]);
    let out = node_routes(&cfg, node(&in_rack1), [service("a/w", &web, &none)], false);
    assert_eq!(out.peers.keys().collect::<Vec<_>>(), ["tor1"]);
    assert_eq!(prefixes(&out, "tor1"), ["198.51.100.7/32"]);
    // A node in rack 2 has a session with tor2 only, which the advertisement does not name.
    let in_rack2 = labels(&[("rack", "2")]);
    let out = node_routes(&cfg, node(&in_rack2), [service("a/w", &web, &none)], false);
    assert!(out.peers["tor2"].is_empty());
    assert_eq!(out.withheld["a/w"], Withheld::NoPeer);

    let mut picky = ad("rack1-only");
    picky.node_selectors = vec![selector("rack", "1")];
    let cfg = config(vec![picky], vec![peer("r", "192.0.2.1")]);
    let out = node_routes(&cfg, node(&in_rack2), [service("a/w", &web, &none)], false);
    assert_eq!(out.withheld["a/w"], Withheld::NotSelected);
}

#[test]
fn service_selectors_node_health_and_endpoints_withhold_in_metallbs_order() {
    let mut by_label = ad("frontends");
    by_label.service_selectors = vec![selector("tier", "front")];
    let cfg = config(vec![by_label], vec![peer("r", "192.0.2.1")]);
    let web = ips(&["198.51.100.7"]);
    let (front, back) = (labels(&[("tier", "front")]), labels(&[("tier", "back")]));
    let none = Labels::new();
    let here = node(&none);
    let withheld =
        |n: BgpNode<'_>, s: BgpService<'_>| node_routes(&cfg, n, [s], false).withheld.remove("a/w");
    assert_eq!(
        withheld(here, service("a/w", &web, &back)),
        Some(Withheld::NoMatchingAdvertisement)
    );
    assert_eq!(withheld(here, service("a/w", &web, &front)), None);
    let sick = BgpNode {
        network_unavailable: true,
        ..here
    };
    assert_eq!(
        withheld(sick, service("a/w", &web, &front)),
        Some(Withheld::NetworkUnavailable)
    );
    let excluded = BgpNode {
        exclude_from_external_lb: true,
        ..here
    };
    assert_eq!(
        withheld(excluded, service("a/w", &web, &front)),
        Some(Withheld::ExcludedByLabel)
    );
    assert!(
        node_routes(&cfg, excluded, [service("a/w", &web, &front)], true)
            .withheld
            .is_empty()
    );
    let local = BgpService {
        local: true,
        ..service("a/w", &web, &front)
    };
    assert_eq!(withheld(here, local), Some(Withheld::NoLocalEndpoints));
    let local_here = BgpService {
        serving_here: true,
        ..local
    };
    assert_eq!(withheld(here, local_here), None);
    let no_endpoints = BgpService {
        serving_anywhere: false,
        ..service("a/w", &web, &front)
    };
    assert_eq!(withheld(here, no_endpoints), Some(Withheld::NoEndpoints));
}

#[test]
fn layer2_services_are_not_reported_and_a_withdrawn_service_leaves_its_peer_empty() {
    let cfg = config(vec![ad("all")], vec![peer("r", "192.0.2.1")]);
    let none = Labels::new();
    let l2 = ips(&["192.0.2.9"]);
    let out = node_routes(&cfg, node(&none), [service("a/l2", &l2, &none)], false);
    assert_eq!(
        out.peers,
        BTreeMap::from([("r".to_owned(), BTreeMap::new())])
    );
    assert!(out.withheld.is_empty() && out.services.is_empty());
}

#[test]
fn dynamic_internal_peers_are_ibgp() {
    let mut p = peer("r", "192.0.2.1");
    p.peer_asn = 0;
    p.dynamic_asn = Some(DynamicAsn::Internal);
    assert!(p.is_internal());
    p.dynamic_asn = Some(DynamicAsn::External);
    assert!(!p.is_internal());
    assert!(peer("x", "192.0.2.1").is_internal().eq(&false));
}
