//! The one place in ferrolb that needs `unsafe`: building a `sockaddr_ll` so an AF_PACKET socket
//! can be bound to a single interface (socket2 has safe constructors for IP and Unix addresses
//! only; packet addresses must be written into its raw storage by hand), and registering the
//! socket with tokio's reactor (`AsyncFd::register` is `unsafe` since tokio 1.54 because it cannot
//! check that the descriptor stays open).
#![allow(unsafe_code)]

use std::io;
use std::mem::size_of;

use socket2::{SockAddr, SockAddrStorage, Socket, socklen_t};
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

/// Registers an owned socket with the tokio reactor. Must be called within a tokio runtime.
pub(crate) fn register(socket: Socket) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: `Socket` owns its descriptor: `as_raw_fd` returns the same open descriptor for the
    // socket's whole life, and it is closed only when the `Socket` is dropped, which happens
    // when (and after) the `AsyncFd` owning it is dropped or unwrapped. Nothing else holds or
    // closes the descriptor.
    unsafe { AsyncFd::register(socket) }.map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sockaddr_ll_has_the_kernel_abi_size() {
        assert_eq!(std::mem::size_of::<super::SockaddrLl>(), 20);
    }
}
