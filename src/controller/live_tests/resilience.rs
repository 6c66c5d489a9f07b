//! Config changes, refused configs, failed writes and leadership changes.

use super::*;

#[tokio::test]
async fn config_change_moves_services_whose_address_left_the_pools() {
    let web = shown(&service("web", json!({})), &["192.0.2.1"], "default");
    let mut h = Harness::leader(std::slice::from_ref(&web));
    done(h.spawn(&web)).await.unwrap();
    while h.reconcile_all.try_recv().is_ok() {}

    let shrunk = CONFIG.replace("192.0.2.1-192.0.2.3", "192.0.2.2-192.0.2.3");
    assert_eq!(
        h.ctx.load_config(Some(&configmap(&shrunk))),
        ConfigOutcome::Loaded
    );
    assert_eq!(h.reconcile_all.next().await, Some(()));
    // The same config again is not a change.
    assert_eq!(
        h.ctx.load_config(Some(&configmap(&shrunk))),
        ConfigOutcome::Unchanged
    );

    let task = h.spawn(&web);
    let cleared = h.expect_event("ClearAssignment").await;
    let note = cleared["note"].as_str().unwrap();
    assert!(
        note.contains("192.0.2.1") && note.contains("no longer in any address pool"),
        "{note}"
    );
    // The status patch went out with the first event; the second event follows it.
    h.expect_status("web", json!([{"ip": "192.0.2.2"}])).await;
    h.expect_event("IPAllocated").await;
    // Same pool name: the annotation is already right, no patch.
    done(task).await.unwrap();
}

#[tokio::test]
async fn invalid_config_keeps_the_last_good_one_and_warns_on_the_configmap() {
    let web = shown(&service("web", json!({})), &["192.0.2.1"], "default");
    let mut h = Harness::leader(std::slice::from_ref(&web));
    done(h.spawn(&web)).await.unwrap();
    assert!(h.metrics.config.is_loaded());
    assert!(!h.metrics.config.is_stale());

    let broken = configmap(
        "address-pools:\n- name: default\n  protocol: layer3\n  addresses: [192.0.2.0/24]\n",
    );
    let message = match h.ctx.load_config(Some(&broken)) {
        ConfigOutcome::Invalid(m) => m,
        other => panic!("expected Invalid, got {other:?}"),
    };
    assert!(
        message.contains("default") && message.contains("layer3"),
        "{message}"
    );
    assert!(h.metrics.config.is_stale());
    assert!(h.metrics.config.is_loaded());

    let ctx = h.ctx.clone();
    let cm = broken.clone();
    let report = tokio::spawn(async move { ctx.report_invalid_config(&cm, &message).await });
    let (_, body, send) = h
        .expect(
            Method::POST,
            "/apis/events.k8s.io/v1/namespaces/ferrolb-system/events",
        )
        .await;
    assert_eq!(body["type"], "Warning");
    assert_eq!(body["reason"], "InvalidConfig");
    assert_eq!(body["regarding"]["kind"], "ConfigMap");
    assert_eq!(body["regarding"]["name"], "config");
    assert!(
        body["note"]
            .as_str()
            .unwrap()
            .starts_with("invalid config, the last good config stays in force: "),
        "{body}"
    );
    ok(send, &body);
    report.await.unwrap();

    // Reported once; the Service keeps its address with no write.
    assert_eq!(
        h.ctx.load_config(Some(&broken)),
        ConfigOutcome::StillInvalid
    );
    done(h.spawn(&web)).await.unwrap();
    assert_eq!(h.in_use("default"), 1);

    // A good config clears the stale flag.
    assert_eq!(
        h.ctx
            .load_config(Some(&configmap(&CONFIG.replace("reserved", "spare")))),
        ConfigOutcome::Loaded
    );
    assert!(!h.metrics.config.is_stale());
}

#[tokio::test]
async fn failed_write_is_retried_with_the_same_address_and_no_repeated_event() {
    let web = service("web", json!({}));
    let mut h = Harness::leader(std::slice::from_ref(&web));
    let task = h.spawn(&web);
    h.expect_event("IPAllocated").await;
    let (_, _, send) = h
        .expect(Method::PATCH, "/api/v1/namespaces/shop/services/web/status")
        .await;
    send.send_response(
        Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .body(Body::from(
                serde_json::to_vec(&json!({
                    "kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": "etcd is sad", "reason": "InternalError", "code": 500
                }))
                .unwrap(),
            ))
            .unwrap(),
    );
    let err = done(task).await.unwrap_err();
    assert!(err.to_string().contains("shop/web"), "{err}");
    let delays: Vec<Duration> = (0..3)
        .map(|_| h.ctx.retry_delay(&ServiceKey::new("shop", "web")))
        .collect();
    assert_eq!(
        delays,
        [1, 2, 4].map(Duration::from_secs),
        "exponential backoff"
    );

    // The retry writes the same address; the event is not recorded again.
    let task = h.spawn(&web);
    h.expect_status("web", json!([{"ip": "192.0.2.1"}])).await;
    h.expect_pool("web", json!("default")).await;
    done(task).await.unwrap();
}

#[tokio::test]
async fn a_follower_writes_nothing_and_a_new_leader_rebuilds() {
    let old = shown(&service("old", json!({})), &["192.0.2.1"], "default");
    let new = service("new", json!({}));
    let mut h = harness();
    for svc in [&old, &new] {
        h.store
            .apply_watcher_event(&watcher::Event::Apply(svc.clone().into()));
    }
    h.ctx.load_config(Some(&configmap(CONFIG)));
    assert!(!h.ctx.is_leading());
    done(h.spawn(&new)).await.unwrap();

    h.ctx.set_leading(true);
    assert_eq!(h.reconcile_all.next().await, Some(()));
    let task = h.spawn(&new);
    h.expect_event("IPAllocated").await;
    h.expect_status("new", json!([{"ip": "192.0.2.2"}])).await;
    h.expect_pool("new", json!("default")).await;
    done(task).await.unwrap();

    // Losing the lease stops writes at once.
    h.ctx.set_leading(false);
    let mut gone = new.clone();
    gone.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    done(h.spawn(&gone)).await.unwrap();
}

#[tokio::test]
async fn invalid_service_gets_a_warning_and_no_write() {
    let bad = service(
        "bad",
        json!({"metadata": {"annotations": {"metallb.io/address-pool": "a",
                                            "metallb.universe.tf/address-pool": "b"}}}),
    );
    let mut h = Harness::leader(std::slice::from_ref(&bad));
    let task = h.spawn(&bad);
    let event = h.expect_event("LoadBalancerFailed").await;
    assert_eq!(event["type"], "Warning");
    done(task).await.unwrap();
    // The same problem again is not re-recorded.
    done(h.spawn(&bad)).await.unwrap();
}
