//! The validated configuration: what the rest of ferrolb consumes.
//!
//! These types only exist in a valid state (built by [`super::parse`]), so consumers never
//! re-check MetalLB's rules: ranges are single-family with `start <= end`, pools do not overlap,
//! names are unique, peers reference existing BFD profiles.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use super::error::Subject;
pub use super::selector::{LabelSelector, Labels, NodeSelector};

/// A parsed and validated configuration, from either source: the legacy (v0.9–v0.12) ConfigMap
/// or MetalLB v0.13+ custom resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Where the config came from.
    pub source: Source,
    /// Pools in the order automatic allocation falls back through them: as written in a legacy
    /// ConfigMap, by name for custom resources (MetalLB's order there is random).
    pub address_pools: Vec<AddressPool>,
    /// Layer-2 advertisements. A legacy `layer2` pool gets one advertising it to every node on
    /// every interface; a legacy `bgp` pool gets none.
    pub l2_advertisements: Vec<L2Advertisement>,
    /// What is suspicious but not invalid (an advertisement naming a missing pool, a BGP field
    /// ferrolb does not implement).
    pub warnings: Vec<ConfigWarning>,
    /// BGP peers (`BGPPeer` objects, or the legacy `peers`, named `peer1`, `peer2`... as
    /// `convert` names them).
    pub peers: Vec<Peer>,
    /// BGP advertisements (`BGPAdvertisement` objects, or each legacy `bgp` pool's
    /// `bgp-advertisements` entries, named `bgpadvertisement1`... as `convert` names them; a
    /// legacy `bgp` pool without any gets one with MetalLB's defaults).
    pub bgp_advertisements: Vec<BgpAd>,
    /// `bgp-communities`, or every `Community` object's aliases: alias -> community text as
    /// written (validated).
    pub bgp_communities: BTreeMap<String, String>,
    /// BFD profiles with unique names.
    pub bfd_profiles: Vec<BfdProfile>,
}

impl Config {
    /// The pool with this name.
    pub fn pool(&self, name: &str) -> Option<&AddressPool> {
        self.address_pools.iter().find(|p| p.name == name)
    }

    /// The BGP advertisements that select `pool`, in config order.
    pub fn bgp_advertisements_for(&self, pool: &AddressPool) -> Vec<&BgpAd> {
        self.bgp_advertisements
            .iter()
            .filter(|ad| ad.selects_pool(pool))
            .collect()
    }

    /// The L2 advertisements that select `pool`, in config order: the nodes, interfaces and
    /// Services they name decide where the pool's addresses are announced. Empty means the
    /// pool's addresses are allocated but never announced.
    pub fn l2_advertisements_for(&self, pool: &AddressPool) -> Vec<&L2Advertisement> {
        self.l2_advertisements
            .iter()
            .filter(|ad| ad.selects_pool(pool))
            .collect()
    }
}

/// Which source a config came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Source {
    /// The legacy ConfigMap (MetalLB v0.9–v0.12).
    #[default]
    ConfigMap,
    /// `IPAddressPool`/`L2Advertisement` custom resources (MetalLB v0.13+).
    Crds,
}

/// Something worth telling the user that does not make the config invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The object concerned, e.g. `L2Advertisement "lan"`.
    pub object: String,
    /// The custom resource concerned, when the warning is about one (kind and name): the
    /// object the controller records the warning on as an event.
    pub subject: Option<Subject>,
    /// The field concerned, e.g. `spec.ipAddressPools[1]`; empty for the whole object.
    pub field: String,
    pub message: String,
    pub kind: WarningKind,
}

/// What a [`ConfigWarning`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarningKind {
    /// A field of a custom resource that ferrolb does not know (one a newer MetalLB added, or a
    /// misspelling): ignored, and the fields ferrolb knows apply.
    UnknownField,
    /// A field ferrolb reads but does not implement (a BGP one such as `vrf`, the `bgpextras`
    /// ConfigMap): reported on the object and in the ConfigurationState.
    NotImplemented,
    /// Anything else: a pool nothing announces, an object of another namespace.
    Other,
}

