//! BGP-4 message codecs: the 19-byte header and the messages of RFC 4271 (OPEN, UPDATE,
//! NOTIFICATION, KEEPALIVE) and RFC 2918 (ROUTE-REFRESH), with the capabilities (RFC 5492, 4760,
//! 2918, 6793, 4724) and path attributes (RFC 4271, 1997, 8092, 4760) a LoadBalancer speaker
//! sends or meets.
//!
//! Parsing reads through [`Reader`], whose every read is checked and returns `None` past the end,
//! so no input can make a parser index out of bounds. Every malformed message maps to one
//! [`WireError`], and each of those names the NOTIFICATION RFC 4271 §6 says to send
//! ([`WireError::notification`]). Emitting takes a `Repr` and returns the whole message, header
//! included.

mod attributes;
mod capability;
mod error;
mod mp;
mod notification;
mod open;
mod prefix;
mod update;

pub use attributes::{
    AsPath, AsSegment, Community, LargeCommunity, Origin, PathAttributes, RawAttribute,
    SegmentKind, type_code,
};
pub use capability::{
    AddressFamily, Capability, GracefulRestart, GracefulRestartFamily, capability_code,
};
pub use error::{EmitError, WireError};
pub use mp::{MpReach, MpUnreach};
pub use notification::{NotificationRepr, RouteRefreshRepr, cease, code};
pub use open::{AS_TRANS, OpenRepr};
pub use update::UpdateRepr;

/// Length of the message header: marker (16), length (2), type (1).
pub const HEADER_LEN: usize = 19;
/// Largest message RFC 4271 allows (no RFC 8654 extended messages).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// The header's marker: all ones (RFC 4271 §4.1).
pub const MARKER: [u8; 16] = [0xff; 16];

/// The message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Open = 1,
    Update = 2,
    Notification = 3,
    Keepalive = 4,
    RouteRefresh = 5,
}

impl MessageType {
    fn from_code(code: u8) -> Option<MessageType> {
        Some(match code {
            1 => MessageType::Open,
            2 => MessageType::Update,
            3 => MessageType::Notification,
            4 => MessageType::Keepalive,
            5 => MessageType::RouteRefresh,
            _ => return None,
        })
    }

    /// The shortest message of this type (RFC 4271 §4, RFC 2918 §3).
    fn min_len(self) -> usize {
        match self {
            MessageType::Open => 29,
            MessageType::Update => 23,
            MessageType::Notification => 21,
            MessageType::Keepalive => 19,
            MessageType::RouteRefresh => 23,
        }
    }

    /// The longest: KEEPALIVE and ROUTE-REFRESH have a fixed length.
    fn max_len(self) -> usize {
        match self {
            MessageType::Keepalive => 19,
            MessageType::RouteRefresh => 23,
            _ => MAX_MESSAGE_LEN,
        }
    }
}

/// A checked message header (RFC 4271 §4.1, §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The whole message's length, header included.
    pub length: u16,
    pub kind: MessageType,
}

impl Header {
    /// Checks the first [`HEADER_LEN`] bytes of `buf`: the marker, the length against the type's
    /// bounds, and the type. `Ok(None)` when fewer than 19 bytes are there yet.
    pub fn parse(buf: &[u8]) -> Result<Option<Header>, WireError> {
        let mut r = Reader::new(buf);
        let (Some(marker), Some(length), Some(kind)) = (r.array::<16>(), r.u16(), r.u8()) else {
            return Ok(None);
        };
        if marker != MARKER {
            return Err(WireError::NotSynchronized);
        }
        let kind = MessageType::from_code(kind).ok_or(WireError::BadMessageType(kind))?;
        let len = usize::from(length);
        if len < kind.min_len() || len > kind.max_len() {
            return Err(WireError::BadMessageLength(length));
        }
        Ok(Some(Header { length, kind }))
    }
}

/// How many bytes at the start of a stream make the first whole message: `Ok(None)` until they
/// have all arrived. The header is checked as soon as it is complete, so a stream that can never
/// frame is refused before more is read.
pub fn frame(stream: &[u8]) -> Result<Option<usize>, WireError> {
    Ok(Header::parse(stream)?
        .map(|h| usize::from(h.length))
        .filter(|&len| len <= stream.len()))
}

