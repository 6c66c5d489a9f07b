//! The edge of [`super::lease`]: reads and writes the controller's coordination.k8s.io/v1 Lease
//! and keeps the reconcile [`Context`]'s leadership deadline current.
//!
//! Every attempt is a GET, then (when the core asks for one) a create or a resourceVersion-
//! preconditioned merge patch, each bounded in time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use tokio::sync::watch;

use super::lease::{Elector, LeaseRecord, Write};
use super::live::Context;
use super::writes::FIELD_MANAGER;
use crate::runtime::sleep_until;

/// The Lease as the core reads it.
pub fn record_of(lease: &Lease) -> LeaseRecord {
    let spec = lease.spec.clone().unwrap_or_default();
    LeaseRecord {
        holder: spec.holder_identity,
        duration_secs: spec.lease_duration_seconds.unwrap_or(0),
        transitions: spec.lease_transitions.unwrap_or(0),
        renew_time: spec.renew_time.map(|t| t.0.to_string()),
        resource_version: lease.metadata.resource_version.clone(),
    }
}

/// One replica's election loop on the Lease `name`.
pub struct LeaseLoop {
    api: Api<Lease>,
    name: String,
    elector: Elector,
    /// The Lease as last read, the base of the next replace.
    last: Option<Lease>,
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

fn params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    }
}

impl LeaseLoop {
    pub fn new(api: Api<Lease>, name: &str, elector: Elector) -> Self {
        Self {
            api,
            name: name.to_owned(),
            elector,
            last: None,
        }
    }

    /// A bound on each request: a hung request must not stall the loop for ever, but a slow
    /// API server (seconds per request under load) must still be able to renew. Writes never
    /// depend on it: they are fenced by the renew deadline on the clock, whatever this loop does.
    fn request_timeout(&self) -> Duration {
        self.elector.timing().renew_deadline / 2
    }

    fn lease(&self, write: &Write, now: Timestamp) -> Lease {
        let mut lease = self.last.clone().unwrap_or_default();
        lease.metadata = ObjectMeta {
            name: Some(self.name.clone()),
            ..lease.metadata
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let secs = i32::try_from(self.elector.timing().lease.as_secs()).unwrap_or(i32::MAX);
        spec.holder_identity = Some(self.elector.identity().to_owned());
        spec.lease_duration_seconds = Some(secs);
        spec.renew_time = Some(MicroTime(now));
        match write {
            Write::Create { transitions } => {
                lease.metadata.resource_version = None;
                spec.acquire_time = Some(MicroTime(now));
                spec.lease_transitions = Some(*transitions);
            }
            Write::Update {
                resource_version,
                transitions,
                acquire,
            } => {
                lease.metadata.resource_version = Some(resource_version.clone());
                if *acquire {
                    spec.acquire_time = Some(MicroTime(now));
                }
                spec.lease_transitions = Some(*transitions);
            }
        }
        lease
    }

    /// One attempt: read the Lease, write what the core asks for, update its view. Returns
    /// whether the API answered at all.
    pub async fn attempt(&mut self) -> bool {
        let limit = self.request_timeout();
        let started = Instant::now();
        let current = match tokio::time::timeout(limit, self.api.get_opt(&self.name)).await {
            Ok(Ok(current)) => current,
            Ok(Err(e)) => {
                tracing::warn!(error = %crate::telemetry::error_chain(&e), lease = %self.name, "cannot read the Lease");
                return false;
            }
            Err(_) => {
                tracing::warn!(lease = %self.name, timeout = ?limit, "reading the Lease timed out");
                return false;
            }
        };
        let record = current.as_ref().map(record_of);
        self.last = current;
        let Some(write) = self.elector.observe(started, record) else {
            return true;
        };
        let lease = self.lease(&write, Timestamp::now());
        let request = async {
            match &write {
                Write::Create { .. } => self.api.create(&params(), &lease).await,
                // A merge patch carrying the resourceVersion is as conditional as a replace,
                // and needs only the `patch` verb the chart's Role grants.
                Write::Update { .. } => {
                    let patch = serde_json::json!({
                        "metadata": {"resourceVersion": lease.metadata.resource_version},
                        "spec": lease.spec,
                    });
                    self.api
                        .patch(&self.name, &patch_params(), &Patch::Merge(patch))
                        .await
                }
            }
        };
        match tokio::time::timeout(limit, request).await {
            Ok(Ok(written)) => {
                self.elector.written(Instant::now(), record_of(&written));
                self.last = Some(written);
            }
            Ok(Err(kube::Error::Api(status))) if status.code == 409 => {
                tracing::debug!(lease = %self.name, "the Lease changed meanwhile; not ours this time");
                self.elector.write_failed();
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %crate::telemetry::error_chain(&e), lease = %self.name, "cannot write the Lease");
                self.elector.write_failed();
            }
            Err(_) => {
                tracing::warn!(lease = %self.name, timeout = ?limit, "writing the Lease timed out");
                self.elector.write_failed();
            }
        }
        true
    }

    pub fn is_leader(&self, now: Instant) -> bool {
        self.elector.is_leader(now)
    }

    /// Campaigns and renews until `stop`, keeping `ctx`'s leadership deadline current;
    /// `first` is called once the first attempt has been made (the lease state is known).
    pub async fn run(
        &mut self,
        ctx: &Arc<Context>,
        first: impl FnOnce(),
        mut stop: watch::Receiver<bool>,
    ) {
        let mut first = Some(first);
        loop {
            let started = Instant::now();
            self.attempt().await;
            let was = ctx.is_leading();
            ctx.lead_until(self.elector.leader_until());
            let now_leading = ctx.is_leading();
            if was != now_leading {
                tracing::info!(identity = %self.elector.identity(), leading = now_leading, "leadership changed");
            }
            if let Some(first) = first.take() {
                first();
            }
            // Wake for the next attempt, or at the deadline to step down on time.
            let next = self.elector.next_attempt(started);
            let wake = match self.elector.leader_until() {
                Some(until) if until > Instant::now() => next.min(until),
                _ => next,
            };
            tokio::select! {
                _ = sleep_until(Some(wake)) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Hands the Lease over at shutdown (holder cleared, duration 1 s) so a standby takes over
    /// at once. Failing is harmless (the Lease then simply expires): one log line, no error.
    pub async fn release(&mut self) {
        let Some(resource_version) = self.elector.release() else {
            return;
        };
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": resource_version},
            "spec": {"holderIdentity": null, "leaseDurationSeconds": 1,
                     "renewTime": MicroTime(Timestamp::now())},
        });
        let limit = self.request_timeout();
        let (params, patch) = (patch_params(), Patch::Merge(patch));
        let request = self.api.patch(&self.name, &params, &patch);
        match tokio::time::timeout(limit, request).await {
            Ok(Ok(_)) => tracing::info!(lease = %self.name, "lease released"),
            Ok(Err(kube::Error::Api(status))) => tracing::warn!(lease = %self.name,
                code = status.code, reason = %status.reason,
                "the Lease was not released ({}); it expires by itself", status.message),
            Ok(Err(e)) => {
                tracing::warn!(lease = %self.name, error = %crate::telemetry::error_chain(&e),
                "the Lease was not released; it expires by itself")
            }
            Err(_) => tracing::warn!(lease = %self.name,
                "releasing the Lease timed out; it expires by itself"),
        }
    }
}

#[cfg(test)]
#[path = "elector_tests.rs"]
mod tests;
