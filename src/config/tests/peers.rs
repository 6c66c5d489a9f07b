//! Peer, BFD profile and node selector rules.

use std::time::Duration;

use super::*;
use crate::config::SelectorOperator;

const ADDR: &str = "192.0.2.254";

fn one_peer(extra: &str) -> String {
    format!("peers:\n- my-asn: 64500\n  peer-asn: 64501\n  peer-address: {ADDR}\n{extra}")
}

#[test]
fn peer_defaults() {
    let cfg = parse(&one_peer("")).unwrap();
    let p = &cfg.peers[0];
    assert_eq!(p.peer_port, 179);
    assert_eq!(p.hold_time, Duration::from_secs(90));
    assert_eq!(p.keepalive_time, Duration::from_secs(30));
    assert!(p.node_selectors.is_empty());
    assert_eq!(p.password, None);
}

#[test]
fn password_is_not_in_debug_output() {
    let cfg = parse(&one_peer("  password: hunter2\n")).unwrap();
    assert_eq!(cfg.peers[0].password.as_deref(), Some("hunter2"));
    assert!(!format!("{cfg:?}").contains("hunter2"));
}

#[test]
fn missing_asns() {
    let errs = errors(&format!("peers:\n- peer-address: {ADDR}\n"));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_error(
        &errs[0],
        Rule::MissingAsn,
        &peer(1, ADDR),
        "my-asn",
        "missing local ASN",
    );
    assert_error(
        &errs[1],
        Rule::MissingAsn,
        &peer(1, ADDR),
        "peer-asn",
        "missing peer ASN",
    );
}

#[test]
fn ebgp_multihop_on_ibgp_peer() {
    let e = only_error(&format!(
        "peers:\n- {{my-asn: 64500, peer-asn: 64500, peer-address: {ADDR}, ebgp-multihop: true}}\n"
    ));
    assert_error(
        &e,
        Rule::EbgpMultihopForIbgp,
        &peer(1, ADDR),
        "ebgp-multihop",
        "ibgp peer",
    );
}

#[test]
fn invalid_and_missing_peer_address() {
    let e = only_error("peers:\n- {my-asn: 1, peer-asn: 2, peer-address: 192.0.2.256}\n");
    assert_error(
        &e,
        Rule::InvalidPeerAddress,
        &peer(1, "192.0.2.256"),
        "peer-address",
        "invalid peer IP \"192.0.2.256\"",
    );
    let e = only_error("peers:\n- {my-asn: 1, peer-asn: 2}\n");
    assert_error(
        &e,
        Rule::InvalidPeerAddress,
        &peer(1, ""),
        "peer-address",
        "missing peer IP",
    );
}

#[test]
fn hold_time_must_be_zero_or_at_least_three_seconds() {
    let e = only_error(&one_peer("  hold-time: 2s\n"));
    assert_error(
        &e,
        Rule::InvalidHoldTime,
        &peer(1, ADDR),
        "hold-time",
        "must be 0 or >=3s",
    );
    let e = only_error(&one_peer("  hold-time: ninety\n"));
    assert_error(
        &e,
        Rule::InvalidHoldTime,
        &peer(1, ADDR),
        "hold-time",
        "invalid hold time \"ninety\"",
    );
    // Zero disables keepalives; 3s is the minimum; sub-second parts are truncated.
    assert_eq!(
        parse(&one_peer("  hold-time: 0s\n")).unwrap().peers[0].hold_time,
        Duration::ZERO
    );
    let cfg = parse(&one_peer("  hold-time: 3.7s\n")).unwrap();
    assert_eq!(cfg.peers[0].hold_time, Duration::from_secs(3));
    assert_eq!(cfg.peers[0].keepalive_time, Duration::from_secs(1));
}

#[test]
fn keepalive_must_not_exceed_hold_time() {
    let e = only_error(&one_peer("  hold-time: 9s\n  keepalive-time: 10s\n"));
    assert_error(
        &e,
        Rule::InvalidKeepaliveTime,
        &peer(1, ADDR),
        "keepalive-time",
        "must not be greater than the hold time (9s)",
    );
    let cfg = parse(&one_peer("  hold-time: 1m\n  keepalive-time: 1m\n")).unwrap();
    assert_eq!(cfg.peers[0].keepalive_time, Duration::from_secs(60));
}

#[test]
fn invalid_router_id_and_source_address() {
    let errs = errors(&one_peer(
        "  router-id: 10.0.0\n  source-address: \"2001:db8::g\"\n",
    ));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_error(
        &errs[0],
        Rule::InvalidRouterId,
        &peer(1, ADDR),
        "router-id",
        "invalid router ID \"10.0.0\"",
    );
    assert_error(
        &errs[1],
        Rule::InvalidSourceAddress,
        &peer(1, ADDR),
        "source-address",
        "invalid source IP",
    );
}

