//! The BFD Control packet (RFC 5880 §4.1), smoltcp style: [`Packet`] is a checked view over a
//! buffer (every field read is in bounds once [`Packet::new_checked`] said yes), [`ControlRepr`]
//! the parsed packet, with [`ControlRepr::parse`] applying the discard rules of RFC 5880 §6.8.6
//! that need nothing but the packet, and [`ControlRepr::emit`] writing one back.
//!
//! Authentication (the A bit and the section after the 24 mandatory bytes) is not supported:
//! a packet with the A bit set is discarded ([`ParseError::Authentication`]), as §6.8.6 says for a
//! session that uses no authentication, and we never set it.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! |                       My Discriminator                        |
//! |                      Your Discriminator                       |
//! |                    Desired Min TX Interval                    |
//! |                   Required Min RX Interval                    |
//! |                 Required Min Echo RX Interval                 |
//! ```

/// The mandatory section's length, and the length of every packet we send.
pub const CONTROL_LEN: usize = 24;
/// The shortest packet whose A bit is set (RFC 5880 §6.8.6).
pub const CONTROL_LEN_AUTH: usize = 26;
/// The only version (RFC 5880 §4.1).
pub const VERSION: u8 = 1;

/// A session state as the Sta field carries it (RFC 5880 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    AdminDown,
    Down,
    Init,
    Up,
}

impl State {
    fn from_bits(bits: u8) -> State {
        match bits & 0b11 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    fn bits(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }
}

/// The diagnostic code (RFC 5880 §4.1): why the sender's session last left Up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diag {
    None,
    ControlDetectionTimeExpired,
    EchoFunctionFailed,
    NeighborSignaledSessionDown,
    ForwardingPlaneReset,
    PathDown,
    ConcatenatedPathDown,
    AdministrativelyDown,
    ReverseConcatenatedPathDown,
    /// 9–31: reserved; kept as received.
    Reserved(u8),
}

impl Diag {
    pub fn from_code(code: u8) -> Diag {
        match code & 0x1f {
            0 => Diag::None,
            1 => Diag::ControlDetectionTimeExpired,
            2 => Diag::EchoFunctionFailed,
            3 => Diag::NeighborSignaledSessionDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            other => Diag::Reserved(other),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Diag::None => 0,
            Diag::ControlDetectionTimeExpired => 1,
            Diag::EchoFunctionFailed => 2,
            Diag::NeighborSignaledSessionDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdministrativelyDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Reserved(code) => code & 0x1f,
        }
    }
}

impl std::fmt::Display for Diag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            Diag::None => "no diagnostic",
            Diag::ControlDetectionTimeExpired => "control detection time expired",
            Diag::EchoFunctionFailed => "echo function failed",
            Diag::NeighborSignaledSessionDown => "neighbor signaled session down",
            Diag::ForwardingPlaneReset => "forwarding plane reset",
            Diag::PathDown => "path down",
            Diag::ConcatenatedPathDown => "concatenated path down",
            Diag::AdministrativelyDown => "administratively down",
            Diag::ReverseConcatenatedPathDown => "reverse concatenated path down",
            Diag::Reserved(code) => return write!(f, "diagnostic {code}"),
        };
        f.write_str(text)
    }
}

/// Why a packet is discarded (RFC 5880 §6.8.6, the rules that need only the packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("BFD packet of {0} bytes: shorter than the 24-byte mandatory section")]
    Truncated(usize),
    #[error("BFD version {0}: only version 1 is known")]
    Version(u8),
    #[error("BFD length field {length}: less than {minimum}")]
    LengthTooSmall { length: u8, minimum: usize },
    #[error("BFD length field {length}: more than the {got} bytes received")]
    LengthTooLarge { length: u8, got: usize },
    #[error("BFD detect multiplier 0")]
    DetectMultZero,
    #[error("BFD multipoint bit set (reserved for RFC 8562; discarded)")]
    Multipoint,
    #[error("BFD My Discriminator 0")]
    MyDiscriminatorZero,
    #[error("BFD Your Discriminator 0 in state {0:?} (only Down and AdminDown may send it)")]
    YourDiscriminatorZero(State),
    #[error("BFD authentication is not supported: packet with the A bit discarded")]
    Authentication,
}

