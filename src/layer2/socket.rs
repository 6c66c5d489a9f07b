//! AF_PACKET I/O for the responder: one non-promiscuous raw socket per interface, filtered in
//! the kernel down to ARP and ICMPv6 neighbor solicitations, and the solicited-node multicast
//! memberships that make the NIC deliver solicitations for owned IPv6 addresses.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{Ipv6Addr, UdpSocket};

use socket2::{Domain, Protocol, SockFilter, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::ndp::solicited_node;
use super::sys;

/// `ETH_P_ALL`: the only protocol value that delivers both ARP and IPv6 to one socket.
const ETH_P_ALL: u16 = 0x0003;

/// Largest frame read; ARP and neighbor solicitations are far smaller, and anything longer than
/// a standard Ethernet frame is truncated, which the codecs reject.
pub const MAX_FRAME: usize = 1514;

// Classic BPF opcodes (<linux/filter.h>).
const LD_W_ABS: u16 = 0x20;
const LD_H_ABS: u16 = 0x28;
const LD_B_ABS: u16 = 0x30;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;
/// `SKF_AD_OFF + SKF_AD_PKTTYPE`: ancillary load of the packet type.
const AD_PKTTYPE: u32 = 0xffff_f000 + 4;
/// `PACKET_OUTGOING`: frames this host sends, which an ETH_P_ALL socket also sees.
const PACKET_OUTGOING: u32 = 4;
/// `SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT`: 1 when the frame arrived with an 802.1Q tag. The
/// kernel strips the tag before packet sockets see the frame (it stays in the metadata), so
/// without this check a tagged request looks untagged to us.
const AD_VLAN_TAG_PRESENT: u32 = 0xffff_f000 + 48;

/// The kernel filter: accept incoming untagged ARP, and incoming untagged IPv6 whose next header
/// is ICMPv6 and whose ICMPv6 type is 135 (neighbor solicitation); drop everything else,
/// including our own transmissions and frames that arrived VLAN-tagged (a reply from this
/// untagged socket would go out into the native VLAN, not the asker's; a VLAN's subinterface
/// answers for itself). Solicitations carry no extension headers (RFC 4861 receivers may ignore
/// ones that do), so the fixed offsets are sufficient.
pub fn neighbor_filter() -> [SockFilter; 13] {
    [
        /* 0 */ SockFilter::new(LD_W_ABS, 0, 0, AD_VLAN_TAG_PRESENT),
        /* 1 */ SockFilter::new(JEQ_K, 10, 0, 1), // tagged -> 12 drop
        /* 2 */ SockFilter::new(LD_W_ABS, 0, 0, AD_PKTTYPE),
        /* 3 */ SockFilter::new(JEQ_K, 8, 0, PACKET_OUTGOING), // -> 12 drop
        /* 4 */ SockFilter::new(LD_H_ABS, 0, 0, 12), // EtherType
        /* 5 */ SockFilter::new(JEQ_K, 5, 0, 0x0806), // ARP -> 11 accept
        /* 6 */ SockFilter::new(JEQ_K, 0, 5, 0x86dd), // not IPv6 -> 12 drop
        /* 7 */ SockFilter::new(LD_B_ABS, 0, 0, 14 + 6), // IPv6 next header
        /* 8 */ SockFilter::new(JEQ_K, 0, 3, 58), // not ICMPv6 -> 12 drop
        /* 9 */ SockFilter::new(LD_B_ABS, 0, 0, 14 + 40), // ICMPv6 type
        /* 10 */ SockFilter::new(JEQ_K, 0, 1, 135), // not NS -> 12 drop
        /* 11 */ SockFilter::new(RET_K, 0, 0, MAX_FRAME as u32),
        /* 12 */ SockFilter::new(RET_K, 0, 0, 0),
    ]
}

/// A raw Ethernet socket bound to one interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: AsyncFd<Socket>,
    ifindex: u32,
}

