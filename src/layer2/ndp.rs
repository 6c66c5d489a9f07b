//! IPv6 neighbor discovery over Ethernet (RFC 4861): neighbor solicitations and advertisements
//! with their link-layer address options.
//!
//! NDP options are parsed here rather than with `pnet_packet`'s `NdpOption` iterator: pnet
//! computes an option's size as `length * 8 - 2` in `u8`, which overflows (and panics in debug
//! builds) for any length of 32 or more that arrives off the wire.

use std::net::Ipv6Addr;

use pnet_packet::icmpv6::ndp::{MutableNeighborAdvertPacket, MutableNeighborSolicitPacket};
use pnet_packet::icmpv6::{Icmpv6Code, Icmpv6Type};
use pnet_packet::ip::{IpNextHeaderProtocol, IpNextHeaderProtocols};
use pnet_packet::ipv6::{Ipv6Packet, MutableIpv6Packet};
use pnet_packet::util::ipv6_checksum;

use super::wire::{
    BufferTooSmall, ETHERNET_HEADER_LEN, ETHERTYPE_IPV6, EthernetHeader, Layer, Mac, ParseError,
    check_room,
};

/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;
/// Length of a neighbor solicitation/advertisement without options.
pub const NDP_MESSAGE_LEN: usize = 24;
/// Length of an Ethernet link-layer address option (type, length, six bytes).
pub const LINK_LAYER_OPTION_LEN: usize = 8;
/// Largest frame [`NdpRepr::emit`] writes.
pub const MAX_FRAME_LEN: usize =
    ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + NDP_MESSAGE_LEN + LINK_LAYER_OPTION_LEN;

/// Every NDP message is sent with hop limit 255 and a receiver drops any other value: it proves
/// the packet was not forwarded by a router, i.e. came from the link itself (RFC 4861 §7.1).
pub const NDP_HOP_LIMIT: u8 = 255;

/// ff02::1, all nodes on the link.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

const TYPE_NEIGHBOR_SOLICIT: u8 = 135;
const TYPE_NEIGHBOR_ADVERT: u8 = 136;
const OPTION_SOURCE_LL: u8 = 1;
const OPTION_TARGET_LL: u8 = 2;

/// The R, S and O flags of a neighbor advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NaFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: sent in answer to a solicitation.
    pub solicited: bool,
    /// O: the receiver should replace a cached link-layer address with this one.
    pub overrides: bool,
}

impl NaFlags {
    fn from_byte(byte: u8) -> NaFlags {
        NaFlags {
            router: byte & 0x80 != 0,
            solicited: byte & 0x40 != 0,
            overrides: byte & 0x20 != 0,
        }
    }

    fn to_byte(self) -> u8 {
        (u8::from(self.router) << 7)
            | (u8::from(self.solicited) << 6)
            | (u8::from(self.overrides) << 5)
    }
}

/// The neighbor discovery message inside the ICMPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NdpMessage {
    NeighborSolicit {
        target: Ipv6Addr,
        source_ll: Option<Mac>,
    },
    NeighborAdvert {
        flags: NaFlags,
        target: Ipv6Addr,
        target_ll: Option<Mac>,
    },
}

impl NdpMessage {
    /// The address being solicited or advertised.
    pub fn target(&self) -> Ipv6Addr {
        match *self {
            NdpMessage::NeighborSolicit { target, .. }
            | NdpMessage::NeighborAdvert { target, .. } => target,
        }
    }
}

/// An Ethernet frame carrying IPv6 + ICMPv6 neighbor solicitation or advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NdpRepr {
    pub eth_dst: Mac,
    pub eth_src: Mac,
    pub src_ip: Ipv6Addr,
    pub dst_ip: Ipv6Addr,
    /// Kept, not checked, by the parser: the responder drops and counts anything but 255.
    pub hop_limit: u8,
    pub message: NdpMessage,
}

