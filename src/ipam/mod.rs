//! Address pools, address sets, the allocator and IP sharing rules (pure, no Kubernetes types).
//!
//! The controller turns config pools into [`PoolSpec`]s and Services into [`Request`]s; the
//! [`Allocator`] decides which addresses each Service gets, following DESIGN.md "Allocation
//! rules". Free space is kept as ordered intervals (`rangeset.rs`), so every operation is
//! O(log n) in pool size and in the number of addresses in use.

mod addr;
mod allocator;
mod error;
mod pool;
mod rangeset;
mod reload;
mod sharing;
mod types;

#[cfg(test)]
mod tests;

pub use allocator::Allocator;
pub use error::{AllocError, ConflictReason, PoolSpecError};
pub use types::{
    Assignment, Eviction, EvictionReason, Family, FamilyPolicy, PoolMove, PoolSpec, PoolStats,
    Port, Protocol, Reload, Request, ServiceKey, TrafficPolicy,
};