impl PacketSocket {
    /// Opens the socket on interface `ifindex`. Needs CAP_NET_RAW. The filter is attached before
    /// binding so no unfiltered frame is ever queued.
    pub fn open(ifindex: u32) -> io::Result<Self> {
        let socket = Socket::new(
            Domain::PACKET,
            Type::RAW.cloexec(),
            Some(Protocol::from(i32::from(ETH_P_ALL.to_be()))),
        )?;
        socket.attach_filter(&neighbor_filter())?;
        sys::bind_packet(&socket, ifindex, ETH_P_ALL)?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            fd: sys::register(socket)?,
            ifindex,
        })
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Waits for the next frame and copies it into `buf`, returning its length.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd
            .async_io(Interest::READABLE, |mut s: &Socket| s.read(buf))
            .await
    }

    /// Sends one complete Ethernet frame, waiting if the socket buffer is full.
    pub async fn send(&self, frame: &[u8]) -> io::Result<()> {
        let sent = self
            .fd
            .async_io(Interest::WRITABLE, |s: &Socket| s.send(frame))
            .await?;
        if sent == frame.len() {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::WriteZero, "short frame send"))
        }
    }
}

/// Reference-counted solicited-node group memberships, per interface. Several owned addresses
/// can share a group (same low 24 bits); the group is left only when the last one goes.
///
/// The join goes through an ordinary UDP/IPv6 socket (`IPV6_ADD_MEMBERSHIP`), which programs the
/// NIC's multicast MAC filter and sends the MLD report switches need to forward the group; the
/// AF_PACKET socket then sees the solicitations without being promiscuous.
#[derive(Debug)]
pub struct MulticastGroups {
    /// Membership sockets: the kernel charges each membership to its socket's option memory
    /// (`net.core.optmem_max`), which caps one socket at a few thousand groups, so another
    /// socket is opened whenever the last one is full.
    sockets: Vec<UdpSocket>,
    open_socket: fn() -> io::Result<UdpSocket>,
    /// (interface, group) -> (index into `sockets`, references).
    members: HashMap<(u32, Ipv6Addr), (usize, usize)>,
}

fn open_ipv6_socket() -> io::Result<UdpSocket> {
    UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))
}

/// ENOBUFS / ENOMEM: this socket's option memory is used up.
fn socket_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(105 | 12))
}

impl MulticastGroups {
    /// No socket is opened until the first join, so a host without IPv6 only fails IPv6 joins.
    pub fn new() -> Self {
        Self {
            sockets: Vec::new(),
            open_socket: open_ipv6_socket,
            members: HashMap::new(),
        }
    }

    /// Adds one reference to the solicited-node group of `ip` on `ifindex`.
    pub fn join(&mut self, ifindex: u32, ip: Ipv6Addr) -> io::Result<()> {
        let key = (ifindex, solicited_node(ip));
        if let Some((_, refs)) = self.members.get_mut(&key) {
            *refs += 1;
            return Ok(());
        }
        let index = self.join_somewhere(key.0, &key.1)?;
        self.members.insert(key, (index, 1));
        Ok(())
    }

    fn join_somewhere(&mut self, ifindex: u32, group: &Ipv6Addr) -> io::Result<usize> {
        if let Some(last) = self.sockets.last() {
            match last.join_multicast_v6(group, ifindex) {
                Ok(()) => return Ok(self.sockets.len() - 1),
                Err(e) if socket_full(&e) => {}
                Err(e) => return Err(e),
            }
        }
        let socket = (self.open_socket)()?;
        socket.join_multicast_v6(group, ifindex)?;
        self.sockets.push(socket);
        Ok(self.sockets.len() - 1)
    }

    /// Drops one reference; leaves the group when it was the last.
    pub fn leave(&mut self, ifindex: u32, ip: Ipv6Addr) -> io::Result<()> {
        let key = (ifindex, solicited_node(ip));
        let Some((index, refs)) = self.members.get_mut(&key) else {
            return Ok(());
        };
        *refs -= 1;
        if *refs > 0 {
            return Ok(());
        }
        let index = *index;
        self.members.remove(&key);
        match self.sockets.get(index) {
            Some(socket) => socket.leave_multicast_v6(&key.1, ifindex),
            None => Ok(()),
        }
    }

