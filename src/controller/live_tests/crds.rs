//! `--config-source crds`: the config built from MetalLB's objects, refused as a whole when the
//! objects break a rule together, with the Warning on the object the error names.

use super::*;
use crate::controller::crd_watch::{RecordedWarnings, load};
use crate::k8s::metallb::{KINDS, L2, Objects, POOL};
use kube::api::DynamicObject;

const NS: &str = "ferrolb-system";

fn object(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}")},
        "spec": spec,
    }))
    .unwrap()
}

/// Every kind listed; pools `default` (192.0.2.1-3) and `reserved`, one L2Advertisement.
fn listed() -> Objects {
    let mut objects = Objects::default();
    for kind in KINDS {
        objects.listed(kind);
    }
    objects.apply(
        POOL,
        &object("default", json!({"addresses": ["192.0.2.1-192.0.2.3"]})),
    );
    objects.apply(
        POOL,
        &object(
            "reserved",
            json!({"addresses": ["198.51.100.10-198.51.100.12"], "autoAssign": false}),
        ),
    );
    objects.apply(L2, &object("all", json!({})));
    objects
}

#[tokio::test]
async fn an_overlapping_pool_keeps_the_last_good_config_and_warns_on_that_pool() {
    let web = shown(&service("web", json!({})), &["192.0.2.1"], "default");
    let mut h = harness();
    h.store
        .apply_watcher_event(&watcher::Event::Apply(web.clone().into()));
    let mut objects = listed();
    load(&h.ctx, &objects, None, NS, &mut RecordedWarnings::default()).await;
    assert!(h.metrics.config.is_loaded());
    h.ctx.set_leading(true);
    done(h.spawn(&web)).await.unwrap();
    assert_eq!(h.in_use("default"), 1);

    // A pool overlapping `default` (and wider, so it would move nothing if it were taken).
    objects.apply(
        POOL,
        &object("overlap", json!({"addresses": ["192.0.2.0/30"]})),
    );
    let ctx = h.ctx.clone();
    let task = tokio::spawn(async move {
        load(&ctx, &objects, None, NS, &mut RecordedWarnings::default()).await
    });
    let (_, body, send) = h
        .expect(
            Method::POST,
            &format!("/apis/events.k8s.io/v1/namespaces/{NS}/events"),
        )
        .await;
    assert_eq!(body["type"], "Warning");
    assert_eq!(body["reason"], "InvalidConfig");
    assert_eq!(body["regarding"]["kind"], "IPAddressPool");
    assert_eq!(body["regarding"]["apiVersion"], "metallb.io/v1beta1");
    let name = body["regarding"]["name"].as_str().unwrap().to_owned();
    assert!(name == "overlap" || name == "default", "{body}");
    assert_eq!(body["regarding"]["uid"], format!("uid-{name}"));
    let note = body["note"].as_str().unwrap();
    assert!(
        note.contains("addresses") && note.contains("overlap"),
        "{note}"
    );
    ok(send, &body);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("one event per offending object, then done")
        .unwrap();
    assert!(h.metrics.config.is_stale());

    // The last good config stays: the Service keeps its address, nothing is written.
    done(h.spawn(&web)).await.unwrap();
    assert_eq!(h.in_use("default"), 1);
}

#[tokio::test]
async fn a_follower_records_no_event_for_a_refused_set() {
    let h = harness();
    let mut objects = listed();
    objects.apply(
        POOL,
        &object("overlap", json!({"addresses": ["192.0.2.0/30"]})),
    );
    // Not leading: no request may go out, so the load finishes with the mock never answering.
    tokio::time::timeout(
        Duration::from_secs(10),
        load(&h.ctx, &objects, None, NS, &mut RecordedWarnings::default()),
    )
    .await
    .expect("no API request from a follower");
    assert!(h.metrics.config.is_stale());
    assert!(!h.metrics.config.is_loaded());
}

/// `body` is a Warning event with `reason` about `kind`/`name` whose note says each of `says`.
fn assert_warning(body: &Value, reason: &str, (kind, name): (&str, &str), says: &[&str]) {
    assert_eq!(body["type"], "Warning");
    assert_eq!(body["reason"], reason);
    assert_eq!(body["regarding"]["kind"], kind);
    assert_eq!(body["regarding"]["name"], name);
    let note = body["note"].as_str().unwrap_or_default();
    assert!(says.iter().all(|s| note.contains(s)), "{note}");
}

/// The advertisement `all` with a field a newer MetalLB added, at `generation`.
fn ad_with_unknown_field(generation: i64) -> DynamicObject {
    let mut ad = object(
        "all",
        json!({"nodeFailoverSelectors": [{"weight": 50, "preference": {"matchLabels": {"zone": "east"}}}]}),
    );
    ad.metadata.generation = Some(generation);
    ad
}

