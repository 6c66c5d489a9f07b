//! The writer's API exchanges for `ServiceBGPStatus`: the same writer as for `ServiceL2Status`,
//! on its own resource, with `bgp-` names and the peers in its status.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::*;
use crate::speaker::kubernetes::status::bgp::{Bgp, BgpInputs, Desired, inputs as bgp_inputs};

const BGP: &str = "/apis/metallb.io/v1beta1/namespaces/ferrolb-system/servicebgpstatuses";

fn bgp(desired: &[(&str, &[&str])], alive: &[&str]) -> BgpInputs {
    let desired: Desired = desired
        .iter()
        .map(|(s, p)| ((*s).to_owned(), p.iter().map(|n| (*n).to_owned()).collect()))
        .collect();
    bgp_inputs(
        &Arc::new(desired),
        alive.iter().map(|n| (*n).to_owned()).collect(),
    )
}

#[tokio::test]
async fn a_service_handed_to_peers_gets_an_owned_labelled_bgp_object_listing_them() {
    let (w, mut api) = writer(Some("speaker-x"));
    let mut state = WriterState::default();
    let now = bgp(&[("shop/web", &["tor-b", "tor-a"])], &["node-a"]);
    let (ok, sent) = serve(&mut api, w.pass(&mut state, &now, &[]), |m, path, body| {
        if path.ends_with("/pods/speaker-x") {
            let pod = json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "speaker-x", "namespace": NS, "uid": "uid-1"}});
            return (StatusCode::OK, pod);
        }
        let mut echo = body.clone();
        if *m == Method::POST {
            echo["metadata"]["name"] = json!("bgp-7xk2q");
        }
        (StatusCode::CREATED, echo)
    })
    .await;
    assert!(ok, "{sent:#?}");
    let calls: Vec<(&Method, &str)> = sent.iter().map(|s| (&s.method, s.path.as_str())).collect();
    let status_path = format!("{BGP}/bgp-7xk2q/status");
    assert_eq!(
        calls,
        [
            (
                &Method::GET,
                "/api/v1/namespaces/ferrolb-system/pods/speaker-x"
            ),
            (&Method::POST, BGP),
            (&Method::PATCH, status_path.as_str()),
        ]
    );
    let create = &sent[1];
    assert_eq!(create.body["kind"], "ServiceBGPStatus");
    assert_eq!(create.body["apiVersion"], "metallb.io/v1beta1");
    assert_eq!(create.body["spec"], json!({}));
    let meta = &create.body["metadata"];
    assert_eq!(meta["generateName"], "bgp-");
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
    assert_eq!(
        sent[2].body,
        json!({"status": {"node": "node-a", "serviceName": "web", "serviceNamespace": "shop",
                          "peers": ["tor-a", "tor-b"]}})
    );
    // Not in the watch yet: the next pass creates no second one (and writes no
    // ConfigurationState: the BGP writer has none).
    let (ok, sent) = serve(&mut api, w.pass(&mut state, &now, &[]), accept_all).await;
    assert!(ok && sent.is_empty(), "{sent:#?}");
}

#[tokio::test]
async fn peers_changing_patch_the_object_and_none_left_deletes_it() {
    let (w, mut api) = writer(None);
    let mut state = WriterState::default();
    let seen = [Observed {
        name: "bgp-mine".into(),
        node: "node-a".into(),
        service: "shop/web".into(),
        names: Some(vec!["tor-a".into()]),
    }];
    let more = bgp(&[("shop/web", &["tor-a", "tor-c"])], &["node-a"]);
    let (ok, sent) = serve(&mut api, w.pass(&mut state, &more, &seen), accept_all).await;
    assert!(ok, "{sent:#?}");
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(
        (&sent[0].method, sent[0].path.as_str()),
        (&Method::PATCH, &*format!("{BGP}/bgp-mine/status"))
    );
    assert_eq!(sent[0].body["status"]["peers"], json!(["tor-a", "tor-c"]));

    let none = bgp(&[("shop/web", &[])], &["node-a"]);
    let (ok, sent) = serve(&mut api, w.pass(&mut state, &none, &seen), accept_all).await;
    assert!(ok, "{sent:#?}");
    assert_eq!(deleted(&sent), [format!("{BGP}/bgp-mine")]);
    assert_eq!(sent.len(), 1, "{sent:#?}");
}

