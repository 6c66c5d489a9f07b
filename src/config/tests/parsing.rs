//! Input forms, strictness, budget, and whole-config acceptance.

use std::net::IpAddr;
use std::time::Duration;

use super::*;
use crate::config::{
    AddressRange, Community, Config, MAX_DEPTH, MAX_INPUT_BYTES, Protocol, SelectorOperator,
};

const FULL: &str = include_str!("../../../tests/fixtures/config/full.yaml");
const CONFIGMAP: &str = include_str!("../../../tests/fixtures/config/configmap.yaml");
const INVALID: &str = include_str!("../../../tests/fixtures/config/invalid.yaml");

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn range(a: &str, b: &str) -> AddressRange {
    AddressRange {
        start: ip(a),
        end: ip(b),
    }
}

#[test]
fn accepts_a_full_realistic_config() {
    let cfg = parse(FULL).unwrap();

    let names: Vec<&str> = cfg.address_pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["default", "reserved", "bgp-pool"]);

    let default = cfg.pool("default").unwrap();
    assert_eq!(default.protocol, Protocol::Layer2);
    assert_eq!(
        default.addresses,
        [
            range("192.0.2.64", "192.0.2.127"),
            range("198.51.100.10", "198.51.100.19"),
            range("2001:db8:1::", "2001:db8:1::ff"),
        ]
    );
    assert_eq!(default.address_count(), 64 + 10 + 256);
    assert!(default.auto_assign && !default.avoid_buggy_ips);

    let reserved = cfg.pool("reserved").unwrap();
    assert!(!reserved.auto_assign && reserved.avoid_buggy_ips);
    assert_eq!(reserved.address_count(), 128 + 16);

    let bgp = cfg.pool("bgp-pool").unwrap();
    assert_eq!(bgp.protocol, Protocol::Bgp);
    assert_eq!(bgp.bgp_advertisements.len(), 2);
    let ad = &bgp.bgp_advertisements[0];
    assert_eq!(ad.local_pref, Some(100));
    assert_eq!(
        ad.communities,
        [
            Community::Standard((65535 << 16) | 65282),
            Community::Standard((64500 << 16) | 7)
        ]
    );
    let ad = &bgp.bgp_advertisements[1];
    assert_eq!((ad.aggregation_length, ad.aggregation_length_v6), (24, 64));
    assert_eq!(
        ad.communities,
        [Community::Large {
            global_admin: 64500,
            local_data1: 1,
            local_data2: 2
        }]
    );

    assert_eq!(cfg.peers.len(), 2);
    let p = &cfg.peers[0];
    assert_eq!((p.my_asn, p.peer_asn, p.peer_port), (64500, 64501, 1179));
    assert_eq!(p.peer_address, ip("192.0.2.1"));
    assert_eq!(p.source_address, Some(ip("192.0.2.10")));
    assert_eq!(p.router_id, Some(ip("192.0.2.10")));
    assert_eq!(p.hold_time, Duration::from_secs(120));
    assert_eq!(p.keepalive_time, Duration::from_secs(40));
    assert_eq!(p.password.as_deref(), Some("s3cret"));
    assert_eq!(p.bfd_profile.as_deref(), Some("fast"));
    assert_eq!(
        p.node_selectors[0].match_expressions[0].operator,
        SelectorOperator::In
    );
    let p = &cfg.peers[1];
    assert_eq!(p.peer_address, ip("2001:db8::1"));
    assert_eq!(
        (p.hold_time, p.keepalive_time),
        (Duration::ZERO, Duration::ZERO)
    );

    assert_eq!(cfg.bgp_communities["no-advertise"], "65535:65282");
    assert_eq!(cfg.bfd_profiles.len(), 2);
    assert_eq!(cfg.bfd_profiles[0].detect_multiplier, Some(3));
    assert_eq!(cfg.bfd_profiles[1].receive_interval, None);
}

#[test]
fn accepts_the_configmap_manifest() {
    let cfg = parse(CONFIGMAP).unwrap();
    let names: Vec<&str> = cfg.address_pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["default", "manual"]);
    assert_eq!(cfg.pool("default").unwrap().address_count(), 16 + 8);
    assert!(!cfg.pool("manual").unwrap().auto_assign);
}

#[test]
fn manifest_and_bare_text_give_the_same_config() {
    let bare = "address-pools:\n- {name: a, protocol: layer2, addresses: [192.0.2.0/30]}\n";
    let indented: String = bare.lines().map(|l| format!("    {l}\n")).collect();
    let manifest = format!("apiVersion: v1\nkind: ConfigMap\ndata:\n  config: |\n{indented}");
    assert_eq!(parse(&manifest).unwrap(), parse(bare).unwrap());
}

#[test]
fn manifest_of_another_kind_is_rejected() {
    let err = parse("apiVersion: v1\nkind: Secret\ndata: {config: \"\"}\n").unwrap_err();
    assert!(
        matches!(&err, ConfigError::Manifest(m) if m.contains("\"Secret\"")),
        "{err}"
    );
}

#[test]
fn manifest_without_data_config_is_rejected() {
    let err = parse("apiVersion: v1\nkind: ConfigMap\ndata:\n  other: x\n").unwrap_err();
    assert!(
        matches!(&err, ConfigError::Manifest(m) if m.contains("data.config")),
        "{err}"
    );
}

