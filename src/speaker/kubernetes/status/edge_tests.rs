//! The writer's API exchanges, recorded against a mock API server: ServiceL2Status objects,
//! and ServiceBGPStatus ones in [`bgp`].

use std::future::Future;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

use super::*;
use crate::speaker::kubernetes::l2status::L2;

type Mock = tower_test::mock::Handle<Request<Body>, Response<Body>>;

#[derive(Debug)]
struct Sent {
    method: Method,
    path: String,
    query: String,
    body: Value,
}

const NS: &str = "ferrolb-system";

fn writer(pod: Option<&str>) -> (StatusWriter, Mock) {
    let (mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let writer = StatusWriter {
        client: Client::new(mock, NS),
        namespace: NS.into(),
        me: "node-a".into(),
        pod_name: pod.map(str::to_owned),
    };
    (writer, handle)
}

/// Drives `work` to its end, answering each request with `answer(method, path, body)`.
async fn serve<T>(
    api: &mut Mock,
    work: impl Future<Output = T>,
    answer: impl Fn(&Method, &str, &Value) -> (StatusCode, Value),
) -> (T, Vec<Sent>) {
    let mut sent = Vec::new();
    tokio::pin!(work);
    let out = loop {
        tokio::select! {
            out = &mut work => break out,
            req = api.next_request() => {
                let (req, send) = req.expect("the client is alive");
                let method = req.method().clone();
                let path = req.uri().path().to_owned();
                let query = req.uri().query().unwrap_or("").to_owned();
                let bytes = req.into_body().collect_bytes().await.unwrap();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let (status, reply) = answer(&method, &path, &body);
                send.send_response(
                    Response::builder()
                        .status(status)
                        .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                        .unwrap(),
                );
                sent.push(Sent { method, path, query, body });
            }
        }
    };
    (out, sent)
}

/// An API server that takes every request: a create is named `l2-new`, a delete succeeds.
fn accept_all(method: &Method, _: &str, body: &Value) -> (StatusCode, Value) {
    let mut echo = body.clone();
    if *method == Method::POST {
        echo["metadata"]["name"] = json!("l2-new");
    }
    if *method == Method::DELETE {
        echo = json!({"kind": "Status", "apiVersion": "v1", "status": "Success"});
    }
    (StatusCode::OK, echo)
}

/// The paths deleted among `sent`.
fn deleted(sent: &[Sent]) -> Vec<&str> {
    sent.iter()
        .filter(|s| s.method == Method::DELETE)
        .map(|s| s.path.as_str())
        .collect()
}

fn inputs(desired: &[(&str, &[&str])], alive: &[&str]) -> Inputs<L2> {
    Inputs {
        desired: std::sync::Arc::new(
            desired
                .iter()
                .map(|(s, i)| ((*s).into(), i.iter().map(|n| (*n).to_owned()).collect()))
                .collect(),
        ),
        alive: alive.iter().map(|n| (*n).to_owned()).collect(),
        config: None,
    }
}

const BASE: &str = "/apis/metallb.io/v1beta1/namespaces/ferrolb-system/servicel2statuses";

#[tokio::test]
async fn a_new_announcement_creates_an_owned_labelled_object_then_writes_its_status() {
    let (w, mut api) = writer(Some("speaker-x"));
    let mut state = WriterState::default();
    let now = inputs(&[("shop/web", &["eth1"])], &["node-a"]);
    let (ok, sent) = serve(&mut api, w.pass(&mut state, &now, &[]), |m, path, body| {
        if path.ends_with("/pods/speaker-x") {
            let pod = json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "speaker-x", "namespace": NS, "uid": "uid-1"}});
            return (StatusCode::OK, pod);
        }
        let mut echo = body.clone();
        if *m == Method::POST {
            echo["metadata"]["name"] = json!("l2-abcde");
        }
        (StatusCode::OK, echo)
    })
    .await;
    assert!(ok, "{sent:#?}");
    assert_eq!(sent.len(), 3, "{sent:#?}");
    assert_eq!(
        (&sent[0].method, sent[0].path.as_str()),
        (
            &Method::GET,
            "/api/v1/namespaces/ferrolb-system/pods/speaker-x"
        )
    );
    let create = &sent[1];
    assert_eq!(
        (&create.method, create.path.as_str()),
        (&Method::POST, BASE)
    );
    let meta = &create.body["metadata"];
    assert_eq!(meta["generateName"], "l2-");
    assert!(meta.get("name").is_none(), "{meta}");
    assert_eq!(
        meta["labels"],
        json!({"metallb.io/node": "node-a", "metallb.io/service-name": "web",
               "metallb.io/service-namespace": "shop"})
    );
    let owner = &meta["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["name"], &owner["uid"]),
        (&json!("Pod"), &json!("speaker-x"), &json!("uid-1"))
    );
    let patch = &sent[2];
    assert_eq!(
        (&patch.method, patch.path.as_str()),
        (&Method::PATCH, &*format!("{BASE}/l2-abcde/status"))
    );
    assert_eq!(
        patch.body,
        json!({"status": {"node": "node-a", "serviceName": "web", "serviceNamespace": "shop",
                          "interfaces": [{"name": "eth1"}]}})
    );

    // The watch has not shown the object yet: the next pass must not create a second one.
    let (ok, sent) = serve(&mut api, w.pass(&mut state, &now, &[]), |_, _, b| {
        (StatusCode::OK, b.clone())
    })
    .await;
    assert!(ok);
    assert!(sent.is_empty(), "{sent:#?}");
}

