//! The leader's writes to the custom resources' status (`--config-source crds`): the pools'
//! status and the ConfigurationState, each written only when it changed.

use std::time::Instant;

use super::{Context, may_write};
use crate::controller::crd_status;

/// What this leader wrote to the objects' status, so only changes are written.
#[derive(Debug, Default)]
pub(super) struct StatusWrites {
    pub(super) namespace: String,
    pub(super) pools: std::collections::BTreeMap<String, serde_json::Value>,
    /// The config state to show: `None` = valid, else the errors.
    pub(super) state_wanted: Option<Option<String>>,
    /// The pools' overlaps with the cluster's networks, shown in their own condition.
    pub(super) overlaps: Vec<String>,
    /// What was last written: the config state, the overlaps and the fields not implemented.
    pub(super) state_written: Option<(Option<String>, Vec<String>, Vec<String>)>,
}

impl Context {
    /// Writes status back to the custom resources in `namespace` (`--config-source crds`).
    pub fn enable_status(&self, namespace: &str) {
        self.lock().status = Some(StatusWrites {
            namespace: namespace.to_owned(),
            ..StatusWrites::default()
        });
    }

    /// Waits until some status may be due.
    pub async fn status_due(&self) {
        self.status_due.notified().await;
    }

    /// Writes the pools' status and the ConfigurationState where they changed since this
    /// leader last wrote them. Leader only; a failed write is retried on the next change.
    pub async fn flush_status(&self) {
        let (namespace, pools, config_state) = {
            let mut state = self.lock();
            if !may_write(&state, Instant::now()) {
                return;
            }
            let stats = state
                .core
                .as_ref()
                .map(|core| core.pool_stats())
                .unwrap_or_default();
            let Some(status) = state.status.as_mut() else {
                return;
            };
            let mut due = Vec::new();
            status
                .pools
                .retain(|name, _| stats.iter().any(|s| &s.pool == name));
            for s in &stats {
                let body = crd_status::pool_status(s);
                if status.pools.get(&s.pool) != Some(&body) {
                    status.pools.insert(s.pool.clone(), body.clone());
                    due.push((s.pool.clone(), body));
                }
            }
            // The config in force's fields read but not applied (BGP ones, bgpextras).
            let not_implemented: Vec<String> = state
                .config
                .iter()
                .flat_map(|c| &c.warnings)
                .filter(|w| w.kind == crate::config::WarningKind::NotImplemented)
                .map(ToString::to_string)
                .collect();
            let Some(status) = state.status.as_mut() else {
                return;
            };
            let config_state = match &status.state_wanted {
                Some(error) => {
                    let wanted = (error.clone(), status.overlaps.clone(), not_implemented);
                    (status.state_written.as_ref() != Some(&wanted)).then(|| {
                        status.state_written = Some(wanted.clone());
                        wanted
                    })
                }
                None => None,
            };
            (status.namespace.clone(), due, config_state)
        };
        for (pool, body) in pools {
            // Fencing: leadership is checked again right before each request.
            if !self.is_leading() {
                self.forget_status_writes();
                return;
            }
            let written =
                crd_status::write_pool_status(&self.client, &namespace, &pool, &body).await;
            if let Err(e) = written {
                tracing::warn!(%pool, error = %crate::telemetry::error_chain(&e), "cannot write the pool's status; retrying on the next change");
                if let Some(status) = self.lock().status.as_mut() {
                    status.pools.remove(&pool);
                }
            }
        }
        if let Some((error, overlaps, not_implemented)) = config_state {
            if !self.is_leading() {
                self.forget_status_writes();
                return;
            }
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            let body = crd_status::configuration_state(
                error.as_deref(),
                &overlaps,
                &not_implemented,
                &now,
            );
            let written =
                crd_status::write_configuration_state(&self.client, &namespace, &body).await;
            if let Err(e) = written {
                tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot write the ConfigurationState; retrying on the next change");
                if let Some(status) = self.lock().status.as_mut() {
                    status.state_written = None;
                }
            }
        }
    }

    /// Leadership ended mid-flush: what was not written must be written by the next leader
    /// term in full.
    fn forget_status_writes(&self) {
        if let Some(status) = self.lock().status.as_mut() {
            status.pools.clear();
            status.state_written = None;
        }
    }
}
