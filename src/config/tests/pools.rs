//! Address pool rules.

use std::net::IpAddr;

use super::*;
use crate::config::{AddressRange, Community, Protocol};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn one_pool(body: &str) -> String {
    format!("address-pools:\n- name: p\n{body}")
}

#[test]
fn missing_name() {
    let e = only_error("address-pools:\n- protocol: layer2\n  addresses: [192.0.2.0/24]\n");
    let subject = Subject::Pool {
        index: 1,
        name: None,
    };
    assert_error(&e, Rule::MissingName, &subject, "name", "missing pool name");
    assert!(e.to_string().starts_with("address pool #1"));
}

#[test]
fn missing_protocol() {
    let e = only_error(&one_pool("  addresses: [192.0.2.0/24]\n"));
    assert_error(
        &e,
        Rule::MissingProtocol,
        &pool(1, "p"),
        "protocol",
        "missing the protocol field",
    );
}

#[test]
fn unknown_protocol() {
    let e = only_error(&one_pool("  protocol: arp\n  addresses: [192.0.2.0/24]\n"));
    assert_error(
        &e,
        Rule::UnknownProtocol,
        &pool(1, "p"),
        "protocol",
        "unknown protocol \"arp\"",
    );
}

#[test]
fn missing_addresses_absent_or_empty() {
    for body in [
        "  protocol: layer2\n",
        "  protocol: layer2\n  addresses: []\n",
    ] {
        let e = only_error(&one_pool(body));
        assert_error(
            &e,
            Rule::MissingAddresses,
            &pool(1, "p"),
            "addresses",
            "no prefixes",
        );
    }
}

#[test]
fn invalid_cidr() {
    for bad in [
        "192.0.2.0/33",
        "192.0.2.300/24",
        "2001:db8::/129",
        "nonsense",
    ] {
        let e = only_error(&one_pool(&format!(
            "  protocol: layer2\n  addresses: [\"{bad}\"]\n"
        )));
        assert_error(
            &e,
            Rule::InvalidCidr,
            &pool(1, "p"),
            "addresses",
            &format!("invalid CIDR \"{bad}\""),
        );
    }
}

#[test]
fn bare_address_is_an_invalid_cidr_with_a_hint() {
    let e = only_error(&one_pool("  protocol: layer2\n  addresses: [192.0.2.1]\n"));
    assert_eq!(e.rule, Rule::InvalidCidr);
    assert!(e.message.contains("/32"), "{e}");
}

#[test]
fn invalid_range_endpoint() {
    let e = only_error(&one_pool(
        "  protocol: layer2\n  addresses: [192.0.2.1-192.0.2.x]\n",
    ));
    assert_error(
        &e,
        Rule::InvalidRange,
        &pool(1, "p"),
        "addresses",
        "invalid end IP \"192.0.2.x\"",
    );
    let e = only_error(&one_pool("  protocol: layer2\n  addresses: [-192.0.2.9]\n"));
    assert_error(
        &e,
        Rule::InvalidRange,
        &pool(1, "p"),
        "addresses",
        "invalid start IP",
    );
}

#[test]
fn range_start_after_end() {
    let e = only_error(&one_pool(
        "  protocol: layer2\n  addresses: [192.0.2.9-192.0.2.1]\n",
    ));
    assert_error(
        &e,
        Rule::RangeStartAfterEnd,
        &pool(1, "p"),
        "addresses",
        "start IP 192.0.2.9 is after the end IP 192.0.2.1",
    );
}

#[test]
fn mixed_family_range() {
    let e = only_error(&one_pool(
        "  protocol: layer2\n  addresses: [\"192.0.2.1-2001:db8::1\"]\n",
    ));
    assert_error(
        &e,
        Rule::MixedFamilyRange,
        &pool(1, "p"),
        "addresses",
        "different address families",
    );
}

