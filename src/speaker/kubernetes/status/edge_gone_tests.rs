//! Objects deleted behind the writer's back (by a user, or by another actor) are created again:
//! whether the watch shows the delete, or a status write is answered 404.

use std::sync::atomic::Ordering::SeqCst;

use super::*;

fn not_found(name: &str) -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "message": format!("servicel2statuses.metallb.io \"{name}\" not found"),
               "reason": "NotFound", "code": 404}),
    )
}

/// The writer's object is gone when its status is patched (the watch, lagging, still shows it):
/// the writer creates a new one and writes its status, and does not patch the gone one again.
#[tokio::test]
async fn a_status_patch_answered_404_creates_the_object_again() {
    let (w, mut api) = writer(None);
    let mut state = WriterState::default();
    let seen = [Observed {
        name: "l2-gone".into(),
        node: "node-a".into(),
        service: "shop/web".into(),
        names: Some(vec![]),
    }];
    let now = inputs(&[("shop/web", &["eth1"])], &["node-a"]);
    let answer = |m: &Method, path: &str, body: &Value| {
        if path.contains("/l2-gone") {
            return not_found("l2-gone");
        }
        let mut echo = body.clone();
        if *m == Method::POST {
            echo["metadata"]["name"] = json!("l2-again");
        }
        (StatusCode::OK, echo)
    };
    let mut all = Vec::new();
    for _ in 0..2 {
        let (_, sent) = serve(&mut api, w.pass(&mut state, &now, &seen), answer).await;
        all.extend(sent);
    }
    let calls: Vec<(&Method, &str)> = all.iter().map(|s| (&s.method, s.path.as_str())).collect();
    let again = format!("{BASE}/l2-again/status");
    assert!(calls.contains(&(&Method::POST, BASE)), "{calls:#?}");
    assert!(
        calls.contains(&(&Method::PATCH, again.as_str())),
        "{calls:#?}"
    );
    let gone = format!("{BASE}/l2-gone/status");
    assert_eq!(
        calls.iter().filter(|c| c.1 == gone).count(),
        1,
        "the gone object is patched once, not on every pass: {calls:#?}"
    );
    assert_eq!(
        calls.iter().filter(|c| *c.0 == Method::POST).count(),
        1,
        "one object, not one per pass: {calls:#?}"
    );
    // The lagging watch catches up (the gone object leaves the store): nothing more to do.
    let (ok, sent) = serve(&mut api, w.pass(&mut state, &now, &[]), answer).await;
    assert!(ok, "{sent:#?}");
    assert!(sent.is_empty(), "{sent:#?}");
}

/// The object is deleted between its create and its status write: the next pass creates it
/// again rather than patching the gone one for ever.
#[tokio::test]
async fn an_object_gone_before_its_status_was_written_is_created_again() {
    let (w, mut api) = writer(None);
    let mut state = WriterState::default();
    let now = inputs(&[("shop/web", &[])], &["node-a"]);
    let posts = std::sync::atomic::AtomicUsize::new(0);
    let answer = |m: &Method, path: &str, body: &Value| {
        let mut echo = body.clone();
        if *m == Method::POST {
            let n = posts.fetch_add(1, SeqCst);
            echo["metadata"]["name"] = json!(format!("l2-{n}"));
            return (StatusCode::CREATED, echo);
        }
        if path.contains("/l2-0/") {
            return not_found("l2-0");
        }
        (StatusCode::OK, echo)
    };
    let (ok, _) = serve(&mut api, w.pass(&mut state, &now, &[]), answer).await;
    assert!(!ok, "the status write failed");
    let (ok, sent) = serve(&mut api, w.pass(&mut state, &now, &[]), answer).await;
    assert!(ok, "{sent:#?}");
    let calls: Vec<(&Method, &str)> = sent.iter().map(|s| (&s.method, s.path.as_str())).collect();
    let again = format!("{BASE}/l2-1/status");
    assert_eq!(
        calls,
        [(&Method::POST, BASE), (&Method::PATCH, again.as_str())]
    );
}

