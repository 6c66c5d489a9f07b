//! MP_REACH_NLRI and MP_UNREACH_NLRI (RFC 4760 §3, §4), for IPv4 and IPv6 unicast; other
//! families are kept as raw bytes. An IPv6 next hop is a global address, optionally followed by
//! a link-local one (RFC 2545 §3).

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use super::capability::AddressFamily;
use super::{EmitError, Reader, prefix, with_len_u8};

/// Reachable prefixes of one family, with their next hop.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MpReach {
    Ipv4 {
        next_hop: Ipv4Addr,
        nlri: Vec<Ipv4Net>,
    },
    Ipv6 {
        next_hop: Ipv6Addr,
        link_local: Option<Ipv6Addr>,
        nlri: Vec<Ipv6Net>,
    },
    /// Any family but IPv4 and IPv6 unicast.
    Other {
        family: AddressFamily,
        next_hop: Vec<u8>,
        nlri: Vec<u8>,
    },
}

/// Withdrawn prefixes of one family. An empty IPv6 list alone in an UPDATE is IPv6's End-of-RIB
/// (RFC 4724 §2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MpUnreach {
    Ipv4(Vec<Ipv4Net>),
    Ipv6(Vec<Ipv6Net>),
    Other {
        family: AddressFamily,
        withdrawn: Vec<u8>,
    },
}

fn family(r: &mut Reader<'_>) -> Option<AddressFamily> {
    Some(AddressFamily {
        afi: r.u16()?,
        safi: r.u8()?,
    })
}

fn put_family(out: &mut Vec<u8>, family: AddressFamily) {
    out.extend_from_slice(&family.afi.to_be_bytes());
    out.push(family.safi);
}

impl MpReach {
    pub fn family(&self) -> AddressFamily {
        match self {
            MpReach::Ipv4 { .. } => AddressFamily::IPV4_UNICAST,
            MpReach::Ipv6 { .. } => AddressFamily::IPV6_UNICAST,
            MpReach::Other { family, .. } => *family,
        }
    }

    /// `None` when malformed: a next hop of the wrong length for the family, or a bad prefix.
    pub(crate) fn parse(value: &[u8]) -> Option<MpReach> {
        let mut r = Reader::new(value);
        let family = family(&mut r)?;
        let hop_len = r.u8()?;
        let hop = r.take(usize::from(hop_len))?;
        // Reserved (once the SNPA count): ignored on receipt.
        r.u8()?;
        let nlri = r.rest();
        Some(match family {
            AddressFamily::IPV4_UNICAST => MpReach::Ipv4 {
                next_hop: Ipv4Addr::from(<[u8; 4]>::try_from(hop).ok()?),
                nlri: prefix::parse_v4(nlri)?,
            },
            AddressFamily::IPV6_UNICAST => {
                let (global, link_local) = match hop.len() {
                    16 => (hop, None),
                    32 => {
                        let (global, local) = hop.split_at(16);
                        (
                            global,
                            Some(Ipv6Addr::from(<[u8; 16]>::try_from(local).ok()?)),
                        )
                    }
                    _ => return None,
                };
                MpReach::Ipv6 {
                    next_hop: Ipv6Addr::from(<[u8; 16]>::try_from(global).ok()?),
                    link_local,
                    nlri: prefix::parse_v6(nlri)?,
                }
            }
            family => MpReach::Other {
                family,
                next_hop: hop.to_vec(),
                nlri: nlri.to_vec(),
            },
        })
    }

    pub(crate) fn emit(&self, out: &mut Vec<u8>) -> Result<(), EmitError> {
        put_family(out, self.family());
        with_len_u8(out, "MP_REACH_NLRI next hop", |out| {
            match self {
                MpReach::Ipv4 { next_hop, .. } => out.extend_from_slice(&next_hop.octets()),
                MpReach::Ipv6 {
                    next_hop,
                    link_local,
                    ..
                } => {
                    out.extend_from_slice(&next_hop.octets());
                    if let Some(local) = link_local {
                        out.extend_from_slice(&local.octets());
                    }
                }
                MpReach::Other { next_hop, .. } => out.extend_from_slice(next_hop),
            }
            Ok(())
        })?;
        out.push(0);
        match self {
            MpReach::Ipv4 { nlri, .. } => prefix::emit_v4(out, nlri),
            MpReach::Ipv6 { nlri, .. } => prefix::emit_v6(out, nlri),
            MpReach::Other { nlri, .. } => out.extend_from_slice(nlri),
        }
        Ok(())
    }
}

impl MpUnreach {
    pub fn family(&self) -> AddressFamily {
        match self {
            MpUnreach::Ipv4(_) => AddressFamily::IPV4_UNICAST,
            MpUnreach::Ipv6(_) => AddressFamily::IPV6_UNICAST,
            MpUnreach::Other { family, .. } => *family,
        }
    }

    pub(crate) fn parse(value: &[u8]) -> Option<MpUnreach> {
        let mut r = Reader::new(value);
        let family = family(&mut r)?;
        let withdrawn = r.rest();
        Some(match family {
            AddressFamily::IPV4_UNICAST => MpUnreach::Ipv4(prefix::parse_v4(withdrawn)?),
            AddressFamily::IPV6_UNICAST => MpUnreach::Ipv6(prefix::parse_v6(withdrawn)?),
            family => MpUnreach::Other {
                family,
                withdrawn: withdrawn.to_vec(),
            },
        })
    }

    pub(crate) fn emit(&self, out: &mut Vec<u8>) {
        put_family(out, self.family());
        match self {
            MpUnreach::Ipv4(prefixes) => prefix::emit_v4(out, prefixes),
            MpUnreach::Ipv6(prefixes) => prefix::emit_v6(out, prefixes),
            MpUnreach::Other { withdrawn, .. } => out.extend_from_slice(withdrawn),
        }
    }
}
