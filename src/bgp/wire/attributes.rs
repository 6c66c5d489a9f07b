//! UPDATE path attributes (RFC 4271 §4.3, §5, §6.3): ORIGIN, AS_PATH, NEXT_HOP,
//! MULTI_EXIT_DISC, LOCAL_PREF, ATOMIC_AGGREGATE, COMMUNITIES (RFC 1997), LARGE_COMMUNITIES
//! (RFC 8092), MP_REACH_NLRI and MP_UNREACH_NLRI (RFC 4760); unknown optional transitive
//! attributes are kept as sent, unknown optional non-transitive ones dropped (RFC 4271 §5).

use std::fmt;
use std::net::Ipv4Addr;

use super::mp::{MpReach, MpUnreach};
use super::{Context, EmitError, Reader, WireError};

/// Attribute flag bits (RFC 4271 §4.3).
pub(crate) const OPTIONAL: u8 = 0x80;
pub(crate) const TRANSITIVE: u8 = 0x40;
pub(crate) const PARTIAL: u8 = 0x20;
pub(crate) const EXTENDED_LENGTH: u8 = 0x10;

/// Attribute type codes.
pub mod type_code {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MULTI_EXIT_DISC: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const COMMUNITIES: u8 = 8;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const LARGE_COMMUNITIES: u8 = 32;
}
use type_code as tc;

/// ORIGIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

/// An AS_PATH segment's type (RFC 4271 §4.3, RFC 5065 for the confederation ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentKind {
    Set = 1,
    Sequence = 2,
    ConfedSequence = 3,
    ConfedSet = 4,
}

/// One AS_PATH segment: never empty (RFC 7606 §7.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AsSegment {
    pub kind: SegmentKind,
    pub asns: Vec<u32>,
}

/// An AS_PATH; empty for routes originated inside the AS.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AsPath {
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// One AS_SEQUENCE: what an eBGP speaker originating a route sends (`[my AS]`).
    pub fn sequence(asns: Vec<u32>) -> AsPath {
        AsPath {
            segments: vec![AsSegment {
                kind: SegmentKind::Sequence,
                asns,
            }],
        }
    }

    /// ASNs are 4 octets when both sides said so (RFC 6793), else 2.
    fn parse(value: &[u8], four_octet: bool) -> Result<AsPath, WireError> {
        let width = if four_octet { 4 } else { 2 };
        let mut r = Reader::new(value);
        let mut segments = Vec::new();
        while !r.is_empty() {
            let (Some(kind), Some(count)) = (r.u8(), r.u8()) else {
                return Err(WireError::MalformedAsPath);
            };
            let kind = match kind {
                1 => SegmentKind::Set,
                2 => SegmentKind::Sequence,
                3 => SegmentKind::ConfedSequence,
                4 => SegmentKind::ConfedSet,
                _ => return Err(WireError::MalformedAsPath),
            };
            if count == 0 {
                return Err(WireError::MalformedAsPath);
            }
            let bytes = r
                .take(usize::from(count) * width)
                .ok_or(WireError::MalformedAsPath)?;
            let asns = bytes
                .chunks_exact(width)
                .map(|c| c.iter().fold(0u32, |n, &b| (n << 8) | u32::from(b)))
                .collect();
            segments.push(AsSegment { kind, asns });
        }
        Ok(AsPath { segments })
    }

    /// With 2-octet ASNs, an AS that does not fit is written as AS_TRANS (RFC 6793 §4.2.2).
    fn emit(&self, out: &mut Vec<u8>, four_octet: bool) -> Result<(), EmitError> {
        for segment in &self.segments {
            let count = u8::try_from(segment.asns.len()).map_err(|_| EmitError::FieldTooLong {
                field: "AS_PATH segment",
                len: segment.asns.len(),
            })?;
            if count == 0 {
                return Err(EmitError::Invalid("empty AS_PATH segment"));
            }
            out.extend_from_slice(&[segment.kind as u8, count]);
            for &asn in &segment.asns {
                if four_octet {
                    out.extend_from_slice(&asn.to_be_bytes());
                } else {
                    let two = u16::try_from(asn).unwrap_or(super::AS_TRANS);
                    out.extend_from_slice(&two.to_be_bytes());
                }
            }
        }
        Ok(())
    }
}

/// A community (RFC 1997): the AS in the high 16 bits, a value in the low 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    pub const NO_EXPORT: Community = Community(0xffff_ff01);
    pub const NO_ADVERTISE: Community = Community(0xffff_ff02);

    pub fn new(asn: u16, value: u16) -> Community {
        Community((u32::from(asn) << 16) | u32::from(value))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff)
    }
}

/// A large community (RFC 8092): global administrator and two local data parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    pub global: u32,
    pub local1: u32,
    pub local2: u32,
}

/// An optional transitive attribute we do not know, kept as received (partial bit included).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    /// The optional, transitive and partial bits; the extended length bit is worked out again
    /// when written.
    pub flags: u8,
    pub type_code: u8,
    pub value: Vec<u8>,
}

