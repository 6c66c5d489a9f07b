//! The speaker's cached form of the objects it watches, and what changed since the last pass.
//!
//! Every speaker caches every Service, EndpointSlice and Node of the cluster for as long as it
//! runs, so the per-object size is its memory, and the election runs over them after every
//! change. The watches decode straight into the projections below, which keep only what the
//! election reads: a Service is its key, type, class, traffic policy, labels and status IPs
//! (not its spec, annotations or managed fields); a slice is its Service and each endpoint's
//! node and conditions (not addresses, ports, targets); a Node is its name, labels, the three
//! conditions and the gossip address (not its images list, capacity, heartbeats).
//!
//! A projection equal to the cached one is no change: a Node's heartbeat or a Service's
//! annotation edit never wakes the election. [`Changes`] tells the next pass which Services a
//! change touched, so it re-decides only those (and whatever shares an address with them);
//! only changes that concern every Service (a Node, the config, a re-list) re-decide all.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use serde::Deserialize;
use tokio::sync::Notify;

use crate::config::Labels;
use crate::election::{EndpointStatus, NodeStatus};
use crate::k8s::endpoints::{service_of_slice, slice_endpoints};
use crate::k8s::node::{node_address, node_status};
use crate::k8s::service::{class_is_ours, is_load_balancer, is_local_policy, status_ips};

use super::l2status::Observed;

/// Only what identifies the object (and lets the watch resume: kube-runtime's watcher needs
/// each object's resourceVersion), plus labels where selectors read them.
fn identity(meta: ObjectMeta, keep_labels: bool) -> ObjectMeta {
    ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resource_version: meta.resource_version,
        labels: meta.labels.filter(|_| keep_labels),
        ..ObjectMeta::default()
    }
}

/// A Service as the speaker caches it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(from = "Service")]
pub struct ServiceView {
    /// Name, namespace, uid, resourceVersion and labels (advertisements' service selectors).
    metadata: ObjectMeta,
    /// `namespace/name`, the key of every decision about it.
    key: Box<str>,
    load_balancer: bool,
    class: Option<Box<str>>,
    local: bool,
    ips: Box<[IpAddr]>,
}

impl From<Service> for ServiceView {
    fn from(svc: Service) -> Self {
        let class = svc
            .spec
            .as_ref()
            .and_then(|s| s.load_balancer_class.clone())
            .map(String::into_boxed_str);
        let key = service_ref_key(
            svc.metadata.namespace.as_deref(),
            svc.metadata.name.as_deref().unwrap_or(""),
        );
        Self {
            key: key.into_boxed_str(),
            load_balancer: is_load_balancer(&svc),
            local: is_local_policy(&svc),
            ips: status_ips(&svc).into_boxed_slice(),
            class,
            metadata: identity(svc.metadata, true),
        }
    }
}

impl ServiceView {
    /// `namespace/name`, as [`crate::k8s::service::service_key`] gives for the full Service.
    pub fn key(&self) -> &str {
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

    pub fn labels(&self) -> Option<&Labels> {
        self.metadata.labels.as_ref()
    }
}

/// `namespace/name` (namespace `default` when absent, as `kubectl apply` would).
fn service_ref_key(namespace: Option<&str>, name: &str) -> String {
    format!("{}/{name}", namespace.unwrap_or("default"))
}

/// An EndpointSlice as the speaker caches it: its Service and each endpoint's node and
/// conditions.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(from = "EndpointSlice")]
pub struct SliceView {
    metadata: ObjectMeta,
    /// `namespace/name` of the Service it belongs to; `None` for a slice without the label.
    service: Option<Box<str>>,
    endpoints: Box<[EndpointStatus]>,
}

impl From<EndpointSlice> for SliceView {
    fn from(slice: EndpointSlice) -> Self {
        Self {
            service: service_of_slice(&slice).map(String::into_boxed_str),
            endpoints: slice_endpoints(&slice).into_boxed_slice(),
            metadata: identity(slice.metadata, false),
        }
    }
}

impl SliceView {
    pub fn service(&self) -> Option<&str> {
        self.service.as_deref()
    }

    pub fn endpoints(&self) -> &[EndpointStatus] {
        &self.endpoints
    }
}

/// A Node as the speaker caches it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(from = "Node")]
pub struct NodeView {
    /// Name, resourceVersion and labels (node selectors).
    metadata: ObjectMeta,
    status: Option<NodeStatus>,
    address: Option<IpAddr>,
}

impl From<Node> for NodeView {
    fn from(node: Node) -> Self {
        Self {
            status: node_status(&node),
            address: node_address(&node),
            metadata: identity(node.metadata, true),
        }
    }
}

impl NodeView {
    pub fn name(&self) -> Option<&str> {
        self.metadata.name.as_deref()
    }

