//! The live controller's reconcile step: the thin edge between the Kubernetes API and [`Core`].
//!
//! All decisions come from the core; this module only feeds it (Services from the reflector
//! store, config from the ConfigMap) and carries decisions out through the API (status patch,
//! annotation patch, events). The core exists only while this replica leads: it is rebuilt from
//! the Service store whenever leadership is gained, so a new leader starts from what the API
//! shows, not from a stale memory of its own.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::WarningKind;
use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use kube::Client;
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::Store;

use super::cached::CachedService;
use super::metrics::ControllerMetrics;
use super::reconcile::{Core, Decision, Outcome, PlannedEvent, PoolEvent};
use super::writes::{self, WriteError};
pub use super::writes::{FIELD_MANAGER, INVALID_CONFIG_REASON, UNKNOWN_FIELD_REASON};
use crate::config::Config;
use crate::ipam::ServiceKey;
use status::StatusWrites;

/// Errors of one reconcile; the Service is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Write(#[from] WriteError),
}

#[derive(Debug, Default)]
struct State {
    leading: bool,
    /// With leader election: leadership ends at this instant (monotonic clock) unless the
    /// Lease is renewed first. Checked right before every write, so a replica that was paused
    /// or cut off past its renew deadline never writes, whatever its tasks still hold.
    lead_until: Option<Instant>,
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
    /// Namespace labels, for pools' `namespaceSelectors` (CRD source).
    namespaces: crate::config::Namespaces,
    /// Status written back to the custom resources (CRD source only).
    status: Option<StatusWrites>,
    /// The objects that define the pools, for the pools' events: each `IPAddressPool`, or the
    /// ConfigMap for every pool.
    pool_objects: BTreeMap<String, ObjectReference>,
    config_object: Option<ObjectReference>,
    /// The cluster's own networks, and the overlap Warnings recorded (see `live::overlaps`).
    networks: overlaps::NetworkState,
}

/// The object a pool's events go on: its `IPAddressPool`, or the ConfigMap defining every pool.
fn pool_object_in(state: &State, pool: &str) -> Option<ObjectReference> {
    state
        .pool_objects
        .get(pool)
        .or(state.config_object.as_ref())
        .cloned()
}

