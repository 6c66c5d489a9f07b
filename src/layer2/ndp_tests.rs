use super::*;
use crate::layer2::wire::hex;
use proptest::prelude::*;

// Fixtures laid out Ethernet | IPv6 (first 8 bytes, source, destination) | ICMPv6 (first 8 bytes,
// target) | options. Checksums were computed independently of this crate (a short Python script
// over the pseudo-header), so a wrong checksum routine here cannot agree with them by accident.

/// Multicast NS from 2001:db8::1 (52:54:00:12:34:56) for 2001:db8::10, to its solicited-node
/// group, with a source link-layer option.
const NS_MULTICAST: &str = "3333ff000010 525400123456 86dd |
    6000000000203aff 20010db8000000000000000000000001 ff0200000000000000000001ff000010 |
    8700974f00000000 20010db8000000000000000000000010 | 0101525400123456";

/// Unicast NUD probe to 2001:db8::10 itself, without a source link-layer option (allowed for
/// unicast solicitations).
const NS_NUD: &str = "02000000000a 525400123456 86dd |
    6000000000183aff 20010db8000000000000000000000001 20010db8000000000000000000000010 |
    8700ef6000000000 20010db8000000000000000000000010";

/// DAD from :: for 2001:db8::10 with the nonce option (type 14) Linux adds (enhanced DAD).
const NS_DAD: &str = "3333ff000010 525400abcdef 86dd |
    6000000000203aff 00000000000000000000000000000000 ff0200000000000000000001ff000010 |
    8700f34700000000 20010db8000000000000000000000010 | 0e01a1b2c3d4e5f6";

/// The owner's solicited NA (S|O) to 2001:db8::1 with a target link-layer option.
const NA_SOLICITED: &str = "525400123456 02000000000a 86dd |
    6000000000203aff 20010db8000000000000000000000010 20010db8000000000000000000000001 |
    88008a4d60000000 20010db8000000000000000000000010 | 020102000000000a";

/// The owner's unsolicited NA (O) to ff02::1.
const NA_UNSOLICITED: &str = "333300000001 02000000000a 86dd |
    6000000000203aff 20010db8000000000000000000000010 ff020000000000000000000000000001 |
    8800f90320000000 20010db8000000000000000000000010 | 020102000000000a";

const OWNER: Mac = Mac([0x02, 0, 0, 0, 0, 0x0a]);
const CLIENT: Mac = Mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
const CLIENT_IP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

#[test]
fn parses_multicast_solicitation() {
    let repr = NdpRepr::parse(&hex(NS_MULTICAST)).unwrap();
    assert_eq!(
        repr,
        NdpRepr {
            eth_dst: multicast_mac(solicited_node(VIP)),
            eth_src: CLIENT,
            src_ip: CLIENT_IP,
            dst_ip: solicited_node(VIP),
            hop_limit: 255,
            message: NdpMessage::NeighborSolicit {
                target: VIP,
                source_ll: Some(CLIENT)
            },
        }
    );
    assert_eq!(repr.to_vec(), hex(NS_MULTICAST));
}

#[test]
fn parses_nud_solicitation_without_option() {
    let repr = NdpRepr::parse(&hex(NS_NUD)).unwrap();
    assert_eq!(repr.dst_ip, VIP);
    assert_eq!(
        repr.message,
        NdpMessage::NeighborSolicit {
            target: VIP,
            source_ll: None
        }
    );
    assert_eq!(repr.to_vec(), hex(NS_NUD));
}

#[test]
fn parses_dad_solicitation_skipping_the_nonce_option() {
    let repr = NdpRepr::parse(&hex(NS_DAD)).unwrap();
    assert!(repr.src_ip.is_unspecified());
    assert_eq!(
        repr.message,
        NdpMessage::NeighborSolicit {
            target: VIP,
            source_ll: None
        }
    );
}

