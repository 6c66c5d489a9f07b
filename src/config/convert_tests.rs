use proptest::prelude::*;

use super::*;
use crate::config::{parse, parse_file};
use crate::controller::plan::{parse_services, plan};

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

/// Name, layer2?, auto-assign, avoid-buggy-ips, (block, length) ranges.
type PoolCase = (String, bool, bool, bool, Vec<(u8, u8)>);

fn pool_strategy() -> impl Strategy<Value = PoolCase> {
    (
        prop::sample::select(vec!["a", "b", "c", "d"]),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec((0u8..4, 1u8..6), 1..3),
    )
        .prop_map(|(n, l2, auto, avoid, ranges)| (n.to_owned(), l2, auto, avoid, ranges))
}

/// A legacy config of pools carved from disjoint blocks: pool i block j is
/// 192.0.2.(64*i + 16*j) (+ 2001:db8::(i*256 + j*16)) with `len` addresses.
fn legacy_text(pools: &[PoolCase]) -> String {
    let mut text = String::from("address-pools:\n");
    let mut seen = Vec::new();
    for (i, (name, l2, auto, avoid, ranges)) in pools.iter().enumerate() {
        if seen.contains(name) {
            continue;
        }
        seen.push(name.clone());
        let mut addrs = Vec::new();
        let mut blocks: Vec<u8> = Vec::new();
        for &(block, len) in ranges {
            if blocks.contains(&block) {
                continue;
            }
            blocks.push(block);
            let base = 64 * i as u32 + 16 * u32::from(block);
            if block % 2 == 0 {
                addrs.push(format!(
                    "198.51.100.{}-198.51.100.{}",
                    base,
                    base + u32::from(len) - 1
                ));
            } else {
                let b = i * 256 + usize::from(block) * 16;
                addrs.push(format!(
                    "2001:db8::{b:x}-2001:db8::{:x}",
                    b + usize::from(len) - 1
                ));
            }
        }
        let _ = writeln!(
            text,
            "- name: {name}\n  protocol: {}\n  auto-assign: {auto}\n  avoid-buggy-ips: {avoid}\n  \
             addresses: [{}]",
            if *l2 { "layer2" } else { "bgp" },
            addrs.join(", ")
        );
    }
    text
}

fn services_text(kinds: &[(u8, bool)]) -> String {
    let mut text = String::new();
    for (i, (kind, pool_annotation)) in kinds.iter().enumerate() {
        let (families, policy) = match kind {
            0 => ("[IPv4]", "SingleStack"),
            1 => ("[IPv6]", "SingleStack"),
            2 => ("[IPv4, IPv6]", "PreferDualStack"),
            _ => ("[IPv6, IPv4]", "RequireDualStack"),
        };
        let ann = if *pool_annotation {
            "  annotations: {metallb.universe.tf/address-pool: b}\n"
        } else {
            ""
        };
        let _ = write!(
            text,
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s{i}\n  namespace: ns{}\n{ann}\
             spec:\n  type: LoadBalancer\n  ipFamilies: {families}\n  ipFamilyPolicy: {policy}\n  \
             ports: [{{port: {}, protocol: TCP}}]\n",
            i % 3,
            80 + i
        );
    }
    text
}

fn ips(svc: &k8s_openapi::api::core::v1::Service) -> Vec<String> {
    crate::k8s::service::status_ips(svc)
        .iter()
        .map(ToString::to_string)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Every Service holding an address after `plan` on a legacy config keeps it when planned
    /// again on the converted objects (a controller restarted with `--config-source crds`).
    #[test]
    fn converted_config_keeps_every_held_address(
        pools in prop::collection::vec(pool_strategy(), 1..5),
        kinds in prop::collection::vec((0u8..4, prop::bool::weighted(0.2)), 1..12),
    ) {
        let legacy = parse(&legacy_text(&pools)).unwrap();
        let converted = convert(&legacy, "metallb-system").unwrap();
        let crds = parse_file(&converted.yaml).unwrap().config;
        let services = parse_services(&services_text(&kinds), "svc").unwrap();
        let first = plan(&legacy, services, None).unwrap();
        let again = plan(&crds, first.services.clone(), None).unwrap();
        for (before, after) in first.services.iter().zip(&again.services) {
            prop_assert_eq!(ips(before), ips(after), "{:?}", before.metadata.name);
        }
        // With no order difference reported, new Services are placed identically too.
        if !converted.notes.iter().any(|n| n.contains("ConfigMap order")) {
            let services = parse_services(&services_text(&kinds), "svc").unwrap();
            let fresh = plan(&crds, services, None).unwrap();
            for (a, b) in first.services.iter().zip(&fresh.services) {
                prop_assert_eq!(ips(a), ips(b));
            }
        }
    }
}
