//! Kubernetes edge of the allocator: reconcile, status, events, leader lease.

pub mod cli;
pub mod plan;
pub mod reconcile;
pub mod service;
