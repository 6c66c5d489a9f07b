//! The one place in ferrolb that needs `unsafe`: building a `sockaddr_ll` so an AF_PACKET socket
//! can be bound to a single interface (socket2 has safe constructors for IP and Unix addresses
//! only; packet addresses must be written into its raw storage by hand), and registering the
//! socket with tokio's reactor (`AsyncFd::register` is `unsafe` since tokio 1.54 because it cannot
//! check that the descriptor stays open). It also holds the gossip socket's two calls that no
//! safe crate API offers: turning on `IP_RECVERR` (socket2 and rustix have no such option) and
//! reading the error queue's control bytes (socket2's `recvmsg` is safe but fills
//! `MaybeUninit` bytes). And the speaker's view of its links: a netlink socket that wakes it on
//! link and address changes (its `sockaddr_nl` written by hand as the packet address is), and
//! the interfaces' addresses (`getifaddrs`, which std does not wrap). And the BGP edge's TCP MD5
//! signature option (`TCP_MD5SIG`, RFC 2385), which neither socket2 nor rustix offers; and BFD's
//! received TTL (`IP_RECVTTL` / `IPV6_RECVHOPLIMIT` and the control message that carries it).
#![allow(unsafe_code)]

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::net::{Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};

use socket2::{MaybeUninitSlice, MsgHdrMut, SockAddr, SockAddrStorage, SockRef, Socket, socklen_t};
use tokio::io::unix::AsyncFd;

/// `AF_PACKET` from `<sys/socket.h>`, identical on every Linux architecture.
const AF_PACKET: u16 = 17;

/// `struct sockaddr_ll` from `<linux/if_packet.h>`; the layout is fixed by the kernel ABI.
#[repr(C)]
struct SockaddrLl {
    sll_family: u16,
    /// EtherType in network byte order.
    sll_protocol: u16,
    sll_ifindex: i32,
    sll_hatype: u16,
    sll_pkttype: u8,
    sll_halen: u8,
    sll_addr: [u8; 8],
}

