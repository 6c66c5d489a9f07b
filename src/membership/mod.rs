//! Gossip liveness of speakers: SWIM (the `foca` crate) over UDP, every datagram authenticated.
//!
//! - [`core`]: the sans-io state machine (foca + envelope + timers), driven with `now`;
//! - [`envelope`]: HMAC-SHA256 envelope and replay window;
//! - [`udp`]: the tokio edge, [`Membership::start`] → [`MembershipHandle`];
//! - [`metrics`]: the Prometheus collector.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ferrolb::membership::{Membership, MembershipConfig, MemberlistKey, SwimTiming};
//! let handle = Membership::start(MembershipConfig {
//!     node_name: "node-a".into(),
//!     bind_addr: "0.0.0.0:7946".parse()?,
//!     advertise_addr: Some("192.0.2.10:7946".parse()?),
//!     seeds: vec!["192.0.2.11:7946".parse()?],
//!     key: MemberlistKey::load(None)?,
//!     timing: SwimTiming::default(),
//! })
//! .await?;
//! let mut members = handle.members();
//! members.changed().await?;
//! println!("live: {:?}", *members.borrow());
//! handle.leave().await; // on SIGTERM
//! # Ok(()) }
//! ```

pub mod config;
pub mod core;
pub mod envelope;
pub mod identity;
pub mod key;
pub mod metrics;
pub mod udp;

pub use config::{DEFAULT_PORT, MembershipConfig, MembershipError, SwimTiming};
pub use core::{DropCounts, MemberCounts, MembershipCore, MembershipEvent};
pub use identity::NodeId;
pub use key::{KEY_ENV, KeyError, MemberlistKey};
pub use metrics::{MembershipCollector, register as register_metrics};
pub use udp::{Membership, MembershipHandle, MembershipStats, joined_differs};
