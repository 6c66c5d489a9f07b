//! Kubernetes/static edge of the speaker: cluster view, ownership changes.

pub mod announcer;
pub mod cli;
pub mod cluster;
pub mod election_gate;
pub mod kubernetes;
pub mod l2status;
pub mod l2status_edge;
pub mod metrics;
pub mod owned;
pub mod ownership;
pub mod publish;
pub mod reconcile;
pub mod static_ads;
pub mod static_config;
pub mod static_mode;
pub mod unannounced;
