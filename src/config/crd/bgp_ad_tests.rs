//! BGPAdvertisement and Community objects: one test per rule, and MetalLB's documented
//! examples (tests/fixtures/config/bgp-metallb-docs.yaml) read into the model they describe.

use std::time::Duration;

use super::bgp_tests::{MINIMAL, bgp_ad, error, errors, object, ok, other_warnings, peer, pool};
use super::*;
use crate::config::schema::{BgpAd, Community, Peer};
use crate::config::{Protocol, Rule};

fn communities(text: &str) -> String {
    object("Community", "v1beta1", "aliases", text)
}

#[test]
fn communities_resolve_through_every_community_object() {
    let text = pool("edge", "[203.0.113.0/24]")
        + &communities(
            "{communities: [{name: no-advertise, value: \"65535:65282\"}, {name: \"1:1\", value: \
             \"large:1:2:3\"}]}",
        )
        + &object(
            "Community",
            "v1beta1",
            "more",
            "{communities: [{name: site, value: \"64500:7\"}]}",
        )
        + &bgp_ad(
            "a",
            "{communities: [no-advertise, site, \"1:1\", \"64500:8\", \"large:9:9:9\"]}",
        );
    let c = ok(&text);
    let ad = &c.bgp_advertisements[0];
    // The alias "1:1" wins over the value 1:1.
    let large = |g, a, b| Community::Large {
        global_admin: g,
        local_data1: a,
        local_data2: b,
    };
    assert_eq!(
        ad.communities,
        [
            Community::Standard(0xffff_ff02),
            Community::Standard((64500 << 16) | 7),
            large(1, 2, 3),
            Community::Standard((64500 << 16) | 8),
            large(9, 9, 9),
        ]
    );
    assert_eq!(c.bgp_communities["site"], "64500:7");
    assert_eq!(c.bgp_communities.len(), 3);
}

#[test]
fn community_errors_name_advertisement_field_and_alias() {
    let err = parse_file(&bgp_ad("a", "{communities: [\"1:2\", nope]}")).unwrap_err();
    let e = &err.validation_errors()[0];
    assert_eq!(
        (e.subject.to_string(), e.field.as_str(), e.rule),
        (
            "BGPAdvertisement \"a\"".into(),
            "spec.communities[1]",
            Rule::UnknownCommunity
        )
    );
    assert!(e.message.contains("\"nope\""), "{e}");
    let cases = [
        (
            bgp_ad("a", "{communities: [\"1:2\", \"1:2\"]}"),
            "spec.communities[1]",
            Rule::DuplicateCommunity,
        ),
        (
            communities("{communities: [{name: x, value: \"1:2\"}]}")
                + &bgp_ad("a", "{communities: [x, \"1:2\"]}"),
            "spec.communities[1]",
            Rule::DuplicateCommunity,
        ),
        (
            bgp_ad("a", "{communities: [\"70000:1\"]}"),
            "spec.communities[0]",
            Rule::InvalidCommunity,
        ),
        (
            communities("{communities: [{name: x, value: \"1:2:3\"}]}"),
            "spec.communities[0].value",
            Rule::InvalidCommunity,
        ),
        (
            communities("{communities: [{name: x, value: \"1:2\"}, {name: x, value: \"1:3\"}]}"),
            "spec.communities[1].name",
            Rule::DuplicateCommunity,
        ),
    ];
    for (text, field, rule) in cases {
        assert_eq!(error(&text), (field.into(), rule), "{text}");
    }
}

#[test]
fn aggregation_length_rules() {
    let cases = [
        (
            "{aggregationLength: 33}",
            "spec.aggregationLength",
            Rule::InvalidAggregationLength,
        ),
        (
            "{aggregationLength: -1}",
            "spec.aggregationLength",
            Rule::InvalidAggregationLength,
        ),
        (
            "{aggregationLengthV6: 129}",
            "spec.aggregationLengthV6",
            Rule::InvalidAggregationLength,
        ),
        // Shorter than the pool's own /24: would announce addresses outside it.
        (
            "{aggregationLength: 23}",
            "spec.aggregationLength",
            Rule::AggregationLengthTooShort,
        ),
        // A range summarised into CIDRs: 198.51.100.0-198.51.100.127 is a /25.
        (
            "{aggregationLength: 24, ipAddressPools: [range]}",
            "spec.aggregationLength",
            Rule::AggregationLengthTooShort,
        ),
        (
            "{aggregationLengthV6: 63}",
            "spec.aggregationLengthV6",
            Rule::AggregationLengthTooShort,
        ),
        (
            "{aggregationLength: 24, serviceSelectors: [{matchLabels: {a: b}}]}",
            "spec.serviceSelectors",
            Rule::ServiceSelectorsWithAggregation,
        ),
    ];
    let pools = pool("edge", "[203.0.113.0/24, \"2001:db8::/64\"]")
        + &pool("range", "[198.51.100.0-198.51.100.127]");
    for (spec, field, rule) in cases {
        let spec = if spec.contains("ipAddressPools") {
            spec.to_owned()
        } else {
            spec.replacen('{', "{ipAddressPools: [edge], ", 1)
        };
        let text = pools.clone() + &bgp_ad("a", &spec);
        assert_eq!(error(&text), (field.into(), rule), "{spec}");
    }
    // Only selected pools count: /24 suits the edge pool, and the /25 range is not selected.
    let c = ok(&(pools.clone()
        + &bgp_ad(
            "a",
            "{ipAddressPools: [edge], aggregationLength: 24, aggregationLengthV6: 64}",
        )));
    let ad = &c.bgp_advertisements[0];
    assert_eq!((ad.aggregation_length, ad.aggregation_length_v6), (24, 64));
}

