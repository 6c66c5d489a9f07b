//! The speaker's cached form of the objects it watches, and what changed since the last pass.
//!
//! Every speaker caches every Service, EndpointSlice and Node of the cluster for as long as it
//! runs, so the per-object size is its memory, and the election runs over them after every
//! change. The watches decode straight into the projections below, cached by
//! [`super::store`] under their `namespace/name` with no metadata, which keep only what the
//! election reads: a Service is its key, type, class, traffic policy, labels and status IPs
//! (not its spec, annotations or managed fields); a slice is its Service and each endpoint's
//! node and conditions (not addresses, ports, targets); a Node is its name, labels, the three
//! conditions and the gossip address (not its images list, capacity, heartbeats).
//!
//! A projection equal to the cached one is no change: a Node's heartbeat or a Service's
//! annotation edit never wakes the election. [`Changes`] tells the next pass which Services a
//! change touched, so it re-decides only those (and whatever shares an address with them);
//! only changes that concern every Service (a Node, the config, a re-list) re-decide all.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::{Node, ObjectReference, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::watcher;
use serde::Deserialize;
use tokio::sync::Notify;

use crate::config::Labels;
use crate::election::{EndpointStatus, NodeStatus};
use crate::k8s::endpoints::{service_of_slice, slice_endpoints};
use crate::k8s::node::{node_address, node_status};
use crate::k8s::service::{class_is_ours, is_load_balancer, is_local_policy, status_ips};

use super::status::{Observed, StatusKind};
use super::store::{Decoded, View, Writer};

/// `namespace/name` of a namespaced object (namespace `default` when absent, as `kubectl
/// apply` would), or the name of a cluster-scoped one.
fn object_key(meta: &ObjectMeta, namespaced: bool) -> Arc<str> {
    let name = meta.name.as_deref().unwrap_or("");
    match (namespaced, meta.namespace.as_deref()) {
        (true, ns) => format!("{}/{name}", ns.unwrap_or("default")).into(),
        (false, _) => name.into(),
    }
}

fn boxed(s: Option<&String>) -> Option<Box<str>> {
    s.map(|s| s.as_str().into())
}

/// A Service as the speaker caches it.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceView {
    /// `namespace/name`, the key of every decision about it.
    key: Arc<str>,
    /// For the events about it.
    uid: Option<Uid>,
    /// For advertisements' service selectors.
    labels: PackedLabels,
    load_balancer: bool,
    class: Option<Box<str>>,
    local: bool,
    ips: Arc<[IpAddr]>,
}

impl View for ServiceView {
    type Object = Service;
    type Wire = super::wire::SlimService;

    fn project(svc: Service) -> Self {
        Self {
            key: object_key(&svc.metadata, true),
            uid: svc.metadata.uid.as_deref().map(Uid::new),
            load_balancer: is_load_balancer(&svc),
            local: is_local_policy(&svc),
            ips: status_ips(&svc).into(),
            class: boxed(
                svc.spec
                    .as_ref()
                    .and_then(|s| s.load_balancer_class.as_ref()),
            ),
            labels: PackedLabels::new(svc.metadata.labels.as_ref()),
        }
    }

    fn key(&self) -> &Arc<str> {
        &self.key
    }
}

impl ServiceView {
    /// `namespace/name`, as [`crate::k8s::service::service_key`] gives for the full Service.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The shared key, for maps that hold it.
    pub fn shared_key(&self) -> &Arc<str> {
        &self.key
    }

    /// Whether ferrolb announces this Service: a LoadBalancer of our class
    /// ([`crate::k8s::service::is_handled`]).
    pub fn is_handled(&self, lb_class: Option<&str>) -> bool {
        self.load_balancer && class_is_ours(self.class.as_deref(), lb_class)
    }

    /// `externalTrafficPolicy: Local`.
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// The IPs of `status.loadBalancer.ingress`, in order.
    pub fn ips(&self) -> &[IpAddr] {
        &self.ips
    }

    /// The IPs, shared with the pass's offers and results.
    pub fn shared_ips(&self) -> &Arc<[IpAddr]> {
        &self.ips
    }

