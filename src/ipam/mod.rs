//! Address pools, address sets, the allocator and IP sharing rules (pure, no Kubernetes types).
//!
//! The controller turns config pools into [`PoolSpec`]s and Services into [`Request`]s; the
//! [`Allocator`] decides which addresses each Service gets, following the allocation rules
//! of docs/user-guide.md ("Annotate Services") and docs/architecture.md. Free space is kept as ordered intervals (`rangeset.rs`), so every operation is
//! O(log n) in pool size and in the number of addresses in use.
//!
//! ```
//! use ferrolb::ipam::{Allocator, Family, PoolSpec, Request, ServiceKey};
//!
//! let pools = vec![PoolSpec {
//!     name: "default".into(),
//!     ranges: vec![("192.0.2.10".parse().unwrap(), "192.0.2.20".parse().unwrap())],
//!     auto_assign: true,
//!     avoid_buggy_ips: false,
//!     allocation: None,
//! }];
//! let mut alloc = Allocator::new();
//! alloc.set_pools(pools.clone()).unwrap();
//! let web = ServiceKey::new("shop", "web");
//! let got = alloc.allocate(&web, &Request::single(Family::V4)).unwrap();
//! assert_eq!(got.pool, "default");
//! assert_eq!(got.ips, ["192.0.2.10".parse::<std::net::IpAddr>().unwrap()]);
//!
//! // A restarted controller re-registers what the Services' status says, then carries on.
//! let mut restarted = Allocator::new();
//! restarted.set_pools(pools).unwrap();
//! restarted.assign(&web, &Request::single(Family::V4), &got.ips).unwrap();
//! assert_eq!(restarted.assignment(&web), Some(&got));
//! ```

mod addr;
mod allocator;
mod error;
mod holders;
mod pick;
mod pin;
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
    Port, Protocol, Reload, Request, ServiceAllocation, ServiceKey, TrafficPolicy,
};
