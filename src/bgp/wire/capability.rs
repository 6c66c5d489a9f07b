//! Capabilities advertised in OPEN (RFC 5492): multiprotocol (RFC 4760), route refresh
//! (RFC 2918), 4-octet AS (RFC 6793), graceful restart (RFC 4724); others kept as raw bytes.

use super::{EmitError, Reader, WireError, with_len_u8};

/// An AFI/SAFI pair (IANA "Address Family Numbers", "SAFI Values").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressFamily {
    pub afi: u16,
    pub safi: u8,
}

impl AddressFamily {
    pub const AFI_IPV4: u16 = 1;
    pub const AFI_IPV6: u16 = 2;
    pub const SAFI_UNICAST: u8 = 1;
    pub const IPV4_UNICAST: AddressFamily = AddressFamily {
        afi: Self::AFI_IPV4,
        safi: Self::SAFI_UNICAST,
    };
    pub const IPV6_UNICAST: AddressFamily = AddressFamily {
        afi: Self::AFI_IPV6,
        safi: Self::SAFI_UNICAST,
    };
}

/// Capability codes (IANA "Capability Codes").
pub mod capability_code {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
}
use capability_code as cc;

/// One capability.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    Multiprotocol(AddressFamily),
    RouteRefresh,
    FourOctetAs(u32),
    GracefulRestart(GracefulRestart),
    /// Anything else (enhanced route refresh, ADD-PATH, FQDN, …), kept as sent.
    Unknown {
        code: u8,
        value: Vec<u8>,
    },
}

/// The graceful restart capability (RFC 4724 §3, with RFC 8538's N bit).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct GracefulRestart {
    /// R: the sender has restarted.
    pub restarted: bool,
    /// N: the sender does graceful restart for NOTIFICATIONs too (RFC 8538).
    pub notification: bool,
    /// How long the peer should keep our routes while we restart, in seconds (12 bits).
    pub restart_time: u16,
    pub families: Vec<GracefulRestartFamily>,
}

/// One address family in the graceful restart capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GracefulRestartFamily {
    pub family: AddressFamily,
    /// F: forwarding state for this family was kept across the restart.
    pub forwarding_preserved: bool,
}

const GR_RESTARTED: u16 = 0x8000;
const GR_NOTIFICATION: u16 = 0x4000;
const GR_TIME_MASK: u16 = 0x0fff;

impl Capability {
    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol(_) => cc::MULTIPROTOCOL,
            Capability::RouteRefresh => cc::ROUTE_REFRESH,
            Capability::FourOctetAs(_) => cc::FOUR_OCTET_AS,
            Capability::GracefulRestart(_) => cc::GRACEFUL_RESTART,
            Capability::Unknown { code, .. } => *code,
        }
    }

    /// Parses one capability's value; a known capability of the wrong length is an OPEN
    /// "recognized but malformed" optional parameter (RFC 4271 §6.2, subcode 0).
    pub(crate) fn parse(code: u8, value: &[u8]) -> Result<Capability, WireError> {
        let mut r = Reader::new(value);
        let cap = match code {
            cc::MULTIPROTOCOL => {
                let (Some(afi), Some(_reserved), Some(safi)) = (r.u16(), r.u8(), r.u8()) else {
                    return Err(WireError::MalformedOpen("multiprotocol capability"));
                };
                Capability::Multiprotocol(AddressFamily { afi, safi })
            }
            cc::ROUTE_REFRESH => Capability::RouteRefresh,
            cc::FOUR_OCTET_AS => {
                let asn = r
                    .u32()
                    .ok_or(WireError::MalformedOpen("4-octet AS capability"))?;
                Capability::FourOctetAs(asn)
            }
            cc::GRACEFUL_RESTART => Capability::GracefulRestart(parse_graceful_restart(&mut r)?),
            _ => {
                return Ok(Capability::Unknown {
                    code,
                    value: value.to_vec(),
                });
            }
        };
        if !r.is_empty() {
            return Err(WireError::MalformedOpen("capability length"));
        }
        Ok(cap)
    }

    /// Writes code, length and value.
    pub(crate) fn emit(&self, out: &mut Vec<u8>) -> Result<(), EmitError> {
        out.push(self.code());
        with_len_u8(out, "capability", |out| {
            match self {
                Capability::Multiprotocol(family) => {
                    out.extend_from_slice(&family.afi.to_be_bytes());
                    out.extend_from_slice(&[0, family.safi]);
                }
                Capability::RouteRefresh => {}
                Capability::FourOctetAs(asn) => out.extend_from_slice(&asn.to_be_bytes()),
                Capability::GracefulRestart(gr) => {
                    if gr.restart_time > GR_TIME_MASK {
                        return Err(EmitError::Invalid("restart time over 4095 s"));
                    }
                    let mut word = gr.restart_time;
                    if gr.restarted {
                        word |= GR_RESTARTED;
                    }
                    if gr.notification {
                        word |= GR_NOTIFICATION;
                    }
                    out.extend_from_slice(&word.to_be_bytes());
                    for f in &gr.families {
                        out.extend_from_slice(&f.family.afi.to_be_bytes());
                        let flags = if f.forwarding_preserved { 0x80 } else { 0 };
                        out.extend_from_slice(&[f.family.safi, flags]);
                    }
                }
                Capability::Unknown { value, .. } => out.extend_from_slice(value),
            }
            Ok(())
        })
    }
}

fn parse_graceful_restart(r: &mut Reader<'_>) -> Result<GracefulRestart, WireError> {
    let word = r
        .u16()
        .ok_or(WireError::MalformedOpen("graceful restart capability"))?;
    let mut families = Vec::new();
    while !r.is_empty() {
        let (Some(afi), Some(safi), Some(flags)) = (r.u16(), r.u8(), r.u8()) else {
            return Err(WireError::MalformedOpen("graceful restart capability"));
        };
        families.push(GracefulRestartFamily {
            family: AddressFamily { afi, safi },
            forwarding_preserved: flags & 0x80 != 0,
        });
    }
    Ok(GracefulRestart {
        restarted: word & GR_RESTARTED != 0,
        notification: word & GR_NOTIFICATION != 0,
        restart_time: word & GR_TIME_MASK,
        families,
    })
}
