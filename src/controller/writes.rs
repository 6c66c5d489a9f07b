//! The controller's writes to the API: Service status (status subresource), the pool
//! annotation, and events.k8s.io/v1 events.
//!
//! Status and annotation are JSON merge patches carrying only the fields ferrolb owns, with
//! field manager `ferrolb-controller`: a merge patch replaces the ingress list as a whole and
//! `null` removes a field, which is exactly "make it show this", whoever wrote it before (a
//! server-side apply could not remove entries another manager, such as MetalLB, once wrote).

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Service};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType as KubeEventType, Recorder, Reporter};
use kube::{Client, Resource};
use serde_json::json;

use super::cached::CachedService;
use super::reconcile::{Desired, EventType, PlannedEvent, Reason};
use crate::k8s::service::ALLOCATED_FROM_POOL;

/// Field manager of every write the controller makes.
pub const FIELD_MANAGER: &str = "ferrolb-controller";

/// Event reason recorded on the ConfigMap when its config is refused.
pub const INVALID_CONFIG_REASON: &str = "InvalidConfig";

/// Event reason recorded on a custom resource holding a field ferrolb does not know (ignored).
pub const UNKNOWN_FIELD_REASON: &str = "UnknownField";
/// The Warning reason of a field ferrolb reads but does not implement (a BGP one, bgpextras).
pub const NOT_IMPLEMENTED_REASON: &str = "NotImplemented";

/// A write the API refused; the reconcile is retried.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("Service {namespace}/{name}: not written, this replica no longer leads")]
    NotLeading { namespace: String, name: String },
    #[error("Service {namespace}/{name}: cannot write status")]
    Status {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("Service {namespace}/{name}: cannot write annotation {ALLOCATED_FROM_POOL}")]
    Annotation {
        namespace: String,
        name: String,
        source: kube::Error,
    },
}

impl WriteError {
    /// The Service changed since the decision was made (HTTP 409 on the resourceVersion
    /// precondition): the decision is stale and must be made again from the current object.
    pub fn is_conflict(&self) -> bool {
        match self {
            WriteError::Status { source, .. } | WriteError::Annotation { source, .. } => {
                matches!(source, kube::Error::Api(status) if status.code == 409)
            }
            WriteError::NotLeading { .. } => false,
        }
    }
}

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

/// The status patch for `desired`, on condition that the Service still is at
/// `resource_version` (the version the decision was made on).
pub fn status_patch(desired: &Desired, resource_version: Option<&str>) -> serde_json::Value {
    let ingress = if desired.ips.is_empty() {
        serde_json::Value::Null
    } else {
        desired
            .ips
            .iter()
            .map(|ip| json!({"ip": ip.to_string()}))
            .collect()
    };
    let mut patch = json!({"status": {"loadBalancer": {"ingress": ingress}}});
    if let Some(rv) = resource_version {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    patch
}

/// The annotation patch for `desired`, with the same precondition as [`status_patch`].
pub fn annotation_patch(desired: &Desired, resource_version: Option<&str>) -> serde_json::Value {
    let mut patch = json!({"metadata": {"annotations": {ALLOCATED_FROM_POOL: desired.pool}}});
    if let Some(rv) = resource_version {
        patch["metadata"]["resourceVersion"] = json!(rv);
    }
    patch
}

/// Makes `svc` show `desired`: status first (what users and the speakers act on), then the
/// annotation; each only when it differs, each only while `leading()` holds (checked right
/// before each request), and each on condition that the Service is still the version the
/// decision was made on (the annotation patch: the version the status patch produced). A
/// Service changed meanwhile fails with a conflict ([`WriteError::is_conflict`]).
pub async fn write_service(
    client: &Client,
    svc: &CachedService,
    desired: &Desired,
    leading: &(dyn Fn() -> bool + Sync),
) -> Result<(), WriteError> {
    let namespace = svc.namespace().unwrap_or_default().to_owned();
    let name = svc.name().unwrap_or_default().to_owned();
    let not_leading = || WriteError::NotLeading {
        namespace: namespace.clone(),
        name: name.clone(),
    };
    let api: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let mut version = svc.resource_version().map(str::to_owned);
    if !desired.status_shown_by(svc) {
        if !leading() {
            return Err(not_leading());
        }
        let patch = status_patch(desired, version.as_deref());
        let written = api
            .patch_status(&name, &params(), &Patch::Merge(patch))
            .await
            .map_err(|source| WriteError::Status {
                namespace: namespace.clone(),
                name: name.clone(),
                source,
            })?;
        version = written.metadata.resource_version;
    }
    if !desired.pool_shown_by(svc) {
        if !leading() {
            return Err(not_leading());
        }
        let patch = annotation_patch(desired, version.as_deref());
        api.patch(&name, &params(), &Patch::Merge(patch))
            .await
            .map_err(|source| WriteError::Annotation {
                namespace: namespace.clone(),
                name: name.clone(),
                source,
            })?;
    }
    Ok(())
}

/// The Service as the API shows it now (`None`: gone), to decide again after a conflict:
/// decoded into the controller's form, as the watch decodes it.
pub async fn fetch_service(
    client: &Client,
    svc: &CachedService,
) -> Result<Option<CachedService>, WriteError> {
    let namespace = svc.namespace().unwrap_or_default().to_owned();
    let name = svc.name().unwrap_or_default().to_owned();
    let api: Api<CachedService> = Api::namespaced(client.clone(), &namespace);
    api.get_opt(&name)
        .await
        .map_err(|source| WriteError::Status {
            namespace,
            name,
            source,
        })
}

fn kube_type(t: EventType) -> KubeEventType {
    match t {
        EventType::Normal => KubeEventType::Normal,
        EventType::Warning => KubeEventType::Warning,
    }
}

fn action(reason: Reason) -> &'static str {
    match reason {
        Reason::IpAllocated | Reason::AllocationFailed => "AllocateIP",
        Reason::ClearAssignment => "ClearAssignment",
        Reason::LoadBalancerFailed => "ValidateService",
        Reason::AddressHeldElsewhere => "HoldAddress",
        Reason::ClusterNetworkOverlap => "CheckPool",
    }
}

