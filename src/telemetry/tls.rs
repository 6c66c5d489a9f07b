//! The serving certificate of `--metrics-secure`: the PEM certificate chain and private key the
//! user names (`--metrics-cert-file`, `--metrics-key-file`: a mounted `kubernetes.io/tls`
//! Secret's `tls.crt` and `tls.key`; read again when they change), or, with none named, a
//! self-signed one made at start. Served with rustls on the ring provider (TLS 1.2 and 1.3), as
//! kube's client is.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
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
    #[error("cannot set up TLS on the ring provider")]
    Provider(#[source] rustls::Error),
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
    /// Files are read now, and again at a handshake after either has changed (a mounted Secret
    /// renewed in place): a new pair that cannot be used is logged and the last good one kept.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Provider)?
            .with_no_client_auth();
        let mut config = match self {
            ServingCert::Files { cert, key } => {
                let resolver = ReloadingCert::load(cert.clone(), key.clone(), provider)?;
                builder.with_cert_resolver(Arc::new(resolver))
            }
            ServingCert::SelfSigned { names } => {
                let made = rcgen::generate_simple_self_signed(names.clone())
                    .map_err(TlsError::Generate)?;
                let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                    made.signing_key.serialize_der(),
                ));
                builder
                    .with_single_cert(vec![made.cert.der().clone()], key)
                    .map_err(|source| TlsError::Unusable {
                        cert: "the self-signed certificate".into(),
                        key: "its key".into(),
                        source,
                    })?
            }
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// When a file last changed as far as a handshake can tell: its modification time, size and
/// inode (the kubelet replaces a Secret's files by swapping a symlink to new ones).
type Stamp = Option<(std::time::SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

/// The certificate and key files, served from memory and read again when their stamps change.
#[derive(Debug)]
struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    /// The stamps last looked at (loaded or refused) and the pair in use.
    current: Mutex<(Stamp, Stamp, Arc<CertifiedKey>)>,
}

impl ReloadingCert {
    fn load(cert: PathBuf, key: PathBuf, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let stamps = (stamp(&cert), stamp(&key));
        let pair = certified_key(&cert, &key, &provider)?;
        Ok(ReloadingCert {
            current: Mutex::new((stamps.0, stamps.1, Arc::new(pair))),
            cert,
            key,
            provider,
        })
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let stamps = (stamp(&self.cert), stamp(&self.key));
        // Nothing panics while holding the lock; were it poisoned, the pair is still whole.
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if (current.0, current.1) != stamps {
            current.0 = stamps.0;
            current.1 = stamps.1;
            match certified_key(&self.cert, &self.key, &self.provider) {
                Ok(pair) => {
                    tracing::info!(cert = %self.cert.display(), "metrics certificate reloaded");
                    current.2 = Arc::new(pair);
                }
                Err(e) => tracing::warn!(error = %super::error_chain(&e),
                    "the changed metrics certificate cannot be used: still serving the previous one"),
            }
        }
        Some(current.2.clone())
    }
}

fn certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    CertifiedKey::from_der(read_chain(cert)?, read_key(key)?, provider).map_err(|source| {
        TlsError::Unusable {
            cert: cert.display().to_string(),
            key: key.display().to_string(),
            source,
        }
    })
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
