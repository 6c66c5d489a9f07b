//! `BGPAdvertisement` objects to [`BgpAd`]s, with MetalLB's rules: aggregation lengths (at most
//! 32/128, and no shorter than any selected pool's own prefixes), `serviceSelectors` only with
//! the default lengths, communities (aliases of the Community objects first, then `A:B` and
//! `large:A:B:C`; no duplicates), no name listed twice, and the localPref conflict rule across
//! advertisements of one pool.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::decode_object;
use super::pools::{Sink, check_name};
use super::raw::{RawBgpAdvertisementSpec, RawObject};
use crate::config::addresses::shortest_prefix;
use crate::config::community::parse_community;
use crate::config::error::{Rule, Subject, ValidationError};
use crate::config::schema::{AddressPool, BgpAd, Community, ConfigWarning, WarningKind};
use crate::config::selector::selector_lists_disjoint;

/// Community aliases: name -> value (`None`: invalid, already reported).
pub(super) type Aliases = BTreeMap<String, Option<Community>>;

const KIND: &str = "BGPAdvertisement";

fn subject_of(name: &str) -> Subject {
    Subject::Object {
        kind: KIND.into(),
        name: name.to_owned(),
    }
}

/// Every BGPAdvertisement, sorted by name; `peers` are the BGPPeer objects' names.
pub(super) fn advertisements(
    objects: Vec<(Subject, Value)>,
    pools: &[AddressPool],
    aliases: &Aliases,
    peers: &BTreeSet<String>,
    errors: &mut Vec<ValidationError>,
    warnings: &mut Vec<ConfigWarning>,
) -> Vec<BgpAd> {
    let mut names = BTreeSet::new();
    let mut ads: Vec<BgpAd> = objects
        .into_iter()
        .filter_map(|(subject, value)| {
            advertisement(
                &subject, value, pools, aliases, &mut names, errors, warnings,
            )
        })
        .collect();
    ads.sort_by(|a, b| a.name.cmp(&b.name));
    let known: BTreeSet<&str> = pools.iter().map(|p| p.name.as_str()).collect();
    for ad in &ads {
        let subject = subject_of(&ad.name);
        for (i, pool) in ad.pools.iter().enumerate() {
            if !known.contains(pool.as_str()) {
                warnings.push(ConfigWarning::about(
                    &subject,
                    format!("spec.ipAddressPools[{i}]"),
                    format!("pool {pool:?} does not exist; nothing is announced for it"),
                    WarningKind::Other,
                ));
            }
        }
        for (i, peer) in ad.peers.iter().enumerate() {
            if !peers.contains(peer) {
                warnings.push(ConfigWarning::about(
                    &subject,
                    format!("spec.peers[{i}]"),
                    format!("no BGPPeer is named {peer:?}; nothing is announced to it"),
                    WarningKind::Other,
                ));
            }
        }
    }
    local_pref_conflicts(&ads, pools, errors);
    ads
}

fn length(value: Option<i64>, max: u8, field: &str, sink: &mut Sink<'_>) -> u8 {
    let Some(v) = value else { return max };
    u8::try_from(v)
        .ok()
        .filter(|l| *l <= max)
        .unwrap_or_else(|| {
            sink.push(
                field,
                Rule::InvalidAggregationLength,
                format!("invalid aggregation length {v}: must be 0-{max}"),
            );
            max
        })
}