#[test]
fn builders_match_advert_fixtures() {
    let solicited = neighbor_advert(OWNER, VIP, CLIENT_IP, CLIENT, true);
    assert_eq!(solicited.to_vec(), hex(NA_SOLICITED));
    assert_eq!(NdpRepr::parse(&hex(NA_SOLICITED)).unwrap(), solicited);
    let unsolicited = unsolicited_advert(OWNER, VIP);
    assert_eq!(unsolicited.to_vec(), hex(NA_UNSOLICITED));
    assert_eq!(NdpRepr::parse(&hex(NA_UNSOLICITED)).unwrap(), unsolicited);
    assert_eq!(
        unsolicited.message,
        NdpMessage::NeighborAdvert {
            flags: NaFlags {
                router: false,
                solicited: false,
                overrides: true
            },
            target: VIP,
            target_ll: Some(OWNER)
        }
    );
}

#[test]
fn solicited_node_and_multicast_mac() {
    let ip: Ipv6Addr = "2001:db8::1234:5678".parse().unwrap();
    assert_eq!(
        solicited_node(ip),
        "ff02::1:ff34:5678".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(
        multicast_mac(solicited_node(ip)),
        Mac([0x33, 0x33, 0xff, 0x34, 0x56, 0x78])
    );
    assert_eq!(multicast_mac(ALL_NODES), Mac([0x33, 0x33, 0, 0, 0, 1]));
}

#[test]
fn every_truncation_is_a_specific_error() {
    let frame = hex(NS_MULTICAST);
    for len in 0..frame.len() {
        let err = NdpRepr::parse(&frame[..len]).unwrap_err();
        let expected = if len < ETHERNET_HEADER_LEN {
            ParseError::Truncated {
                layer: Layer::Ethernet,
                needed: 14,
                got: len,
            }
        } else if len < ETHERNET_HEADER_LEN + IPV6_HEADER_LEN {
            ParseError::Truncated {
                layer: Layer::Ipv6,
                needed: 40,
                got: len - 14,
            }
        } else {
            // The header still claims 32 bytes of payload: a lying length, caught before any
            // ICMPv6 byte is read.
            ParseError::Ipv6PayloadLength {
                claimed: 32,
                available: len - 54,
            }
        };
        assert_eq!(err, expected, "len {len}");
    }
}

/// A copy of `fixture` with `bytes` at `offset`, the ICMPv6 checksum recomputed so that only the
/// patched field is wrong.
fn patched(fixture: &str, offset: usize, bytes: &[u8]) -> Vec<u8> {
    let mut frame = hex(fixture);
    frame[offset..offset + bytes.len()].copy_from_slice(bytes);
    fix_checksum(&mut frame);
    frame
}

fn fix_checksum(frame: &mut [u8]) {
    if frame.len() < 58 {
        return; // no checksum field to fix
    }
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[22..38]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[38..54]).unwrap());
    let checksum = icmpv6_checksum(src, dst, &frame[54..]);
    frame[56..58].copy_from_slice(&checksum.to_be_bytes());
}

/// The multicast NS with its payload length set to `claimed` and the ICMPv6 part cut to it.
fn with_payload(claimed: u16, icmp_len: usize) -> Vec<u8> {
    let mut frame = hex(NS_MULTICAST);
    frame.truncate(54 + icmp_len);
    frame[18..20].copy_from_slice(&claimed.to_be_bytes());
    fix_checksum(&mut frame);
    frame
}

#[test]
fn short_icmp_message_is_truncated_not_misread() {
    // Payload length honest but only 20 bytes of the 24-byte message.
    assert_eq!(
        NdpRepr::parse(&with_payload(20, 20)),
        Err(ParseError::Truncated {
            layer: Layer::Icmpv6,
            needed: 24,
            got: 20
        })
    );
    assert_eq!(
        NdpRepr::parse(&with_payload(0, 0)),
        Err(ParseError::Truncated {
            layer: Layer::Icmpv6,
            needed: 24,
            got: 0
        })
    );
}

#[test]
fn trailing_padding_after_payload_is_ignored() {
    let mut frame = hex(NS_NUD);
    frame.extend_from_slice(&[0xee; 10]);
    assert_eq!(NdpRepr::parse(&frame), NdpRepr::parse(&hex(NS_NUD)));
}