#[test]
fn node_selectors_are_checked_like_label_selectors() {
    let errs = errors(&one_peer(
        "  node-selectors:\n  - match-labels: {\"-bad\": x}\n    match-expressions:\n    - {key: rack, operator: Like, values: [a]}\n    - {key: rack, operator: In}\n    - {key: rack, operator: Exists, values: [a]}\n",
    ));
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "node-selectors[0].match-labels",
            "node-selectors[0].match-expressions[0].operator",
            "node-selectors[0].match-expressions[1].values",
            "node-selectors[0].match-expressions[2].values",
        ]
    );
    assert!(errs.iter().all(|e| e.rule == Rule::InvalidNodeSelector));
    assert!(errs[1].message.contains("\"Like\""));
}

#[test]
fn valid_node_selectors_are_kept() {
    let cfg = parse(&one_peer(
        "  node-selectors:\n  - match-labels: {kubernetes.io/hostname: node-a}\n    match-expressions:\n    - {key: rack, operator: NotIn, values: [r1, r2]}\n",
    ))
    .unwrap();
    let sel = &cfg.peers[0].node_selectors[0];
    assert_eq!(sel.match_labels["kubernetes.io/hostname"], "node-a");
    assert_eq!(sel.match_expressions[0].operator, SelectorOperator::NotIn);
    assert_eq!(sel.match_expressions[0].values, ["r1", "r2"]);
}

#[test]
fn duplicate_peers() {
    let e = only_error(&format!(
        "peers:\n- {{my-asn: 1, peer-asn: 2, peer-address: {ADDR}}}\n- {{my-asn: 1, peer-asn: 2, peer-address: {ADDR}, peer-port: 179, hold-time: 90s}}\n"
    ));
    assert_error(
        &e,
        Rule::DuplicatePeer,
        &peer(2, ADDR),
        "peer-address",
        "same settings as peer #1",
    );
    // Same address with different settings is a different session, as in MetalLB.
    let cfg = parse(&format!(
        "peers:\n- {{my-asn: 1, peer-asn: 2, peer-address: {ADDR}}}\n- {{my-asn: 1, peer-asn: 2, peer-address: {ADDR}, peer-port: 1179}}\n"
    ))
    .unwrap();
    assert_eq!(cfg.peers.len(), 2);
}

#[test]
fn unknown_bfd_profile_reference() {
    let e = only_error(&one_peer("  bfd-profile: fast\n"));
    assert_error(
        &e,
        Rule::UnknownBfdProfile,
        &peer(1, ADDR),
        "bfd-profile",
        "non existing bfd profile \"fast\"",
    );
}

#[test]
fn known_bfd_profile_reference() {
    let cfg = parse(&format!(
        "bfd-profiles:\n- {{name: fast, receive-interval: 10, echo-mode: true}}\n{}",
        one_peer("  bfd-profile: fast\n")
    ))
    .unwrap();
    assert_eq!(cfg.peers[0].bfd_profile.as_deref(), Some("fast"));
    assert_eq!(cfg.bfd_profiles[0].receive_interval, Some(10));
    assert!(cfg.bfd_profiles[0].echo_mode);
}

#[test]
fn duplicate_bfd_profile() {
    let e = only_error("bfd-profiles:\n- name: fast\n- name: slow\n- name: fast\n");
    let subject = Subject::BfdProfile {
        index: 3,
        name: Some("fast".into()),
    };
    assert_error(
        &e,
        Rule::DuplicateBfdProfile,
        &subject,
        "name",
        "duplicate bfd profile name \"fast\"",
    );
}

#[test]
fn bfd_profile_missing_name_and_values_out_of_range() {
    let e = only_error("bfd-profiles:\n- detect-multiplier: 3\n");
    let subject = Subject::BfdProfile {
        index: 1,
        name: None,
    };
    assert_error(
        &e,
        Rule::MissingName,
        &subject,
        "name",
        "missing bfd profile name",
    );

    let errs = errors(
        "bfd-profiles:\n- {name: x, detect-multiplier: 1, receive-interval: 60001, transmit-interval: 9, echo-interval: 5, minimum-ttl: 255}\n",
    );
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "detect-multiplier",
            "receive-interval",
            "transmit-interval",
            "minimum-ttl",
            "echo-interval"
        ]
    );
    assert!(errs.iter().all(|e| e.rule == Rule::BfdValueOutOfRange));
    assert!(
        errs[0].message.contains("must be in 2-255 range"),
        "{}",
        errs[0]
    );
}