#[test]
fn duplicate_pool_names() {
    let e = only_error(
        "address-pools:\n\
         - {name: a, protocol: layer2, addresses: [192.0.2.0/28]}\n\
         - {name: b, protocol: layer2, addresses: [192.0.2.16/28]}\n\
         - {name: a, protocol: layer2, addresses: [192.0.2.32/28]}\n",
    );
    assert_error(
        &e,
        Rule::DuplicatePool,
        &pool(3, "a"),
        "name",
        "duplicate definition of pool \"a\"",
    );
    assert!(e.to_string().contains("(#3)"), "{e}");
}

#[test]
fn overlap_within_a_pool() {
    let e = only_error(&one_pool(
        "  protocol: layer2\n  addresses: [192.0.2.0/24, 192.0.2.100-192.0.2.110]\n",
    ));
    assert_error(
        &e,
        Rule::OverlappingAddresses,
        &pool(1, "p"),
        "addresses",
        "\"192.0.2.100-192.0.2.110\" overlaps with already defined CIDR \"192.0.2.0/24\" in the same pool",
    );
}

#[test]
fn overlap_across_pools_v4_blames_the_later_pool() {
    // The later pool's range sorts first; the error must still name the later pool.
    let e = only_error(
        "address-pools:\n\
         - {name: first, protocol: layer2, addresses: [198.51.100.64/26]}\n\
         - {name: second, protocol: bgp, addresses: [198.51.100.0/24]}\n",
    );
    assert_error(
        &e,
        Rule::OverlappingAddresses,
        &pool(2, "second"),
        "addresses",
        "in address pool \"first\" (#1)",
    );
}

#[test]
fn overlap_across_pools_v6() {
    let e = only_error(
        "address-pools:\n\
         - {name: a, protocol: layer2, addresses: [\"2001:db8::/64\"]}\n\
         - {name: b, protocol: layer2, addresses: [\"2001:db8::ffff-2001:db8::1:0\"]}\n",
    );
    assert_error(
        &e,
        Rule::OverlappingAddresses,
        &pool(2, "b"),
        "addresses",
        "2001:db8::/64",
    );
}

#[test]
fn touching_and_cross_family_ranges_do_not_overlap() {
    let cfg = parse(
        "address-pools:\n\
         - {name: a, protocol: layer2, addresses: [192.0.2.0/25, \"::/0\"]}\n\
         - {name: b, protocol: layer2, addresses: [192.0.2.128-192.0.2.255, 0.0.0.0/25]}\n",
    )
    .unwrap();
    assert_eq!(cfg.address_pools.len(), 2);
}

#[test]
fn every_overlap_in_a_chain_is_reported() {
    let errs = errors(
        "address-pools:\n\
         - {name: a, protocol: layer2, addresses: [10.0.0.0/8]}\n\
         - {name: b, protocol: layer2, addresses: [10.1.0.0/16]}\n\
         - {name: c, protocol: layer2, addresses: [10.200.0.0/16]}\n",
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs.iter().all(|e| e.rule == Rule::OverlappingAddresses));
    assert_eq!(errs[0].subject, pool(2, "b"));
    assert_eq!(errs[1].subject, pool(3, "c"));
}

#[test]
fn bgp_advertisements_in_layer2_pool() {
    let e = only_error(&one_pool(
        "  protocol: layer2\n  addresses: [192.0.2.0/24]\n  bgp-advertisements:\n  - aggregation-length: 32\n",
    ));
    assert_error(
        &e,
        Rule::AdvertisementsInLayer2Pool,
        &pool(1, "p"),
        "bgp-advertisements",
        "layer2 address pool",
    );
}

