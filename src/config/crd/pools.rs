//! `IPAddressPool` and `L2Advertisement` objects to the config model, with MetalLB's rules:
//! per object (addresses, duplicates in lists, selectors) and across objects (overlapping
//! addresses anywhere, an advertisement naming a pool that does not exist — only a warning).

use std::collections::BTreeSet;

use serde_json::Value;

use super::decode_object;
use super::raw::{RawL2Spec, RawObject, RawPoolSpec, RawPreferredNode, RawSelector};
use crate::config::addresses::{ParsedAddress, parse_address, report_overlaps};
use crate::config::error::{Rule, Subject, ValidationError};
use crate::config::schema::{
    AddressPool, Config, ConfigWarning, L2Advertisement, LabelSelector, PreferredNode, Protocol,
    ServiceAllocation, Source, WarningKind,
};
use crate::config::selector::{CRD_KEYS, check_selectors, is_dns_subdomain};

/// Collects errors against one object.
pub(super) struct Sink<'a> {
    pub subject: &'a Subject,
    pub errors: &'a mut Vec<ValidationError>,
}

impl Sink<'_> {
    pub(super) fn push(&mut self, field: impl Into<String>, rule: Rule, msg: impl Into<String>) {
        self.errors
            .push(ValidationError::new(self.subject.clone(), field, rule, msg));
    }

    pub(super) fn selectors(
        &mut self,
        raw: Option<Vec<RawSelector>>,
        field: &str,
    ) -> Vec<LabelSelector> {
        let raw = raw
            .unwrap_or_default()
            .into_iter()
            .map(Into::into)
            .collect();
        let mut push = |f: String, rule: Rule, m: String| self.push(f, rule, m);
        check_selectors(raw, field, CRD_KEYS, &mut push)
    }

    /// `spec.preferredNodeSelectors`: each a weight of 1–100 (MetalLB's CRD bounds) and a
    /// valid label selector.
    fn preferences(&mut self, raw: Option<Vec<RawPreferredNode>>) -> Vec<PreferredNode> {
        let mut out = Vec::new();
        for (i, p) in raw.unwrap_or_default().into_iter().enumerate() {
            let field = format!("spec.preferredNodeSelectors[{i}]");
            let weight = match p.weight {
                Some(w @ 1..=100) => u32::try_from(w).ok(),
                Some(w) => {
                    self.push(
                        format!("{field}.weight"),
                        Rule::InvalidPreference,
                        format!("weight {w} is outside 1-100"),
                    );
                    None
                }
                None => {
                    self.push(
                        format!("{field}.weight"),
                        Rule::InvalidPreference,
                        "a preference needs a weight (1-100)",
                    );
                    None
                }
            };
            let Some(raw) = p.preference else {
                self.push(
                    format!("{field}.preference"),
                    Rule::InvalidPreference,
                    "a preference needs a node label selector",
                );
                continue;
            };
            let preference = self
                .selectors(Some(vec![raw]), &format!("{field}.preference"))
                .pop();
            if let (Some(weight), Some(preference)) = (weight, preference) {
                out.push(PreferredNode { weight, preference });
            }
        }
        out
    }

    /// `names` without duplicates; a duplicate is an error (MetalLB: "duplicate definition").
    pub(super) fn unique(&mut self, names: Option<Vec<String>>, field: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (i, n) in names.unwrap_or_default().into_iter().enumerate() {
            if out.contains(&n) {
                self.push(
                    format!("{field}[{i}]"),
                    Rule::DuplicateEntry,
                    format!("duplicate definition of {n:?} in {field}"),
                );
            } else {
                out.push(n);
            }
        }
        out
    }
}

/// A valid object name, and no second object of the kind with it.
pub(super) fn check_name(
    subject: &Subject,
    seen: &mut BTreeSet<String>,
    sink: &mut Sink<'_>,
) -> Option<String> {
    let Subject::Object { name, .. } = subject else {
        return None;
    };
    if name.starts_with('#') || !is_dns_subdomain(name) {
        sink.push(
            "metadata.name",
            Rule::InvalidObjectName,
            "metadata.name must be a lowercase DNS subdomain (a-z, 0-9, '-', '.')",
        );
        return None;
    }
    if !seen.insert(name.clone()) {
        sink.push(
            "metadata.name",
            Rule::DuplicateObject,
            format!("a second object of this kind is named {name:?}"),
        );
        return None;
    }
    Some(name.clone())
}

struct CheckedPool {
    subject: Subject,
    addresses: Vec<ParsedAddress>,
    pool: Option<AddressPool>,
}

pub(super) fn build(
    pools: Vec<(Subject, Value)>,
    ads: Vec<(Subject, Value)>,
    errors: &mut Vec<ValidationError>,
    warnings: &mut Vec<ConfigWarning>,
) -> Config {
    let mut names = BTreeSet::new();
    let mut checked: Vec<CheckedPool> = pools
        .into_iter()
        .map(|(subject, value)| check_pool(subject, value, &mut names, errors, warnings))
        .collect();
    // Fallback order is by name (MetalLB's is random), and so is overlap blame.
    checked.sort_by_key(|c| c.subject.to_string());
    report_overlaps(
        checked.iter().map(|p| (&p.subject, p.addresses.as_slice())),
        errors,
    );
    let mut address_pools: Vec<AddressPool> = checked.into_iter().filter_map(|c| c.pool).collect();

    let mut ad_names = BTreeSet::new();
    let mut l2_advertisements: Vec<L2Advertisement> = ads
        .into_iter()
        .filter_map(|(subject, value)| check_ad(&subject, value, &mut ad_names, errors, warnings))
        .collect();
    l2_advertisements.sort_by(|a, b| a.name.cmp(&b.name));
    let known: BTreeSet<&str> = address_pools.iter().map(|p| p.name.as_str()).collect();
    for ad in &l2_advertisements {
        for (i, pool) in ad.pools.iter().enumerate() {
            if !known.contains(pool.as_str()) {
                let subject = Subject::Object {
                    kind: super::L2.into(),
                    name: ad.name.clone(),
                };
                warnings.push(ConfigWarning::about(
                    &subject,
                    format!("spec.ipAddressPools[{i}]"),
                    format!("pool {pool:?} does not exist; nothing is announced for it"),
                    WarningKind::Other,
                ));
            }
        }
    }
    for pool in &mut address_pools {
        if l2_advertisements.iter().any(|ad| ad.selects_pool(pool)) {
            pool.protocol = Protocol::Layer2;
        }
    }
    Config {
        source: Source::Crds,
        address_pools,
        l2_advertisements,
        ..Config::default()
    }
}