/// A buffer too small to emit into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("buffer of {0} bytes: a BFD Control packet needs 24")]
pub struct BufferTooSmall(pub usize);

mod field {
    pub const VERS_DIAG: usize = 0;
    pub const FLAGS: usize = 1;
    pub const DETECT_MULT: usize = 2;
    pub const LENGTH: usize = 3;
    pub const MY_DISCR: usize = 4;
    pub const YOUR_DISCR: usize = 8;
    pub const DESIRED_MIN_TX: usize = 12;
    pub const REQUIRED_MIN_RX: usize = 16;
    pub const REQUIRED_MIN_ECHO_RX: usize = 20;
}

mod flag {
    pub const POLL: u8 = 0x20;
    pub const FINAL: u8 = 0x10;
    pub const CPI: u8 = 0x08;
    pub const AUTH: u8 = 0x04;
    pub const DEMAND: u8 = 0x02;
    pub const MULTIPOINT: u8 = 0x01;
}

/// A checked view of a BFD Control packet: at least [`CONTROL_LEN`] bytes.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// The view, once the buffer holds the mandatory section.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, ParseError> {
        let len = buffer.as_ref().len();
        if len < CONTROL_LEN {
            return Err(ParseError::Truncated(len));
        }
        Ok(Packet { buffer })
    }

    fn byte(&self, at: usize) -> u8 {
        // In bounds: `new_checked` saw at least CONTROL_LEN bytes.
        self.buffer.as_ref().get(at).copied().unwrap_or(0)
    }

    fn word(&self, at: usize) -> u32 {
        let b = self.buffer.as_ref();
        let mut out = [0u8; 4];
        if let Some(bytes) = b.get(at..at + 4) {
            out.copy_from_slice(bytes);
        }
        u32::from_be_bytes(out)
    }

    pub fn version(&self) -> u8 {
        self.byte(field::VERS_DIAG) >> 5
    }
    pub fn diag(&self) -> Diag {
        Diag::from_code(self.byte(field::VERS_DIAG))
    }
    pub fn state(&self) -> State {
        State::from_bits(self.byte(field::FLAGS) >> 6)
    }
    fn flag(&self, bit: u8) -> bool {
        self.byte(field::FLAGS) & bit != 0
    }
    pub fn poll(&self) -> bool {
        self.flag(flag::POLL)
    }
    pub fn final_(&self) -> bool {
        self.flag(flag::FINAL)
    }
    pub fn control_plane_independent(&self) -> bool {
        self.flag(flag::CPI)
    }
    pub fn auth_present(&self) -> bool {
        self.flag(flag::AUTH)
    }
    pub fn demand(&self) -> bool {
        self.flag(flag::DEMAND)
    }
    pub fn multipoint(&self) -> bool {
        self.flag(flag::MULTIPOINT)
    }
    pub fn detect_mult(&self) -> u8 {
        self.byte(field::DETECT_MULT)
    }
    pub fn length(&self) -> u8 {
        self.byte(field::LENGTH)
    }
    pub fn my_discriminator(&self) -> u32 {
        self.word(field::MY_DISCR)
    }
    pub fn your_discriminator(&self) -> u32 {
        self.word(field::YOUR_DISCR)
    }
    pub fn desired_min_tx(&self) -> u32 {
        self.word(field::DESIRED_MIN_TX)
    }
    pub fn required_min_rx(&self) -> u32 {
        self.word(field::REQUIRED_MIN_RX)
    }
    pub fn required_min_echo_rx(&self) -> u32 {
        self.word(field::REQUIRED_MIN_ECHO_RX)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_byte(&mut self, at: usize, value: u8) {
        if let Some(b) = self.buffer.as_mut().get_mut(at) {
            *b = value;
        }
    }

    fn set_word(&mut self, at: usize, value: u32) {
        if let Some(b) = self.buffer.as_mut().get_mut(at..at + 4) {
            b.copy_from_slice(&value.to_be_bytes());
        }
    }
}