/// What the session negotiated that changes how an UPDATE reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Context {
    /// Both sides sent the 4-octet AS capability (RFC 6793): AS_PATH holds 4-byte ASNs.
    pub four_octet_as: bool,
}

impl Context {
    /// Both sides speak 4-octet AS numbers.
    pub const FOUR_OCTET: Context = Context {
        four_octet_as: true,
    };
}

/// One BGP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(OpenRepr),
    /// Boxed: an UPDATE's attributes are ten times the size of any other message.
    Update(Box<UpdateRepr>),
    Notification(NotificationRepr),
    Keepalive,
    RouteRefresh(RouteRefreshRepr),
}

impl Message {
    /// Parses exactly one message: `msg` is what [`frame`] measured, header included.
    pub fn parse(msg: &[u8], context: Context) -> Result<Message, WireError> {
        let header = Header::parse(msg)?.ok_or(WireError::Truncated(msg.len()))?;
        if usize::from(header.length) != msg.len() {
            return Err(WireError::Truncated(msg.len()));
        }
        let body = msg.get(HEADER_LEN..).unwrap_or_default();
        Ok(match header.kind {
            MessageType::Open => Message::Open(OpenRepr::parse(body)?),
            MessageType::Update => Message::Update(Box::new(UpdateRepr::parse(body, context)?)),
            MessageType::Notification => Message::Notification(NotificationRepr::parse(body)),
            MessageType::Keepalive => Message::Keepalive,
            MessageType::RouteRefresh => Message::RouteRefresh(RouteRefreshRepr::parse(body)?),
        })
    }

    pub fn kind(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }

    /// The whole message, header included. Fails when it would be longer than
    /// [`MAX_MESSAGE_LEN`] or a field overflows its length octet.
    pub fn emit(&self, context: Context) -> Result<Vec<u8>, EmitError> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&MARKER);
        out.extend_from_slice(&[0, 0, self.kind() as u8]);
        match self {
            Message::Open(open) => open.emit(&mut out)?,
            Message::Update(update) => update.emit(&mut out, context)?,
            Message::Notification(notification) => notification.emit(&mut out),
            Message::Keepalive => {}
            Message::RouteRefresh(refresh) => refresh.emit(&mut out),
        }
        let len = out.len();
        if len > MAX_MESSAGE_LEN {
            return Err(EmitError::MessageTooLong(len));
        }
        patch_u16(&mut out, 16, len as u16);
        Ok(out)
    }
}

/// A checked cursor over outside bytes: every read returns `None` rather than run past the end.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// What is left, without consuming it.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        let (&first, tail) = self.buf.split_first()?;
        self.buf = tail;
        Some(first)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }
}

/// Writes `value` over the two bytes at `at` of a buffer we built (never outside bytes).
pub(crate) fn patch_u16(out: &mut [u8], at: usize, value: u16) {
    if let Some(slot) = out.get_mut(at..at + 2) {
        slot.copy_from_slice(&value.to_be_bytes());
    }
}

/// Runs `body`, then writes the number of bytes it appended into the length octet before it.
pub(crate) fn with_len_u8(
    out: &mut Vec<u8>,
    field: &'static str,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), EmitError>,
) -> Result<(), EmitError> {
    let at = out.len();
    out.push(0);
    body(out)?;
    let len = out.len() - at - 1;
    let len = u8::try_from(len).map_err(|_| EmitError::FieldTooLong { field, len })?;
    if let Some(slot) = out.get_mut(at) {
        *slot = len;
    }
    Ok(())
}

/// As [`with_len_u8`], with a two-octet length.
pub(crate) fn with_len_u16(
    out: &mut Vec<u8>,
    field: &'static str,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), EmitError>,
) -> Result<(), EmitError> {
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    body(out)?;
    let len = out.len() - at - 2;
    let len16 = u16::try_from(len).map_err(|_| EmitError::FieldTooLong { field, len })?;
    patch_u16(out, at, len16);
    Ok(())
}

/// Decodes a hex fixture; whitespace and `|` separators are ignored so fixtures can be laid out
/// field by field.
#[cfg(test)]
pub(crate) fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'|')
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "roundtrip_tests.rs"]
mod roundtrip_tests;
