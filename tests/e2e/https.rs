//! A bare HTTPS GET on 127.0.0.1, as Prometheus scrapes a `--metrics-secure` endpoint: a bearer
//! token or none, and the server's certificate either checked against a CA (the Secret's) or not
//! checked at all (`insecureSkipVerify`, for the self-signed certificate made at start).

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;

use super::ferrolb::get_on;

/// How the client treats the server's certificate.
pub enum Trust {
    /// Any certificate (the signatures of the handshake are still checked).
    Any,
    /// Only one issued, for 127.0.0.1, by the CA in this PEM file.
    Ca(std::path::PathBuf),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn client_config(trust: &Trust) -> rustls::ClientConfig {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider's protocol versions");
    match trust {
        Trust::Any => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth(),
        Trust::Ca(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(pem).expect("read the CA") {
                roots
                    .add(cert.expect("a CA certificate"))
                    .expect("add the CA");
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    }
}

/// GET `path` over HTTPS from 127.0.0.1:`port` with `Authorization: Bearer <token>` when a token
/// is given: status code and body, or `None` when no answer came (refused, handshake failed).
pub async fn https_get(
    port: u16,
    path: &str,
    token: Option<&str>,
    trust: &Trust,
) -> Option<(u16, String)> {
    https_get_with(port, path, token.map(|t| format!("Bearer {t}")), trust).await
}

/// [`https_get`] with any `Authorization` header value (or none).
pub async fn https_get_with(
    port: u16,
    path: &str,
    authorization: Option<String>,
    trust: &Trust,
) -> Option<(u16, String)> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(trust)));
    let exchange = async {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
        let stream = connector.connect(name, tcp).await.ok()?;
        let headers = authorization.map_or(String::new(), |v| format!("Authorization: {v}\r\n"));
        get_on(stream, path, &headers).await
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}
