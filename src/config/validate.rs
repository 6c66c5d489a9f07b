//! Raw config to validated [`Config`]: every MetalLB rule, every error collected.

use std::collections::{BTreeMap, BTreeSet};

use super::addresses::{ParsedAddress, parse_address, report_overlaps};
use super::community::{named_communities, parse_community};
use super::error::{Rule, Subject, ValidationError};
use super::peers::{bfd_profiles, bfd_unsupported, peers};
use super::raw::{RawAdvertisement, RawConfig, RawPool};
use super::schema::{
    AddressPool, BfdProfile, BgpAd, BgpAdvertisement, Community, Config, ConfigWarning,
    L2Advertisement, Peer, Protocol, Source, WarningKind,
};

pub(crate) fn validate(raw: RawConfig) -> Result<Config, Vec<ValidationError>> {
    let mut errors = Vec::new();
    let bfd_profiles = bfd_profiles(raw.bfd_profiles.unwrap_or_default(), &mut errors);
    let bfd_names: BTreeSet<String> = bfd_profiles.iter().map(|p| p.name.clone()).collect();
    let peers = peers(raw.peers.unwrap_or_default(), &bfd_names, &mut errors);
    let bgp_communities = raw.bgp_communities.unwrap_or_default();
    let communities = named_communities(&bgp_communities, &mut errors);

    let mut checked: Vec<CheckedPool> = Vec::new();
    let mut names = BTreeSet::new();
    for (i, raw_pool) in raw
        .address_pools
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let pool = check_pool(i + 1, raw_pool, &communities, &mut errors);
        if let Some(name) = pool.name.as_ref()
            && !names.insert(name.clone())
        {
            errors.push(ValidationError::new(
                pool.subject.clone(),
                "name",
                Rule::DuplicatePool,
                format!("duplicate definition of pool {name:?}"),
            ));
        }
        checked.push(pool);
    }

    report_overlaps(
        checked.iter().map(|p| (&p.subject, p.addresses.as_slice())),
        &mut errors,
    );

    if !errors.is_empty() {
        return Err(errors);
    }
    let address_pools: Vec<AddressPool> = checked.into_iter().filter_map(|p| p.valid).collect();
    // A layer2 pool is announced everywhere: the advertisement `ferrolb convert` writes for it.
    let l2_advertisements = address_pools
        .iter()
        .filter(|p| p.protocol == Protocol::Layer2)
        .enumerate()
        .map(|(i, p)| L2Advertisement::of_pool(format!("l2advertisement{}", i + 1), &p.name))
        .collect();
    // A bgp pool's advertisements, each for that pool alone to every peer from every node,
    // named in pool order as `ferrolb convert` names the BGPAdvertisements it writes.
    let bgp_advertisements = address_pools
        .iter()
        .filter(|p| p.protocol == Protocol::Bgp)
        .flat_map(|p| p.bgp_advertisements.iter().map(move |ad| (p, ad)))
        .enumerate()
        .map(|(i, (pool, ad))| BgpAd {
            name: format!("bgpadvertisement{}", i + 1),
            pools: vec![pool.name.clone()],
            pool_selectors: Vec::new(),
            node_selectors: Vec::new(),
            service_selectors: Vec::new(),
            peers: Vec::new(),
            aggregation_length: ad.aggregation_length,
            aggregation_length_v6: ad.aggregation_length_v6,
            local_pref: ad.local_pref,
            communities: ad.communities.clone(),
        })
        .collect();
    Ok(Config {
        source: Source::ConfigMap,
        address_pools,
        l2_advertisements,
        bgp_advertisements,
        warnings: not_implemented(&peers, &bfd_profiles),
        peers,
        bgp_communities,
        bfd_profiles,
    })
}