/// One warning per pool that no advertisement of either kind selects (run once both are read).
pub(super) fn warn_unannounced(config: &Config, warnings: &mut Vec<ConfigWarning>) {
    for pool in &config.address_pools {
        if config
            .l2_advertisements
            .iter()
            .any(|ad| ad.selects_pool(pool))
            || config
                .bgp_advertisements
                .iter()
                .any(|ad| ad.selects_pool(pool))
        {
            continue;
        }
        let subject = Subject::Object {
            kind: super::POOL.into(),
            name: pool.name.clone(),
        };
        warnings.push(ConfigWarning::about(
            &subject,
            "",
            "no L2Advertisement or BGPAdvertisement selects this pool: its addresses are \
             allocated but not announced",
            WarningKind::Other,
        ));
    }
}

fn check_pool(
    subject: Subject,
    value: Value,
    names: &mut BTreeSet<String>,
    errors: &mut Vec<ValidationError>,
    warnings: &mut Vec<ConfigWarning>,
) -> CheckedPool {
    let before = errors.len();
    let raw: Option<RawObject<RawPoolSpec>> = decode_object(&subject, value, errors, warnings);
    let mut sink = Sink {
        subject: &subject,
        errors,
    };
    let Some(raw) = raw else {
        return CheckedPool {
            subject,
            addresses: Vec::new(),
            pool: None,
        };
    };
    let name = check_name(&subject, names, &mut sink);
    let spec = raw.spec.unwrap_or_default();
    let texts = spec.addresses.unwrap_or_default();
    if texts.is_empty() {
        sink.push(
            "spec.addresses",
            Rule::MissingAddresses,
            "pool has no prefixes defined",
        );
    }
    let mut addresses = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        match parse_address(text) {
            Ok(parsed) => addresses.push(parsed),
            Err((rule, msg)) => sink.push(format!("spec.addresses[{i}]"), rule, msg),
        }
    }
    let allocation = spec.service_allocation.map(|sa| {
        let field = "spec.serviceAllocation";
        ServiceAllocation {
            priority: sa.priority.unwrap_or(0),
            namespaces: sink
                .unique(sa.namespaces, &format!("{field}.namespaces"))
                .into_iter()
                .collect(),
            namespace_selectors: sink.selectors(
                sa.namespace_selectors,
                &format!("{field}.namespaceSelectors"),
            ),
            service_selectors: sink
                .selectors(sa.service_selectors, &format!("{field}.serviceSelectors")),
        }
    });
    let valid = errors.len() == before;
    let pool = match (valid, name) {
        (true, Some(name)) => Some(AddressPool {
            name,
            // Announced or not is decided once the advertisements are known.
            protocol: Protocol::Bgp,
            addresses: addresses.iter().map(|a| a.range).collect(),
            auto_assign: spec.auto_assign.unwrap_or(true),
            avoid_buggy_ips: spec.avoid_buggy_ips.unwrap_or(false),
            bgp_advertisements: Vec::new(),
            labels: raw.metadata.labels.unwrap_or_default(),
            allocation,
        }),
        _ => None,
    };
    CheckedPool {
        subject,
        addresses,
        pool,
    }
}

fn check_ad(
    subject: &Subject,
    value: Value,
    names: &mut BTreeSet<String>,
    errors: &mut Vec<ValidationError>,
    warnings: &mut Vec<ConfigWarning>,
) -> Option<L2Advertisement> {
    let before = errors.len();
    let raw: RawObject<RawL2Spec> = decode_object(subject, value, errors, warnings)?;
    let mut sink = Sink { subject, errors };
    let name = check_name(subject, names, &mut sink);
    let spec = raw.spec.unwrap_or_default();
    let pools = sink.unique(spec.ip_address_pools, "spec.ipAddressPools");
    let pool_selectors = sink.selectors(
        spec.ip_address_pool_selectors,
        "spec.ipAddressPoolSelectors",
    );
    let node_selectors = sink.selectors(spec.node_selectors, "spec.nodeSelectors");
    let service_selectors = sink.selectors(spec.service_selectors, "spec.serviceSelectors");
    let preferred = sink.preferences(spec.preferred_node_selectors);
    // MetalLB accepts an interface listed twice; it means the same as once.
    let mut interfaces: Vec<String> = Vec::new();
    for i in spec.interfaces.unwrap_or_default() {
        if !interfaces.contains(&i) {
            interfaces.push(i);
        }
    }
    (errors.len() == before).then_some(L2Advertisement {
        name: name?,
        pools,
        pool_selectors,
        node_selectors,
        interfaces,
        service_selectors,
        preferred,
    })
}
