//! Faults the reconcile edge must survive: a Service deleted while its reconcile is queued, a
//! config with no pools while addresses are held, leadership lost, Services of other owners.

use super::*;

#[tokio::test]
async fn reconcile_queued_before_a_delete_frees_the_address_and_writes_nothing() {
    let web = shown(&service("web", json!({})), &["192.0.2.1"], "default");
    let mut h = Harness::leader(std::slice::from_ref(&web));
    done(h.spawn(&web)).await.unwrap();
    assert_eq!(h.in_use("default"), 1);

    // The Service goes away (store first, then the delete handler, as the reflector does)
    // while a reconcile of its last version is still queued; that reconcile runs afterwards.
    h.store
        .apply_watcher_event(&watcher::Event::Delete(web.clone().into()));
    h.ctx.service_deleted(&web.clone().into());
    done(h.spawn(&web)).await.unwrap();
    assert_eq!(
        h.in_use("default"),
        0,
        "the stale reconcile re-registered it"
    );

    // A new Service with the same name is a different object (new UID): it is served, and
    // gets the freed address.
    let again = service("web", json!({"metadata": {"uid": "uid-web-2"}}));
    h.store
        .apply_watcher_event(&watcher::Event::Apply(again.clone().into()));
    let task = h.spawn(&again);
    h.expect_event("IPAllocated").await;
    h.expect_status("web", json!([{"ip": "192.0.2.1"}])).await;
    h.expect_pool("web", json!("default")).await;
    done(task).await.unwrap();
}

#[tokio::test]
async fn config_without_pools_is_refused_while_addresses_are_held() {
    let web = shown(&service("web", json!({})), &["192.0.2.1"], "default");
    let mut h = Harness::leader(std::slice::from_ref(&web));
    done(h.spawn(&web)).await.unwrap();
    while h.reconcile_all.try_recv().is_ok() {}

    match h.ctx.load_config(Some(&configmap(""))) {
        ConfigOutcome::Invalid(message) => assert!(
            message.contains("no address pools") && message.contains("shop/web"),
            "{message}"
        ),
        other => panic!("empty config: expected Invalid, got {other:?}"),
    }
    assert_eq!(i64::from(h.metrics.config.is_stale()), 1);
    // The same refusal for an explicit empty list (already reported, so not again).
    assert_eq!(
        h.ctx.load_config(Some(&configmap("address-pools: []\n"))),
        ConfigOutcome::StillInvalid
    );
    assert_eq!(i64::from(h.metrics.config.is_stale()), 1);
    // Nothing to re-reconcile, the address stays where it is, with no write.
    assert!(h.reconcile_all.try_recv().is_err());
    done(h.spawn(&web)).await.unwrap();
    assert_eq!(h.in_use("default"), 1);
}

#[tokio::test]
async fn config_without_pools_is_accepted_when_nothing_is_held() {
    let mut h = harness();
    assert_eq!(
        h.ctx.load_config(Some(&configmap(""))),
        ConfigOutcome::Loaded
    );
    assert_eq!(i64::from(h.metrics.config.is_stale()), 0);
    // A follower checks the Services it sees too: it may lead next.
    let web = shown(&service("web", json!({})), &["192.0.2.1"], "default");
    h.store
        .apply_watcher_event(&watcher::Event::Apply(web.clone().into()));
    assert!(matches!(
        h.ctx.load_config(Some(&configmap("address-pools: []\n"))),
        ConfigOutcome::Unchanged | ConfigOutcome::Invalid(_)
    ));
    h.ctx.load_config(Some(&configmap(CONFIG)));
    assert!(matches!(
        h.ctx.load_config(Some(&configmap("address-pools: []\n"))),
        ConfigOutcome::Invalid(_)
    ));
    assert!(!h.ctx.is_leading());
}

#[tokio::test]
async fn losing_leadership_drops_the_pool_gauges() {
    let web = shown(&service("web", json!({})), &["192.0.2.1"], "default");
    let h = Harness::leader(std::slice::from_ref(&web));
    done(h.spawn(&web)).await.unwrap();
    assert_eq!(h.in_use("default"), 1);
    h.ctx.set_leading(false);
    let families = h.registry.gather();
    let pools: Vec<String> = families
        .iter()
        .filter(|f| f.name().starts_with("ferrolb_allocator_"))
        .flat_map(|f| f.get_metric().iter())
        .flat_map(|m| m.get_label().iter().map(|l| l.value().to_owned()))
        .collect();
    assert!(pools.is_empty(), "an ex-leader still exports {pools:?}");
}

