//! End-to-end: pools overlapping the cluster's own networks, against a real kube-apiserver
//! (skipped, with a message, when `KUBEBUILDER_ASSETS` is unset). The API server creates the
//! default ServiceCIDR `kubernetes` from its `--service-cluster-ip-range` (10.0.0.0/16 here); a
//! Node's InternalIP and another Node's Pod CIDR lie in the pool too. The controller warns on the
//! pool naming each, says so in its ConfigurationState, never hands out the node's address,
//! `ferrolb doctor` names each overlap with the fix, and once the pool is moved clear of them the
//! condition clears and the doctor is satisfied.

mod e2e;

use std::path::Path;

use k8s_openapi::api::core::v1::{Node, Service};
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use e2e::api::{self, create_service, events_about, lb_service, wait_for_ips};
use e2e::wait::{PATIENCE, wait_for};
use e2e::{APPS, ControlPlane, Controller, ControllerOptions, NAMESPACE};

fn pool(addresses: &str) -> String {
    format!(
        "apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: lan, namespace: {NAMESPACE}}}
spec:
  addresses: [{addresses}]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: everywhere, namespace: {NAMESPACE}}}
"
    )
}

fn kubectl_apply(plane: &ControlPlane, yaml: &str) {
    let path = plane.dir().join(format!("apply-{}.yaml", yaml.len()));
    std::fs::write(&path, yaml).unwrap();
    plane.kubectl(&["apply", "-f", &path.display().to_string()]);
}

