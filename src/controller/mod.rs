//! Kubernetes edge of the allocator: reconcile, status, events, leader lease.

pub mod reconcile;
pub mod service;