    /// Its labels (built on each call: only advertisements that select Services by label read
    /// them).
    pub fn labels(&self) -> Labels {
        self.labels.unpack()
    }

    /// The reference events about it carry.
    pub fn object_ref(&self) -> ObjectReference {
        let (namespace, name) = self.key.split_once('/').unwrap_or(("default", &self.key));
        ObjectReference {
            api_version: Some(<Service as k8s_openapi::Resource>::API_VERSION.to_owned()),
            kind: Some(<Service as k8s_openapi::Resource>::KIND.to_owned()),
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            uid: self.uid.as_ref().map(Uid::to_string),
            ..ObjectReference::default()
        }
    }
}

/// A `metadata.uid`. The API server's are UUIDs, kept as their 16 bytes rather than a 36-byte
/// string on the heap (one allocation per Service saved); anything else verbatim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Uid {
    Uuid([u8; 16]),
    Other(Box<str>),
}

/// Where a UUID's text has its hyphens.
const UUID_HYPHENS: [usize; 4] = [8, 13, 18, 23];

impl Uid {
    pub fn new(uid: &str) -> Self {
        Self::uuid(uid).map_or_else(|| Uid::Other(uid.into()), Uid::Uuid)
    }

    /// The bytes of a UUID in its canonical text (lower-case hex, hyphens at 8-4-4-4-12), the
    /// only form [`Uid::to_string`] gives back unchanged.
    fn uuid(text: &str) -> Option<[u8; 16]> {
        let text = text.as_bytes();
        if text.len() != 36 {
            return None;
        }
        let mut out = [0u8; 16];
        let mut nibbles = 0;
        for (i, &c) in text.iter().enumerate() {
            if UUID_HYPHENS.contains(&i) {
                if c != b'-' {
                    return None;
                }
                continue;
            }
            let v = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                _ => return None,
            };
            out[nibbles / 2] |= if nibbles % 2 == 0 { v << 4 } else { v };
            nibbles += 1;
        }
        Some(out)
    }
}

impl std::fmt::Display for Uid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Uid::Other(text) => f.write_str(text),
            Uid::Uuid(bytes) => {
                for (i, b) in bytes.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        f.write_str("-")?;
                    }
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// An object's labels in one allocation: `key\0value\0` for each, in key order. A
/// `BTreeMap` holding even one label allocates a node with room for eleven (over 500 bytes
/// with `String`s); every Service of a cluster carries a few. Label keys and values cannot
/// hold a NUL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackedLabels(Option<Box<str>>);

impl PackedLabels {
    pub fn new(labels: Option<&Labels>) -> Self {
        let packed: String = labels
            .into_iter()
            .flatten()
            .filter(|(k, v)| !k.contains('\0') && !v.contains('\0'))
            .flat_map(|(k, v)| [k.as_str(), "\0", v.as_str(), "\0"])
            .collect();
        Self(
            Some(packed)
                .filter(|p| !p.is_empty())
                .map(String::into_boxed_str),
        )
    }

    pub fn unpack(&self) -> Labels {
        let mut parts = self.0.as_deref().unwrap_or("").split_terminator('\0');
        let mut out = Labels::new();
        while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
            out.insert(k.to_owned(), v.to_owned());
        }
        out
    }
}

/// An EndpointSlice as the speaker caches it: its Service and each endpoint's node and
/// conditions.
#[derive(Clone, Debug, PartialEq)]
pub struct SliceView {
    /// `namespace/name` of the slice.
    key: Arc<str>,
    /// `namespace/name` of the Service it belongs to; `None` for a slice without the label.
    service: Option<Arc<str>>,
    endpoints: Box<[EndpointStatus]>,
}

impl View for SliceView {
    type Object = EndpointSlice;
    type Wire = super::wire::SlimSlice;

    fn project(slice: EndpointSlice) -> Self {
        Self {
            key: object_key(&slice.metadata, true),
            service: service_of_slice(&slice).map(Arc::from),
            endpoints: slice_endpoints(&slice).into_boxed_slice(),
        }
    }

    fn key(&self) -> &Arc<str> {
        &self.key
    }
}

impl SliceView {
    /// `namespace/name` of the slice itself.
    pub fn key(&self) -> &Arc<str> {
        &self.key
    }