/// What a legacy config asks that ferrolb does not implement, as the custom resources' warnings
/// say it: a keepalive other than a third of the hold time, BFD's echo function and multi-hop.
fn not_implemented(peers: &[Peer], bfd_profiles: &[BfdProfile]) -> Vec<ConfigWarning> {
    let mut out = Vec::new();
    let mut warn = |subject: Subject, field: &str, message: String| {
        out.push(ConfigWarning::about(
            &subject,
            field,
            message,
            WarningKind::Other,
        ));
    };
    // Only a valid config gets here, so every peer is here, in order.
    for (i, p) in peers.iter().enumerate() {
        let subject = || Subject::Peer {
            index: i + 1,
            address: p.peer_address.to_string(),
        };
        if p.keepalive_time != p.hold_time / 3 {
            warn(
                subject(),
                "keepalive-time",
                format!(
                    "a keepalive interval other than a third of the hold time is not \
                     implemented: ferrolb sends keepalives every third of the negotiated hold \
                     time, not every {}s",
                    p.keepalive_time.as_secs()
                ),
            );
        }
    }
    for (i, b) in bfd_profiles.iter().enumerate() {
        let unsupported = bfd_unsupported(b.echo_mode, b.echo_interval.map(i64::from));
        for (field, message) in unsupported {
            // The ConfigMap's kebab-case names.
            let field = match field {
                "echoMode" => "echo-mode",
                _ => "echo-interval",
            };
            let subject = Subject::BfdProfile {
                index: i + 1,
                name: Some(b.name.clone()),
            };
            warn(subject, field, message);
        }
    }
    out
}

/// What one pool's check produced: its valid address entries go to the overlap sweep even when
/// the pool has other errors, so one run reports both kinds.
struct CheckedPool {
    subject: Subject,
    name: Option<String>,
    addresses: Vec<ParsedAddress>,
    valid: Option<AddressPool>,
}

fn check_pool(
    index: usize,
    raw: RawPool,
    communities: &BTreeMap<String, Option<Community>>,
    errors: &mut Vec<ValidationError>,
) -> CheckedPool {
    let name = raw.name.filter(|n| !n.is_empty());
    let subject = Subject::Pool {
        index,
        name: name.clone(),
    };
    let before = errors.len();
    let mut push = |field: &str, rule: Rule, msg: String| {
        errors.push(ValidationError::new(subject.clone(), field, rule, msg));
    };
    if name.is_none() {
        push("name", Rule::MissingName, "missing pool name".into());
    }
    let protocol = match raw.protocol.as_deref() {
        Some("layer2") => Some(Protocol::Layer2),
        Some("bgp") => Some(Protocol::Bgp),
        None | Some("") => {
            push(
                "protocol",
                Rule::MissingProtocol,
                "address pool is missing the protocol field".into(),
            );
            None
        }
        Some(other) => {
            push(
                "protocol",
                Rule::UnknownProtocol,
                format!("unknown protocol {other:?}: must be layer2 or bgp"),
            );
            None
        }
    };
    let raw_addresses = raw.addresses.unwrap_or_default();
    if raw_addresses.is_empty() {
        push(
            "addresses",
            Rule::MissingAddresses,
            "pool has no prefixes defined".into(),
        );
    }
    let mut addresses = Vec::with_capacity(raw_addresses.len());
    for text in &raw_addresses {
        match parse_address(text) {
            Ok(parsed) => addresses.push(parsed),
            Err((rule, msg)) => push("addresses", rule, msg),
        }
    }
    let raw_ads = raw.bgp_advertisements.unwrap_or_default();
    let advertisements = match protocol {
        Some(Protocol::Layer2) if !raw_ads.is_empty() => {
            push(
                "bgp-advertisements",
                Rule::AdvertisementsInLayer2Pool,
                "cannot have bgp-advertisements configuration element in a layer2 address pool"
                    .into(),
            );
            Vec::new()
        }
        Some(Protocol::Bgp) => check_advertisements(&raw_ads, &addresses, communities, &mut push),
        _ => Vec::new(),
    };
    let valid = match (errors.len() == before, name.clone(), protocol) {
        (true, Some(name), Some(protocol)) => Some(AddressPool {
            name,
            protocol,
            addresses: addresses.iter().map(|a| a.range).collect(),
            auto_assign: raw.auto_assign.unwrap_or(true),
            avoid_buggy_ips: raw.avoid_buggy_ips.unwrap_or(false),
            bgp_advertisements: advertisements,
            labels: Default::default(),
            allocation: None,
        }),
        _ => None,
    };
    CheckedPool {
        subject,
        name,
        addresses,
        valid,
    }
}

