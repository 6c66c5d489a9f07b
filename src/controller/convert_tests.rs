//! `convert` checked through the controller's `plan`: the converted objects keep every address.

use std::fmt::Write as _;

use proptest::prelude::*;

use crate::config::convert::convert;
use crate::config::{parse, parse_file};
use crate::controller::plan::{parse_services, plan};

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
