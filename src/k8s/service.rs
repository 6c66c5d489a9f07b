//! What a Kubernetes Service asks of the allocator: the translation from a Service to
//! [`ipam::Request`], and which Services ferrolb handles at all.
//!
//! [`request_for`] reads a Service through [`ServiceFields`], so the API's `Service` and the
//! controller's compact form of it (`controller::cached`) are read by the one parser.
//!
//! Annotations are read under MetalLB's legacy `metallb.universe.tf/` prefix and the newer
//! `metallb.io/` one, so an unchanged MetalLB user keeps working; the same annotation under both
//! prefixes with different values is an error rather than a silent pick.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;

use crate::ipam::{Family, FamilyPolicy, Port, Protocol, Request, ServiceKey, TrafficPolicy};

/// The two annotation prefixes MetalLB has used, legacy first.
pub const ANNOTATION_PREFIXES: [&str; 2] = ["metallb.universe.tf/", "metallb.io/"];
/// Annotation (without prefix) asking for a specific pool.
pub const ADDRESS_POOL: &str = "address-pool";
/// Annotation (without prefix) listing requested addresses, comma-separated.
pub const LOAD_BALANCER_IPS: &str = "loadBalancerIPs";
/// Annotation (without prefix) holding the IP sharing key.
pub const ALLOW_SHARED_IP: &str = "allow-shared-ip";
/// Annotation the controller writes: the pool the Service's addresses come from.
pub const ALLOCATED_FROM_POOL: &str = "metallb.io/ip-allocated-from-pool";

/// Why a Service's spec or annotations cannot be turned into a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error(
        "both spec.loadBalancerIP ({spec}) and the {annotation} annotation ({value}) request addresses; use only one"
    )]
    RequestedTwice {
        spec: String,
        annotation: String,
        value: String,
    },
    #[error(
        "annotations {first} ({first_value:?}) and {second} ({second_value:?}) disagree; set only one"
    )]
    ConflictingAnnotations {
        first: String,
        first_value: String,
        second: String,
        second_value: String,
    },
    #[error("{field} holds {value:?}, which is not an IP address")]
    InvalidIp { field: String, value: String },
    #[error("spec.ipFamilies holds {value:?}; expected IPv4 or IPv6")]
    UnknownFamily { value: String },
    #[error(
        "spec.ipFamilyPolicy holds {value:?}; expected SingleStack, PreferDualStack or RequireDualStack"
    )]
    UnknownFamilyPolicy { value: String },
    #[error("spec.ports[{index}] has protocol {value:?}; expected TCP, UDP or SCTP")]
    UnknownProtocol { index: usize, value: String },
    #[error("spec.ports[{index}] has port {value}, outside 1-65535")]
    InvalidPort { index: usize, value: i32 },
}

/// The fields of a Service that [`request_for`] and [`allocated_pool`] read, whichever form
/// holds them: the API's [`Service`], or a projection that keeps only these (the controller's
/// cache). Absent lists read as empty: the parser treats both alike.
pub trait ServiceFields {
    /// The annotation under its full key (prefix included).
    fn annotation(&self, key: &str) -> Option<&str>;
    /// `metadata.labels` (pools' `serviceSelectors` match them).
    fn labels(&self) -> BTreeMap<String, String>;
    /// `spec.loadBalancerIP`.
    fn load_balancer_ip(&self) -> Option<&str>;
    /// `spec.ipFamilies`.
    fn ip_families(&self) -> Vec<&str>;
    /// `spec.ipFamilyPolicy`.
    fn ip_family_policy(&self) -> Option<&str>;
    /// `spec.clusterIPs` (read for the families only when `spec.ipFamilies` is empty).
    fn cluster_ips(&self) -> Vec<&str>;
    /// `spec.clusterIP` (likewise, and only when `spec.clusterIPs` is empty too).
    fn cluster_ip(&self) -> Option<&str>;
    /// `spec.ports`: each port's number and protocol.
    fn ports(&self) -> Vec<(i32, Option<&str>)>;
    /// `spec.externalTrafficPolicy`.
    fn external_traffic_policy(&self) -> Option<&str>;
    /// `spec.selector` (read only under the `Local` traffic policy).
    fn selector(&self) -> BTreeMap<String, String>;
}

