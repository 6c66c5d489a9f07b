//! What the speaker reads from the speaker pods: which nodes run one that is ready.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;

/// The nodes running a speaker pod that is Ready and not being deleted. A pod whose node went
/// down drops out when the node controller marks it not Ready.
pub fn ready_pod_nodes<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> BTreeSet<String> {
    pods.into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(node: &str, ready: &str, deleting: bool) -> Pod {
        let mut meta = json!({"name": format!("speaker-{node}")});
        if deleting {
            meta["deletionTimestamp"] = json!("2026-11-30T00:00:00Z");
        }
        serde_json::from_value(json!({
            "metadata": meta,
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": ready}]},
        }))
        .unwrap()
    }

    #[test]
    fn only_ready_pods_that_are_not_being_deleted_count() {
        let pods = [
            pod("node-a", "True", false),
            pod("node-b", "False", false),
            pod("node-c", "True", true),
            pod("node-d", "True", false),
        ];
        assert_eq!(
            ready_pod_nodes(&pods),
            BTreeSet::from(["node-a".to_string(), "node-d".to_string()])
        );
    }
}