#[tokio::test]
async fn letting_go_deletes_and_a_refusal_is_retried_on_the_next_pass() {
    let (w, mut api) = writer(None);
    let mut state = WriterState::default();
    let seen = [Observed {
        name: "l2-mine".into(),
        node: "node-a".into(),
        service: "shop/web".into(),
        names: Some(vec![]),
    }];
    let now = inputs(&[], &["node-a"]);
    let refuse = |_: &Method, _: &str, _: &Value| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "message": "etcd is down", "code": 500}),
        )
    };
    let (ok, sent) = serve(&mut api, w.pass(&mut state, &now, &seen), refuse).await;
    assert!(!ok, "a refused delete makes the pass ask for a retry");
    assert_eq!(sent.len(), 1);
    let (ok, sent) = serve(&mut api, w.pass(&mut state, &now, &seen), |_, _, _| {
        (
            StatusCode::OK,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
        )
    })
    .await;
    assert!(ok);
    assert_eq!(
        (&sent[0].method, sent[0].path.as_str()),
        (&Method::DELETE, &*format!("{BASE}/l2-mine"))
    );
}

/// A node died while announcing `shop/web`; this node takes it over. Its object is not in this
/// speaker's watch (only this node's objects are): the writer lists the objects of the nodes
/// not alive, once per live set, and deletes the dead node's.
#[tokio::test]
async fn a_takeover_lists_the_dead_nodes_objects_once_and_deletes_its_object() {
    let (w, mut api) = writer(None);
    let mut state = WriterState::default();
    let alive: BTreeSet<String> = ["node-a".to_owned(), "node-c".to_owned()].into();
    let listed = json!({"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2StatusList",
        "metadata": {"resourceVersion": "77"},
        "items": [{"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status",
            "metadata": {"name": "l2-dead", "namespace": NS, "resourceVersion": "70",
                "labels": {"metallb.io/node": "node-b", "metallb.io/service-name": "web",
                           "metallb.io/service-namespace": "shop"}},
            "status": {"node": "node-b", "serviceName": "web", "serviceNamespace": "shop",
                       "interfaces": []}}]});
    let (ok, sent) = serve(&mut api, w.others::<L2>(&mut state, &alive), |_, _, _| {
        (StatusCode::OK, listed.clone())
    })
    .await;
    assert!(ok);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (&sent[0].method, sent[0].path.as_str()),
        (&Method::GET, BASE)
    );
    let selector = sent[0]
        .query
        .split('&')
        .find_map(|p| p.strip_prefix("labelSelector="))
        .map(decode);
    assert_eq!(
        selector.as_deref(),
        Some("metallb.io/node,metallb.io/node notin (node-a,node-c)")
    );

    // The same live set: no second list.
    let (ok, sent) = serve(&mut api, w.others::<L2>(&mut state, &alive), |_, _, _| {
        (StatusCode::OK, listed.clone())
    })
    .await;
    assert!(ok && sent.is_empty(), "{sent:#?}");

    let mut now = inputs(&[("shop/web", &[])], &["node-a", "node-c"]);
    now.alive = alive;
    let (ok, sent) = serve(&mut api, w.pass(&mut state, &now, &[]), accept_all).await;
    assert!(ok, "{sent:#?}");
    let deletes = deleted(&sent);
    assert_eq!(deletes, [format!("{BASE}/l2-dead")]);
    assert!(sent.iter().any(|s| s.method == Method::POST), "{sent:#?}");

    // Deleted once: the next pass does not delete it again.
    let (ok, sent) = serve(&mut api, w.pass(&mut state, &now, &[]), |_, _, b| {
        (StatusCode::OK, b.clone())
    })
    .await;
    assert!(ok);
    assert!(sent.iter().all(|s| s.method != Method::DELETE), "{sent:#?}");
}

