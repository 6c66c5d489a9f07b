//! Address pools, address sets, the allocator and IP sharing rules (pure, no Kubernetes types).
//!
//! The controller turns config pools into [`PoolSpec`]s and Services into [`Request`]s; the
//! allocator decides which addresses each Service gets, following DESIGN.md "Allocation rules".

mod error;
mod types;

pub use error::{AllocError, ConflictReason, PoolSpecError};
pub use types::{
    Assignment, Eviction, EvictionReason, Family, FamilyPolicy, PoolMove, PoolSpec, PoolStats,
    Port, Protocol, Reload, Request, ServiceKey, TrafficPolicy,
};
