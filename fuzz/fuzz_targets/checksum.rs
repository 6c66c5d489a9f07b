//! Shared by the NDP-carrying targets: lets the fuzzer past the ICMPv6 checksum so it reaches the
//! option walker and the RFC 4861 rules. Included with `#[path]`; not a target of its own.

use ferrolb::layer2::ndp::icmpv6_checksum;
use std::net::Ipv6Addr;

/// The frame a fuzz input stands for: the first byte is flags (bit 0: repair the ICMPv6
/// checksum), the rest is the frame. `None` for an empty input.
pub fn frame_from_input(data: &[u8]) -> Option<Vec<u8>> {
    let (&flags, frame) = data.split_first()?;
    let mut frame = frame.to_vec();
    if flags & 1 == 1 {
        repair_checksum(&mut frame);
    }
    Some(frame)
}

/// Rewrites the checksum of the ICMPv6 message the IPv6 header claims, when the frame is IPv6
/// and holds that whole message.
fn repair_checksum(frame: &mut [u8]) {
    if frame.len() < 58 || frame[12..14] != [0x86, 0xdd] {
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
