//! ferrolb: a bare-metal LoadBalancer for Kubernetes, a drop-in replacement for MetalLB's layer-2
//! mode. docs/architecture.md maps the modules, the data flow and the rules a change keeps.
//!
//! Everything that decides (config, allocator, election, packet codecs, announce schedule) is pure
//! and synchronous; everything that talks to the world is a thin edge around it.

// Only `layer2`'s OS module may hold `unsafe` (and each block there says why it is sound); every
// other module forbids it outright.
#![deny(unsafe_code)]

#[forbid(unsafe_code)]
pub mod advertise;
#[forbid(unsafe_code)]
pub mod advertise_bgp;
#[forbid(unsafe_code)]
pub mod announce_preview;
#[forbid(unsafe_code)]
pub mod bfd;
#[forbid(unsafe_code)]
pub mod bgp;
#[forbid(unsafe_code)]
pub mod config;
#[forbid(unsafe_code)]
pub mod controller;
#[forbid(unsafe_code)]
pub mod doctor;
#[forbid(unsafe_code)]
pub mod election;
#[forbid(unsafe_code)]
pub mod gossip;
#[forbid(unsafe_code)]
pub mod ipam;
#[forbid(unsafe_code)]
pub mod k8s;
pub mod layer2;
#[forbid(unsafe_code)]
pub mod metrics;
#[forbid(unsafe_code)]
pub mod placement;
#[forbid(unsafe_code)]
pub mod runtime;
#[forbid(unsafe_code)]
pub mod speaker;
#[forbid(unsafe_code)]
pub mod telemetry;
