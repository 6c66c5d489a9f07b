use super::*;
use crate::layer2::wire::hex;
use proptest::prelude::*;

/// `arping -I eth0 192.0.2.10` from 52:54:00:12:34:56 (192.0.2.1), as captured: broadcast
/// request, padded to 60 bytes by the sender.
const REQUEST: &str = "ffffffffffff 525400123456 0806 |
    0001 0800 06 04 0001 | 525400123456 c0000201 | 000000000000 c000020a |
    000000000000000000000000000000000000";

/// The owner's unicast reply to it, from 02:00:00:00:00:0a.
const REPLY: &str = "525400123456 02000000000a 0806 |
    0001 0800 06 04 0002 | 02000000000a c000020a | 525400123456 c0000201 |
    000000000000000000000000000000000000";

/// RFC 5227 probe: sender IP 0.0.0.0, 42 bytes (no padding, as seen on a veth).
const PROBE: &str = "ffffffffffff 525400abcdef 0806 |
    0001 0800 06 04 0001 | 525400abcdef 00000000 | 000000000000 c000020a";

/// Gratuitous request for 192.0.2.10 from 02:00:00:00:00:0a (`arping -U`).
const GARP_REQUEST: &str = "ffffffffffff 02000000000a 0806 |
    0001 0800 06 04 0001 | 02000000000a c000020a | 000000000000 c000020a |
    000000000000000000000000000000000000";

/// Gratuitous reply for 192.0.2.10 from 02:00:00:00:00:0a (`arping -A`).
const GARP_REPLY: &str = "ffffffffffff 02000000000a 0806 |
    0001 0800 06 04 0002 | 02000000000a c000020a | 02000000000a c000020a |
    000000000000000000000000000000000000";

const OWNER: Mac = Mac([0x02, 0, 0, 0, 0, 0x0a]);
const CLIENT: Mac = Mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

#[test]
fn parses_captured_request() {
    let repr = ArpRepr::parse(&hex(REQUEST)).unwrap();
    assert_eq!(
        repr,
        ArpRepr {
            eth_dst: Mac::BROADCAST,
            eth_src: CLIENT,
            operation: ArpOperation::Request,
            sender_mac: CLIENT,
            sender_ip: Ipv4Addr::new(192, 0, 2, 1),
            target_mac: Mac::ZERO,
            target_ip: VIP,
        }
    );
    assert_eq!(repr.to_vec(), hex(REQUEST));
}

#[test]
fn reply_to_request_matches_fixture_bytes() {
    let request = ArpRepr::parse(&hex(REQUEST)).unwrap();
    let reply = request.reply_from(OWNER);
    assert_eq!(reply.to_vec(), hex(REPLY));
    assert_eq!(ArpRepr::parse(&hex(REPLY)).unwrap(), reply);
}

#[test]
fn probe_without_padding_parses_and_reply_targets_zero_ip() {
    let probe = ArpRepr::parse(&hex(PROBE)).unwrap();
    assert_eq!(probe.sender_ip, Ipv4Addr::UNSPECIFIED);
    let reply = probe.reply_from(OWNER);
    assert_eq!(reply.eth_dst, Mac([0x52, 0x54, 0, 0xab, 0xcd, 0xef]));
    assert_eq!(reply.target_ip, Ipv4Addr::UNSPECIFIED);
    assert_eq!(reply.sender_ip, VIP);
}

#[test]
fn gratuitous_builders_match_arping_frames() {
    assert_eq!(gratuitous_request(OWNER, VIP).to_vec(), hex(GARP_REQUEST));
    assert_eq!(gratuitous_reply(OWNER, VIP).to_vec(), hex(GARP_REPLY));
    assert_eq!(
        ArpRepr::parse(&hex(GARP_REPLY)).unwrap(),
        gratuitous_reply(OWNER, VIP)
    );
}