#[test]
fn names_listed_twice_are_refused_and_unknown_names_are_warnings() {
    let text = pool("edge", "[203.0.113.0/24]") + &bgp_ad("a", "{ipAddressPools: [edge, edge]}");
    assert_eq!(
        error(&text),
        ("spec.ipAddressPools[1]".into(), Rule::DuplicateEntry)
    );
    let text = bgp_ad("a", "{peers: [r1, r1]}");
    assert_eq!(error(&text), ("spec.peers[1]".into(), Rule::DuplicateEntry));
    let text = bgp_ad(
        "a",
        "{nodeSelectors: [{matchLabels: {a: b}}, {matchLabels: {a: b}}]}",
    );
    assert_eq!(
        error(&text),
        ("spec.nodeSelectors[1]".into(), Rule::DuplicateSelector)
    );
    let c = ok(&(peer("r1", MINIMAL) + &bgp_ad("a", "{ipAddressPools: [gone], peers: [r1, r9]}")));
    assert_eq!(
        other_warnings(&c),
        [
            (
                "BGPAdvertisement \"a\"".into(),
                "spec.ipAddressPools[0]".into()
            ),
            ("BGPAdvertisement \"a\"".into(), "spec.peers[1]".into()),
        ]
    );
}

/// Two advertisements of the `edge` pool (IPv4 only unless said), the second with `spec_b`.
fn two_ads(pool_addresses: &str, spec_a: &str, spec_b: &str) -> String {
    pool("edge", pool_addresses) + &bgp_ad("a", spec_a) + &bgp_ad("b", spec_b)
}

#[test]
fn local_pref_conflict_rule() {
    let v4 = "[203.0.113.0/24]";
    let conflict = two_ads(v4, "{localPref: 100}", "{localPref: 200}");
    let errs = errors(&conflict);
    assert_eq!(
        errs,
        [(
            "BGPAdvertisement \"b\"".into(),
            "spec.localPref".into(),
            Rule::LocalPrefConflict
        )]
    );
    // Unset is 0, so it conflicts with a set one.
    assert_eq!(
        error(&two_ads(v4, "{}", "{localPref: 200}")).1,
        Rule::LocalPrefConflict
    );
    let fine = [
        // Same localPref.
        ("{localPref: 100}", "{localPref: 100}"),
        // Different prefixes.
        (
            "{localPref: 100}",
            "{localPref: 200, aggregationLength: 24}",
        ),
        // Disjoint peers.
        (
            "{localPref: 100, peers: [r1]}",
            "{localPref: 200, peers: [r2]}",
        ),
        // Disjoint nodes.
        (
            "{localPref: 100, nodeSelectors: [{matchLabels: {rack: a}}]}",
            "{localPref: 200, nodeSelectors: [{matchLabels: {rack: b}}]}",
        ),
        // Checked per Service at announce time instead.
        (
            "{localPref: 100}",
            "{localPref: 200, serviceSelectors: [{matchLabels: {a: b}}]}",
        ),
    ];
    for (a, b) in fine {
        let c = ok(&two_ads(v4, a, b));
        assert_eq!(c.bgp_advertisements.len(), 2, "{a} {b}");
    }
    let still = [
        // Peers that meet, or one advertisement to every peer.
        (
            "{localPref: 100, peers: [r1, r2]}",
            "{localPref: 200, peers: [r2]}",
        ),
        ("{localPref: 100}", "{localPref: 200, peers: [r2]}"),
        // Node selectors that can match one node.
        (
            "{localPref: 100, nodeSelectors: [{matchLabels: {rack: a}}]}",
            "{localPref: 200, nodeSelectors: [{matchLabels: {zone: x}}]}",
        ),
        // Another pool's ads do not count, but ads selecting it by label do.
        (
            "{localPref: 100, ipAddressPools: [edge]}",
            "{localPref: 200, ipAddressPoolSelectors: [{matchLabels: {}}]}",
        ),
    ];
    for (a, b) in still {
        assert_eq!(
            error(&two_ads(v4, a, b)).1,
            Rule::LocalPrefConflict,
            "{a} {b}"
        );
    }
    // A dual-stack pool: the IPv6 prefixes are still the same when only the IPv4 length differs.
    let dual = "[203.0.113.0/24, \"2001:db8::/64\"]";
    assert_eq!(
        error(&two_ads(
            dual,
            "{localPref: 100}",
            "{localPref: 200, aggregationLength: 24}"
        ))
        .1,
        Rule::LocalPrefConflict
    );
    ok(&two_ads(
        dual,
        "{localPref: 100}",
        "{localPref: 200, aggregationLength: 24, aggregationLengthV6: 64}",
    ));
    // Different pools: no conflict.
    let text = pool("edge", v4)
        + &pool("other", "[198.51.100.0/24]")
        + &bgp_ad("a", "{localPref: 100, ipAddressPools: [edge]}")
        + &bgp_ad("b", "{localPref: 200, ipAddressPools: [other]}");
    ok(&text);
}

