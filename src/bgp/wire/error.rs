//! Why a message does not parse, and the NOTIFICATION RFC 4271 §6 answers it with.

use super::notification::{NotificationRepr, code};

/// A malformed message. Each variant is one error of RFC 4271 §6 (or of the RFC that defines the
/// field) and [`notification`](Self::notification) gives the code, subcode and data to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    // Message Header Error (1).
    #[error("message header marker is not all ones")]
    NotSynchronized,
    #[error("bad message length {0}")]
    BadMessageLength(u16),
    #[error("message of {0} bytes is not one whole message")]
    Truncated(usize),
    #[error("bad message type {0}")]
    BadMessageType(u8),

    // OPEN Message Error (2).
    #[error("OPEN: unsupported BGP version {0} (we speak 4)")]
    UnsupportedVersion(u8),
    #[error("OPEN: peer AS {0} is not the configured one")]
    BadPeerAs(u32),
    #[error("OPEN: bad BGP identifier {0}")]
    BadBgpIdentifier(std::net::Ipv4Addr),
    #[error("OPEN: unsupported optional parameter type {0}")]
    UnsupportedOptionalParameter(u8),
    #[error("OPEN: unacceptable hold time {0} s (0 or at least 3)")]
    UnacceptableHoldTime(u16),
    #[error("OPEN: the peer lacks a capability we require (code {code})")]
    UnsupportedCapability { code: u8, capability: Vec<u8> },
    #[error("OPEN: malformed {0}")]
    MalformedOpen(&'static str),

    // UPDATE Message Error (3).
    #[error("UPDATE: malformed attribute list: {0}")]
    MalformedAttributeList(&'static str),
    #[error("UPDATE: unrecognized well-known attribute {type_code}")]
    UnrecognizedWellKnownAttribute { type_code: u8, attribute: Vec<u8> },
    #[error("UPDATE: missing well-known attribute {0}")]
    MissingWellKnownAttribute(u8),
    #[error("UPDATE: attribute {type_code} has the wrong flags")]
    AttributeFlags { type_code: u8, attribute: Vec<u8> },
    #[error("UPDATE: attribute {type_code} has the wrong length")]
    AttributeLength { type_code: u8, attribute: Vec<u8> },
    #[error("UPDATE: invalid ORIGIN")]
    InvalidOrigin { attribute: Vec<u8> },
    #[error("UPDATE: invalid NEXT_HOP")]
    InvalidNextHop { attribute: Vec<u8> },
    #[error("UPDATE: malformed optional attribute {type_code}")]
    OptionalAttribute { type_code: u8, attribute: Vec<u8> },
    #[error("UPDATE: invalid network field")]
    InvalidNetworkField,
    #[error("UPDATE: malformed AS_PATH")]
    MalformedAsPath,
}

impl WireError {
    /// The NOTIFICATION to send for this error, data as RFC 4271 §6 (and RFC 5492 for
    /// capabilities) specifies.
    pub fn notification(&self) -> NotificationRepr {
        use WireError::*;
        let (code, subcode, data): (u8, u8, Vec<u8>) = match self {
            NotSynchronized => (code::HEADER, 1, Vec::new()),
            BadMessageLength(len) => (code::HEADER, 2, len.to_be_bytes().to_vec()),
            Truncated(len) => (
                code::HEADER,
                2,
                u16::try_from(*len)
                    .unwrap_or(u16::MAX)
                    .to_be_bytes()
                    .to_vec(),
            ),
            BadMessageType(kind) => (code::HEADER, 3, vec![*kind]),
            // The data is the largest version we support below the one bid (§6.2).
            UnsupportedVersion(_) => (code::OPEN, 1, vec![0, 4]),
            BadPeerAs(_) => (code::OPEN, 2, Vec::new()),
            BadBgpIdentifier(_) => (code::OPEN, 3, Vec::new()),
            UnsupportedOptionalParameter(_) => (code::OPEN, 4, Vec::new()),
            UnacceptableHoldTime(_) => (code::OPEN, 6, Vec::new()),
            UnsupportedCapability { capability, .. } => (code::OPEN, 7, capability.clone()),
            // "Recognized, but malformed": subcode 0, Unspecific (§6.2).
            MalformedOpen(_) => (code::OPEN, 0, Vec::new()),
            MalformedAttributeList(_) => (code::UPDATE, 1, Vec::new()),
            UnrecognizedWellKnownAttribute { attribute, .. } => {
                (code::UPDATE, 2, attribute.clone())
            }
            MissingWellKnownAttribute(type_code) => (code::UPDATE, 3, vec![*type_code]),
            AttributeFlags { attribute, .. } => (code::UPDATE, 4, attribute.clone()),
            AttributeLength { attribute, .. } => (code::UPDATE, 5, attribute.clone()),
            InvalidOrigin { attribute } => (code::UPDATE, 6, attribute.clone()),
            InvalidNextHop { attribute } => (code::UPDATE, 8, attribute.clone()),
            OptionalAttribute { attribute, .. } => (code::UPDATE, 9, attribute.clone()),
            InvalidNetworkField => (code::UPDATE, 10, Vec::new()),
            MalformedAsPath => (code::UPDATE, 11, Vec::new()),
        };
        NotificationRepr {
            code,
            subcode,
            data,
        }
    }
}

/// A `Repr` that cannot be written as a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    #[error("message of {0} bytes is longer than BGP's 4096")]
    MessageTooLong(usize),
    #[error("{field} of {len} bytes overflows its length field")]
    FieldTooLong { field: &'static str, len: usize },
    #[error("{0}")]
    Invalid(&'static str),
}
