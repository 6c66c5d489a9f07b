use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;
use crate::bgp::wire::{
    AsPath, AsSegment, Community, LargeCommunity, Message, MpReach, Origin, RawAttribute,
    SegmentKind, frame, hex,
};

const M: &str = "ffffffffffffffffffffffffffffffff";

fn msg(rest: &str) -> Vec<u8> {
    hex(&format!("{M} {rest}"))
}

fn parse(bytes: &[u8], context: Context) -> Result<UpdateRepr, WireError> {
    match Message::parse(bytes, context)? {
        Message::Update(update) => Ok(*update),
        other => panic!("not an UPDATE: {other:?}"),
    }
}

fn emit(update: &UpdateRepr, context: Context) -> Vec<u8> {
    Message::Update(Box::new(update.clone()))
        .emit(context)
        .unwrap()
}

fn v4(text: &str) -> Ipv4Net {
    text.parse().unwrap()
}

/// An IPv6 route from AS 65001 as FRR sends it (RFC 4271 §4.3, RFC 4760 §3, RFC 1997, RFC 8092):
/// ORIGIN IGP, AS_PATH [65001] with 4-octet ASNs, COMMUNITIES 65001:100 and NO_EXPORT,
/// MP_REACH_NLRI for IPv6 unicast with a global and a link-local next hop and two prefixes,
/// LARGE_COMMUNITIES 65001:1:2.
const IPV6_UPDATE: &str = "0080 02 | 0000 | 0069 |
    40 01 01 | 00 |
    40 02 06 | 02 01 0000fde9 |
    c0 08 08 | fde9 0064 ffffff01 |
    80 0e 3f | 0002 01 | 20 | 20010db8000000000000000000000001 fe800000000000000000000000000001 |
               00 | 40 20010db800010000 | 80 20010db8000000000000000000000064 |
    c0 20 0c | 0000fde9 00000001 00000002";

fn ipv6_update() -> UpdateRepr {
    UpdateRepr {
        withdrawn: vec![],
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(vec![65001])),
            communities: vec![Community::new(65001, 100), Community::NO_EXPORT],
            large_communities: vec![LargeCommunity {
                global: 65001,
                local1: 1,
                local2: 2,
            }],
            mp_reach: Some(MpReach::Ipv6 {
                next_hop: "2001:db8::1".parse().unwrap(),
                link_local: Some("fe80::1".parse().unwrap()),
                nlri: vec![
                    "2001:db8:1::/64".parse().unwrap(),
                    "2001:db8::64/128".parse().unwrap(),
                ],
            }),
            ..PathAttributes::default()
        },
        nlri: vec![],
    }
}

#[test]
fn ipv6_update_with_communities_and_large_communities() {
    let bytes = msg(IPV6_UPDATE);
    assert_eq!(bytes.len(), 128);
    let update = parse(&bytes, Context::FOUR_OCTET).unwrap();
    assert_eq!(update, ipv6_update());
    assert_eq!(emit(&update, Context::FOUR_OCTET), bytes);
    assert_eq!(update.is_end_of_rib(), None);
}

/// What MetalLB's native speaker announces to an eBGP peer: one IPv4 /32, ORIGIN IGP, AS_PATH
/// [64512], NEXT_HOP the session's address, one community.
const IPV4_UPDATE: &str = "0037 02 | 0000 | 001b |
    40 01 01 | 00 |
    40 02 06 | 02 01 0000fc00 |
    40 03 04 | c0000202 |
    c0 08 04 | fc00 0001 |
    20 c6336407";

fn ipv4_update() -> UpdateRepr {
    UpdateRepr {
        withdrawn: vec![],
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(vec![64512])),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 2)),
            communities: vec![Community::new(64512, 1)],
            ..PathAttributes::default()
        },
        nlri: vec![v4("198.51.100.7/32")],
    }
}

#[test]
fn ipv4_update_as_metallb_sends_it() {
    let bytes = msg(IPV4_UPDATE);
    let update = parse(&bytes, Context::FOUR_OCTET).unwrap();
    assert_eq!(update, ipv4_update());
    assert_eq!(emit(&update, Context::FOUR_OCTET), bytes);
    assert_eq!(Community::new(64512, 1).to_string(), "64512:1");
}

