//! Passive connects: the speaker listens on the BGP port (179), as FRR does in MetalLB's FRR
//! modes, and hands a connection from a configured peer's address to that peer's task, which
//! takes it while its session has no connection of its own up ([`crate::bgp::session::Session::accept`]).
//! A connection from any other address is closed at once. A peer with a TCP MD5 key gets it on
//! the listening socket too, so the kernel accepts its signed SYN.
//!
//! One socket per family (IPv4, and IPv6 only), bound when the first peer is registered; a bind
//! that fails (the port taken by another BGP daemon on the node, such as Calico's BIRD) is said
//! once and leaves the sessions dialing only.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::layer2::sys;
use crate::runtime::lock;

/// Where a peer's incoming connections go.
pub type Incoming = mpsc::Sender<TcpStream>;

type Table = Arc<Mutex<HashMap<IpAddr, Incoming>>>;

/// The listening sockets and the peers they hand connections to.
pub struct Listener {
    table: Table,
    sockets: Vec<Arc<TcpListener>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Listener {
    /// Listens on `port` for both families; fails only if neither can be bound.
    pub fn bind(port: u16) -> io::Result<Listener> {
        let table: Table = Arc::default();
        let mut sockets = Vec::new();
        let mut tasks = Vec::new();
        let mut last = None;
        for ip in [
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        ] {
            match listen(SocketAddr::new(ip, port)) {
                Ok(socket) => {
                    let socket = Arc::new(socket);
                    tasks.push(tokio::spawn(accept(socket.clone(), table.clone())));
                    sockets.push(socket);
                }
                Err(e) => last = Some(e),
            }
        }
        match (sockets.is_empty(), last) {
            (true, Some(e)) => Err(e),
            _ => Ok(Listener {
                table,
                sockets,
                tasks,
            }),
        }
    }

    /// Hands connections from `address` to `incoming`, with the TCP MD5 key `password`.
    pub fn register(&self, address: IpAddr, password: Option<&str>, incoming: Incoming) {
        if let Some(password) = password {
            self.set_key(address, password.as_bytes());
        }
        lock(&self.table).insert(address, incoming);
    }

    /// Stops handing connections from `address` over, and removes its key.
    pub fn unregister(&self, address: IpAddr, had_password: bool) {
        lock(&self.table).remove(&address);
        if had_password {
            self.set_key(address, &[]);
        }
    }

    fn set_key(&self, address: IpAddr, key: &[u8]) {
        for socket in &self.sockets {
            let family = socket.local_addr().map(|a| a.is_ipv4());
            if family.is_ok_and(|v4| v4 == address.is_ipv4())
                && let Err(e) = sys::set_tcp_md5sig(&**socket, address, key)
            {
                warn!(peer = %address, error = %e, "cannot set the TCP MD5 key on the BGP listening socket; that peer's own connections are refused");
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn listen(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(64)?;
    TcpListener::from_std(std::net::TcpListener::from(socket))
}

async fn accept(socket: Arc<TcpListener>, table: Table) {
    loop {
        let (stream, from) = match socket.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                debug!(error = %e, "BGP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let peer = from.ip().to_canonical();
        let Some(incoming) = lock(&table).get(&peer).cloned() else {
            debug!(%from, "BGP connection from an address that is no peer of this node; closed");
            continue;
        };
        if incoming.try_send(stream).is_err() {
            debug!(%from, "BGP peer task busy or gone; connection closed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_peer_s_connection_reaches_its_task_and_a_stranger_s_is_closed() {
        let listener = Listener::bind(0).expect("an ephemeral port");
        let port = listener.sockets[0].local_addr().unwrap().port();
        let (tx, mut rx) = mpsc::channel(1);
        listener.register(IpAddr::V4(Ipv4Addr::LOCALHOST), None, tx);
        let _ours = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .expect("handed over")
            .expect("a stream");
        assert_eq!(
            got.peer_addr().unwrap().ip(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        // No longer a peer: the next connection is closed, never handed over.
        listener.unregister(IpAddr::V4(Ipv4Addr::LOCALHOST), false);
        let mut stranger = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(&mut stranger, &mut buf),
        )
        .await
        .expect("closed at once");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        assert!(rx.try_recv().is_err());
    }
}
