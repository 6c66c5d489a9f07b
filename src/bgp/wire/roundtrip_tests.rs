//! Properties of the whole codec: every message we can emit parses back equal, and no input,
//! random or a valid message mutated, makes a parser panic.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

fn v4net() -> impl Strategy<Value = Ipv4Net> {
    (any::<u32>(), 0..=32u8).prop_map(|(a, len)| Ipv4Net::new(a.into(), len).unwrap().trunc())
}

fn v6net() -> impl Strategy<Value = Ipv6Net> {
    (any::<u128>(), 0..=128u8).prop_map(|(a, len)| Ipv6Net::new(a.into(), len).unwrap().trunc())
}

fn host_v4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>()
        .prop_map(Ipv4Addr::from)
        .prop_filter("a host address", |a| {
            !a.is_unspecified() && !a.is_broadcast() && !a.is_multicast()
        })
}

fn family() -> impl Strategy<Value = AddressFamily> {
    (any::<u16>(), any::<u8>()).prop_map(|(afi, safi)| AddressFamily { afi, safi })
}

/// A family that is neither IPv4 nor IPv6 unicast (those parse into typed prefixes).
fn other_family() -> impl Strategy<Value = AddressFamily> {
    family().prop_filter("not a typed family", |f| {
        *f != AddressFamily::IPV4_UNICAST && *f != AddressFamily::IPV6_UNICAST
    })
}

fn capability() -> impl Strategy<Value = Capability> {
    let gr_family = (family(), any::<bool>()).prop_map(|(family, forwarding_preserved)| {
        GracefulRestartFamily {
            family,
            forwarding_preserved,
        }
    });
    let gr = (
        any::<bool>(),
        any::<bool>(),
        0..=4095u16,
        vec(gr_family, 0..4),
    )
        .prop_map(|(restarted, notification, restart_time, families)| {
            Capability::GracefulRestart(GracefulRestart {
                restarted,
                notification,
                restart_time,
                families,
            })
        });
    prop_oneof![
        family().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        any::<u32>().prop_map(Capability::FourOctetAs),
        gr,
        (any::<u8>(), vec(any::<u8>(), 0..20))
            .prop_filter("an unknown code", |(code, _)| ![1, 2, 64, 65]
                .contains(code))
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

fn open() -> impl Strategy<Value = OpenRepr> {
    let hold = prop_oneof![Just(0u16), 3..=u16::MAX];
    (any::<u16>(), hold, 1..=u32::MAX, vec(capability(), 0..8)).prop_map(
        |(my_as, hold_time, id, capabilities)| OpenRepr {
            my_as,
            hold_time,
            bgp_id: Ipv4Addr::from(id),
            capabilities,
        },
    )
}

fn as_path() -> impl Strategy<Value = AsPath> {
    let kind = prop_oneof![
        Just(SegmentKind::Set),
        Just(SegmentKind::Sequence),
        Just(SegmentKind::ConfedSequence),
        Just(SegmentKind::ConfedSet),
    ];
    let segment =
        (kind, vec(any::<u32>(), 1..10)).prop_map(|(kind, asns)| AsSegment { kind, asns });
    vec(segment, 0..4).prop_map(|segments| AsPath { segments })
}

fn mp_reach() -> impl Strategy<Value = MpReach> {
    prop_oneof![
        (any::<u32>(), vec(v4net(), 0..10)).prop_map(|(hop, nlri)| MpReach::Ipv4 {
            next_hop: hop.into(),
            nlri
        }),
        (
            any::<u128>(),
            proptest::option::of(any::<u128>()),
            vec(v6net(), 0..10)
        )
            .prop_map(|(hop, local, nlri)| MpReach::Ipv6 {
                next_hop: Ipv6Addr::from(hop),
                link_local: local.map(Ipv6Addr::from),
                nlri
            }),
        (
            other_family(),
            vec(any::<u8>(), 0..20),
            vec(any::<u8>(), 0..40)
        )
            .prop_map(|(family, next_hop, nlri)| MpReach::Other {
                family,
                next_hop,
                nlri
            }),
    ]
}

fn mp_unreach() -> impl Strategy<Value = MpUnreach> {
    prop_oneof![
        vec(v4net(), 0..10).prop_map(MpUnreach::Ipv4),
        vec(v6net(), 0..10).prop_map(MpUnreach::Ipv6),
        (other_family(), vec(any::<u8>(), 0..40))
            .prop_map(|(family, withdrawn)| MpUnreach::Other { family, withdrawn }),
    ]
}

/// Unknown optional transitive attributes, one per type code, in type code order.
fn raw_attributes() -> impl Strategy<Value = Vec<RawAttribute>> {
    let known = [1u8, 2, 3, 4, 5, 6, 8, 14, 15, 32];
    let code = any::<u8>().prop_filter("unknown", move |c| !known.contains(c));
    let value = (any::<bool>(), vec(any::<u8>(), 0..300));
    proptest::collection::btree_map(code, value, 0..3).prop_map(|map: BTreeMap<_, _>| {
        map.into_iter()
            .map(|(type_code, (partial, value))| RawAttribute {
                flags: 0xc0 | if partial { 0x20 } else { 0 },
                type_code,
                value,
            })
            .collect()
    })
}

fn update() -> impl Strategy<Value = UpdateRepr> {
    let large = (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(global, local1, local2)| {
        LargeCommunity {
            global,
            local1,
            local2,
        }
    });
    let origin = prop_oneof![
        Just(Origin::Igp),
        Just(Origin::Egp),
        Just(Origin::Incomplete)
    ];
    let attrs = (
        (origin, as_path(), proptest::option::of(host_v4())),
        (
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            any::<bool>(),
        ),
        (vec(any::<u32>(), 0..5), vec(large, 0..3)),
        (
            proptest::option::of(mp_reach()),
            proptest::option::of(mp_unreach()),
            raw_attributes(),
        ),
    );
    (vec(v4net(), 0..10), attrs, vec(v4net(), 0..10), host_v4()).prop_map(
        |(withdrawn, attrs, nlri, hop)| {
            let ((origin, as_path, next_hop), (med, local_pref, atomic_aggregate), c, mp) = attrs;
            let (communities, large_communities) = c;
            let (mp_reach, mp_unreach, other) = mp;
            // NLRI must come with a NEXT_HOP (RFC 4271 §6.3).
            let next_hop = next_hop.or((!nlri.is_empty()).then_some(hop));
            UpdateRepr {
                withdrawn,
                attributes: PathAttributes {
                    origin: Some(origin),
                    as_path: Some(as_path),
                    next_hop,
                    med,
                    local_pref,
                    atomic_aggregate,
                    communities: communities.into_iter().map(Community).collect(),
                    large_communities,
                    mp_reach,
                    mp_unreach,
                    other,
                },
                nlri,
            }
        },
    )
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        open().prop_map(Message::Open),
        update().prop_map(|u| Message::Update(Box::new(u))),
        (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..100)).prop_map(|(code, subcode, data)| {
            Message::Notification(NotificationRepr {
                code,
                subcode,
                data,
            })
        }),
        Just(Message::Keepalive),
        (family(), any::<u8>()).prop_map(|(family, subtype)| Message::RouteRefresh(
            RouteRefreshRepr { family, subtype }
        )),
    ]
}