#[test]
fn two_octet_as_path_before_rfc6793() {
    let bytes = msg("0034 02 | 0000 | 0019 |
        40 01 01 00 | 40 02 04 02 01 fc00 | 40 03 04 c0000202 | 40 05 04 00000064 |
        18 c63364");
    let update = parse(&bytes, Context::default()).unwrap();
    assert_eq!(
        update.attributes.as_path,
        Some(AsPath::sequence(vec![64512]))
    );
    assert_eq!(update.attributes.local_pref, Some(100));
    assert_eq!(update.nlri, vec![v4("198.51.100.0/24")]);
    assert_eq!(emit(&update, Context::default()), bytes);
    // An AS that needs four octets is written as AS_TRANS.
    let mut wide = update;
    wide.attributes.as_path = Some(AsPath::sequence(vec![4_200_000_001]));
    let two = emit(&wide, Context::default());
    assert_eq!(&two[32..34], &[0x5b, 0xa0]);
}

#[test]
fn withdrawals_and_end_of_rib() {
    let bytes = msg("001c 02 | 0005 | 20 c6336407 | 0000");
    let update = parse(&bytes, Context::FOUR_OCTET).unwrap();
    assert_eq!(update.withdrawn, vec![v4("198.51.100.7/32")]);
    assert_eq!(update.attributes, PathAttributes::default());
    assert_eq!(emit(&update, Context::FOUR_OCTET), bytes);

    let eor4 = msg("0017 02 | 0000 | 0000");
    assert_eq!(
        parse(&eor4, Context::FOUR_OCTET).unwrap().is_end_of_rib(),
        Some(AddressFamily::IPV4_UNICAST)
    );
    let eor6 = msg("001d 02 | 0000 | 0006 | 80 0f 03 0002 01");
    let update = parse(&eor6, Context::FOUR_OCTET).unwrap();
    assert_eq!(update.is_end_of_rib(), Some(AddressFamily::IPV6_UNICAST));
    assert_eq!(update, UpdateRepr::end_of_rib(AddressFamily::IPV6_UNICAST));
    assert_eq!(emit(&update, Context::FOUR_OCTET), eor6);
}

#[test]
fn host_bits_past_the_prefix_length_are_ignored() {
    // 198.51.100.255/24 sent with the host octet anyway would be 4 bytes; 3 bytes with junk in
    // the last bits of a /20 are read as the /20.
    let bytes = msg("001b 02 | 0004 | 14 c633ff | 0000");
    let update = parse(&bytes, Context::FOUR_OCTET).unwrap();
    assert_eq!(update.withdrawn, vec![v4("198.51.240.0/20")]);
}

#[test]
fn unknown_optional_transitive_kept_with_partial_bit_non_transitive_dropped() {
    // AGGREGATOR-like type 7 as an optional transitive with the partial bit, then an unknown
    // optional non-transitive type 99.
    let bytes = msg("0027 02 | 0000 | 0010 | e0 07 08 0000fde9 0a000001 | 80 63 02 abcd");
    let update = parse(&bytes, Context::FOUR_OCTET).unwrap();
    assert_eq!(
        update.attributes.other,
        vec![RawAttribute {
            flags: 0xe0,
            type_code: 7,
            value: hex("0000fde9 0a000001"),
        }]
    );
    let again = emit(&update, Context::FOUR_OCTET);
    assert_eq!(
        again,
        msg("0022 02 | 0000 | 000b | e0 07 08 0000fde9 0a000001")
    );
}

#[test]
fn long_attributes_use_the_extended_length() {
    let mut update = ipv4_update();
    update.attributes.communities = (0..100).map(|i| Community::new(64512, i)).collect();
    let bytes = emit(&update, Context::FOUR_OCTET);
    // ORIGIN (4) + AS_PATH (9) + NEXT_HOP (7), then COMMUNITIES: flags with the extended bit.
    assert_eq!(&bytes[23 + 20..23 + 24], &[0xd0, 0x08, 0x01, 0x90]);
    assert_eq!(parse(&bytes, Context::FOUR_OCTET).unwrap(), update);
}

/// An UPDATE with one attribute list (and `nlri`), for error cases.
fn with_attrs(attrs: &str, nlri: &str) -> Vec<u8> {
    let attrs = hex(attrs);
    let nlri = hex(nlri);
    let len = 19 + 4 + attrs.len() + nlri.len();
    let mut out = msg(&format!("{len:04x} 02 0000 {:04x}", attrs.len()));
    out.extend(attrs);
    out.extend(nlri);
    out
}

const ORIGIN: &str = "40 01 01 00";
const AS_PATH: &str = "40 02 06 02 01 0000fde9";
const NEXT_HOP: &str = "40 03 04 c0000202";
const NLRI: &str = "20 c6336407";

/// A NOTIFICATION as (code, subcode, data in hex).
type Answer = (u8, u8, &'static str);

/// Each malformed UPDATE and the NOTIFICATION RFC 4271 §6.3 answers it with.
#[test]
fn update_errors_answer_rfc4271_6_3() {
    let full = |extra: &str| format!("{ORIGIN} {AS_PATH} {NEXT_HOP} {extra}");
    let cases: Vec<(Vec<u8>, Answer)> = vec![
        // Withdrawn Routes Length past the message: Malformed Attribute List.
        (msg("001c 02 | 0009 | 20 c6336407 | 0000"), (3, 1, "")),
        // Total Path Attribute Length past the message.
        (msg("0019 02 | 0000 | 0009 | 40 01"), (3, 1, "")),
        // An attribute running past the list, and one repeated.
        (with_attrs("40 01 05 00", ""), (3, 1, "")),
        (with_attrs(&full(ORIGIN), NLRI), (3, 1, "")),
        // Unrecognized well-known attribute: data is the attribute.
        (with_attrs("40 63 01 00", ""), (3, 2, "40 63 01 00")),
        // NLRI without ORIGIN, AS_PATH or NEXT_HOP: the missing type code.
        (
            with_attrs(&format!("{AS_PATH} {NEXT_HOP}"), NLRI),
            (3, 3, "01"),
        ),
        (
            with_attrs(&format!("{ORIGIN} {NEXT_HOP}"), NLRI),
            (3, 3, "02"),
        ),
        (
            with_attrs(&format!("{ORIGIN} {AS_PATH}"), NLRI),
            (3, 3, "03"),
        ),
        // MP_REACH_NLRI needs ORIGIN and AS_PATH too.
        (
            with_attrs("80 0e 09 0001 01 04 c0000202 00", ""),
            (3, 3, "01"),
        ),
        // Flags: ORIGIN marked optional; MED marked transitive; partial on a well-known one.
        (with_attrs("c0 01 01 00", ""), (3, 4, "c0 01 01 00")),
        (
            with_attrs("c0 04 04 00000000", ""),
            (3, 4, "c0 04 04 00000000"),
        ),
        (with_attrs("60 01 01 00", ""), (3, 4, "60 01 01 00")),
        // Lengths that do not fit the type.
        (with_attrs("40 01 02 0000", ""), (3, 5, "40 01 02 0000")),
        (
            with_attrs("40 03 05 c000020201", ""),
            (3, 5, "40 03 05 c000020201"),
        ),
        (with_attrs("40 06 01 00", ""), (3, 5, "40 06 01 00")),
        (with_attrs("c0 08 03 fde900", ""), (3, 5, "c0 08 03 fde900")),
        (with_attrs("c0 08 00", ""), (3, 5, "c0 08 00")),
        (
            with_attrs("c0 20 08 0000fde9 00000001", ""),
            (3, 5, "c0 20 08 0000fde9 00000001"),
        ),
        (with_attrs("80 04 02 0000", ""), (3, 5, "80 04 02 0000")),
        (with_attrs("40 05 03 000000", ""), (3, 5, "40 05 03 000000")),
        // ORIGIN 3.
        (with_attrs("40 01 01 03", ""), (3, 6, "40 01 01 03")),
        // NEXT_HOP 0.0.0.0 and multicast.
        (
            with_attrs("40 03 04 00000000", ""),
            (3, 8, "40 03 04 00000000"),
        ),
        (
            with_attrs("40 03 04 e0000001", ""),
            (3, 8, "40 03 04 e0000001"),
        ),
        // MP_REACH_NLRI with an IPv6 next hop of 8 bytes: Optional Attribute Error.
        (
            with_attrs("80 0e 0d 0002 01 08 2001 0db8 0000 0001 00", ""),
            (3, 9, "80 0e 0d 0002 01 08 2001 0db8 0000 0001 00"),
        ),
        (
            with_attrs("80 0f 05 0002 01 81 00", ""),
            (3, 9, "80 0f 05 0002 01 81 00"),
        ),
        // NLRI of 33 bits, or cut short: Invalid Network Field.
        (with_attrs(&full(""), "21 c633640700"), (3, 10, "")),
        (with_attrs(&full(""), "18 c633"), (3, 10, "")),
        (msg("001b 02 | 0004 | 20 c63364 | 0000"), (3, 10, "")),
        // AS_PATH segment type 5, an empty segment, a segment past the attribute.
        (with_attrs("40 02 06 05 01 0000fde9", ""), (3, 11, "")),
        (with_attrs("40 02 02 02 00", ""), (3, 11, "")),
        (with_attrs("40 02 06 02 02 0000fde9", ""), (3, 11, "")),
    ];
    for (bytes, (code, subcode, data)) in cases {
        assert_eq!(frame(&bytes), Ok(Some(bytes.len())), "{bytes:02x?}");
        let n = parse(&bytes, Context::FOUR_OCTET)
            .unwrap_err()
            .notification();
        assert_eq!(
            (n.code, n.subcode, n.data),
            (code, subcode, hex(data)),
            "{bytes:02x?}"
        );
    }
}

#[test]
fn as_path_segments_of_every_kind() {
    let path = AsPath {
        segments: vec![
            AsSegment {
                kind: SegmentKind::ConfedSequence,
                asns: vec![64600],
            },
            AsSegment {
                kind: SegmentKind::Sequence,
                asns: vec![65001, 4_200_000_001],
            },
            AsSegment {
                kind: SegmentKind::Set,
                asns: vec![65010, 65011],
            },
            AsSegment {
                kind: SegmentKind::ConfedSet,
                asns: vec![64601],
            },
        ],
    };
    let mut update = ipv4_update();
    update.attributes.as_path = Some(path);
    let bytes = emit(&update, Context::FOUR_OCTET);
    assert_eq!(parse(&bytes, Context::FOUR_OCTET).unwrap(), update);
}

#[test]
fn ipv6_next_hop_without_link_local() {
    let mut update = ipv6_update();
    update.attributes.mp_reach = Some(MpReach::Ipv6 {
        next_hop: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
        link_local: None,
        nlri: vec!["2001:db8:5::/48".parse().unwrap()],
    });
    let bytes = emit(&update, Context::FOUR_OCTET);
    assert_eq!(parse(&bytes, Context::FOUR_OCTET).unwrap(), update);
}