/// The watch shows an object the writer created, and its delete, both before the writer's next
/// pass (a user deleted it at once): the writer creates it again.
#[tokio::test(start_paused = true)]
async fn an_object_deleted_before_the_writer_saw_it_is_created_again() {
    let (w, mut api) = writer(None);
    let (tx, rx) = watch::channel(inputs(&[("shop/web", &[])], &["node-a"]));
    let task = w.spawn(rx);
    let posts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = posts.clone();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        let mut first_watch = None;
        let object = |name: &str, rv: &str| {
            json!({"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status",
                "metadata": {"name": name, "namespace": NS, "resourceVersion": rv,
                    "labels": {"metallb.io/node": "node-a", "metallb.io/service-name": "web",
                               "metallb.io/service-namespace": "shop"}},
                "status": {"node": "node-a", "serviceName": "web",
                           "serviceNamespace": "shop", "interfaces": []}})
        };
        while let Some((req, send)) = api.next_request().await {
            let method = req.method().clone();
            let query = req.uri().query().unwrap_or("").to_owned();
            let reply = if query.contains("watch=true") {
                // The first watch waits for the object; later ones are held open.
                if first_watch.is_none() && counted.load(SeqCst) == 0 {
                    first_watch = Some(send);
                } else {
                    held.push(send);
                }
                continue;
            } else if method == Method::GET {
                json!({"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2StatusList",
                    "metadata": {"resourceVersion": "5"}, "items": []})
            } else if method == Method::POST {
                let n = counted.fetch_add(1, SeqCst);
                object(if n == 0 { "l2-first" } else { "l2-second" }, "6")
            } else {
                object("l2-first", "6")
            };
            send.send_response(
                Response::builder()
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap(),
            );
            // Its status written, the object is deleted at once: the watch shows both.
            if method == Method::PATCH
                && let Some(watch) = first_watch.take()
            {
                let added = json!({"type": "ADDED", "object": object("l2-first", "6")});
                let deleted = json!({"type": "DELETED", "object": object("l2-first", "7")});
                let lines = format!("{added}\n{deleted}\n");
                watch.send_response(
                    Response::builder()
                        .body(Body::from(lines.into_bytes()))
                        .unwrap(),
                );
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(posts.load(SeqCst), 2, "created, deleted, created again");
    drop(tx);
    task.await.unwrap();
    server.abort();
}

/// The watch may miss a create and its delete altogether (they fall between its streams, and
/// its re-list shows neither). An object absent from a list begun after its create is gone, and
/// made again; a list already under way when it was created may miss it, and proves nothing.
#[tokio::test]
async fn an_object_missing_from_a_list_begun_after_its_create_is_created_again() {
    let (w, mut api) = writer(None);
    let mut state = WriterState::default();
    let now = inputs(&[("shop/web", &[])], &["node-a"]);
    let posts = std::sync::atomic::AtomicUsize::new(0);
    let answer = |m: &Method, _: &str, body: &Value| {
        let mut echo = body.clone();
        if *m == Method::POST {
            let n = posts.fetch_add(1, SeqCst);
            echo["metadata"]["name"] = json!(format!("l2-{n}"));
        }
        (StatusCode::OK, echo)
    };
    let list = |state: &WriterState, event: watcher::Event<Decoded<StatusView<L2>>>| {
        lock(&state.news).note(&event);
    };
    list(&state, watcher::Event::Init);
    let (ok, _) = serve(&mut api, w.pass(&mut state, &now, &[]), answer).await;
    assert!(ok && posts.load(SeqCst) == 1);
    list(&state, watcher::Event::InitDone);
    let (ok, sent) = serve(&mut api, w.pass(&mut state, &now, &[]), answer).await;
    assert!(ok && sent.is_empty(), "{sent:#?}");
    list(&state, watcher::Event::Init);
    list(&state, watcher::Event::InitDone);
    let (ok, _) = serve(&mut api, w.pass(&mut state, &now, &[]), answer).await;
    assert!(ok);
    assert_eq!(posts.load(SeqCst), 2, "created again");
}