    pub fn service(&self) -> Option<&str> {
        self.service.as_deref()
    }

    /// The Service's key, shared.
    pub fn shared_service(&self) -> Option<&Arc<str>> {
        self.service.as_ref()
    }

    pub fn endpoints(&self) -> &[EndpointStatus] {
        &self.endpoints
    }
}

/// A Node as the speaker caches it.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeView {
    name: Arc<str>,
    /// For node selectors.
    labels: Option<Labels>,
    status: Option<NodeStatus>,
    address: Option<IpAddr>,
}

impl View for NodeView {
    type Object = Node;
    type Wire = super::wire::SlimNode;

    fn project(node: Node) -> Self {
        Self {
            name: object_key(&node.metadata, false),
            status: node_status(&node),
            address: node_address(&node),
            labels: node.metadata.labels,
        }
    }

    fn key(&self) -> &Arc<str> {
        &self.name
    }
}

impl NodeView {
    pub fn name(&self) -> Option<&str> {
        Some(&*self.name).filter(|n| !n.is_empty())
    }

    pub fn labels(&self) -> Option<&Labels> {
        self.labels.as_ref()
    }

    /// What the election reads; `None` for a Node without a name.
    pub fn status(&self) -> Option<&NodeStatus> {
        self.status.as_ref()
    }

    /// The InternalIP (else first address): where its host-network speaker gossips.
    pub fn address(&self) -> Option<IpAddr> {
        self.address
    }
}

/// The wire form a [`StatusView`] of kind `K` is read from: its metadata and status, nothing
/// typed beyond that.
#[derive(Clone, Debug, Deserialize)]
pub struct StatusObject<K> {
    #[serde(deserialize_with = "super::wire::slim_meta")]
    metadata: ObjectMeta,
    #[serde(default)]
    status: Option<serde_json::Value>,
    #[serde(skip)]
    kind: std::marker::PhantomData<K>,
}

impl<K: StatusKind> Resource for StatusObject<K> {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        K::KIND.into()
    }

    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        crate::config::crd::GROUP.into()
    }

    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        "v1beta1".into()
    }

    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        K::PLURAL.into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A per-Service status object of kind `K` (`ServiceL2Status`, `ServiceBGPStatus`) as the
/// speaker caches it: what [`Observed`] reads (its name, the node and Service labels, the list
/// its status holds), not its managed fields, owner reference or the rest of its status.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusView<K> {
    name: Arc<str>,
    /// `None` for an object without the three labels (not one a speaker wrote).
    observed: Option<Observed>,
    kind: std::marker::PhantomData<K>,
}

impl<K: StatusKind> View for StatusView<K> {
    type Object = StatusObject<K>;
    type Wire = StatusObject<K>;

    fn project(o: StatusObject<K>) -> Self {
        let name = object_key(&o.metadata, false);
        let observed = o.metadata.name.as_ref().and_then(|_| {
            let labels = o.metadata.labels.as_ref()?;
            Observed::from_parts::<K>(&name, labels, o.status.as_ref())
        });
        Self {
            name,
            observed,
            kind: std::marker::PhantomData,
        }
    }

    fn key(&self) -> &Arc<str> {
        &self.name
    }
}

impl<K> StatusView<K> {
    pub fn observed(&self) -> Option<&Observed> {
        self.observed.as_ref()
    }
}

impl<K: StatusKind> From<StatusObject<K>> for Decoded<StatusView<K>> {
    fn from(object: StatusObject<K>) -> Self {
        Decoded::new(object)
    }
}

/// What a watch event for an API object carries.
macro_rules! decoded_from {
    ($($object:ty => $view:ty),*) => {$(
        impl From<$object> for Decoded<$view> {
            fn from(object: $object) -> Self {
                Decoded::new(object)
            }
        }
    )*};
}

decoded_from!(Service => ServiceView, EndpointSlice => SliceView, Node => NodeView);

/// What a cached object's change concerns.
pub trait Watched: View {
    fn mark(&self, pending: &mut Pending);
}

impl Watched for ServiceView {
    fn mark(&self, pending: &mut Pending) {
        pending.services.insert(self.key().to_owned());
    }
}

