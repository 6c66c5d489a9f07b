//! What the speaker reads from the speaker pods: which nodes run one that is ready.

use std::collections::{BTreeMap, BTreeSet};

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

/// The annotation a speaker puts on its own Pod: the interfaces it may announce on (after its
/// exclusions), comma-separated, so the other speakers can skip a node that has none of an
/// advertisement's interfaces when they elect.
pub const INTERFACES_ANNOTATION: &str = "ferrolb.io/interfaces";

/// Each node's published usable interfaces, from the speaker pods' [`INTERFACES_ANNOTATION`].
/// A node whose pod has not published (yet) is absent: the election assumes it has them all.
pub fn published_interfaces<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
) -> BTreeMap<String, BTreeSet<String>> {
    pods.into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let node = p.spec.as_ref()?.node_name.clone()?;
            let list = p
                .metadata
                .annotations
                .as_ref()?
                .get(INTERFACES_ANNOTATION)?;
            let names = list
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect();
            Some((node, names))
        })
        .collect()
}

/// The annotation value for `interfaces`.
pub fn interfaces_annotation(interfaces: &BTreeSet<String>) -> String {
    interfaces
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",")
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

    #[test]
    fn published_interfaces_round_trip_and_unpublished_nodes_are_absent() {
        let mut a = pod("node-a", "True", false);
        let names = BTreeSet::from(["eth0".to_string(), "eth1".to_string()]);
        a.metadata.annotations = Some(
            [(
                INTERFACES_ANNOTATION.to_string(),
                interfaces_annotation(&names),
            )]
            .into(),
        );
        let mut gone = pod("node-c", "True", true);
        gone.metadata.annotations = a.metadata.annotations.clone();
        let published = published_interfaces(&[a, pod("node-b", "True", false), gone]);
        assert_eq!(published, BTreeMap::from([("node-a".to_string(), names)]));
    }
}