proptest! {
    #[test]
    fn every_emitted_message_parses_back_equal(msg in message()) {
        let bytes = msg.emit(Context::FOUR_OCTET).unwrap();
        prop_assert_eq!(frame(&bytes), Ok(Some(bytes.len())));
        prop_assert_eq!(Message::parse(&bytes, Context::FOUR_OCTET), Ok(msg));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..200)) {
        let _ = frame(&bytes);
        let _ = Message::parse(&bytes, Context::FOUR_OCTET);
        let _ = Message::parse(&bytes, Context::default());
    }

    /// A valid header in front of random bytes reaches every body parser.
    #[test]
    fn random_bodies_never_panic(kind in 1..=5u8, body in vec(any::<u8>(), 0..300)) {
        let mut bytes = MARKER.to_vec();
        bytes.extend_from_slice(&((HEADER_LEN + body.len()) as u16).to_be_bytes());
        bytes.push(kind);
        bytes.extend(body);
        for context in [Context::FOUR_OCTET, Context::default()] {
            if let Ok(msg) = Message::parse(&bytes, context) {
                // Whatever parses, emits again (a longer or shorter encoding is fine).
                let again = msg.emit(context).unwrap();
                prop_assert_eq!(Message::parse(&again, context), Ok(msg));
            }
        }
    }

    /// Valid messages with a few bytes changed: deep in each parser, lengths off by a little.
    #[test]
    fn mutated_messages_never_panic(
        msg in message(),
        changes in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = msg.emit(Context::FOUR_OCTET).unwrap();
        for (at, value) in changes {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        let _ = frame(&bytes);
        if let Ok(msg) = Message::parse(&bytes, Context::FOUR_OCTET) {
            let again = msg.emit(Context::FOUR_OCTET).unwrap();
            prop_assert_eq!(Message::parse(&again, Context::FOUR_OCTET), Ok(msg));
        }
    }
}