fn advertisement(
    subject: &Subject,
    value: Value,
    pools: &[AddressPool],
    aliases: &Aliases,
    names: &mut BTreeSet<String>,
    errors: &mut Vec<ValidationError>,
    warnings: &mut Vec<ConfigWarning>,
) -> Option<BgpAd> {
    let before = errors.len();
    let raw: RawObject<RawBgpAdvertisementSpec> = decode_object(subject, value, errors, warnings)?;
    let mut sink = Sink { subject, errors };
    let name = check_name(subject, names, &mut sink);
    let s = raw.spec.unwrap_or_default();
    let v4 = length(
        s.aggregation_length,
        32,
        "spec.aggregationLength",
        &mut sink,
    );
    let v6 = length(
        s.aggregation_length_v6,
        128,
        "spec.aggregationLengthV6",
        &mut sink,
    );
    let service_selectors = sink.selectors(s.service_selectors, "spec.serviceSelectors");
    if !service_selectors.is_empty() && (v4, v6) != (32, 128) {
        sink.push(
            "spec.serviceSelectors",
            Rule::ServiceSelectorsWithAggregation,
            format!(
                "serviceSelectors need the default aggregation lengths (32 and 128), not {v4} \
                 and {v6}"
            ),
        );
    }
    let mut communities: Vec<Community> = Vec::new();
    for (i, text) in s.communities.unwrap_or_default().iter().enumerate() {
        let field = format!("spec.communities[{i}]");
        let value = match aliases.get(text) {
            Some(Some(v)) => *v,
            // The alias's own value is invalid: reported on its Community object.
            Some(None) => continue,
            None if text.contains(':') => match parse_community(text) {
                Ok(v) => v,
                Err(e) => {
                    sink.push(field, Rule::InvalidCommunity, e);
                    continue;
                }
            },
            None => {
                sink.push(
                    field,
                    Rule::UnknownCommunity,
                    format!(
                        "unknown community alias {text:?}: no Community object defines it, and \
                         it is not a value (A:B or large:A:B:C)"
                    ),
                );
                continue;
            }
        };
        if communities.contains(&value) {
            sink.push(
                field,
                Rule::DuplicateCommunity,
                format!("duplicate definition of community {text:?} ({value})"),
            );
            continue;
        }
        communities.push(value);
    }
    let ad = BgpAd {
        name: name.unwrap_or_default(),
        pools: sink.unique(s.ip_address_pools, "spec.ipAddressPools"),
        pool_selectors: sink.selectors(s.ip_address_pool_selectors, "spec.ipAddressPoolSelectors"),
        node_selectors: sink.selectors(s.node_selectors, "spec.nodeSelectors"),
        service_selectors,
        peers: sink.unique(s.peers, "spec.peers"),
        aggregation_length: v4,
        aggregation_length_v6: v6,
        local_pref: s.local_pref,
        communities,
    };
    // Aggregating into a prefix shorter than a pool's own would announce addresses outside it.
    for pool in pools.iter().filter(|p| ad.selects_pool(p)) {
        for range in &pool.addresses {
            let (len, field) = if range.start.is_ipv4() {
                (v4, "spec.aggregationLength")
            } else {
                (v6, "spec.aggregationLengthV6")
            };
            let prefix = shortest_prefix(range);
            if len < prefix {
                sink.push(
                    field,
                    Rule::AggregationLengthTooShort,
                    format!(
                        "invalid aggregation length {len}: prefix length {prefix} of pool {:?} \
                         ({range}) is more specific than the aggregation length",
                        pool.name
                    ),
                );
            }
        }
    }
    (errors.len() == before && !ad.name.is_empty()).then_some(ad)
}

/// MetalLB's rule: two advertisements without serviceSelectors that select one pool must have
/// one localPref, unless they never announce the same prefix to the same peer from the same
/// node: their aggregation lengths differ for every family the pool holds, or both name
/// peers and no peer twice, or their nodeSelectors are disjoint. MetalLB tells node sets apart
/// by the Node objects; ferrolb by the selectors alone ([`selector_lists_disjoint`]), so two
/// selectors that today match different nodes but could match one node conflict.
fn local_pref_conflicts(ads: &[BgpAd], pools: &[AddressPool], errors: &mut Vec<ValidationError>) {
    let mut reported: BTreeSet<(usize, usize)> = BTreeSet::new();
    for pool in pools {
        let families = pool.families();
        let selecting: Vec<(usize, &BgpAd)> = ads
            .iter()
            .enumerate()
            .filter(|(_, ad)| ad.service_selectors.is_empty() && ad.selects_pool(pool))
            .collect();
        for (n, &(i, a)) in selecting.iter().enumerate() {
            for &(j, b) in &selecting[n + 1..] {
                let lengths_differ = (!families.ipv4
                    || a.aggregation_length != b.aggregation_length)
                    && (!families.ipv6 || a.aggregation_length_v6 != b.aggregation_length_v6);
                let peers_disjoint = !a.peers.is_empty()
                    && !b.peers.is_empty()
                    && a.peers.iter().all(|p| !b.peers.contains(p));
                if a.local_pref.unwrap_or(0) == b.local_pref.unwrap_or(0)
                    || lengths_differ
                    || peers_disjoint
                    || selector_lists_disjoint(&a.node_selectors, &b.node_selectors)
                    || !reported.insert((i, j))
                {
                    continue;
                }
                errors.push(ValidationError::new(
                    subject_of(&b.name),
                    "spec.localPref",
                    Rule::LocalPrefConflict,
                    format!(
                        "localPref {} conflicts with localPref {} of BGPAdvertisement {:?}: both \
                         select pool {:?} and can announce one prefix to one peer from one node; \
                         give them one localPref, or different aggregation lengths, disjoint \
                         peers or disjoint nodeSelectors",
                        b.local_pref.unwrap_or(0),
                        a.local_pref.unwrap_or(0),
                        a.name,
                        pool.name
                    ),
                ));
            }
        }
    }
}
