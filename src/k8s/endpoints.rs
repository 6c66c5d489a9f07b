//! What the speaker reads from EndpointSlices: which nodes hold endpoints of which Service, and
//! in what condition (for `externalTrafficPolicy: Local`).

use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::election::EndpointStatus;
use crate::k8s::node::shared_name;

/// Label EndpointSlices carry naming their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// `namespace/name` of the Service an EndpointSlice belongs to (its [`SERVICE_NAME_LABEL`]).
pub fn service_of_slice(slice: &EndpointSlice) -> Option<String> {
    let svc = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    let ns = slice.metadata.namespace.as_deref().unwrap_or("default");
    Some(format!("{ns}/{svc}"))
}

/// Each endpoint's node and conditions.
pub fn slice_endpoints(slice: &EndpointSlice) -> Vec<EndpointStatus> {
    slice
        .endpoints
        .iter()
        .map(|ep| {
            let cond = ep.conditions.as_ref();
            EndpointStatus {
                node_name: ep.node_name.as_deref().map(shared_name),
                ready: cond.and_then(|c| c.ready),
                serving: cond.and_then(|c| c.serving),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn slice(nodes: &[&str]) -> EndpointSlice {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop",
                         "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "endpoints": nodes.iter().map(|n| serde_json::json!({
                "addresses": ["10.0.0.7"], "nodeName": n, "conditions": {"ready": true}
            })).collect::<Vec<_>>(),
        }))
        .expect("a valid EndpointSlice")
    }

    /// Endpoints on one node share one name, across slices; each keeps the name it had.
    #[test]
    fn endpoints_on_a_node_share_its_name() {
        let a = slice_endpoints(&slice(&["ep-node-a", "ep-node-b"]));
        let b = slice_endpoints(&slice(&["ep-node-a"]));
        let names = |eps: &[EndpointStatus]| -> Vec<String> {
            eps.iter()
                .filter_map(|e| e.node_name.as_deref().map(str::to_owned))
                .collect()
        };
        assert_eq!(names(&a), ["ep-node-a", "ep-node-b"]);
        assert_eq!(names(&b), ["ep-node-a"]);
        let (Some(first), Some(again)) = (&a[0].node_name, &b[0].node_name) else {
            panic!("both endpoints name their node");
        };
        assert!(Arc::ptr_eq(first, again), "one allocation for the node");
        assert_eq!(service_of_slice(&slice(&[])).as_deref(), Some("shop/web"));
    }
}
