//! The speaker's Kubernetes edge against recorded API exchanges: the watched objects go into
//! reflector stores through their writers (as the watches would put them), a tower-test mock
//! stands in for the API server, and each test asserts the exact event requests and the IPs this
//! node owns after each pass.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use serde_json::{Value, json};
use tower_test::mock::Handle;

use super::*;
use crate::election;

type Mock = Handle<Request<Body>, Response<Body>>;

const CONFIG: &str = "address-pools:\n\
- name: l2\n  protocol: layer2\n  addresses: [192.0.2.0/24]\n\
- name: transit\n  protocol: bgp\n  addresses: [198.51.100.0/24]\n";

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/shop/events";

/// Nodes ranked for `ip` (the election's own tests pin the ranking to DESIGN.md's vector).
fn ranked(ip: &str) -> Vec<&'static str> {
    election::rank(ip.parse().unwrap(), NODES)
}

fn live(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn configmap(data: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": "config", "namespace": "ferrolb-system"},
        "data": data,
    }))
    .unwrap()
}

fn service(name: &str, ip: &str, policy: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}")},
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
    }))
    .unwrap()
}

fn node(name: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "192.0.2.200"}],
        },
    }))
    .unwrap()
}

/// The one EndpointSlice of `service`, with a ready endpoint on `on`.
fn slice(service: &str, on: &str) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{service}-1"), "namespace": "shop",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.7"], "nodeName": on, "conditions": {"ready": true}}],
    }))
    .unwrap()
}

fn put<K>(writer: &mut Writer<K>, obj: K)
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    writer.apply_watcher_event(&watcher::Event::Apply(obj));
}

fn remove<K>(writer: &mut Writer<K>, obj: K)
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    writer.apply_watcher_event(&watcher::Event::Delete(obj));
}

struct Harness {
    me: &'static str,
    rec: Reconciler,
    events: EventWriter,
    api: Mock,
    services: Writer<Service>,
    slices: Writer<EndpointSlice>,
    configmaps: Writer<ConfigMap>,
}

/// One request the writer made, and how it was answered.
#[derive(Debug)]
struct Sent {
    method: Method,
    path: String,
    body: Value,
}

impl Harness {
    /// The speaker on `me` with three ready nodes and `CONFIG` loaded.
    fn new(me: &'static str) -> Self {
        let (mock, api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(mock, "default");
        let (services_r, services) = reflector::store();
        let (slices_r, slices) = reflector::store();
        let (nodes_r, mut nodes) = reflector::store();
        let (configmaps_r, mut configmaps) = reflector::store();
        for n in NODES {
            put(&mut nodes, node(n));
        }
        put(&mut configmaps, configmap(json!({"config": CONFIG})));
        let stores = Stores {
            services: services_r,
            slices: slices_r,
            nodes: nodes_r,
            configmaps: configmaps_r,
        };
        Harness {
            me,
            rec: Reconciler::new(me.into(), ViewOptions::default(), stores),
            events: EventWriter::new(client, me.into()),
            api,
            services,
            slices,
            configmaps,
        }
    }

    fn pass(&mut self, members: &[&str]) -> Pass {
        self.rec.pass(Some(&live(members)), true)
    }

    fn owned(&self) -> Vec<String> {
        self.rec.owned().keys().map(IpAddr::to_string).collect()
    }

    /// Runs the event writer on `assigned`, answering every request it makes with `status`
    /// (echoing the event on success), until the writer returns. The writer returning proves
    /// it left no request unanswered, so the list is every request it made.
    async fn record(&mut self, assigned: &[Assigned], status: StatusCode) -> Vec<Sent> {
        let mut sent = Vec::new();
        let record = self.events.record(assigned);
        tokio::pin!(record);
        let serve = async {
            loop {
                tokio::select! {
                    () = &mut record => break,
                    req = self.api.next_request() => {
                        let (req, send) = req.expect("the client is alive");
                        let method = req.method().clone();
                        let path = req.uri().path().to_owned();
                        let bytes = req.into_body().collect_bytes().await.unwrap();
                        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        let answer = if status.is_success() {
                            body.clone()
                        } else {
                            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                   "message": format!("events.events.k8s.io is refused ({})", status.as_u16()),
                                   "code": status.as_u16()})
                        };
                        send.send_response(
                            Response::builder()
                                .status(status)
                                .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                                .unwrap(),
                        );
                        sent.push(Sent { method, path, body });
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), serve)
            .await
            .expect("the event writer finished");
        sent
    }

    /// Asserts `sent` is exactly one `nodeAssigned` POST for the Service `name` from this node.
    fn assert_one_event(&self, sent: &[Sent], name: &str) {
        assert_eq!(sent.len(), 1, "{sent:#?}");
        let Sent { method, path, body } = &sent[0];
        assert_eq!(
            method,
            Method::POST,
            "a new event, not an update of an old one"
        );
        assert_eq!(path, EVENTS);
        assert_eq!(body["reason"], "nodeAssigned", "{body}");
        assert_eq!(body["type"], "Normal");
        assert_eq!(body["regarding"]["kind"], "Service");
        assert_eq!(body["regarding"]["namespace"], "shop");
        assert_eq!(body["regarding"]["name"], name);
        assert_eq!(body["regarding"]["uid"], format!("uid-{name}"));
        assert_eq!(
            body["note"],
            format!(
                "announcing from node \"{}\" with protocol \"layer2\"",
                self.me
            )
        );
        assert_eq!(body["reportingController"], "ferrolb-speaker");
        assert_eq!(body["reportingInstance"], self.me);
    }
}

/// Captures this thread's log lines (the tests run on tokio's current-thread runtime, so the
/// writer and the kube client's buffer task log here).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn new_announcer_records_one_node_assigned_event_then_nothing() {
    let ip = "192.0.2.10";
    let order = ranked(ip);
    let mut h = Harness::new(order[0]);
    put(&mut h.services, service("web", ip, "Cluster"));