impl ConfigWarning {
    /// A warning about `field` of the object `subject`.
    pub fn about(
        subject: &Subject,
        field: impl Into<String>,
        message: impl Into<String>,
        kind: WarningKind,
    ) -> ConfigWarning {
        ConfigWarning {
            object: subject.to_string(),
            subject: Some(subject.clone()),
            field: field.into(),
            message: message.into(),
            kind,
        }
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.object, self.message)
        } else {
            write!(f, "{}, field {}: {}", self.object, self.field, self.message)
        }
    }
}

/// `IPAddressPool.spec.serviceAllocation`: which Services a pool is for, and in which order.
///
/// A pool with a `serviceAllocation` is offered first to the Services it is pinned to (in
/// `priority` order) and never used as a fallback for others; see `ipam` for the full rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAllocation {
    /// Lower first; 0 (unset) or negative means last.
    pub priority: i32,
    /// Namespaces named outright.
    pub namespaces: BTreeSet<String>,
    /// Namespaces whose labels match any of these (evaluated against Namespace objects).
    pub namespace_selectors: Vec<LabelSelector>,
    /// Services whose labels match any of these.
    pub service_selectors: Vec<LabelSelector>,
}

impl ServiceAllocation {
    /// A `serviceAllocation` naming no namespace and no selector pins the pool to every Service
    /// (MetalLB v0.15+ gives it an implicit match-everything service selector).
    pub fn pins_everyone(&self) -> bool {
        self.namespaces.is_empty()
            && self.namespace_selectors.is_empty()
            && self.service_selectors.is_empty()
    }
}

/// An `L2Advertisement`: which pools are announced, from which nodes, on which interfaces, for
/// which Services. Several advertisements selecting one pool combine as a union.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2Advertisement {
    pub name: String,
    /// `spec.ipAddressPools`; with `pool_selectors`, empty means every pool.
    pub pools: Vec<String>,
    /// `spec.ipAddressPoolSelectors`, matched against pool labels.
    pub pool_selectors: Vec<LabelSelector>,
    /// `spec.nodeSelectors`; empty means every node.
    pub node_selectors: Vec<LabelSelector>,
    /// `spec.interfaces` (exact names); empty means every interface.
    pub interfaces: Vec<String>,
    /// `spec.serviceSelectors`; empty means every Service of the selected pools.
    pub service_selectors: Vec<LabelSelector>,
    /// `spec.preferredNodeSelectors` (MetalLB's newer CRDs): among the nodes this advertisement
    /// selects, each scores the weights of the preferences its labels match.
    pub preferred: Vec<PreferredNode>,
}

/// One `spec.preferredNodeSelectors` entry: a node whose labels match `preference` scores
/// `weight` (1–100).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreferredNode {
    pub weight: u32,
    pub preference: LabelSelector,
}

impl L2Advertisement {
    /// An advertisement of one pool to every node on every interface (a legacy `layer2` pool).
    pub fn of_pool(name: impl Into<String>, pool: &str) -> L2Advertisement {
        L2Advertisement {
            name: name.into(),
            pools: vec![pool.to_owned()],
            pool_selectors: Vec::new(),
            node_selectors: Vec::new(),
            interfaces: Vec::new(),
            service_selectors: Vec::new(),
            preferred: Vec::new(),
        }
    }

    /// The score of a node with these labels (it must be one this advertisement selects): the
    /// sum of the weights of the preferences its labels match.
    pub fn preference_score(&self, labels: &Labels) -> u32 {
        self.preferred
            .iter()
            .filter(|p| p.preference.matches(labels))
            .map(|p| p.weight)
            .sum()
    }

    /// Whether the advertisement applies to `pool`: named, or matched by a pool selector, or
    /// neither list given (every pool).
    pub fn selects_pool(&self, pool: &AddressPool) -> bool {
        selects_pool(&self.pools, &self.pool_selectors, pool)
    }

