//! The controller's form of a Service: the view the reconcile core reads, holding only what it
//! reads, in compact containers.
//!
//! The watch cache holds every Service in the cluster for as long as the controller runs, so
//! its per-object size is the controller's memory. A decoded `k8s_openapi` Service is about
//! 2.4 KB on the heap even with managed fields stripped (824 bytes of mostly-empty struct, a
//! `BTreeMap` node of ~0.5 KB for the annotations and another for the selector, cluster IPs,
//! node ports...). [`CachedService`] decodes the same JSON through `Service` and keeps only
//! what [`super::reconcile`] reads: the watch decodes straight into it, `ferrolb plan` converts
//! its parsed Services with the same `From<Service>`, and a Service re-read after a write
//! conflict is decoded into it too, so every path reads a Service alike. The request is parsed
//! by [`crate::k8s::service::request_for`] through [`ServiceFields`], the one parser the full
//! `Service` goes through too.
//!
//! The projection must never lose anything the core reads: the tests check every reading the
//! core makes, for every example Service, against the full Service's.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::Deserialize;

use crate::ipam::ServiceKey;
use crate::k8s::service::{
    ALLOCATED_FROM_POOL, ANNOTATION_PREFIXES, ServiceFields, allocated_pool, class_is_ours,
    is_load_balancer, status_ips,
};

type Text = Box<str>;

/// Text that nearly every Service repeats (its policies, families, port protocols, the MetalLB
/// annotation keys): a known spelling is borrowed from [`WORDS`] and costs no allocation;
/// anything else is kept as sent.
type Word = Cow<'static, str>;
type Pairs = Box<[(Word, Text)]>;

/// The spellings [`word`] shares. Extending it saves memory; omitting one loses nothing.
const WORDS: &[&str] = &[
    "Cluster",
    "Local",
    "SingleStack",
    "PreferDualStack",
    "RequireDualStack",
    "IPv4",
    "IPv6",
    "TCP",
    "UDP",
    "SCTP",
    ALLOCATED_FROM_POOL,
    "metallb.universe.tf/address-pool",
    "metallb.universe.tf/loadBalancerIPs",
    "metallb.universe.tf/allow-shared-ip",
    "metallb.io/address-pool",
    "metallb.io/loadBalancerIPs",
    "metallb.io/allow-shared-ip",
];

fn word(s: String) -> Word {
    match WORDS.iter().find(|w| **w == s) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(s),
    }
}

fn words(v: Option<Vec<String>>) -> Option<Box<[Word]>> {
    v.map(|v| v.into_iter().map(word).collect())
}

/// A Service as the controller reads it: decodes from the API's Service JSON, or converts from
/// a parsed `Service` (`From<Service>`). Every field is something the reconcile core or the
/// live edge reads.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(from = "Service")]
pub struct CachedService {
    /// Name, namespace, uid and resourceVersion only: the keys, the events' `regarding`, the
    /// writes' precondition; the watch resumes from each object's resourceVersion
    /// (kube-runtime's watcher fails an event without one).
    metadata: ObjectMeta,
    /// `spec.type` is `LoadBalancer` ([`is_load_balancer`]).
    load_balancer: bool,
    /// `spec.loadBalancerClass`.
    class: Option<Text>,
    /// The addresses of `status.loadBalancer.ingress` ([`status_ips`]).
    status_ips: Box<[IpAddr]>,
    /// How many `status.loadBalancer.ingress` entries there are (a hostname-only entry still
    /// counts: it makes the status differ from ours).
    ingress_entries: u32,
    /// The `metallb.universe.tf/` and `metallb.io/` annotations; others are never read.
    annotations: Option<Pairs>,
    /// Every label: pools' `serviceAllocation.serviceSelectors` match them.
    labels: Option<Box<[(Text, Text)]>>,
    /// The rest of what the request is parsed from.
    spec: RequestSpec,
}

#[derive(Clone, Debug, PartialEq)]
struct Port {
    port: i32,
    protocol: Option<Word>,
}

/// The `spec` fields [`crate::k8s::service::request_for`] reads besides the annotations and
/// labels (all `None` when the Service has no spec).
#[derive(Clone, Debug, Default, PartialEq)]
struct RequestSpec {
    load_balancer_ip: Option<Text>,
    ports: Option<Box<[Port]>>,
    external_traffic_policy: Option<Word>,
    /// Only read for `Local` traffic policy (endpoint sharing checks), so kept only then.
    selector: Option<Box<[(Text, Text)]>>,
    ip_families: Option<Box<[Word]>>,
    ip_family_policy: Option<Word>,
    /// Only consulted for the families when `ip_families` is empty.
    cluster_ip: Option<Text>,
    cluster_ips: Option<Box<[Text]>>,
}

fn text(s: Option<String>) -> Option<Text> {
    s.map(String::into_boxed_str)
}

fn texts(v: Option<Vec<String>>) -> Option<Box<[Text]>> {
    v.map(|v| v.into_iter().map(String::into_boxed_str).collect())
}

fn map<K: AsRef<str>>(p: &[(K, Text)]) -> BTreeMap<String, String> {
    p.iter()
        .map(|(k, v)| (k.as_ref().to_owned(), v.to_string()))
        .collect()
}

fn strs<S: AsRef<str>>(v: Option<&[S]>) -> Vec<&str> {
    v.unwrap_or_default().iter().map(AsRef::as_ref).collect()
}