    let pass = h.pass(&NODES);
    assert_eq!(pass.changed_from, Some(BTreeMap::new()));
    assert_eq!(h.owned(), [ip]);
    let sent = h.record(&pass.assigned, StatusCode::CREATED).await;
    h.assert_one_event(&sent, "web");

    // Nothing changed: no ownership change, no event.
    let pass = h.pass(&NODES);
    assert_eq!(pass.changed_from, None);
    assert!(pass.assigned.is_empty(), "{:?}", pass.assigned);
    assert!(
        h.record(&pass.assigned, StatusCode::CREATED)
            .await
            .is_empty()
    );
    assert_eq!(h.owned(), [ip]);

    // The other nodes see the same Service and record nothing: only the announcer does.
    for other in &order[1..] {
        let mut o = Harness::new(other);
        put(&mut o.services, service("web", ip, "Cluster"));
        let pass = o.pass(&NODES);
        assert!(o.owned().is_empty());
        assert!(pass.assigned.is_empty());
    }
}

#[tokio::test]
async fn announcer_moving_away_sends_nothing_and_coming_back_records_again() {
    let ip = "192.0.2.20";
    let order = ranked(ip);
    // This node is second in line: it announces only while the first is not a member.
    let mut h = Harness::new(order[1]);
    put(&mut h.services, service("api", ip, "Cluster"));
    let pass = h.pass(&NODES);
    assert!(h.owned().is_empty());
    assert!(pass.assigned.is_empty());

    let without_first: Vec<&str> = NODES.into_iter().filter(|n| *n != order[0]).collect();
    let pass = h.pass(&without_first);
    assert_eq!(h.owned(), [ip]);
    let sent = h.record(&pass.assigned, StatusCode::CREATED).await;
    h.assert_one_event(&sent, "api");

    // The first node is back: it announces; this node lets go and records nothing.
    let pass = h.pass(&NODES);
    assert_eq!(
        pass.changed_from.map(|b| b.len()),
        Some(1),
        "ownership changed"
    );
    assert!(h.owned().is_empty());
    assert!(pass.assigned.is_empty());

    // Gone again: the Service comes back to this node, a change worth a new event (a POST,
    // not a PATCH of the first one).
    let pass = h.pass(&without_first);
    assert_eq!(h.owned(), [ip]);
    let sent = h.record(&pass.assigned, StatusCode::CREATED).await;
    h.assert_one_event(&sent, "api");
}