    /// Whether a node with these labels may announce for this advertisement.
    pub fn selects_node(&self, labels: &Labels) -> bool {
        any_or_empty(&self.node_selectors, labels)
    }

    /// Whether a Service with these labels is announced by this advertisement.
    pub fn selects_service(&self, labels: &Labels) -> bool {
        any_or_empty(&self.service_selectors, labels)
    }

    /// Whether the advertisement allows announcing on every interface.
    pub fn all_interfaces(&self) -> bool {
        self.interfaces.is_empty()
    }
}

/// An advertisement's pool choice (both kinds): named, or matched by a pool selector, or
/// neither list given (every pool).
fn selects_pool(names: &[String], selectors: &[LabelSelector], pool: &AddressPool) -> bool {
    (names.is_empty() && selectors.is_empty())
        || names.contains(&pool.name)
        || selectors.iter().any(|s| s.matches(&pool.labels))
}

/// No selector selects everything; otherwise any one that matches.
fn any_or_empty(selectors: &[LabelSelector], labels: &Labels) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
}

/// A `BGPAdvertisement`: which pools' addresses go to which peers, from which nodes, for which
/// Services, as which prefixes with which attributes. Several advertisements selecting one
/// pool each add their prefixes (a /32 and a covering /24, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpAd {
    pub name: String,
    /// `spec.ipAddressPools`; with `pool_selectors`, empty means every pool.
    pub pools: Vec<String>,
    pub pool_selectors: Vec<LabelSelector>,
    /// Nodes that announce (are next hops); empty means every node.
    pub node_selectors: Vec<LabelSelector>,
    /// Empty means every Service of the selected pools.
    pub service_selectors: Vec<LabelSelector>,
    /// BGPPeer names to announce to; empty means every peer.
    pub peers: Vec<String>,
    /// Each IPv4 address is announced as the prefix of this length holding it (default 32).
    pub aggregation_length: u8,
    /// The same for IPv6 (default 128).
    pub aggregation_length_v6: u8,
    /// LOCAL_PREF for iBGP peers (never sent to eBGP peers).
    pub local_pref: Option<u32>,
    /// Communities, aliases resolved, in the order written.
    pub communities: Vec<Community>,
}

impl BgpAd {
    /// Whether the advertisement applies to `pool`: named, or matched by a pool selector, or
    /// neither list given (every pool).
    pub fn selects_pool(&self, pool: &AddressPool) -> bool {
        selects_pool(&self.pools, &self.pool_selectors, pool)
    }

    /// Whether a node with these labels announces for this advertisement.
    pub fn selects_node(&self, labels: &Labels) -> bool {
        any_or_empty(&self.node_selectors, labels)
    }

    /// Whether a Service with these labels is announced by this advertisement.
    pub fn selects_service(&self, labels: &Labels) -> bool {
        any_or_empty(&self.service_selectors, labels)
    }

    /// Whether this advertisement goes to the peer of this name.
    pub fn selects_peer(&self, peer: &str) -> bool {
        self.peers.is_empty() || self.peers.iter().any(|p| p == peer)
    }
}

/// How a pool's addresses are announced. For a custom-resource pool: `Layer2` when an
/// L2Advertisement selects it, `Bgp` otherwise (announced over BGP when a BGPAdvertisement
/// selects it, by no one when none does; [`Config::l2_advertisements`] and
/// [`Config::bgp_advertisements`] are the full picture).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// ARP / NDP answered by one elected node.
    #[default]
    Layer2,
    /// Announced over BGP by every eligible node to its peers.
    Bgp,
}

impl Protocol {
    /// The spelling used in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Layer2 => "layer2",
            Protocol::Bgp => "bgp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `address-pools`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPool {
    pub name: String,
    pub protocol: Protocol,
    /// One range per `addresses` entry, in the order written (a CIDR becomes its first..last).
    pub addresses: Vec<AddressRange>,
    /// `auto-assign` (default true): false means only by explicit request.
    pub auto_assign: bool,
    /// `avoid-buggy-ips` (default false): true means never hand out IPv4 `*.0` and `*.255`.
    pub avoid_buggy_ips: bool,
    /// Only for BGP pools; a BGP pool without any gets MetalLB's default (/32, /128, no
    /// communities), so this is never empty for a BGP pool.
    pub bgp_advertisements: Vec<BgpAdvertisement>,
    /// The pool object's labels (custom resources only), for `ipAddressPoolSelectors`.
    pub labels: Labels,
    /// `serviceAllocation` (custom resources only).
    pub allocation: Option<ServiceAllocation>,
}