/// A refused write names the object in the error the writer logs, and is tried again.
#[tokio::test]
async fn a_refused_status_write_is_retried_on_the_next_pass() {
    let (w, mut api) = writer(None);
    let mut state = WriterState::default();
    let seen = [Observed {
        name: "bgp-mine".into(),
        node: "node-a".into(),
        service: "shop/web".into(),
        names: None,
    }];
    let now = bgp(&[("shop/web", &["tor-a"])], &["node-a"]);
    let refuse = |_: &Method, _: &str, _: &Value| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "message": "ServiceBGPStatus.metallb.io \"bgp-mine\" is invalid",
                   "reason": "Invalid", "code": 422}),
        )
    };
    let (ok, sent) = serve(&mut api, w.pass(&mut state, &now, &seen), refuse).await;
    assert!(!ok && sent.len() == 1, "{sent:#?}");
    let (ok, sent) = serve(&mut api, w.pass(&mut state, &now, &seen), accept_all).await;
    assert!(ok, "{sent:#?}");
    assert_eq!(
        (&sent[0].method, sent[0].path.as_str()),
        (&Method::PATCH, &*format!("{BGP}/bgp-mine/status"))
    );
}

/// A node that handed `shop/web` to its peers died; this node hands it to its own. The dead
/// node's `ServiceBGPStatus` objects are listed (once per live set) and its object for a
/// Service this node has is deleted; a live node's is left.
#[tokio::test]
async fn a_dead_nodes_bgp_object_is_deleted_by_a_node_that_has_the_service() {
    let (w, mut api) = writer(None);
    let mut state = WriterState::default();
    let alive: BTreeSet<String> = ["node-a".to_owned(), "node-c".to_owned()].into();
    let item = |name: &str, node: &str, svc: &str| {
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "ServiceBGPStatus",
            "metadata": {"name": name, "namespace": NS, "resourceVersion": "70",
                "labels": {"metallb.io/node": node, "metallb.io/service-name": svc,
                           "metallb.io/service-namespace": "shop"}},
            "status": {"node": node, "serviceName": svc, "serviceNamespace": "shop",
                       "peers": ["tor-a"]}})
    };
    let listed = json!({"apiVersion": "metallb.io/v1beta1", "kind": "ServiceBGPStatusList",
        "metadata": {"resourceVersion": "77"},
        "items": [item("bgp-dead-web", "node-b", "web"), item("bgp-dead-api", "node-b", "api")]});
    let (ok, sent) = serve(&mut api, w.others::<Bgp>(&mut state, &alive), |_, _, _| {
        (StatusCode::OK, listed.clone())
    })
    .await;
    assert!(ok, "{sent:#?}");
    assert_eq!(
        (&sent[0].method, sent[0].path.as_str()),
        (&Method::GET, BGP)
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
    let mut now = bgp(&[("shop/web", &["tor-a"])], &[]);
    now.alive = alive;
    let (ok, sent) = serve(&mut api, w.pass(&mut state, &now, &[]), accept_all).await;
    assert!(ok, "{sent:#?}");
    assert_eq!(
        deleted(&sent),
        [format!("{BGP}/bgp-dead-web")],
        "only the Service this node has"
    );
    assert!(
        sent.iter()
            .any(|s| s.method == Method::POST && s.path == BGP)
    );
}

