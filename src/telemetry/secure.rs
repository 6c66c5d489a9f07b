//! `--metrics-secure` and its certificate flags, shared by `ferrolb controller` and `ferrolb
//! speaker`, and what they turn into: the TLS configuration and the [`Gate`] of the metrics
//! server.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::ServerConfig;

use super::auth::{Gate, Reviewer};
use super::tls::{ServingCert, TlsError};

/// The metrics server's flags for HTTPS and Kubernetes authentication.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MetricsSecurityArgs {
    /// Serve /metrics over HTTPS, and only to requests whose bearer token a TokenReview accepts
    /// and whose user a SubjectAccessReview allows `get` on the non-resource URL /metrics (as
    /// MetalLB 0.16): no token or an unknown one 401, no grant 403, a review that fails 503.
    /// Outcomes are reused for 10 s per token. /healthz and /readyz stay on the same HTTPS port
    /// without authentication, for the kubelet's probes. Needs `create` on tokenreviews and
    /// subjectaccessreviews. Without --metrics-cert-file, a self-signed certificate is made at
    /// start.
    #[arg(long)]
    pub metrics_secure: bool,
    /// PEM certificate (chain, leaf first) served with --metrics-secure: a mounted
    /// kubernetes.io/tls Secret's tls.crt. Needs --metrics-key-file. Read again at the next
    /// handshake when it or the key file changes (a renewed Secret); a pair that cannot be used
    /// is logged and the last good one kept.
    #[arg(
        long,
        value_name = "FILE",
        requires = "metrics_secure",
        requires = "metrics_key_file"
    )]
    pub metrics_cert_file: Option<PathBuf>,
    /// PEM private key of --metrics-cert-file: the Secret's tls.key.
    #[arg(long, value_name = "FILE", requires = "metrics_cert_file")]
    pub metrics_key_file: Option<PathBuf>,
}

/// What a secure metrics server needs: its TLS configuration and who decides each /metrics
/// request.
#[derive(Clone)]
pub struct Security {
    pub tls: Arc<ServerConfig>,
    pub gate: Arc<Gate>,
}

impl MetricsSecurityArgs {
    /// The certificate to serve: the named files, or a self-signed one for `localhost` and this
    /// host's name.
    pub fn serving_cert(&self) -> ServingCert {
        match (&self.metrics_cert_file, &self.metrics_key_file) {
            (Some(cert), Some(key)) => ServingCert::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => {
                let mut names = vec!["localhost".to_owned()];
                names.extend(std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()));
                ServingCert::SelfSigned { names }
            }
        }
    }

    /// With --metrics-secure: the certificate loaded (or made) and a gate asking `reviewer`
    /// (called only then). Without: `None`, plain HTTP.
    pub fn security(
        &self,
        reviewer: impl FnOnce() -> Arc<dyn Reviewer>,
    ) -> Result<Option<Security>, TlsError> {
        if !self.metrics_secure {
            return Ok(None);
        }
        let cert = self.serving_cert();
        let tls = cert.server_config()?;
        match &cert {
            ServingCert::Files { cert, .. } => {
                tracing::info!(cert = %cert.display(), "metrics over HTTPS with Kubernetes authentication")
            }
            ServingCert::SelfSigned { .. } => tracing::info!(
                "metrics over HTTPS (self-signed certificate) with Kubernetes authentication"
            ),
        }
        Ok(Some(Security {
            tls,
            gate: Arc::new(Gate::new(reviewer())),
        }))
    }
}
