//! UPDATE (RFC 4271 §4.3): withdrawn IPv4 routes, path attributes, IPv4 NLRI.

use ipnet::Ipv4Net;

use super::attributes::{PathAttributes, type_code};
use super::capability::AddressFamily;
use super::mp::MpUnreach;
use super::{Context, EmitError, Reader, WireError, prefix, with_len_u16};

/// An UPDATE message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct UpdateRepr {
    pub withdrawn: Vec<Ipv4Net>,
    pub attributes: PathAttributes,
    pub nlri: Vec<Ipv4Net>,
}

impl UpdateRepr {
    /// The End-of-RIB marker of `family` (RFC 4724 §2): an empty UPDATE for IPv4 unicast, an
    /// empty MP_UNREACH_NLRI for the others.
    pub fn end_of_rib(family: AddressFamily) -> UpdateRepr {
        let mut update = UpdateRepr::default();
        update.attributes.mp_unreach = match family {
            AddressFamily::IPV4_UNICAST => None,
            AddressFamily::IPV6_UNICAST => Some(MpUnreach::Ipv6(Vec::new())),
            family => Some(MpUnreach::Other {
                family,
                withdrawn: Vec::new(),
            }),
        };
        update
    }

    /// The family this UPDATE ends the initial table of, when it is an End-of-RIB marker.
    pub fn is_end_of_rib(&self) -> Option<AddressFamily> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        let attrs = &self.attributes;
        let empty = PathAttributes {
            mp_unreach: attrs.mp_unreach.clone(),
            ..PathAttributes::default()
        };
        if *attrs != empty {
            return None;
        }
        match &attrs.mp_unreach {
            None => Some(AddressFamily::IPV4_UNICAST),
            Some(MpUnreach::Ipv4(p)) if p.is_empty() => Some(AddressFamily::IPV4_UNICAST),
            Some(MpUnreach::Ipv6(p)) if p.is_empty() => Some(AddressFamily::IPV6_UNICAST),
            Some(MpUnreach::Other { family, withdrawn }) if withdrawn.is_empty() => Some(*family),
            Some(_) => None,
        }
    }

    /// Parses the body after the header (RFC 4271 §6.3).
    pub(crate) fn parse(body: &[u8], context: Context) -> Result<UpdateRepr, WireError> {
        let too_long = WireError::MalformedAttributeList("field lengths exceed the message");
        let mut r = Reader::new(body);
        let withdrawn_len = r.u16().ok_or(too_long.clone())?;
        let withdrawn = r.take(usize::from(withdrawn_len)).ok_or(too_long.clone())?;
        let attrs_len = r.u16().ok_or(too_long.clone())?;
        let attrs = r.take(usize::from(attrs_len)).ok_or(too_long)?;
        let withdrawn = prefix::parse_v4(withdrawn).ok_or(WireError::InvalidNetworkField)?;
        let attributes = PathAttributes::parse(attrs, context)?;
        let nlri = prefix::parse_v4(r.rest()).ok_or(WireError::InvalidNetworkField)?;
        let update = UpdateRepr {
            withdrawn,
            attributes,
            nlri,
        };
        update.check_mandatory()?;
        Ok(update)
    }

    /// ORIGIN and AS_PATH come with any reachable route, NEXT_HOP with IPv4 NLRI (RFC 4271
    /// §6.3, RFC 4760 §3).
    fn check_mandatory(&self) -> Result<(), WireError> {
        let attrs = &self.attributes;
        let reach = !self.nlri.is_empty() || attrs.mp_reach.is_some();
        if reach && attrs.origin.is_none() {
            return Err(WireError::MissingWellKnownAttribute(type_code::ORIGIN));
        }
        if reach && attrs.as_path.is_none() {
            return Err(WireError::MissingWellKnownAttribute(type_code::AS_PATH));
        }
        if !self.nlri.is_empty() && attrs.next_hop.is_none() {
            return Err(WireError::MissingWellKnownAttribute(type_code::NEXT_HOP));
        }
        Ok(())
    }

    pub(crate) fn emit(&self, out: &mut Vec<u8>, context: Context) -> Result<(), EmitError> {
        with_len_u16(out, "withdrawn routes", |out| {
            prefix::emit_v4(out, &self.withdrawn);
            Ok(())
        })?;
        with_len_u16(out, "path attributes", |out| {
            self.attributes.emit(out, context)
        })?;
        prefix::emit_v4(out, &self.nlri);
        Ok(())
    }
}

#[cfg(test)]
#[path = "update_tests.rs"]
mod tests;