/// Run as a task, the BGP writer watches and lists only `servicebgpstatuses` (this node's, by
/// label), and writes there only: never an L2 object, never the ConfigurationState.
#[tokio::test(start_paused = true)]
async fn the_bgp_writer_task_only_touches_bgp_objects() {
    let (w, mut api) = writer(None);
    let (tx, rx) = watch::channel(bgp(&[], &["node-a", "node-b"]));
    let task = w.spawn(rx);
    let calls = Arc::new(std::sync::Mutex::new(Vec::<(Method, String, String)>::new()));
    let log = calls.clone();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some((req, send)) = api.next_request().await {
            let method = req.method().clone();
            let path = req.uri().path().to_owned();
            let query = decode(req.uri().query().unwrap_or(""));
            log.lock()
                .unwrap()
                .push((method.clone(), path.clone(), query.clone()));
            if query.contains("watch=true") {
                held.push(send);
                continue;
            }
            let reply = match method {
                Method::GET => json!({"apiVersion": "metallb.io/v1beta1",
                    "kind": "ServiceBGPStatusList", "metadata": {"resourceVersion": "5"},
                    "items": []}),
                _ => json!({"apiVersion": "metallb.io/v1beta1", "kind": "ServiceBGPStatus",
                    "metadata": {"name": "bgp-new", "namespace": NS}}),
            };
            send.send_response(
                Response::builder()
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap(),
            );
        }
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    tx.send(bgp(&[("shop/web", &["tor-a"])], &["node-a", "node-b"]))
        .unwrap();
    tokio::time::sleep(WRITE_SETTLE * 3).await;
    let seen = calls.lock().unwrap().clone();
    assert!(
        seen.iter().all(|(_, path, _)| path.starts_with(BGP)),
        "{seen:#?}"
    );
    assert!(
        seen.iter().any(
            |(m, _, q)| *m == Method::GET && q.contains("labelSelector=metallb.io/node=node-a")
        ),
        "this node's objects are watched by label: {seen:#?}"
    );
    let writes: Vec<(&Method, &str)> = seen
        .iter()
        .filter(|(m, _, _)| *m != Method::GET)
        .map(|(m, p, _)| (m, p.as_str()))
        .collect();
    let status_path = format!("{BGP}/bgp-new/status");
    assert_eq!(
        writes,
        [(&Method::POST, BGP), (&Method::PATCH, status_path.as_str())]
    );
    drop(tx);
    task.await.unwrap();
    server.abort();
}

/// On a cluster whose CRDs lack ServiceBGPStatus (MetalLB's before v0.15) every list is
/// answered 404: the writer says so once, not at every retry, and again only after the kind
/// was served in between.
#[tokio::test]
async fn a_kind_not_served_is_said_once_not_at_every_retry() {
    let (logs, _guard) = crate::speaker::kubernetes::test_logs::Logs::capture();
    let (w, mut api) = writer(None);
    let mut state = WriterState::default();
    let not_found = |_: &Method, _: &str, _: &Value| {
        (
            StatusCode::NOT_FOUND,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "reason": "NotFound", "code": 404}),
        )
    };
    let alive: BTreeSet<String> = ["node-a".to_owned()].into();
    for _ in 0..3 {
        let (ok, sent) = serve(&mut api, w.others::<Bgp>(&mut state, &alive), not_found).await;
        assert!(!ok && sent.len() == 1, "{sent:#?}");
    }
    let said = |logs: &crate::speaker::kubernetes::test_logs::Logs| {
        logs.text().matches("this kind is not served").count()
    };
    assert_eq!(said(&logs), 1, "{}", logs.text());
    // Served: the list succeeds. Lost again: said again, once.
    let empty = |_: &Method, _: &str, _: &Value| {
        (
            StatusCode::OK,
            json!({"apiVersion": "metallb.io/v1beta1", "kind": "ServiceBGPStatusList",
                   "metadata": {}, "items": []}),
        )
    };
    let (ok, _) = serve(&mut api, w.others::<Bgp>(&mut state, &alive), empty).await;
    assert!(ok);
    let more: BTreeSet<String> = ["node-a".to_owned(), "node-b".to_owned()].into();
    for _ in 0..2 {
        serve(&mut api, w.others::<Bgp>(&mut state, &more), not_found).await;
    }
    assert_eq!(said(&logs), 2, "{}", logs.text());
}
