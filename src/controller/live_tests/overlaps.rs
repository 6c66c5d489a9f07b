//! The cluster's networks in the live edge: nothing is allocated before the Nodes are listed,
//! a node's address is skipped, and each overlap is recorded as a Warning on the object that
//! defines the pool once per change.

use kube::Resource;

use super::*;
use crate::config::overlap::{
    ClusterNetworks, NodeAddress, NodeAddressKind, NodeNetworks, parse_service_range,
};

fn networks(node_ip: &str) -> ClusterNetworks {
    ClusterNetworks {
        // Overlaps "reserved" (198.51.100.10-12).
        service_cidrs: parse_service_range("198.51.100.0/24").unwrap(),
        nodes: vec![NodeNetworks {
            name: "n1".into(),
            addresses: vec![NodeAddress {
                node: "n1".into(),
                kind: NodeAddressKind::InternalIP,
                ip: node_ip.parse().unwrap(),
            }],
            pod_cidrs: Vec::new(),
        }],
    }
}

/// Expects a Warning `ClusterNetworkOverlap` on the ConfigMap; returns its note.
async fn expect_overlap_event(h: &mut Harness) -> String {
    let (_, body, send) = h
        .expect(
            Method::POST,
            "/apis/events.k8s.io/v1/namespaces/ferrolb-system/events",
        )
        .await;
    assert_eq!(body["reason"], "ClusterNetworkOverlap", "{body}");
    assert_eq!(body["type"], "Warning", "{body}");
    assert_eq!(body["regarding"]["kind"], "ConfigMap", "{body}");
    assert_eq!(body["regarding"]["name"], "config", "{body}");
    ok(send, &body);
    body["note"].as_str().unwrap_or("").to_owned()
}

/// Records the overlap Warnings due, on a task of its own (its requests are answered here).
fn spawn_publish(h: &Harness) -> tokio::task::JoinHandle<()> {
    let ctx = h.ctx.clone();
    tokio::spawn(async move { ctx.publish_overlaps().await })
}

/// Records the overlap Warnings due, expecting none.
async fn publish(h: &Harness) {
    tokio::time::timeout(Duration::from_secs(10), spawn_publish(h))
        .await
        .expect("publishing finished without further requests")
        .unwrap();
}

#[tokio::test]
async fn nodes_are_listed_before_any_allocation_and_each_overlap_is_recorded_once_per_change() {
    let mut h = harness();
    h.ctx.await_networks();
    let cm = configmap(CONFIG);
    assert_eq!(h.ctx.load_config(Some(&cm)), ConfigOutcome::Loaded);
    h.ctx
        .set_config_objects(Default::default(), Some(cm.object_ref(&())));
    h.ctx.set_leading(true);
    let web = service("web", json!({}));
    h.store
        .apply_watcher_event(&watcher::Event::Apply(web.clone().into()));

    // Nodes not listed yet: no decision, no write, no Warning.
    done(h.spawn(&web)).await.unwrap();
    publish(&h).await;

    // Listed: node n1's 192.0.2.2 is skipped after 192.0.2.1.
    h.ctx.set_networks(networks("192.0.2.2"));
    h.expect_allocation("web", "192.0.2.1", "default").await;
    h.expect_allocation("next", "192.0.2.3", "default").await;

    // Each overlap once, on the ConfigMap that defines every pool.
    let publishing = spawn_publish(&h);
    let first = expect_overlap_event(&mut h).await;
    let second = expect_overlap_event(&mut h).await;
    publishing.await.unwrap();
    assert!(
        first.contains("pool \"default\" holds 192.0.2.2, the InternalIP of node n1"),
        "{first}"
    );
    assert!(
        second.contains("pool \"reserved\" overlaps the service cluster IP range 198.51.100.0/24"),
        "{second}"
    );
    // Nothing changed: nothing recorded again.
    publish(&h).await;

    // The node's address moves into "reserved": only the new overlap is recorded.
    h.ctx.set_networks(networks("198.51.100.11"));
    let publishing = spawn_publish(&h);
    let moved = expect_overlap_event(&mut h).await;
    publishing.await.unwrap();
    assert!(
        moved.contains("pool \"reserved\" holds 198.51.100.11, the InternalIP of node n1"),
        "{moved}"
    );
    publish(&h).await;
}

/// Answers the networks watch as an API server without ServiceCIDRs (before 1.33): Nodes are
/// listed (their watch is held open), ServiceCIDRs are 404; events are answered and handed on.
async fn serve_without_service_cidrs(
    mut api: Mock,
    events: futures::channel::mpsc::UnboundedSender<Value>,
    cidr_requests: Arc<std::sync::atomic::AtomicUsize>,
) {
    let mut held = Vec::new();
    while let Some((req, send)) = api.next_request().await {
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        let bytes = req.into_body().collect_bytes().await.unwrap();
        let (status, body) = match path.as_str() {
            "/api/v1/nodes" if query.contains("watch=true") => {
                held.push(send);
                continue;
            }
            "/api/v1/nodes" => (
                StatusCode::OK,
                json!({"apiVersion": "v1", "kind": "NodeList", "metadata": {"resourceVersion": "1"},
                       "items": [{"metadata": {"name": "n1", "resourceVersion": "1"},
                                  "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.2"}]}}]}),
            ),
            "/apis/networking.k8s.io/v1/servicecidrs" => {
                cidr_requests.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                (
                    StatusCode::NOT_FOUND,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                           "reason": "NotFound", "code": 404,
                           "message": "the server could not find the requested resource"}),
                )
            }
            "/apis/events.k8s.io/v1/namespaces/ferrolb-system/events" => {
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let _ = events.unbounded_send(body.clone());
                (StatusCode::CREATED, body)
            }
            other => panic!("unexpected request {other}?{query}"),
        };
        send.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap(),
        );
    }
}

#[tokio::test]
async fn without_service_cidrs_served_the_flag_stands_in_and_the_nodes_still_open_the_gate() {
    let h = harness();
    let ctx = h.ctx.clone();
    ctx.await_networks();
    let cm = configmap(CONFIG);
    assert_eq!(ctx.load_config(Some(&cm)), ConfigOutcome::Loaded);
    ctx.set_config_objects(Default::default(), Some(cm.object_ref(&())));
    ctx.set_leading(true);
    let (events_tx, mut events) = futures::channel::mpsc::unbounded();
    let cidr_requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server = tokio::spawn(serve_without_service_cidrs(
        h.api,
        events_tx,
        cidr_requests.clone(),
    ));
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let watching = tokio::spawn(crate::controller::networks::watch_networks(
        ctx.client.clone(),
        ctx.clone(),
        parse_service_range("198.51.100.0/24").unwrap(),
        stop,
    ));
    // Each handover wakes the publisher: record until both overlaps are in.
    let mut notes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while notes.len() < 2 {
            ctx.overlaps_due().await;
            ctx.publish_overlaps().await;
            while let Ok(event) = events.try_recv() {
                notes.push(event["note"].as_str().unwrap_or("").to_owned());
            }
        }
    })
    .await
    .expect("both overlaps recorded");
    notes.sort();
    assert!(
        notes[0].contains("pool \"default\" holds 192.0.2.2, the InternalIP of node n1"),
        "{notes:?}"
    );
    assert!(
        notes[1].contains(
            "pool \"reserved\" overlaps the service cluster IP range 198.51.100.0/24 \
             (--service-cluster-ip-range)"
        ),
        "{notes:?}"
    );
    // The kind is not served: asked once, never again.
    assert_eq!(cidr_requests.load(std::sync::atomic::Ordering::SeqCst), 1);
    watching.abort();
    server.abort();
}
