//! BGP kinds (`BGPPeer`, `BGPAdvertisement`, `BFDProfile`, `Community`): read and checked so a
//! MetalLB user learns what is wrong with them, but ferrolb announces over layer 2 only, so
//! nothing here is ever an error: every finding is a warning, and layer 2 is never blocked.

use std::net::IpAddr;

use serde_json::Value;

use super::decode_object;
use super::raw::{
    RawBfdProfileSpec, RawBgpAdvertisementSpec, RawBgpPeerSpec, RawCommunitySpec, RawObject,
};
use crate::config::community::parse_community;
use crate::config::error::{Subject, ValidationError};
use crate::config::peers::parse_go_duration;
use crate::config::schema::{ConfigWarning, WarningKind};
use crate::config::selector::{CRD_KEYS, check_selectors};

/// Checks every BGP object; returns them as `Kind/name` and adds one warning per problem plus
/// one saying BGP is not announced.
pub(super) fn read(
    objects: Vec<(Subject, Value)>,
    warnings: &mut Vec<ConfigWarning>,
) -> Vec<String> {
    let mut names = Vec::with_capacity(objects.len());
    for (subject, value) in objects {
        let mut problems: Vec<ValidationError> = Vec::new();
        let mut unknown: Vec<ConfigWarning> = Vec::new();
        let Subject::Object { kind, name } = &subject else {
            continue;
        };
        names.push(format!("{kind}/{name}"));
        let mut note = |field: &str, msg: String| {
            warnings.push(ConfigWarning::about(
                &subject,
                field,
                msg,
                WarningKind::Other,
            ));
        };
        match kind.as_str() {
            "BGPPeer" => {
                if let Some(o) = decode_object::<RawObject<RawBgpPeerSpec>>(
                    &subject,
                    value,
                    &mut problems,
                    &mut unknown,
                ) {
                    peer(o.spec.unwrap_or_default(), &mut note);
                }
            }
            "BGPAdvertisement" => {
                if let Some(o) = decode_object::<RawObject<RawBgpAdvertisementSpec>>(
                    &subject,
                    value,
                    &mut problems,
                    &mut unknown,
                ) {
                    advertisement(o.spec.unwrap_or_default(), &mut note);
                }
            }
            "BFDProfile" => {
                if let Some(o) = decode_object::<RawObject<RawBfdProfileSpec>>(
                    &subject,
                    value,
                    &mut problems,
                    &mut unknown,
                ) {
                    bfd(o.spec.unwrap_or_default(), &mut note);
                }
            }
            _ => {
                if let Some(o) = decode_object::<RawObject<RawCommunitySpec>>(
                    &subject,
                    value,
                    &mut problems,
                    &mut unknown,
                ) {
                    for (i, c) in o
                        .spec
                        .unwrap_or_default()
                        .communities
                        .unwrap_or_default()
                        .into_iter()
                        .enumerate()
                    {
                        if let Err(e) = parse_community(c.value.as_deref().unwrap_or_default()) {
                            note(&format!("spec.communities[{i}].value"), e);
                        }
                    }
                }
            }
        }
        for p in problems {
            note(&p.field, p.message);
        }
        warnings.extend(unknown);
    }
    if !names.is_empty() {
        warnings.push(ConfigWarning {
            object: format!("{} BGP object(s)", names.len()),
            subject: None,
            field: String::new(),
            message: format!(
                "BGP is not announced by ferrolb; read and ignored: {}",
                names.join(", ")
            ),
            kind: WarningKind::Other,
        });
    }
    names
}

fn peer(spec: RawBgpPeerSpec, note: &mut dyn FnMut(&str, String)) {
    if spec.my_asn.is_none() {
        note("spec.myASN", "missing local ASN".into());
    }
    let asns = [spec.peer_asn.is_some(), spec.dynamic_asn.is_some()];
    if asns == [false, false] {
        note(
            "spec.peerASN",
            "neither peerASN nor dynamicASN is set".into(),
        );
    }
    if let Some(d) = spec.dynamic_asn.as_deref()
        && !matches!(d, "internal" | "external")
    {
        note(
            "spec.dynamicASN",
            format!("{d:?} is not internal or external"),
        );
    }
    match (spec.peer_address.as_deref(), spec.interface.as_deref()) {
        (None, None) => note(
            "spec.peerAddress",
            "neither peerAddress nor interface is set".into(),
        ),
        (Some(a), _) if a.parse::<IpAddr>().is_err() => {
            note("spec.peerAddress", format!("invalid peer IP {a:?}"))
        }
        _ => {}
    }
    for (field, v) in [
        ("spec.sourceAddress", &spec.source_address),
        ("spec.routerID", &spec.router_id),
    ] {
        if let Some(a) = v.as_deref()
            && !a.is_empty()
            && a.parse::<IpAddr>().is_err()
        {
            note(field, format!("invalid IP {a:?}"));
        }
    }
    for (field, v) in [
        ("spec.holdTime", &spec.hold_time),
        ("spec.keepaliveTime", &spec.keepalive_time),
        ("spec.connectTime", &spec.connect_time),
    ] {
        if let Some(d) = v.as_deref()
            && let Err(e) = parse_go_duration(d)
        {
            note(field, e);
        }
    }
    let mut push = |f: String, _, m: String| note(&f, m);
    check_selectors(
        spec.node_selectors
            .unwrap_or_default()
            .into_iter()
            .map(Into::into)
            .collect(),
        "spec.nodeSelectors",
        CRD_KEYS,
        &mut push,
    );
}

fn advertisement(spec: RawBgpAdvertisementSpec, note: &mut dyn FnMut(&str, String)) {
    for (field, v, max) in [
        ("spec.aggregationLength", spec.aggregation_length, 32),
        ("spec.aggregationLengthV6", spec.aggregation_length_v6, 128),
    ] {
        if let Some(v) = v
            && !(0..=max).contains(&v)
        {
            note(
                field,
                format!("invalid aggregation length {v}: must be 0-{max}"),
            );
        }
    }
    for (i, c) in spec.communities.unwrap_or_default().iter().enumerate() {
        // A name without ':' is an alias defined in a Community object.
        if c.contains(':')
            && let Err(e) = parse_community(c)
        {
            note(&format!("spec.communities[{i}]"), e);
        }
    }
    let mut push = |f: String, _, m: String| note(&f, m);
    for (field, sels) in [
        (
            "spec.ipAddressPoolSelectors",
            spec.ip_address_pool_selectors,
        ),
        ("spec.nodeSelectors", spec.node_selectors),
        ("spec.serviceSelectors", spec.service_selectors),
    ] {
        check_selectors(
            sels.unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
            field,
            CRD_KEYS,
            &mut push,
        );
    }
}

fn bfd(spec: RawBfdProfileSpec, note: &mut dyn FnMut(&str, String)) {
    for (field, v, lo, hi) in [
        ("spec.receiveInterval", spec.receive_interval, 10, 60_000),
        ("spec.transmitInterval", spec.transmit_interval, 10, 60_000),
        ("spec.detectMultiplier", spec.detect_multiplier, 2, 255),
        ("spec.echoInterval", spec.echo_interval, 10, 60_000),
        ("spec.minimumTtl", spec.minimum_ttl, 1, 254),
    ] {
        if let Some(v) = v
            && !(lo..=hi).contains(&v)
        {
            note(field, format!("{v} is outside {lo}-{hi}"));
        }
    }
}
