//! BGP kinds to the config model: `BGPPeer` (v1beta2, and v1beta1 as the API serves it),
//! `BFDProfile` and `Community` here, `BGPAdvertisement` in [`super::bgp_ads`], with MetalLB's
//! defaults and parser rules. A broken rule refuses the config as an invalid pool does; a field
//! ferrolb does not implement (VRF, unnumbered `interface`, `localASN`, BFD echo and multi-hop...) is a warning
//! saying what ferrolb does instead, never an error.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;

use super::bgp_ads::{Aliases, advertisements};
use super::decode_object;
use super::pools::{Sink, check_name};
use super::raw::{RawBfdProfileSpec, RawBgpPeerSpec, RawCommunitySpec, RawObject};
use crate::config::community::parse_community;
use crate::config::error::{Rule, Subject, ValidationError};
use crate::config::peers::{bfd_unsupported, crd_timers, parse_go_duration};
use crate::config::schema::{
    AddressPool, BfdProfile, BgpAd, ConfigWarning, DynamicAsn, Peer, WarningKind,
};

/// What the BGP objects become.
#[derive(Default)]
pub(super) struct Bgp {
    pub peers: Vec<Peer>,
    pub advertisements: Vec<BgpAd>,
    /// Every Community object's aliases: alias -> value as written.
    pub communities: BTreeMap<String, String>,
    pub bfd_profiles: Vec<BfdProfile>,
}

