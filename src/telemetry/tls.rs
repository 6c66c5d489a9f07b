//! The serving certificate of `--metrics-secure`: the PEM certificate chain and private key the
//! user names (`--metrics-cert-file`, `--metrics-key-file`: a mounted `kubernetes.io/tls`
//! Secret's `tls.crt` and `tls.key`), or, with none named, a self-signed one made at start. Served
//! with rustls on the ring provider (TLS 1.2 and 1.3), as kube's client is.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Where the serving certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServingCert {
    /// PEM files: the certificate (chain, leaf first) and its private key.
    Files { cert: PathBuf, key: PathBuf },
    /// Made at start, for the names given; a client must skip verification
    /// (Prometheus' `insecureSkipVerify`).
    SelfSigned { names: Vec<String> },
}

/// Why no TLS configuration could be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the metrics certificate file {path} (--metrics-cert-file)")]
    ReadCert {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("the metrics certificate file {path} (--metrics-cert-file) holds no PEM CERTIFICATE")]
    NoCert { path: PathBuf },
    #[error(
        "cannot read a private key from {path} (--metrics-key-file; PEM, PKCS#8, PKCS#1 or SEC1)"
    )]
    ReadKey {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("cannot make a self-signed metrics certificate")]
    Generate(#[source] rcgen::Error),
    #[error("cannot serve the certificate of {cert} with the key of {key}")]
    Unusable {
        cert: String,
        key: String,
        source: rustls::Error,
    },
}

impl ServingCert {
    /// The rustls configuration serving this certificate (HTTP/1.1, no client certificates).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let (chain, key, cert_name, key_name) = match self {
            ServingCert::Files { cert, key } => (
                read_chain(cert)?,
                read_key(key)?,
                cert.display().to_string(),
                key.display().to_string(),
            ),
            ServingCert::SelfSigned { names } => {
                let made = rcgen::generate_simple_self_signed(names.clone())
                    .map_err(TlsError::Generate)?;
                let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                    made.signing_key.serialize_der(),
                ));
                let what = "the self-signed certificate".to_string();
                (vec![made.cert.der().clone()], key, what.clone(), what)
            }
        };
        let unusable = |source| TlsError::Unusable {
            cert: cert_name.clone(),
            key: key_name.clone(),
            source,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(unusable)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(unusable)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |source| TlsError::ReadCert {
        path: path.to_owned(),
        source,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(read)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    if chain.is_empty() {
        return Err(TlsError::NoCert {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::ReadKey {
        path: path.to_owned(),
        source,
    })
}

/// At most this many TLS handshakes are under way at once; more connections wait to be accepted.
const HANDSHAKES: usize = 32;
/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The metrics port's TCP listener with TLS on top, for `axum::serve`: a task accepts
/// connections and does each handshake on a task of its own (so a slow or silent client holds
/// up nobody, the kubelet's probes included), and hands the finished ones over. Dropping it stops
/// that task, and with it the listening socket.
pub(super) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    pub(super) fn new(
        listener: TcpListener,
        local_addr: SocketAddr,
        config: Arc<ServerConfig>,
    ) -> Self {
        let (tx, ready) = mpsc::channel(HANDSHAKES);
        let acceptor = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
        TlsListener {
            ready,
            local_addr,
            acceptor,
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES));
    loop {
        let Ok(permit) = handshakes.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "cannot accept a metrics connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    // The server is gone when nobody receives: nothing to do.
                    let _ = ready.send((stream, peer)).await;
                }
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake on the metrics port failed")
                }
                Err(_) => tracing::debug!(%peer, "TLS handshake on the metrics port timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task ended (it only does when aborted): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}
