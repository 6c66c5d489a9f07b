//! The speaker's Kubernetes edge against recorded API exchanges: the watched objects go into
//! reflector stores through their writers (as the watches would put them), a tower-test mock
//! stands in for the API server, and each test asserts the exact event requests and the IPs this
//! node owns after each pass.

use std::collections::BTreeSet;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::client::Body;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use serde_json::{Value, json};
use tower_test::mock::Handle;

use super::*;
use crate::election;
use crate::speaker::kubernetes::cache;
use crate::speaker::kubernetes::candidacy::ready;
use crate::speaker::kubernetes::events::EventWriter;
use crate::speaker::kubernetes::store::Decoded;

type Mock = Handle<Request<Body>, Response<Body>>;

const CONFIG: &str = "address-pools:\n\
- name: l2\n  protocol: layer2\n  addresses: [192.0.2.0/24]\n\
- name: l2-v6\n  protocol: layer2\n  addresses: [2001:db8::/120]\n\
- name: transit\n  protocol: bgp\n  addresses: [198.51.100.0/24]\n";

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/shop/events";

/// Nodes ranked for `ip` (the election's own tests pin the ranking to a fixed vector).
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
    service_ips(name, &[ip], policy)
}

/// A Service whose status shows `ips`, in this order.
fn service_ips(name: &str, ips: &[&str], policy: &str) -> Service {
    let ingress: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}")},
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy},
        "status": {"loadBalancer": {"ingress": ingress}},
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
    slice_with(service, &[(on, Some(true), None)])
}

/// The one EndpointSlice of `service`: endpoints as (node, ready, serving).
fn slice_with(service: &str, endpoints: &[(&str, Option<bool>, Option<bool>)]) -> EndpointSlice {
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|(on, ready, serving)| {
            json!({"addresses": ["10.0.0.7"], "nodeName": on,
                   "conditions": {"ready": ready, "serving": serving}})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("{service}-1"), "namespace": "shop",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": eps,
    }))
    .unwrap()
}

/// A cache as a watch feeds it: each event goes in the way the speaker's watch task puts it,
/// recording what changed.
struct Fed<E> {
    feed: Box<Feed<E>>,
}

type Feed<E> = dyn FnMut(&watcher::Event<E>) + Send;

/// A projected cache ([`cache::apply`]).
fn view_feed<V: cache::Watched>(changes: &Changes) -> (Store<V>, Fed<Decoded<V>>) {
    let mut writer = crate::speaker::kubernetes::store::Writer::default();
    let reader = writer.as_reader();
    let changes = changes.clone();
    let feed =
        Box::new(move |e: &watcher::Event<Decoded<V>>| cache::apply(&mut writer, &changes, e));
    (reader, Fed { feed })
}

/// A whole-object cache ([`cache::apply_whole`]; `config`: the config objects).
fn whole_feed<K>(changes: &Changes, config: bool) -> (ReflectorStore<K>, Fed<K>)
where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let mut writer = Writer::default();
    let reader = writer.as_reader();
    let changes = changes.clone();
    let feed =
        Box::new(move |e: &watcher::Event<K>| cache::apply_whole(&mut writer, &changes, e, config));
    (reader, Fed { feed })
}

fn put<T, E: From<T>>(fed: &mut Fed<E>, obj: T) {
    (fed.feed)(&watcher::Event::Apply(E::from(obj)));
}

fn remove<T, E: From<T>>(fed: &mut Fed<E>, obj: T) {
    (fed.feed)(&watcher::Event::Delete(E::from(obj)));
}

/// What feeds the caches of [`Stores`].
struct Feeds {
    services: Fed<Decoded<ServiceView>>,
    slices: Fed<Decoded<SliceView>>,
    nodes: Fed<Decoded<NodeView>>,
    configmaps: Fed<ConfigMap>,
    speakers: Fed<Pod>,
}

/// Caches holding the three ready `NODES` and `CONFIG`, and their feeds.
fn feeds() -> (Stores, Feeds) {
    let changes = Changes::default();
    let (services_r, services) = view_feed(&changes);
    let (slices_r, slices) = view_feed(&changes);
    let (nodes_r, mut nodes) = view_feed::<NodeView>(&changes);
    let (configmaps_r, mut configmaps) = whole_feed(&changes, true);
    let (speakers_r, speakers) = whole_feed(&changes, false);
    for n in NODES {
        put(&mut nodes, node(n));
    }
    put(&mut configmaps, configmap(json!({"config": CONFIG})));
    let stores = Stores {
        services: services_r,
        slices: slices_r,
        nodes: nodes_r,
        configmaps: configmaps_r,
        speakers: speakers_r,
        metallb: None,
        changes,
    };
    let feeds = Feeds {
        services,
        slices,
        nodes,
        configmaps,
        speakers,
    };
    (stores, feeds)
}

struct Harness {
    me: &'static str,
    rec: Reconciler,
    events: EventWriter,
    api: Mock,
    services: Fed<Decoded<ServiceView>>,
    slices: Fed<Decoded<SliceView>>,
    configmaps: Fed<ConfigMap>,
    speakers: Fed<Pod>,
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
        let (stores, feeds) = feeds();
        let Feeds {
            services,
            slices,
            configmaps,
            speakers,
            ..
        } = feeds;
        Harness {
            me,
            rec: Reconciler::new(me.into(), ViewOptions::default(), stores),
            events: EventWriter::new(client, me.into()),
            api,
            services,
            slices,
            configmaps,
            speakers,
        }
    }

    /// Puts the Service and a ready endpoint for it (on the first node: with the `Cluster`
    /// policy where it runs does not matter), so it is announced.
    fn add(&mut self, svc: Service) {
        let name = svc.metadata.name.clone().unwrap_or_default();
        put(&mut self.services, svc);
        self.serve(&name);
    }

    /// Gives Service `name` one ready endpoint on the first node.
    fn serve(&mut self, name: &str) {
        put(&mut self.slices, slice(name, NODES[0]));
    }

    /// Puts the Service without any endpoint.
    fn services_only(&mut self, svc: Service) {
        put(&mut self.services, svc);
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

use crate::speaker::kubernetes::test_logs::Logs;

mod decisions;
mod events;
mod incremental;
mod placement;
mod speakers;
mod unannounced;
