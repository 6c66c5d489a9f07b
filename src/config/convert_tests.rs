use super::*;
use crate::config::{parse, parse_file};

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
    assert_eq!(back.bgp_objects.len(), 2, "{}", out.yaml);
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