#[test]
fn invalid_aggregation_length() {
    let e = only_error(&one_pool(
        "  protocol: bgp\n  addresses: [192.0.2.0/24]\n  bgp-advertisements:\n  - aggregation-length: 33\n",
    ));
    assert_error(
        &e,
        Rule::InvalidAggregationLength,
        &pool(1, "p"),
        "bgp-advertisements[0].aggregation-length",
        "invalid aggregation length 33 for IPv4",
    );
    let e = only_error(&one_pool(
        "  protocol: bgp\n  addresses: [\"2001:db8::/64\"]\n  bgp-advertisements:\n  - aggregation-length-v6: -1\n",
    ));
    assert_error(
        &e,
        Rule::InvalidAggregationLength,
        &pool(1, "p"),
        "bgp-advertisements[0].aggregation-length-v6",
        "invalid aggregation length -1 for IPv6",
    );
}

#[test]
fn aggregation_length_shorter_than_pool_prefix() {
    let e = only_error(&one_pool(
        "  protocol: bgp\n  addresses: [192.0.2.0/24, \"2001:db8::/64\"]\n  bgp-advertisements:\n  - aggregation-length: 16\n    aggregation-length-v6: 64\n",
    ));
    assert_error(
        &e,
        Rule::AggregationLengthTooShort,
        &pool(1, "p"),
        "bgp-advertisements[0].aggregation-length",
        "prefix 24 in this pool is more specific than the aggregation length",
    );
    let e = only_error(&one_pool(
        "  protocol: bgp\n  addresses: [\"2001:db8::/64\"]\n  bgp-advertisements:\n  - aggregation-length-v6: 48\n",
    ));
    assert_eq!(e.field, "bgp-advertisements[0].aggregation-length-v6");
    assert_eq!(e.rule, Rule::AggregationLengthTooShort);
}

#[test]
fn aggregation_of_a_range_uses_its_largest_inner_block() {
    // 192.0.2.1-192.0.2.130 summarises down to a /26 at most: aggregating at /26 is allowed,
    // /25 is not (MetalLB's rule compares with the least specific covering CIDR).
    let body = |len: u8| {
        format!(
            "  protocol: bgp\n  addresses: [192.0.2.1-192.0.2.130]\n  bgp-advertisements:\n  - aggregation-length: {len}\n"
        )
    };
    assert!(parse(&one_pool(&body(26))).is_ok());
    let e = only_error(&one_pool(&body(25)));
    assert_eq!(e.rule, Rule::AggregationLengthTooShort);
    assert!(e.message.contains("prefix 26"), "{e}");
}

#[test]
fn duplicate_advertisement() {
    let e = only_error(&one_pool(
        "  protocol: bgp\n  addresses: [192.0.2.0/24]\n  bgp-advertisements:\n  - {localpref: 100}\n  - {localpref: 100}\n",
    ));
    assert_error(
        &e,
        Rule::DuplicateAdvertisement,
        &pool(1, "p"),
        "bgp-advertisements",
        "advertisement 1 and 2 are equal",
    );
}

#[test]
fn invalid_community_in_the_community_map() {
    let e = only_error("bgp-communities:\n  broken: \"65536:1\"\n");
    assert_error(
        &e,
        Rule::InvalidCommunity,
        &Subject::Community {
            name: "broken".into(),
        },
        "bgp-communities",
        "invalid first section",
    );
}

#[test]
fn invalid_community_literal_in_advertisement() {
    let e = only_error(&one_pool(
        "  protocol: bgp\n  addresses: [192.0.2.0/24]\n  bgp-advertisements:\n  - communities: [\"1:2:3\"]\n",
    ));
    assert_error(
        &e,
        Rule::InvalidCommunity,
        &pool(1, "p"),
        "bgp-advertisements[0].communities",
        "invalid community \"1:2:3\"",
    );
}

#[test]
fn unknown_community_alias() {
    let e = only_error(&one_pool(
        "  protocol: bgp\n  addresses: [192.0.2.0/24]\n  bgp-advertisements:\n  - communities: [no-export]\n",
    ));
    assert_error(
        &e,
        Rule::UnknownCommunity,
        &pool(1, "p"),
        "bgp-advertisements[0].communities",
        "unknown community \"no-export\"",
    );
}