impl ServiceFields for Service {
    fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
    }

    fn labels(&self) -> BTreeMap<String, String> {
        self.metadata.labels.clone().unwrap_or_default()
    }

    fn load_balancer_ip(&self) -> Option<&str> {
        self.spec.as_ref()?.load_balancer_ip.as_deref()
    }

    fn ip_families(&self) -> Vec<&str> {
        strs(self.spec.as_ref().and_then(|s| s.ip_families.as_deref()))
    }

    fn ip_family_policy(&self) -> Option<&str> {
        self.spec.as_ref()?.ip_family_policy.as_deref()
    }

    fn cluster_ips(&self) -> Vec<&str> {
        strs(self.spec.as_ref().and_then(|s| s.cluster_ips.as_deref()))
    }

    fn cluster_ip(&self) -> Option<&str> {
        self.spec.as_ref()?.cluster_ip.as_deref()
    }

    fn ports(&self) -> Vec<(i32, Option<&str>)> {
        self.spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
            .map(|p| (p.port, p.protocol.as_deref()))
            .collect()
    }

    fn external_traffic_policy(&self) -> Option<&str> {
        self.spec.as_ref()?.external_traffic_policy.as_deref()
    }

    fn selector(&self) -> BTreeMap<String, String> {
        self.spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default()
    }
}

fn strs(v: Option<&[String]>) -> Vec<&str> {
    v.unwrap_or_default().iter().map(String::as_str).collect()
}

/// `namespace/name` of a Service (namespace `default` when the manifest leaves it out, as
/// `kubectl apply` would).
pub fn service_key(svc: &Service) -> ServiceKey {
    ServiceKey::new(
        svc.metadata.namespace.as_deref().unwrap_or("default"),
        svc.metadata.name.as_deref().unwrap_or(""),
    )
}

/// Whether the Service asks for `externalTrafficPolicy: Local` (announce only from nodes holding
/// an endpoint).
pub fn is_local_policy(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.external_traffic_policy.as_deref())
        == Some("Local")
}