/// A query value, percent- and plus-decoded.
fn decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// A takeover changes the inputs; the writer's calls (the list of the dead node's objects, the
/// creates) wait [`WRITE_SETTLE`] so they do not compete with answering, and a second change in that
/// time joins the same pass.
#[tokio::test(start_paused = true)]
async fn a_change_is_written_once_the_inputs_have_settled() {
    use tokio::time::Instant;

    let (w, mut api) = writer(None);
    let (tx, rx) = watch::channel(inputs(&[], &["node-a", "node-b"]));
    let task = w.spawn(rx);
    let calls = std::sync::Arc::new(std::sync::Mutex::new(
        Vec::<(Instant, Method, String)>::new(),
    ));
    let log = calls.clone();
    let server = tokio::spawn(async move {
        // Watch requests are held open, unanswered, for the test's length.
        let mut held = Vec::new();
        while let Some((req, send)) = api.next_request().await {
            let method = req.method().clone();
            let path = req.uri().path().to_owned();
            let query = req.uri().query().unwrap_or("").to_owned();
            log.lock()
                .unwrap()
                .push((Instant::now(), method.clone(), path));
            if query.contains("watch=true") {
                held.push(send);
                continue;
            }
            let reply = match method {
                Method::GET => json!({"apiVersion": "metallb.io/v1beta1",
                    "kind": "ServiceL2StatusList", "metadata": {"resourceVersion": "5"},
                    "items": []}),
                Method::POST => json!({"apiVersion": "metallb.io/v1beta1",
                    "kind": "ServiceL2Status",
                    "metadata": {"name": "l2-new", "namespace": NS}}),
                _ => json!({"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status",
                    "metadata": {"name": "l2-new", "namespace": NS}}),
            };
            send.send_response(
                Response::builder()
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap(),
            );
        }
    });
    // The writer starts, lists this node's objects and those of no node, and finds nothing to do.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let settled = calls.lock().unwrap().len();
    assert!(
        calls
            .lock()
            .unwrap()
            .iter()
            .all(|(_, m, _)| *m == Method::GET),
        "{:?}",
        calls.lock().unwrap()
    );

    // node-b dies: this node takes over shop/web, and a moment later shop/api.
    let changed = Instant::now();
    tx.send(inputs(&[("shop/web", &[])], &["node-a"])).unwrap();
    tokio::time::sleep(WRITE_SETTLE / 2).await;
    tx.send(inputs(&[("shop/web", &[]), ("shop/api", &[])], &["node-a"]))
        .unwrap();
    tokio::time::sleep(WRITE_SETTLE * 3).await;
    let after: Vec<(Duration, Method, String)> = calls.lock().unwrap()[settled..]
        .iter()
        .map(|(at, m, p)| (*at - changed, m.clone(), p.clone()))
        .collect();
    let others = after
        .iter()
        .find(|(_, m, _)| *m == Method::GET)
        .expect("the dead node's objects are listed");
    assert!(
        others.0 >= WRITE_SETTLE,
        "listed {:?} after the change",
        others.0
    );
    let creates: Vec<&Duration> = after
        .iter()
        .filter(|(_, m, _)| *m == Method::POST)
        .map(|(at, _, _)| at)
        .collect();
    assert_eq!(creates.len(), 2, "one pass creates both objects: {after:?}");
    assert!(creates.iter().all(|at| **at >= WRITE_SETTLE), "{after:?}");
    assert!(
        after.iter().all(|(at, _, _)| *at < WRITE_SETTLE * 2),
        "the change is written within one settle, not one per change: {after:?}"
    );

    drop(tx);
    task.await.unwrap();
    server.abort();
}

