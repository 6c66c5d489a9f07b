//! BGP-4 (RFC 4271) for the BGP announcement mode, as pure cores: the message codecs
//! ([`wire`]), the per-peer session state machine ([`session`]) and the Adj-RIB-Out that turns
//! the routes a node wants its peer to hold into UPDATEs ([`rib`]). Nothing here opens a socket,
//! reads the clock or imports another module of ours; the edge (`speaker::bgp`) carries the
//! bytes, dials the peer and sleeps until [`session::Session::poll_timeout`].
//!
//! # Why our own codecs and FSM, not NetGauze
//!
//! `netgauze-bgp-pkt` (0.13) parses everything BGP can carry (BGP-LS, EVPN, flowspec, MPLS
//! labels, …) in about 32 000 lines on `nom` (through `netgauze-parse-utils`), with `serde`,
//! `strum` and the `netgauze-iana` registry tables; we need six message types, a dozen path
//! attributes and two address families, and every crate added is paid for in CI's compile time
//! (the whole run must stay under 30 minutes on two cores). `netgauze-bgp-speaker`, its FSM, is
//! built on tokio: it owns the connection as a `Framed` stream, and its timers are
//! `tokio::time::Interval`s, so it cannot be fed bytes and `now` and asked for its next deadline,
//! which is how every core of ours is tested (docs/architecture.md, "Time is passed in"). So,
//! as for ARP and NDP, we write both: checked parsing into `Repr` types that map every malformed
//! input to the exact RFC 4271 §6 NOTIFICATION, and a sans-I/O session in the style of
//! quinn-proto.

pub mod rib;
pub mod session;
pub mod wire;