/// Records `events` on `svc`. Events are informational: a refused event is logged, not retried.
pub async fn publish_service_events(
    client: &Client,
    reporter: &Reporter,
    svc: &CachedService,
    events: &[PlannedEvent],
) {
    if events.is_empty() {
        return;
    }
    publish_events(client, reporter, &svc.object_ref(&()), events).await;
}

/// Records `events` on the object `reference` names (a Service, a pool). Events are
/// informational: a refused event is logged, not retried.
pub async fn publish_events(
    client: &Client,
    reporter: &Reporter,
    reference: &ObjectReference,
    events: &[PlannedEvent],
) {
    // A fresh recorder per batch: kube's recorder folds events with the same reason into one
    // series keeping the first message, which would hide which address was assigned.
    let recorder = Recorder::new(client.clone(), reporter.clone());
    for e in events {
        let event = Event {
            type_: kube_type(e.event_type()),
            reason: e.reason.as_str().to_owned(),
            note: Some(crate::k8s::bounded_note(&e.message)),
            action: action(e.reason).to_owned(),
            secondary: None,
        };
        if let Err(err) = recorder.publish(&event, reference).await {
            tracing::warn!(reason = %e.reason, error = %crate::telemetry::error_chain(&err), "cannot record event");
        }
    }
}

/// Records a Warning event on the ConfigMap whose config was refused.
pub async fn publish_config_warning(
    client: &Client,
    reporter: &Reporter,
    cm: &ConfigMap,
    message: &str,
) {
    publish_object_warning(client, reporter, &cm.object_ref(&()), message).await;
}

/// Records a Warning event on any object whose config was refused (a custom resource named by
/// a validation error, or the ConfigMap).
pub async fn publish_object_warning(
    client: &Client,
    reporter: &Reporter,
    reference: &ObjectReference,
    message: &str,
) {
    let note = format!("invalid config, the last good config stays in force: {message}");
    publish_warning(client, reporter, reference, INVALID_CONFIG_REASON, &note).await;
}

/// Records a Warning on an object holding a field ferrolb does not know (`UnknownField`:
/// ignored) or does not implement (`NotImplemented`: read, not applied); the config it is part
/// of is in force.
pub async fn publish_field_warning(
    client: &Client,
    reporter: &Reporter,
    reference: &ObjectReference,
    kind: crate::config::WarningKind,
    message: &str,
) {
    let reason = match kind {
        crate::config::WarningKind::NotImplemented => NOT_IMPLEMENTED_REASON,
        _ => UNKNOWN_FIELD_REASON,
    };
    publish_warning(client, reporter, reference, reason, message).await;
}

async fn publish_warning(
    client: &Client,
    reporter: &Reporter,
    reference: &ObjectReference,
    reason: &str,
    note: &str,
) {
    let recorder = Recorder::new(client.clone(), reporter.clone());
    let event = Event {
        type_: KubeEventType::Warning,
        reason: reason.to_owned(),
        note: Some(crate::k8s::bounded_note(note)),
        action: "LoadConfig".to_owned(),
        secondary: None,
    };
    if let Err(err) = recorder.publish(&event, reference).await {
        tracing::warn!(reason, error = %crate::telemetry::error_chain(&err), "cannot record the config event");
    }
}
