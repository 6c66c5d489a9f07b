//! What ferrolb reads from Kubernetes objects, shared by the controller and the speaker: which
//! Services are ours and what they ask for, their keys and status IPs, EndpointSlices, Node
//! conditions, ready speaker pods; the client both build and the backoff both put on their
//! watches. Plain functions over `k8s-openapi` types (no API calls besides building the client and
//! writing a ConfigurationState, which both components keep), so both read objects alike.

pub mod access;
pub mod backoff;
pub mod client;
pub mod config_state;
pub mod endpoints;
pub mod metallb;
pub mod node;
pub mod pod;
pub mod reflect;
pub mod service;

pub use backoff::WatchBackoff;
pub use client::{ClientError, client, fenced_client};
