//! BFD (RFC 5880) as pure cores for the BGP peers' failure detection: the Control packet codec
//! (`wire`) and the asynchronous-mode state machine of one session (`session`: fed received
//! packets and `now`, returns the packets to send, its next deadline and Up/Down events). The
//! single-hop UDP edge (RFC 5881: port 3784, TTL 255 both ways) is `speaker::bfd`.

pub mod session;
pub mod wire;

pub use session::{Config, ConfigError, Event, Session};
pub use wire::{ControlRepr, Diag, ParseError, State};
