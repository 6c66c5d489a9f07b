use std::net::Ipv4Addr;

use super::*;
use crate::layer2::arp;
use crate::layer2::ndp::{ALL_NODES, NaFlags, multicast_mac, solicited_node};
use crate::layer2::wire::hex;
use proptest::prelude::*;

const OWNER: Mac = Mac([0x02, 0, 0, 0, 0, 0x0a]);
const CLIENT: Mac = Mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
const VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const OTHER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const CLIENT4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
const OTHER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

/// Captured `arping` request for 192.0.2.10 and the owner's reply to it (as in the ARP fixtures).
const ARP_REQUEST: &str = "ffffffffffff 525400123456 0806 0001 0800 06 04 0001
    525400123456 c0000201 000000000000 c000020a 000000000000000000000000000000000000";
const ARP_REPLY: &str = "525400123456 02000000000a 0806 0001 0800 06 04 0002
    02000000000a c000020a 525400123456 c0000201 000000000000000000000000000000000000";

fn iface() -> Interface {
    Interface {
        name: "eth0".into(),
        index: 2,
        mac: OWNER,
    }
}

fn owned() -> HashSet<IpAddr> {
    [IpAddr::V4(VIP4), IpAddr::V6(VIP6)].into_iter().collect()
}

fn arp_request(sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> ArpRepr {
    ArpRepr {
        eth_dst: Mac::BROADCAST,
        eth_src: CLIENT,
        operation: ArpOperation::Request,
        sender_mac: CLIENT,
        sender_ip,
        target_mac: Mac::ZERO,
        target_ip,
    }
}

fn solicitation(
    src_ip: Ipv6Addr,
    dst_ip: Ipv6Addr,
    target: Ipv6Addr,
    source_ll: Option<Mac>,
) -> NdpRepr {
    NdpRepr {
        eth_dst: if dst_ip.is_multicast() {
            multicast_mac(dst_ip)
        } else {
            OWNER
        },
        eth_src: CLIENT,
        src_ip,
        dst_ip,
        hop_limit: 255,
        message: NdpMessage::NeighborSolicit { target, source_ll },
    }
}

fn ignored(frame: &[u8]) -> Ignored {
    match decide(frame, &iface(), &owned()) {
        Decision::Ignore(reason) => reason,
        reply => panic!("expected no reply, got {reply:?}"),
    }
}

fn replied(frame: &[u8]) -> (IpAddr, Reply) {
    match decide(frame, &iface(), &owned()) {
        Decision::Reply { ip, reply } => (ip, reply),
        Decision::Ignore(reason) => panic!("expected a reply, ignored: {reason}"),
    }
}

#[test]
fn arp_request_for_owned_ip_gets_unicast_reply_bytes() {
    let (ip, reply) = replied(&hex(ARP_REQUEST));
    assert_eq!(ip, IpAddr::V4(VIP4));
    assert_eq!(reply.to_vec(), hex(ARP_REPLY));
    let mut buf = [0u8; 128];
    let len = reply.emit(&mut buf).unwrap();
    assert_eq!(&buf[..len], hex(ARP_REPLY).as_slice());
}

#[test]
fn arp_request_for_other_ip_is_not_answered() {
    let frame = arp_request(CLIENT4, OTHER4).to_vec();
    assert_eq!(ignored(&frame), Ignored::NotOwned(IpAddr::V4(OTHER4)));
}

#[test]
fn rfc5227_probe_is_answered_to_the_prober() {
    let frame = arp_request(Ipv4Addr::UNSPECIFIED, VIP4).to_vec();
    let (_, reply) = replied(&frame);
    let Reply::Arp(reply) = reply else {
        panic!("not ARP")
    };
    assert_eq!(reply.operation, ArpOperation::Reply);
    assert_eq!((reply.eth_dst, reply.target_mac), (CLIENT, CLIENT));
    assert_eq!((reply.sender_mac, reply.sender_ip), (OWNER, VIP4));
    assert_eq!(reply.target_ip, Ipv4Addr::UNSPECIFIED);
}

#[test]
fn arp_non_requests_and_own_frames_are_ignored() {
    let reply_frame = arp_request(CLIENT4, VIP4).reply_from(CLIENT).to_vec();
    assert_eq!(ignored(&reply_frame), Ignored::NotARequest);
    // Our own gratuitous ARP, seen again by the socket.
    assert_eq!(
        ignored(&arp::gratuitous_request(OWNER, VIP4).to_vec()),
        Ignored::FromSelf
    );
    let mut broadcast_sender = arp_request(CLIENT4, VIP4);
    broadcast_sender.sender_mac = Mac::BROADCAST;
    assert_eq!(
        ignored(&broadcast_sender.to_vec()),
        Ignored::BadSenderMac(Mac::BROADCAST)
    );
}

#[test]
fn garbage_is_malformed_with_the_parser_reason() {
    assert_eq!(
        ignored(&[0u8; 5]),
        Ignored::Malformed(ParseError::Truncated {
            layer: crate::layer2::Layer::Ethernet,
            needed: 14,
            got: 5
        })
    );
    let mut ipv4 = hex(ARP_REQUEST);
    ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
    assert_eq!(
        ignored(&ipv4),
        Ignored::Malformed(ParseError::EtherType(0x0800))
    );
    let mut lying = hex(ARP_REQUEST);
    lying[18] = 16;
    assert!(matches!(
        ignored(&lying),
        Ignored::Malformed(ParseError::ArpAddressLengths { .. })
    ));
}

fn advert(reply: Reply) -> NdpRepr {
    let Reply::Ndp(advert) = reply else {
        panic!("not NDP: {reply:?}")
    };
    // What goes on the wire must parse back to the same thing.
    assert_eq!(NdpRepr::parse(&advert.to_vec()), Ok(advert));
    advert
}

#[test]
fn multicast_solicitation_gets_solicited_override_advert() {
    let frame = solicitation(CLIENT6, solicited_node(VIP6), VIP6, Some(CLIENT)).to_vec();
    let (ip, reply) = replied(&frame);
    assert_eq!(ip, IpAddr::V6(VIP6));
    let na = advert(reply);
    assert_eq!((na.eth_dst, na.eth_src), (CLIENT, OWNER));
    assert_eq!((na.src_ip, na.dst_ip, na.hop_limit), (VIP6, CLIENT6, 255));
    assert_eq!(
        na.message,
        NdpMessage::NeighborAdvert {
            flags: NaFlags {
                router: false,
                solicited: true,
                overrides: true
            },
            target: VIP6,
            target_ll: Some(OWNER)
        }
    );
}

#[test]
fn unicast_nud_without_source_option_is_answered_to_frame_source() {
    let frame = solicitation(CLIENT6, VIP6, VIP6, None).to_vec();
    let na = advert(replied(&frame).1);
    assert_eq!(na.eth_dst, CLIENT);
    assert_eq!(na.dst_ip, CLIENT6);
    assert!(matches!(
        na.message,
        NdpMessage::NeighborAdvert {
            flags: NaFlags {
                solicited: true,
                overrides: true,
                ..
            },
            ..
        }
    ));
}

#[test]
fn dad_solicitation_gets_all_nodes_advert_without_solicited() {
    let frame = solicitation(Ipv6Addr::UNSPECIFIED, solicited_node(VIP6), VIP6, None).to_vec();
    let na = advert(replied(&frame).1);
    assert_eq!(
        (na.dst_ip, na.eth_dst),
        (ALL_NODES, multicast_mac(ALL_NODES))
    );
    assert_eq!(
        na.message,
        NdpMessage::NeighborAdvert {
            flags: NaFlags {
                router: false,
                solicited: false,
                overrides: true
            },
            target: VIP6,
            target_ll: Some(OWNER)
        }
    );
}

#[test]
fn ndp_drop_rules() {
    let mut forwarded = solicitation(CLIENT6, solicited_node(VIP6), VIP6, Some(CLIENT));
    forwarded.hop_limit = 254;
    assert_eq!(ignored(&forwarded.to_vec()), Ignored::HopLimit(254));

    let other = solicitation(CLIENT6, solicited_node(OTHER6), OTHER6, Some(CLIENT));
    assert_eq!(
        ignored(&other.to_vec()),
        Ignored::NotOwned(IpAddr::V6(OTHER6))
    );

    let to_all_nodes = solicitation(CLIENT6, ALL_NODES, VIP6, Some(CLIENT));
    assert_eq!(
        ignored(&to_all_nodes.to_vec()),
        Ignored::WrongDestination(ALL_NODES)
    );

    let dad_unicast = solicitation(Ipv6Addr::UNSPECIFIED, VIP6, VIP6, None);
    assert_eq!(
        ignored(&dad_unicast.to_vec()),
        Ignored::WrongDestination(VIP6)
    );

    let multicast_ll = solicitation(CLIENT6, solicited_node(VIP6), VIP6, Some(Mac::BROADCAST));
    assert_eq!(
        ignored(&multicast_ll.to_vec()),
        Ignored::BadSenderMac(Mac::BROADCAST)
    );

    let own_advert = ndp::unsolicited_advert(OWNER, VIP6);
    assert_eq!(ignored(&own_advert.to_vec()), Ignored::FromSelf);
    let mut their_advert = ndp::unsolicited_advert(CLIENT, VIP6);
    their_advert.eth_src = CLIENT;
    assert_eq!(ignored(&their_advert.to_vec()), Ignored::NotARequest);

    let mut bad_checksum = solicitation(CLIENT6, solicited_node(VIP6), VIP6, None).to_vec();
    bad_checksum[56] ^= 0xff;
    assert!(matches!(
        ignored(&bad_checksum),
        Ignored::Malformed(ParseError::Checksum { .. })
    ));
}

#[test]
fn any_lookup_shape_works() {
    let frame = arp_request(CLIENT4, VIP4).to_vec();
    let tree: BTreeSet<IpAddr> = owned().into_iter().collect();
    assert!(matches!(
        decide(&frame, &iface(), &tree),
        Decision::Reply { .. }
    ));
    let nothing = |_: IpAddr| false;
    assert!(matches!(
        decide(&frame, &iface(), &nothing),
        Decision::Ignore(Ignored::NotOwned(_))
    ));
    let dyn_lookup: &dyn OwnedIps = &tree;
    assert!(matches!(
        decide(&frame, &iface(), dyn_lookup),
        Decision::Reply { .. }
    ));
}

/// The address a reply vouches for, read back from its wire bytes, and the MAC it vouches with.
fn vouched(reply: &Reply) -> (IpAddr, Mac) {
    let bytes = reply.to_vec();
    match reply {
        Reply::Arp(_) => {
            let arp = ArpRepr::parse(&bytes).unwrap();
            (IpAddr::V4(arp.sender_ip), arp.sender_mac)
        }
        Reply::Ndp(_) => match NdpRepr::parse(&bytes).unwrap().message {
            NdpMessage::NeighborAdvert {
                target, target_ll, ..
            } => (IpAddr::V6(target), target_ll.unwrap()),
            other => panic!("reply is a solicitation: {other:?}"),
        },
    }
}

/// Ownership by parity of the last byte, so random frames hit both owned and unowned IPs.
fn parity_owned(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[3] % 2 == 0,
        IpAddr::V6(v6) => v6.octets()[15] % 2 == 0,
    }
}

