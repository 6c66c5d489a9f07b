//! Kubernetes edge of the allocator: reconcile, status, events, leader lease.

pub mod cached;
pub mod cli;
pub mod crd_status;
pub mod crd_watch;
pub mod decision;
pub mod elector;
pub mod gossip_key;
pub mod lease;
pub mod live;
pub mod metrics;
pub mod networks;
pub mod plan;
pub mod plan_networks;
pub mod reconcile;
pub mod run;
pub mod writes;

#[cfg(test)]
mod convert_tests;