#[test]
fn bad_checksum_is_reported_with_both_values() {
    let mut frame = hex(NS_MULTICAST);
    frame[57] ^= 0x01;
    assert_eq!(
        NdpRepr::parse(&frame),
        Err(ParseError::Checksum {
            found: 0x974e,
            computed: 0x974f
        })
    );
}

#[test]
fn header_field_errors() {
    assert_eq!(
        NdpRepr::parse(&patched(NS_MULTICAST, 12, &[0x08, 0x06])),
        Err(ParseError::EtherType(0x0806))
    );
    assert_eq!(
        NdpRepr::parse(&patched(NS_MULTICAST, 14, &[0x40])),
        Err(ParseError::IpVersion(4))
    );
    // Hop-by-hop options header (0) in front of ICMPv6.
    assert_eq!(
        NdpRepr::parse(&patched(NS_MULTICAST, 20, &[0])),
        Err(ParseError::NextHeader(0))
    );
    assert_eq!(
        NdpRepr::parse(&patched(NS_MULTICAST, 22, &[0xff, 0x02])),
        Err(ParseError::MulticastSource("ff02:db8::1".parse().unwrap()))
    );
    // Echo request (128).
    assert_eq!(
        NdpRepr::parse(&patched(NS_MULTICAST, 54, &[128])),
        Err(ParseError::Icmpv6Type(128))
    );
    assert_eq!(
        NdpRepr::parse(&patched(NS_MULTICAST, 55, &[1])),
        Err(ParseError::Icmpv6Code(1))
    );
    assert_eq!(
        NdpRepr::parse(&patched(NS_MULTICAST, 62, &[0xff, 0x02])),
        Err(ParseError::MulticastTarget("ff02:db8::10".parse().unwrap()))
    );
}

#[test]
fn option_errors() {
    // Length 0 would loop forever.
    assert_eq!(
        NdpRepr::parse(&patched(NS_MULTICAST, 79, &[0])),
        Err(ParseError::NdpOptionZeroLength { offset: 24 })
    );
    // Length 2 (16 bytes) with only 8 left: an option lying about its size.
    assert_eq!(
        NdpRepr::parse(&patched(NS_MULTICAST, 79, &[2])),
        Err(ParseError::NdpOptionOverrun {
            offset: 24,
            claimed: 16,
            available: 8
        })
    );
    // 255 units: the length pnet's own option walker would overflow on.
    assert_eq!(
        NdpRepr::parse(&patched(NS_MULTICAST, 79, &[255])),
        Err(ParseError::NdpOptionOverrun {
            offset: 24,
            claimed: 2040,
            available: 8
        })
    );
    // A lone trailing byte after the option.
    let mut frame = with_payload(33, 32);
    frame.push(0x01);
    fix_checksum(&mut frame);
    assert_eq!(
        NdpRepr::parse(&frame),
        Err(ParseError::NdpOptionOverrun {
            offset: 32,
            claimed: 8,
            available: 1
        })
    );
}

#[test]
fn link_layer_option_must_be_one_unit_and_unique() {
    // Source link-layer option of 2 units (16 bytes), honestly sized.
    let mut frame = hex(NS_MULTICAST);
    frame[79] = 2;
    frame.extend_from_slice(&[0; 8]);
    frame[18..20].copy_from_slice(&40u16.to_be_bytes());
    fix_checksum(&mut frame);
    assert_eq!(
        NdpRepr::parse(&frame),
        Err(ParseError::LinkLayerOptionLength(2))
    );

    let mut frame = hex(NS_MULTICAST);
    frame.extend_from_slice(&hex("0101525400123456"));
    frame[18..20].copy_from_slice(&40u16.to_be_bytes());
    fix_checksum(&mut frame);
    assert_eq!(NdpRepr::parse(&frame), Err(ParseError::DuplicateOption(1)));
}

#[test]
fn rfc4861_validity_rules() {
    // DAD (source ::) must not carry a source link-layer option.
    let mut frame = hex(NS_MULTICAST);
    frame[22..38].fill(0);
    fix_checksum(&mut frame);
    assert_eq!(
        NdpRepr::parse(&frame),
        Err(ParseError::DadWithSourceLinkLayer)
    );
    // A solicited advertisement cannot go to a multicast group.
    assert_eq!(
        NdpRepr::parse(&patched(NA_UNSOLICITED, 58, &[0x60])),
        Err(ParseError::SolicitedToMulticast(ALL_NODES))
    );
}

