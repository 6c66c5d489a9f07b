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

/// A client from `--kubeconfig`, else KUBECONFIG / ~/.kube/config, else in-cluster.
pub async fn client(kubeconfig: Option<&std::path::Path>) -> Result<Client, ClientError> {
    let config = match kubeconfig {
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
    };
    Client::try_from(config).map_err(ClientError::Client)
}