#[test]
fn a_pool_a_bgp_advertisement_selects_is_announced() {
    let c = ok(&(pool("edge", "[203.0.113.0/24]") + &bgp_ad("a", "{}")));
    assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
    let edge = c.pool("edge").unwrap();
    assert_eq!(edge.protocol, Protocol::Bgp);
    let ads: Vec<&str> = c
        .bgp_advertisements_for(edge)
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(ads, ["a"]);
    // The default advertisement: every pool, /32 and /128, to every peer from every node.
    assert_eq!(
        c.bgp_advertisements[0],
        BgpAd {
            name: "a".into(),
            pools: vec![],
            pool_selectors: vec![],
            node_selectors: vec![],
            service_selectors: vec![],
            peers: vec![],
            aggregation_length: 32,
            aggregation_length_v6: 128,
            local_pref: None,
            communities: vec![],
        }
    );
}

#[test]
fn an_invalid_bgp_object_refuses_the_whole_config() {
    // Layer 2 is held back too: the caller keeps its last good config.
    let text = pool("lan", "[192.0.2.0/28]")
        + &object("L2Advertisement", "v1beta1", "l2", "{}")
        + &peer(
            "r1",
            "{myASN: 64500, peerASN: 64501, peerAddress: not-an-ip}",
        );
    let err = parse_file(&text).unwrap_err();
    assert!(
        err.to_string()
            .contains("BGPPeer \"r1\", field spec.peerAddress: invalid peer IP \"not-an-ip\""),
        "{err}"
    );
}

#[test]
fn metallbs_documented_examples_read_as_the_docs_describe() {
    let c = ok(include_str!(
        "../../../tests/fixtures/config/bgp-metallb-docs.yaml"
    ));
    assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
    let ip = |s: &str| s.parse().unwrap();
    let labels = |pairs: &[(&str, &str)]| -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    // Peers, by name.
    let names: Vec<&str> = c.peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["example", "legacy-router", "sample"]);
    assert_eq!(
        c.peers[2],
        Peer::new("sample", 64500, 64501, ip("10.0.0.1"))
    );
    let example = &c.peers[0];
    assert!(example.is_internal());
    assert_eq!(example.peer_port, 180);
    assert_eq!(example.node_selectors.len(), 2);
    let frontend = labels(&[("rack", "frontend")]);
    assert!(example.selects_node(&frontend));
    assert!(!example.selects_node(&labels(&[("rack", "frontend"), ("network-speed", "slow")])));
    assert!(example.selects_node(&labels(&[("kubernetes.io/hostname", "hostB")])));
    assert!(!example.selects_node(&labels(&[("kubernetes.io/hostname", "hostC")])));
    let legacy = &c.peers[1];
    assert_eq!(
        *legacy,
        Peer {
            hold_time: Duration::from_secs(120),
            keepalive_time: Duration::from_secs(40),
            password: Some("s3cret".into()),
            ..Peer::new("legacy-router", 64500, 64502, ip("10.0.0.2"))
        }
    );
    // The alias, and the advertisements.
    assert_eq!(c.bgp_communities["NO_ADVERTISE"], "65535:65282");
    let ad = |name: &str| {
        c.bgp_advertisements
            .iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let default = |name: &str, pool: &str| BgpAd {
        name: name.into(),
        pools: vec![pool.into()],
        pool_selectors: vec![],
        node_selectors: vec![],
        service_selectors: vec![],
        peers: vec![],
        aggregation_length: 32,
        aggregation_length_v6: 128,
        local_pref: None,
        communities: vec![],
    };
    assert_eq!(
        *ad("local"),
        BgpAd {
            local_pref: Some(100),
            communities: vec![Community::Standard(0xffff_ff02)],
            ..default("local", "bgp-pool")
        }
    );
    assert_eq!(
        *ad("external"),
        BgpAd {
            aggregation_length: 24,
            ..default("external", "bgp-pool")
        }
    );
    let example = ad("example");
    assert_eq!(example.peers, ["sample"]);
    assert!(example.selects_peer("sample") && !example.selects_peer("example"));
    assert!(example.selects_node(&labels(&[("kubernetes.io/hostname", "NodeB")])));
    assert!(!example.selects_node(&labels(&[("kubernetes.io/hostname", "NodeC")])));
    let bgp_pool = c.pool("bgp-pool").unwrap();
    let names: Vec<&str> = c
        .bgp_advertisements_for(bgp_pool)
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(names, ["external", "local"]);
}