#[tokio::test]
async fn a_non_load_balancer_service_we_never_held_is_untouched() {
    // Another implementation's Service: its status shows an address, but no pool annotation of
    // ours and nothing in our allocator.
    let theirs = service(
        "theirs",
        json!({"spec": {"type": "NodePort"},
               "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}}),
    );
    let h = Harness::leader(std::slice::from_ref(&theirs));
    done(h.spawn(&theirs)).await.unwrap();
}

#[tokio::test]
async fn with_lb_class_only_services_of_that_class_are_served() {
    let mut h = harness_with_class(Some("example.com/ferrolb"));
    let plain = service("plain", json!({}));
    let ours = service(
        "ours",
        json!({"spec": {"loadBalancerClass": "example.com/ferrolb"}}),
    );
    for svc in [&plain, &ours] {
        h.store
            .apply_watcher_event(&watcher::Event::Apply(svc.clone().into()));
    }
    h.ctx.load_config(Some(&configmap(CONFIG)));
    h.ctx.set_leading(true);
    // A classless Service belongs to the cluster's default load balancer, not to us.
    done(h.spawn(&plain)).await.unwrap();
    let task = h.spawn(&ours);
    h.expect_event("IPAllocated").await;
    h.expect_status("ours", json!([{"ip": "192.0.2.1"}])).await;
    h.expect_pool("ours", json!("default")).await;
    done(task).await.unwrap();
}

#[tokio::test]
async fn a_write_on_a_stale_version_is_decided_again_from_the_current_one() {
    let web = service("web", json!({"metadata": {"resourceVersion": "10"}}));
    let mut h = Harness::leader(std::slice::from_ref(&web));
    let task = h.spawn(&web);
    h.expect_event("IPAllocated").await;
    // The status patch is conditional on the version the decision was made on...
    let path = "/api/v1/namespaces/shop/services/web/status";
    let (_, body, send) = h.expect(Method::PATCH, path).await;
    assert_eq!(body["metadata"]["resourceVersion"], "10", "{body}");
    // ...which is stale: the user asked for a specific address meanwhile.
    send.send_response(
        Response::builder()
            .status(StatusCode::CONFLICT)
            .body(Body::from(
                serde_json::to_vec(&json!({"kind": "Status", "apiVersion": "v1",
                    "status": "Failure", "reason": "Conflict", "code": 409,
                    "message": "the object has been modified"}))
                .unwrap(),
            ))
            .unwrap(),
    );
    let (_, _, send) = h
        .expect(Method::GET, "/api/v1/namespaces/shop/services/web")
        .await;
    let current = service(
        "web",
        json!({"metadata": {"resourceVersion": "11"}, "spec": {"loadBalancerIP": "192.0.2.3"}}),
    );
    ok(send, &json!(current));
    // Decided again from version 11: the requested address, conditional on 11, then the
    // annotation conditional on what the status write produced.
    h.expect_event("ClearAssignment").await;
    let (_, body, send) = h.expect(Method::PATCH, path).await;
    assert_eq!(
        body,
        json!({"metadata": {"resourceVersion": "11"},
               "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.3"}]}}})
    );
    let written = service("web", json!({"metadata": {"resourceVersion": "12"}}));
    ok(send, &json!(written));
    h.expect_event("IPAllocated").await;
    let (_, body, send) = h
        .expect(Method::PATCH, "/api/v1/namespaces/shop/services/web")
        .await;
    assert_eq!(
        body,
        json!({"metadata": {"resourceVersion": "12",
               "annotations": {"metallb.io/ip-allocated-from-pool": "default"}}})
    );
    ok(send, &json!(written));
    done(task).await.unwrap();
    assert_eq!(h.in_use("default"), 1);
}

#[tokio::test]
async fn past_its_lease_deadline_a_leader_writes_nothing() {
    let web = service("web", json!({}));
    let h = Harness::leader(std::slice::from_ref(&web));
    // Leadership granted until a moment that has passed (the process was paused, say).
    h.ctx
        .lead_until(Some(std::time::Instant::now() + Duration::from_millis(50)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    done(h.spawn(&web)).await.unwrap();
    assert!(!h.ctx.is_leading());
}
