//! `serviceAllocation`: which pools a Service is pinned to, which pools it may use at all, and
//! the Namespace labels `namespaceSelectors` are evaluated against.
//!
//! MetalLB's rules (v0.13+): a pool is *compatible* with a Service when its resolved namespace
//! set (named namespaces plus those matching a namespace selector) is empty or holds the
//! Service's namespace, and its service selectors are empty or one matches the Service's labels.
//! A Service is *pinned* to a compatible auto-assign pool that lists its namespace or has
//! service selectors (a `serviceAllocation` naming nothing pins to everyone). Pinned pools are
//! offered first, by priority; then the auto-assign pools without any `serviceAllocation`.
//! Explicit requests (the `address-pool` annotation, requested IPs) ignore auto-assign but
//! still need a compatible pool.

use super::allocator::Allocator;
use super::pool::Pool;
use super::types::{Request, ServiceKey};
use crate::config::{Labels, Namespaces};

impl Allocator {
    /// Replaces the known Namespaces and their labels. Pools' `namespaceSelectors` are
    /// re-evaluated at once; existing assignments are re-checked by the next
    /// [`Allocator::allocate`] of each Service (which moves a Service whose pool no longer
    /// admits it), as after a config reload.
    pub fn set_namespaces(&mut self, namespaces: Namespaces) {
        self.namespaces = namespaces;
        self.resolve_all();
    }

    /// Adds or updates one Namespace's labels.
    pub fn set_namespace(&mut self, name: &str, labels: Labels) {
        self.namespaces.insert(name.to_owned(), labels);
        self.resolve_all();
    }

    /// Forgets a deleted Namespace.
    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
        self.resolve_all();
    }

    /// Recomputes every pinned pool's namespace set: O(pools with namespace selectors ×
    /// namespaces), only on Namespace or config changes, never per allocation.
    pub(crate) fn resolve_all(&mut self) {
        let namespaces = &self.namespaces;
        for pool in &mut self.pools.pools {
            let Some(pin) = pool.allocation.as_mut() else {
                continue;
            };
            pin.resolved = pin.spec.namespaces.clone();
            if pin.spec.namespace_selectors.is_empty() {
                continue;
            }
            for (name, labels) in namespaces {
                if pin
                    .spec
                    .namespace_selectors
                    .iter()
                    .any(|s| s.matches(labels))
                {
                    pin.resolved.insert(name.clone());
                }
            }
        }
    }

    /// Whether pool `idx` may give addresses to `service` at all.
    pub(crate) fn compatible(&self, idx: usize, service: &ServiceKey, request: &Request) -> bool {
        compatible(&self.pools.pools[idx], service.namespace(), &request.labels)
    }

    /// The pools `service` is pinned to, in the order they are offered.
    pub(crate) fn pinned_for(&self, service: &ServiceKey, request: &Request) -> Vec<usize> {
        let namespace = service.namespace();
        self.pools
            .pinned
            .iter()
            .copied()
            .filter(|&idx| {
                let pool = &self.pools.pools[idx];
                let Some(pin) = &pool.allocation else {
                    return false;
                };
                let listed = pin.resolved.contains(namespace)
                    || !pin.spec.service_selectors.is_empty()
                    || pin.spec.pins_everyone();
                listed && compatible(pool, namespace, &request.labels)
            })
            .collect()
    }

    /// What pool `idx` admits, for error messages.
    pub(crate) fn describe_admits(&self, idx: usize) -> String {
        let Some(pin) = &self.pools.pools[idx].allocation else {
            return "every service".into();
        };
        let mut parts = Vec::new();
        if !pin.resolved.is_empty() {
            let names: Vec<&str> = pin.resolved.iter().map(String::as_str).collect();
            parts.push(format!("namespaces {}", names.join(", ")));
        }
        if !pin.spec.service_selectors.is_empty() {
            let sels: Vec<String> = pin
                .spec
                .service_selectors
                .iter()
                .map(ToString::to_string)
                .collect();
            parts.push(format!("services labelled {}", sels.join(" or ")));
        }
        if parts.is_empty() {
            "every service".into()
        } else {
            parts.join(" and ")
        }
    }
}

fn compatible(pool: &Pool, namespace: &str, labels: &Labels) -> bool {
    let Some(pin) = &pool.allocation else {
        return true;
    };
    (pin.resolved.is_empty() || pin.resolved.contains(namespace))
        && (pin.spec.service_selectors.is_empty()
            || pin.spec.service_selectors.iter().any(|s| s.matches(labels)))
}
