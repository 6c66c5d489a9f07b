//! The `ConfigurationState` objects (MetalLB v0.15.3) both components write: one per component
//! in the release namespace, `Valid` or `Invalid` with the errors of the config last refused.

use std::collections::BTreeMap;

use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use crate::config::crd::GROUP;

/// The condition type MetalLB's speaker sets (its config reconciler).
pub const SPEAKER_CONDITION: &str = "configReconcilerValid";

/// [`configuration_state`] with the condition type of the component writing it.
pub fn configuration_state_of(condition: &str, error: Option<&str>, now: &str) -> Value {
    let (result, status, reason, message) = match error {
        None => (
            "Valid",
            "True",
            "Reconciled",
            "the configuration is in force",
        ),
        Some(e) => ("Invalid", "False", "ConfigurationError", e),
    };
    let mut out = json!({"status": {
        "result": result,
        "conditions": [{
            "type": condition,
            "status": status,
            "reason": reason,
            "message": bounded(message),
            "lastTransitionTime": now,
        }],
    }});
    if let Some(e) = error {
        out["status"]["errorSummary"] = Value::String(bounded(e));
    }
    out
}

/// The CRD caps messages at 32 KiB.
pub fn bounded(text: &str) -> String {
    const LIMIT: usize = 32_000;
    if text.len() <= LIMIT {
        return text.to_owned();
    }
    let mut end = LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} [...]", &text[..end])
}

fn state_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, "v1beta1", "ConfigurationState"),
        "configurationstates",
    )
}

/// Writes the status of the ConfigurationState `name`, creating it (with `labels`) when absent.
pub async fn write_state(
    client: &Client,
    namespace: &str,
    name: &str,
    labels: BTreeMap<String, String>,
    manager: &str,
    status: &Value,
) -> Result<(), kube::Error> {
    let resource = state_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let params = PatchParams {
        field_manager: Some(manager.to_owned()),
        ..PatchParams::default()
    };
    match api.patch_status(name, &params, &Patch::Merge(status)).await {
        Ok(_) => return Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e),
    }
    let mut object = DynamicObject::new(name, &resource).within(namespace);
    object.metadata.labels = Some(labels);
    object.data = json!({"spec": {}});
    let create = PostParams {
        field_manager: Some(manager.to_owned()),
        ..PostParams::default()
    };
    match api.create(&create, &object).await {
        Ok(_) => {}
        // Created meanwhile (a previous leader or run): the status patch below still applies.
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e),
    }
    api.patch_status(name, &params, &Patch::Merge(status))
        .await
        .map(|_| ())
}
