//! Property tests: `parse` never panics, valid generated configs round-trip, and the sorted-range
//! overlap sweep agrees with a brute-force pairwise check.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;
use crate::config::{AddressRange, Protocol};

const FULL: &str = include_str!("../../../tests/fixtures/config/full.yaml");

/// Fragments of config-like YAML, so random input reaches deep into the schema and validator.
const FRAGMENTS: &[&str] = &[
    "address-pools:",
    "peers:",
    "bgp-communities:",
    "bfd-profiles:",
    "- name: a",
    "- name: b",
    "  protocol: layer2",
    "  protocol: bgp",
    "  addresses:",
    "  - 192.0.2.0/24",
    "  - 192.0.2.5-192.0.2.1",
    "  - ::/0",
    "  - 2001:db8::1-2001:db8::9",
    "  - 0.0.0.0/0",
    "  bgp-advertisements:",
    "  - aggregation-length: ",
    "    communities: [a, 1:2, large:1:2:3]",
    "- my-asn: 1",
    "  peer-asn: 1",
    "  peer-address: 192.0.2.1",
    "  hold-time: ",
    "  keepalive-time: 1h",
    "  node-selectors:",
    "  - match-expressions: [{key: a, operator: In}]",
    "kind: ConfigMap",
    "data:",
    "  config: |",
    "&x",
    "*x",
    "[",
    "]",
    "{",
    "}",
    ":",
    "-",
    "---",
    "\"",
    "'",
    "99999999999999999999",
    "-1",
    "1.5s",
    "\n",
    "\n  ",
    "\t",
    "~",
    "<<: *x",
];

fn yamlish() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40).prop_map(|v| v.join(""))
}

/// One generated address entry: its text as written and the range it must parse to.
#[derive(Debug, Clone)]
struct Entry {
    text: String,
    range: AddressRange,
}

/// Disjoint entries in increasing order: each a CIDR block (aligned) or an `a-b` range.
fn disjoint_entries(v6: bool) -> impl Strategy<Value = Vec<Entry>> {
    let item = (0u32..1000, prop::bool::ANY, 0u32..12, 0u32..5000);
    prop::collection::vec(item, 0..12).prop_map(move |items| {
        let base: u128 = if v6 {
            u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0))
        } else {
            u128::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)))
        };
        let bits = if v6 { 128 } else { 32 };
        let to_ip = |n: u128| -> IpAddr {
            if v6 {
                IpAddr::V6(Ipv6Addr::from(n))
            } else {
                IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap()))
            }
        };
        let mut next = base; // first address not yet used
        let mut out = Vec::new();
        for (gap, cidr, size_log, len) in items {
            let (start, end, text) = if cidr {
                let size = 1u128 << size_log;
                let start = (next + u128::from(gap)).div_ceil(size) * size;
                let end = start + size - 1;
                (start, end, format!("{}/{}", to_ip(start), bits - size_log))
            } else {
                let start = next + u128::from(gap);
                let end = start + u128::from(len);
                (start, end, format!("{}-{}", to_ip(start), to_ip(end)))
            };
            next = end + 1;
            out.push(Entry {
                text,
                range: AddressRange {
                    start: to_ip(start),
                    end: to_ip(end),
                },
            });
        }
        out
    })
}

#[derive(Debug, Clone)]
struct GenPool {
    protocol: Protocol,
    auto_assign: bool,
    avoid_buggy_ips: bool,
    entries: Vec<Entry>,
}

/// Pools over disjoint v4 and v6 entries, each entry given to one pool; pools left without
/// entries are dropped (a pool must have addresses).
fn pools() -> impl Strategy<Value = Vec<GenPool>> {
    (disjoint_entries(false), disjoint_entries(true), 1usize..6)
        .prop_flat_map(|(v4, v6, n)| {
            let entries: Vec<Entry> = v4.into_iter().chain(v6).collect();
            let owners = prop::collection::vec(0..n, entries.len());
            let flags =
                prop::collection::vec((prop::bool::ANY, prop::bool::ANY, prop::bool::ANY), n);
            // Shuffled, so pools list their entries out of address order too.
            (Just(entries).prop_shuffle(), owners, flags)
        })
        .prop_map(|(entries, owners, flags)| {
            let mut pools: Vec<GenPool> = flags
                .into_iter()
                .map(|(bgp, auto_assign, avoid_buggy_ips)| GenPool {
                    protocol: if bgp { Protocol::Bgp } else { Protocol::Layer2 },
                    auto_assign,
                    avoid_buggy_ips,
                    entries: Vec::new(),
                })
                .collect();
            for (entry, owner) in entries.into_iter().zip(owners) {
                pools[owner].entries.push(entry);
            }
            pools.retain(|p| !p.entries.is_empty());
            pools
        })
}