#[test]
fn hop_limit_is_reported_not_judged() {
    let repr = NdpRepr::parse(&patched(NS_MULTICAST, 21, &[64])).unwrap();
    assert_eq!(repr.hop_limit, 64);
}

#[test]
fn emit_refuses_a_short_buffer() {
    let repr = unsolicited_advert(OWNER, VIP);
    let mut buf = [0u8; 85];
    assert_eq!(
        repr.emit(&mut buf),
        Err(BufferTooSmall {
            needed: 86,
            got: 85
        })
    );
}

fn mac() -> impl Strategy<Value = Mac> {
    any::<[u8; 6]>().prop_map(Mac)
}

fn unicast_v6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>()
        .prop_map(Ipv6Addr::from)
        .prop_filter("not multicast", |ip| !ip.is_multicast())
}

/// Every representation the parser accepts (the RFC 4861 validity rules applied).
fn repr() -> impl Strategy<Value = NdpRepr> {
    let message = prop_oneof![
        (unicast_v6(), proptest::option::of(mac()))
            .prop_map(|(target, source_ll)| NdpMessage::NeighborSolicit { target, source_ll }),
        (
            any::<[bool; 3]>(),
            unicast_v6(),
            proptest::option::of(mac())
        )
            .prop_map(|([router, solicited, overrides], target, target_ll)| {
                NdpMessage::NeighborAdvert {
                    flags: NaFlags {
                        router,
                        solicited,
                        overrides,
                    },
                    target,
                    target_ll,
                }
            }),
    ];
    let dst = prop_oneof![
        unicast_v6(),
        any::<u128>().prop_map(|x| Ipv6Addr::from(x | (0xff << 120)))
    ];
    (mac(), mac(), unicast_v6(), dst, any::<u8>(), message).prop_map(
        |(eth_dst, eth_src, src_ip, dst_ip, hop_limit, mut message)| {
            match &mut message {
                NdpMessage::NeighborSolicit { source_ll, .. } if src_ip.is_unspecified() => {
                    *source_ll = None
                }
                NdpMessage::NeighborAdvert { flags, .. } if dst_ip.is_multicast() => {
                    flags.solicited = false
                }
                _ => {}
            }
            NdpRepr {
                eth_dst,
                eth_src,
                src_ip,
                dst_ip,
                hop_limit,
                message,
            }
        },
    )
}

proptest! {
    #[test]
    fn parse_never_panics(frame in proptest::collection::vec(any::<u8>(), 0..120)) {
        let _ = NdpRepr::parse(&frame);
    }

    #[test]
    fn parse_never_panics_on_mutated_fixture(
        offset in 0usize..86,
        byte in any::<u8>(),
        cut in 0usize..=86,
        fix in any::<bool>(),
    ) {
        let mut frame = hex(NS_MULTICAST);
        frame[offset] = byte;
        frame.truncate(cut);
        if fix {
            fix_checksum(&mut frame);
        }
        let _ = NdpRepr::parse(&frame);
    }

    #[test]
    fn emit_then_parse_round_trips(repr in repr()) {
        let frame = repr.to_vec();
        prop_assert_eq!(frame.len(), repr.frame_len());
        prop_assert_eq!(NdpRepr::parse(&frame), Ok(repr));
    }

    #[test]
    fn unknown_options_are_skipped(kind in 3u8..=255, units in 1u8..4, fill in any::<u8>()) {
        let mut frame = hex(NS_MULTICAST);
        frame.extend(std::iter::repeat_n(fill, usize::from(units) * 8));
        let at = 86;
        frame[at] = kind;
        frame[at + 1] = units;
        let len = 32 + u16::from(units) * 8;
        frame[18..20].copy_from_slice(&len.to_be_bytes());
        fix_checksum(&mut frame);
        let repr = NdpRepr::parse(&frame).unwrap();
        prop_assert_eq!(repr.message, NdpRepr::parse(&hex(NS_MULTICAST)).unwrap().message);
    }
}
