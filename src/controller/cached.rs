//! The controller's cached form of a Service: only the fields the reconcile core reads, in
//! compact containers.
//!
//! The watch cache holds every Service in the cluster for as long as the controller runs, so
//! its per-object size is the controller's memory. A decoded `k8s_openapi` Service is about
//! 2.4 KB on the heap even with managed fields stripped (824 bytes of mostly-empty struct, a
//! `BTreeMap` node of ~0.5 KB for the annotations and another for the selector, cluster IPs,
//! node ports...). [`CachedService`] decodes the same JSON through `Service` and keeps only
//! what [`crate::k8s::service`] and [`super::reconcile`] read; [`CachedService::to_service`] turns it
//! back into a (minimal) `Service` for the one reconcile that needs it.
//!
//! The projection must never lose anything the core reads: the tests check that the core
//! decides the same for every example Service and for its cached-and-restored form.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Service, ServicePort, ServiceSpec, ServiceStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::Deserialize;

use crate::ipam::ServiceKey;
use crate::k8s::service::{ALLOCATED_FROM_POOL, ANNOTATION_PREFIXES};

type Text = Box<str>;

/// Text that nearly every Service repeats (its type, policies, families, port protocols, the
/// MetalLB annotation keys): a known spelling is borrowed from [`WORDS`] and costs no
/// allocation; anything else is kept as sent.
type Word = Cow<'static, str>;
type Pairs = Box<[(Word, Text)]>;

/// The spellings [`word`] shares. Extending it saves memory; omitting one loses nothing.
const WORDS: &[&str] = &[
    "LoadBalancer",
    "ClusterIP",
    "NodePort",
    "ExternalName",
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

/// A Service as the controller caches it. Decodes from the API's Service JSON.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(from = "Service")]
pub struct CachedService {
    /// Name, namespace, uid and resourceVersion only: the cache's keys and the events'
    /// `regarding` need the first three, and the watch resumes from each object's
    /// resourceVersion (kube-runtime's watcher fails an event without one).
    metadata: ObjectMeta,
    /// The `metallb.universe.tf/` and `metallb.io/` annotations; others are never read.
    annotations: Option<Pairs>,
    /// Every label: pools' `serviceAllocation.serviceSelectors` match them.
    labels: Option<Box<[(Text, Text)]>>,
    spec: Option<CachedSpec>,
    /// `status.loadBalancer.ingress`; `None` when there is no list.
    ingress: Option<Box<[Ingress]>>,
}

/// One `status.loadBalancer.ingress` entry (a hostname-only entry still counts as an entry).
#[derive(Clone, Debug, PartialEq)]
struct Ingress {
    ip: Option<Text>,
    hostname: Option<Text>,
}

#[derive(Clone, Debug, PartialEq)]
struct Port {
    port: i32,
    protocol: Option<Word>,
}

#[derive(Clone, Debug, PartialEq)]
struct CachedSpec {
    type_: Option<Word>,
    load_balancer_class: Option<Text>,
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

fn strings<S: AsRef<str>>(v: &[S]) -> Vec<String> {
    v.iter().map(|s| s.as_ref().to_owned()).collect()
}

impl From<Service> for CachedService {
    fn from(svc: Service) -> Self {
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
        let spec = svc.spec.map(|s| {
            let families_known = s.ip_families.as_ref().is_some_and(|f| !f.is_empty());
            let local = s.external_traffic_policy.as_deref() == Some("Local");
            CachedSpec {
                type_: s.type_.map(word),
                load_balancer_class: text(s.load_balancer_class),
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
            }
        });
        let ingress = svc
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .map(|entries| {
                entries
                    .into_iter()
                    .map(|e| Ingress {
                        ip: text(e.ip),
                        hostname: text(e.hostname),
                    })
                    .collect()
            });
        Self {
            metadata: ObjectMeta {
                name: meta.name,
                namespace: meta.namespace,
                uid: meta.uid,
                resource_version: meta.resource_version,
                ..ObjectMeta::default()
            },
            annotations,
            labels,
            spec,
            ingress,
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

    /// `metadata.uid`: tells a re-created Service from the one deleted under the same name.
    pub fn uid(&self) -> Option<&str> {
        self.metadata.uid.as_deref()
    }

    /// The Service the core reads: every field it consults, nothing else.
    pub fn to_service(&self) -> Service {
        let mut metadata = self.metadata.clone();
        metadata.annotations = self.annotations.as_deref().map(map);
        metadata.labels = self.labels.as_deref().map(map);
        let spec = self.spec.as_ref().map(|s| ServiceSpec {
            type_: s.type_.as_deref().map(str::to_owned),
            load_balancer_class: s.load_balancer_class.as_deref().map(str::to_owned),
            load_balancer_ip: s.load_balancer_ip.as_deref().map(str::to_owned),
            ports: s.ports.as_ref().map(|ports| {
                ports
                    .iter()
                    .map(|p| ServicePort {
                        port: p.port,
                        protocol: p.protocol.as_deref().map(str::to_owned),
                        ..ServicePort::default()
                    })
                    .collect()
            }),
            external_traffic_policy: s.external_traffic_policy.as_deref().map(str::to_owned),
            selector: s.selector.as_deref().map(map),
            ip_families: s.ip_families.as_deref().map(strings),
            ip_family_policy: s.ip_family_policy.as_deref().map(str::to_owned),
            cluster_ip: s.cluster_ip.as_deref().map(str::to_owned),
            cluster_ips: s.cluster_ips.as_deref().map(strings),
            ..ServiceSpec::default()
        });
        let status = self.ingress.as_ref().map(|entries| ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(
                    entries
                        .iter()
                        .map(|e| LoadBalancerIngress {
                            ip: e.ip.as_deref().map(str::to_owned),
                            hostname: e.hostname.as_deref().map(str::to_owned),
                            ..LoadBalancerIngress::default()
                        })
                        .collect(),
                ),
            }),
            ..ServiceStatus::default()
        });
        Service {
            metadata,
            spec,
            status,
        }
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