#[test]
fn duplicate_community_in_advertisement() {
    let e = only_error(&one_pool(
        "  protocol: bgp\n  addresses: [192.0.2.0/24]\n  bgp-advertisements:\n  - communities: [\"1:1\", \"1:1\"]\n",
    ));
    assert_error(
        &e,
        Rule::DuplicateCommunity,
        &pool(1, "p"),
        "bgp-advertisements[0].communities",
        "duplicate definition of community \"1:1\"",
    );
}

#[test]
fn reference_to_an_invalid_alias_is_reported_once() {
    let errs = errors(&format!(
        "bgp-communities:\n  bad: \"x:1\"\n{}",
        one_pool(
            "  protocol: bgp\n  addresses: [192.0.2.0/24]\n  bgp-advertisements:\n  - communities: [bad]\n"
        )
    ));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].field, "bgp-communities");
}

#[test]
fn defaults_are_metallb_defaults() {
    let cfg = parse(
        "address-pools:\n- {name: l2, protocol: layer2, addresses: [192.0.2.0/24]}\n- {name: b, protocol: bgp, addresses: [198.51.100.0/24]}\n",
    )
    .unwrap();
    let l2 = cfg.pool("l2").unwrap();
    assert!(l2.auto_assign);
    assert!(!l2.avoid_buggy_ips);
    assert!(l2.bgp_advertisements.is_empty());
    let ads = &cfg.pool("b").unwrap().bgp_advertisements;
    assert_eq!(ads.len(), 1);
    assert_eq!(
        (ads[0].aggregation_length, ads[0].aggregation_length_v6),
        (32, 128)
    );
    assert!(ads[0].communities.is_empty());
}

#[test]
fn yaml_1_1_booleans_as_written_for_metallb() {
    // MetalLB's YAML library took yes/no; configs in the wild use them.
    let cfg = parse(&one_pool(
        "  protocol: layer2\n  addresses: [192.0.2.0/24]\n  auto-assign: no\n  avoid-buggy-ips: yes\n",
    ))
    .unwrap();
    assert!(!cfg.address_pools[0].auto_assign);
    assert!(cfg.address_pools[0].avoid_buggy_ips);
}

#[test]
fn cidr_and_range_entries_become_inclusive_ranges() {
    let cfg = parse(&one_pool(
        "  protocol: bgp\n  addresses: [192.0.2.5/30, 198.51.100.10-198.51.100.20, \"2001:db8::/126\"]\n  bgp-advertisements:\n  - communities: [\"large:1:2:3\", \"65535:65281\"]\n",
    ))
    .unwrap();
    let p = &cfg.address_pools[0];
    assert_eq!(p.protocol, Protocol::Bgp);
    assert_eq!(
        p.addresses,
        vec![
            AddressRange {
                start: ip("192.0.2.4"),
                end: ip("192.0.2.7")
            },
            AddressRange {
                start: ip("198.51.100.10"),
                end: ip("198.51.100.20")
            },
            AddressRange {
                start: ip("2001:db8::"),
                end: ip("2001:db8::3")
            },
        ]
    );
    assert_eq!(p.address_count(), 4 + 11 + 4);
    assert_eq!(
        p.bgp_advertisements[0].communities,
        vec![
            Community::Large {
                global_admin: 1,
                local_data1: 2,
                local_data2: 3
            },
            Community::Standard(0xffff_ff01)
        ]
    );
}

#[test]
fn huge_pools_count_without_overflow() {
    let cfg = parse(&one_pool(
        "  protocol: layer2\n  addresses: [\"::/0\", 0.0.0.0/0]\n",
    ))
    .unwrap();
    assert_eq!(cfg.address_pools[0].address_count(), u128::MAX);
    assert_eq!(cfg.address_pools[0].families().to_string(), "IPv4,IPv6");
}
