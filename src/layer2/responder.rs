//! Decides, for one received frame, whether this node answers it and with what frame. Pure: the
//! socket edge feeds it frames and the current set of owned IPs, and sends what it returns.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr};

use super::arp::{ArpOperation, ArpRepr};
use super::ndp::{self, NDP_HOP_LIMIT, NdpMessage, NdpRepr};
use super::wire::{BufferTooSmall, ETHERTYPE_ARP, ETHERTYPE_IPV6, EthernetHeader, Mac, ParseError};

/// The interface a frame arrived on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    pub mac: Mac,
}

/// Which IPs this node currently answers for. The responder asks only about the address being
/// resolved, so one answer per frame.
pub trait OwnedIps {
    fn owns(&self, ip: IpAddr) -> bool;
}

impl<S: BuildHasher> OwnedIps for HashSet<IpAddr, S> {
    fn owns(&self, ip: IpAddr) -> bool {
        self.contains(&ip)
    }
}

impl OwnedIps for BTreeSet<IpAddr> {
    fn owns(&self, ip: IpAddr) -> bool {
        self.contains(&ip)
    }
}

impl<F: Fn(IpAddr) -> bool> OwnedIps for F {
    fn owns(&self, ip: IpAddr) -> bool {
        self(ip)
    }
}

/// A frame to send back on the interface the request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Arp(ArpRepr),
    Ndp(NdpRepr),
}

impl Reply {
    pub fn frame_len(&self) -> usize {
        match self {
            Reply::Arp(arp) => arp.frame_len(),
            Reply::Ndp(ndp) => ndp.frame_len(),
        }
    }

    /// Writes the frame to the start of `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        match self {
            Reply::Arp(arp) => arp.emit(buf),
            Reply::Ndp(ndp) => ndp.emit(buf),
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        match self {
            Reply::Arp(arp) => arp.to_vec(),
            Reply::Ndp(ndp) => ndp.to_vec(),
        }
    }
}

/// Why a frame got no answer; each variant is a distinct counter label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignored {
    /// Not a well-formed ARP or NDP frame (includes other EtherTypes and ICMPv6 types).
    Malformed(ParseError),
    /// Sent from this interface's own MAC: our own announcements seen again.
    FromSelf,
    /// An ARP reply or neighbor advertisement: something to hear, not to answer.
    NotARequest,
    /// The requester's hardware address is broadcast, multicast or zero, so a "unicast" reply
    /// would flood the segment.
    BadSenderMac(Mac),
    /// NDP with a hop limit other than 255: forwarded by a router, so not from this link.
    HopLimit(u8),
    /// A solicitation sent neither to its target nor to the target's solicited-node group.
    WrongDestination(Ipv6Addr),
    /// Asks about an IP this node does not own: the normal case for every non-owner.
    NotOwned(IpAddr),
}

impl Ignored {
    /// A short stable name, for a metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Ignored::Malformed(_) => "malformed",
            Ignored::FromSelf => "from_self",
            Ignored::NotARequest => "not_a_request",
            Ignored::BadSenderMac(_) => "bad_sender_mac",
            Ignored::HopLimit(_) => "hop_limit",
            Ignored::WrongDestination(_) => "wrong_destination",
            Ignored::NotOwned(_) => "not_owned",
        }
    }
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ignored::Malformed(err) => write!(f, "malformed frame: {err}"),
            Ignored::FromSelf => f.write_str("frame from this interface's own MAC"),
            Ignored::NotARequest => f.write_str("not a request"),
            Ignored::BadSenderMac(mac) => write!(f, "requester MAC {mac} is not unicast"),
            Ignored::HopLimit(hops) => write!(f, "NDP hop limit {hops}, must be 255"),
            Ignored::WrongDestination(dst) => {
                write!(
                    f,
                    "solicitation sent to {dst}, not its target or solicited-node group"
                )
            }
            Ignored::NotOwned(ip) => write!(f, "{ip} is not owned by this node"),
        }
    }
}