/// A BFD Control packet as this crate reads and writes it. The A and M bits are absent: a
/// packet with either is discarded, and we never send them. Intervals are in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlRepr {
    pub diag: Diag,
    pub state: State,
    pub poll: bool,
    pub final_: bool,
    pub control_plane_independent: bool,
    pub demand: bool,
    pub detect_mult: u8,
    pub my_discriminator: u32,
    pub your_discriminator: u32,
    pub desired_min_tx: u32,
    pub required_min_rx: u32,
    pub required_min_echo_rx: u32,
}

impl ControlRepr {
    /// Parses a received UDP payload, discarding (with the rule's error) what RFC 5880 §6.8.6
    /// says to discard. Bytes past the Length field are ignored.
    pub fn parse(bytes: &[u8]) -> Result<ControlRepr, ParseError> {
        let packet = Packet::new_checked(bytes)?;
        if packet.version() != VERSION {
            return Err(ParseError::Version(packet.version()));
        }
        let length = packet.length();
        let minimum = if packet.auth_present() {
            CONTROL_LEN_AUTH
        } else {
            CONTROL_LEN
        };
        if usize::from(length) < minimum {
            return Err(ParseError::LengthTooSmall { length, minimum });
        }
        if usize::from(length) > bytes.len() {
            return Err(ParseError::LengthTooLarge {
                length,
                got: bytes.len(),
            });
        }
        if packet.detect_mult() == 0 {
            return Err(ParseError::DetectMultZero);
        }
        if packet.multipoint() {
            return Err(ParseError::Multipoint);
        }
        if packet.my_discriminator() == 0 {
            return Err(ParseError::MyDiscriminatorZero);
        }
        let state = packet.state();
        if packet.your_discriminator() == 0 && !matches!(state, State::Down | State::AdminDown) {
            return Err(ParseError::YourDiscriminatorZero(state));
        }
        if packet.auth_present() {
            return Err(ParseError::Authentication);
        }
        Ok(ControlRepr {
            diag: packet.diag(),
            state,
            poll: packet.poll(),
            final_: packet.final_(),
            control_plane_independent: packet.control_plane_independent(),
            demand: packet.demand(),
            detect_mult: packet.detect_mult(),
            my_discriminator: packet.my_discriminator(),
            your_discriminator: packet.your_discriminator(),
            desired_min_tx: packet.desired_min_tx(),
            required_min_rx: packet.required_min_rx(),
            required_min_echo_rx: packet.required_min_echo_rx(),
        })
    }

    /// Writes the packet into the first [`CONTROL_LEN`] bytes of `buffer`.
    pub fn emit(&self, buffer: &mut [u8]) -> Result<(), BufferTooSmall> {
        let len = buffer.len();
        let mut packet = Packet::new_checked(buffer).map_err(|_| BufferTooSmall(len))?;
        packet.set_byte(field::VERS_DIAG, (VERSION << 5) | self.diag.code());
        let mut flags = self.state.bits() << 6;
        for (set, bit) in [
            (self.poll, flag::POLL),
            (self.final_, flag::FINAL),
            (self.control_plane_independent, flag::CPI),
            (self.demand, flag::DEMAND),
        ] {
            if set {
                flags |= bit;
            }
        }
        packet.set_byte(field::FLAGS, flags);
        packet.set_byte(field::DETECT_MULT, self.detect_mult);
        packet.set_byte(field::LENGTH, CONTROL_LEN as u8);
        packet.set_word(field::MY_DISCR, self.my_discriminator);
        packet.set_word(field::YOUR_DISCR, self.your_discriminator);
        packet.set_word(field::DESIRED_MIN_TX, self.desired_min_tx);
        packet.set_word(field::REQUIRED_MIN_RX, self.required_min_rx);
        packet.set_word(field::REQUIRED_MIN_ECHO_RX, self.required_min_echo_rx);
        Ok(())
    }

    /// The packet as the 24 bytes to send.
    pub fn to_bytes(&self) -> [u8; CONTROL_LEN] {
        let mut out = [0u8; CONTROL_LEN];
        // 24 bytes always fit.
        let _ = self.emit(&mut out);
        out
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