#[test]
fn manifest_config_syntax_errors_say_they_are_in_data_config() {
    let err = parse("kind: ConfigMap\ndata:\n  config: |\n    pools: []\n").unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("in data.config"), "{shown}");
    assert!(shown.contains("unknown field `pools`"), "{shown}");
}

#[test]
fn manifest_config_errors_are_validation_errors() {
    let err = parse(
        "kind: ConfigMap\ndata:\n  config: |\n    address-pools:\n    - {name: a, protocol: bgp}\n",
    )
    .unwrap_err();
    assert_eq!(err.validation_errors().len(), 1, "{err}");
    assert_eq!(err.validation_errors()[0].rule, Rule::MissingAddresses);
}

#[test]
fn empty_inputs_are_an_empty_config() {
    for text in ["", "\n", "# only a comment\n", "---\n", "null\n", "{}\n"] {
        assert_eq!(parse(text).unwrap(), Config::default(), "{text:?}");
    }
    let manifest = "apiVersion: v1\nkind: ConfigMap\ndata:\n  config: \"\"\n";
    assert_eq!(parse(manifest).unwrap(), Config::default());
}

#[test]
fn unknown_keys_are_rejected_everywhere() {
    let cases = [
        ("adress-pools: []\n", "adress-pools"),
        (
            "address-pools:\n- {name: a, protocol: layer2, addresses: [192.0.2.0/30], auto-asign: true}\n",
            "auto-asign",
        ),
        (
            "peers:\n- {my-asn: 1, peer-asn: 2, peer-address: 192.0.2.1, holdtime: 3s}\n",
            "holdtime",
        ),
        (
            "address-pools:\n- name: a\n  protocol: bgp\n  addresses: [192.0.2.0/30]\n  bgp-advertisements:\n  - {local-pref: 1}\n",
            "local-pref",
        ),
        ("bfd-profiles:\n- {name: a, echo: true}\n", "echo"),
        ("kind: ConfigMap\nspec: {}\ndata: {config: \"\"}\n", "spec"),
    ];
    for (text, key) in cases {
        let err = parse(text).unwrap_err();
        let shown = err.to_string();
        assert!(matches!(err, ConfigError::Syntax(_)), "{shown}");
        assert!(shown.contains(&format!("unknown field `{key}`")), "{shown}");
    }
}

#[test]
fn wrong_types_are_syntax_errors_with_a_location() {
    let err = parse("address-pools:\n- name: a\n  protocol: layer2\n  addresses: 192.0.2.0/24\n")
        .unwrap_err();
    let shown = err.to_string();
    assert!(matches!(err, ConfigError::Syntax(_)), "{shown}");
    assert!(shown.contains("line 4"), "{shown}");
}

#[test]
fn oversized_input_is_rejected_before_parsing() {
    let text = format!("# {}\n", "x".repeat(MAX_INPUT_BYTES));
    assert_eq!(
        parse(&text),
        Err(ConfigError::TooLarge {
            size: text.len(),
            limit: MAX_INPUT_BYTES
        })
    );
}

#[test]
fn deep_nesting_is_rejected_by_the_budget() {
    let mut text = String::from("address-pools:\n");
    for depth in 1..=MAX_DEPTH + 8 {
        text.push_str(&"  ".repeat(depth));
        text.push_str("x:\n");
    }
    let err = parse(&text).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Budget(m) if m.contains("nesting depth")),
        "{err}"
    );
}

#[test]
fn deep_flow_nesting_is_rejected() {
    let text = format!("peers: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let err = parse(&text).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Budget(m) if m.contains("nesting")),
        "{err}"
    );
    // Block nesting far past the limit, one space per level.
    let text: String = (0..MAX_DEPTH * 10)
        .map(|d| format!("{}x:\n", " ".repeat(d)))
        .collect();
    let err = parse(&text).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Budget(m) if m.contains("nesting")),
        "{err}"
    );
}

#[test]
fn alias_bomb_is_rejected_by_the_budget() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let err = parse(&text).unwrap_err();
    assert!(matches!(err, ConfigError::Budget(_)), "{err}");
}

#[test]
fn several_documents_are_rejected() {
    let err = parse("address-pools: []\n---\npeers: []\n").unwrap_err();
    assert!(
        matches!(&err, ConfigError::Budget(m) if m.contains("more than one YAML document; a config is a single document")),
        "{err}"
    );
}

#[test]
fn every_error_is_collected() {
    let err = parse(INVALID).unwrap_err();
    let rules: Vec<Rule> = err.validation_errors().iter().map(|e| e.rule).collect();
    assert_eq!(
        rules,
        [
            Rule::InvalidHoldTime,
            Rule::InvalidCidr,
            Rule::UnknownProtocol,
            Rule::RangeStartAfterEnd,
            Rule::DuplicatePool,
            Rule::OverlappingAddresses,
        ],
        "{err}"
    );
    let shown = err.to_string();
    assert!(shown.starts_with("6 validation errors"), "{shown}");
    assert!(shown.contains("address pool \"second\" (#2), field addresses: CIDR \"192.0.2.128-192.0.2.200\" overlaps"), "{shown}");
}