    pub fn labels(&self) -> Option<&Labels> {
        self.metadata.labels.as_ref()
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

/// `Resource` for a projection of a built-in or MetalLB kind.
macro_rules! core_resource {
    ($view:ty, $kind:literal, $group:expr, $version:literal, $plural:literal, $scope:ty) => {
        impl Resource for $view {
            type DynamicType = ();
            type Scope = $scope;

            fn kind(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($kind)
            }

            fn group(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($group)
            }

            fn version(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($version)
            }

            fn plural(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($plural)
            }

            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }

            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

core_resource!(
    ServiceView,
    "Service",
    "",
    "v1",
    "services",
    NamespaceResourceScope
);
core_resource!(
    SliceView,
    "EndpointSlice",
    "discovery.k8s.io",
    "v1",
    "endpointslices",
    NamespaceResourceScope
);
core_resource!(NodeView, "Node", "", "v1", "nodes", ClusterResourceScope);
core_resource!(
    L2StatusView,
    "ServiceL2Status",
    crate::config::crd::GROUP,
    "v1beta1",
    "servicel2statuses",
    NamespaceResourceScope
);

/// A `ServiceL2Status` as the speaker caches it: what [`Observed`] reads (its name, the node and
/// Service labels, `status.interfaces`), not its managed fields, owner reference or the rest
/// of its status. Every speaker caches every node's objects, one per announced Service.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(from = "L2StatusObject")]
pub struct L2StatusView {
    /// Name, namespace, uid and resourceVersion.
    metadata: ObjectMeta,
    /// `None` for an object without the three labels (not one a speaker wrote).
    observed: Option<Observed>,
}

/// The wire form a [`L2StatusView`] is read from.
#[derive(Deserialize)]
struct L2StatusObject {
    metadata: ObjectMeta,
    #[serde(default)]
    status: Option<serde_json::Value>,
}

impl From<L2StatusObject> for L2StatusView {
    fn from(o: L2StatusObject) -> Self {
        let observed = o.metadata.name.as_deref().and_then(|name| {
            let labels = o.metadata.labels.as_ref()?;
            Observed::from_parts(name, labels, o.status.as_ref())
        });
        Self {
            observed,
            metadata: identity(o.metadata, false),
        }
    }
}

impl L2StatusView {
    pub fn observed(&self) -> Option<&Observed> {
        self.observed.as_ref()
    }
}

/// What a cached object's change concerns.
pub trait Watched: Resource<DynamicType = ()> + Clone + 'static {
    fn mark(&self, pending: &mut Pending);

    /// Whether `other` decides the same: equal but for the resourceVersion, which every update
    /// bumps (a Node's heartbeat too).
    fn same(&self, other: &Self) -> bool;
}

/// Equal views, whatever their resourceVersions.
fn same_but_version<K: Resource + Clone + PartialEq>(a: &K, b: &K) -> bool {
    let mut b = b.clone();
    b.meta_mut()
        .resource_version
        .clone_from(&a.meta().resource_version);
    *a == b
}

impl Watched for ServiceView {
    fn same(&self, other: &Self) -> bool {
        same_but_version(self, other)
    }

    fn mark(&self, pending: &mut Pending) {
        pending.services.insert(self.key().to_owned());
    }
}

impl Watched for SliceView {
    fn same(&self, other: &Self) -> bool {
        same_but_version(self, other)
    }

    fn mark(&self, pending: &mut Pending) {
        if let Some(svc) = self.service() {
            pending.services.insert(svc.to_owned());
        }
        pending.slices.push(ObjectRef::from_obj(self));
    }
}

impl Watched for NodeView {
    fn same(&self, other: &Self) -> bool {
        same_but_version(self, other)
    }

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
    /// EndpointSlices that changed (or went), so the pass can update its per-Service index.
    pub slices: Vec<ObjectRef<SliceView>>,
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
/// the one cached changes nothing; a completed re-list may have replaced anything.
pub fn apply<K: Watched>(writer: &mut Writer<K>, changes: &Changes, event: &watcher::Event<K>) {
    let mut marks = Pending::default();
    let cached = |obj: &K| writer.as_reader().get(&ObjectRef::from_obj(obj));
    match event {
        watcher::Event::Apply(obj) => match cached(obj) {
            Some(old) if old.same(obj) => {}
            Some(old) => {
                // The old object's Service too: a slice moved to another Service changes both.
                old.mark(&mut marks);
                obj.mark(&mut marks);
            }
            None => obj.mark(&mut marks),
        },
        watcher::Event::Delete(obj) => obj.mark(&mut marks),
        watcher::Event::Init | watcher::Event::InitApply(_) => {}
        watcher::Event::InitDone => marks.all = true,
    }
    writer.apply_watcher_event(event);
    if marks != Pending::default() {
        changes.update(|p| p.merge(marks));
    }
}

/// Applies an event of a kind whose every change concerns the whole pass: the config objects
/// (`config`: loaded again) or the speaker pods (a pass runs and compares what it reads).
pub fn apply_whole<K>(
    writer: &mut Writer<K>,
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
