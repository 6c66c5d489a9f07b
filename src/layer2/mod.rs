//! Layer-2 announcement: ARP and NDP codecs (pure), the responder that decides replies (pure), the
//! announce schedule and its per-interface pacing (pure, time passed in), and the AF_PACKET socket
//! edge.

pub mod arp;
pub mod ndp;
pub mod pacing;
pub mod responder;
pub mod schedule;
pub mod wire;

pub use arp::ArpRepr;
pub use ndp::NdpRepr;
pub use responder::{Decision, Ignored, Interface, OwnedIps, Reply, decide};
pub use schedule::AnnounceSchedule;
pub use wire::{BufferTooSmall, Layer, Mac, MacParseError, ParseError};

// OS edge: interface discovery, link change wake-ups and AF_PACKET sockets (the crate's only `unsafe` is in `sys`, which
// also holds the gossip socket's ICMP error queue calls).
pub mod iface;
pub mod links;
pub mod socket;
pub(crate) mod sys;
