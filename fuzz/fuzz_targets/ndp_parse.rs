//! Any bytes: NDP parsing never panics, and whatever parses re-emits to a frame that parses to
//! the same value. The first input byte chooses whether the ICMPv6 checksum is repaired before
//! parsing, so the fuzzer gets past the checksum to the option walker and the RFC 4861 rules.
#![no_main]

use ferrolb::layer2::NdpRepr;
use ferrolb::layer2::ndp::icmpv6_checksum;
use libfuzzer_sys::fuzz_target;
use std::net::Ipv6Addr;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, frame)) = data.split_first() else {
        return;
    };
    let mut frame = frame.to_vec();
    if flags & 1 == 1 {
        repair_checksum(&mut frame);
    }
    if let Ok(repr) = NdpRepr::parse(&frame) {
        let again = NdpRepr::parse(&repr.to_vec());
        assert_eq!(again, Ok(repr));
    }
});

/// Rewrites the checksum of the ICMPv6 message the IPv6 header claims, when the frame holds it.
fn repair_checksum(frame: &mut [u8]) {
    if frame.len() < 58 {
        return;
    }
    let claimed = usize::from(u16::from_be_bytes([frame[18], frame[19]]));
    let Some(message) = frame.get(54..54 + claimed) else {
        return;
    };
    if message.len() < 4 {
        return;
    }
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[22..38]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[38..54]).unwrap());
    let checksum = icmpv6_checksum(src, dst, message);
    frame[56..58].copy_from_slice(&checksum.to_be_bytes());
}