#[tokio::test]
async fn an_unknown_field_is_recorded_on_its_object_once_per_version() {
    let mut h = harness();
    h.ctx.set_leading(true);
    let mut objects = listed();
    let mut recorded = RecordedWarnings::default();
    for generation in [1, 2] {
        objects.apply(L2, &ad_with_unknown_field(generation));
        let ctx = h.ctx.clone();
        let task = tokio::spawn(async move {
            load(&ctx, &objects, None, NS, &mut recorded).await;
            (objects, recorded)
        });
        let (_, body, send) = h
            .expect(
                Method::POST,
                &format!("/apis/events.k8s.io/v1/namespaces/{NS}/events"),
            )
            .await;
        let about = ("L2Advertisement", "all");
        assert_warning(
            &body,
            UNKNOWN_FIELD_REASON,
            about,
            &["spec.nodeFailoverSelectors", "ignored"],
        );
        assert_eq!(body["regarding"]["uid"], "uid-all");
        ok(send, &body);
        (objects, recorded) = task.await.unwrap();
        // The config is in force: the advertisement's known fields apply.
        assert!(h.metrics.config.is_loaded() && !h.metrics.config.is_stale());
        // Loaded again, the object unchanged: no request goes out (the mock never answers).
        tokio::time::timeout(
            Duration::from_secs(10),
            load(&h.ctx, &objects, None, NS, &mut recorded),
        )
        .await
        .expect("recorded once per version of the object");
    }
}

#[tokio::test]
async fn namespace_labels_reach_the_allocator_and_re_reconcile_everything() {
    let mut h = Harness::leader(&[]);
    while h.reconcile_all.try_recv().is_ok() {}
    let mut labels = crate::config::Namespaces::new();
    labels.insert("shop".into(), [("team".to_owned(), "a".to_owned())].into());
    h.ctx.set_namespaces(labels.clone());
    assert_eq!(h.reconcile_all.next().await, Some(()));
    // The same labels again change nothing.
    h.ctx.set_namespaces(labels);
    assert!(h.reconcile_all.try_recv().is_err());
}

fn respond(send: SendResponse<Response<Body>>, code: StatusCode, body: &Value) {
    send.send_response(
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

const POOLS: &str = "/apis/metallb.io/v1beta1/namespaces/ferrolb-system/ipaddresspools";
const STATES: &str = "/apis/metallb.io/v1beta1/namespaces/ferrolb-system/configurationstates";

async fn flushed(ctx: &Arc<Context>) {
    tokio::time::timeout(Duration::from_secs(10), ctx.flush_status())
        .await
        .expect("no request left unanswered");
}

#[tokio::test]
async fn pool_status_and_configuration_state_are_written_by_the_leader_on_change_only() {
    let web = shown(&service("web", json!({})), &["192.0.2.1"], "default");
    let mut h = harness();
    h.store
        .apply_watcher_event(&watcher::Event::Apply(web.clone().into()));
    h.ctx.enable_status(NS);
    let mut objects = listed();
    load(&h.ctx, &objects, None, NS, &mut RecordedWarnings::default()).await;
    // A follower writes nothing (the flush finishes with the mock never answering).
    flushed(&h.ctx).await;

    h.ctx.set_leading(true);
    done(h.spawn(&web)).await.unwrap();
    let ctx = h.ctx.clone();
    let flush = tokio::spawn(async move { ctx.flush_status().await });
    let (_, body, send) = h
        .expect(Method::PATCH, &format!("{POOLS}/default/status"))
        .await;
    assert_eq!(
        body,
        json!({"status": {"assignedIPv4": 1, "assignedIPv6": 0,
                          "availableIPv4": 2, "availableIPv6": 0}})
    );
    ok(send, &body);
    let (_, body, send) = h
        .expect(Method::PATCH, &format!("{POOLS}/reserved/status"))
        .await;
    assert_eq!(body["status"]["availableIPv4"], 3);
    ok(send, &body);
    // The ConfigurationState does not exist yet: created, then its status written.
    let (_, body, send) = h
        .expect(Method::PATCH, &format!("{STATES}/controller/status"))
        .await;
    assert_eq!(body["status"]["result"], "Valid");
    respond(
        send,
        StatusCode::NOT_FOUND,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "NotFound", "message": "not found", "code": 404}),
    );
    let (_, created, send) = h.expect(Method::POST, STATES).await;
    assert_eq!(created["metadata"]["name"], "controller");
    assert_eq!(created["kind"], "ConfigurationState");
    respond(send, StatusCode::CREATED, &created);
    let (_, body, send) = h
        .expect(Method::PATCH, &format!("{STATES}/controller/status"))
        .await;
    assert_eq!(body["status"]["result"], "Valid");
    ok(send, &body);
    flush.await.unwrap();

    // Nothing changed: nothing is written.
    flushed(&h.ctx).await;

    // A new Service takes an address: only that pool's status is written.
    let api_service = service("api", json!({}));
    h.store
        .apply_watcher_event(&watcher::Event::Apply(api_service.clone().into()));
    let api = h.spawn(&api_service);
    h.expect_event("IPAllocated").await;
    h.expect_status("api", json!([{"ip": "192.0.2.2"}])).await;
    h.expect_pool("api", json!("default")).await;
    done(api).await.unwrap();
    let ctx = h.ctx.clone();
    let flush = tokio::spawn(async move { ctx.flush_status().await });
    let (_, body, send) = h
        .expect(Method::PATCH, &format!("{POOLS}/default/status"))
        .await;
    assert_eq!(body["status"]["assignedIPv4"], 2);
    assert_eq!(body["status"]["availableIPv4"], 1);
    ok(send, &body);
    flush.await.unwrap();

    // A refused set: the ConfigurationState turns Invalid and names the object.
    objects.apply(
        POOL,
        &object("overlap", json!({"addresses": ["192.0.2.0/30"]})),
    );
    let ctx = h.ctx.clone();
    let refused = tokio::spawn(async move {
        load(&ctx, &objects, None, NS, &mut RecordedWarnings::default()).await
    });
    let (_, body, send) = h
        .expect(
            Method::POST,
            &format!("/apis/events.k8s.io/v1/namespaces/{NS}/events"),
        )
        .await;
    ok(send, &body);
    refused.await.unwrap();
    let ctx = h.ctx.clone();
    let flush = tokio::spawn(async move { ctx.flush_status().await });
    let (_, body, send) = h
        .expect(Method::PATCH, &format!("{STATES}/controller/status"))
        .await;
    assert_eq!(body["status"]["result"], "Invalid");
    let summary = body["status"]["errorSummary"].as_str().unwrap();
    assert!(
        summary.contains("IPAddressPool") && summary.contains("overlap"),
        "{summary}"
    );
    assert_eq!(body["status"]["conditions"][0]["status"], "False");
    ok(send, &body);
    flush.await.unwrap();
}