/// Binds `socket` (an `AF_PACKET` socket) to interface `ifindex`, receiving frames of EtherType
/// `protocol` (host byte order; `0x0003` is `ETH_P_ALL`). A bound packet socket sends on that
/// interface with a plain `send`, so no other call needs a packet address.
pub(crate) fn bind_packet(socket: &Socket, ifindex: u32, protocol: u16) -> io::Result<()> {
    let ifindex = i32::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index out of range"))?;
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: `SockaddrLl` is a `repr(C)` mirror of the kernel's `sockaddr_ll` (20 bytes, smaller
    // than `sockaddr_storage`, which `view_as` asserts), and every bit pattern is valid for its
    // integer fields, so viewing the zeroed storage as one and writing it is sound.
    let ll = unsafe { storage.view_as::<SockaddrLl>() };
    *ll = SockaddrLl {
        sll_family: AF_PACKET,
        sll_protocol: protocol.to_be(),
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // SAFETY: the family written above is AF_PACKET and the length is exactly that of the
    // `sockaddr_ll` initialised in `storage`, which is what `SockAddr::new` requires.
    let addr = unsafe { SockAddr::new(storage, size_of::<SockaddrLl>() as socklen_t) };
    socket.bind(&addr)
}

/// `AF_NETLINK` and `NETLINK_ROUTE` from `<linux/netlink.h>`, identical on every architecture.
const AF_NETLINK: u16 = 16;
const NETLINK_ROUTE: i32 = 0;
/// `RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR` from `<linux/rtnetlink.h>`.
const LINK_AND_ADDRESS_GROUPS: u32 = 0x1 | 0x10 | 0x100;

/// `struct sockaddr_nl` from `<linux/netlink.h>`; the layout is fixed by the kernel ABI.
#[repr(C)]
struct SockaddrNl {
    nl_family: u16,
    nl_pad: u16,
    nl_pid: u32,
    nl_groups: u32,
}

/// A non-blocking route netlink socket subscribed to link and address changes: each message
/// it receives says that some interface or address changed (the reader rescans sysfs rather
/// than parse it).
pub(crate) fn link_events_socket() -> io::Result<Socket> {
    let socket = Socket::new(
        socket2::Domain::from(i32::from(AF_NETLINK)),
        socket2::Type::RAW,
        Some(socket2::Protocol::from(NETLINK_ROUTE)),
    )?;
    socket.set_nonblocking(true)?;
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: `SockaddrNl` is a `repr(C)` mirror of the kernel's `sockaddr_nl` (12 bytes,
    // smaller than `sockaddr_storage`, which `view_as` asserts), and every bit pattern is valid
    // for its integer fields, so viewing the zeroed storage as one and writing it is sound.
    let nl = unsafe { storage.view_as::<SockaddrNl>() };
    *nl = SockaddrNl {
        nl_family: AF_NETLINK,
        nl_pad: 0,
        nl_pid: 0,
        nl_groups: LINK_AND_ADDRESS_GROUPS,
    };
    // SAFETY: the family written above is AF_NETLINK and the length is exactly that of the
    // `sockaddr_nl` initialised in `storage`, which is what `SockAddr::new` requires.
    let addr = unsafe { SockAddr::new(storage, size_of::<SockaddrNl>() as socklen_t) };
    socket.bind(&addr)?;
    Ok(socket)
}

/// Every address of every interface of this network namespace, as `(interface, address)`.
pub fn interface_addresses() -> io::Result<Vec<(String, std::net::IpAddr)>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `getifaddrs` writes a pointer to a list it allocates into `list`; on success it
    // is freed below with `freeifaddrs`, exactly once.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found = Vec::new();
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: `entry` is a non-null node of the list `getifaddrs` returned, valid until
        // `freeifaddrs`; its name is a NUL-terminated string and `ifa_addr`, when non-null,
        // points to a `sockaddr` whose `sa_family` says which larger struct it is.
        unsafe {
            let ifa = &*entry;
            if !ifa.ifa_addr.is_null() && !ifa.ifa_name.is_null() {
                let name = std::ffi::CStr::from_ptr(ifa.ifa_name)
                    .to_string_lossy()
                    .into_owned();
                match i32::from((*ifa.ifa_addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                        let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                        found.push((name, ip.into()));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                        found.push((name, Ipv6Addr::from(sin6.sin6_addr.s6_addr).into()));
                    }
                    _ => {}
                }
            }
            entry = ifa.ifa_next;
        }
    }
    // SAFETY: `list` came from a successful `getifaddrs` and is freed once; no reference into
    // it outlives this call (names and addresses were copied out).
    unsafe { libc::freeifaddrs(list) };
    Ok(found)
}

/// Registers an owned socket with the tokio reactor. Must be called within a tokio runtime.
pub(crate) fn register(socket: Socket) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: `Socket` owns its descriptor: `as_raw_fd` returns the same open descriptor for the
    // socket's whole life, and it is closed only when the `Socket` is dropped, which happens
    // when (and after) the `AsyncFd` owning it is dropped or unwrapped. Nothing else holds or
    // closes the descriptor.
    unsafe { AsyncFd::register(socket) }.map_err(io::Error::from)
}

/// Asks the kernel to queue the ICMP errors about datagrams this UDP socket sends (`IP_RECVERR`,
/// and `IPV6_RECVERR` too on an IPv6 socket), to be read with [`recv_queued_error`]. Without it
/// an unconnected UDP socket never hears of them.
pub(crate) fn enable_recv_err(socket: &impl AsFd, ipv6: bool) -> io::Result<()> {
    let mut options = vec![(libc::SOL_IP, libc::IP_RECVERR)];
    if ipv6 {
        options.push((libc::SOL_IPV6, libc::IPV6_RECVERR));
    }
    set_int_options(socket, &options)
}

/// Turns on each of these `int` socket options (level, name).
fn set_int_options(socket: &impl AsFd, options: &[(i32, i32)]) -> io::Result<()> {
    let fd = socket.as_fd().as_raw_fd();
    for &(level, name) in options {
        let on: libc::c_int = 1;
        // SAFETY: `fd` is an open socket, borrowed through `socket` for the whole call; the value
        // points to a live `c_int` and the length passed is that of a `c_int`, which is what every
        // option passed here takes. The kernel only reads the value.
        let done = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&raw const on).cast(),
                size_of::<libc::c_int>() as socklen_t,
            )
        };
        if done != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// An error the kernel queued about a datagram this socket sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueuedError {
    /// Where the datagram the error is about was sent (IPv4-mapped addresses unmapped).
    pub dest: SocketAddr,
    /// `ee_errno`: `ECONNREFUSED` for ICMP port unreachable.
    pub errno: i32,
    /// Reported by an ICMP or ICMPv6 message (not, say, a local error).
    pub from_icmp: bool,
}

