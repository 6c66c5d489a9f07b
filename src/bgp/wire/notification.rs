//! NOTIFICATION (RFC 4271 §4.5, with RFC 4486's Cease subcodes and RFC 9003's shutdown
//! communication) and ROUTE-REFRESH (RFC 2918).

use std::fmt;

use super::capability::AddressFamily;
use super::{Reader, WireError};

/// NOTIFICATION error codes (RFC 4271 §4.5, RFC 6608).
pub mod code {
    pub const HEADER: u8 = 1;
    pub const OPEN: u8 = 2;
    pub const UPDATE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
}

/// Cease subcodes (RFC 4486).
pub mod cease {
    pub const MAX_PREFIXES: u8 = 1;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
    /// RFC 9384: the session is closed because BFD took its path down.
    pub const BFD_DOWN: u8 = 10;
}

/// The longest shutdown communication (RFC 9003 §2: 255 octets of UTF-8).
pub const MAX_SHUTDOWN_MESSAGE: usize = 255;

/// A NOTIFICATION: error code, subcode and data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NotificationRepr {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl NotificationRepr {
    /// Any body of two bytes or more is a NOTIFICATION (the header checked the length); codes we
    /// do not know are kept, since a NOTIFICATION is never answered.
    pub(crate) fn parse(body: &[u8]) -> NotificationRepr {
        let mut r = Reader::new(body);
        NotificationRepr {
            code: r.u8().unwrap_or_default(),
            subcode: r.u8().unwrap_or_default(),
            data: r.rest().to_vec(),
        }
    }

    pub(crate) fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.code, self.subcode]);
        out.extend_from_slice(&self.data);
    }

    /// A NOTIFICATION with no data.
    pub fn new(code: u8, subcode: u8) -> NotificationRepr {
        NotificationRepr {
            code,
            subcode,
            data: Vec::new(),
        }
    }

    /// Cease / Administrative Shutdown carrying `message` (RFC 8203, RFC 9003): a length octet and
    /// UTF-8, cut at a character boundary to 255 bytes. An empty message sends no data.
    pub fn administrative_shutdown(message: &str) -> NotificationRepr {
        NotificationRepr {
            code: code::CEASE,
            subcode: cease::ADMINISTRATIVE_SHUTDOWN,
            data: shutdown_data(message),
        }
    }

    /// The shutdown communication of a Cease / Administrative Shutdown or Reset, when the data
    /// is one (a length octet and that many bytes of UTF-8).
    pub fn shutdown_message(&self) -> Option<&str> {
        let is_shutdown = self.code == code::CEASE
            && (self.subcode == cease::ADMINISTRATIVE_SHUTDOWN
                || self.subcode == cease::ADMINISTRATIVE_RESET);
        let (&len, text) = self.data.split_first().filter(|_| is_shutdown)?;
        (usize::from(len) == text.len())
            .then(|| std::str::from_utf8(text).ok())
            .flatten()
    }

    /// The peer's UNSUPPORTED VERSION answer (RFC 4271 §8, Event 24 NotifMsgVerErr).
    pub fn is_version_error(&self) -> bool {
        self.code == code::OPEN && self.subcode == 1
    }
}

fn shutdown_data(message: &str) -> Vec<u8> {
    if message.is_empty() {
        return Vec::new();
    }
    let mut end = message.len().min(MAX_SHUTDOWN_MESSAGE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let text = message.get(..end).unwrap_or_default();
    let mut data = Vec::with_capacity(text.len() + 1);
    data.push(text.len() as u8);
    data.extend_from_slice(text.as_bytes());
    data
}

impl fmt::Display for NotificationRepr {
    /// The names of RFC 4271, RFC 4486 and RFC 6608, as a log line reads them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.code {
            code::HEADER => "Message Header Error",
            code::OPEN => "OPEN Message Error",
            code::UPDATE => "UPDATE Message Error",
            code::HOLD_TIMER_EXPIRED => "Hold Timer Expired",
            code::FSM => "Finite State Machine Error",
            code::CEASE => "Cease",
            _ => "unknown error",
        };
        let sub = match (self.code, self.subcode) {
            (code::HEADER, 1) => "Connection Not Synchronized",
            (code::HEADER, 2) => "Bad Message Length",
            (code::HEADER, 3) => "Bad Message Type",
            (code::OPEN, 1) => "Unsupported Version Number",
            (code::OPEN, 2) => "Bad Peer AS",
            (code::OPEN, 3) => "Bad BGP Identifier",
            (code::OPEN, 4) => "Unsupported Optional Parameter",
            (code::OPEN, 6) => "Unacceptable Hold Time",
            (code::OPEN, 7) => "Unsupported Capability",
            (code::UPDATE, 1) => "Malformed Attribute List",
            (code::UPDATE, 2) => "Unrecognized Well-known Attribute",
            (code::UPDATE, 3) => "Missing Well-known Attribute",
            (code::UPDATE, 4) => "Attribute Flags Error",
            (code::UPDATE, 5) => "Attribute Length Error",
            (code::UPDATE, 6) => "Invalid ORIGIN Attribute",
            (code::UPDATE, 8) => "Invalid NEXT_HOP Attribute",
            (code::UPDATE, 9) => "Optional Attribute Error",
            (code::UPDATE, 10) => "Invalid Network Field",
            (code::UPDATE, 11) => "Malformed AS_PATH",
            (code::FSM, 1) => "Unexpected Message in OpenSent",
            (code::FSM, 2) => "Unexpected Message in OpenConfirm",
            (code::FSM, 3) => "Unexpected Message in Established",
            (code::CEASE, cease::MAX_PREFIXES) => "Maximum Number of Prefixes Reached",
            (code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN) => "Administrative Shutdown",
            (code::CEASE, cease::PEER_DECONFIGURED) => "Peer De-configured",
            (code::CEASE, cease::ADMINISTRATIVE_RESET) => "Administrative Reset",
            (code::CEASE, cease::CONNECTION_REJECTED) => "Connection Rejected",
            (code::CEASE, cease::OTHER_CONFIGURATION_CHANGE) => "Other Configuration Change",
            (code::CEASE, cease::CONNECTION_COLLISION) => "Connection Collision Resolution",
            (code::CEASE, cease::OUT_OF_RESOURCES) => "Out of Resources",
            (_, 0) => "Unspecific",
            _ => "",
        };
        write!(f, "{name} ({}/{})", self.code, self.subcode)?;
        if !sub.is_empty() {
            write!(f, " {sub}")?;
        }
        if let Some(message) = self.shutdown_message() {
            write!(f, ": {message:?}")?;
        }
        Ok(())
    }
}

/// ROUTE-REFRESH: the peer asks us to send again what we announce for one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteRefreshRepr {
    pub family: AddressFamily,
    /// RFC 2918's reserved octet, RFC 7313's message subtype (0 = plain request).
    pub subtype: u8,
}

impl RouteRefreshRepr {
    pub(crate) fn parse(body: &[u8]) -> Result<RouteRefreshRepr, WireError> {
        let mut r = Reader::new(body);
        let (Some(afi), Some(subtype), Some(safi)) = (r.u16(), r.u8(), r.u8()) else {
            return Err(WireError::BadMessageLength((body.len() + 19) as u16));
        };
        Ok(RouteRefreshRepr {
            family: AddressFamily { afi, safi },
            subtype,
        })
    }

    pub(crate) fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.family.afi.to_be_bytes());
        out.extend_from_slice(&[self.subtype, self.family.safi]);
    }
}
