//! The speakers' gossip key Secret, created at runtime when it is missing.
//!
//! The chart never renders it: under `helm template` (Argo CD, Flux) a rendered random key would
//! change on every sync and restarted speakers would split from the rest. The controller creates
//! it once, with a fresh random key, and never touches an existing one (a user's own Secret, one
//! a rotation is editing, or one another replica just created). The speakers mount it as an
//! optional volume and wait for the key file to appear.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use rand::Rng;
use rand::distr::Alphanumeric;
use tokio::sync::watch;

use super::writes::FIELD_MANAGER;

/// The Secret's entry the speakers send with (MetalLB's name).
pub const KEY_FIELD: &str = "secretkey";
/// Random alphanumerics in a generated key (MetalLB's chart makes 128 too).
const KEY_LEN: usize = 128;

/// What [`ensure_key_secret`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    Existed,
    Created,
    /// Another replica created it between our read and our create.
    CreatedByAnother,
}

fn new_secret(name: &str, namespace: &str) -> Secret {
    let key: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(KEY_LEN)
        .map(char::from)
        .collect();
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                FIELD_MANAGER.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            KEY_FIELD.to_owned(),
            ByteString(key.into_bytes()),
        )])),
        ..Secret::default()
    }
}

/// Creates Secret `namespace/name` with a random key unless it exists. Reads only its metadata:
/// the controller never needs the key itself.
pub async fn ensure_key_secret(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Ensured, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    if api.get_metadata_opt(name).await?.is_some() {
        return Ok(Ensured::Existed);
    }
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    match api.create(&params, &new_secret(name, namespace)).await {
        Ok(_) => Ok(Ensured::Created),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Ensured::CreatedByAnother),
        Err(e) => Err(e),
    }
}

/// Runs [`ensure_key_secret`] until it succeeds (retrying API errors with a capped backoff) or
/// `stop` turns true. Every replica does this, leader or not: creating a missing Secret is
/// idempotent, and the speakers must not wait on a leader election.
pub async fn keep_key_secret(
    client: Client,
    namespace: String,
    name: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut delay = Duration::from_millis(500);
    loop {
        match ensure_key_secret(&client, &namespace, &name).await {
            Ok(Ensured::Created) => {
                tracing::info!(secret = %name, "created the gossip key Secret");
                return;
            }
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(secret = %name, %error, "cannot check or create the gossip key Secret; retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

#[cfg(test)]
#[path = "gossip_key_tests.rs"]
mod tests;