/// Reads every BGP object; `pools` are the config's valid pools (for the advertisements'
/// aggregation lengths).
pub(super) fn build(
    objects: Vec<(Subject, Value)>,
    pools: &[AddressPool],
    errors: &mut Vec<ValidationError>,
    warnings: &mut Vec<ConfigWarning>,
) -> Bgp {
    let mut by_kind: BTreeMap<String, Vec<(Subject, Value)>> = BTreeMap::new();
    for (subject, value) in objects {
        if let Subject::Object { kind, .. } = &subject {
            by_kind
                .entry(kind.clone())
                .or_default()
                .push((subject, value));
        }
    }
    let mut take = |kind: &str| by_kind.remove(kind).unwrap_or_default();
    let (aliases, communities) = community_objects(take("Community"), errors, warnings);
    let bfd_profiles = bfd_objects(take("BFDProfile"), errors, warnings);
    let bfd_names: BTreeSet<&str> = bfd_profiles.iter().map(|b| b.name.as_str()).collect();
    let peer_objects = take("BGPPeer");
    let peer_names: BTreeSet<String> = peer_objects
        .iter()
        .filter_map(|(s, _)| match s {
            Subject::Object { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    let mut names = BTreeSet::new();
    let mut peers: Vec<Peer> = peer_objects
        .into_iter()
        .filter_map(|(subject, value)| {
            peer(&subject, value, &bfd_names, &mut names, errors, warnings)
        })
        .collect();
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    let advertisements = advertisements(
        take("BGPAdvertisement"),
        pools,
        &aliases,
        &peer_names,
        errors,
        warnings,
    );
    Bgp {
        peers,
        advertisements,
        communities,
        bfd_profiles,
    }
}

/// A warning about a field ferrolb reads but does not implement.
fn not_implemented(subject: &Subject, field: &str, message: String) -> ConfigWarning {
    ConfigWarning::about(subject, field, message, WarningKind::NotImplemented)
}

fn optional_ip(
    text: Option<String>,
    field: &str,
    rule: Rule,
    sink: &mut Sink<'_>,
) -> Option<IpAddr> {
    let text = text.filter(|t| !t.is_empty())?;
    text.parse()
        .map_err(|_| sink.push(field, rule, format!("invalid IP {text:?}")))
        .ok()
}

/// One BGPPeer, or `None` when it is invalid (errors say why) or left out (a warning says why).
fn peer(
    subject: &Subject,
    value: Value,
    bfd_names: &BTreeSet<&str>,
    names: &mut BTreeSet<String>,
    errors: &mut Vec<ValidationError>,
    warnings: &mut Vec<ConfigWarning>,
) -> Option<Peer> {
    let v1beta1 = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| v.ends_with("/v1beta1"));
    let before = errors.len();
    let raw: RawObject<RawBgpPeerSpec> = decode_object(subject, value, errors, warnings)?;
    let mut sink = Sink { subject, errors };
    let name = check_name(subject, names, &mut sink);
    let s = raw.spec.unwrap_or_default();
    let mut warn = |field: &str, message: String| {
        warnings.push(not_implemented(subject, field, message));
    };
    let v1beta1_needs = |field: &str| {
        format!(
            "missing {field}: a v1beta1 BGPPeer requires it (write v1beta2 for the newer fields)"
        )
    };

    let my_asn = s.my_asn.unwrap_or(0);
    if my_asn == 0 {
        sink.push("spec.myASN", Rule::MissingAsn, "missing local ASN");
    }
    let peer_asn = s.peer_asn.unwrap_or(0);
    let dynamic_asn = match s.dynamic_asn.as_deref().filter(|d| !d.is_empty()) {
        None => None,
        Some("internal") => Some(DynamicAsn::Internal),
        Some("external") => Some(DynamicAsn::External),
        Some(other) => {
            sink.push(
                "spec.dynamicASN",
                Rule::InvalidPeerAsn,
                format!("dynamicASN {other:?} is not internal or external"),
            );
            None
        }
    };
    let has_dynamic = s.dynamic_asn.as_deref().is_some_and(|d| !d.is_empty());
    match (peer_asn != 0, has_dynamic) {
        (false, _) if v1beta1 => {
            sink.push("spec.peerASN", Rule::MissingAsn, v1beta1_needs("peerASN"))
        }
        (false, false) => sink.push(
            "spec.peerASN",
            Rule::MissingAsn,
            "missing peer ASN and dynamicASN: set exactly one",
        ),
        (true, true) => sink.push(
            "spec.dynamicASN",
            Rule::InvalidPeerAsn,
            "both peerASN and dynamicASN are set: set exactly one",
        ),
        _ => {}
    }

    let interface = s.interface.filter(|i| !i.is_empty());
    let peer_address = match (s.peer_address.filter(|a| !a.is_empty()), &interface) {
        (Some(_), Some(_)) => {
            sink.push(
                "spec.interface",
                Rule::InvalidPeerAddress,
                "both peerAddress and interface are set: set exactly one",
            );
            None
        }
        (Some(text), None) => text
            .parse::<IpAddr>()
            .map_err(|_| {
                sink.push(
                    "spec.peerAddress",
                    Rule::InvalidPeerAddress,
                    format!("invalid peer IP {text:?}"),
                )
            })
            .ok(),
        (None, _) if v1beta1 => {
            sink.push(
                "spec.peerAddress",
                Rule::InvalidPeerAddress,
                v1beta1_needs("peerAddress"),
            );
            None
        }
        (None, Some(i)) => {
            warn(
                "spec.interface",
                format!(
                    "unnumbered BGP (interface {i:?}) is not implemented: this peer is left out \
                     (no session); give it a peerAddress to peer with it"
                ),
            );
            None
        }
        (None, None) => {
            sink.push(
                "spec.peerAddress",
                Rule::InvalidPeerAddress,
                "missing peer address: set peerAddress",
            );
            None
        }
    };
    let source_address = optional_ip(
        s.source_address,
        "spec.sourceAddress",
        Rule::InvalidSourceAddress,
        &mut sink,
    );
    let router_id = optional_ip(
        s.router_id,
        "spec.routerID",
        Rule::InvalidRouterId,
        &mut sink,
    );

    let peer_port = match s.peer_port {
        None => 179,
        // v1beta1 has no default: 0 is "unset".
        Some(0) if v1beta1 => 179,
        Some(p) => u16::try_from(p)
            .ok()
            .filter(|p| (1..=16384).contains(p))
            .unwrap_or_else(|| {
                sink.push(
                    "spec.peerPort",
                    Rule::InvalidPeerPort,
                    format!("peer port {p} is outside 1-16384"),
                );
                179
            }),
    };

    let timers = crd_timers(s.hold_time.as_deref(), s.keepalive_time.as_deref())
        .map_err(|(field, rule, msg)| sink.push(format!("spec.{field}"), rule, msg))
        .ok();
    if let (Some((hold, keepalive)), Some(text)) = (timers, s.keepalive_time.as_deref())
        && !text.is_empty()
        && keepalive != hold / 3
    {
        warn(
            "spec.keepaliveTime",
            format!(
                "a keepalive interval other than a third of the hold time is not implemented: \
                 ferrolb sends keepalives every third of the negotiated hold time ({}s of {}s \
                 here), not every {}s",
                (hold / 3).as_secs_f32(),
                hold.as_secs(),
                keepalive.as_secs()
            ),
        );
    }
    let connect_time = s
        .connect_time
        .as_deref()
        .filter(|t| !t.is_empty())
        .and_then(|text| {
            let nanos = parse_go_duration(text);
            match nanos {
                Ok(n) if n % 1_000_000_000 == 0 && (1..=65535).contains(&(n / 1_000_000_000)) => {
                    u64::try_from(n / 1_000_000_000)
                        .ok()
                        .map(Duration::from_secs)
                }
                Ok(_) => {
                    sink.push(
                        "spec.connectTime",
                        Rule::InvalidConnectTime,
                        format!(
                            "invalid connect time {text:?}: must be whole seconds from 1s to 65535s"
                        ),
                    );
                    None
                }
                Err(e) => {
                    sink.push(
                        "spec.connectTime",
                        Rule::InvalidConnectTime,
                        format!("invalid connect time {text:?}: {e}"),
                    );
                    None
                }
            }
        });

    let password = s.password.filter(|p| !p.is_empty());
    let secret = s.password_secret.unwrap_or_default();
    let password_secret = secret.get("name").filter(|n| !n.is_empty()).cloned();
    if password.is_some() && password_secret.is_some() {
        sink.push(
            "spec.passwordSecret",
            Rule::PasswordConflict,
            "both password and passwordSecret are set: set at most one",
        );
    }
    if let (Some(_), Some(ns), Some(own)) = (
        &password_secret,
        secret.get("namespace"),
        &raw.metadata.namespace,
    ) && !ns.is_empty()
        && ns != own
    {
        warn(
            "spec.passwordSecret.namespace",
            format!(
                "the Secret is looked up in the peer's own namespace {own:?}, as MetalLB does, not in {ns:?}"
            ),
        );
    }

    let ebgp_multihop = s.ebgp_multi_hop.unwrap_or(false);
    let internal = match dynamic_asn {
        Some(d) => d == DynamicAsn::Internal,
        None => my_asn != 0 && my_asn == peer_asn,
    };
    if ebgp_multihop && internal {
        sink.push(
            "spec.ebgpMultiHop",
            Rule::EbgpMultihopForIbgp,
            "invalid ebgpMultiHop parameter set for an ibgp peer",
        );
    }

    let bfd_profile = s.bfd_profile.filter(|b| !b.is_empty());
    if let Some(b) = bfd_profile
        .as_ref()
        .filter(|b| !bfd_names.contains(b.as_str()))
    {
        sink.push(
            "spec.bfdProfile",
            Rule::UnknownBfdProfile,
            format!("references non existing bfd profile {b:?}"),
        );
    }
    let node_selectors = sink.selectors(s.node_selectors, "spec.nodeSelectors");

    if let Some(vrf) = s.vrf.filter(|v| !v.is_empty()) {
        warn(
            "spec.vrf",
            format!(
                "VRFs are not implemented: the session is made in the default VRF, not in {vrf:?}"
            ),
        );
    }
    if let Some(asn) = s.local_asn.filter(|a| *a != 0) {
        warn(
            "spec.localASN",
            format!("localASN is not implemented: ferrolb speaks as myASN {my_asn}, not {asn}"),
        );
    }
    if s.disable_mp == Some(true) {
        warn(
            "spec.disableMP",
            "has no effect (as in MetalLB since v0.15): each session carries its own address \
             family, both only with dualStackAddressFamily"
                .into(),
        );
    }

    if errors.len() != before {
        return None;
    }
    let (hold_time, keepalive_time) = timers?;
    Some(Peer {
        name: name?,
        my_asn,
        peer_asn,
        dynamic_asn,
        peer_address: peer_address?,
        peer_port,
        source_address,
        hold_time,
        keepalive_time,
        router_id,
        connect_time,
        password,
        password_secret,
        node_selectors,
        bfd_profile,
        ebgp_multihop,
        graceful_restart: s.enable_graceful_restart.unwrap_or(false),
        dual_stack: s.dual_stack_address_family.unwrap_or(false),
    })
}

/// Every Community object's aliases, defined once across all of them: alias -> parsed value
/// (`None` when invalid, already reported), and alias -> value as written.
fn community_objects(
    objects: Vec<(Subject, Value)>,
    errors: &mut Vec<ValidationError>,
    warnings: &mut Vec<ConfigWarning>,
) -> (Aliases, BTreeMap<String, String>) {
    let mut names = BTreeSet::new();
    let mut aliases = Aliases::new();
    let mut texts = BTreeMap::new();
    let mut defined_in: BTreeMap<String, String> = BTreeMap::new();
    for (subject, value) in objects {
        let Some(raw) =
            decode_object::<RawObject<RawCommunitySpec>>(&subject, value, errors, warnings)
        else {
            continue;
        };
        let mut sink = Sink {
            subject: &subject,
            errors,
        };
        let object = check_name(&subject, &mut names, &mut sink).unwrap_or_default();
        let entries = raw.spec.unwrap_or_default().communities.unwrap_or_default();
        for (i, c) in entries.into_iter().enumerate() {
            let field = |f: &str| format!("spec.communities[{i}].{f}");
            let Some(alias) = c.name.filter(|n| !n.is_empty()) else {
                sink.push(
                    field("name"),
                    Rule::MissingName,
                    "a community alias needs a name",
                );
                continue;
            };
            if let Some(first) = defined_in.get(&alias) {
                sink.push(
                    field("name"),
                    Rule::DuplicateCommunity,
                    format!(
                        "community alias {alias:?} is defined twice (first in Community {first:?})"
                    ),
                );
                continue;
            }
            defined_in.insert(alias.clone(), object.clone());
            let text = c.value.unwrap_or_default();
            let parsed = parse_community(&text)
                .map_err(|e| sink.push(field("value"), Rule::InvalidCommunity, e))
                .ok();
            aliases.insert(alias.clone(), parsed);
            texts.insert(alias, text);
        }
    }
    (aliases, texts)
}

/// BFDProfiles, checked against MetalLB's ranges; the fields ferrolb does not apply (the echo
/// function, multi-hop's minimum TTL) are reported.
fn bfd_objects(
    objects: Vec<(Subject, Value)>,
    errors: &mut Vec<ValidationError>,
    warnings: &mut Vec<ConfigWarning>,
) -> Vec<BfdProfile> {
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    for (subject, value) in objects {
        let before = errors.len();
        let Some(raw) =
            decode_object::<RawObject<RawBfdProfileSpec>>(&subject, value, errors, warnings)
        else {
            continue;
        };
        let mut sink = Sink {
            subject: &subject,
            errors,
        };
        let name = check_name(&subject, &mut names, &mut sink);
        let s = raw.spec.unwrap_or_default();
        let mut ranged = |field: &str, v: Option<i64>, lo: u32, hi: u32| -> Option<u32> {
            let v = v?;
            let ok = u32::try_from(v).ok().filter(|v| (lo..=hi).contains(v));
            if ok.is_none() {
                sink.push(
                    format!("spec.{field}"),
                    Rule::BfdValueOutOfRange,
                    format!("invalid value {v}, must be in {lo}-{hi} range"),
                );
            }
            ok
        };
        let profile = BfdProfile {
            name: String::new(),
            receive_interval: ranged("receiveInterval", s.receive_interval, 10, 60_000),
            transmit_interval: ranged("transmitInterval", s.transmit_interval, 10, 60_000),
            detect_multiplier: ranged("detectMultiplier", s.detect_multiplier, 2, 255),
            echo_interval: ranged("echoInterval", s.echo_interval, 10, 60_000),
            echo_mode: s.echo_mode.unwrap_or(false),
            passive_mode: s.passive_mode.unwrap_or(false),
            minimum_ttl: ranged("minimumTtl", s.minimum_ttl, 1, 254),
        };
        warnings.extend(
            bfd_unsupported(s.echo_mode == Some(true), s.echo_interval)
                .into_iter()
                .map(|(field, message)| {
                    not_implemented(&subject, &format!("spec.{field}"), message)
                }),
        );
        if let (true, Some(name)) = (errors.len() == before, name) {
            out.push(BfdProfile { name, ..profile });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
