//! What the ARP and NDP codecs share: the MAC address type, the Ethernet header and the errors.
//!
//! Parsing checks every length once, up front, before any field is read, so the field accessors
//! of `pnet_packet` (which index without bounds checks of their own beyond the minimum size) only
//! ever see slices already known to be long enough.

use std::fmt;
use std::str::FromStr;

use pnet_packet::ethernet::{EtherType, EthernetPacket, MutableEthernetPacket};

/// Length of an Ethernet II header (no 802.1Q tag: AF_PACKET hands the tag over out of band).
pub const ETHERNET_HEADER_LEN: usize = 14;

/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// A 48-bit Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    /// 00:00:00:00:00:00 (an ARP request's "unknown" target hardware address).
    pub const ZERO: Mac = Mac([0; 6]);

    /// The group bit is set: broadcast or multicast. Never a valid sender.
    pub fn is_multicast(self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// The address a unicast reply may be sent to: not multicast/broadcast, not all zeroes.
    pub fn is_unicast(self) -> bool {
        !self.is_multicast() && self != Mac::ZERO
    }

    /// The six bytes at `offset`; the caller has checked the length (`pnet_base::MacAddr` is
    /// not re-exported by `pnet_packet`, so MACs are read as plain bytes).
    pub(crate) fn read(bytes: &[u8], offset: usize) -> Mac {
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&bytes[offset..offset + 6]);
        Mac(mac)
    }

    pub(crate) fn write(self, bytes: &mut [u8], offset: usize) {
        bytes[offset..offset + 6].copy_from_slice(&self.0);
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A string that is not six colon-separated hex octets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hex octets separated by ':'")]
pub struct MacParseError(pub String);

impl FromStr for Mac {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(|| MacParseError(s.to_owned()))?;
            if part.is_empty() || part.len() > 2 {
                return Err(MacParseError(s.to_owned()));
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| MacParseError(s.to_owned()))?;
        }
        if parts.next().is_some() {
            return Err(MacParseError(s.to_owned()));
        }
        Ok(Mac(out))
    }
}

impl From<[u8; 6]> for Mac {
    fn from(bytes: [u8; 6]) -> Self {
        Mac(bytes)
    }
}

/// Which header a length error concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Ethernet,
    Arp,
    Ipv6,
    Icmpv6,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Ethernet => "Ethernet",
            Layer::Arp => "ARP",
            Layer::Ipv6 => "IPv6",
            Layer::Icmpv6 => "ICMPv6",
        })
    }
}

/// Why a frame is not a well-formed ARP or NDP packet. Every malformed input maps to exactly one
/// of these; none of them panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{layer} header truncated: needs {needed} bytes, frame has {got}")]
    Truncated {
        layer: Layer,
        needed: usize,
        got: usize,
    },
    #[error("EtherType {0:#06x} is not the one this codec parses")]
    EtherType(u16),
    #[error("ARP hardware type {0} is not Ethernet (1)")]
    ArpHardwareType(u16),
    #[error("ARP protocol type {0:#06x} is not IPv4")]
    ArpProtocolType(u16),
    #[error(
        "ARP address lengths hardware={hardware} protocol={protocol}, expected 6 and 4 for Ethernet/IPv4"
    )]
    ArpAddressLengths { hardware: u8, protocol: u8 },
    #[error("ARP operation {0} is neither request (1) nor reply (2)")]
    ArpOperation(u16),
    #[error("IP version {0} in an IPv6 EtherType frame")]
    IpVersion(u8),
    #[error("IPv6 payload length {claimed} exceeds the {available} bytes in the frame")]
    Ipv6PayloadLength { claimed: usize, available: usize },
    #[error("IPv6 next header {0} is not ICMPv6 (58); extension headers are not accepted")]
    NextHeader(u8),
    #[error("IPv6 source {0} is a multicast address")]
    MulticastSource(std::net::Ipv6Addr),
    #[error("ICMPv6 type {0} is not a neighbor solicitation (135) or advertisement (136)")]
    Icmpv6Type(u8),
    #[error("ICMPv6 code {0} in a neighbor discovery message, must be 0")]
    Icmpv6Code(u8),
    #[error("ICMPv6 checksum {found:#06x} does not match the computed {computed:#06x}")]
    Checksum { found: u16, computed: u16 },
    #[error("NDP option at offset {offset} has length 0")]
    NdpOptionZeroLength { offset: usize },
    #[error("NDP option at offset {offset} claims {claimed} bytes, only {available} left")]
    NdpOptionOverrun {
        offset: usize,
        claimed: usize,
        available: usize,
    },
    #[error("NDP link-layer address option of {0} units, Ethernet uses 1 (8 bytes)")]
    LinkLayerOptionLength(u8),
    #[error("NDP option type {0} appears more than once")]
    DuplicateOption(u8),
    #[error("NDP target {0} is a multicast address")]
    MulticastTarget(std::net::Ipv6Addr),
    #[error("duplicate address detection solicitation carries a source link-layer option")]
    DadWithSourceLinkLayer,
    #[error("neighbor advertisement to multicast {0} has the Solicited flag set")]
    SolicitedToMulticast(std::net::Ipv6Addr),
}