impl From<Service> for CachedService {
    fn from(svc: Service) -> Self {
        let load_balancer = is_load_balancer(&svc);
        let status_ips = status_ips(&svc).into();
        let ingress_entries = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .map_or(0, |i| u32::try_from(i.len()).unwrap_or(u32::MAX));
        let meta = svc.metadata;
        let annotations = meta.annotations.map(|a| {
            a.into_iter()
                .filter(|(k, _)| ANNOTATION_PREFIXES.iter().any(|p| k.starts_with(p)))
                .map(|(k, v)| (word(k), v.into_boxed_str()))
                .collect()
        });
        let labels = meta.labels.map(|l| {
            l.into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
                .collect()
        });
        let s = svc.spec.unwrap_or_default();
        let families_known = s.ip_families.as_ref().is_some_and(|f| !f.is_empty());
        let local = s.external_traffic_policy.as_deref() == Some("Local");
        let spec = RequestSpec {
            load_balancer_ip: text(s.load_balancer_ip),
            ports: s.ports.map(|ports| {
                ports
                    .into_iter()
                    .map(|p| Port {
                        port: p.port,
                        protocol: p.protocol.map(word),
                    })
                    .collect()
            }),
            external_traffic_policy: s.external_traffic_policy.map(word),
            selector: s.selector.filter(|_| local).map(|m| {
                m.into_iter()
                    .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
                    .collect()
            }),
            ip_families: words(s.ip_families),
            ip_family_policy: s.ip_family_policy.map(word),
            cluster_ip: if families_known {
                None
            } else {
                text(s.cluster_ip)
            },
            cluster_ips: if families_known {
                None
            } else {
                texts(s.cluster_ips)
            },
        };
        Self {
            metadata: ObjectMeta {
                name: meta.name,
                namespace: meta.namespace,
                uid: meta.uid,
                resource_version: meta.resource_version,
                ..ObjectMeta::default()
            },
            load_balancer,
            class: text(s.load_balancer_class),
            status_ips,
            ingress_entries,
            annotations,
            labels,
            spec,
        }
    }
}

impl CachedService {
    /// `namespace/name`, as [`crate::k8s::service::service_key`] gives for the full Service.
    pub fn key(&self) -> ServiceKey {
        ServiceKey::new(
            self.metadata.namespace.as_deref().unwrap_or("default"),
            self.metadata.name.as_deref().unwrap_or(""),
        )
    }

    /// `metadata.name`.
    pub fn name(&self) -> Option<&str> {
        self.metadata.name.as_deref()
    }

    /// `metadata.namespace`.
    pub fn namespace(&self) -> Option<&str> {
        self.metadata.namespace.as_deref()
    }

    /// `metadata.uid`: tells a re-created Service from the one deleted under the same name.
    pub fn uid(&self) -> Option<&str> {
        self.metadata.uid.as_deref()
    }

    /// `metadata.resourceVersion`: the version a decision is made on, and written against.
    pub fn resource_version(&self) -> Option<&str> {
        self.metadata.resource_version.as_deref()
    }

    /// Whether the Service is `type: LoadBalancer`.
    pub fn is_load_balancer(&self) -> bool {
        self.load_balancer
    }

    /// `spec.loadBalancerClass`.
    pub fn class(&self) -> Option<&str> {
        self.class.as_deref()
    }

    /// Whether the Service's class is ours ([`crate::k8s::service::is_our_class`]).
    pub fn is_our_class(&self, lb_class: Option<&str>) -> bool {
        class_is_ours(self.class.as_deref(), lb_class)
    }

    /// Whether ferrolb gives this Service addresses ([`crate::k8s::service::is_handled`]).
    pub fn is_handled(&self, lb_class: Option<&str>) -> bool {
        self.is_load_balancer() && self.is_our_class(lb_class)
    }

    /// The IP addresses of `status.loadBalancer.ingress`.
    pub fn status_ips(&self) -> &[IpAddr] {
        &self.status_ips
    }

    /// How many `status.loadBalancer.ingress` entries there are, addresses or not.
    pub fn ingress_entries(&self) -> usize {
        self.ingress_entries as usize
    }

    /// The `metallb.io/ip-allocated-from-pool` annotation.
    pub fn allocated_pool(&self) -> Option<&str> {
        allocated_pool(self)
    }
}

/// What the request is parsed from: the same parser reads the full `Service`.
impl ServiceFields for CachedService {
    fn annotation(&self, key: &str) -> Option<&str> {
        let annotations = self.annotations.as_deref()?;
        annotations
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| &**v)
    }

    fn labels(&self) -> BTreeMap<String, String> {
        self.labels.as_deref().map(map).unwrap_or_default()
    }

    fn load_balancer_ip(&self) -> Option<&str> {
        self.spec.load_balancer_ip.as_deref()
    }

    fn ip_families(&self) -> Vec<&str> {
        strs(self.spec.ip_families.as_deref())
    }

    fn ip_family_policy(&self) -> Option<&str> {
        self.spec.ip_family_policy.as_deref()
    }

    fn cluster_ips(&self) -> Vec<&str> {
        strs(self.spec.cluster_ips.as_deref())
    }

    fn cluster_ip(&self) -> Option<&str> {
        self.spec.cluster_ip.as_deref()
    }

    fn ports(&self) -> Vec<(i32, Option<&str>)> {
        self.spec
            .ports
            .iter()
            .flatten()
            .map(|p| (p.port, p.protocol.as_deref()))
            .collect()
    }

    fn external_traffic_policy(&self) -> Option<&str> {
        self.spec.external_traffic_policy.as_deref()
    }

    fn selector(&self) -> BTreeMap<String, String> {
        self.spec.selector.as_deref().map(map).unwrap_or_default()
    }
}

impl Resource for CachedService {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("Service")
    }

    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }

    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("services")
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
#[path = "cached_tests.rs"]
mod tests;
