//! The Adj-RIB-Out of one session (RFC 4271 §3.2): what this node wants the peer to have
//! ([`Routes`]), what it has already sent, and the UPDATEs that take the peer from one to the
//! other.
//!
//! What goes on the wire is what MetalLB's native speaker sends (reference: metallb-bgp.md §1.4),
//! with the RFC's limits kept: ORIGIN IGP; AS_PATH empty to an iBGP peer, one AS_SEQUENCE of our
//! AS to an eBGP peer; NEXT_HOP the connection's local address; LOCAL_PREF to iBGP peers only;
//! COMMUNITIES and LARGE_COMMUNITIES sorted; no MED. Unlike MetalLB, prefixes with equal
//! attributes share an UPDATE and no message is longer than 4096 bytes (MetalLB sends one prefix
//! per UPDATE and its withdrawals in one unbounded message), and IPv6 prefixes go in
//! MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760) with an IPv6 next hop.
//!
//! **LOCAL_PREF when a route sets none: 100**, the value FRR and BIRD give a route that came
//! without one, and what MetalLB's FRR modes send. MetalLB's native speaker sends 0 instead, which
//! makes its routes lose to every other iBGP path; a user who wants that writes `local-pref: 0`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::bgp::session::Negotiated;
use crate::bgp::wire::{
    AddressFamily, AsPath, Community, Context, LargeCommunity, MAX_MESSAGE_LEN, Message, MpReach,
    MpUnreach, Origin, PathAttributes, UpdateRepr,
};

/// LOCAL_PREF sent to iBGP peers for a route that sets none (see the module documentation).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// The attributes this node gives one prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RouteAttrs {
    /// Sent to iBGP peers only; [`DEFAULT_LOCAL_PREF`] when `None`.
    pub local_pref: Option<u32>,
    pub communities: BTreeSet<Community>,
    pub large_communities: BTreeSet<LargeCommunity>,
}

/// What this node wants the peer to have.
pub type Routes = BTreeMap<IpNet, RouteAttrs>;

/// What the session agreed on and the connection's local addresses: everything the UPDATEs of
/// one session depend on besides the routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathContext {
    pub local_as: u32,
    /// The peer is in our AS.
    pub internal: bool,
    /// AS_PATH carries 4-octet ASNs.
    pub four_octet_as: bool,
    /// NEXT_HOP of IPv4 routes; none = IPv4 routes cannot be sent.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// The MP_REACH next hop of IPv6 routes; none = IPv6 routes cannot be sent.
    pub next_hop_v6: Option<Ipv6Addr>,
    /// The families both sides sent.
    pub families: Vec<AddressFamily>,
}

impl PathContext {
    /// The context of an Established session: our AS, what was negotiated, and this end's
    /// addresses of each family (the connection's local address, and where the owner knows one,
    /// an address of the other family on the same host).
    pub fn new(
        local_as: u32,
        negotiated: &Negotiated,
        next_hop_v4: Option<Ipv4Addr>,
        next_hop_v6: Option<Ipv6Addr>,
    ) -> PathContext {
        PathContext {
            local_as,
            internal: negotiated.internal,
            four_octet_as: negotiated.four_octet_as,
            next_hop_v4,
            next_hop_v6,
            families: negotiated.families.clone(),
        }
    }

    fn wire_context(&self) -> Context {
        Context {
            four_octet_as: self.four_octet_as,
        }
    }

    /// Why routes of `family` cannot be sent on this session, if they cannot.
    pub fn unsendable(&self, family: AddressFamily) -> Option<Skipped> {
        if !self.families.contains(&family) {
            return Some(Skipped::NotNegotiated(family));
        }
        let hop = match family {
            AddressFamily::IPV4_UNICAST => self.next_hop_v4.is_some(),
            AddressFamily::IPV6_UNICAST => self.next_hop_v6.is_some(),
            _ => false,
        };
        (!hop).then_some(Skipped::NoNextHop(family))
    }

    fn sendable(&self, prefix: &IpNet) -> bool {
        self.unsendable(family_of(prefix)).is_none()
    }
}

/// A family of routes the session cannot carry, so its routes are not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, thiserror::Error)]
pub enum Skipped {
    #[error("the peer did not negotiate address family {}/{}", .0.afi, .0.safi)]
    NotNegotiated(AddressFamily),
    #[error("no local address of address family {}/{} to use as next hop", .0.afi, .0.safi)]
    NoNextHop(AddressFamily),
}

/// The family a prefix is carried in.
pub fn family_of(prefix: &IpNet) -> AddressFamily {
    match prefix {
        IpNet::V4(_) => AddressFamily::IPV4_UNICAST,
        IpNet::V6(_) => AddressFamily::IPV6_UNICAST,
    }
}

/// The families of `desired` this session cannot carry, each once.
pub fn skipped(desired: &Routes, ctx: &PathContext) -> BTreeSet<Skipped> {
    desired
        .keys()
        .filter_map(|p| ctx.unsendable(family_of(p)))
        .collect()
}

/// What one session has sent; see the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdjRibOut {
    sent: Routes,
}

impl AdjRibOut {
    pub fn new() -> AdjRibOut {
        AdjRibOut::default()
    }

    /// What the peer has from us.
    pub fn sent(&self) -> &Routes {
        &self.sent
    }

    /// The session went down: the next Established starts from nothing.
    pub fn reset(&mut self) {
        self.sent.clear();
    }

