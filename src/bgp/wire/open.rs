//! OPEN (RFC 4271 §4.2) with the Capabilities optional parameter (RFC 5492).

use std::net::Ipv4Addr;

use super::capability::{AddressFamily, Capability};
use super::{EmitError, Reader, WireError, with_len_u8};

/// The 2-octet "My Autonomous System" of a speaker whose AS does not fit (RFC 6793).
pub const AS_TRANS: u16 = 23456;
/// The only BGP version.
pub const VERSION: u8 = 4;
/// Optional parameter type "Capabilities" (RFC 5492).
const PARAM_CAPABILITIES: u8 = 2;

/// An OPEN message. The version is always 4 (parsing refuses others).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OpenRepr {
    /// The 2-octet AS field: the AS, or [`AS_TRANS`] when it needs four octets.
    pub my_as: u16,
    /// Seconds; 0 (no keepalives) or at least 3.
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    /// Every capability, in the order sent, from all Capabilities parameters.
    pub capabilities: Vec<Capability>,
}

impl OpenRepr {
    /// An OPEN for `asn`: the 2-octet field (AS_TRANS when it does not fit) and the 4-octet AS
    /// capability first, then `capabilities`.
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr, capabilities: Vec<Capability>) -> Self {
        OpenRepr {
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time,
            bgp_id,
            capabilities,
        }
    }

    /// The sender's AS: the 4-octet AS capability's when present (RFC 6793 §4.1), else the
    /// 2-octet field.
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }

    /// The 4-octet AS capability's value.
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
    }

    /// The address families of the multiprotocol capabilities, IPv4 unicast when there are none
    /// (RFC 4760 §8: a speaker without them carries IPv4 unicast only).
    pub fn families(&self) -> Vec<AddressFamily> {
        let families: Vec<AddressFamily> = self
            .capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::Multiprotocol(f) => Some(*f),
                _ => None,
            })
            .collect();
        if families.is_empty() {
            vec![AddressFamily::IPV4_UNICAST]
        } else {
            families
        }
    }

    pub fn has(&self, wanted: &Capability) -> bool {
        self.capabilities.iter().any(|c| c == wanted)
    }

    /// Parses the body after the header (RFC 4271 §6.2's checks that need no configuration).
    pub(crate) fn parse(body: &[u8]) -> Result<OpenRepr, WireError> {
        let mut r = Reader::new(body);
        let (Some(version), Some(my_as), Some(hold_time), Some(id), Some(params_len)) =
            (r.u8(), r.u16(), r.u16(), r.array::<4>(), r.u8())
        else {
            return Err(WireError::BadMessageLength((body.len() + 19) as u16));
        };
        if version != VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        if hold_time == 1 || hold_time == 2 {
            return Err(WireError::UnacceptableHoldTime(hold_time));
        }
        let bgp_id = Ipv4Addr::from(id);
        // RFC 6286 §2.1: a BGP Identifier is a non-zero 4-octet number.
        if bgp_id.is_unspecified() {
            return Err(WireError::BadBgpIdentifier(bgp_id));
        }
        let params = r
            .take(usize::from(params_len))
            .ok_or(WireError::MalformedOpen("optional parameters length"))?;
        if !r.is_empty() {
            return Err(WireError::MalformedOpen(
                "bytes after the optional parameters",
            ));
        }
        let mut capabilities = Vec::new();
        let mut params = Reader::new(params);
        while !params.is_empty() {
            let (Some(kind), Some(len)) = (params.u8(), params.u8()) else {
                return Err(WireError::MalformedOpen("optional parameter"));
            };
            let value = params
                .take(usize::from(len))
                .ok_or(WireError::MalformedOpen("optional parameter length"))?;
            if kind != PARAM_CAPABILITIES {
                return Err(WireError::UnsupportedOptionalParameter(kind));
            }
            let mut caps = Reader::new(value);
            while !caps.is_empty() {
                let (Some(code), Some(len)) = (caps.u8(), caps.u8()) else {
                    return Err(WireError::MalformedOpen("capability"));
                };
                let value = caps
                    .take(usize::from(len))
                    .ok_or(WireError::MalformedOpen("capability length"))?;
                capabilities.push(Capability::parse(code, value)?);
            }
        }
        Ok(OpenRepr {
            my_as,
            hold_time,
            bgp_id,
            capabilities,
        })
    }

    /// Writes the body: all capabilities in one Capabilities parameter (as MetalLB's native
    /// speaker sends them), none when there are none.
    pub(crate) fn emit(&self, out: &mut Vec<u8>) -> Result<(), EmitError> {
        if self.hold_time == 1 || self.hold_time == 2 {
            return Err(EmitError::Invalid("hold time must be 0 or at least 3"));
        }
        out.push(VERSION);
        out.extend_from_slice(&self.my_as.to_be_bytes());
        out.extend_from_slice(&self.hold_time.to_be_bytes());
        out.extend_from_slice(&self.bgp_id.octets());
        with_len_u8(out, "optional parameters", |out| {
            if self.capabilities.is_empty() {
                return Ok(());
            }
            out.push(PARAM_CAPABILITIES);
            with_len_u8(out, "capabilities parameter", |out| {
                self.capabilities.iter().try_for_each(|c| c.emit(out))
            })
        })
    }
}

#[cfg(test)]
#[path = "open_tests.rs"]
mod tests;