/// Takes one entry off the socket's error queue (`MSG_ERRQUEUE`, never blocks): `Ok(None)` for
/// an entry that is not an extended error with a destination, `Err(WouldBlock)` when the queue
/// is empty. Reading the queue also clears the socket's pending error.
pub(crate) fn recv_queued_error(socket: &impl AsFd) -> io::Result<Option<QueuedError>> {
    let socket = SockRef::from(socket);
    // Large enough for either family's address; the kernel writes the family it reports.
    let mut name = SockAddr::from(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)));
    let mut control = [MaybeUninit::new(0u8); 256];
    let mut payload: [MaybeUninitSlice<'_>; 0] = [];
    let mut msg = MsgHdrMut::new()
        .with_addr(&mut name)
        .with_buffers(&mut payload)
        .with_control(&mut control);
    socket.recvmsg(&mut msg, libc::MSG_ERRQUEUE)?;
    let len = msg.control_len().min(256);
    // SAFETY: every byte of `control` was initialised (to zero) before the call, and the kernel
    // writes only initialised bytes over some of them, so all 256 are initialised.
    let control = control.map(|byte| unsafe { byte.assume_init() });
    let Some((errno, origin)) = extended_error(&control[..len]) else {
        return Ok(None);
    };
    let Some(dest) = name.as_socket() else {
        return Ok(None);
    };
    Ok(Some(QueuedError {
        dest: SocketAddr::new(dest.ip().to_canonical(), dest.port()),
        errno,
        from_icmp: matches!(origin, SO_EE_ORIGIN_ICMP | SO_EE_ORIGIN_ICMP6),
    }))
}

/// `SO_EE_ORIGIN_ICMP` and `SO_EE_ORIGIN_ICMP6` from `<linux/errqueue.h>`.
const SO_EE_ORIGIN_ICMP: u8 = 2;
const SO_EE_ORIGIN_ICMP6: u8 = 3;

/// Each control message in `control` (a `recvmsg` control buffer: `cmsghdr`s, each padded to
/// the size of a `size_t`) as its level, type and data; stops at the first that does not fit.
fn control_messages(control: &[u8]) -> Vec<(i32, i32, &[u8])> {
    let word = size_of::<usize>();
    let align = |n: usize| n.checked_add(word - 1).map(|n| n & !(word - 1));
    let mut out = Vec::new();
    let Some(header) = align(size_of::<libc::cmsghdr>()) else {
        return out;
    };
    let mut at = 0;
    while let Some(rest) = control.get(at..) {
        let field = |range: std::ops::Range<usize>| rest.get(range);
        let (Some(len), Some(level), Some(kind)) = (
            field(0..word),
            field(word..word + 4),
            field(word + 4..word + 8),
        ) else {
            break;
        };
        let len = usize::from_ne_bytes(len.try_into().unwrap_or([0; size_of::<usize>()]));
        let level = i32::from_ne_bytes(level.try_into().unwrap_or_default());
        let kind = i32::from_ne_bytes(kind.try_into().unwrap_or_default());
        let Some(data) = rest.get(header..len) else {
            break;
        };
        out.push((level, kind, data));
        match align(len.max(header)).and_then(|n| at.checked_add(n)) {
            Some(next) => at = next,
            None => break,
        }
    }
    out
}

