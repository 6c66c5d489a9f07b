//! BGP kinds: the model each object becomes, one test per rule that refuses the config, and the
//! fields ferrolb does not implement (warnings, never errors).

use std::time::Duration;

use super::*;
use crate::config::schema::{BgpAd, Community, DynamicAsn, Peer};
use crate::config::{Protocol, Rule};

fn object(kind: &str, version: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: metallb.io/{version}\nkind: {kind}\nmetadata: {{name: {name}, \
         namespace: metallb-system}}\nspec: {spec}\n"
    )
}

fn peer(name: &str, spec: &str) -> String {
    object("BGPPeer", "v1beta2", name, spec)
}

fn bgp_ad(name: &str, spec: &str) -> String {
    object("BGPAdvertisement", "v1beta1", name, spec)
}

fn pool(name: &str, addresses: &str) -> String {
    object(
        "IPAddressPool",
        "v1beta1",
        name,
        &format!("{{addresses: {addresses}}}"),
    )
}

fn ok(text: &str) -> Config {
    parse_file(text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .config
}

/// The errors of an invalid file, as (subject, field, rule).
fn errors(text: &str) -> Vec<(String, String, Rule)> {
    match parse_file(text) {
        Err(ConfigError::Invalid(errs)) => errs
            .into_iter()
            .map(|e| (e.subject.to_string(), e.field, e.rule))
            .collect(),
        other => panic!("expected validation errors, got {other:?}"),
    }
}

/// The one error of an invalid file, as (field, rule).
fn error(text: &str) -> (String, Rule) {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    (errs[0].1.clone(), errs[0].2)
}

/// The warnings of kind Other, as (object, field).
fn other_warnings(c: &Config) -> Vec<(String, String)> {
    c.warnings
        .iter()
        .filter(|w| w.kind == WarningKind::Other)
        .map(|w| (w.object.clone(), w.field.clone()))
        .collect()
}

const MINIMAL: &str = "{myASN: 64500, peerASN: 64501, peerAddress: 192.0.2.1}";

#[test]
fn a_v1beta2_peer_gets_metallbs_defaults() {
    let c = ok(&peer("r1", MINIMAL));
    assert_eq!(
        c.peers,
        [Peer::new("r1", 64500, 64501, "192.0.2.1".parse().unwrap())]
    );
    assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
}

#[test]
fn a_v1beta2_peer_reads_every_field_it_implements() {
    let c = ok(&peer(
        "r1",
        "{myASN: 4200000000, dynamicASN: external, peerAddress: \"2001:db8::1\", peerPort: \
         1179, sourceAddress: \"2001:db8::10\", holdTime: 1m30.5s, connectTime: 5s, routerID: \
         192.0.2.10, passwordSecret: {name: bgp-auth}, enableGracefulRestart: true, \
         ebgpMultiHop: true, dualStackAddressFamily: true, nodeSelectors: [{matchLabels: \
         {rack: a}}]}",
    ));
    let p = &c.peers[0];
    assert_eq!(p.dynamic_asn, Some(DynamicAsn::External));
    assert_eq!(
        (p.my_asn, p.peer_asn, p.peer_port),
        (4_200_000_000, 0, 1179)
    );
    assert!(!p.is_internal());
    assert_eq!(p.source_address, Some("2001:db8::10".parse().unwrap()));
    assert_eq!(p.router_id, Some("192.0.2.10".parse().unwrap()));
    assert_eq!(p.hold_time, Duration::from_secs(90), "rounded down");
    assert_eq!(p.keepalive_time, Duration::from_secs(30));
    assert_eq!(p.connect_time, Some(Duration::from_secs(5)));
    assert_eq!(p.password_secret.as_deref(), Some("bgp-auth"));
    assert!(p.password.is_none() && p.graceful_restart && p.ebgp_multihop && p.dual_stack);
    assert_eq!(p.node_selectors[0].match_labels["rack"], "a");
    assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
}

#[test]
fn a_v1beta1_peer_is_read_as_served() {
    // v1beta1's peerPort has no default: 0 means unset.
    let v1 = object(
        "BGPPeer",
        "v1beta1",
        "old",
        "{myASN: 64500, peerASN: 64501, peerAddress: 192.0.2.1, peerPort: 0, holdTime: 30s, \
         keepaliveTime: 10s, password: pw, nodeSelectors: [{matchExpressions: [{key: rack, \
         operator: In, values: [a]}]}]}",
    );
    let p = &ok(&v1).peers[0];
    assert_eq!((p.name.as_str(), p.peer_port), ("old", 179));
    assert_eq!(p.hold_time, Duration::from_secs(30));
    assert_eq!(p.password.as_deref(), Some("pw"));
    assert_eq!(p.node_selectors[0].match_expressions[0].key, "rack");
    // v1beta1 requires peerASN and peerAddress: dynamicASN and interface are v1beta2's.
    let v1_dynamic = object(
        "BGPPeer",
        "v1beta1",
        "old",
        "{myASN: 64500, dynamicASN: internal, interface: eth0}",
    );
    let got: Vec<(String, Rule)> = errors(&v1_dynamic)
        .into_iter()
        .map(|e| (e.1, e.2))
        .collect();
    assert_eq!(
        got,
        [
            ("spec.peerASN".into(), Rule::MissingAsn),
            ("spec.peerAddress".into(), Rule::InvalidPeerAddress)
        ]
    );
    // v1beta2's peerPort 0 is out of range.
    assert_eq!(
        error(&peer(
            "r",
            "{myASN: 1, peerASN: 2, peerAddress: 192.0.2.1, peerPort: 0}"
        )),
        ("spec.peerPort".into(), Rule::InvalidPeerPort)
    );
}

#[test]
fn asn_rules() {
    let cases = [
        (
            "{peerASN: 2, peerAddress: 192.0.2.1}",
            "spec.myASN",
            Rule::MissingAsn,
        ),
        (
            "{myASN: 0, peerASN: 2, peerAddress: 192.0.2.1}",
            "spec.myASN",
            Rule::MissingAsn,
        ),
        (
            "{myASN: 1, peerAddress: 192.0.2.1}",
            "spec.peerASN",
            Rule::MissingAsn,
        ),
        (
            "{myASN: 1, peerASN: 2, dynamicASN: external, peerAddress: 192.0.2.1}",
            "spec.dynamicASN",
            Rule::InvalidPeerAsn,
        ),
        (
            "{myASN: 1, dynamicASN: sideways, peerAddress: 192.0.2.1}",
            "spec.dynamicASN",
            Rule::InvalidPeerAsn,
        ),
        (
            "{myASN: 1, peerASN: 1, peerAddress: 192.0.2.1, ebgpMultiHop: true}",
            "spec.ebgpMultiHop",
            Rule::EbgpMultihopForIbgp,
        ),
        (
            "{myASN: 1, dynamicASN: internal, peerAddress: 192.0.2.1, ebgpMultiHop: true}",
            "spec.ebgpMultiHop",
            Rule::EbgpMultihopForIbgp,
        ),
    ];
    for (spec, field, rule) in cases {
        assert_eq!(error(&peer("r", spec)), (field.into(), rule), "{spec}");
    }
    let p = &ok(&peer(
        "r",
        "{myASN: 1, dynamicASN: internal, peerAddress: 192.0.2.1}",
    ))
    .peers[0];
    assert!(p.is_internal() && p.peer_asn == 0);
}

#[test]
fn address_rules() {
    let cases = [
        (
            "{myASN: 1, peerASN: 2}",
            "spec.peerAddress",
            Rule::InvalidPeerAddress,
        ),
        (
            "{myASN: 1, peerASN: 2, peerAddress: \"fe80::1%eth0\"}",
            "spec.peerAddress",
            Rule::InvalidPeerAddress,
        ),
        (
            "{myASN: 1, peerASN: 2, peerAddress: 192.0.2.1, interface: eth0}",
            "spec.interface",
            Rule::InvalidPeerAddress,
        ),
        (
            "{myASN: 1, peerASN: 2, peerAddress: 192.0.2.1, sourceAddress: here}",
            "spec.sourceAddress",
            Rule::InvalidSourceAddress,
        ),
        (
            "{myASN: 1, peerASN: 2, peerAddress: 192.0.2.1, routerID: 1.2.3}",
            "spec.routerID",
            Rule::InvalidRouterId,
        ),
        (
            "{myASN: 1, peerASN: 2, peerAddress: 192.0.2.1, peerPort: 16385}",
            "spec.peerPort",
            Rule::InvalidPeerPort,
        ),
    ];
    for (spec, field, rule) in cases {
        assert_eq!(error(&peer("r", spec)), (field.into(), rule), "{spec}");
    }
}

#[test]
fn an_unnumbered_peer_is_left_out_with_a_warning() {
    let c = ok(&peer("r", "{myASN: 1, peerASN: 2, interface: eth1}"));
    assert!(c.peers.is_empty());
    assert_eq!(
        other_warnings(&c),
        [("BGPPeer \"r\"".into(), "spec.interface".into())]
    );
    assert!(
        c.warnings[0].message.contains("left out"),
        "{}",
        c.warnings[0]
    );
}

#[test]
fn timer_rules() {
    let cases = [
        ("holdTime: 2s", "spec.holdTime", Rule::InvalidHoldTime),
        ("holdTime: 2.9s", "spec.holdTime", Rule::InvalidHoldTime),
        ("holdTime: 9x", "spec.holdTime", Rule::InvalidHoldTime),
        (
            "holdTime: 30s, keepaliveTime: 31s",
            "spec.keepaliveTime",
            Rule::InvalidKeepaliveTime,
        ),
        (
            "keepaliveTime: 500ms",
            "spec.keepaliveTime",
            Rule::InvalidHoldTime,
        ),
        (
            "connectTime: 0s",
            "spec.connectTime",
            Rule::InvalidConnectTime,
        ),
        (
            "connectTime: 1.5s",
            "spec.connectTime",
            Rule::InvalidConnectTime,
        ),
        (
            "connectTime: 65536s",
            "spec.connectTime",
            Rule::InvalidConnectTime,
        ),
    ];
    for (extra, field, rule) in cases {
        let spec = format!("{{myASN: 1, peerASN: 2, peerAddress: 192.0.2.1, {extra}}}");
        assert_eq!(error(&peer("r", &spec)), (field.into(), rule), "{spec}");
    }
    // Only a keepalive: the hold time is three of them.
    let c = ok(&peer(
        "r",
        "{myASN: 1, peerASN: 2, peerAddress: 192.0.2.1, keepaliveTime: 20s, connectTime: 65535s}",
    ));
    let p = &c.peers[0];
    assert_eq!(
        (p.hold_time, p.keepalive_time),
        (Duration::from_secs(60), Duration::from_secs(20))
    );
    assert_eq!(p.connect_time, Some(Duration::from_secs(65535)));
    assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
    // Hold time 0: no keepalives.
    let p = &ok(&peer(
        "r",
        "{myASN: 1, peerASN: 2, peerAddress: 192.0.2.1, holdTime: 0s}",
    ))
    .peers[0];
    assert_eq!(
        (p.hold_time, p.keepalive_time),
        (Duration::ZERO, Duration::ZERO)
    );
}

#[test]
fn a_keepalive_other_than_a_third_of_hold_is_kept_and_reported() {
    let c = ok(&peer(
        "r",
        "{myASN: 1, peerASN: 2, peerAddress: 192.0.2.1, holdTime: 90s, keepaliveTime: 10s}",
    ));
    assert_eq!(c.peers[0].keepalive_time, Duration::from_secs(10));
    assert_eq!(
        other_warnings(&c),
        [("BGPPeer \"r\"".into(), "spec.keepaliveTime".into())]
    );
    assert!(
        c.warnings[0]
            .message
            .contains("every third of the negotiated hold time")
    );
}

#[test]
fn password_and_password_secret_are_exclusive() {
    let spec = "{myASN: 1, peerASN: 2, peerAddress: 192.0.2.1, password: a, passwordSecret: \
                {name: s}}";
    assert_eq!(
        error(&peer("r", spec)),
        ("spec.passwordSecret".into(), Rule::PasswordConflict)
    );
}

#[test]
fn bfd_profiles_are_checked_and_reported_as_not_applied() {
    let profile = object(
        "BFDProfile",
        "v1beta1",
        "fast",
        "{receiveInterval: 100, transmitInterval: 100, detectMultiplier: 3, echoMode: true}",
    );
    let with_bfd = "{myASN: 1, peerASN: 2, peerAddress: 192.0.2.1, bfdProfile: fast}";
    // A peer naming a profile that does not exist is refused.
    assert_eq!(
        error(&peer("r", with_bfd)),
        ("spec.bfdProfile".into(), Rule::UnknownBfdProfile)
    );
    let c = ok(&(profile.clone() + &peer("r", with_bfd)));
    assert_eq!(c.peers[0].bfd_profile.as_deref(), Some("fast"));
    assert_eq!(c.bfd_profiles[0].receive_interval, Some(100));
    assert!(c.bfd_profiles[0].echo_mode);
    assert_eq!(
        other_warnings(&c),
        [
            ("BFDProfile \"fast\"".into(), String::new()),
            ("BGPPeer \"r\"".into(), "spec.bfdProfile".into()),
        ]
    );
    // MetalLB's ranges.
    let bad = object(
        "BFDProfile",
        "v1beta1",
        "b",
        "{receiveInterval: 9, transmitInterval: 60001, detectMultiplier: 1, echoInterval: 10, \
         minimumTtl: 255}",
    );
    let fields: Vec<String> = errors(&bad).into_iter().map(|e| e.1).collect();
    assert_eq!(
        fields,
        [
            "spec.receiveInterval",
            "spec.transmitInterval",
            "spec.detectMultiplier",
            "spec.minimumTtl"
        ]
    );
}

#[test]
fn fields_ferrolb_does_not_implement_are_warnings_naming_them() {
    let c = ok(&peer(
        "r",
        "{myASN: 1, peerASN: 2, peerAddress: 192.0.2.1, vrf: red, localASN: 7, disableMP: true}",
    ));
    assert_eq!(c.peers.len(), 1);
    let fields: Vec<String> = other_warnings(&c).into_iter().map(|w| w.1).collect();
    assert_eq!(fields, ["spec.vrf", "spec.localASN", "spec.disableMP"]);
    // An unknown field is still an unknown-field warning.
    let c = ok(&peer(
        "r",
        "{myASN: 1, peerASN: 2, peerAddress: 192.0.2.1, bogus: 1}",
    ));
    assert_eq!(c.warnings[0].kind, WarningKind::UnknownField);
    assert_eq!(c.warnings[0].field, "spec.bogus");
}

#[test]
fn peer_names_and_selectors_follow_the_object_rules() {
    let twice = peer("r", MINIMAL) + &peer("r", MINIMAL);
    assert_eq!(
        error(&twice),
        ("metadata.name".into(), Rule::DuplicateObject)
    );
    let spec = "{myASN: 1, peerASN: 2, peerAddress: 192.0.2.1, nodeSelectors: [{matchLabels: \
                {a: b}}, {matchLabels: {a: b}}]}";
    assert_eq!(
        error(&peer("r", spec)),
        ("spec.nodeSelectors[1]".into(), Rule::DuplicateSelector)
    );
}

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
