//! What the speaker reads from EndpointSlices: which nodes hold endpoints of which Service, and
//! in what condition (for `externalTrafficPolicy: Local`).

use std::collections::BTreeMap;

use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::election::EndpointStatus;

/// Label EndpointSlices carry naming their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Endpoints of every Service, keyed `namespace/name`.
pub fn endpoints_by_service(slices: &[EndpointSlice]) -> BTreeMap<String, Vec<EndpointStatus>> {
    let mut map: BTreeMap<String, Vec<EndpointStatus>> = BTreeMap::new();
    for slice in slices {
        let Some(svc) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        let ns = slice.metadata.namespace.as_deref().unwrap_or("default");
        let entry = map.entry(format!("{ns}/{svc}")).or_default();
        for ep in &slice.endpoints {
            let cond = ep.conditions.as_ref();
            entry.push(EndpointStatus {
                node_name: ep.node_name.clone(),
                ready: cond.and_then(|c| c.ready),
                serving: cond.and_then(|c| c.serving),
            });
        }
    }
    map
}