/// What to do with one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send `reply`, which vouches for the owned address `ip`.
    Reply {
        ip: IpAddr,
        reply: Reply,
    },
    Ignore(Ignored),
}

/// Decides the answer to `frame`, received on `iface`, given which IPs this node owns.
///
/// ARP requests for an owned IP get a unicast reply from the interface MAC, RFC 5227 probes
/// (sender 0.0.0.0) included. Neighbor solicitations for an owned IP, multicast or unicast (NUD),
/// get a solicited NA with Override and a target link-layer option; a DAD solicitation (from ::)
/// gets an NA to all nodes without Solicited. Everything else is ignored with a reason.
pub fn decide<O: OwnedIps + ?Sized>(frame: &[u8], iface: &Interface, owned: &O) -> Decision {
    let result = match EthernetHeader::parse(frame) {
        Err(err) => Err(Ignored::Malformed(err)),
        Ok((eth, _)) if eth.ethertype == ETHERTYPE_ARP => decide_arp(frame, iface.mac, owned),
        Ok((eth, _)) if eth.ethertype == ETHERTYPE_IPV6 => decide_ndp(frame, iface.mac, owned),
        Ok((eth, _)) => Err(Ignored::Malformed(ParseError::EtherType(eth.ethertype))),
    };
    match result {
        Ok((ip, reply)) => Decision::Reply { ip, reply },
        Err(ignored) => Decision::Ignore(ignored),
    }
}

fn decide_arp<O: OwnedIps + ?Sized>(
    frame: &[u8],
    mac: Mac,
    owned: &O,
) -> Result<(IpAddr, Reply), Ignored> {
    let request = ArpRepr::parse(frame).map_err(Ignored::Malformed)?;
    if request.eth_src == mac || request.sender_mac == mac {
        return Err(Ignored::FromSelf);
    }
    if request.operation != ArpOperation::Request {
        return Err(Ignored::NotARequest);
    }
    let target = IpAddr::V4(request.target_ip);
    if !owned.owns(target) {
        return Err(Ignored::NotOwned(target));
    }
    if !request.sender_mac.is_unicast() {
        return Err(Ignored::BadSenderMac(request.sender_mac));
    }
    Ok((target, Reply::Arp(request.reply_from(mac))))
}

fn decide_ndp<O: OwnedIps + ?Sized>(
    frame: &[u8],
    mac: Mac,
    owned: &O,
) -> Result<(IpAddr, Reply), Ignored> {
    let request = NdpRepr::parse(frame).map_err(Ignored::Malformed)?;
    if request.eth_src == mac {
        return Err(Ignored::FromSelf);
    }
    let NdpMessage::NeighborSolicit { target, source_ll } = request.message else {
        return Err(Ignored::NotARequest);
    };
    if request.hop_limit != NDP_HOP_LIMIT {
        return Err(Ignored::HopLimit(request.hop_limit));
    }
    let ip = IpAddr::V6(target);
    if !owned.owns(ip) {
        return Err(Ignored::NotOwned(ip));
    }
    let group = ndp::solicited_node(target);
    if request.src_ip.is_unspecified() {
        // DAD: the prober has no address yet to answer to, so tell every node (RFC 4861 §7.2.4).
        if request.dst_ip != group {
            return Err(Ignored::WrongDestination(request.dst_ip));
        }
        let advert = ndp::unsolicited_advert(mac, target);
        return Ok((ip, Reply::Ndp(advert)));
    }
    if request.dst_ip != group && request.dst_ip != target {
        return Err(Ignored::WrongDestination(request.dst_ip));
    }
    // A unicast (NUD) solicitation may omit its source link-layer option; the frame's source
    // is then the requester's address.
    let reply_mac = source_ll.unwrap_or(request.eth_src);
    if !reply_mac.is_unicast() {
        return Err(Ignored::BadSenderMac(reply_mac));
    }
    let advert = ndp::neighbor_advert(mac, target, request.src_ip, reply_mac, true);
    Ok((ip, Reply::Ndp(advert)))
}

#[cfg(test)]
#[path = "responder_tests.rs"]
mod tests;