fn check_advertisements(
    raw: &[RawAdvertisement],
    addresses: &[ParsedAddress],
    communities: &BTreeMap<String, Option<Community>>,
    push: &mut impl FnMut(&str, Rule, String),
) -> Vec<BgpAdvertisement> {
    if raw.is_empty() {
        // MetalLB's default: announce each IP on its own, no communities.
        return vec![BgpAdvertisement {
            aggregation_length: 32,
            aggregation_length_v6: 128,
            local_pref: None,
            communities: Vec::new(),
        }];
    }
    for (i, a) in raw.iter().enumerate() {
        if let Some(j) = raw[..i].iter().position(|b| b == a) {
            push(
                "bgp-advertisements",
                Rule::DuplicateAdvertisement,
                format!(
                    "duplicate definition of bgp-advertisements: advertisement {} and {} are equal",
                    j + 1,
                    i + 1
                ),
            );
        }
    }
    raw.iter()
        .enumerate()
        .map(|(i, ad)| check_advertisement(i, ad, addresses, communities, push))
        .collect()
}

fn aggregation_length(
    value: Option<i64>,
    max: u8,
    family: &str,
    field: &str,
    push: &mut impl FnMut(&str, Rule, String),
) -> u8 {
    let Some(v) = value else { return max };
    match u8::try_from(v) {
        Ok(len) if len <= max => len,
        _ => {
            push(
                field,
                Rule::InvalidAggregationLength,
                format!("invalid aggregation length {v} for {family}: must be 0-{max}"),
            );
            max
        }
    }
}

fn check_advertisement(
    i: usize,
    raw: &RawAdvertisement,
    addresses: &[ParsedAddress],
    communities: &BTreeMap<String, Option<Community>>,
    push: &mut impl FnMut(&str, Rule, String),
) -> BgpAdvertisement {
    let field = |name: &str| format!("bgp-advertisements[{i}].{name}");
    let v4 = aggregation_length(
        raw.aggregation_length,
        32,
        "IPv4",
        &field("aggregation-length"),
        push,
    );
    let v6 = aggregation_length(
        raw.aggregation_length_v6,
        128,
        "IPv6",
        &field("aggregation-length-v6"),
        push,
    );
    // Aggregating into a prefix shorter than the pool's own would announce addresses outside the
    // pool; for a range, one covering CIDR at least as long as the aggregation suffices.
    for a in addresses {
        let (len, key) = if a.range.start.is_ipv4() {
            (v4, "aggregation-length")
        } else {
            (v6, "aggregation-length-v6")
        };
        if len < a.shortest_prefix {
            push(
                &field(key),
                Rule::AggregationLengthTooShort,
                format!(
                    "invalid aggregation length {len}: prefix {} in this pool is more specific \
                     than the aggregation length for addresses {:?}",
                    a.shortest_prefix, a.text
                ),
            );
        }
    }
    let raw_communities = raw.communities.as_deref().unwrap_or_default();
    let mut resolved = Vec::with_capacity(raw_communities.len());
    for (j, c) in raw_communities.iter().enumerate() {
        if raw_communities[..j].contains(c) {
            push(
                &field("communities"),
                Rule::DuplicateCommunity,
                format!("duplicate definition of community {c:?}"),
            );
            continue;
        }
        match communities.get(c) {
            Some(Some(value)) => resolved.push(*value),
            // The alias exists but its value is invalid: already reported under bgp-communities.
            Some(None) => {}
            None => match parse_community(c) {
                Ok(value) => resolved.push(value),
                Err(msg) if c.contains(':') => push(
                    &field("communities"),
                    Rule::InvalidCommunity,
                    format!("invalid community {c:?} in BGP advertisement: {msg}"),
                ),
                Err(_) => push(
                    &field("communities"),
                    Rule::UnknownCommunity,
                    format!(
                        "unknown community {c:?}: not defined in bgp-communities and not a \
                         community value (AA:NN or large:AA:BB:CC)"
                    ),
                ),
            },
        }
    }
    BgpAdvertisement {
        aggregation_length: v4,
        aggregation_length_v6: v6,
        local_pref: raw.localpref,
        communities: resolved,
    }
}
