//! What the speaker reads from EndpointSlices: which nodes hold endpoints of which Service, and
//! in what condition (for `externalTrafficPolicy: Local`).

use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::election::EndpointStatus;

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
                node_name: ep.node_name.clone(),
                ready: cond.and_then(|c| c.ready),
                serving: cond.and_then(|c| c.serving),
            }
        })
        .collect()
}
