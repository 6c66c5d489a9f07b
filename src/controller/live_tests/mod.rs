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
    registry: Registry,
}

fn harness() -> Harness {
    harness_with_class(None)
}

fn harness_with_class(lb_class: Option<&str>) -> Harness {
    let (mock, api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(mock, "default");
    let (reader, store) = reflector::store::<CachedService>();
    let (tx, reconcile_all) = futures::channel::mpsc::unbounded();
    let registry = Registry::new();
    let metrics = ControllerMetrics::register(&registry).unwrap();
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: Some("test-replica".into()),
    };
    let ctx = Arc::new(Context::new(
        client,
        reporter,
        lb_class.map(str::to_owned),
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
        registry,
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

    /// A new Service `name` arrives and is reconciled: expects it to get `ip` from `pool`
    /// (event, status, annotation) and the reconcile to finish.
    async fn expect_allocation(&mut self, name: &str, ip: &str, pool: &str) {
        let svc = service(name, json!({}));
        self.store
            .apply_watcher_event(&watcher::Event::Apply(svc.clone().into()));
        let task = self.spawn(&svc);
        self.expect_event("IPAllocated").await;
        self.expect_status(name, json!([{ "ip": ip }])).await;
        self.expect_pool(name, json!(pool)).await;
        done(task).await.unwrap();
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

mod allocation;
mod crds;
mod differential;
mod faults;
mod overlaps;
mod resilience;
