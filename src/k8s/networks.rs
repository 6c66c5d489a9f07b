//! The cluster's own networks read from the API objects: a Node's InternalIP/ExternalIP
//! addresses and `spec.podCIDRs`, a ServiceCIDR's `spec.cidrs` (for
//! [`crate::config::overlap::find_overlaps`]). The controller's watch, `ferrolb plan` and
//! `ferrolb doctor` read them through these functions alike. A malformed entry is skipped and
//! named in the returned list (the caller logs it); it never fails the object.

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::networking::v1::ServiceCIDR;

use crate::config::overlap::{CidrSource, NodeAddress, NodeAddressKind, NodeNetworks, ServiceCidr};

/// A node's own addresses and Pod CIDRs, and what was skipped as malformed.
pub fn node_networks(node: &Node) -> (NodeNetworks, Vec<String>) {
    let name = node.metadata.name.clone().unwrap_or_default();
    let mut skipped = Vec::new();
    let mut addresses = Vec::new();
    let listed = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten();
    for (i, a) in listed.enumerate() {
        let kind = match a.type_.as_str() {
            "InternalIP" => NodeAddressKind::InternalIP,
            "ExternalIP" => NodeAddressKind::ExternalIP,
            _ => continue,
        };
        match a.address.trim().parse::<IpAddr>() {
            Ok(ip) => addresses.push(NodeAddress {
                node: name.clone(),
                kind,
                ip,
            }),
            Err(_) => skipped.push(format!(
                "Node {name}: status.addresses[{i}] ({kind}) {:?} is not an IP address; skipped",
                a.address
            )),
        }
    }
    let mut pod_cidrs: Vec<IpNet> = Vec::new();
    let spec = node.spec.as_ref();
    let listed = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
    // `spec.podCIDR` is the first of `spec.podCIDRs`; read it only when the list is absent.
    let listed = if listed.is_empty() {
        spec.and_then(|s| s.pod_cidr.clone()).into_iter().collect()
    } else {
        listed
    };
    for (i, text) in listed.iter().enumerate() {
        let field = || format!("Node {name}: spec.podCIDRs[{i}]");
        pod_cidrs.extend(cidr(text, field, &mut skipped));
    }
    (
        NodeNetworks {
            name,
            addresses,
            pod_cidrs,
        },
        skipped,
    )
}

/// A ServiceCIDR object's ranges, and what was skipped as malformed.
pub fn service_cidrs(object: &ServiceCIDR) -> (Vec<ServiceCidr>, Vec<String>) {
    let name = object.metadata.name.clone().unwrap_or_default();
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let listed = object
        .spec
        .as_ref()
        .and_then(|s| s.cidrs.as_ref())
        .into_iter()
        .flatten();
    for (i, text) in listed.enumerate() {
        let field = || format!("ServiceCIDR {name}: spec.cidrs[{i}]");
        out.extend(cidr(text, field, &mut skipped).map(|cidr| ServiceCidr {
            source: CidrSource::Object(name.clone()),
            cidr,
        }));
    }
    (out, skipped)
}

/// `text` as a CIDR (host bits masked off), or `None` with a line naming `field` in `skipped`.
fn cidr(text: &str, field: impl Fn() -> String, skipped: &mut Vec<String>) -> Option<IpNet> {
    match text.trim().parse::<IpNet>() {
        Ok(cidr) => Some(cidr.trunc()),
        Err(_) => {
            skipped.push(format!("{} {text:?} is not a CIDR; skipped", field()));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_node_gives_its_internal_and_external_addresses_and_pod_cidrs_skipping_bad_ones() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n1"},
            "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:244::/64x"]},
            "status": {"addresses": [
                {"type": "Hostname", "address": "n1"},
                {"type": "InternalIP", "address": "192.0.2.5"},
                {"type": "ExternalIP", "address": "2001:db8::5"},
                {"type": "InternalIP", "address": "not-an-ip"},
            ]},
        }))
        .unwrap();
        let (nets, skipped) = node_networks(&node);
        assert_eq!(nets.name, "n1");
        let got: Vec<(NodeAddressKind, String)> = nets
            .addresses
            .iter()
            .map(|a| (a.kind, a.ip.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                (NodeAddressKind::InternalIP, "192.0.2.5".to_owned()),
                (NodeAddressKind::ExternalIP, "2001:db8::5".to_owned())
            ]
        );
        assert_eq!(nets.pod_cidrs, ["10.244.1.0/24".parse::<IpNet>().unwrap()]);
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(
            skipped[0].contains("Node n1: status.addresses[3]") && skipped[0].contains("not-an-ip")
        );
        assert!(skipped[1].contains("spec.podCIDRs[1]"));
    }

    #[test]
    fn a_node_with_only_the_old_single_pod_cidr_field_still_gives_it() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "old"}, "spec": {"podCIDR": "10.244.7.9/24"},
        }))
        .unwrap();
        let (nets, skipped) = node_networks(&node);
        assert!(skipped.is_empty());
        assert_eq!(nets.pod_cidrs, ["10.244.7.0/24".parse::<IpNet>().unwrap()]);
        assert!(nets.addresses.is_empty());
    }

    #[test]
    fn a_service_cidr_gives_each_range_under_its_name() {
        let object: ServiceCIDR = serde_json::from_value(json!({
            "metadata": {"name": "kubernetes"},
            "spec": {"cidrs": ["10.96.0.0/12", "fd00::/108", "bogus"]},
        }))
        .unwrap();
        let (cidrs, skipped) = service_cidrs(&object);
        assert_eq!(cidrs.len(), 2);
        assert_eq!(cidrs[0].source, CidrSource::Object("kubernetes".into()));
        assert_eq!(cidrs[1].cidr.to_string(), "fd00::/108");
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].contains("ServiceCIDR kubernetes: spec.cidrs[2] \"bogus\""));
    }
}
