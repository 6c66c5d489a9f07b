//! The metrics server with [`Security`]: real TLS on a loopback port, a certificate from files
//! signed by a test CA, and a fake review backend; and the certificate flags' errors.

use std::path::Path;

use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::telemetry::fake_reviews::fake;
use crate::telemetry::tls::{ServingCert, TlsError};

/// A CA and a certificate for 127.0.0.1 it signed, as PEM files in `dir`: (ca, cert, key).
fn issue(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    issue_as(dir, "")
}

/// [`issue`], the files' names prefixed with `prefix`.
fn issue_as(
    dir: &Path,
    prefix: &str,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(format!("{prefix}{name}"));
        std::fs::write(&path, text).unwrap();
        path
    };
    (
        write("ca.crt", ca_cert.pem()),
        write("tls.crt", cert.pem()),
        write("tls.key", key.serialize_pem()),
    )
}

/// A TLS connection to `addr` trusting only `ca`, for the name 127.0.0.1.
async fn connect(
    addr: SocketAddr,
    ca: &Path,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .unwrap()
}

/// One HTTPS GET trusting only `ca`: the whole response (status line, headers, body).
async fn get(addr: SocketAddr, ca: &Path, path: &str, token: Option<&str>) -> String {
    let mut tls = connect(addr, ca).await;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{auth}\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw).await;
    String::from_utf8_lossy(&raw).into_owned()
}

fn status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

#[tokio::test]
async fn secure_metrics_need_an_allowed_token_and_probes_need_none() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = issue(dir.path());
    let tls = ServingCert::Files { cert, key }.server_config().unwrap();
    let reviews = fake();
    let registry = Registry::new();
    let gauge = prometheus::IntGauge::new("ferrolb_test_secure", "a gauge").unwrap();
    registry.register(Box::new(gauge.clone())).unwrap();
    gauge.set(4);
    let health = Health::new();
    let security = Security {
        tls,
        gate: Arc::new(Gate::new(reviews.clone())),
    };
    let loopback = "127.0.0.1:0".parse().unwrap();
    let server = serve_metrics(
        loopback,
        registry,
        TextRegistry::default(),
        health.clone(),
        Some(security),
    )
    .await
    .unwrap();
    let addr = server.local_addr();

    assert_eq!(status(&get(addr, &ca, "/healthz", None).await), 200);
    assert_eq!(status(&get(addr, &ca, "/readyz", None).await), 503);
    health.set_ready(true);
    assert_eq!(status(&get(addr, &ca, "/readyz", None).await), 200);

    let none = get(addr, &ca, "/metrics", None).await;
    assert_eq!(status(&none), 401, "{none}");
    assert!(
        none.to_lowercase().contains("www-authenticate: bearer"),
        "{none}"
    );
    assert!(!none.contains("ferrolb_test_secure"), "{none}");
    assert_eq!(
        status(&get(addr, &ca, "/metrics", Some("made-up")).await),
        401
    );
    let refused = get(addr, &ca, "/metrics", Some("stranger-token")).await;
    assert_eq!(status(&refused), 403, "{refused}");
    assert!(!refused.contains("ferrolb_test_secure"), "{refused}");
    let allowed = get(addr, &ca, "/metrics", Some("prometheus-token")).await;
    assert_eq!(status(&allowed), 200, "{allowed}");
    assert!(allowed.contains("ferrolb_test_secure 4"), "{allowed}");

    // Reviews failing: a token not seen before gets 503, never the metrics; the probes still
    // answer.
    *reviews.token_review_down.lock().unwrap() = true;
    let down = get(addr, &ca, "/metrics", Some("new-token")).await;
    assert_eq!(status(&down), 503, "{down}");
    assert!(!down.contains("ferrolb_test_secure"), "{down}");
    assert_eq!(status(&get(addr, &ca, "/healthz", None).await), 200);

    // Plain HTTP on the HTTPS port gets no HTTP answer.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = plain.read_to_end(&mut raw).await;
    assert!(!String::from_utf8_lossy(&raw).contains("HTTP/1.1 200"));

    server.shutdown().await.unwrap();
}

#[test]
fn a_self_signed_certificate_is_made_for_the_given_names() {
    let config = ServingCert::SelfSigned {
        names: vec!["localhost".into(), "ferrolb-controller-0".into()],
    }
    .server_config()
    .unwrap();
    assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
}

#[test]
fn bad_certificate_files_are_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = issue(dir.path());
    let other = tempfile::tempdir().unwrap();
    let (_, _, other_key) = issue(other.path());
    let missing = dir.path().join("missing.crt");
    let not_pem = dir.path().join("not-pem.crt");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let files = |cert: &Path, key: &Path| {
        ServingCert::Files {
            cert: cert.to_owned(),
            key: key.to_owned(),
        }
        .server_config()
        .expect_err("refused")
    };
    let err = files(&missing, &key);
    assert!(matches!(err, TlsError::ReadCert { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&missing.display().to_string())
            && err.to_string().contains("--metrics-cert-file"),
        "{err}"
    );
    let err = files(&not_pem, &key);
    assert!(matches!(err, TlsError::NoCert { .. }), "{err:?}");
    assert!(err.to_string().contains("not-pem.crt"), "{err}");
    // A certificate where the key should be.
    let err = files(&cert, &cert);
    assert!(matches!(err, TlsError::ReadKey { .. }), "{err:?}");
    assert!(
        err.to_string().contains("tls.crt") && err.to_string().contains("--metrics-key-file"),
        "{err}"
    );
    // A key that is not the certificate's.
    let err = files(&cert, &other_key);
    assert!(matches!(err, TlsError::Unusable { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&cert.display().to_string())
            && err.to_string().contains(&other_key.display().to_string()),
        "{err}"
    );
}

/// The end-entity certificate a handshake trusting `ca` is served.
async fn served(addr: SocketAddr, ca: &Path) -> Vec<u8> {
    let tls = connect(addr, ca).await;
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// Replaces `to` with `from` the way the kubelet updates a mounted Secret: a new file moved in.
fn replace(from: &Path, to: &Path) {
    std::fs::rename(from, to).unwrap();
}

#[tokio::test]
async fn a_renewed_certificate_is_served_from_the_next_handshake_and_a_broken_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = issue(dir.path());
    let pem = |path: &Path| {
        rustls::pki_types::CertificateDer::from_pem_file(path)
            .unwrap()
            .to_vec()
    };
    let first = pem(&cert);
    let tls = ServingCert::Files {
        cert: cert.clone(),
        key: key.clone(),
    }
    .server_config()
    .unwrap();
    let security = Security {
        tls,
        gate: Arc::new(Gate::new(fake())),
    };
    let loopback = "127.0.0.1:0".parse().unwrap();
    let server = serve_metrics(
        loopback,
        Registry::new(),
        TextRegistry::default(),
        Health::new(),
        Some(security),
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    assert_eq!(served(addr, &ca).await, first);

    // Renewed: a new key and certificate (another CA's, trusted by the client from now on).
    let (new_ca, new_cert, new_key) = issue_as(dir.path(), "new-");
    let second = pem(&new_cert);
    assert_ne!(first, second);
    replace(&new_cert, &cert);
    replace(&new_key, &key);
    assert_eq!(served(addr, &new_ca).await, second);

    // A key file that cannot be read: the last good pair is still served.
    let broken = dir.path().join("broken.key");
    std::fs::write(&broken, "not a key\n").unwrap();
    replace(&broken, &key);
    assert_eq!(served(addr, &new_ca).await, second);
    server.shutdown().await.unwrap();
}
