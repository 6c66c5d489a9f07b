//! What the speaker's watches decode: each kind's fields that a projection reads, and nothing
//! else. serde skips every other field of the API's JSON without allocating for it, so the
//! managed fields, annotations (a `last-applied-configuration` copy of the whole object), ports,
//! images and the rest never reach the heap: each watch event allocates what the speaker keeps
//! and little else.
//!
//! Each slim form converts into the API type with only those fields set, and the projections
//! read that with the same `k8s::{service,endpoints,node}` functions as the controller reads
//! whole objects (`cache_tests.rs` checks that a slim decode projects as the whole object does).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, Service, ServiceSpec, ServiceStatus,
    Taint,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

/// The metadata a projection or the watch reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

impl From<Meta> for ObjectMeta {
    fn from(m: Meta) -> Self {
        ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            resource_version: m.resource_version,
            labels: m.labels,
            ..ObjectMeta::default()
        }
    }
}

/// Reads only [`Meta`]'s fields into an `ObjectMeta`.
pub fn slim_meta<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    Meta::deserialize(d).map(ObjectMeta::from)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SlimServiceSpec {
    #[serde(rename = "type")]
    type_: Option<String>,
    load_balancer_class: Option<String>,
    external_traffic_policy: Option<String>,
}

/// A Service: its metadata, type, class, traffic policy and status.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SlimService {
    metadata: Meta,
    spec: Option<SlimServiceSpec>,
    status: Option<ServiceStatus>,
}

impl From<SlimService> for Service {
    fn from(s: SlimService) -> Self {
        Service {
            metadata: s.metadata.into(),
            spec: s.spec.map(|spec| ServiceSpec {
                type_: spec.type_,
                load_balancer_class: spec.load_balancer_class,
                external_traffic_policy: spec.external_traffic_policy,
                ..ServiceSpec::default()
            }),
            status: s.status,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SlimEndpoint {
    node_name: Option<String>,
    conditions: Option<EndpointConditions>,
}

/// An EndpointSlice: its metadata and each endpoint's node and conditions.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SlimSlice {
    metadata: Meta,
    endpoints: Option<Vec<SlimEndpoint>>,
}

impl From<SlimSlice> for EndpointSlice {
    fn from(s: SlimSlice) -> Self {
        EndpointSlice {
            metadata: s.metadata.into(),
            endpoints: s
                .endpoints
                .unwrap_or_default()
                .into_iter()
                .map(|e| Endpoint {
                    node_name: e.node_name,
                    conditions: e.conditions,
                    ..Endpoint::default()
                })
                .collect(),
            ..EndpointSlice::default()
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SlimNodeStatus {
    conditions: Option<Vec<NodeCondition>>,
    addresses: Option<Vec<NodeAddress>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SlimNodeSpec {
    taints: Option<Vec<Taint>>,
}

/// A Node: its metadata, taints, conditions and addresses.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SlimNode {
    metadata: Meta,
    spec: Option<SlimNodeSpec>,
    status: Option<SlimNodeStatus>,
}

impl From<SlimNode> for Node {
    fn from(n: SlimNode) -> Self {
        Node {
            metadata: n.metadata.into(),
            spec: n.spec.map(|s| NodeSpec {
                taints: s.taints,
                ..NodeSpec::default()
            }),
            status: n.status.map(|s| NodeStatus {
                conditions: s.conditions,
                addresses: s.addresses,
                ..NodeStatus::default()
            }),
        }
    }
}
