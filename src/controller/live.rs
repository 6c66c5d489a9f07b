//! The live controller's reconcile step: the thin edge between the Kubernetes API and [`Core`].
//!
//! All decisions come from the core; this module only feeds it (Services from the reflector
//! store, config from the ConfigMap) and carries decisions out through the API (status patch,
//! annotation patch, events). The core exists only while this replica leads: it is rebuilt from
//! the Service store whenever leadership is gained, so a new leader starts from what the API
//! shows, not from a stale memory of its own.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::Client;
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::Store;

use super::cached::CachedService;
use super::metrics::ControllerMetrics;
use super::reconcile::{Core, Decision, Outcome, PlannedEvent};
use super::writes::{self, WriteError};
use crate::config::Config;
use crate::ipam::ServiceKey;

/// Field manager of every write the controller makes.
pub const FIELD_MANAGER: &str = "ferrolb-controller";

/// Event reason recorded on the ConfigMap when its config is refused.
pub const INVALID_CONFIG_REASON: &str = "InvalidConfig";

/// Errors of one reconcile; the Service is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Write(#[from] WriteError),
}

#[derive(Debug, Default)]
struct State {
    leading: bool,
    /// The last valid config, kept in force while a newer one is invalid.
    config: Option<Config>,
    /// Present while leading, once a config is known (built lazily by [`Context::core`]).
    core: Option<Core>,
    /// Consecutive failed reconciles per Service, for the retry backoff.
    retries: HashMap<ServiceKey, u32>,
    /// A digest of the events last recorded per Service: the same batch again (a Service still
    /// failing, re-reconciled after a config change) is not recorded twice in a row. A digest,
    /// not the events, since one is kept for every Service in the cluster.
    last_events: HashMap<ServiceKey, u64>,
    /// The last refused config message, reported once.
    last_invalid: Option<String>,
}

/// What the reconcile step needs; shared by every reconcile and the watch handlers.
pub struct Context {
    client: Client,
    reporter: Reporter,
    lb_class: Option<String>,
    services: Store<CachedService>,
    metrics: ControllerMetrics,
    reconcile_all: UnboundedSender<()>,
    state: Mutex<State>,
}

/// Outcome of loading a ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOutcome {
    /// A new valid config is in force.
    Loaded,
    /// Same config as before; nothing to do.
    Unchanged,
    /// Refused; the last good config (if any) stays in force.
    Invalid(String),
    /// Refused again with the same errors (already reported).
    StillInvalid,
}