#[tokio::test]
async fn local_policy_follows_the_endpoint_and_records_only_on_arrival() {
    let ip = "192.0.2.30";
    let order = ranked(ip);
    // The endpoint decides, not the ranking: put it on the last-ranked node first.
    let me = order[2];
    let mut h = Harness::new(me);
    put(&mut h.services, service("db", ip, "Local"));
    put(&mut h.slices, slice("db", order[0]));
    let pass = h.pass(&NODES);
    assert!(h.owned().is_empty(), "no endpoint here");
    assert!(pass.assigned.is_empty());

    put(&mut h.slices, slice("db", me));
    let pass = h.pass(&NODES);
    assert_eq!(h.owned(), [ip]);
    let sent = h.record(&pass.assigned, StatusCode::CREATED).await;
    h.assert_one_event(&sent, "db");

    put(&mut h.slices, slice("db", order[1]));
    let pass = h.pass(&NODES);
    assert!(pass.changed_from.is_some());
    assert!(h.owned().is_empty(), "the endpoint moved away");
    assert!(pass.assigned.is_empty());
}

#[tokio::test]
async fn refused_event_is_logged_and_never_blocks_or_repeats() {
    let (logs, _guard) = Logs::capture();
    for (status, ip) in [
        (StatusCode::FORBIDDEN, "192.0.2.40"),
        (StatusCode::INTERNAL_SERVER_ERROR, "192.0.2.41"),
    ] {
        let mut h = Harness::new(ranked(ip)[0]);
        put(&mut h.services, service("web", ip, "Cluster"));
        let pass = h.pass(&NODES);
        // Ownership is decided (and handed to the announcer) before any event is sent.
        assert_eq!(h.owned(), [ip]);
        let sent = h.record(&pass.assigned, status).await;
        assert_eq!(sent.len(), 1, "one attempt, no retry: {sent:#?}");
        let text = logs.text();
        assert!(
            text.contains("cannot record nodeAssigned event")
                && text.contains("shop/web")
                && text.contains(&format!("refused ({})", status.as_u16())),
            "{text}"
        );
        // The next passes do not try again either.
        for _ in 0..3 {
            let pass = h.pass(&NODES);
            assert!(pass.assigned.is_empty());
            assert!(h.record(&pass.assigned, status).await.is_empty());
        }
        assert_eq!(h.owned(), [ip], "still announced");
    }
}

#[tokio::test]
async fn invalid_configmap_keeps_the_last_good_config() {
    let (logs, _guard) = Logs::capture();
    let ip = "192.0.2.50";
    let mut h = Harness::new(ranked(ip)[0]);
    put(&mut h.services, service("web", ip, "Cluster"));
    let pass = h.pass(&NODES);
    assert_eq!(h.owned(), [ip]);
    assert_eq!(h.record(&pass.assigned, StatusCode::CREATED).await.len(), 1);

    // A typo in a range, the `config` key missing, the ConfigMap deleted: each keeps the IP.
    let broken = "address-pools:\n- name: l2\n  protocol: layer2\n  addresses: [192.0.2.0/33]\n";
    put(&mut h.configmaps, configmap(json!({"config": broken})));
    let pass = h.pass(&NODES);
    assert_eq!(pass.changed_from, None);
    assert!(pass.assigned.is_empty());
    assert_eq!(h.owned(), [ip]);
    assert!(logs.text().contains("config rejected"), "{}", logs.text());

    put(&mut h.configmaps, configmap(json!({"other": CONFIG})));
    assert_eq!(h.pass(&NODES).changed_from, None);
    assert!(logs.text().contains("no data.config"), "{}", logs.text());
    remove(&mut h.configmaps, configmap(json!({})));
    assert_eq!(h.pass(&NODES).changed_from, None);
    assert_eq!(h.owned(), [ip]);

    // A valid change applies: the pool moves away from the Service's IP.
    let moved = "address-pools:\n- name: l2\n  protocol: layer2\n  addresses: [203.0.113.0/24]\n";
    put(&mut h.configmaps, configmap(json!({"config": moved})));
    let pass = h.pass(&NODES);
    assert!(pass.changed_from.is_some());
    assert!(h.owned().is_empty());

    // And back: announced again, with a new event.
    put(&mut h.configmaps, configmap(json!({"config": CONFIG})));
    let pass = h.pass(&NODES);
    assert_eq!(h.owned(), [ip]);
    let sent = h.record(&pass.assigned, StatusCode::CREATED).await;
    h.assert_one_event(&sent, "web");
}

