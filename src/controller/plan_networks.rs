//! `ferrolb plan --nodes`: the cluster's own networks read from manifests, as
//! `kubectl get nodes,servicecidrs -o yaml` prints them (Nodes and `networking.k8s.io/v1`
//! ServiceCIDRs, as documents or in Lists). Each object is read through the same
//! `k8s::networks` functions the live controller's watch uses, so `plan` holds the same node
//! addresses and warns about the same overlaps.

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeSpec, NodeStatus};
use k8s_openapi::api::networking::v1::{ServiceCIDR, ServiceCIDRSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::plan::{PlanError, read_docs};
use crate::config::overlap::ClusterNetworks;
use crate::k8s::networks::{node_networks, service_cidrs};

/// One document: only the fields the networks are read from (the rest is skipped).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc {
    kind: Option<String>,
    #[serde(default)]
    metadata: ObjectMeta,
    spec: Option<Spec>,
    status: Option<Status>,
    items: Option<Vec<Doc>>,
}

#[derive(serde::Deserialize)]
struct Spec {
    #[serde(rename = "podCIDR")]
    pod_cidr: Option<String>,
    #[serde(rename = "podCIDRs")]
    pod_cidrs: Option<Vec<String>>,
    cidrs: Option<Vec<String>>,
}

#[derive(serde::Deserialize)]
struct Status {
    addresses: Option<Vec<NodeAddress>>,
}

fn node(doc: Doc) -> Node {
    Node {
        metadata: doc.metadata,
        spec: doc.spec.map(|s| NodeSpec {
            pod_cidr: s.pod_cidr,
            pod_cidrs: s.pod_cidrs,
            ..NodeSpec::default()
        }),
        status: doc.status.map(|s| NodeStatus {
            addresses: s.addresses,
            ..NodeStatus::default()
        }),
    }
}

fn service_cidr(doc: Doc) -> ServiceCIDR {
    ServiceCIDR {
        metadata: doc.metadata,
        spec: doc.spec.map(|s| ServiceCIDRSpec { cidrs: s.cidrs }),
        status: None,
    }
}

/// Adds the Nodes and ServiceCIDRs in `text` to `networks`; malformed addresses and CIDRs are
/// skipped and returned, one line each. `source_name` names the input in errors.
pub fn parse_networks(
    text: &str,
    source_name: &str,
    networks: &mut ClusterNetworks,
) -> Result<Vec<String>, PlanError> {
    let docs: Vec<Option<Doc>> = read_docs(text, source_name)?;
    let mut skipped = Vec::new();
    for (index, doc) in docs.into_iter().enumerate() {
        let Some(mut doc) = doc else { continue };
        let doc_err = |message: String| PlanError::Document {
            source_name: source_name.to_owned(),
            document: index + 1,
            message,
        };
        let kind = doc.kind.take();
        let items: Vec<(Option<String>, Doc)> = match kind.as_deref() {
            Some("List" | "NodeList" | "ServiceCIDRList") => {
                let list_kind = match kind.as_deref() {
                    Some("NodeList") => Some("Node".to_owned()),
                    Some("ServiceCIDRList") => Some("ServiceCIDR".to_owned()),
                    _ => None,
                };
                let items = doc.items.take().unwrap_or_default();
                items
                    .into_iter()
                    .map(|mut item| (item.kind.take().or(list_kind.clone()), item))
                    .collect()
            }
            _ => vec![(kind, doc)],
        };
        for (i, (kind, item)) in items.into_iter().enumerate() {
            match kind.as_deref() {
                Some("Node") => {
                    let (nets, bad) = node_networks(&node(item));
                    skipped.extend(bad);
                    networks.nodes.push(nets);
                }
                Some("ServiceCIDR") => {
                    let (cidrs, bad) = service_cidrs(&service_cidr(item));
                    skipped.extend(bad);
                    networks.service_cidrs.extend(cidrs);
                }
                Some(other) => {
                    return Err(doc_err(format!(
                        "item {i}: kind {other:?} is not a Node, a ServiceCIDR or a List of them"
                    )));
                }
                None => return Err(doc_err(format!("item {i}: kind is missing"))),
            }
        }
    }
    Ok(skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_and_service_cidrs_are_read_from_documents_and_lists() {
        let text = "
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: {name: n1, labels: {a: b}}
  spec: {podCIDRs: [10.244.1.0/24, bad]}
  status:
    addresses:
    - {type: InternalIP, address: 192.0.2.1}
    - {type: Hostname, address: n1}
    nodeInfo: {kubeletVersion: v1.33.0}
---
apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata: {name: kubernetes}
spec: {cidrs: [10.96.0.0/12]}
status: {conditions: []}
";
        let mut networks = ClusterNetworks::default();
        let skipped = parse_networks(text, "nodes.yaml", &mut networks).unwrap();
        assert_eq!(networks.nodes.len(), 1);
        assert_eq!(networks.nodes[0].addresses[0].ip.to_string(), "192.0.2.1");
        assert_eq!(networks.nodes[0].pod_cidrs.len(), 1);
        assert_eq!(networks.service_cidrs[0].cidr.to_string(), "10.96.0.0/12");
        assert_eq!(skipped.len(), 1);
        assert!(
            skipped[0].contains("Node n1: spec.podCIDRs[1]"),
            "{skipped:?}"
        );
        let err = parse_networks(
            "kind: Service\nmetadata: {name: x}\n",
            "x.yaml",
            &mut networks,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("x.yaml: document 1: item 0: kind \"Service\""),
            "{err}"
        );
    }
}
