//! Where a control plane's network lives, and the way into it from the test process when it
//! lives in a network namespace of its own.
//!
//! The test process stays in the host's namespace, which must never get a LAN (documentation)
//! address. A Unix socket is not namespaced, so `socat` inside the namespace listens on one in the
//! test's folder and connects each client to the API port there, and a forwarder task in the test
//! process listens on a free 127.0.0.1 port of the host and copies every connection to that
//! socket. TLS runs end to end through both hops, so the serving certificate names 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tokio::net::{TcpListener, UnixStream};
use tokio::task::{JoinHandle, JoinSet};

use super::process::ChildGuard;

pub enum Network {
    /// The host's loopback.
    Loopback,
    /// A namespace made by the test, where the API server serves on `address`.
    Netns { netns: String, address: IpAddr },
}

impl Network {
    pub fn address(&self) -> Option<IpAddr> {
        match self {
            Network::Loopback => None,
            Network::Netns { address, .. } => Some(*address),
        }
    }

    /// A command that runs `program` in this network.
    pub fn command(&self, program: &Path) -> Command {
        match self {
            Network::Loopback => Command::new(program),
            Network::Netns { netns, .. } => {
                let mut command = Command::new("ip");
                // `ip netns exec` execs the program, so the child's pid is the program itself
                // and killing it kills the program.
                command.args(["netns", "exec", netns]).arg(program);
                command
            }
        }
    }
}

/// The way into a namespaced API server: `socat` in the namespace plus the host-side forwarder.
pub struct Bridge {
    pub port: u16,
    // Aborting the accept task drops its JoinSet, which aborts every copy in flight; then socat
    // (and its per-connection children, whose sockets just closed) goes.
    forwarder: JoinHandle<()>,
    _socat: ChildGuard,
}

impl Bridge {
    pub async fn start(network: &Network, dir: &Path, api_port: u16) -> Bridge {
        let socket = dir.join("api.sock");
        let mut socat = network.command(Path::new("socat"));
        socat
            .arg(format!(
                "UNIX-LISTEN:{},fork,unlink-early",
                socket.display()
            ))
            .arg(format!("TCP:127.0.0.1:{api_port}"));
        let socat = ChildGuard::spawn("socat", socat, &dir.join("socat.log"));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind the API forwarder");
        let port = listener.local_addr().expect("forwarder address").port();
        let forwarder = tokio::spawn(forward(listener, socket));
        Bridge {
            port,
            forwarder,
            _socat: socat,
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.forwarder.abort();
    }
}

async fn forward(listener: TcpListener, socket: PathBuf) {
    let mut copies = JoinSet::new();
    loop {
        let Ok((mut tcp, _)) = listener.accept().await else {
            // Out of descriptors, say: give copies in flight a moment to finish.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let socket = socket.clone();
        copies.spawn(async move {
            // Until socat is listening the connection is dropped; clients retry.
            if let Ok(mut unix) = UnixStream::connect(&socket).await {
                let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
            }
        });
        // Reap finished copies so the set does not grow with every request.
        while copies.try_join_next().is_some() {}
    }
}
