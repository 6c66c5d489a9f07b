//! `ferrolb speaker` in Kubernetes mode, end to end: a real kube-apiserver + etcd (found through
//! `KUBEBUILDER_ASSETS`) in a network namespace of its own on the test LAN's bridge, the real
//! `ferrolb controller` allocating, and three real `ferrolb speaker` nodes in their namespaces,
//! each talking to the API server over the LAN and gossiping with the others. A client namespace
//! on the same bridge checks what a user on the LAN sees.
//!
//! There is no kubelet and no kube-proxy, so the test plays their parts: it creates the Node
//! objects (InternalIP, Ready), a Ready speaker Pod on each node that runs a speaker (the
//! speakers count those), and the EndpointSlices; and
//! on every node it puts each EXTERNAL-IP on `lo` with `arp_ignore=1`/`arp_announce=2` on eth0
//! (what kube-proxy's IPVS mode does), so the kernel accepts traffic for the IP but never answers
//! ARP for it: only ferrolb does. A tiny TCP server on every node answers with its node name, so
//! a connection from the client to EXTERNAL-IP:80 shows which node the LAN sends the traffic to.
//!
//! The cluster is built by `tests/e2e/speaker_lan.rs`, shared with `tests/e2e_speaker_faults.rs`.
//!
//! Skipped, with a message, when `KUBEBUILDER_ASSETS` is unset (even in CI). With it set, missing
//! root or tools fail the test when `CI` is set, and skip it otherwise.

mod e2e;
mod netns;
#[path = "e2e/speaker_lan.rs"]
mod speaker_lan;

use k8s_openapi::api::core::v1::Service;
use kube::api::{DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};
use serde_json::json;

use e2e::api::{create_service, delete_service, events_about, lb_service, wait_for_ips};
use e2e::wait::{PATIENCE, wait_for as wait_until};
use e2e::{APPS, NAMESPACE};
use netns::wait_for;
use speaker_lan::{
    SETTLE, accept_on_every_node, assert_nobody_answers, assert_serves, ranked, set_endpoints,
    setup,
};