/// Whether this replica leads at `now`: the flag, and the lease's deadline when there is one.
fn may_write(state: &State, now: Instant) -> bool {
    state.leading && state.lead_until.is_none_or(|until| now < until)
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
    /// Woken when pool usage or the config state may have changed (see [`Context::flush_status`]).
    status_due: tokio::sync::Notify,
    /// Woken when the pools' overlaps with the cluster's networks may have changed (see
    /// [`Context::publish_overlaps`]).
    overlaps_due: tokio::sync::Notify,
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
            status_due: tokio::sync::Notify::new(),
            overlaps_due: tokio::sync::Notify::new(),
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
        let state = self.lock();
        may_write(&state, Instant::now())
    }

    /// The lease was (re)acquired: this replica leads until `until` unless renewed again;
    /// `None` steps down. See [`Context::set_leading`].
    pub fn lead_until(&self, until: Option<Instant>) {
        let now = Instant::now();
        let until = until.filter(|u| *u > now);
        self.lock().lead_until = until;
        self.set_leading(until.is_some());
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
        // Pool figures are the leader's: an ex-leader exporting its last ones would keep
        // alerts firing (or quiet) on figures nobody maintains any more.
        self.metrics.clear_pools();
        if let Some(status) = state.status.as_mut() {
            // A new leader writes every status once: it cannot know what the last one wrote.
            status.pools.clear();
            status.state_written = None;
        }
        // A new leader records the overlap Warnings again: it cannot know what was recorded.
        state.networks.recorded.clear();
        drop(state);
        self.status_due.notify_one();
        self.overlaps_due.notify_one();
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
        if !may_write(state, Instant::now()) {
            return None;
        }
        if state.core.is_none() {
            let config = state.config.as_ref()?;
            // Not before the nodes are known: one of their addresses must never be handed out.
            let node_addresses = state.networks.node_addresses()?;
            let mut core = Core::new(self.lb_class.clone());
            core.set_namespaces(state.namespaces.clone());
            core.set_node_addresses(node_addresses);
            if let Err(e) = core.set_config(config) {
                tracing::error!(error = %e, "allocator refused the config's pools");
                return None;
            }
            let services = self.services.state();
            match core.rebuild(services.iter().map(Arc::as_ref)) {
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
            self.publish_pools(&core.pool_stats());
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
        self.load_parsed(parsed)
    }

    /// A config read from either source, or why it was refused (the message names the
    /// object and field). Refused: the last good config stays in force and the config is
    /// marked stale.
    pub fn load_parsed(&self, parsed: Result<Config, String>) -> ConfigOutcome {
        let parsed = parsed.and_then(|config| match self.held_without_pools(&config) {
            Some(message) => Err(message),
            None => Ok(config),
        });
        let mut state = self.lock();
        if let Some(status) = state.status.as_mut() {
            status.state_wanted = Some(parsed.as_ref().err().cloned());
            self.status_due.notify_one();
        }
        let config = match parsed {
            Ok(config) => config,
            Err(message) => {
                self.metrics.config.refused();
                if state.last_invalid.as_ref() == Some(&message) {
                    return ConfigOutcome::StillInvalid;
                }
                tracing::error!(error = %message, "invalid config; the last good config stays in force");
                state.last_invalid = Some(message.clone());
                return ConfigOutcome::Invalid(message);
            }
        };
        state.last_invalid = None;
        if state.config.as_ref() == Some(&config) {
            self.metrics.config.applied();
            return ConfigOutcome::Unchanged;
        }
        if let Some(core) = state.core.as_mut() {
            match core.set_config(&config) {
                Ok(change) => {
                    for e in &change.reload.evicted {
                        tracing::info!(service = %e.service, reason = %e.reason, "address taken away by the new config");
                    }
                    self.publish_pools(&core.pool_stats());
                }
                Err(e) => {
                    self.metrics.config.refused();
                    return ConfigOutcome::Invalid(e.to_string());
                }
            }
        }
        self.metrics.config.applied();
        state.config = Some(config);
        self.refresh_overlaps(&mut state);
        drop(state);
        tracing::info!("config loaded");
        self.trigger_all();
        ConfigOutcome::Loaded
    }

    /// A config with no address pools would take every address away at once: refused while
    /// any Service of ours shows one (an emptied ConfigMap is far likelier a mistake than a
    /// wish to unassign everything; removing the Services or their type does that).
    fn held_without_pools(&self, config: &Config) -> Option<String> {
        let services = self.services.state();
        let holders = services
            .iter()
            .filter(|s| s.is_handled(self.lb_class.as_deref()) && !s.status_ips().is_empty())
            .map(|s| s.key().to_string());
        crate::config::refuse_emptied(config, holders)
    }

    /// Pool usage changed: the gauges now, the pools' status on the next flush.
    fn publish_pools(&self, stats: &[crate::ipam::PoolStats]) {
        self.metrics.set_pools(stats);
        self.status_due.notify_one();
    }

    /// Namespace labels changed (or were first listed): pools with `namespaceSelectors` are
    /// re-evaluated for every Service.
    pub fn set_namespaces(&self, namespaces: crate::config::Namespaces) {
        let mut state = self.lock();
        if state.namespaces == namespaces {
            return;
        }
        state.namespaces = namespaces.clone();
        if let Some(core) = state.core.as_mut() {
            core.set_namespaces(namespaces);
        }
        drop(state);
        self.trigger_all();
    }

    /// Names the objects that define the pools (`by_pool`), or the one that defines them all
    /// (`all`), so the pools' Warnings land on them.
    pub fn set_config_objects(
        &self,
        by_pool: BTreeMap<String, ObjectReference>,
        all: Option<ObjectReference>,
    ) {
        let mut state = self.lock();
        state.pool_objects = by_pool;
        state.config_object = all;
        drop(state);
        self.overlaps_due.notify_one();
    }

    /// The object a pool's events go on.
    fn pool_object(&self, pool: &str) -> Option<ObjectReference> {
        pool_object_in(&self.lock(), pool)
    }

    /// Records the Warnings about a pool's addresses a Service not ours shows (leader only;
    /// logged in any case).
    async fn publish_pool_events(&self, events: &[PoolEvent]) {
        for e in events {
            tracing::warn!(pool = %e.pool, reason = %e.event.reason, "{}", e.event.message);
            if !self.is_leading() {
                continue;
            }
            match self.pool_object(&e.pool) {
                Some(reference) => {
                    let event = std::slice::from_ref(&e.event);
                    writes::publish_events(&self.client, &self.reporter, &reference, event).await;
                }
                None => {
                    tracing::debug!(pool = %e.pool, "no object defines the pool; event not recorded")
                }
            }
        }
    }

    /// Records the refused config as a Warning event on the ConfigMap (leader only).
    pub async fn report_invalid_config(&self, cm: &ConfigMap, message: &str) {
        if !self.is_leading() {
            return;
        }
        writes::publish_config_warning(&self.client, &self.reporter, cm, message).await;
    }

    /// Records a refused object as a Warning event on it (leader only).
    pub async fn report_invalid_object(
        &self,
        reference: &k8s_openapi::api::core::v1::ObjectReference,
        message: &str,
    ) {
        if !self.is_leading() {
            return;
        }
        writes::publish_object_warning(&self.client, &self.reporter, reference, message).await;
    }

    /// Records a Warning `UnknownField` or `NotImplemented` on an object (leader only); returns
    /// whether it did.
    pub async fn report_warning_field(
        &self,
        reference: &ObjectReference,
        kind: WarningKind,
        message: &str,
    ) -> bool {
        let leading = self.is_leading();
        if leading {
            writes::publish_field_warning(&self.client, &self.reporter, reference, kind, message)
                .await;
        }
        leading
    }

    /// The watch delivered `svc`: a Service not ours has what it shows held before any
    /// Service of ours is decided after it ([`Core::observe`]).
    pub fn service_seen(&self, svc: &CachedService) {
        if let Some(core) = self.lock().core.as_mut() {
            core.observe(svc);
        }
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
            self.publish_pools(&core.pool_stats());
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
            self.publish_pools(&core.pool_stats());
            drop(state);
            self.trigger_all();
        }
    }

    /// Whether the Service store still holds this very object (same UID). A reconcile queued
    /// before a delete runs with the last version of a Service that is gone; deciding for it
    /// would re-register its addresses after the delete handler freed them.
    fn still_exists(&self, svc: &CachedService) -> bool {
        let reference =
            kube::runtime::reflector::ObjectRef::<CachedService>::new(svc.name().unwrap_or(""))
                .within(svc.namespace().unwrap_or("default"));
        self.services
            .get(&reference)
            .is_some_and(|cached| cached.uid() == svc.uid())
    }

    /// Decides under the lock; `None` when this replica must not write or the Service is gone.
    fn decide(&self, svc: &CachedService) -> Option<(Decision, bool)> {
        let mut state = self.lock();
        // Checked under the lock: the delete handler frees addresses under it too, after the
        // store has dropped the object, so either it runs after this decision and frees what
        // it took, or this check sees the Service gone.
        if !self.still_exists(svc) {
            tracing::debug!(service = %svc.key(), "Service gone; nothing to do");
            return None;
        }
        let core = self.core(&mut state)?;
        let decision = core.reconcile(svc);
        let others_waiting = core.failed().iter().any(|k| *k != decision.key);
        self.publish_pools(&core.pool_stats());
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

/// How many times one reconcile decides again after its write met a newer version of the
/// Service; past that the reconcile fails and is retried with backoff.
const CONFLICT_ATTEMPTS: usize = 3;

/// One reconcile of one Service (the kube-runtime `Controller` calls this).
pub async fn reconcile(
    mut svc: Arc<CachedService>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let mut attempt = 1;
    loop {
        match reconcile_version(&svc, &ctx).await {
            Err(ReconcileError::Write(e)) if e.is_conflict() && attempt < CONFLICT_ATTEMPTS => {
                // Decided on a version of the Service that is no longer current: decide
                // again from the one the API shows now.
                tracing::info!(service = %svc.key(), error = %crate::telemetry::error_chain(&e),
                    "Service changed since the decision; deciding again");
                attempt += 1;
                match writes::fetch_service(&ctx.client, &svc).await? {
                    Some(current) => svc = Arc::new(current),
                    // Deleted: its delete event frees what it held.
                    None => return Ok(Action::await_change()),
                }
            }
            other => return other,
        }
    }
}

async fn reconcile_version(svc: &CachedService, ctx: &Context) -> Result<Action, ReconcileError> {
    let Some((decision, others_waiting)) = ctx.decide(svc) else {
        return Ok(Action::await_change());
    };
    let key = decision.key.clone();
    tracing::debug!(service = %key, version = %svc.resource_version().unwrap_or(""),
        outcome = ?decision.outcome, "decided");
    // Events and writes go out together (one round trip of latency instead of several); a
    // failed write is retried without repeating the events, since the core reports a change
    // only once.
    let publish = async {
        if ctx.is_leading() && ctx.events_are_new(&key, &decision.events) {
            writes::publish_service_events(&ctx.client, &ctx.reporter, svc, &decision.events).await;
        }
        ctx.publish_pool_events(&decision.pool_events).await;
    };
    let write = async {
        match &decision.outcome {
            Outcome::Apply(desired) if !desired.is_shown_by(svc) => {
                let leading = || ctx.is_leading();
                writes::write_service(&ctx.client, svc, desired, &leading).await?;
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

mod overlaps;
mod status;

#[cfg(test)]
#[path = "live_tests/mod.rs"]
mod tests;
