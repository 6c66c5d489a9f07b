//! What goes in and out of a [`Session`](super::Session): its states, inputs, timers, outputs
//! and the events its owner is told.

use crate::bgp::wire::{EmitError, NotificationRepr, RouteRefreshRepr, UpdateRepr};

use super::Negotiated;

/// The states of RFC 4271 §8.2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

/// What the owner tells the session (RFC 4271 §8.1 events that are not timers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// Event 1: start (again) after a manual stop or at first.
    ManualStart,
    /// Event 2: stop; sends Cease / Administrative Shutdown when a connection is up.
    ManualStop,
    /// Events 16/17: the TCP connection to the peer is up.
    Connected,
    /// Event 18: the connection attempt failed, or the connection closed.
    ConnectionFailed,
    /// Bytes read from the connection, in order; any cut between messages.
    Received(&'a [u8]),
    /// The peer's BFD session went from Up to Down (not by the peer's AdminDown): close at once
    /// with Cease / BFD Down (RFC 9384) and start again, as a failure (RFC 5882 §4.3).
    BfdDown,
}

/// The timers of RFC 4271 §8.1.3 (IdleHold: AutomaticStart's delay, §8.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    ConnectRetry,
    Hold,
    Keepalive,
    IdleHold,
}

/// What the owner must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes (one whole message) to the connection.
    Send(Vec<u8>),
    /// Open a TCP connection to the peer (dropping any attempt still running).
    Connect,
    /// Close the connection, or give up the attempt, after sending what came before.
    Close,
    Event(SessionEvent),
}

/// What happened to the session, for its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    Established(Negotiated),
    /// A well-formed UPDATE from the peer.
    Update(Box<UpdateRepr>),
    /// The peer asks for our routes of this family again (RFC 2918).
    RouteRefreshRequested(RouteRefreshRepr),
    /// The connection or its attempt ended (in Established: the session went down).
    Down(DownReason),
}

/// Why a session went down.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownReason {
    #[error("stopped")]
    Stopped,
    #[error("TCP connection failed or closed")]
    ConnectionFailed,
    #[error("hold timer expired")]
    HoldTimerExpired,
    #[error("sent NOTIFICATION {0}")]
    NotificationSent(NotificationRepr),
    #[error("peer sent NOTIFICATION {0}")]
    NotificationReceived(NotificationRepr),
    #[error("bytes received with no connection")]
    UnexpectedBytes,
    #[error("BFD session down")]
    BfdDown,
}

/// An UPDATE the session cannot send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("session is {0:?}, not Established")]
    NotEstablished(State),
    #[error(transparent)]
    Emit(#[from] EmitError),
}
