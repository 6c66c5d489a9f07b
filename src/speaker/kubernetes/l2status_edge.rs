//! The writer of this speaker's `ServiceL2Status` objects and its ConfigurationState
//! `speaker-<node>`: the writer every per-Service status kind shares ([`super::status::edge`]),
//! fed with [`Inputs`] of the layer-2 kind.

use super::l2status::L2;

pub use super::status::edge::StatusWriter;

/// What the speaker's loop hands the `ServiceL2Status` writer after each pass.
pub type Inputs = super::status::edge::Inputs<L2>;