#[tokio::test]
async fn no_config_yet_announces_nothing() {
    let ip = "192.0.2.60";
    let mut h = Harness::new(ranked(ip)[0]);
    remove(&mut h.configmaps, configmap(json!({})));
    // A fresh reconciler that never saw a config.
    h.rec = Reconciler::new(h.me.into(), ViewOptions::default(), h.rec.stores().clone());
    put(&mut h.services, service("web", ip, "Cluster"));
    let pass = h.pass(&NODES);
    assert!(h.owned().is_empty());
    assert!(pass.assigned.is_empty());
    put(&mut h.configmaps, configmap(json!({"config": CONFIG})));
    h.pass(&NODES);
    assert_eq!(h.owned(), [ip]);
}

#[tokio::test]
async fn service_in_a_bgp_pool_is_not_announced() {
    let (logs, _guard) = Logs::capture();
    let bgp_ip = "198.51.100.7";
    for me in NODES {
        let mut h = Harness::new(me);
        put(&mut h.services, service("peered", bgp_ip, "Cluster"));
        put(&mut h.services, service("web", "192.0.2.70", "Cluster"));
        for _ in 0..2 {
            let pass = h.pass(&NODES);
            assert!(
                !h.owned().contains(&bgp_ip.to_string()),
                "{me} announces a BGP IP"
            );
            assert!(pass.assigned.iter().all(|a| a.service != "shop/peered"));
        }
    }
    // Somebody announces the layer-2 one, so the BGP one was not dropped for lack of a node.
    let mut web = Harness::new(ranked("192.0.2.70")[0]);
    put(&mut web.services, service("web", "192.0.2.70", "Cluster"));
    web.pass(&NODES);
    assert_eq!(web.owned(), ["192.0.2.70"]);
    let warnings = logs.text().matches("BGP pool").count();
    assert_eq!(
        warnings,
        NODES.len(),
        "one warning per speaker, not per pass"
    );
}

#[tokio::test]
async fn closed_election_gate_owns_and_records_nothing() {
    let ip = "192.0.2.80";
    let order = ranked(ip);
    // A starting speaker that has not joined sees only itself; on paper it wins everything.
    let mut h = Harness::new(order[2]);
    put(&mut h.services, service("web", ip, "Cluster"));
    let pass = h.rec.pass(Some(&live(&[order[2]])), false);
    assert!(h.owned().is_empty());
    assert!(
        pass.assigned.is_empty(),
        "no event for what it does not announce"
    );
    // Joined: the real owner is another node, so still nothing here, and never an event.
    let pass = h.pass(&NODES);
    assert!(h.owned().is_empty());
    assert!(pass.assigned.is_empty());
}

#[tokio::test]
async fn queued_events_are_posted_in_order_from_their_own_task() {
    let first = "192.0.2.90";
    let me = ranked(first)[0];
    // A second IP this node also wins, so both Services are announced here.
    let second = (100..200)
        .map(|i| format!("192.0.2.{i}"))
        .find(|ip| ranked(ip)[0] == me)
        .unwrap();
    let mut h = Harness::new(me);
    let queue = h.events.clone().spawn();
    put(&mut h.services, service("web", first, "Cluster"));
    queue.send(h.pass(&NODES).assigned);

    let (req, held) = tokio::time::timeout(Duration::from_secs(10), h.api.next_request())
        .await
        .expect("the worker posts the event")
        .expect("the client is alive");
    assert_eq!((req.method(), req.uri().path()), (&Method::POST, EVENTS));

    // While that POST is unanswered, the next pass still decides and queues without waiting.
    put(&mut h.services, service("api", &second, "Cluster"));
    queue.send(h.pass(&NODES).assigned);
    assert_eq!(h.owned().len(), 2);

    held.send_error("the API server went away");
    let (req, _send) = tokio::time::timeout(Duration::from_secs(10), h.api.next_request())
        .await
        .expect("the worker goes on to the next event")
        .expect("the client is alive");
    let bytes = req.into_body().collect_bytes().await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["regarding"]["name"], "api");
}

#[test]
fn ready_needs_sockets_and_a_joined_gossip_in_a_cluster() {
    assert!(!ready(false, false, false, 1), "no sockets yet");
    assert!(ready(true, false, false, 3), "gossip off: sockets suffice");
    assert!(!ready(true, true, false, 3), "gossip on, not joined");
    assert!(ready(true, true, true, 3));
    assert!(
        ready(true, true, false, 1),
        "a cluster of one has nobody to join"
    );
}
