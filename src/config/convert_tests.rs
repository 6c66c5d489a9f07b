use super::*;
use crate::config::{Source, parse, parse_file};

#[test]
fn names_are_made_kubernetes_safe_like_metallb() {
    let k = |n: &str| kubernetes_name("IPAddressPool", n);
    assert_eq!(k("default").unwrap(), "default");
    assert_eq!(k("My_Pool").unwrap(), "my-pool");
    assert_eq!(k("1st-pool").unwrap(), "st-pool");
    assert_eq!(k(&"a".repeat(70)).unwrap(), "a".repeat(63));
    assert!(k("123").is_err());
    assert!(k("has space").is_err());
}

#[test]
fn ranges_are_written_as_cidrs_when_they_are_one() {
    let r = |a: &str, b: &str| AddressRange {
        start: a.parse().unwrap(),
        end: b.parse().unwrap(),
    };
    assert_eq!(address_text(&r("192.0.2.0", "192.0.2.255")), "192.0.2.0/24");
    assert_eq!(address_text(&r("192.0.2.5", "192.0.2.5")), "192.0.2.5/32");
    assert_eq!(
        address_text(&r("192.0.2.1", "192.0.2.9")),
        "192.0.2.1-192.0.2.9"
    );
    assert_eq!(
        address_text(&r("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
        "::/0"
    );
}

const LEGACY: &str = "address-pools:\n- name: Zeta_Pool\n  protocol: layer2\n  addresses: \
                      [192.0.2.0/29, 192.0.2.10-192.0.2.12]\n- name: alpha\n  protocol: bgp\n  \
                      addresses: [198.51.100.0/30]\n  avoid-buggy-ips: true\n  \
                      bgp-advertisements:\n  - {aggregation-length: 30, communities: [\"65000:1\"]}\n\
                      - name: manual\n  protocol: layer2\n  auto-assign: false\n  addresses: \
                      [2001:db8::/126]\npeers:\n- {my-asn: 64500, peer-asn: 64501, peer-address: \
                      192.0.2.254}\n";

#[test]
fn converted_objects_parse_back_to_the_same_pools_and_advertisements() {
    let legacy = parse(LEGACY).unwrap();
    let out = convert(&legacy, "metallb-system").unwrap();
    let back = parse_file(&out.yaml)
        .unwrap_or_else(|e| panic!("{e}\n{}", out.yaml))
        .config;
    let summary = |c: &Config| -> Vec<(String, Vec<AddressRange>, bool, bool, Protocol)> {
        let mut v: Vec<_> = c
            .address_pools
            .iter()
            .map(|p| {
                (
                    p.name.replace('_', "-").to_lowercase(),
                    p.addresses.clone(),
                    p.auto_assign,
                    p.avoid_buggy_ips,
                    p.protocol,
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    assert_eq!(summary(&legacy), summary(&back));
    assert_eq!(back.l2_advertisements.len(), 2);
    assert_eq!(back.peers.len(), 1, "{}", out.yaml);
    assert_eq!(back.bgp_advertisements.len(), 1, "{}", out.yaml);
    // Renamed pool and order change are both told.
    assert!(
        out.notes
            .iter()
            .any(|n| n.contains("\"Zeta_Pool\" is named \"zeta-pool\""))
    );
    assert!(
        out.notes
            .iter()
            .any(|n| n.contains("ConfigMap order (zeta-pool, alpha)"))
    );
}

/// A legacy config using every BGP part: peers (one with every field, one with a keepalive
/// that is not a third of its hold time, one with only a hold time), bgp pools with and
/// without `bgp-advertisements`, communities by alias and by value, BFD profiles.
const LEGACY_BGP: &str = r#"
peers:
- my-asn: 64500
  peer-asn: 64501
  peer-address: 192.0.2.1
  peer-port: 1179
  source-address: 192.0.2.10
  hold-time: 120s
  keepalive-time: 40s
  router-id: 192.0.2.10
  password: s3cret
  bfd-profile: fast
  ebgp-multihop: true
  node-selectors:
  - match-labels: {rack: frontend}
    match-expressions:
    - {key: kubernetes.io/hostname, operator: In, values: [node-a, node-b]}
- {my-asn: 64500, peer-asn: 64500, peer-address: "2001:db8::1", hold-time: 10s}
- {my-asn: 64500, peer-asn: 64502, peer-address: 192.0.2.3, hold-time: 90s, keepalive-time: 10s}
bgp-communities:
  no-advertise: "65535:65282"
  site: "large:64500:1:2"
bfd-profiles:
- {name: fast, receive-interval: 100, detect-multiplier: 3, echo-mode: true}
address-pools:
- name: edge
  protocol: bgp
  addresses: [203.0.113.0/24, "2001:db8:3::/64"]
  bgp-advertisements:
  - {aggregation-length: 32, localpref: 100, communities: [no-advertise, "64500:7"]}
  - {aggregation-length: 24, aggregation-length-v6: 64, communities: [site]}
- name: plain
  protocol: bgp
  addresses: [198.51.100.0/28]
- name: lan
  protocol: layer2
  addresses: [192.0.2.64/26]
"#;

#[test]
fn converted_bgp_objects_parse_back_to_the_same_peers_and_advertisements() {
    let legacy = parse(LEGACY_BGP).unwrap();
    assert_eq!(legacy.peers.len(), 3);
    assert_eq!(legacy.bgp_advertisements.len(), 3);
    // What ferrolb does not implement is reported for the ConfigMap too.
    let told: Vec<String> = legacy.warnings.iter().map(ToString::to_string).collect();
    // (Peer #1 is eBGP multi-hop: its BFD is multi-hop, implemented, so not told.)
    assert_eq!(told.len(), 2, "{told:#?}");
    assert!(told[0].starts_with("peer #3 (192.0.2.3), field keepalive-time:"));
    assert!(
        told[1].starts_with("bfd profile \"fast\" (#1), field echo-mode: the BFD echo function"),
        "{told:#?}"
    );
    let out = convert(&legacy, "metallb-system").unwrap();
    let back = parse_file(&out.yaml)
        .unwrap_or_else(|e| panic!("{e}\n{}", out.yaml))
        .config;
    assert_eq!(back.source, Source::Crds);
    // Names included: both sides sort by name for the comparison (the sources order differently
    // past nine of a kind).
    let sorted = |c: &Config| {
        let mut peers = c.peers.clone();
        peers.sort_by(|a, b| a.name.cmp(&b.name));
        let mut ads = c.bgp_advertisements.clone();
        ads.sort_by(|a, b| a.name.cmp(&b.name));
        (peers, ads)
    };
    assert_eq!(sorted(&back), sorted(&legacy), "{}", out.yaml);
    assert_eq!(back.bgp_communities, legacy.bgp_communities);
    assert_eq!(back.bfd_profiles, legacy.bfd_profiles);
    // The keepalive that is not a third of the hold time survives, and is reported.
    assert!(out.yaml.contains("keepaliveTime: 10s"), "{}", out.yaml);
    assert!(
        back.warnings
            .iter()
            .any(|w| w.object == "BGPPeer \"peer3\"" && w.field == "spec.keepaliveTime"),
        "{:#?}",
        back.warnings
    );
}
