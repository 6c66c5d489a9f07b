//! Any frame: the responder never panics and only ever answers for an owned IP, with a frame
//! that vouches for exactly that IP at the interface's MAC. Ownership is "last byte even", so
//! inputs reach both owned and unowned addresses. The first input byte chooses whether an
//! ICMPv6 checksum is repaired first (see checksum.rs).
#![no_main]

#[path = "checksum.rs"]
mod checksum;

use checksum::frame_from_input;
use ferrolb::layer2::ndp::NdpMessage;
use ferrolb::layer2::{ArpRepr, Decision, Interface, Mac, NdpRepr, Reply, decide};
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

const OWN_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x0a]);

fn owned(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[3] % 2 == 0,
        IpAddr::V6(v6) => v6.octets()[15] % 2 == 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(frame) = frame_from_input(data) else {
        return;
    };
    let iface = Interface {
        name: "eth0".into(),
        index: 2,
        mac: OWN_MAC,
    };
    let Decision::Reply { ip, reply } = decide(&frame, &iface, &owned) else {
        return;
    };
    assert!(owned(ip), "answered for unowned {ip}");
    let bytes = reply.to_vec();
    let (vouched_ip, vouched_mac) = match reply {
        Reply::Arp(_) => {
            let arp = ArpRepr::parse(&bytes).expect("own ARP reply parses");
            (IpAddr::V4(arp.sender_ip), Some(arp.sender_mac))
        }
        Reply::Ndp(_) => match NdpRepr::parse(&bytes).expect("own NA parses").message {
            NdpMessage::NeighborAdvert {
                target, target_ll, ..
            } => (IpAddr::V6(target), target_ll),
            other => panic!("replied with a solicitation {other:?}"),
        },
    };
    assert_eq!((vouched_ip, vouched_mac), (ip, Some(OWN_MAC)));
});