    /// Drops every membership on an interface the speaker stops using (gone, down or no longer
    /// eligible). A device that went down keeps socket memberships in the kernel, so they are
    /// left explicitly, or re-joining after it comes back would fail as already joined; for a
    /// device that is gone the kernel has dropped them and the errors are ignored.
    pub fn leave_interface(&mut self, ifindex: u32) {
        let sockets = &self.sockets;
        self.members.retain(|(i, group), (index, _)| {
            if *i != ifindex {
                return true;
            }
            if let Some(socket) = sockets.get(*index) {
                let _ = socket.leave_multicast_v6(group, ifindex);
            }
            false
        });
    }

    /// Number of distinct groups joined on `ifindex`.
    pub fn joined(&self, ifindex: u32) -> usize {
        self.members.keys().filter(|(i, _)| *i == ifindex).count()
    }
}

impl Default for MulticastGroups {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the classic BPF program over a frame, as the kernel would (ancillary data: the
    /// packet type, and no VLAN tag).
    fn run_filter(frame: &[u8], pkttype: u32) -> u32 {
        run_filter_tagged(frame, pkttype, false)
    }

    fn run_filter_tagged(frame: &[u8], pkttype: u32, tagged: bool) -> u32 {
        let prog = neighbor_filter();
        let mut a: u32 = 0;
        let mut pc = 0usize;
        loop {
            // SockFilter's fields are private; re-derive them from the same constants.
            let (code, jt, jf, k) = FILTER_SPEC[pc];
            let _ = &prog;
            match code {
                LD_W_ABS if k == AD_PKTTYPE => a = pkttype,
                LD_W_ABS if k == AD_VLAN_TAG_PRESENT => a = u32::from(tagged),
                LD_H_ABS => {
                    let k = k as usize;
                    let Some(b) = frame.get(k..k + 2) else {
                        return 0;
                    };
                    a = u32::from(u16::from_be_bytes([b[0], b[1]]));
                }
                LD_B_ABS => {
                    let Some(&b) = frame.get(k as usize) else {
                        return 0;
                    };
                    a = u32::from(b);
                }
                JEQ_K => {
                    pc += usize::from(if a == k { jt } else { jf });
                }
                RET_K => return k,
                _ => panic!("unexpected opcode"),
            }
            pc += 1;
        }
    }

    /// The program in plain tuples, checked against `neighbor_filter()` by comparing debug output.
    const FILTER_SPEC: [(u16, u8, u8, u32); 13] = [
        (LD_W_ABS, 0, 0, AD_VLAN_TAG_PRESENT),
        (JEQ_K, 10, 0, 1),
        (LD_W_ABS, 0, 0, AD_PKTTYPE),
        (JEQ_K, 8, 0, PACKET_OUTGOING),
        (LD_H_ABS, 0, 0, 12),
        (JEQ_K, 5, 0, 0x0806),
        (JEQ_K, 0, 5, 0x86dd),
        (LD_B_ABS, 0, 0, 20),
        (JEQ_K, 0, 3, 58),
        (LD_B_ABS, 0, 0, 54),
        (JEQ_K, 0, 1, 135),
        (RET_K, 0, 0, MAX_FRAME as u32),
        (RET_K, 0, 0, 0),
    ];

    #[test]
    fn spec_matches_program() {
        let built: Vec<String> = neighbor_filter().iter().map(|f| format!("{f:?}")).collect();
        let spec: Vec<String> = FILTER_SPEC
            .iter()
            .map(|&(c, t, f, k)| format!("{:?}", SockFilter::new(c, t, f, k)))
            .collect();
        assert_eq!(built, spec);
    }

    fn ipv6_frame(next: u8, icmp_type: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 40 + 24];
        f[12] = 0x86;
        f[13] = 0xdd;
        f[20] = next;
        f[54] = icmp_type;
        f
    }