/// Whether the Service is `type: LoadBalancer`.
pub fn is_load_balancer(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

/// Whether the Service's `spec.loadBalancerClass` is ours (MetalLB's rule, the same for the
/// controller and the speaker): with `--lb-class`, exactly that class; without it, no class at
/// all. Services of any other class, and classless ones when we run with a class, belong to
/// another implementation and are never touched, not even their status.
pub fn is_our_class(svc: &Service, lb_class: Option<&str>) -> bool {
    class_is_ours(
        svc.spec
            .as_ref()
            .and_then(|s| s.load_balancer_class.as_deref()),
        lb_class,
    )
}

/// [`is_our_class`] for a Service whose `spec.loadBalancerClass` is `class`. An empty
/// `--lb-class=` means no class, as in MetalLB (whose flag defaults to the empty string).
pub fn class_is_ours(class: Option<&str>, lb_class: Option<&str>) -> bool {
    class == lb_class.filter(|c| !c.is_empty())
}

/// Whether ferrolb gives this Service addresses: a LoadBalancer of our class.
pub fn is_handled(svc: &Service, lb_class: Option<&str>) -> bool {
    is_load_balancer(svc) && is_our_class(svc, lb_class)
}

/// The IP addresses in `status.loadBalancer.ingress` (hostname-only entries are skipped;
/// unparsable ones too, since they cannot be ours).
pub fn status_ips(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ingress| {
            ingress
                .iter()
                .filter_map(|i| i.ip.as_deref())
                .filter_map(|ip| ip.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `status.loadBalancer.ingress` has any entry at all.
pub fn has_ingress(svc: &Service) -> bool {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .is_some_and(|i| !i.is_empty())
}

/// The value of the `metallb.io/ip-allocated-from-pool` annotation.
pub fn allocated_pool<S: ServiceFields + ?Sized>(svc: &S) -> Option<&str> {
    svc.annotation(ALLOCATED_FROM_POOL)
}

/// An annotation read under both prefixes. Empty values count as absent (MetalLB ignores them
/// too); two different non-empty values are an error naming both annotations.
fn annotation<S: ServiceFields + ?Sized>(
    svc: &S,
    name: &str,
) -> Result<Option<(String, String)>, ServiceError> {
    let mut found: Option<(String, String)> = None;
    for prefix in ANNOTATION_PREFIXES {
        let key = format!("{prefix}{name}");
        let Some(value) = svc.annotation(&key).map(str::trim) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        match &found {
            Some((first, first_value)) if first_value != value => {
                return Err(ServiceError::ConflictingAnnotations {
                    first: first.clone(),
                    first_value: first_value.clone(),
                    second: key,
                    second_value: value.to_owned(),
                });
            }
            Some(_) => {}
            None => found = Some((key, value.to_owned())),
        }
    }
    Ok(found)
}

fn parse_ip(field: &str, value: &str) -> Result<IpAddr, ServiceError> {
    value.trim().parse().map_err(|_| ServiceError::InvalidIp {
        field: field.to_owned(),
        value: value.to_owned(),
    })
}

/// Translates a Service (either form, see [`ServiceFields`]) into the request the allocator
/// serves.
pub fn request_for<S: ServiceFields + ?Sized>(svc: &S) -> Result<Request, ServiceError> {
    let spec_ip = svc
        .load_balancer_ip()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let annotated_ips = annotation(svc, LOAD_BALANCER_IPS)?;
    let requested = match (spec_ip, annotated_ips) {
        (Some(spec_ip), Some((annotation, value))) => {
            return Err(ServiceError::RequestedTwice {
                spec: spec_ip.to_owned(),
                annotation,
                value,
            });
        }
        (Some(ip), None) => vec![parse_ip("spec.loadBalancerIP", ip)?],
        (None, Some((annotation, value))) => value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|ip| parse_ip(&format!("annotation {annotation}"), ip))
            .collect::<Result<Vec<_>, _>>()?,
        (None, None) => Vec::new(),
    };

    let families = family_policy(svc, &requested)?;
    let pool = annotation(svc, ADDRESS_POOL)?.map(|(_, v)| v);
    let sharing_key = annotation(svc, ALLOW_SHARED_IP)?.map(|(_, v)| v);

    let mut ports = Vec::new();
    for (index, (port, protocol)) in svc.ports().into_iter().enumerate() {
        let protocol = match protocol.unwrap_or("TCP") {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            "SCTP" => Protocol::Sctp,
            other => {
                return Err(ServiceError::UnknownProtocol {
                    index,
                    value: other.to_owned(),
                });
            }
        };
        let port = u16::try_from(port)
            .ok()
            .filter(|&p| p != 0)
            .ok_or(ServiceError::InvalidPort { index, value: port })?;
        ports.push(Port { protocol, port });
    }

    let traffic = match svc.external_traffic_policy() {
        Some("Local") => TrafficPolicy::Local {
            selector: svc.selector(),
        },
        _ => TrafficPolicy::Cluster,
    };

    Ok(Request {
        families,
        requested,
        pool,
        sharing_key,
        ports,
        traffic,
        labels: svc.labels(),
    })
}

fn parse_family(value: &str) -> Result<Family, ServiceError> {
    match value {
        "IPv4" => Ok(Family::V4),
        "IPv6" => Ok(Family::V6),
        other => Err(ServiceError::UnknownFamily {
            value: other.to_owned(),
        }),
    }
}

/// The Service's families, in order: `spec.ipFamilies`, else the families of `spec.clusterIPs`
/// (or `spec.clusterIP`). Empty when neither says (a hand-written manifest the API server has not
/// defaulted yet).
fn known_families<S: ServiceFields + ?Sized>(svc: &S) -> Result<Vec<Family>, ServiceError> {
    let families = svc.ip_families();
    if !families.is_empty() {
        return families.into_iter().map(parse_family).collect();
    }
    let mut cluster_ips = svc.cluster_ips();
    if cluster_ips.is_empty() {
        cluster_ips.extend(svc.cluster_ip());
    }
    let mut families = Vec::new();
    for ip in cluster_ips {
        // "None" (headless) and "" carry no family.
        if let Ok(ip) = ip.parse::<IpAddr>() {
            let family = Family::of(&ip);
            if !families.contains(&family) {
                families.push(family);
            }
        }
    }
    Ok(families)
}

/// `spec.ipFamilyPolicy` and the known families turned into the allocator's policy.
///
/// Mirrors the API server's defaulting: no policy with two families means RequireDualStack, and a
/// PreferDualStack Service that the cluster gave only one family is single-stack (MetalLB, too,
/// goes by the families the Service actually has). When no family is known at all, the first
/// requested address decides, else IPv4 (the API server's default on an IPv4 cluster).
fn family_policy<S: ServiceFields + ?Sized>(
    svc: &S,
    requested: &[IpAddr],
) -> Result<FamilyPolicy, ServiceError> {
    let families = known_families(svc)?;
    let primary = families
        .first()
        .copied()
        .or_else(|| requested.first().map(Family::of))
        .unwrap_or(Family::V4);
    let both_known = families.len() >= 2;
    let unknown = families.is_empty();
    Ok(match svc.ip_family_policy() {
        None if both_known => FamilyPolicy::RequireDualStack { primary },
        None | Some("SingleStack") => FamilyPolicy::Single(primary),
        Some("PreferDualStack") if both_known || unknown => {
            FamilyPolicy::PreferDualStack { primary }
        }
        Some("PreferDualStack") => FamilyPolicy::Single(primary),
        Some("RequireDualStack") => FamilyPolicy::RequireDualStack { primary },
        Some(other) => {
            return Err(ServiceError::UnknownFamilyPolicy {
                value: other.to_owned(),
            });
        }
    })
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