impl Watched for SliceView {
    fn mark(&self, pending: &mut Pending) {
        if let Some(svc) = self.service() {
            pending.services.insert(svc.to_owned());
        }
        pending.slices.push(self.key.clone());
    }
}

impl Watched for NodeView {
    fn mark(&self, pending: &mut Pending) {
        pending.all = true;
    }
}

/// What changed since the last pass took it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Something every Service's decision reads changed (a Node, or a re-list that may have
    /// missed deletes): decide them all again.
    pub all: bool,
    /// The config objects changed: load them again.
    pub config: bool,
    /// Services whose object or endpoints changed, `namespace/name`.
    pub services: BTreeSet<String>,
    /// EndpointSlices that changed (or went), `namespace/name`, so the pass can update its
    /// per-Service index.
    pub slices: Vec<Arc<str>>,
}

impl Pending {
    fn merge(&mut self, other: Pending) {
        self.all |= other.all;
        self.config |= other.config;
        self.services.extend(other.services);
        self.slices.extend(other.slices);
    }
}

/// The change log the watches write and the speaker's loop drains, with its wake-up.
#[derive(Clone)]
pub struct Changes {
    pending: Arc<Mutex<Pending>>,
    wake: Arc<Notify>,
}

impl Default for Changes {
    /// Starts with everything pending: the first pass decides from scratch.
    fn default() -> Self {
        let first = Pending {
            all: true,
            config: true,
            services: BTreeSet::new(),
            slices: Vec::new(),
        };
        Self {
            pending: Arc::new(Mutex::new(first)),
            wake: Arc::new(Notify::new()),
        }
    }
}

impl Changes {
    fn update(&self, f: impl FnOnce(&mut Pending)) {
        // A panic while holding the lock cannot leave `Pending` half-written (every update is a
        // flag or one insert), so a poisoned lock is still sound to use.
        f(&mut self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        self.wake.notify_one();
    }

    /// The config objects changed.
    pub fn config(&self) {
        self.update(|p| p.config = true);
    }

    /// Something outside the caches changed (speaker pods, interfaces): run a pass, which
    /// compares what it depends on.
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// Drains what changed.
    pub fn take(&self) -> Pending {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Resolves once something changed since the last `take` (or a poke).
    pub async fn changed(&self) {
        self.wake.notified().await;
    }
}

/// Applies one watch event to the cache and records what it changed: an object the same as
/// the one cached changes nothing (the projection has no resourceVersion, so a Node's
/// heartbeat is no change); a completed re-list may have replaced anything.
pub fn apply<K: Watched>(
    writer: &mut Writer<K>,
    changes: &Changes,
    event: &watcher::Event<Decoded<K>>,
) {
    let mut marks = Pending::default();
    match event {
        watcher::Event::Apply(obj) => match writer.get(obj.view.key()) {
            Some(old) if *old == obj.view => {}
            Some(old) => {
                // The old object's Service too: a slice moved to another Service changes both.
                old.mark(&mut marks);
                obj.view.mark(&mut marks);
            }
            None => obj.view.mark(&mut marks),
        },
        watcher::Event::Delete(obj) => {
            // The cached object's Service too: the pass looks for a slice under the Service it
            // was cached with, should the deleted object say another.
            if let Some(old) = writer.get(obj.view.key())
                && *old != obj.view
            {
                old.mark(&mut marks);
            }
            obj.view.mark(&mut marks);
        }
        watcher::Event::Init | watcher::Event::InitApply(_) => {}
        watcher::Event::InitDone => marks.all = true,
    }
    writer.apply(event);
    if marks != Pending::default() {
        changes.update(|p| p.merge(marks));
    }
}

/// Applies an event of a kind whose every change concerns the whole pass: the config objects
/// (`config`: loaded again) or the speaker pods (a pass runs and compares what it reads).
pub fn apply_whole<K>(
    writer: &mut kube::runtime::reflector::store::Writer<K>,
    changes: &Changes,
    event: &watcher::Event<K>,
    config: bool,
) where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    writer.apply_watcher_event(event);
    if config {
        changes.config();
    } else {
        changes.poke();
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
