//! The reconcile edge against recorded API exchanges: a tower-test mock stands in for the API
//! server, each test asserts the exact requests (method, path, field manager, body) and feeds
//! the responses. A reconcile task that finishes has made no request left unanswered, so "no
//! write" is checked by the task completing on its own.

use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::client::Body;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use serde_json::{Value, json};
use tower_test::mock::{Handle, SendResponse};

use super::*;
use crate::telemetry::Registry;

type Mock = Handle<Request<Body>, Response<Body>>;

const CONFIG: &str = r#"
address-pools:
- name: default
  protocol: layer2
  addresses: [192.0.2.1-192.0.2.3]
- name: reserved
  protocol: layer2
  auto-assign: false
  addresses: [198.51.100.10-198.51.100.12]
"#;

struct Harness {
    ctx: Arc<Context>,
    api: Mock,
    store: Writer<CachedService>,
    reconcile_all: UnboundedReceiver<()>,
    metrics: ControllerMetrics,
}

fn harness() -> Harness {
    let (mock, api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(mock, "default");
    let (reader, store) = reflector::store::<CachedService>();
    let (tx, reconcile_all) = futures::channel::mpsc::unbounded();
    let metrics = ControllerMetrics::register(&Registry::new()).unwrap();
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: Some("test-replica".into()),
    };
    let ctx = Arc::new(Context::new(
        client,
        reporter,
        None,
        reader,
        metrics.clone(),
        tx,
    ));
    Harness {
        ctx,
        api,
        store,
        reconcile_all,
        metrics,
    }
}

fn configmap(text: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "config", "namespace": "ferrolb-system", "uid": "cm-uid"},
        "data": {"config": text},
    }))
    .unwrap()
}

fn service(name: &str, extra: Value) -> Service {
    let mut v = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}")},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

impl Harness {
    /// A leader with `CONFIG` loaded and `existing` in the Service cache.
    fn leader(existing: &[Service]) -> Harness {
        let mut h = harness();
        for svc in existing {
            h.store
                .apply_watcher_event(&watcher::Event::Apply(svc.clone().into()));
        }
        assert_eq!(
            h.ctx.load_config(Some(&configmap(CONFIG))),
            ConfigOutcome::Loaded
        );
        h.ctx.set_leading(true);
        h
    }

    fn spawn(&self, svc: &Service) -> tokio::task::JoinHandle<Result<Action, ReconcileError>> {
        tokio::spawn(reconcile(Arc::new(svc.clone().into()), self.ctx.clone()))
    }

    /// The next request: asserts method and path, returns query, body and the responder.
    async fn expect(
        &mut self,
        method: Method,
        path: &str,
    ) -> (String, Value, SendResponse<Response<Body>>) {
        let (req, send) = tokio::time::timeout(Duration::from_secs(10), self.api.next_request())
            .await
            .expect("a request")
            .expect("the client is alive");
        assert_eq!(req.method(), method, "{} {}", req.method(), req.uri());
        assert_eq!(req.uri().path(), path);
        let query = req.uri().query().unwrap_or("").to_owned();
        if method == Method::PATCH {
            assert_eq!(
                req.headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok()),
                Some("application/merge-patch+json")
            );
            assert!(
                query.contains("fieldManager=ferrolb-controller"),
                "query {query}"
            );
        }
        let bytes = req.into_body().collect_bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (query, body, send)
    }

    /// Expects an event POST for the Service `name` in `shop`; answers it; returns the body.
    async fn expect_event(&mut self, reason: &str) -> Value {
        let (_, body, send) = self
            .expect(
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/shop/events",
            )
            .await;
        assert_eq!(body["reason"], reason, "{body}");
        assert_eq!(body["reportingController"], "ferrolb-controller");
        assert_eq!(body["reportingInstance"], "test-replica");
        assert_eq!(body["regarding"]["kind"], "Service");
        ok(send, &body);
        body
    }

    /// Expects the status patch of `name` with exactly `ingress`; answers with `svc`.
    async fn expect_status(&mut self, name: &str, ingress: Value) {
        let path = format!("/api/v1/namespaces/shop/services/{name}/status");
        let (_, body, send) = self.expect(Method::PATCH, &path).await;
        assert_eq!(
            body,
            json!({"status": {"loadBalancer": {"ingress": ingress}}})
        );
        ok(send, &json!(service(name, json!({}))));
    }

    /// Expects the annotation patch of `name` setting the pool (or removing it with null).
    async fn expect_pool(&mut self, name: &str, pool: Value) {
        let path = format!("/api/v1/namespaces/shop/services/{name}");
        let (_, body, send) = self.expect(Method::PATCH, &path).await;
        assert_eq!(
            body,
            json!({"metadata": {"annotations": {"metallb.io/ip-allocated-from-pool": pool}}})
        );
        ok(send, &json!(service(name, json!({}))));
    }

    fn in_use(&self, pool: &str) -> i64 {
        self.metrics
            .addresses_in_use
            .with_label_values(&[pool])
            .get()
    }
}

