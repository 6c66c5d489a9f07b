//! What the reconcile core decides for one Service: the status and pool annotation it should
//! show ([`Desired`]), the events to record, and why it may have to wait. Plain data the edges
//! (live controller, `ferrolb plan`) carry out or print.

use std::fmt;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;

use super::cached::CachedService;
use crate::config::Config;
use crate::config::overlap::{ClusterNetworks, find_overlaps};
use crate::ipam::{AllocError, Assignment, Reload, ServiceKey};
use crate::k8s::service::ALLOCATED_FROM_POOL;

/// Severity of an event, as in `kubectl describe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        })
    }
}

/// The event reasons the controller records (MetalLB's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The Service got (new) addresses.
    IpAllocated,
    /// No addresses could be found for the Service.
    AllocationFailed,
    /// Addresses the Service held were taken away (config change, type change, request change).
    ClearAssignment,
    /// The Service itself is invalid (conflicting annotations, unparsable address...).
    LoadBalancerFailed,
    /// On a pool: a Service ferrolb does not serve shows one of the pool's addresses (ferrolb's
    /// own reason; MetalLB does not look).
    AddressHeldElsewhere,
    /// On a pool: it overlaps a ServiceCIDR, a node's own address or a node's Pod CIDR
    /// (ferrolb's own reason; nothing is refused, a node's address is never handed out).
    ClusterNetworkOverlap,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::IpAllocated => "IPAllocated",
            Reason::AllocationFailed => "AllocationFailed",
            Reason::ClearAssignment => "ClearAssignment",
            Reason::LoadBalancerFailed => "LoadBalancerFailed",
            Reason::AddressHeldElsewhere => "AddressHeldElsewhere",
            Reason::ClusterNetworkOverlap => "ClusterNetworkOverlap",
        }
    }

    pub fn event_type(self) -> EventType {
        match self {
            Reason::IpAllocated | Reason::ClearAssignment => EventType::Normal,
            Reason::AllocationFailed
            | Reason::LoadBalancerFailed
            | Reason::AddressHeldElsewhere
            | Reason::ClusterNetworkOverlap => EventType::Warning,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event the edge should record on the Service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlannedEvent {
    pub reason: Reason,
    pub message: String,
}

/// An event the edge should record on an address pool (the `IPAddressPool`, or the ConfigMap
/// that defines the pool).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolEvent {
    pub pool: String,
    pub event: PlannedEvent,
}

impl PlannedEvent {
    pub(super) fn new(reason: Reason, message: String) -> Self {
        Self { reason, message }
    }

    pub fn event_type(&self) -> EventType {
        self.reason.event_type()
    }
}

/// The Warning for each pool overlapping the cluster's own networks (see
/// [`crate::config::overlap`]), as the live controller records them and `plan` prints them.
pub fn overlap_warnings(config: &Config, networks: &ClusterNetworks) -> Vec<PoolEvent> {
    find_overlaps(config, networks)
        .into_iter()
        .map(|o| PoolEvent {
            event: PlannedEvent::new(Reason::ClusterNetworkOverlap, o.message()),
            pool: o.pool,
        })
        .collect()
}

/// What the Service's status and pool annotation should be.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Desired {
    /// `status.loadBalancer.ingress[].ip`, primary family first; empty clears the status.
    pub ips: Vec<IpAddr>,
    /// `metallb.io/ip-allocated-from-pool`; `None` removes the annotation.
    pub pool: Option<String>,
}

impl Desired {
    pub(super) fn from_assignment(a: &Assignment) -> Self {
        Self {
            ips: a.ips.clone(),
            pool: Some(a.pool.clone()),
        }
    }

    /// Writes this into `svc` as the controller's patches would (what `plan -o yaml` prints).
    pub fn apply_to(&self, svc: &mut Service) {
        use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};
        let status = svc.status.get_or_insert_with(ServiceStatus::default);
        status.load_balancer = if self.ips.is_empty() {
            Some(LoadBalancerStatus::default())
        } else {
            Some(LoadBalancerStatus {
                ingress: Some(
                    self.ips
                        .iter()
                        .map(|ip| LoadBalancerIngress {
                            ip: Some(ip.to_string()),
                            ..LoadBalancerIngress::default()
                        })
                        .collect(),
                ),
            })
        };
        let annotations = svc
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        match &self.pool {
            Some(pool) => {
                annotations.insert(ALLOCATED_FROM_POOL.to_owned(), pool.clone());
            }
            None => {
                annotations.remove(ALLOCATED_FROM_POOL);
            }
        }
        if annotations.is_empty() {
            svc.metadata.annotations = None;
        }
    }

    /// Whether `svc` already shows this (status addresses in order, and the pool annotation).
    pub fn is_shown_by(&self, svc: &CachedService) -> bool {
        self.status_shown_by(svc) && self.pool_shown_by(svc)
    }

    /// Whether `status.loadBalancer.ingress` is exactly these addresses, in order.
    pub fn status_shown_by(&self, svc: &CachedService) -> bool {
        // Entries other than our addresses (a hostname, say) also make the status differ.
        svc.ingress_entries() == self.ips.len() && svc.status_ips() == self.ips
    }

    /// Whether the pool annotation is this pool (or absent when there is none).
    pub fn pool_shown_by(&self, svc: &CachedService) -> bool {
        svc.allocated_pool() == self.pool.as_deref()
    }
}

/// Why the core is not deciding a Service's addresses yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// No valid config has been loaded, so there are no pools.
    NoConfig,
    /// The startup gate is closed: existing status addresses are not all re-registered yet.
    NotSynced,
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WaitReason::NoConfig => "no valid config loaded yet",
            WaitReason::NotSynced => "existing assignments are not re-registered yet",
        })
    }
}

/// The decision for one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not a Service of ours (another load-balancer class, or never was a LoadBalancer): touch
    /// nothing. Addresses of our pools its status shows are held as in use, so they are never
    /// handed out to one of ours.
    NotOurs,
    /// The Service is invalid and holds no addresses; nothing to write (the event says why).
    Invalid,
    /// Allocation has to wait; nothing to write.
    Waiting(WaitReason),
    /// Make the Service show this.
    Apply(Desired),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub key: ServiceKey,
    pub outcome: Outcome,
    pub events: Vec<PlannedEvent>,
    /// Warnings about the pools' addresses this Service shows without being ours (see
    /// [`Outcome::NotOurs`]); recorded on the pools, each change once.
    pub pool_events: Vec<PoolEvent>,
}

/// What a config load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChange {
    pub reload: Reload,
}

/// A status address that could not be re-registered during the startup rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildIssue {
    pub key: ServiceKey,
    pub ips: Vec<IpAddr>,
    pub error: AllocError,
}