impl Context {
    pub fn new(
        client: Client,
        reporter: Reporter,
        lb_class: Option<String>,
        services: Store<CachedService>,
        metrics: ControllerMetrics,
        reconcile_all: UnboundedSender<()>,
    ) -> Self {
        Self {
            client,
            reporter,
            lb_class,
            services,
            metrics,
            reconcile_all,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state as consistent as the last completed
        // core call; carrying on beats wedging the controller.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn trigger_all(&self) {
        // The receiver lives as long as the controller; a send after shutdown is moot.
        let _ = self.reconcile_all.unbounded_send(());
    }

    pub fn is_leading(&self) -> bool {
        self.lock().leading
    }

    /// Leadership gained or lost. Gaining it drops any old core (the next reconcile rebuilds
    /// from the store) and re-reconciles everything; losing it stops all writes.
    pub fn set_leading(&self, leading: bool) {
        let mut state = self.lock();
        if state.leading == leading {
            return;
        }
        state.leading = leading;
        state.core = None;
        state.retries.clear();
        state.last_events.clear();
        drop(state);
        if leading {
            tracing::info!("became leader: rebuilding assignments from Service statuses");
            self.trigger_all();
        } else {
            tracing::info!("not leading: writes stopped");
        }
    }

    /// The core, built on first use while leading: config loaded, then every status address in
    /// the store re-registered (the startup gate), before any allocation.
    fn core<'a>(&self, state: &'a mut State) -> Option<&'a mut Core> {
        if !state.leading {
            return None;
        }
        if state.core.is_none() {
            let config = state.config.as_ref()?;
            let mut core = Core::new(self.lb_class.clone());
            if let Err(e) = core.set_config(config) {
                tracing::error!(error = %e, "allocator refused the config's pools");
                return None;
            }
            let services = self.services.state();
            match core.rebuild(services.iter().map(|s| s.to_service())) {
                Ok(issues) => {
                    for issue in issues {
                        tracing::warn!(service = %issue.key, error = %issue.error,
                            "status address cannot be re-registered; the Service will be reassigned");
                    }
                }
                Err(reason) => {
                    tracing::error!(%reason, "rebuild refused");
                    return None;
                }
            }
            tracing::info!(
                services = services.len(),
                "assignments rebuilt; allocation enabled"
            );
            self.metrics.set_pools(&core.pool_stats());
            state.core = Some(core);
        }
        state.core.as_mut()
    }

    /// A new ConfigMap (or a change of it). `None`: the ConfigMap is absent, which keeps the
    /// last good config (deleting it must not free every address).
    pub fn load_config(&self, cm: Option<&ConfigMap>) -> ConfigOutcome {
        let Some(cm) = cm else {
            tracing::warn!("config ConfigMap is absent; keeping the last good config");
            return ConfigOutcome::Unchanged;
        };
        let parsed = match cm.data.as_ref().and_then(|d| d.get("config")) {
            Some(text) => crate::config::parse(text).map_err(|e| e.to_string()),
            None => {
                Err("data.config is missing (the config is read from the key \"config\")".into())
            }
        };
        let mut state = self.lock();
        let config = match parsed {
            Ok(config) => config,
            Err(message) => {
                self.metrics.config_stale.set(1);
                if state.last_invalid.as_ref() == Some(&message) {
                    return ConfigOutcome::StillInvalid;
                }
                tracing::error!(error = %message, "invalid config; the last good config stays in force");
                state.last_invalid = Some(message.clone());
                return ConfigOutcome::Invalid(message);
            }
        };
        state.last_invalid = None;
        self.metrics.config_stale.set(0);
        self.metrics.config_loaded.set(1);
        if state.config.as_ref() == Some(&config) {
            return ConfigOutcome::Unchanged;
        }
        if let Some(core) = state.core.as_mut() {
            match core.set_config(&config) {
                Ok(change) => {
                    for e in &change.reload.evicted {
                        tracing::info!(service = %e.service, reason = %e.reason, "address taken away by the new config");
                    }
                    self.metrics.set_pools(&core.pool_stats());
                }
                Err(e) => {
                    self.metrics.config_stale.set(1);
                    return ConfigOutcome::Invalid(e.to_string());
                }
            }
        }
        state.config = Some(config);
        drop(state);
        tracing::info!("config loaded");
        self.trigger_all();
        ConfigOutcome::Loaded
    }

    /// Records the refused config as a Warning event on the ConfigMap (leader only).
    pub async fn report_invalid_config(&self, cm: &ConfigMap, message: &str) {
        if !self.is_leading() {
            return;
        }
        writes::publish_config_warning(&self.client, &self.reporter, cm, message).await;
    }

    /// A Service disappeared: free what it held, and retry Services waiting for addresses.
    pub fn service_deleted(&self, svc: &CachedService) {
        let key = svc.key();
        let mut state = self.lock();
        state.retries.remove(&key);
        state.last_events.remove(&key);
        let Some(core) = state.core.as_mut() else {
            return;
        };
        if let Some(released) = core.delete(&key) {
            tracing::info!(service = %key, ips = ?released.ips, "Service deleted; addresses released");
            self.metrics.set_pools(&core.pool_stats());
            if !core.failed().is_empty() {
                drop(state);
                self.trigger_all();
            }
        }
    }

    /// After a watch re-list, Services deleted while the watch was down never produce a delete
    /// event: release whatever the core holds for Services the store no longer has.
    pub fn sweep_deleted(&self) {
        let present: std::collections::HashSet<ServiceKey> =
            self.services.state().iter().map(|s| s.key()).collect();
        let mut state = self.lock();
        let Some(core) = state.core.as_mut() else {
            return;
        };
        let gone: Vec<ServiceKey> = core
            .assigned()
            .filter(|k| !present.contains(*k))
            .cloned()
            .collect();
        for key in &gone {
            core.delete(key);
            tracing::info!(service = %key, "Service gone after re-list; addresses released");
        }
        if !gone.is_empty() {
            self.metrics.set_pools(&core.pool_stats());
            drop(state);
            self.trigger_all();
        }
    }

    /// Decides under the lock; `None` when this replica must not write.
    fn decide(&self, svc: &Service) -> Option<(Decision, bool)> {
        let mut state = self.lock();
        let core = self.core(&mut state)?;
        let decision = core.reconcile(svc);
        let others_waiting = core.failed().iter().any(|k| *k != decision.key);
        self.metrics.set_pools(&core.pool_stats());
        Some((decision, others_waiting))
    }

    /// Whether `events` differ from the batch last recorded for `key` (and remembers them).
    fn events_are_new(&self, key: &ServiceKey, events: &[PlannedEvent]) -> bool {
        let mut state = self.lock();
        if events.is_empty() {
            state.last_events.remove(key);
            return false;
        }
        let digest = {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            events.hash(&mut hasher);
            hasher.finish()
        };
        state.last_events.insert(key.clone(), digest) != Some(digest)
    }

    fn succeeded(&self, key: &ServiceKey) {
        self.lock().retries.remove(key);
    }

    /// Backoff for the next retry of `key`: 1 s doubling to 5 min.
    pub fn retry_delay(&self, key: &ServiceKey) -> Duration {
        let mut state = self.lock();
        let n = state.retries.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        let secs = 1u64 << (*n - 1).min(9);
        Duration::from_secs(secs.min(300))
    }
}