impl AddressPool {
    /// The ranges as `(first, last)` pairs, the shape `ipam::PoolSpec` takes.
    pub fn ranges(&self) -> Vec<(IpAddr, IpAddr)> {
        self.addresses.iter().map(|r| (r.start, r.end)).collect()
    }

    /// Whether the pool holds IPv4 and/or IPv6 addresses.
    pub fn families(&self) -> Families {
        Families {
            ipv4: self.addresses.iter().any(|r| r.start.is_ipv4()),
            ipv6: self.addresses.iter().any(|r| r.start.is_ipv6()),
        }
    }

    /// Number of addresses in the pool (saturating: `::/0` holds 2^128, one more than u128 max).
    pub fn address_count(&self) -> u128 {
        self.addresses
            .iter()
            .fold(0u128, |acc, r| acc.saturating_add(r.len()))
    }

    /// Whether `ip` is one of the pool's addresses.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.addresses.iter().any(|r| r.contains(ip))
    }
}

/// The address families present in a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Families {
    pub ipv4: bool,
    pub ipv6: bool,
}

impl fmt::Display for Families {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.ipv4, self.ipv6) {
            (true, true) => "IPv4,IPv6",
            (true, false) => "IPv4",
            (false, true) => "IPv6",
            (false, false) => "-",
        })
    }
}

/// An inclusive range of addresses of one family, `start <= end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressRange {
    pub start: IpAddr,
    pub end: IpAddr,
}

impl AddressRange {
    /// Number of addresses, saturating at `u128::MAX` for the whole IPv6 space.
    pub fn len(&self) -> u128 {
        (ip_to_u128(self.end) - ip_to_u128(self.start)).saturating_add(1)
    }

    /// Always false: a valid range holds at least its start address.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `ip` lies in the range (same family, between start and end).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.start.is_ipv4()
            && ip_to_u128(self.start) <= ip_to_u128(ip)
            && ip_to_u128(ip) <= ip_to_u128(self.end)
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// The address as an integer within its own family (IPv4 in the low 32 bits).
pub(crate) fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// One entry of a BGP pool's `bgp-advertisements`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpAdvertisement {
    /// `aggregation-length` (default 32).
    pub aggregation_length: u8,
    /// `aggregation-length-v6` (default 128).
    pub aggregation_length_v6: u8,
    /// `localpref`, when set.
    pub local_pref: Option<u32>,
    /// Communities, aliases resolved, in the order written.
    pub communities: Vec<Community>,
}

/// A BGP community value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Community {
    /// RFC 1997 `AA:NN`, as `AA << 16 | NN`.
    Standard(u32),
    /// RFC 8092 `large:GA:LD1:LD2`.
    Large {
        global_admin: u32,
        local_data1: u32,
        local_data2: u32,
    },
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Community::Standard(v) => write!(f, "{}:{}", v >> 16, v & 0xffff),
            Community::Large {
                global_admin,
                local_data1,
                local_data2,
            } => write!(f, "large:{global_admin}:{local_data1}:{local_data2}"),
        }
    }
}

/// `dynamicASN`: the peer's AS is not fixed, only whether it is ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynamicAsn {
    /// Any AS equal to `myASN` (iBGP).
    Internal,
    /// Any AS but `myASN` (eBGP).
    External,
}