/// The output buffer cannot hold the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("buffer of {got} bytes is too small for a {needed}-byte frame")]
pub struct BufferTooSmall {
    pub needed: usize,
    pub got: usize,
}

/// The Ethernet II header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetHeader {
    pub dst: Mac,
    pub src: Mac,
    pub ethertype: u16,
}

impl EthernetHeader {
    /// Reads the header and returns it with the rest of the frame (Ethernet padding included).
    pub fn parse(frame: &[u8]) -> Result<(EthernetHeader, &[u8]), ParseError> {
        let packet = EthernetPacket::new(frame).ok_or(ParseError::Truncated {
            layer: Layer::Ethernet,
            needed: ETHERNET_HEADER_LEN,
            got: frame.len(),
        })?;
        let header = EthernetHeader {
            dst: Mac::read(frame, 0),
            src: Mac::read(frame, 6),
            ethertype: packet.get_ethertype().0,
        };
        Ok((header, &frame[ETHERNET_HEADER_LEN..]))
    }

    /// Writes the header into the first 14 bytes of `buf` (which the caller has sized).
    pub(crate) fn emit(&self, buf: &mut [u8]) {
        if let Some(mut packet) = MutableEthernetPacket::new(buf) {
            packet.set_ethertype(EtherType(self.ethertype));
            self.dst.write(buf, 0);
            self.src.write(buf, 6);
        }
    }
}

/// Fails with [`BufferTooSmall`] unless `buf` holds `needed` bytes.
pub(crate) fn check_room(buf: &[u8], needed: usize) -> Result<(), BufferTooSmall> {
    if buf.len() < needed {
        return Err(BufferTooSmall {
            needed,
            got: buf.len(),
        });
    }
    Ok(())
}

/// Decodes a hex fixture; whitespace and `|` separators are ignored so fixtures can be laid out
/// by header.
#[cfg(test)]
pub(crate) fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'|')
        .collect();
    assert!(
        digits.len().is_multiple_of(2),
        "odd number of hex digits in fixture"
    );
    digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).unwrap();
            u8::from_str_radix(text, 16).unwrap()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trips_through_text() {
        let mac: Mac = "02:00:5e:10:00:0a".parse().unwrap();
        assert_eq!(mac, Mac([0x02, 0x00, 0x5e, 0x10, 0x00, 0x0a]));
        assert_eq!(mac.to_string(), "02:00:5e:10:00:0a");
        for bad in [
            "",
            "02:00:5e:10:00",
            "02:00:5e:10:00:0a:01",
            "02:00:5e:10:00:zz",
            "2:::::",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn mac_classes() {
        assert!(Mac::BROADCAST.is_multicast());
        assert!(Mac([0x33, 0x33, 0, 0, 0, 1]).is_multicast());
        assert!(!Mac::ZERO.is_unicast());
        assert!(Mac([0x02, 0, 0, 0, 0, 1]).is_unicast());
    }

    #[test]
    fn ethernet_header_needs_14_bytes() {
        assert_eq!(
            EthernetHeader::parse(&[0u8; 13]),
            Err(ParseError::Truncated {
                layer: Layer::Ethernet,
                needed: 14,
                got: 13
            })
        );
        let (header, rest) = EthernetHeader::parse(&[0xffu8; 16]).unwrap();
        assert_eq!(header.ethertype, 0xffff);
        assert_eq!(rest.len(), 2);
    }
}