/// Waits until the ServiceL2Status objects for `apps/web` are exactly one, written by `node`
/// (its label and its status agree); returns (name, node) of every object then.
async fn wait_for_l2_status(client: &Client, node: &str) -> Vec<(String, String)> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", "v1beta1", "ServiceL2Status"),
        "servicel2statuses",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &resource);
    let what = format!("the ServiceL2Status of web on {node}");
    wait_until(&what, PATIENCE, || {
        let api = api.clone();
        async move {
            let list = api.list(&ListParams::default()).await.ok()?;
            let seen: Vec<(String, String, serde_json::Value)> = list
                .items
                .into_iter()
                .filter(|o| {
                    o.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("metallb.io/service-name"))
                        .map(String::as_str)
                        == Some("web")
                })
                .map(|o| {
                    let labels = o.metadata.labels.clone().unwrap_or_default();
                    (
                        o.metadata.name.clone().unwrap_or_default(),
                        labels.get("metallb.io/node").cloned().unwrap_or_default(),
                        o.data.get("status").cloned().unwrap_or_default(),
                    )
                })
                .collect();
            let done = seen.len() == 1
                && seen[0].1 == node
                && seen[0].2["node"] == node
                && seen[0].2["serviceName"] == "web"
                && seen[0].2["serviceNamespace"] == APPS;
            done.then(|| seen.into_iter().map(|(n, node, _)| (n, node)).collect())
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_created_through_the_api_is_reachable_at_its_external_ip() {
    let test = "service_created_through_the_api_is_reachable_at_its_external_ip";
    let Some(mut cluster) = setup(test).await else {
        return;
    };
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), APPS);
    create_service(&services, &lb_service("web", json!({}))).await;
    let ips = wait_for_ips(&services, "web").await;
    assert_eq!(ips, ["192.0.2.200"], "lowest address of the pool");
    let ip = ips[0].as_str();
    accept_on_every_node(&cluster.lan, ip);

    // No endpoint yet: nobody announces it (MetalLB's rule). A silence proves that only once the
    // speakers have seen the Service: each reports why nobody announces it. One ready endpoint,
    // anywhere (the policy is Cluster): its owner answers.
    let cause = format!(
        "ferrolb_speaker_unannounced{{reason=\"no_serving_endpoint\",service=\"{APPS}/web\"}}"
    );
    for i in 0..3 {
        let lan = &cluster.lan;
        let decided = wait_for(SETTLE, || {
            (lan.metric(i, &cause) == Some(1.0)).then_some(())
        });
        assert!(
            decided.is_some(),
            "speaker {} never reported {cause}",
            lan.nodes[i].name
        );
    }
    assert_nobody_answers(&cluster.lan, ip);
    let somewhere = cluster.lan.nodes[2].name.clone();
    set_endpoints(&cluster.client, "web", &[(&somewhere, true)]).await;
    let order = ranked(&cluster.lan, ip, &[0, 1, 2]);
    let owner = order[0];
    assert_serves(&cluster.lan, ip, owner);

    // The new announcer says so on the Service, and nobody else does.
    let owner_name = cluster.lan.nodes[owner].name.clone();
    let client = cluster.client.clone();
    let assigned = wait_until("a nodeAssigned event on web", PATIENCE, || {
        let client = client.clone();
        async move {
            let events = events_about(&client, APPS, "Service", "web").await;
            let assigned: Vec<_> = events
                .into_iter()
                .filter(|e| e.reason == "nodeAssigned")
                .collect();
            (!assigned.is_empty()).then_some(assigned)
        }
    })
    .await;
    for event in &assigned {
        assert!(
            event.note.contains(&owner_name) && event.reporting_instance == owner_name,
            "nodeAssigned from a node other than {owner_name}: {event:?}"
        );
    }

    // `kubectl get servicel2statuses` names the announcer: one object, written by the owner.
    let statuses = wait_for_l2_status(&client, &owner_name).await;
    assert_eq!(statuses.len(), 1, "{statuses:?}");

    // The owner's speaker crashes: the next in the ranking takes the IP over, and its
    // gratuitous ARP re-points the client, whose connections land there.
    cluster.lan.signal(owner, "KILL");
    let next = order[1];
    assert_serves(&cluster.lan, ip, next);
    cluster.controller.assert_running();

    // The ServiceL2Status follows: the dead node's object is deleted by the new owner, whose
    // own object is the only one left.
    let next_name = cluster.lan.nodes[next].name.clone();
    let statuses = wait_for_l2_status(&client, &next_name).await;
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    let shown = cluster
        .plane
        .kubectl(&["get", "servicel2statuses", "-n", NAMESPACE, "-o", "wide"]);
    eprintln!("kubectl get servicel2statuses -n {NAMESPACE}:\n{shown}");
    assert!(
        shown.contains(&next_name) && !shown.contains(&owner_name),
        "{shown}"
    );

    // Deleted through the API: the IP is released and nobody answers for it any more.
    delete_service(&services, "web").await;
    assert_nobody_answers(&cluster.lan, ip);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_traffic_policy_is_answered_only_from_nodes_with_a_ready_endpoint() {
    let test = "local_traffic_policy_is_answered_only_from_nodes_with_a_ready_endpoint";
    let Some(cluster) = setup(test).await else {
        return;
    };
    let lan = &cluster.lan;
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), APPS);
    let local = json!({ "spec": { "externalTrafficPolicy": "Local" } });
    create_service(&services, &lb_service("local", local)).await;
    let ips = wait_for_ips(&services, "local").await;
    let ip = ips[0].as_str();
    accept_on_every_node(lan, ip);
    let order = ranked(lan, ip, &[0, 1, 2]);
    let name = |i: usize| lan.nodes[order[i]].name.as_str();

    // Ready only on the ranking's second node; the first holds an endpoint that is not ready,
    // so "any endpoint" or "ranking over every node" would both pick the wrong node.
    set_endpoints(
        &cluster.client,
        "local",
        &[(name(0), false), (name(1), true)],
    )
    .await;
    assert_serves(lan, ip, order[1]);

    // The ready endpoint moves to the third node: so does the IP, and the client follows.
    set_endpoints(
        &cluster.client,
        "local",
        &[(name(0), false), (name(1), false), (name(2), true)],
    )
    .await;
    assert_serves(lan, ip, order[2]);

    // Two nodes with a ready endpoint: the ranking decides between them.
    set_endpoints(
        &cluster.client,
        "local",
        &[(name(0), true), (name(2), true)],
    )
    .await;
    assert_serves(lan, ip, order[0]);

    // No ready endpoint anywhere: no node may attract the traffic.
    set_endpoints(
        &cluster.client,
        "local",
        &[(name(0), false), (name(2), false)],
    )
    .await;
    assert_nobody_answers(lan, ip);
}