#[test]
fn every_truncation_is_a_truncated_error() {
    let frame = hex(PROBE);
    for len in 0..frame.len() {
        let err = ArpRepr::parse(&frame[..len]).unwrap_err();
        let (layer, needed) = if len < ETHERNET_HEADER_LEN {
            (Layer::Ethernet, ETHERNET_HEADER_LEN)
        } else {
            (Layer::Arp, ARP_LEN)
        };
        let got = if layer == Layer::Arp {
            len - ETHERNET_HEADER_LEN
        } else {
            len
        };
        assert_eq!(
            err,
            ParseError::Truncated { layer, needed, got },
            "len {len}"
        );
    }
}

/// Overwrites `bytes` at `offset` in a copy of the request fixture.
fn patched(offset: usize, bytes: &[u8]) -> Vec<u8> {
    let mut frame = hex(REQUEST);
    frame[offset..offset + bytes.len()].copy_from_slice(bytes);
    frame
}

#[test]
fn lying_address_lengths_are_refused() {
    // hlen 16 (InfiniBand-sized) would put the IPs elsewhere: refuse instead of misreading.
    assert_eq!(
        ArpRepr::parse(&patched(18, &[16, 4])),
        Err(ParseError::ArpAddressLengths {
            hardware: 16,
            protocol: 4
        })
    );
    assert_eq!(
        ArpRepr::parse(&patched(18, &[6, 16])),
        Err(ParseError::ArpAddressLengths {
            hardware: 6,
            protocol: 16
        })
    );
}

#[test]
fn wrong_types_are_specific_errors() {
    assert_eq!(
        ArpRepr::parse(&patched(12, &[0x08, 0x00])),
        Err(ParseError::EtherType(0x0800))
    );
    assert_eq!(
        ArpRepr::parse(&patched(14, &[0x00, 0x06])),
        Err(ParseError::ArpHardwareType(6))
    );
    assert_eq!(
        ArpRepr::parse(&patched(16, &[0x86, 0xdd])),
        Err(ParseError::ArpProtocolType(0x86dd))
    );
    // RARP request (3) is not ARP.
    assert_eq!(
        ArpRepr::parse(&patched(20, &[0x00, 0x03])),
        Err(ParseError::ArpOperation(3))
    );
}

#[test]
fn emit_refuses_a_short_buffer() {
    let mut buf = [0u8; FRAME_LEN - 1];
    assert_eq!(
        gratuitous_request(OWNER, VIP).emit(&mut buf),
        Err(BufferTooSmall {
            needed: FRAME_LEN,
            got: FRAME_LEN - 1
        })
    );
}

fn mac() -> impl Strategy<Value = Mac> {
    any::<[u8; 6]>().prop_map(Mac)
}

fn repr() -> impl Strategy<Value = ArpRepr> {
    (
        mac(),
        mac(),
        any::<bool>(),
        mac(),
        any::<u32>(),
        mac(),
        any::<u32>(),
    )
        .prop_map(
            |(eth_dst, eth_src, request, sender_mac, sip, target_mac, tip)| ArpRepr {
                eth_dst,
                eth_src,
                operation: if request {
                    ArpOperation::Request
                } else {
                    ArpOperation::Reply
                },
                sender_mac,
                sender_ip: Ipv4Addr::from(sip),
                target_mac,
                target_ip: Ipv4Addr::from(tip),
            },
        )
}

proptest! {
    #[test]
    fn parse_never_panics(frame in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = ArpRepr::parse(&frame);
    }

    #[test]
    fn parse_never_panics_on_mutated_fixture(offset in 0usize..60, byte in any::<u8>(), cut in 0usize..=60) {
        let mut frame = hex(REQUEST);
        frame[offset] = byte;
        frame.truncate(cut);
        let _ = ArpRepr::parse(&frame);
    }

    #[test]
    fn emit_then_parse_round_trips(repr in repr()) {
        prop_assert_eq!(ArpRepr::parse(&repr.to_vec()), Ok(repr));
    }
}
