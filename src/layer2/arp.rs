//! ARP over Ethernet for IPv4 (RFC 826, probes and announcements per RFC 5227).

use std::net::Ipv4Addr;

use pnet_packet::arp::{ArpHardwareType, ArpOperation as PnetOp, ArpPacket, MutableArpPacket};
use pnet_packet::ethernet::EtherType;

use super::wire::{
    BufferTooSmall, ETHERNET_HEADER_LEN, ETHERTYPE_ARP, EthernetHeader, Layer, Mac, ParseError,
    check_room,
};

/// Length of an Ethernet/IPv4 ARP body.
pub const ARP_LEN: usize = 28;
/// Emitted frames are padded to the Ethernet minimum (60 bytes before the FCS) rather than left
/// to the driver: not every driver pads frames handed to an AF_PACKET socket, and a runt frame is
/// dropped by some switches.
pub const FRAME_LEN: usize = 60;

const HTYPE_ETHERNET: u16 = 1;
const PTYPE_IPV4: u16 = 0x0800;

/// An ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    Request,
    Reply,
}

impl ArpOperation {
    fn code(self) -> u16 {
        match self {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
        }
    }
}

/// An Ethernet frame carrying an Ethernet/IPv4 ARP packet, with the Ethernet addresses kept
/// because a reply is addressed from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    pub eth_dst: Mac,
    pub eth_src: Mac,
    pub operation: ArpOperation,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_mac: Mac,
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Parses a whole Ethernet frame. Trailing bytes (Ethernet padding) are ignored.
    pub fn parse(frame: &[u8]) -> Result<ArpRepr, ParseError> {
        let (eth, body) = EthernetHeader::parse(frame)?;
        if eth.ethertype != ETHERTYPE_ARP {
            return Err(ParseError::EtherType(eth.ethertype));
        }
        let arp = ArpPacket::new(body).ok_or(ParseError::Truncated {
            layer: Layer::Arp,
            needed: ARP_LEN,
            got: body.len(),
        })?;
        let htype = arp.get_hardware_type().0;
        if htype != HTYPE_ETHERNET {
            return Err(ParseError::ArpHardwareType(htype));
        }
        let ptype = arp.get_protocol_type().0;
        if ptype != PTYPE_IPV4 {
            return Err(ParseError::ArpProtocolType(ptype));
        }
        // pnet reads the addresses at the fixed Ethernet/IPv4 offsets whatever these fields say,
        // so a packet whose lengths lie must be refused here, not misread.
        let (hardware, protocol) = (arp.get_hw_addr_len(), arp.get_proto_addr_len());
        if (hardware, protocol) != (6, 4) {
            return Err(ParseError::ArpAddressLengths { hardware, protocol });
        }
        let operation = match arp.get_operation().0 {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => return Err(ParseError::ArpOperation(other)),
        };
        Ok(ArpRepr {
            eth_dst: eth.dst,
            eth_src: eth.src,
            operation,
            sender_mac: Mac::read(body, 8),
            sender_ip: arp.get_sender_proto_addr(),
            target_mac: Mac::read(body, 18),
            target_ip: arp.get_target_proto_addr(),
        })
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn frame_len(&self) -> usize {
        FRAME_LEN
    }

    /// Writes the frame (padded to [`FRAME_LEN`]) to the start of `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        check_room(buf, FRAME_LEN)?;
        let frame = &mut buf[..FRAME_LEN];
        frame.fill(0);
        EthernetHeader {
            dst: self.eth_dst,
            src: self.eth_src,
            ethertype: ETHERTYPE_ARP,
        }
        .emit(frame);
        let body = &mut frame[ETHERNET_HEADER_LEN..];
        if let Some(mut arp) = MutableArpPacket::new(body) {
            arp.set_hardware_type(ArpHardwareType(HTYPE_ETHERNET));
            arp.set_protocol_type(EtherType(PTYPE_IPV4));
            arp.set_hw_addr_len(6);
            arp.set_proto_addr_len(4);
            arp.set_operation(PnetOp(self.operation.code()));
            arp.set_sender_proto_addr(self.sender_ip);
            arp.set_target_proto_addr(self.target_ip);
        }
        self.sender_mac.write(body, 8);
        self.target_mac.write(body, 18);
        Ok(FRAME_LEN)
    }

    /// The frame as a fresh vector (tests, fuzzing; the hot path emits into a reused buffer).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut buf = vec![0u8; FRAME_LEN];
        // The buffer is sized from FRAME_LEN, so emit cannot fail.
        let _ = self.emit(&mut buf);
        buf
    }

    /// The unicast reply of `mac` to this request, for `self.target_ip`. Also right for an RFC
    /// 5227 probe (sender 0.0.0.0): the reply goes to the prober's MAC with target IP 0.0.0.0,
    /// which is what tells it the address is taken.
    pub fn reply_from(&self, mac: Mac) -> ArpRepr {
        ArpRepr {
            eth_dst: self.sender_mac,
            eth_src: mac,
            operation: ArpOperation::Reply,
            sender_mac: mac,
            sender_ip: self.target_ip,
            target_mac: self.sender_mac,
            target_ip: self.sender_ip,
        }
    }
}

/// Gratuitous ARP in request form (an RFC 5227 announcement): broadcast, sender and target IP
/// both `ip`, target hardware address zero.
pub fn gratuitous_request(mac: Mac, ip: Ipv4Addr) -> ArpRepr {
    ArpRepr {
        eth_dst: Mac::BROADCAST,
        eth_src: mac,
        operation: ArpOperation::Request,
        sender_mac: mac,
        sender_ip: ip,
        target_mac: Mac::ZERO,
        target_ip: ip,
    }
}

/// Gratuitous ARP in reply form, broadcast. Sent besides the request form because some hosts
/// (and older Linux with `arp_accept=0`) update their cache from one form but not the other. The
/// target hardware address repeats the sender's, as `arping -A` does.
pub fn gratuitous_reply(mac: Mac, ip: Ipv4Addr) -> ArpRepr {
    ArpRepr {
        eth_dst: Mac::BROADCAST,
        eth_src: mac,
        operation: ArpOperation::Reply,
        sender_mac: mac,
        sender_ip: ip,
        target_mac: mac,
        target_ip: ip,
    }
}

#[cfg(test)]
#[path = "arp_tests.rs"]
mod tests;