/// The path attributes of one UPDATE. Each attribute may appear once (RFC 4271 §6.3), so each
/// has one field; they are written in type code order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PathAttributes {
    pub origin: Option<Origin>,
    pub as_path: Option<AsPath>,
    pub next_hop: Option<Ipv4Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    /// Empty when the attribute is absent (an empty one is malformed, RFC 7606 §7.8).
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
    /// Unknown optional transitive attributes, in type code order.
    pub other: Vec<RawAttribute>,
}

/// The optional and transitive bits a known attribute must carry.
fn expected_flags(type_code: u8) -> Option<u8> {
    Some(match type_code {
        tc::ORIGIN | tc::AS_PATH | tc::NEXT_HOP | tc::LOCAL_PREF | tc::ATOMIC_AGGREGATE => {
            TRANSITIVE
        }
        tc::MULTI_EXIT_DISC | tc::MP_REACH_NLRI | tc::MP_UNREACH_NLRI => OPTIONAL,
        tc::COMMUNITIES | tc::LARGE_COMMUNITIES => OPTIONAL | TRANSITIVE,
        _ => return None,
    })
}

impl PathAttributes {
    /// Parses the Path Attributes field of an UPDATE.
    pub(crate) fn parse(field: &[u8], context: Context) -> Result<PathAttributes, WireError> {
        let mut attrs = PathAttributes::default();
        let mut seen = [false; 256];
        let mut r = Reader::new(field);
        while !r.is_empty() {
            let whole = r.rest();
            let (Some(flags), Some(type_code)) = (r.u8(), r.u8()) else {
                return Err(WireError::MalformedAttributeList(
                    "attribute header cut short",
                ));
            };
            let len = if flags & EXTENDED_LENGTH != 0 {
                r.u16()
            } else {
                r.u8().map(u16::from)
            };
            let value = len.and_then(|len| r.take(usize::from(len))).ok_or(
                WireError::MalformedAttributeList("attribute runs past the list"),
            )?;
            let attribute = whole
                .get(..whole.len() - r.rest().len())
                .unwrap_or_default();
            // A u8 always indexes 256 entries; `get_mut` says so without a panic path.
            if let Some(seen) = seen.get_mut(usize::from(type_code)) {
                if *seen {
                    return Err(WireError::MalformedAttributeList("attribute repeated"));
                }
                *seen = true;
            }
            attrs.read(flags, type_code, value, attribute, context)?;
        }
        // Kept in the order they are written, whatever order they came in.
        attrs.other.sort_by_key(|raw| raw.type_code);
        Ok(attrs)
    }

    fn read(
        &mut self,
        flags: u8,
        type_code: u8,
        value: &[u8],
        attribute: &[u8],
        context: Context,
    ) -> Result<(), WireError> {
        let attribute = || attribute.to_vec();
        let bad_length = || WireError::AttributeLength {
            type_code,
            attribute: attribute(),
        };
        if let Some(expected) = expected_flags(type_code) {
            let partial_allowed = expected == OPTIONAL | TRANSITIVE;
            if flags & (OPTIONAL | TRANSITIVE) != expected
                || (!partial_allowed && flags & PARTIAL != 0)
            {
                return Err(WireError::AttributeFlags {
                    type_code,
                    attribute: attribute(),
                });
            }
        }
        let u32_value = || {
            <[u8; 4]>::try_from(value)
                .map(u32::from_be_bytes)
                .map_err(|_| bad_length())
        };
        match type_code {
            tc::ORIGIN => {
                let &[origin] = value else {
                    return Err(bad_length());
                };
                self.origin = Some(match origin {
                    0 => Origin::Igp,
                    1 => Origin::Egp,
                    2 => Origin::Incomplete,
                    _ => {
                        return Err(WireError::InvalidOrigin {
                            attribute: attribute(),
                        });
                    }
                });
            }
            tc::AS_PATH => self.as_path = Some(AsPath::parse(value, context.four_octet_as)?),
            tc::NEXT_HOP => {
                let hop = Ipv4Addr::from(u32_value()?);
                if hop.is_unspecified() || hop.is_broadcast() || hop.is_multicast() {
                    return Err(WireError::InvalidNextHop {
                        attribute: attribute(),
                    });
                }
                self.next_hop = Some(hop);
            }
            tc::MULTI_EXIT_DISC => self.med = Some(u32_value()?),
            tc::LOCAL_PREF => self.local_pref = Some(u32_value()?),
            tc::ATOMIC_AGGREGATE if value.is_empty() => self.atomic_aggregate = true,
            tc::ATOMIC_AGGREGATE => return Err(bad_length()),
            tc::COMMUNITIES => {
                if value.is_empty() || !value.len().is_multiple_of(4) {
                    return Err(bad_length());
                }
                self.communities = value
                    .chunks_exact(4)
                    .filter_map(|c| <[u8; 4]>::try_from(c).ok())
                    .map(|c| Community(u32::from_be_bytes(c)))
                    .collect();
            }
            tc::LARGE_COMMUNITIES => {
                if value.is_empty() || !value.len().is_multiple_of(12) {
                    return Err(bad_length());
                }
                let mut r = Reader::new(value);
                while let (Some(global), Some(local1), Some(local2)) = (r.u32(), r.u32(), r.u32()) {
                    self.large_communities.push(LargeCommunity {
                        global,
                        local1,
                        local2,
                    });
                }
            }
            tc::MP_REACH_NLRI | tc::MP_UNREACH_NLRI => {
                let malformed = || WireError::OptionalAttribute {
                    type_code,
                    attribute: attribute(),
                };
                if type_code == tc::MP_REACH_NLRI {
                    self.mp_reach = Some(MpReach::parse(value).ok_or_else(malformed)?);
                } else {
                    self.mp_unreach = Some(MpUnreach::parse(value).ok_or_else(malformed)?);
                }
            }
            _ if flags & OPTIONAL == 0 => {
                return Err(WireError::UnrecognizedWellKnownAttribute {
                    type_code,
                    attribute: attribute(),
                });
            }
            _ if flags & TRANSITIVE != 0 => self.other.push(RawAttribute {
                flags: flags & (OPTIONAL | TRANSITIVE | PARTIAL),
                type_code,
                value: value.to_vec(),
            }),
            // Unknown optional non-transitive: quietly ignored (RFC 4271 §5).
            _ => {}
        }
        Ok(())
    }

