//! The TCP side of a BGP session: dialing the peer as MetalLB's native speaker does (active only,
//! bound to the source address when one is set, TCP MD5 set before `connect`, TTL 255 for eBGP
//! multi-hop), and the router ID a spec without one gets.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpSocket, TcpStream};

use super::PeerSpec;
use crate::layer2::sys;

/// The connect and OPEN deadline when the spec sets none (MetalLB's native speaker: 10 s).
pub const DEFAULT_CONNECT_TIME: Duration = Duration::from_secs(10);

/// Why a dial failed, naming the step. The OS error is part of the message (and not a
/// `source()` as well, so no report prints it twice): the peer task logs and reports this text.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("source address {0} is not an address of this host")]
    SourceNotLocal(IpAddr),
    #[error("cannot {step}: {error}")]
    Socket {
        step: &'static str,
        error: io::Error,
    },
    #[error("no connection within {0:?}")]
    Timeout(Duration),
    #[error("connect: {0}")]
    Connect(io::Error),
}

fn step(step: &'static str) -> impl FnOnce(io::Error) -> DialError {
    move |error| DialError::Socket { step, error }
}

/// Connects to the peer of `spec` within `deadline`.
pub async fn connect(spec: &PeerSpec, deadline: Duration) -> Result<TcpStream, DialError> {
    let target = SocketAddr::new(spec.address, spec.port);
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .map_err(step("open a TCP socket"))?;
    socket
        .set_nonblocking(true)
        .map_err(step("set O_NONBLOCK"))?;
    if let Some(password) = &spec.password {
        sys::set_tcp_md5sig(&socket, spec.address, password.as_bytes())
            .map_err(step("set the TCP MD5 signature (TCP_MD5SIG)"))?;
    }
    if spec.ebgp_multihop {
        match target {
            SocketAddr::V4(_) => socket.set_ttl_v4(255).map_err(step("set IP_TTL 255"))?,
            SocketAddr::V6(_) => socket
                .set_unicast_hops_v6(255)
                .map_err(step("set IPV6_UNICAST_HOPS 255"))?,
        }
    }
    if let Some(source) = spec.source {
        socket
            .bind(&SocketAddr::new(source, 0).into())
            .map_err(|e| match e.kind() {
                io::ErrorKind::AddrNotAvailable => DialError::SourceNotLocal(source),
                _ => DialError::Socket {
                    step: "bind the source address",
                    error: e,
                },
            })?;
    }
    socket
        .set_tcp_nodelay(true)
        .map_err(step("set TCP_NODELAY"))?;
    let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(socket));
    match tokio::time::timeout(deadline, socket.connect(target)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(DialError::Connect(e)),
        Err(_) => Err(DialError::Timeout(deadline)),
    }
}

/// The BGP Identifier for a spec without one: the connection's local IPv4 address, else (an IPv6
/// session) MetalLB's choice, the CRC-32 of the node name in little-endian order.
pub fn router_id(local: IpAddr, node: &str) -> Ipv4Addr {
    match local {
        IpAddr::V4(a) if !a.is_unspecified() => a,
        _ => Ipv4Addr::from(crc32(node.as_bytes()).to_le_bytes()),
    }
}

/// CRC-32 (IEEE 802.3, reflected, as Go's `crc32.ChecksumIEEE`), bit by bit: names are short.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

/// A global address of the other family on the interface that holds `local` (so an IPv4 session
/// can carry IPv6 routes with this host's IPv6 next hop, and the reverse), if there is one.
pub fn other_family_address(local: IpAddr) -> Option<IpAddr> {
    let addresses = sys::interface_addresses().ok()?;
    let interface = addresses.iter().find(|(_, a)| *a == local)?.0.clone();
    addresses
        .into_iter()
        .filter(|(name, _)| *name == interface)
        .map(|(_, a)| a)
        .find(|a| match (local, a) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => is_global_v6(v6),
            (IpAddr::V6(_), IpAddr::V4(v4)) => !v4.is_loopback() && !v4.is_link_local(),
            _ => false,
        })
}

fn is_global_v6(a: &Ipv6Addr) -> bool {
    !a.is_loopback() && !a.is_unicast_link_local() && !a.is_unspecified()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_go_s_checksum_ieee() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn the_router_id_is_the_local_ipv4_else_the_node_name_s_crc() {
        let v4: IpAddr = "192.0.2.11".parse().unwrap();
        assert_eq!(router_id(v4, "node-a"), Ipv4Addr::new(192, 0, 2, 11));
        let v6: IpAddr = "2001:db8::11".parse().unwrap();
        // Little-endian bytes of 0xcbf43926.
        assert_eq!(
            router_id(v6, "123456789"),
            Ipv4Addr::new(0x26, 0x39, 0xf4, 0xcb)
        );
    }

    fn spec(port: u16) -> PeerSpec {
        PeerSpec::new("test", IpAddr::V4(Ipv4Addr::LOCALHOST), 64512, 64512).with_port(port)
    }

    #[tokio::test]
    async fn dials_from_the_source_address_and_refuses_one_not_local() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut s = spec(listener.local_addr().unwrap().port());
        s.source = Some("127.0.0.2".parse().unwrap());
        s.ebgp_multihop = true;
        let stream = connect(&s, DEFAULT_CONNECT_TIME).await.unwrap();
        assert_eq!(stream.local_addr().unwrap().ip(), s.source.unwrap());
        assert_eq!(stream.ttl().unwrap(), 255, "eBGP multi-hop");
        s.ebgp_multihop = false;
        let stream = connect(&s, DEFAULT_CONNECT_TIME).await.unwrap();
        assert_ne!(stream.ttl().unwrap(), 255, "the kernel's default");
        s.source = Some("192.0.2.254".parse().unwrap());
        let error = connect(&s, DEFAULT_CONNECT_TIME).await.unwrap_err();
        assert!(matches!(error, DialError::SourceNotLocal(_)), "{error}");
        assert!(error.to_string().contains("192.0.2.254"), "{error}");
    }
}