    /// The UPDATEs that make the peer hold exactly the sendable part of `desired`: withdrawals
    /// first, then announcements, prefixes with equal attributes grouped, each message at most
    /// 4096 bytes. Routes of a family the session cannot carry are left out ([`skipped`] says
    /// which). Records them as sent.
    pub fn updates(&mut self, desired: &Routes, ctx: &PathContext) -> Vec<UpdateRepr> {
        let mut withdraw_v4 = Vec::new();
        let mut withdraw_v6 = Vec::new();
        for prefix in self.sent.keys() {
            if !desired.contains_key(prefix) || !ctx.sendable(prefix) {
                match prefix {
                    IpNet::V4(p) => withdraw_v4.push(*p),
                    IpNet::V6(p) => withdraw_v6.push(*p),
                }
            }
        }
        let mut groups: BTreeMap<&RouteAttrs, (Vec<Ipv4Net>, Vec<Ipv6Net>)> = BTreeMap::new();
        for (prefix, attrs) in desired {
            if !ctx.sendable(prefix) || self.sent.get(prefix) == Some(attrs) {
                continue;
            }
            let group = groups.entry(attrs).or_default();
            match prefix {
                IpNet::V4(p) => group.0.push(*p),
                IpNet::V6(p) => group.1.push(*p),
            }
        }
        let mut out = Vec::new();
        withdrawals(&mut out, withdraw_v4, withdraw_v6, ctx);
        for (attrs, (v4, v6)) in &groups {
            announcements(&mut out, attrs, v4, v6, ctx);
        }
        self.sent = desired
            .iter()
            .filter(|(p, _)| ctx.sendable(p))
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        out
    }
}

/// The End-of-RIB markers to send after the initial table: one per negotiated family.
pub fn end_of_rib(ctx: &PathContext) -> Vec<UpdateRepr> {
    ctx.families
        .iter()
        .map(|f| UpdateRepr::end_of_rib(*f))
        .collect()
}

/// Bytes one prefix takes in NLRI: its length octet and the octets that hold it.
fn prefix_len(bits: u8) -> usize {
    1 + usize::from(bits).div_ceil(8)
}

/// Emitted length of `update` (0 when it cannot be emitted: the caller's budget then refuses).
fn emitted_len(update: &UpdateRepr, ctx: &PathContext) -> usize {
    Message::Update(Box::new(update.clone()))
        .emit(ctx.wire_context())
        .map_or(usize::MAX, |m| m.len())
}

/// Room for prefixes in a message whose fixed part is `base`: one byte is kept back for an
/// MP attribute whose length grows past 255 (the extended length octet).
fn budget(base: &UpdateRepr, ctx: &PathContext) -> usize {
    MAX_MESSAGE_LEN.saturating_sub(emitted_len(base, ctx).saturating_add(1))
}

/// Cuts `prefixes` into runs that each fit in `room` bytes of NLRI.
fn chunks<T: Copy>(prefixes: &[T], bits: impl Fn(&T) -> u8, room: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut run = Vec::new();
    let mut used = 0;
    for p in prefixes {
        let len = prefix_len(bits(p));
        if used + len > room && !run.is_empty() {
            out.push(std::mem::take(&mut run));
            used = 0;
        }
        run.push(*p);
        used += len;
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

fn withdrawals(out: &mut Vec<UpdateRepr>, v4: Vec<Ipv4Net>, v6: Vec<Ipv6Net>, ctx: &PathContext) {
    let room = budget(&UpdateRepr::default(), ctx);
    for run in chunks(&v4, Ipv4Net::prefix_len, room) {
        out.push(UpdateRepr {
            withdrawn: run,
            ..UpdateRepr::default()
        });
    }
    let base = UpdateRepr::end_of_rib(AddressFamily::IPV6_UNICAST);
    for run in chunks(&v6, Ipv6Net::prefix_len, budget(&base, ctx)) {
        let mut update = UpdateRepr::default();
        update.attributes.mp_unreach = Some(MpUnreach::Ipv6(run));
        out.push(update);
    }
}

/// The attributes of an announcement of `attrs`, without NLRI.
fn path_attributes(attrs: &RouteAttrs, ctx: &PathContext) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(if ctx.internal {
            AsPath::default()
        } else {
            AsPath::sequence(vec![ctx.local_as])
        }),
        local_pref: ctx
            .internal
            .then(|| attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)),
        communities: attrs.communities.iter().copied().collect(),
        large_communities: attrs.large_communities.iter().copied().collect(),
        ..PathAttributes::default()
    }
}

fn announcements(
    out: &mut Vec<UpdateRepr>,
    attrs: &RouteAttrs,
    v4: &[Ipv4Net],
    v6: &[Ipv6Net],
    ctx: &PathContext,
) {
    if let (false, Some(hop)) = (v4.is_empty(), ctx.next_hop_v4) {
        let base = UpdateRepr {
            attributes: PathAttributes {
                next_hop: Some(hop),
                ..path_attributes(attrs, ctx)
            },
            ..UpdateRepr::default()
        };
        for run in chunks(v4, Ipv4Net::prefix_len, budget(&base, ctx)) {
            out.push(UpdateRepr {
                nlri: run,
                ..base.clone()
            });
        }
    }
    if let (false, Some(hop)) = (v6.is_empty(), ctx.next_hop_v6) {
        let reach = |nlri| MpReach::Ipv6 {
            next_hop: hop,
            link_local: None,
            nlri,
        };
        let mut base = UpdateRepr {
            attributes: path_attributes(attrs, ctx),
            ..UpdateRepr::default()
        };
        base.attributes.mp_reach = Some(reach(Vec::new()));
        for run in chunks(v6, Ipv6Net::prefix_len, budget(&base, ctx)) {
            let mut update = base.clone();
            update.attributes.mp_reach = Some(reach(run));
            out.push(update);
        }
    }
}

#[cfg(test)]
#[path = "rib_tests.rs"]
mod tests;