/// Node names longer than a label value (63 characters) are valid Kubernetes node names (up to
/// 253). Such a node's objects are created with a label the API server accepts, its watch and
/// the list of dead nodes' objects select by such labels only, and the listed objects are told
/// apart by the exact node name their status holds.
#[tokio::test]
async fn a_node_name_longer_than_a_label_value_still_gets_its_objects() {
    let stem = "rack-17.row-4.hall-b.datacenter-frankfurt-2.compute.example.internal.";
    let me = format!("{}node-a", stem.repeat(3));
    let alive_other = format!("{}node-c", stem.repeat(3));
    let dead = format!("{}node-b", stem.repeat(3));
    let (mut w, mut api) = writer(None);
    w.me = me.clone();
    let valid = |v: &str| {
        v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };

    // The dead node's object and, under the dead node's label, one whose status says it is a
    // live node's (labels are cut and hashed: only the status names the node exactly).
    let item = |name: &str, label_of: &str, node: &str| {
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status",
            "metadata": {"name": name, "namespace": NS, "resourceVersion": "70",
                "labels": super::super::labels(label_of, "shop/web")},
            "status": {"node": node, "serviceName": "web", "serviceNamespace": "shop",
                       "interfaces": []}})
    };
    let listed = json!({"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2StatusList",
        "metadata": {"resourceVersion": "77"},
        "items": [item("l2-dead", &dead, &dead), item("l2-live", &dead, &alive_other)]});
    let mut state = WriterState::default();
    let alive: BTreeSet<String> = [me.clone(), alive_other.clone()].into();
    let (ok, sent) = serve(&mut api, w.others::<L2>(&mut state, &alive), |_, _, _| {
        (StatusCode::OK, listed.clone())
    })
    .await;
    assert!(ok, "{sent:#?}");
    let selector = sent[0]
        .query
        .split('&')
        .find_map(|p| p.strip_prefix("labelSelector="))
        .map(decode)
        .unwrap_or_default();
    let values = selector
        .split_once(" notin (")
        .and_then(|(_, v)| v.strip_suffix(')'))
        .unwrap_or_default();
    assert_eq!(values.split(',').count(), 2, "{selector}");
    assert!(values.split(',').all(valid), "{selector}");

    let mut now = inputs(&[("shop/web", &[])], &[]);
    now.alive = alive;
    let (ok, sent) = serve(&mut api, w.pass(&mut state, &now, &[]), accept_all).await;
    assert!(ok, "{sent:#?}");
    let deletes = deleted(&sent);
    assert_eq!(
        deletes,
        [format!("{BASE}/l2-dead")],
        "the live node's is left"
    );
    let create = sent
        .iter()
        .find(|s| s.method == Method::POST)
        .expect("created");
    let label = create.body["metadata"]["labels"]["metallb.io/node"]
        .as_str()
        .unwrap_or_default();
    assert!(valid(label), "{label:?}");
    let patch = sent
        .iter()
        .find(|s| s.method == Method::PATCH)
        .expect("status written");
    assert_eq!(patch.body["status"]["node"], json!(me), "the exact name");
}

/// The watch of a long-named node's own objects selects them by the label its objects carry.
#[tokio::test(start_paused = true)]
async fn a_long_named_node_watches_its_objects_by_a_valid_label() {
    let me = format!(
        "{}node-a",
        "rack-17.row-4.hall-b.datacenter-frankfurt-2.compute.example.internal.".repeat(3)
    );
    let (mut w, mut api) = writer(None);
    w.me = me.clone();
    let (tx, rx) = watch::channel(inputs(&[], &[]));
    let task = w.spawn(rx);
    // The watch's list and the list of dead nodes' objects go out in either order.
    let mut selector = String::new();
    let mut held = Vec::new();
    while !selector.starts_with("metallb.io/node=") {
        let (req, send) = api.next_request().await.expect("the watch lists");
        held.push(send);
        let query = req.uri().query().unwrap_or("").to_owned();
        selector = query
            .split('&')
            .find_map(|p| p.strip_prefix("labelSelector="))
            .map(decode)
            .unwrap_or_default();
    }
    let labels = super::super::labels(&me, "shop/web");
    assert_eq!(
        selector,
        format!("metallb.io/node={}", labels["metallb.io/node"])
    );
    assert!(
        selector.len() <= "metallb.io/node=".len() + 63,
        "{selector}"
    );
    drop(tx);
    task.abort();
}

/// The ConfigurationState `speaker-<node>` keeps MetalLB's name, and stays a valid object name
/// (253 characters at most) for the longest node names.
#[test]
fn a_long_node_names_configuration_state_name_is_valid() {
    assert_eq!(config_state_name("node-a"), "speaker-node-a");
    let long = format!("{}z", "n".repeat(252));
    let name = config_state_name(&long);
    assert!(
        name.len() <= 253 && name.starts_with("speaker-nnn"),
        "{name}"
    );
    assert_ne!(name, config_state_name(&format!("{}y", "n".repeat(252))));
}

#[path = "edge_gone_tests.rs"]
mod gone;

#[path = "edge_retry_tests.rs"]
mod retry;

#[path = "bgp_edge_tests.rs"]
mod bgp;