/// The solicited-node multicast address of `ip` (ff02::1:ffXX:XXXX, RFC 4291 §2.7.1): where
/// neighbor solicitations for `ip` are sent, and the group its owner must join.
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The Ethernet address an IPv6 multicast address maps to (33:33 + its low 32 bits, RFC 2464).
pub fn multicast_mac(group: Ipv6Addr) -> Mac {
    let o = group.octets();
    Mac([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The ICMPv6 checksum `message` must carry between `src` and `dst` (pseudo-header included);
/// the checksum field's current contents are ignored.
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    ipv6_checksum(message, 1, &[], &src, &dst, IpNextHeaderProtocols::Icmpv6)
}

/// A neighbor advertisement of `target` at `mac` with the Override flag, as the owner sends it.
/// `solicited` must be false when `dst_ip` is multicast (RFC 4861 §7.2.4).
pub fn neighbor_advert(
    mac: Mac,
    target: Ipv6Addr,
    dst_ip: Ipv6Addr,
    dst_mac: Mac,
    solicited: bool,
) -> NdpRepr {
    NdpRepr {
        eth_dst: dst_mac,
        eth_src: mac,
        // The VIP is not configured on the interface, but it is the address being vouched for,
        // and NA validation (RFC 4861 §7.1.2) places no rule on the source.
        src_ip: target,
        dst_ip,
        hop_limit: NDP_HOP_LIMIT,
        message: NdpMessage::NeighborAdvert {
            flags: NaFlags {
                router: false,
                solicited,
                overrides: true,
            },
            target,
            target_ll: Some(mac),
        },
    }
}

/// Unsolicited neighbor advertisement to all nodes with Override, sent on taking `ip` over.
pub fn unsolicited_advert(mac: Mac, ip: Ipv6Addr) -> NdpRepr {
    neighbor_advert(mac, ip, ALL_NODES, multicast_mac(ALL_NODES), false)
}

impl NdpRepr {
    /// Parses a whole Ethernet frame; bytes after the IPv6 payload (padding) are ignored.
    pub fn parse(frame: &[u8]) -> Result<NdpRepr, ParseError> {
        let (eth, rest) = EthernetHeader::parse(frame)?;
        if eth.ethertype != ETHERTYPE_IPV6 {
            return Err(ParseError::EtherType(eth.ethertype));
        }
        let ip = Ipv6Packet::new(rest).ok_or(ParseError::Truncated {
            layer: Layer::Ipv6,
            needed: IPV6_HEADER_LEN,
            got: rest.len(),
        })?;
        if ip.get_version() != 6 {
            return Err(ParseError::IpVersion(ip.get_version()));
        }
        let claimed = usize::from(ip.get_payload_length());
        let available = rest.len() - IPV6_HEADER_LEN;
        if claimed > available {
            return Err(ParseError::Ipv6PayloadLength { claimed, available });
        }
        let next_header = ip.get_next_header().0;
        if next_header != IpNextHeaderProtocols::Icmpv6.0 {
            return Err(ParseError::NextHeader(next_header));
        }
        let (src_ip, dst_ip) = (ip.get_source(), ip.get_destination());
        if src_ip.is_multicast() {
            return Err(ParseError::MulticastSource(src_ip));
        }
        let icmp = &rest[IPV6_HEADER_LEN..IPV6_HEADER_LEN + claimed];
        let message = parse_message(icmp, src_ip, dst_ip)?;
        Ok(NdpRepr {
            eth_dst: eth.dst,
            eth_src: eth.src,
            src_ip,
            dst_ip,
            hop_limit: ip.get_hop_limit(),
            message,
        })
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn frame_len(&self) -> usize {
        let option = match self.message {
            NdpMessage::NeighborSolicit { source_ll: ll, .. }
            | NdpMessage::NeighborAdvert { target_ll: ll, .. } => {
                ll.map_or(0, |_| LINK_LAYER_OPTION_LEN)
            }
        };
        ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + NDP_MESSAGE_LEN + option
    }

    /// Writes the frame, ICMPv6 checksum computed, to the start of `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let len = self.frame_len();
        check_room(buf, len)?;
        let frame = &mut buf[..len];
        frame.fill(0);
        EthernetHeader {
            dst: self.eth_dst,
            src: self.eth_src,
            ethertype: ETHERTYPE_IPV6,
        }
        .emit(frame);
        let payload_len = len - ETHERNET_HEADER_LEN - IPV6_HEADER_LEN;
        let (ip_header, icmp) = frame[ETHERNET_HEADER_LEN..].split_at_mut(IPV6_HEADER_LEN);
        if let Some(mut ip) = MutableIpv6Packet::new(ip_header) {
            ip.set_version(6);
            // payload_len is at most 32 (NDP_MESSAGE_LEN + one option).
            ip.set_payload_length(payload_len as u16);
            ip.set_next_header(IpNextHeaderProtocol(IpNextHeaderProtocols::Icmpv6.0));
            ip.set_hop_limit(self.hop_limit);
            ip.set_source(self.src_ip);
            ip.set_destination(self.dst_ip);
        }
        let option = match self.message {
            NdpMessage::NeighborSolicit { target, source_ll } => {
                if let Some(mut ns) = MutableNeighborSolicitPacket::new(icmp) {
                    ns.set_icmpv6_type(Icmpv6Type(TYPE_NEIGHBOR_SOLICIT));
                    ns.set_icmpv6_code(Icmpv6Code(0));
                    ns.set_target_addr(target);
                }
                source_ll.map(|mac| (OPTION_SOURCE_LL, mac))
            }
            NdpMessage::NeighborAdvert {
                flags,
                target,
                target_ll,
            } => {
                if let Some(mut na) = MutableNeighborAdvertPacket::new(icmp) {
                    na.set_icmpv6_type(Icmpv6Type(TYPE_NEIGHBOR_ADVERT));
                    na.set_icmpv6_code(Icmpv6Code(0));
                    na.set_flags(flags.to_byte());
                    na.set_target_addr(target);
                }
                target_ll.map(|mac| (OPTION_TARGET_LL, mac))
            }
        };
        if let Some((kind, mac)) = option {
            icmp[NDP_MESSAGE_LEN] = kind;
            icmp[NDP_MESSAGE_LEN + 1] = 1;
            mac.write(icmp, NDP_MESSAGE_LEN + 2);
        }
        let checksum = icmpv6_checksum(self.src_ip, self.dst_ip, icmp);
        icmp[2..4].copy_from_slice(&checksum.to_be_bytes());
        Ok(len)
    }

    /// The frame as a fresh vector (tests, fuzzing; the hot path emits into a reused buffer).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut buf = vec![0u8; self.frame_len()];
        // The buffer is sized from frame_len, so emit cannot fail.
        let _ = self.emit(&mut buf);
        buf
    }
}

/// Validates the ICMPv6 message (exactly the IPv6 payload) per RFC 4861 §7.1.
fn parse_message(
    icmp: &[u8],
    src_ip: Ipv6Addr,
    dst_ip: Ipv6Addr,
) -> Result<NdpMessage, ParseError> {
    let truncated = ParseError::Truncated {
        layer: Layer::Icmpv6,
        needed: NDP_MESSAGE_LEN,
        got: icmp.len(),
    };
    // The type decides whether this is ours at all, so it is judged before the length: a short
    // echo request is "not NDP", not "truncated NDP".
    let kind = *icmp.first().ok_or(truncated.clone())?;
    if kind != TYPE_NEIGHBOR_SOLICIT && kind != TYPE_NEIGHBOR_ADVERT {
        return Err(ParseError::Icmpv6Type(kind));
    }
    if icmp.len() < NDP_MESSAGE_LEN {
        return Err(truncated);
    }
    if icmp[1] != 0 {
        return Err(ParseError::Icmpv6Code(icmp[1]));
    }
    // Summing every word, the checksum field included, yields zero exactly when the checksum is
    // right; this also accepts 0xffff for a computed 0x0000, as Linux does.
    if ipv6_checksum(
        icmp,
        usize::MAX,
        &[],
        &src_ip,
        &dst_ip,
        IpNextHeaderProtocols::Icmpv6,
    ) != 0
    {
        return Err(ParseError::Checksum {
            found: u16::from_be_bytes([icmp[2], icmp[3]]),
            computed: icmpv6_checksum(src_ip, dst_ip, icmp),
        });
    }
    let mut target_octets = [0u8; 16];
    target_octets.copy_from_slice(&icmp[8..24]);
    let target = Ipv6Addr::from(target_octets);
    if target.is_multicast() {
        return Err(ParseError::MulticastTarget(target));
    }
    let options = LinkLayerOptions::parse(&icmp[NDP_MESSAGE_LEN..])?;
    if kind == TYPE_NEIGHBOR_SOLICIT {
        if src_ip.is_unspecified() && options.source.is_some() {
            return Err(ParseError::DadWithSourceLinkLayer);
        }
        return Ok(NdpMessage::NeighborSolicit {
            target,
            source_ll: options.source,
        });
    }
    let flags = NaFlags::from_byte(icmp[4]);
    if flags.solicited && dst_ip.is_multicast() {
        return Err(ParseError::SolicitedToMulticast(dst_ip));
    }
    Ok(NdpMessage::NeighborAdvert {
        flags,
        target,
        target_ll: options.target,
    })
}

/// The link-layer address options found in a message; all other options are skipped, as RFC 4861
/// §4.6 requires (Linux puts a nonce option, type 14, in its DAD solicitations).
#[derive(Default)]
struct LinkLayerOptions {
    source: Option<Mac>,
    target: Option<Mac>,
}

impl LinkLayerOptions {
    fn parse(mut options: &[u8]) -> Result<LinkLayerOptions, ParseError> {
        let mut found = LinkLayerOptions::default();
        let mut offset = NDP_MESSAGE_LEN;
        while !options.is_empty() {
            let &[kind, units, ..] = options else {
                return Err(ParseError::NdpOptionOverrun {
                    offset,
                    claimed: 8,
                    available: options.len(),
                });
            };
            // A zero length would make the walk loop forever; RFC 4861 says drop the packet.
            if units == 0 {
                return Err(ParseError::NdpOptionZeroLength { offset });
            }
            let claimed = usize::from(units) * 8;
            if claimed > options.len() {
                return Err(ParseError::NdpOptionOverrun {
                    offset,
                    claimed,
                    available: options.len(),
                });
            }
            let slot = match kind {
                OPTION_SOURCE_LL => Some(&mut found.source),
                OPTION_TARGET_LL => Some(&mut found.target),
                _ => None,
            };
            if let Some(slot) = slot {
                if units != 1 {
                    return Err(ParseError::LinkLayerOptionLength(units));
                }
                if slot.is_some() {
                    return Err(ParseError::DuplicateOption(kind));
                }
                *slot = Some(Mac::read(options, 2));
            }
            options = &options[claimed..];
            offset += claimed;
        }
        Ok(found)
    }
}

#[cfg(test)]
#[path = "ndp_tests.rs"]
mod tests;