fn ok(send: SendResponse<Response<Body>>, body: &Value) {
    send.send_response(
        Response::builder()
            .status(StatusCode::OK)
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

async fn done(
    task: tokio::task::JoinHandle<Result<Action, ReconcileError>>,
) -> Result<Action, ReconcileError> {
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("reconcile finished without further requests")
        .unwrap()
}

/// `svc` as the API shows it after our writes.
fn shown(svc: &Service, ips: &[&str], pool: &str) -> Service {
    let mut v = json!(svc);
    let ingress: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    merge(
        &mut v,
        json!({"metadata": {"annotations": {"metallb.io/ip-allocated-from-pool": pool}},
               "status": {"loadBalancer": {"ingress": ingress}}}),
    );
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn assign_records_event_then_patches_status_and_annotation() {
    let web = service("web", json!({}));
    let mut h = Harness::leader(std::slice::from_ref(&web));
    let task = h.spawn(&web);
    let event = h.expect_event("IPAllocated").await;
    assert_eq!(event["type"], "Normal");
    assert_eq!(event["regarding"]["name"], "web");
    assert_eq!(
        event["note"],
        "Assigned IP 192.0.2.1 from pool \"default\" to Service shop/web"
    );
    h.expect_status("web", json!([{"ip": "192.0.2.1"}])).await;
    h.expect_pool("web", json!("default")).await;
    assert_eq!(done(task).await.unwrap(), Action::await_change());
    assert_eq!(h.in_use("default"), 1);

    // The watch then shows our write: nothing more to do, no request.
    let task = h.spawn(&shown(&web, &["192.0.2.1"], "default"));
    done(task).await.unwrap();
}

#[tokio::test]
async fn requested_ip_and_pool_annotation() {
    let asks_ip = service(
        "asks-ip",
        json!({"spec": {"loadBalancerIP": "198.51.100.11"}}),
    );
    let asks_pool = service(
        "asks-pool",
        json!({"metadata": {"annotations": {"metallb.universe.tf/address-pool": "reserved"}}}),
    );
    let mut h = Harness::leader(&[asks_ip.clone(), asks_pool.clone()]);

    let task = h.spawn(&asks_ip);
    h.expect_event("IPAllocated").await;
    h.expect_status("asks-ip", json!([{"ip": "198.51.100.11"}]))
        .await;
    h.expect_pool("asks-ip", json!("reserved")).await;
    done(task).await.unwrap();

    // Lowest free of "reserved" (auto-assign off, but asked for by name).
    let task = h.spawn(&asks_pool);
    h.expect_event("IPAllocated").await;
    h.expect_status("asks-pool", json!([{"ip": "198.51.100.10"}]))
        .await;
    h.expect_pool("asks-pool", json!("reserved")).await;
    done(task).await.unwrap();
    assert_eq!(h.in_use("reserved"), 2);
}

#[tokio::test]
async fn sharing_services_get_the_same_address() {
    let shared = |name: &str, port: u16| {
        service(
            name,
            json!({"metadata": {"annotations": {"metallb.io/allow-shared-ip": "web"}},
                   "spec": {"ports": [{"port": port, "protocol": "TCP"}]}}),
        )
    };
    let (http, https) = (shared("http", 80), shared("https", 443));
    let mut h = Harness::leader(&[http.clone(), https.clone()]);
    for svc in [&http, &https] {
        let name = svc.metadata.name.clone().unwrap();
        let task = h.spawn(svc);
        h.expect_event("IPAllocated").await;
        h.expect_status(&name, json!([{"ip": "192.0.2.1"}])).await;
        h.expect_pool(&name, json!("default")).await;
        done(task).await.unwrap();
    }
    // One address in use, held by two Services.
    assert_eq!(h.in_use("default"), 1);
}

#[tokio::test]
async fn startup_gate_reregisters_cached_statuses_before_allocating() {
    // Restarted controller: "old" shows 192.0.2.1 in the cache but is not reconciled yet.
    let old = shown(&service("old", json!({})), &["192.0.2.1"], "default");
    let new = service("new", json!({}));
    let mut h = Harness::leader(&[old.clone(), new.clone()]);
    let task = h.spawn(&new);
    h.expect_event("IPAllocated").await;
    h.expect_status("new", json!([{"ip": "192.0.2.2"}])).await;
    h.expect_pool("new", json!("default")).await;
    done(task).await.unwrap();
    // "old" keeps its address without a single write.
    done(h.spawn(&old)).await.unwrap();
    assert_eq!(h.in_use("default"), 2);
}

#[tokio::test]
async fn type_change_releases_and_clears_status_and_annotation() {
    let web = shown(&service("web", json!({})), &["192.0.2.1"], "default");
    let mut h = Harness::leader(std::slice::from_ref(&web));
    done(h.spawn(&web)).await.unwrap();
    assert_eq!(h.in_use("default"), 1);

    let mut cluster_ip = web.clone();
    cluster_ip.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    let task = h.spawn(&cluster_ip);
    let event = h.expect_event("ClearAssignment").await;
    assert!(
        event["note"].as_str().unwrap().contains("192.0.2.1"),
        "{event}"
    );
    h.expect_status("web", Value::Null).await;
    h.expect_pool("web", Value::Null).await;
    done(task).await.unwrap();
    assert_eq!(h.in_use("default"), 0);
}

#[tokio::test]
async fn deletion_frees_the_address_and_retries_waiting_services() {
    // Pool of three, all taken; a fourth Service waits.
    let names = ["a", "b", "c"];
    let ips = ["192.0.2.1", "192.0.2.2", "192.0.2.3"];
    let holders: Vec<Service> = names
        .iter()
        .zip(ips)
        .map(|(n, ip)| shown(&service(n, json!({})), &[ip], "default"))
        .collect();
    let waiting = service("d", json!({}));
    let mut all = holders.clone();
    all.push(waiting.clone());
    let mut h = Harness::leader(&all);
    while h.reconcile_all.try_recv().is_ok() {}

    let task = h.spawn(&waiting);
    let event = h.expect_event("AllocationFailed").await;
    assert_eq!(event["type"], "Warning");
    assert_eq!(
        event["note"],
        "Failed to allocate IP for Service shop/d: no auto-assign pool has a free IPv4 address"
    );
    done(task).await.unwrap();

    h.store
        .apply_watcher_event(&watcher::Event::Delete(holders[1].clone().into()));
    h.ctx.service_deleted(&holders[1].clone().into());
    assert_eq!(h.in_use("default"), 2);
    assert_eq!(
        h.reconcile_all.next().await,
        Some(()),
        "waiting Services are retried"
    );

    let task = h.spawn(&waiting);
    h.expect_event("IPAllocated").await;
    h.expect_status("d", json!([{"ip": "192.0.2.2"}])).await;
    h.expect_pool("d", json!("default")).await;
    done(task).await.unwrap();
}

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
    assert_eq!(h.metrics.config_loaded.get(), 1);
    assert_eq!(h.metrics.config_stale.get(), 0);

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
    assert_eq!(h.metrics.config_stale.get(), 1);
    assert_eq!(h.metrics.config_loaded.get(), 1);

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
    assert_eq!(h.metrics.config_stale.get(), 0);
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