/// The `ee_errno` and `ee_origin` of the first `IP_RECVERR` / `IPV6_RECVERR` control message in
/// `control`.
fn extended_error(control: &[u8]) -> Option<(i32, u8)> {
    control_messages(control)
        .into_iter()
        .find_map(|(level, kind, data)| {
            let is_recverr = (level, kind) == (libc::SOL_IP, libc::IP_RECVERR)
                || (level, kind) == (libc::SOL_IPV6, libc::IPV6_RECVERR);
            // `struct sock_extended_err`: ee_errno (u32), ee_origin (u8), type, code, pad, info,
            // data.
            if !is_recverr || data.len() < size_of::<libc::sock_extended_err>() {
                return None;
            }
            let errno = u32::from_ne_bytes(data.get(..4)?.try_into().ok()?);
            Some((i32::try_from(errno).ok()?, *data.get(4)?))
        })
}

/// The TTL (`IP_TTL`) or hop limit (`IPV6_HOPLIMIT`) control message in `control`, an `int`.
fn received_ttl(control: &[u8]) -> Option<u8> {
    control_messages(control)
        .into_iter()
        .find_map(|(level, kind, data)| {
            let is_ttl = (level, kind) == (libc::SOL_IP, libc::IP_TTL)
                || (level, kind) == (libc::SOL_IPV6, libc::IPV6_HOPLIMIT);
            let value = i32::from_ne_bytes(data.get(..4)?.try_into().ok()?);
            is_ttl.then(|| u8::try_from(value).ok()).flatten()
        })
}

/// Asks the kernel to hand each datagram's TTL (`IP_RECVTTL`), or on an IPv6 socket its hop
/// limit (`IPV6_RECVHOPLIMIT`), to [`recv_with_ttl`]: BFD's single-hop check (RFC 5881 §5).
/// socket2 offers neither.
pub(crate) fn enable_recv_ttl(socket: &impl AsFd, ipv6: bool) -> io::Result<()> {
    let option = if ipv6 {
        (libc::SOL_IPV6, libc::IPV6_RECVHOPLIMIT)
    } else {
        (libc::SOL_IP, libc::IP_RECVTTL)
    };
    set_int_options(socket, &[option])
}

/// The largest datagram [`recv_with_ttl`] reads whole.
const RECV_MAX: usize = 512;

/// Reads one datagram (never blocks on a non-blocking socket) into `buf`: its length (cut to
/// `buf` and to 512 bytes), its source (IPv4-mapped addresses unmapped) and the TTL or hop
/// limit it arrived with, when [`enable_recv_ttl`] asked for it.
pub(crate) fn recv_with_ttl(
    socket: &impl AsFd,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<u8>)> {
    let socket = SockRef::from(socket);
    let mut name = SockAddr::from(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)));
    let mut data = [MaybeUninit::new(0u8); RECV_MAX];
    let mut control = [MaybeUninit::new(0u8); 128];
    let (len, control_len) = {
        let mut payload = [MaybeUninitSlice::new(&mut data)];
        let mut msg = MsgHdrMut::new()
            .with_addr(&mut name)
            .with_buffers(&mut payload)
            .with_control(&mut control);
        let len = socket.recvmsg(&mut msg, 0)?;
        (len, msg.control_len())
    };
    // SAFETY: every byte of `data` and `control` was initialised (to zero) before the call, and
    // the kernel writes only initialised bytes over some of them, so all are initialised.
    let (data, control) = unsafe {
        (
            data.map(|byte| byte.assume_init()),
            control.map(|byte| byte.assume_init()),
        )
    };
    let len = len.min(RECV_MAX).min(buf.len());
    buf[..len].copy_from_slice(&data[..len]);
    let from = name.as_socket().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, "datagram from a non-IP address")
    })?;
    let ttl = received_ttl(control.get(..control_len).unwrap_or_default());
    Ok((
        len,
        SocketAddr::new(from.ip().to_canonical(), from.port()),
        ttl,
    ))
}

/// The longest TCP MD5 key the kernel takes (`TCP_MD5SIG_MAXKEYLEN`, `<linux/tcp.h>`).
pub const TCP_MD5_MAX_KEY: usize = 80;

/// `struct tcp_md5sig` from `<linux/tcp.h>`: the peer's address (a `sockaddr_storage`, written
/// byte by byte below), flags and prefix length (read only with `TCP_MD5SIG_EXT`), the key's
/// length, an interface index (likewise) and the key. 216 bytes on every Linux architecture.
#[repr(C)]
struct TcpMd5Sig {
    addr: [u8; 128],
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: i32,
    key: [u8; TCP_MD5_MAX_KEY],
}

