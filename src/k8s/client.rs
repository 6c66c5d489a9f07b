//! The Kubernetes client both components build, from the same flag.

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Why no Kubernetes client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read kubeconfig {path}")]
    Kubeconfig {
        path: String,
        source: kube::config::KubeconfigError,
    },
    #[error("cannot use kubeconfig {path}: {reason}")]
    Config { path: String, reason: String },
    #[error("no kubeconfig found and not running in a cluster: {0}")]
    Infer(String),
    #[error("cannot create the Kubernetes client")]
    Client(#[source] kube::Error),
}

/// A client from `--kubeconfig`, else KUBECONFIG / ~/.kube/config, else in-cluster. Requests
/// answered 429, 503 or 504 are sent again by kube's retry layer (up to 15 times, honouring
/// `Retry-After`): right for the speaker and the tools, whose writes are not fenced.
pub async fn client(kubeconfig: Option<&std::path::Path>) -> Result<Client, ClientError> {
    Client::try_from(config(kubeconfig).await?).map_err(ClientError::Client)
}

/// [`client`] for a component whose writes are fenced by a lease (the controller): every request
/// is sent once. A write checked against the lease deadline right before it is sent must not be
/// sent again later by a hidden retry layer, after another replica may have taken over; the
/// caller decides again, with the lease checked again.
pub async fn fenced_client(kubeconfig: Option<&std::path::Path>) -> Result<Client, ClientError> {
    let mut config = config(kubeconfig).await?;
    config.default_retry = false;
    Client::try_from(config).map_err(ClientError::Client)
}

async fn config(kubeconfig: Option<&std::path::Path>) -> Result<Config, ClientError> {
    Ok(match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|source| ClientError::Kubeconfig {
                path: path.display().to_string(),
                source,
            })?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| ClientError::Config {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?
        }
        None => Config::infer()
            .await
            .map_err(|e| ClientError::Infer(e.to_string()))?,
    })
}