/// A `bgpextras` ConfigMap (raw FRR configuration for MetalLB's FRR modes) is not applied: the
/// config stays in force, a Warning `NotImplemented` goes on the ConfigMap once, and the
/// ConfigurationState's own condition names it.
#[tokio::test]
async fn a_bgpextras_configmap_is_reported_on_itself_and_in_the_configuration_state() {
    let mut h = harness();
    h.ctx.enable_status(NS);
    h.ctx.set_leading(true);
    let objects = listed();
    let extras: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "bgpextras", "namespace": NS, "uid": "uid-extras"},
        "data": {"extras": "router bgp 64512\n bgp graceful-shutdown\n"},
    }))
    .unwrap();
    let mut recorded = RecordedWarnings::default();
    let ctx = h.ctx.clone();
    let task = tokio::spawn(async move {
        load(&ctx, &objects, Some(&extras), NS, &mut recorded).await;
        (objects, extras, recorded)
    });
    let (_, body, send) = h
        .expect(
            Method::POST,
            &format!("/apis/events.k8s.io/v1/namespaces/{NS}/events"),
        )
        .await;
    let reason = crate::controller::writes::NOT_IMPLEMENTED_REASON;
    assert_warning(
        &body,
        reason,
        ("ConfigMap", "bgpextras"),
        &["extras", "not applied"],
    );
    ok(send, &body);
    let (objects, extras, mut recorded) = task.await.unwrap();
    assert!(h.metrics.config.is_loaded() && !h.metrics.config.is_stale());
    // Loaded again, unchanged: no second event (the mock never answers one).
    tokio::time::timeout(
        Duration::from_secs(10),
        load(&h.ctx, &objects, Some(&extras), NS, &mut recorded),
    )
    .await
    .expect("recorded once");

    let ctx = h.ctx.clone();
    let flush = tokio::spawn(async move { ctx.flush_status().await });
    let (_, body, send) = h
        .expect(Method::PATCH, &format!("{STATES}/controller/status"))
        .await;
    assert_eq!(body["status"]["result"], "Valid");
    let condition = &body["status"]["conditions"][2];
    assert_eq!(
        condition["type"],
        crate::controller::crd_status::NOT_IMPLEMENTED_CONDITION
    );
    assert_eq!(condition["status"], "True");
    assert!(
        condition["message"]
            .as_str()
            .unwrap()
            .contains("ConfigMap \"bgpextras\""),
        "{condition}"
    );
    ok(send, &body);
    flush.await.unwrap();
}
