//! BGP kinds: the model each object becomes, one test per rule that refuses the config, and the
//! fields ferrolb does not implement (warnings, never errors). Peers, BFD profiles and the
//! helpers here; advertisements and communities in `bgp_ad_tests`.

use std::time::Duration;

use super::*;
use crate::config::Rule;
use crate::config::schema::{DynamicAsn, Peer};

pub(super) fn object(kind: &str, version: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: metallb.io/{version}\nkind: {kind}\nmetadata: {{name: {name}, \
         namespace: metallb-system}}\nspec: {spec}\n"
    )
}

pub(super) fn peer(name: &str, spec: &str) -> String {
    object("BGPPeer", "v1beta2", name, spec)
}

pub(super) fn bgp_ad(name: &str, spec: &str) -> String {
    object("BGPAdvertisement", "v1beta1", name, spec)
}

pub(super) fn pool(name: &str, addresses: &str) -> String {
    object(
        "IPAddressPool",
        "v1beta1",
        name,
        &format!("{{addresses: {addresses}}}"),
    )
}

pub(super) fn ok(text: &str) -> Config {
    parse_file(text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .config
}

/// The errors of an invalid file, as (subject, field, rule).
pub(super) fn errors(text: &str) -> Vec<(String, String, Rule)> {
    match parse_file(text) {
        Err(ConfigError::Invalid(errs)) => errs
            .into_iter()
            .map(|e| (e.subject.to_string(), e.field, e.rule))
            .collect(),
        other => panic!("expected validation errors, got {other:?}"),
    }
}

/// The one error of an invalid file, as (field, rule).
pub(super) fn error(text: &str) -> (String, Rule) {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    (errs[0].1.clone(), errs[0].2)
}

/// The warnings other than unknown fields (not implemented, and the rest), as (object, field).
pub(super) fn other_warnings(c: &Config) -> Vec<(String, String)> {
    c.warnings
        .iter()
        .filter(|w| w.kind != WarningKind::UnknownField)
        .map(|w| (w.object.clone(), w.field.clone()))
        .collect()
}

pub(super) const MINIMAL: &str = "{myASN: 64500, peerASN: 64501, peerAddress: 192.0.2.1}";

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
    // Reported on the object and in the ConfigurationState as not implemented.
    assert!(
        c.warnings
            .iter()
            .all(|w| w.kind == WarningKind::NotImplemented),
        "{:?}",
        c.warnings
    );
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
fn bfd_profiles_are_applied_and_only_the_echo_fields_reported() {
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
    // The peer's BFD runs: only the echo function is reported, naming the object and field.
    assert_eq!(
        other_warnings(&c),
        [("BFDProfile \"fast\"".into(), "spec.echoMode".into())]
    );
    let plain = object(
        "BFDProfile",
        "v1beta1",
        "plain",
        "{receiveInterval: 100, passiveMode: true}",
    );
    let c = ok(&(plain + &peer("r", &with_bfd.replace("fast", "plain"))));
    assert!(other_warnings(&c).is_empty(), "{:?}", other_warnings(&c));
    // Multi-hop: the session runs (RFC 5883) with minimumTtl; only echoInterval is not applied.
    let multihop = object(
        "BFDProfile",
        "v1beta1",
        "far",
        "{echoInterval: 50, minimumTtl: 10}",
    );
    let far = "{myASN: 1, peerASN: 2, peerAddress: 192.0.2.1, ebgpMultiHop: true, bfdProfile: far}";
    let c = ok(&(multihop + &peer("r", far)));
    assert_eq!(
        other_warnings(&c),
        [("BFDProfile \"far\"".into(), "spec.echoInterval".into())]
    );
    assert_eq!(c.bfd_profiles[0].minimum_ttl, Some(10));
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