/// A Node as a kubelet registers it: `spec.podCIDRs` on create, its addresses through the status
/// subresource.
async fn create_node(client: &kube::Client, name: &str, internal_ip: &str, pod_cidr: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name}, "spec": {"podCIDRs": [pod_cidr]},
    }))
    .unwrap();
    nodes
        .create(&PostParams::default(), &node)
        .await
        .unwrap_or_else(|e| panic!("create Node {name}: {e}"));
    let status = json!({"status": {
        "addresses": [{"type": "InternalIP", "address": internal_ip},
                      {"type": "Hostname", "address": name}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap_or_else(|e| panic!("set Node {name} status: {e}"));
}

/// The overlap condition of the controller's ConfigurationState, once it is written.
async fn overlap_condition(states: &Api<DynamicObject>) -> Option<(Value, Value)> {
    let state = states.get_opt("controller").await.ok()??;
    let conditions = state.data["status"]["conditions"].as_array()?.clone();
    let condition = conditions
        .into_iter()
        .find(|c| c["type"] == "poolOverlapsClusterNetworks")?;
    Some((state.data["status"]["result"].clone(), condition))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_overlapping_service_cidrs_node_addresses_and_pod_cidrs_are_warned_and_fixed() {
    let test = "pools_overlapping_service_cidrs_node_addresses_and_pod_cidrs_are_warned_and_fixed";
    let Some(plane) = ControlPlane::start(test).await else {
        return;
    };
    let client = plane.client().await;
    for ns in [NAMESPACE, APPS] {
        api::create_namespace(&client, ns).await;
    }
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/ferrolb/crds");
    plane.kubectl(&["apply", "-f", &crds.display().to_string()]);
    plane.wait_crds_established();
    // The API server's default ServiceCIDR, made from its --service-cluster-ip-range.
    wait_for("the default ServiceCIDR", PATIENCE, || {
        let out = plane.kubectl(&[
            "get",
            "servicecidr",
            "kubernetes",
            "-o",
            "jsonpath={.spec.cidrs[0]}",
            "--ignore-not-found",
        ]);
        async move { (out.trim() == "10.0.0.0/16").then_some(()) }
    })
    .await;
    create_node(&client, "node-1", "192.0.2.0", "10.244.1.0/24").await;
    create_node(&client, "node-2", "172.16.0.2", "198.51.100.0/24").await;
    // The node's address first, so the lowest free address is not it; a range in the service
    // range; one in node-2's Pod CIDR.
    kubectl_apply(
        &plane,
        &pool("192.0.2.0/30, 10.0.255.0/30, 198.51.100.16/30"),
    );

    let _controller = Controller::start_ready(
        &plane,
        &ControllerOptions::new(NAMESPACE, "ctrl-overlap").crds(),
    )
    .await;
    let services: Api<Service> = Api::namespaced(client.clone(), APPS);
    create_service(&services, &lb_service("web", json!({}))).await;
    assert_eq!(wait_for_ips(&services, "web").await, ["192.0.2.1"]);
    // Asked for by name, the node's address is refused with the node named.
    let wants = lb_service(
        "wants-node",
        json!({"metadata": {"annotations": {"metallb.io/loadBalancerIPs": "192.0.2.0"}}}),
    );
    create_service(&services, &wants).await;
    let refused = wait_for("AllocationFailed on wants-node", PATIENCE, || {
        let client = client.clone();
        async move {
            let events = events_about(&client, APPS, "Service", "wants-node").await;
            events.into_iter().find(|e| e.reason == "AllocationFailed")
        }
    })
    .await;
    assert!(
        refused
            .note
            .contains("192.0.2.0 is the InternalIP of node node-1"),
        "{refused:?}"
    );
    let shown = services.get("wants-node").await.unwrap();
    assert!(api::ingress_ips(&shown).is_empty(), "{shown:?}");

    // A Warning on the pool for each overlap, naming it and the range.
    let expected = [
        "ServiceCIDR kubernetes (10.0.0.0/16) at 10.0.255.0-10.0.255.3",
        "192.0.2.0, the InternalIP of node node-1",
        "Pod CIDR 198.51.100.0/24 of node node-2 at 198.51.100.16-198.51.100.19",
    ];
    let warnings = wait_for("a Warning per overlap on the pool", PATIENCE, || {
        let client = client.clone();
        async move {
            let events = events_about(&client, NAMESPACE, "IPAddressPool", "lan").await;
            let overlaps: Vec<_> = events
                .into_iter()
                .filter(|e| e.reason == "ClusterNetworkOverlap")
                .collect();
            (overlaps.len() >= expected.len()).then_some(overlaps)
        }
    })
    .await;
    assert_eq!(warnings.len(), expected.len(), "{warnings:#?}");
    for want in expected {
        assert!(
            warnings
                .iter()
                .any(|e| e.type_ == "Warning" && e.note.contains(want)),
            "{want}: {warnings:#?}"
        );
    }

    // The ConfigurationState: still Valid, with the overlap condition naming them.
    let states: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        NAMESPACE,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("metallb.io", "v1beta1", "ConfigurationState"),
            "configurationstates",
        ),
    );
    let (result, condition) = wait_for("the overlap condition", PATIENCE, || {
        let states = states.clone();
        async move {
            overlap_condition(&states)
                .await
                .filter(|(_, c)| c["status"] == "True")
        }
    })
    .await;
    assert_eq!(result, "Valid");
    assert_eq!(condition["reason"], "PoolOverlap");
    let message = condition["message"].as_str().unwrap_or("");
    for want in expected {
        assert!(message.contains(want), "{want}: {message}");
    }

    // The doctor names every overlap with the fix (warnings: it still exits 0).
    let (code, report) = e2e::ferrolb::doctor(&plane, NAMESPACE);
    assert_eq!(code, Some(0), "{report}");
    for want in expected {
        assert!(
            report
                .lines()
                .any(|l| l.starts_with("WARNING [overlap]") && l.contains(want)),
            "{want}: {report}"
        );
    }
    assert_eq!(
        report
            .matches("fix: change the addresses of pool \"lan\" so they leave out")
            .count(),
        expected.len(),
        "{report}"
    );

    // The fix: the pool moved clear of every network.
    kubectl_apply(&plane, &pool("203.0.113.0/29"));
    wait_for("the overlap condition to clear", PATIENCE, || {
        let states = states.clone();
        async move {
            overlap_condition(&states).await.filter(|(r, c)| {
                r == "Valid" && c["status"] == "False" && c["reason"] == "NoOverlap"
            })
        }
    })
    .await;
    assert_eq!(wait_for_ips(&services, "web").await.len(), 1);
    wait_for("web to move into the new pool", PATIENCE, || {
        let services = services.clone();
        async move {
            let web = services.get("web").await.ok()?;
            let ips = api::ingress_ips(&web);
            (ips.len() == 1 && ips[0].starts_with("203.0.113.")).then_some(())
        }
    })
    .await;
    let (code, report) = e2e::ferrolb::doctor(&plane, NAMESPACE);
    assert_eq!(code, Some(0), "{report}");
    assert!(!report.contains("[overlap]"), "{report}");
    assert_eq!(report, "no problems found\n");
}