/// One reconcile of one Service (the kube-runtime `Controller` calls this).
pub async fn reconcile(
    cached: Arc<CachedService>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let svc = cached.to_service();
    let Some((decision, others_waiting)) = ctx.decide(&svc) else {
        return Ok(Action::await_change());
    };
    let key = decision.key.clone();
    // Events and writes go out together (one round trip of latency instead of several); a
    // failed write is retried without repeating the events, since the core reports a change
    // only once.
    let publish = async {
        if ctx.events_are_new(&key, &decision.events) {
            writes::publish_service_events(&ctx.client, &ctx.reporter, &svc, &decision.events)
                .await;
        }
    };
    let write = async {
        match &decision.outcome {
            Outcome::Apply(desired) if !desired.is_shown_by(&svc) => {
                writes::write_service(&ctx.client, &svc, desired).await?;
                tracing::info!(service = %key, ips = ?desired.ips, pool = ?desired.pool, "Service updated");
                Ok::<bool, WriteError>(true)
            }
            _ => Ok(false),
        }
    };
    let ((), written) = futures::join!(publish, write);
    if written? && others_waiting {
        // Addresses may have been freed: let Services that found none try again.
        ctx.trigger_all();
    }
    ctx.succeeded(&key);
    Ok(Action::await_change())
}

/// Retry policy: exponential backoff per Service. The allocation stays in the core meanwhile,
/// so nothing is lost while the API refuses the write.
pub fn error_policy(svc: Arc<CachedService>, err: &ReconcileError, ctx: Arc<Context>) -> Action {
    let key = svc.key();
    let delay = ctx.retry_delay(&key);
    tracing::warn!(service = %key, error = %crate::telemetry::error_chain(err), retry_in = ?delay, "reconcile failed; retrying");
    Action::requeue(delay)
}

#[cfg(test)]
#[path = "live_tests.rs"]
mod tests;