fn check_only_owned_answered(frame: &[u8]) -> Result<(), TestCaseError> {
    if let Decision::Reply { ip, reply } = decide(frame, &iface(), &parity_owned) {
        prop_assert!(parity_owned(ip), "answered for unowned {}", ip);
        prop_assert_eq!(vouched(&reply), (ip, OWNER));
    }
    Ok(())
}

proptest! {
    #[test]
    fn random_frames_never_answered_for_unowned(frame in proptest::collection::vec(any::<u8>(), 0..100)) {
        check_only_owned_answered(&frame)?;
    }

    #[test]
    fn valid_requests_answered_exactly_when_owned(
        last in any::<u8>(),
        v6 in any::<bool>(),
        sender in any::<[u8; 6]>(),
    ) {
        let sender = Mac(sender);
        prop_assume!(sender.is_unicast() && sender != OWNER);
        let frame = if v6 {
            let target = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(last));
            let mut ns = solicitation(CLIENT6, solicited_node(target), target, Some(sender));
            ns.eth_src = sender;
            ns.to_vec()
        } else {
            let mut req = arp_request(CLIENT4, Ipv4Addr::new(192, 0, 2, last));
            req.sender_mac = sender;
            req.eth_src = sender;
            req.to_vec()
        };
        let decision = decide(&frame, &iface(), &parity_owned);
        prop_assert_eq!(matches!(decision, Decision::Reply { .. }), last % 2 == 0);
        check_only_owned_answered(&frame)?;
    }

    #[test]
    fn mutated_requests_never_answered_for_unowned(
        offset in 0usize..86,
        byte in any::<u8>(),
        v6 in any::<bool>(),
    ) {
        let mut frame = if v6 {
            solicitation(CLIENT6, solicited_node(VIP6), VIP6, Some(CLIENT)).to_vec()
        } else {
            hex(ARP_REQUEST)
        };
        if let Some(slot) = frame.get_mut(offset) {
            *slot = byte;
        }
        if v6 {
            // Re-checksum so mutations reach the rules rather than stop at the checksum.
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[22..38]).unwrap());
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[38..54]).unwrap());
            let checksum = ndp::icmpv6_checksum(src, dst, &frame[54..]);
            frame[56..58].copy_from_slice(&checksum.to_be_bytes());
        }
        check_only_owned_answered(&frame)?;
    }
}
