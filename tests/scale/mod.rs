//! Support for tests/e2e_scale.rs: the cluster it builds and the NDP prober it runs.

pub mod cluster;
pub mod prober;
