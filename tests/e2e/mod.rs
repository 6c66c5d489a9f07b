//! Support for the Kubernetes end-to-end tests: a real etcd + kube-apiserver found through
//! `KUBEBUILDER_ASSETS`, the `ferrolb` binaries run against it, and the API driven as a user would.
//! Each test binary uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod api;
pub mod audit;
pub mod certs;
pub mod control_plane;
pub mod ferrolb;
pub mod https;
pub mod ledger;
pub mod netns_bridge;
pub mod process;
pub mod wait;

/// The namespace ferrolb runs in (its ConfigMap, Lease and events), as the chart installs it.
pub const NAMESPACE: &str = "ferrolb-system";
/// The namespace the suites create their Services in.
pub const APPS: &str = "apps";

pub use control_plane::ControlPlane;
// Not every suite runs the controller (the scale measurement writes what it would).
#[allow(unused_imports)]
pub use ferrolb::{Controller, ControllerOptions};
