//! What a session is configured with, the OPEN it sends, and what it agrees on with the peer's
//! OPEN (RFC 4271 §4.2 and §6.2, RFC 6793 for 4-octet AS numbers, RFC 5492 for capabilities).

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::bgp::wire::{
    AddressFamily, Capability, Context, EmitError, GracefulRestart, Message, OpenRepr, WireError,
    capability_code,
};

/// The AS a peer must open with. `Internal` and `External` are MetalLB's `dynamicASN`: any AS
/// equal to ours, or any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAs {
    Exact(u32),
    Internal,
    External,
}

/// One session's settings. [`SessionConfig::new`] gives MetalLB's native defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub local_as: u32,
    pub peer_as: PeerAs,
    /// Our BGP Identifier.
    pub router_id: Ipv4Addr,
    /// The hold time we offer, in seconds: 0 (no keepalives) or at least 3. MetalLB: 90.
    pub hold_time: u16,
    /// The multiprotocol capabilities we send. MetalLB: IPv4 and IPv6 unicast.
    pub families: Vec<AddressFamily>,
    /// Send the route refresh capability (MetalLB's native speaker does not).
    pub route_refresh: bool,
    /// Send the graceful restart capability (MetalLB's native speaker does not).
    pub graceful_restart: Option<GracefulRestart>,
    /// ConnectRetryTime (RFC 4271 §10): how long a connection attempt may take before another.
    pub connect_retry: Duration,
    /// The hold timer while waiting for the peer's OPEN (RFC 4271 §8.2.2: "4 minutes").
    pub open_hold: Duration,
    /// Restart by itself after the session fails (RFC 4271 AutomaticStart, with the delay
    /// growing as MetalLB's does: 0, 1, 2, 4 … s up to [`Self::max_restart_delay`], back to 0
    /// once Established). Never after a manual stop.
    pub automatic_start: bool,
    pub max_restart_delay: Duration,
}

impl SessionConfig {
    pub fn new(local_as: u32, peer_as: PeerAs, router_id: Ipv4Addr) -> SessionConfig {
        SessionConfig {
            local_as,
            peer_as,
            router_id,
            hold_time: 90,
            families: vec![AddressFamily::IPV4_UNICAST, AddressFamily::IPV6_UNICAST],
            route_refresh: false,
            graceful_restart: None,
            connect_retry: Duration::from_secs(120),
            open_hold: Duration::from_secs(240),
            automatic_start: true,
            max_restart_delay: Duration::from_secs(120),
        }
    }

    /// Refuses what no OPEN could carry.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.local_as == 0 {
            return Err(ConfigError::LocalAs);
        }
        if self.peer_as == PeerAs::Exact(0) {
            return Err(ConfigError::PeerAs);
        }
        if self.router_id.is_unspecified() {
            return Err(ConfigError::RouterId);
        }
        if self.hold_time == 1 || self.hold_time == 2 {
            return Err(ConfigError::HoldTime(self.hold_time));
        }
        // Too many capabilities for one parameter, a restart time over 12 bits: what the OPEN
        // cannot carry is refused here, not found out when it is sent.
        Message::Open(self.open())
            .emit(Context::default())
            .map(drop)
            .map_err(ConfigError::Open)
    }

    /// The OPEN we send: multiprotocol for each family, route refresh and graceful restart when
    /// configured, the 4-octet AS last (MetalLB's order: MP IPv4, MP IPv6, 4-octet AS).
    pub fn open(&self) -> OpenRepr {
        let mut caps: Vec<Capability> = self
            .families
            .iter()
            .map(|f| Capability::Multiprotocol(*f))
            .collect();
        if self.route_refresh {
            caps.push(Capability::RouteRefresh);
        }
        if let Some(gr) = &self.graceful_restart {
            caps.push(Capability::GracefulRestart(gr.clone()));
        }
        caps.push(Capability::FourOctetAs(self.local_as));
        OpenRepr::new(self.local_as, self.hold_time, self.router_id, caps)
    }

    /// Checks the peer's OPEN against this configuration and works out what both sides agree
    /// on; the error names the NOTIFICATION to send.
    pub fn negotiate(&self, peer: &OpenRepr) -> Result<Negotiated, WireError> {
        let peer_as = peer.asn();
        let accepted = match self.peer_as {
            PeerAs::Exact(asn) => peer_as == asn,
            PeerAs::Internal => peer_as == self.local_as,
            PeerAs::External => peer_as != self.local_as,
        };
        if !accepted {
            return Err(WireError::BadPeerAs(peer_as));
        }
        let four_octet_as = peer.four_octet_as().is_some();
        // Our AS does not fit in two octets and the peer cannot read four (RFC 5492 §5: the
        // capability we need goes in the data).
        if !four_octet_as && self.local_as > u32::from(u16::MAX) {
            let mut capability = vec![capability_code::FOUR_OCTET_AS, 4];
            capability.extend_from_slice(&self.local_as.to_be_bytes());
            return Err(WireError::UnsupportedCapability {
                code: capability_code::FOUR_OCTET_AS,
                capability,
            });
        }
        // RFC 6286 §2.2: inside one AS, two speakers never share an identifier.
        if peer.bgp_id == self.router_id && peer_as == self.local_as {
            return Err(WireError::BadBgpIdentifier(peer.bgp_id));
        }
        // The wire refused 1 and 2 already; check again so this stands on its own.
        if peer.hold_time == 1 || peer.hold_time == 2 {
            return Err(WireError::UnacceptableHoldTime(peer.hold_time));
        }
        let hold = self.hold_time.min(peer.hold_time);
        let theirs = peer.families();
        let families = self
            .families
            .iter()
            .filter(|f| theirs.contains(f))
            .copied()
            .collect();
        let peer_gr = peer.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr.clone()),
            _ => None,
        });
        Ok(Negotiated {
            peer_as,
            peer_id: peer.bgp_id,
            internal: peer_as == self.local_as,
            hold_time: Duration::from_secs(u64::from(hold)),
            keepalive: Duration::from_secs(u64::from(hold / 3)),
            four_octet_as,
            families,
            route_refresh: self.route_refresh && peer.has(&Capability::RouteRefresh),
            graceful_restart: peer_gr.filter(|_| self.graceful_restart.is_some()),
        })
    }
}

/// What both sides agreed on, handed to the owner when the session is Established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub peer_as: u32,
    pub peer_id: Ipv4Addr,
    /// iBGP: the peer is in our AS (LOCAL_PREF goes with routes, AS_PATH stays empty).
    pub internal: bool,
    /// The smaller of both hold times; zero means neither keepalives nor a hold timer.
    pub hold_time: Duration,
    /// A third of the hold time (RFC 4271 §10).
    pub keepalive: Duration,
    /// Both sent the 4-octet AS capability: AS_PATH carries 4-octet ASNs.
    pub four_octet_as: bool,
    /// The families both sides sent (IPv4 unicast for a peer that sent none, RFC 4760 §8).
    pub families: Vec<AddressFamily>,
    /// Both sent route refresh: the peer may ask us to send our routes again.
    pub route_refresh: bool,
    /// The peer's graceful restart capability, when both sent one.
    pub graceful_restart: Option<GracefulRestart>,
}

/// A configuration no session can start from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("local AS 0 is not an AS")]
    LocalAs,
    #[error("peer AS 0 is not an AS")]
    PeerAs,
    #[error("router ID 0.0.0.0 is not a BGP identifier")]
    RouterId,
    #[error("hold time {0} s: it must be 0 or at least 3")]
    HoldTime(u16),
    #[error("the OPEN of this configuration cannot be sent: {0}")]
    Open(EmitError),
}