    #[test]
    fn filter_passes_only_incoming_arp_and_neighbor_solicitations() {
        let mut arp = vec![0u8; 42];
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert_eq!(run_filter(&arp, 0), MAX_FRAME as u32);
        assert_eq!(run_filter(&arp, 1), MAX_FRAME as u32, "broadcast");
        assert_eq!(run_filter(&arp, PACKET_OUTGOING), 0, "own transmission");
        assert_eq!(run_filter(&ipv6_frame(58, 135), 2), MAX_FRAME as u32);
        assert_eq!(run_filter(&ipv6_frame(58, 136), 0), 0, "advertisement");
        assert_eq!(run_filter(&ipv6_frame(58, 128), 0), 0, "echo");
        assert_eq!(run_filter(&ipv6_frame(6, 135), 0), 0, "tcp");
        let mut ipv4 = arp.clone();
        ipv4[13] = 0x00;
        assert_eq!(run_filter(&ipv4, 0), 0, "ipv4");
        assert_eq!(run_filter(&[0u8; 10], 0), 0, "runt");
        // The same requests, arrived with an 802.1Q tag: dropped.
        assert_eq!(run_filter_tagged(&arp, 1, true), 0, "tagged ARP");
        assert_eq!(
            run_filter_tagged(&ipv6_frame(58, 135), 2, true),
            0,
            "tagged NS"
        );
    }

    #[test]
    fn a_failed_join_leaves_no_reference_behind() {
        let mut groups = MulticastGroups {
            sockets: Vec::new(),
            open_socket: || Err(io::Error::new(io::ErrorKind::Unsupported, "no IPv6")),
            members: HashMap::new(),
        };
        let ip: Ipv6Addr = "2001:db8::10".parse().unwrap();
        assert!(groups.join(1, ip).is_err());
        assert_eq!(groups.joined(1), 0);
        assert!(groups.leave(1, ip).is_ok());
    }

    /// Needs IPv6 on loopback (any Linux host, no privileges): reference counting per group,
    /// addresses sharing a group, and thousands of groups spread over several sockets.
    #[test]
    fn memberships_are_reference_counted_and_scale_past_one_socket() {
        let Ok(probe) = open_ipv6_socket() else {
            eprintln!("SKIPPED: no IPv6 on this host");
            return;
        };
        drop(probe);
        let mut groups = MulticastGroups::new();
        let lo = 1;
        let a: Ipv6Addr = "2001:db8::1:10".parse().unwrap();
        let same_group: Ipv6Addr = "2001:db8:ffff::1:10".parse().unwrap();
        groups.join(lo, a).unwrap();
        groups.join(lo, same_group).unwrap();
        assert_eq!(groups.joined(lo), 1, "same low 24 bits, same group");
        groups.leave(lo, a).unwrap();
        assert_eq!(groups.joined(lo), 1, "still referenced");
        groups.leave(lo, same_group).unwrap();
        assert_eq!(groups.joined(lo), 0);
        // Leaving a whole interface really leaves: joining again is not "already a member".
        groups.join(lo, a).unwrap();
        groups.leave_interface(lo);
        assert_eq!(groups.joined(lo), 0);
        groups.join(lo, a).unwrap();
        groups.leave(lo, a).unwrap();
        for i in 0..6000u32 {
            let ip = Ipv6Addr::from(0x2001_0db8_0000_0000_0000_0000_0000_0000u128 | u128::from(i));
            groups.join(lo, ip).unwrap();
        }
        assert_eq!(groups.joined(lo), 6000);
        for i in 0..6000u32 {
            let ip = Ipv6Addr::from(0x2001_0db8_0000_0000_0000_0000_0000_0000u128 | u128::from(i));
            groups.leave(lo, ip).unwrap();
        }
        assert_eq!(groups.joined(lo), 0);
    }
}