    /// Writes the Path Attributes field (without its length), in type code order.
    pub(crate) fn emit(&self, out: &mut Vec<u8>, context: Context) -> Result<(), EmitError> {
        let mut list: Vec<(u8, u8, Vec<u8>)> = Vec::new();
        if let Some(origin) = self.origin {
            list.push((TRANSITIVE, tc::ORIGIN, vec![origin as u8]));
        }
        if let Some(path) = &self.as_path {
            let mut value = Vec::new();
            path.emit(&mut value, context.four_octet_as)?;
            list.push((TRANSITIVE, tc::AS_PATH, value));
        }
        if let Some(hop) = self.next_hop {
            list.push((TRANSITIVE, tc::NEXT_HOP, hop.octets().to_vec()));
        }
        if let Some(med) = self.med {
            list.push((OPTIONAL, tc::MULTI_EXIT_DISC, med.to_be_bytes().to_vec()));
        }
        if let Some(pref) = self.local_pref {
            list.push((TRANSITIVE, tc::LOCAL_PREF, pref.to_be_bytes().to_vec()));
        }
        if self.atomic_aggregate {
            list.push((TRANSITIVE, tc::ATOMIC_AGGREGATE, Vec::new()));
        }
        if !self.communities.is_empty() {
            let value = self.communities.iter().flat_map(|c| c.0.to_be_bytes());
            list.push((OPTIONAL | TRANSITIVE, tc::COMMUNITIES, value.collect()));
        }
        if let Some(reach) = &self.mp_reach {
            let mut value = Vec::new();
            reach.emit(&mut value)?;
            list.push((OPTIONAL, tc::MP_REACH_NLRI, value));
        }
        if let Some(unreach) = &self.mp_unreach {
            let mut value = Vec::new();
            unreach.emit(&mut value);
            list.push((OPTIONAL, tc::MP_UNREACH_NLRI, value));
        }
        if !self.large_communities.is_empty() {
            let value = self.large_communities.iter().flat_map(|c| {
                [c.global, c.local1, c.local2]
                    .into_iter()
                    .flat_map(u32::to_be_bytes)
            });
            list.push((
                OPTIONAL | TRANSITIVE,
                tc::LARGE_COMMUNITIES,
                value.collect(),
            ));
        }
        for raw in &self.other {
            if expected_flags(raw.type_code).is_some() || raw.flags & OPTIONAL == 0 {
                return Err(EmitError::Invalid(
                    "a raw attribute must be an unknown optional one",
                ));
            }
            let flags = raw.flags & (OPTIONAL | TRANSITIVE | PARTIAL);
            list.push((flags, raw.type_code, raw.value.clone()));
        }
        list.sort_by_key(|(_, type_code, _)| *type_code);
        for (flags, type_code, value) in list {
            let len = value.len();
            match u8::try_from(len) {
                Ok(short) => out.extend_from_slice(&[flags, type_code, short]),
                Err(_) => {
                    let long = u16::try_from(len).map_err(|_| EmitError::FieldTooLong {
                        field: "path attribute",
                        len,
                    })?;
                    out.extend_from_slice(&[flags | EXTENDED_LENGTH, type_code]);
                    out.extend_from_slice(&long.to_be_bytes());
                }
            }
            out.extend_from_slice(&value);
        }
        Ok(())
    }
}