/// Signs every segment to and from `peer` on this TCP socket with `key` (RFC 2385, the kernel's
/// `TCP_MD5SIG`), or with an empty key removes the signature. Set before `connect`, so the SYN
/// is signed. socket2 and rustix offer no such option.
pub(crate) fn set_tcp_md5sig(
    socket: &impl AsFd,
    peer: std::net::IpAddr,
    key: &[u8],
) -> io::Result<()> {
    if key.len() > TCP_MD5_MAX_KEY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "TCP MD5 key of {} bytes: at most {TCP_MD5_MAX_KEY}",
                key.len()
            ),
        ));
    }
    let mut sig = TcpMd5Sig {
        addr: [0; 128],
        flags: 0,
        prefixlen: 0,
        keylen: key.len() as u16,
        ifindex: 0,
        key: [0; TCP_MD5_MAX_KEY],
    };
    sig.key[..key.len()].copy_from_slice(key);
    // `sockaddr_in` / `sockaddr_in6`: the family in host order, then port 0, then the address
    // (after the IPv6 flow label).
    match peer {
        std::net::IpAddr::V4(a) => {
            sig.addr[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            sig.addr[4..8].copy_from_slice(&a.octets());
        }
        std::net::IpAddr::V6(a) => {
            sig.addr[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            sig.addr[8..24].copy_from_slice(&a.octets());
        }
    }
    let fd = socket.as_fd().as_raw_fd();
    // SAFETY: `fd` is an open socket, borrowed through `socket` for the whole call; the value
    // points to a live, fully initialised `TcpMd5Sig`, whose `repr(C)` layout is the kernel's
    // `struct tcp_md5sig`, and the length passed is its size. The kernel only reads it.
    let done = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&raw const sig).cast(),
            size_of::<TcpMd5Sig>() as socklen_t,
        )
    };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_ll_has_the_kernel_abi_size() {
        assert_eq!(std::mem::size_of::<super::SockaddrLl>(), 20);
    }

    fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        let word = size_of::<usize>();
        let header = size_of::<libc::cmsghdr>().next_multiple_of(word);
        let mut out = (header + data.len()).to_ne_bytes().to_vec();
        out.extend(level.to_ne_bytes());
        out.extend(kind.to_ne_bytes());
        out.resize(header, 0);
        out.extend(data);
        out.resize(out.len().next_multiple_of(word), 0);
        out
    }

    fn extended(errno: u32, origin: u8) -> Vec<u8> {
        let mut data = errno.to_ne_bytes().to_vec();
        data.extend([origin, 3, 3, 0]);
        data.extend([0; 8]);
        data
    }

    #[test]
    fn the_extended_error_is_found_among_control_messages() {
        let refused = libc::ECONNREFUSED as u32;
        let v4 = cmsg(libc::SOL_IP, libc::IP_RECVERR, &extended(refused, 2));
        assert_eq!(extended_error(&v4), Some((libc::ECONNREFUSED, 2)));
        let mut both = cmsg(libc::SOL_IP, libc::IP_TTL, &[64, 0, 0, 0]);
        both.extend(cmsg(
            libc::SOL_IPV6,
            libc::IPV6_RECVERR,
            &extended(refused, 3),
        ));
        assert_eq!(extended_error(&both), Some((libc::ECONNREFUSED, 3)));
        // Truncated, lying or foreign control bytes give nothing rather than a panic.
        assert_eq!(extended_error(&v4[..v4.len() - 8]), None);
        assert_eq!(extended_error(&[]), None);
        assert_eq!(
            extended_error(&cmsg(libc::SOL_IP, libc::IP_TTL, &[1; 16])),
            None
        );
        let mut lying = v4.clone();
        lying[..size_of::<usize>()].copy_from_slice(&usize::MAX.to_ne_bytes());
        assert_eq!(extended_error(&lying), None);
        let mut short = v4;
        short[..size_of::<usize>()].copy_from_slice(&1usize.to_ne_bytes());
        assert_eq!(extended_error(&short), None);
    }

    /// A datagram to a closed loopback port: the kernel's ICMP port unreachable comes back on
    /// the sender's error queue, naming the closed port.
    #[test]
    fn port_unreachable_is_read_off_the_error_queue() {
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dest = closed.local_addr().unwrap();
        drop(closed);
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.set_nonblocking(true).unwrap();
        assert_eq!(
            recv_queued_error(&sender).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        enable_recv_err(&sender, false).unwrap();
        sender.send_to(b"anyone?", dest).unwrap();
        let mut got = None;
        for _ in 0..500 {
            match recv_queued_error(&sender) {
                Ok(entry) => {
                    got = entry;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("{e}"),
            }
        }
        let got = got.expect("an ICMP error on the queue");
        assert_eq!(got.dest, dest);
        assert_eq!(got.errno, libc::ECONNREFUSED);
        assert!(got.from_icmp);
        // Read: the queue is empty again.
        assert_eq!(
            recv_queued_error(&sender).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }

    #[test]
    fn the_ttl_is_found_among_control_messages() {
        let mut both = cmsg(libc::SOL_IP, libc::IP_RECVERR, &extended(1, 2));
        both.extend(cmsg(libc::SOL_IP, libc::IP_TTL, &255i32.to_ne_bytes()));
        assert_eq!(received_ttl(&both), Some(255));
        let v6 = cmsg(libc::SOL_IPV6, libc::IPV6_HOPLIMIT, &64i32.to_ne_bytes());
        assert_eq!(received_ttl(&v6), Some(64));
        assert_eq!(received_ttl(&v6[..v6.len() - 8]), None);
        assert_eq!(received_ttl(&[]), None);
    }

    /// Loopback datagrams arrive with the TTL and hop limit they were sent with.
    #[test]
    fn a_datagram_s_ttl_and_hop_limit_are_read() {
        use socket2::{Domain, Protocol, Type};
        for (domain, local) in [
            (Domain::IPV4, SocketAddr::from(([127, 0, 0, 1], 0))),
            (Domain::IPV6, SocketAddr::from((Ipv6Addr::LOCALHOST, 0))),
        ] {
            let rx = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).unwrap();
            rx.bind(&local.into()).unwrap();
            let ipv6 = domain == Domain::IPV6;
            enable_recv_ttl(&rx, ipv6).unwrap();
            let tx = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).unwrap();
            if ipv6 {
                tx.set_unicast_hops_v6(255).unwrap();
            } else {
                tx.set_ttl_v4(255).unwrap();
            }
            let to = rx.local_addr().unwrap();
            tx.send_to(b"bfd?", &to).unwrap();
            let mut buf = [0u8; 8];
            let (len, from, ttl) = recv_with_ttl(&rx, &mut buf).unwrap();
            assert_eq!(&buf[..len], b"bfd?");
            assert_eq!(from.ip(), local.ip());
            assert_eq!(ttl, Some(255), "{domain:?}");
        }
    }

    #[test]
    fn tcp_md5sig_has_the_kernel_abi_size() {
        assert_eq!(size_of::<TcpMd5Sig>(), 216);
    }

    /// A listener that signs with one key accepts a client signing with it, and never hears a
    /// client that does not sign (the kernel drops its unsigned SYNs).
    #[test]
    fn only_a_client_with_the_key_connects() {
        use socket2::{Domain, Protocol, Type};
        use std::net::{IpAddr, Ipv4Addr, TcpListener};
        use std::time::Duration;
        let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let listener = TcpListener::bind((local, 0)).unwrap();
        set_tcp_md5sig(&listener, local, b"s3cret").unwrap();
        let target = SockAddr::from(listener.local_addr().unwrap());
        let dial = |key: Option<&[u8]>| {
            let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
            if let Some(key) = key {
                set_tcp_md5sig(&s, local, key).unwrap();
            }
            s.connect_timeout(&target, Duration::from_millis(700))
        };
        dial(Some(b"s3cret")).expect("signed with the key");
        assert!(dial(None).is_err(), "an unsigned SYN is dropped");
        assert!(dial(Some(b"wrong")).is_err(), "a wrong key is dropped");
        let long = [b'k'; TCP_MD5_MAX_KEY + 1];
        let error = set_tcp_md5sig(&listener, local, &long).unwrap_err();
        assert!(error.to_string().contains("81 bytes"), "{error}");
    }
}
