//! Gossip liveness of speakers: our own SWIM protocol (on the `foca` crate) over UDP, every
//! datagram authenticated. It does not interoperate with hashicorp/memberlist; only the
//! user-facing names (`--memberlist-key-file`, `speaker.memberlist.*`) mirror MetalLB's.
//!
//! - [`core`]: the sans-io state machine (foca + envelope + timers), driven with `now`;
//! - [`envelope`]: HMAC-SHA256 envelope and replay window;
//! - [`udp`]: the tokio edge, [`Gossip::start`] → [`GossipHandle`];
//! - [`node_state`]: each speaker's interface state, spread as foca custom broadcasts;
//! - [`metrics`]: the Prometheus collector.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ferrolb::gossip::{Gossip, GossipConfig, GossipKey, SwimTiming};
//! let handle = Gossip::start(GossipConfig {
//!     node_name: "node-a".into(),
//!     bind_addr: "0.0.0.0:7946".parse()?,
//!     advertise_addr: Some("192.0.2.10:7946".parse()?),
//!     seeds: vec!["192.0.2.11:7946".parse()?],
//!     keys: GossipKey::load(None)?.into(),
//!     reload: None,
//!     timing: SwimTiming::default(),
//!     withdrawn: false,
//! })
//! .await?;
//! let mut members = handle.members();
//! members.changed().await?;
//! println!("live: {:?}", *members.borrow());
//! handle.leave().await; // on SIGTERM
//! # Ok(()) }
//! ```

pub mod address_set;
pub mod config;
pub mod core;
pub mod envelope;
pub mod identity;
pub mod key;
pub mod metrics;
pub mod node_state;
pub mod udp;

pub use config::{DEFAULT_PORT, GossipConfig, GossipError, SwimTiming};
pub use core::{DropCounts, GossipCore, GossipEvent, MemberCounts};
pub use identity::NodeId;
pub use key::{GossipKey, KEY_ENV, KeyError, KeyFiles, KeyRing};
pub use metrics::{GossipCollector, register as register_metrics};
pub use udp::{Gossip, GossipHandle, GossipStats, joined_differs};
