//! Nodes' own addresses are never handed out (see `node_holds.rs`).

use serde_json::json;

use super::super::tests::{
    CONFIG, config, desired, ip, ready_core, reasons, service, view, with_status,
};
use super::super::{Core, Reason};
use crate::config::overlap::{NodeAddress, NodeAddressKind};
use crate::controller::cached::CachedService;

fn internal(node: &str, address: &str) -> NodeAddress {
    NodeAddress {
        node: node.into(),
        kind: NodeAddressKind::InternalIP,
        ip: ip(address),
    }
}

fn lb(name: &str) -> CachedService {
    view(&service(name, json!({})))
}

#[test]
fn a_slash_30_pool_with_a_node_address_in_it_gives_out_the_other_three() {
    let mut core = ready_core();
    core.set_node_addresses(vec![internal("n1", "192.0.2.1")]);
    let mut given = Vec::new();
    for name in ["a", "b", "c"] {
        let d = core.reconcile(&lb(name));
        given.extend(desired(&d).ips.clone());
    }
    assert_eq!(given, [ip("192.0.2.0"), ip("192.0.2.2"), ip("192.0.2.3")]);
    let d = core.reconcile(&lb("d"));
    assert_eq!(reasons(&d), [Reason::AllocationFailed]);
    // The node's address is not one of ours: a re-list sweep never frees it.
    assert!(core.assigned().all(|k| !k.as_str().starts_with('#')));
}

#[test]
fn a_requested_node_address_is_refused_naming_the_node() {
    let mut core = ready_core();
    core.set_node_addresses(vec![NodeAddress {
        node: "edge-1".into(),
        kind: NodeAddressKind::ExternalIP,
        ip: ip("198.51.100.11"),
    }]);
    for requested in [
        json!({"spec": {"loadBalancerIP": "198.51.100.11"}}),
        json!({"metadata": {"annotations": {"metallb.io/loadBalancerIPs": "198.51.100.11"}}}),
    ] {
        let d = core.reconcile(&view(&service("wants-node", requested)));
        assert_eq!(reasons(&d), [Reason::AllocationFailed]);
        let message = &d.events[0].message;
        assert!(
            message.contains("198.51.100.11 is the ExternalIP of node edge-1")
                && message.contains("never handed out"),
            "{message}"
        );
        assert!(desired(&d).ips.is_empty());
    }
    // Another address of the same pool is still given.
    let d = core.reconcile(&view(&service(
        "wants-other",
        json!({"spec": {"loadBalancerIP": "198.51.100.12"}}),
    )));
    assert_eq!(desired(&d).ips, [ip("198.51.100.12")]);
}

#[test]
fn node_holds_follow_the_nodes_and_the_config_and_wait_for_a_service_showing_one() {
    // A Service of ours already shows what is now a node's address: it keeps it.
    let shows = view(&with_status("old", &["192.0.2.0"], json!({})));
    let mut core = Core::new(None);
    core.set_config(&config(CONFIG)).unwrap();
    core.set_node_addresses(vec![
        internal("n1", "192.0.2.0"),
        internal("n2", "192.0.2.2"),
    ]);
    core.rebuild([shows.clone()]).unwrap();
    assert_eq!(desired(&core.reconcile(&shows)).ips, [ip("192.0.2.0")]);
    assert_eq!(desired(&core.reconcile(&lb("a"))).ips, [ip("192.0.2.1")]);
    // Once it lets go, the node's address is held: the next Service skips it.
    core.delete(&shows.key());
    assert_eq!(desired(&core.reconcile(&lb("b"))).ips, [ip("192.0.2.3")]);
    assert_eq!(
        reasons(&core.reconcile(&lb("c"))),
        [Reason::AllocationFailed]
    );
    // n2 is gone: its address is free again, kept free across a config reload.
    core.set_node_addresses(vec![internal("n1", "192.0.2.0")]);
    core.set_config(&config(CONFIG)).unwrap();
    assert_eq!(desired(&core.reconcile(&lb("c"))).ips, [ip("192.0.2.2")]);
    let default = core
        .pool_stats()
        .into_iter()
        .find(|s| s.pool == "default")
        .unwrap();
    assert_eq!(default.in_use, 4, "{default:?}");
}