/// A BGP peer (`BGPPeer`, or one entry of the legacy `peers`), with MetalLB's defaults applied.
#[derive(Clone, PartialEq, Eq)]
pub struct Peer {
    /// The BGPPeer's name (`peer1`, `peer2`... for the legacy ConfigMap's entries).
    pub name: String,
    pub my_asn: u32,
    /// 0 when `dynamic_asn` is set.
    pub peer_asn: u32,
    pub dynamic_asn: Option<DynamicAsn>,
    pub peer_address: IpAddr,
    /// `peer-port` (default 179).
    pub peer_port: u16,
    pub source_address: Option<IpAddr>,
    /// `hold-time` rounded down to whole seconds (default 90s); zero or at least 3s.
    pub hold_time: Duration,
    /// `keepalive-time` rounded down to whole seconds (default a third of hold time).
    pub keepalive_time: Duration,
    pub router_id: Option<IpAddr>,
    /// `connectTime`: how long one connection attempt may take (whole seconds, 1-65535).
    pub connect_time: Option<Duration>,
    /// `password` for TCP MD5; kept out of `Debug` output.
    pub password: Option<String>,
    /// `passwordSecret.name`: a `kubernetes.io/basic-auth` Secret in the config's namespace
    /// whose `password` key is the TCP MD5 key.
    pub password_secret: Option<String>,
    /// Empty means every node.
    pub node_selectors: Vec<NodeSelector>,
    pub bfd_profile: Option<String>,
    pub ebgp_multihop: bool,
    /// `enableGracefulRestart`: offer RFC 4724 graceful restart.
    pub graceful_restart: bool,
    /// `dualStackAddressFamily`: both families on this session, whatever its own family.
    pub dual_stack: bool,
}

impl Peer {
    /// A peer with MetalLB's defaults for everything but its name, AS numbers and address.
    pub fn new(name: &str, my_asn: u32, peer_asn: u32, peer_address: IpAddr) -> Peer {
        Peer {
            name: name.to_owned(),
            my_asn,
            peer_asn,
            dynamic_asn: None,
            peer_address,
            peer_port: 179,
            source_address: None,
            hold_time: Duration::from_secs(90),
            keepalive_time: Duration::from_secs(30),
            router_id: None,
            connect_time: None,
            password: None,
            password_secret: None,
            node_selectors: Vec::new(),
            bfd_profile: None,
            ebgp_multihop: false,
            graceful_restart: false,
            dual_stack: false,
        }
    }

    /// Whether the session is internal (iBGP): the peer's AS is ours.
    pub fn is_internal(&self) -> bool {
        match self.dynamic_asn {
            Some(d) => d == DynamicAsn::Internal,
            None => self.peer_asn == self.my_asn,
        }
    }

    /// Whether a node with these labels has a session with this peer.
    pub fn selects_node(&self, labels: &Labels) -> bool {
        any_or_empty(&self.node_selectors, labels)
    }
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets end up in logs through Debug; show only whether one is set.
        f.debug_struct("Peer")
            .field("name", &self.name)
            .field("my_asn", &self.my_asn)
            .field("peer_asn", &self.peer_asn)
            .field("dynamic_asn", &self.dynamic_asn)
            .field("peer_address", &self.peer_address)
            .field("peer_port", &self.peer_port)
            .field("source_address", &self.source_address)
            .field("hold_time", &self.hold_time)
            .field("keepalive_time", &self.keepalive_time)
            .field("router_id", &self.router_id)
            .field("connect_time", &self.connect_time)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_secret", &self.password_secret)
            .field("node_selectors", &self.node_selectors)
            .field("bfd_profile", &self.bfd_profile)
            .field("ebgp_multihop", &self.ebgp_multihop)
            .field("graceful_restart", &self.graceful_restart)
            .field("dual_stack", &self.dual_stack)
            .finish()
    }
}

/// One entry of `bfd-profiles`; unset values mean the BFD daemon's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdProfile {
    pub name: String,
    pub receive_interval: Option<u32>,
    pub transmit_interval: Option<u32>,
    pub detect_multiplier: Option<u32>,
    pub echo_interval: Option<u32>,
    pub echo_mode: bool,
    pub passive_mode: bool,
    pub minimum_ttl: Option<u32>,
}