fn render(pools: &[GenPool]) -> String {
    let mut text = String::from("address-pools:\n");
    for (i, p) in pools.iter().enumerate() {
        text.push_str(&format!(
            "- name: pool-{i}\n  protocol: {}\n  auto-assign: {}\n  avoid-buggy-ips: {}\n  addresses:\n",
            p.protocol, p.auto_assign, p.avoid_buggy_ips
        ));
        for e in &p.entries {
            text.push_str(&format!("  - \"{}\"\n", e.text));
        }
    }
    text
}

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = parse(&text);
    }

    #[test]
    fn parse_never_panics_on_config_like_text(text in yamlish()) {
        let _ = parse(&text);
    }

    #[test]
    fn parse_never_panics_on_a_mutated_real_config(
        cut in 0..FULL.len(),
        pos in 0..FULL.len(),
        byte in prop::sample::select(&b"-:[]{}&*\n 0x/.\"'"[..]),
    ) {
        let mut bytes = FULL.as_bytes()[..cut.max(pos + 1).min(FULL.len())].to_vec();
        let pos = pos.min(bytes.len() - 1);
        bytes[pos] = byte;
        if let Ok(text) = String::from_utf8(bytes) {
            let _ = parse(&text);
        }
    }

    #[test]
    fn generated_non_overlapping_pools_round_trip(pools in pools()) {
        let text = render(&pools);
        let cfg = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(cfg.address_pools.len(), pools.len());
        for (i, (got, want)) in cfg.address_pools.iter().zip(&pools).enumerate() {
            prop_assert_eq!(&got.name, &format!("pool-{i}"));
            prop_assert_eq!(got.protocol, want.protocol);
            prop_assert_eq!(got.auto_assign, want.auto_assign);
            prop_assert_eq!(got.avoid_buggy_ips, want.avoid_buggy_ips);
            let ranges: Vec<AddressRange> = want.entries.iter().map(|e| e.range).collect();
            prop_assert_eq!(&got.addresses, &ranges);
            let count: u128 = ranges.iter().map(AddressRange::len).sum();
            prop_assert_eq!(got.address_count(), count);
        }
        // The same text inside a ConfigMap manifest gives the same config.
        let indented: String = text.lines().map(|l| format!("    {l}\n")).collect();
        let manifest = format!("apiVersion: v1\nkind: ConfigMap\ndata:\n  config: |\n{indented}");
        prop_assert_eq!(parse(&manifest).unwrap(), cfg);
    }

    #[test]
    fn overlap_sweep_agrees_with_pairwise_check(
        ranges in prop::collection::vec((0u8..64, 0u8..16, 0usize..3), 1..12),
    ) {
        // Small space so overlaps are common; entries spread over up to three pools.
        let spans: Vec<(u8, u8, usize)> =
            ranges.iter().map(|&(s, l, p)| (s, s.saturating_add(l), p)).collect();
        let mut text = String::from("address-pools:\n");
        for pool in 0..3 {
            let mine: Vec<_> = spans.iter().filter(|s| s.2 == pool).collect();
            if mine.is_empty() {
                continue;
            }
            text.push_str(&format!("- name: p{pool}\n  protocol: layer2\n  addresses:\n"));
            for (s, e, _) in mine {
                text.push_str(&format!("  - 192.0.2.{s}-192.0.2.{e}\n"));
            }
        }
        let pairwise = spans.iter().enumerate().any(|(i, a)| {
            spans[i + 1..].iter().any(|b| a.0 <= b.1 && b.0 <= a.1)
        });
        match parse(&text) {
            Ok(_) => prop_assert!(!pairwise, "overlap missed:\n{}", text),
            Err(e) => {
                prop_assert!(pairwise, "false overlap: {}\n{}", e, text);
                prop_assert!(e
                    .validation_errors()
                    .iter()
                    .all(|v| v.rule == Rule::OverlappingAddresses));
            }
        }
    }
}
