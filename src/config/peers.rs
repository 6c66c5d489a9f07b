//! `peers` and `bfd-profiles`: validated with MetalLB's rules, so a MetalLB config that mixes BGP
//! and layer 2 loads as it is; the speakers announce `bgp` pools to these peers, with BFD to a
//! peer that names a profile (single hop, asynchronous mode: the echo function and multi-hop
//! BFD are reported as not applied).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use super::error::{Rule, Subject, ValidationError};
use super::raw::{RawBfdProfile, RawPeer};
use super::schema::{BfdProfile, Peer};
use super::selector::node_selectors;

const DEFAULT_HOLD_TIME: Duration = Duration::from_secs(90);
const DEFAULT_BGP_PORT: u16 = 179;
const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Parses a Go `time.ParseDuration` string (`90s`, `1m30s`, `1.5h`, `-2s`) into signed nanoseconds.
pub(crate) fn parse_go_duration(text: &str) -> Result<i128, String> {
    let bad = || format!("time: invalid duration {text:?}");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(f) => {
                let n = f.bytes().take_while(u8::is_ascii_digit).count();
                f.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(after.len(), |(i, _)| i);
        let (unit, tail) = after.split_at(unit_len);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "h" => 3600 * NANOS_PER_SEC,
            "" => return Err(format!("time: missing unit in duration {text:?}")),
            other => return Err(format!("time: unknown unit {other:?} in duration {text:?}")),
        };
        // Bound the digits so arithmetic cannot overflow; Go rejects such values as well.
        if int_part.len() > 20 {
            return Err(bad());
        }
        let whole: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad())?
        };
        let mut frac_nanos: i128 = 0;
        let mut denom: i128 = 1;
        for d in frac_part.bytes().take(18) {
            frac_nanos = frac_nanos * 10 + i128::from(d - b'0');
            denom *= 10;
        }
        total = total
            .checked_add(whole * scale + frac_nanos * scale / denom)
            .filter(|t| *t <= i128::from(i64::MAX))
            .ok_or_else(bad)?;
        rest = tail;
    }
    Ok(if negative { -total } else { total })
}

/// Truncates toward zero to whole seconds, as MetalLB does with `int(d.Seconds())`.
fn whole_seconds(nanos: i128) -> i128 {
    nanos / NANOS_PER_SEC
}

fn seconds(secs: i128) -> Duration {
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

fn hold_time(raw: Option<&str>) -> Result<Duration, String> {
    let Some(text) = raw.filter(|t| !t.is_empty()) else {
        return Ok(DEFAULT_HOLD_TIME);
    };
    let nanos = parse_go_duration(text).map_err(|e| format!("invalid hold time {text:?}: {e}"))?;
    let secs = whole_seconds(nanos);
    if secs != 0 && secs < 3 {
        return Err(format!("invalid hold time {text:?}: must be 0 or >=3s"));
    }
    Ok(seconds(secs))
}

fn keepalive_time(raw: Option<&str>, hold: Duration) -> Result<Duration, String> {
    let Some(text) = raw.filter(|t| !t.is_empty()) else {
        // BGP's customary keepalive is a third of the hold time (RFC 4271 section 10).
        return Ok(hold / 3);
    };
    let nanos =
        parse_go_duration(text).map_err(|e| format!("invalid keepalive time {text:?}: {e}"))?;
    let secs = whole_seconds(nanos);
    if secs < 0 {
        return Err(format!(
            "invalid keepalive time {text:?}: must not be negative"
        ));
    }
    let keepalive = seconds(secs);
    if keepalive > hold {
        return Err(format!(
            "invalid keepalive time {text:?}: must not be greater than the hold time ({}s)",
            hold.as_secs()
        ));
    }
    Ok(keepalive)
}

/// A BGPPeer's `holdTime` and `keepaliveTime` (MetalLB's `parseTimers`): neither given means
/// 90 s and 30 s; only one given derives the other (hold = 3 × keepalive, keepalive = hold / 3);
/// hold is rounded down to whole seconds and must then be 0 or at least 3 s; an explicit
/// keepalive is rounded down to whole seconds and may not exceed the hold time. An error names
/// its field (`holdTime` or `keepaliveTime`).
pub(crate) fn crd_timers(
    hold: Option<&str>,
    keepalive: Option<&str>,
) -> Result<(Duration, Duration), (&'static str, Rule, String)> {
    let parse = |text: &str, field: &'static str, rule: Rule, what: &str| {
        parse_go_duration(text).map_err(|e| (field, rule, format!("invalid {what} {text:?}: {e}")))
    };
    let hold_text = hold.filter(|t| !t.is_empty());
    let ka_text = keepalive.filter(|t| !t.is_empty());
    let ka_nanos = ka_text
        .map(|t| {
            parse(
                t,
                "keepaliveTime",
                Rule::InvalidKeepaliveTime,
                "keepalive time",
            )
        })
        .transpose()?;
    if let (Some(t), Some(n)) = (ka_text, ka_nanos)
        && n < 0
    {
        return Err((
            "keepaliveTime",
            Rule::InvalidKeepaliveTime,
            format!("invalid keepalive time {t:?}: must not be negative"),
        ));
    }
    let hold_nanos = match (hold_text, ka_nanos) {
        (Some(t), _) => parse(t, "holdTime", Rule::InvalidHoldTime, "hold time")?,
        (None, Some(ka)) => ka.saturating_mul(3),
        (None, None) => return Ok((DEFAULT_HOLD_TIME, DEFAULT_HOLD_TIME / 3)),
    };
    let secs = whole_seconds(hold_nanos);
    if secs != 0 && secs < 3 {
        let shown = hold_text.map_or_else(|| format!("{secs}s"), str::to_owned);
        return Err((
            if hold_text.is_some() {
                "holdTime"
            } else {
                "keepaliveTime"
            },
            Rule::InvalidHoldTime,
            format!("invalid hold time {shown:?}: must be 0 or >=3s"),
        ));
    }
    let hold = seconds(secs);
    let Some(ka) = ka_nanos else {
        return Ok((hold, hold / 3));
    };
    if ka > whole_seconds(hold_nanos) * NANOS_PER_SEC {
        return Err((
            "keepaliveTime",
            Rule::InvalidKeepaliveTime,
            format!(
                "invalid keepalive time {:?}: must not be greater than the hold time ({}s)",
                ka_text.unwrap_or_default(),
                hold.as_secs()
            ),
        ));
    }
    Ok((hold, seconds(whole_seconds(ka))))
}

fn optional_ip(
    raw: Option<String>,
    subject: &Subject,
    field: &str,
    rule: Rule,
    what: &str,
    errors: &mut Vec<ValidationError>,
) -> Option<IpAddr> {
    let text = raw.filter(|t| !t.is_empty())?;
    match text.trim().parse() {
        Ok(ip) => Some(ip),
        Err(_) => {
            errors.push(ValidationError::new(
                subject.clone(),
                field,
                rule,
                format!("invalid {what} {text:?}"),
            ));
            None
        }
    }
}

/// Validates every peer; returns only the valid ones (the config is rejected anyway if any fails).
pub(crate) fn peers(
    raw: Vec<RawPeer>,
    bfd_names: &BTreeSet<String>,
    errors: &mut Vec<ValidationError>,
) -> Vec<Peer> {
    let mut valid: Vec<(usize, Peer)> = Vec::new();
    for (i, p) in raw.into_iter().enumerate() {
        let index = i + 1;
        let subject = Subject::Peer {
            index,
            address: p.peer_address.clone().unwrap_or_default(),
        };
        let before = errors.len();
        let mut push = |field: &str, rule: Rule, msg: String| {
            errors.push(ValidationError::new(subject.clone(), field, rule, msg));
        };
        let my_asn = p.my_asn.unwrap_or(0);
        let peer_asn = p.peer_asn.unwrap_or(0);
        if my_asn == 0 {
            push("my-asn", Rule::MissingAsn, "missing local ASN".into());
        }
        if peer_asn == 0 {
            push("peer-asn", Rule::MissingAsn, "missing peer ASN".into());
        }
        let ebgp_multihop = p.ebgp_multihop.unwrap_or(false);
        if my_asn != 0 && my_asn == peer_asn && ebgp_multihop {
            push(
                "ebgp-multihop",
                Rule::EbgpMultihopForIbgp,
                "invalid ebgp-multihop parameter set for an ibgp peer".into(),
            );
        }
        let peer_address = match p.peer_address.as_deref().map(str::trim) {
            Some(text) if !text.is_empty() => match text.parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    push(
                        "peer-address",
                        Rule::InvalidPeerAddress,
                        format!("invalid peer IP {text:?}"),
                    );
                    None
                }
            },
            _ => {
                push(
                    "peer-address",
                    Rule::InvalidPeerAddress,
                    "missing peer IP".into(),
                );
                None
            }
        };
        let hold = hold_time(p.hold_time.as_deref())
            .map_err(|msg| push("hold-time", Rule::InvalidHoldTime, msg))
            .ok();
        let keepalive = hold.and_then(|hold| {
            keepalive_time(p.keepalive_time.as_deref(), hold)
                .map_err(|msg| push("keepalive-time", Rule::InvalidKeepaliveTime, msg))
                .ok()
        });
        let bfd_profile = p.bfd_profile.filter(|b| !b.is_empty());
        if let Some(name) = bfd_profile.as_ref().filter(|n| !bfd_names.contains(*n)) {
            push(
                "bfd-profile",
                Rule::UnknownBfdProfile,
                format!("references non existing bfd profile {name:?}"),
            );
        }
        let router_id = optional_ip(
            p.router_id,
            &subject,
            "router-id",
            Rule::InvalidRouterId,
            "router ID",
            errors,
        );
        let source_address = optional_ip(
            p.source_address,
            &subject,
            "source-address",
            Rule::InvalidSourceAddress,
            "source IP",
            errors,
        );
        let selectors = node_selectors(p.node_selectors.unwrap_or_default(), &subject, errors);
        if errors.len() != before {
            continue;
        }
        let (Some(peer_address), Some(hold_time), Some(keepalive_time)) =
            (peer_address, hold, keepalive)
        else {
            continue;
        };
        let peer = Peer {
            name: format!("peer{index}"),
            my_asn,
            dynamic_asn: None,
            connect_time: None,
            password_secret: None,
            graceful_restart: false,
            dual_stack: false,
            peer_asn,
            peer_address,
            peer_port: p.peer_port.filter(|p| *p != 0).unwrap_or(DEFAULT_BGP_PORT),
            source_address,
            hold_time,
            keepalive_time,
            router_id,
            password: p.password.filter(|p| !p.is_empty()),
            node_selectors: selectors,
            bfd_profile,
            ebgp_multihop,
        };
        // Equal after defaults means the same BGP session configured twice, as MetalLB judges it.
        // (The name is ours, made from the position, so it is left out.)
        if let Some((first, _)) = valid.iter().find(|(_, v)| {
            Peer {
                name: peer.name.clone(),
                ..v.clone()
            } == peer
        }) {
            errors.push(ValidationError::new(
                subject,
                "peer-address",
                Rule::DuplicatePeer,
                format!("peer #{index} already exists: same settings as peer #{first}"),
            ));
            continue;
        }
        valid.push((index, peer));
    }
    valid.into_iter().map(|(_, p)| p).collect()
}

fn bfd_value(
    value: Option<u32>,
    min: u32,
    max: u32,
    field: &str,
    subject: &Subject,
    errors: &mut Vec<ValidationError>,
) -> Option<u32> {
    let v = value?;
    if !(min..=max).contains(&v) {
        errors.push(ValidationError::new(
            subject.clone(),
            field,
            Rule::BfdValueOutOfRange,
            format!("invalid value {v}, must be in {min}-{max} range"),
        ));
    }
    Some(v)
}

/// A BFD profile's fields that are not applied (echo, multi-hop), as (MetalLB's field name,
/// message); shared with the ConfigMap's check.
pub(crate) fn bfd_unsupported(
    echo_mode: bool,
    echo_interval: Option<i64>,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if echo_mode {
        out.push((
            "echoMode",
            "the BFD echo function is not implemented: the session runs in asynchronous mode \
             (Control packets only)"
                .to_string(),
        ));
    }
    if echo_interval.is_some() {
        out.push((
            "echoInterval",
            "the BFD echo function is not implemented: echoInterval is not applied".to_string(),
        ));
    }
    out
}

/// Validates `bfd-profiles`; returns the valid profiles with unique names.
pub(crate) fn bfd_profiles(
    raw: Vec<RawBfdProfile>,
    errors: &mut Vec<ValidationError>,
) -> Vec<BfdProfile> {
    let mut seen = BTreeSet::new();
    let mut valid = Vec::new();
    for (i, p) in raw.into_iter().enumerate() {
        let name = p.name.filter(|n| !n.is_empty());
        let subject = Subject::BfdProfile {
            index: i + 1,
            name: name.clone(),
        };
        let before = errors.len();
        let Some(name) = name else {
            errors.push(ValidationError::new(
                subject,
                "name",
                Rule::MissingName,
                "missing bfd profile name",
            ));
            continue;
        };
        if !seen.insert(name.clone()) {
            errors.push(ValidationError::new(
                subject.clone(),
                "name",
                Rule::DuplicateBfdProfile,
                format!("found duplicate bfd profile name {name:?}"),
            ));
        }
        let profile = BfdProfile {
            detect_multiplier: bfd_value(
                p.detect_multiplier,
                2,
                255,
                "detect-multiplier",
                &subject,
                errors,
            ),
            receive_interval: bfd_value(
                p.receive_interval,
                10,
                60_000,
                "receive-interval",
                &subject,
                errors,
            ),
            transmit_interval: bfd_value(
                p.transmit_interval,
                10,
                60_000,
                "transmit-interval",
                &subject,
                errors,
            ),
            minimum_ttl: bfd_value(p.minimum_ttl, 1, 254, "minimum-ttl", &subject, errors),
            echo_interval: bfd_value(
                p.echo_interval,
                10,
                60_000,
                "echo-interval",
                &subject,
                errors,
            ),
            echo_mode: p.echo_mode.unwrap_or(false),
            passive_mode: p.passive_mode.unwrap_or(false),
            name,
        };
        if errors.len() == before {
            valid.push(profile);
        }
    }
    valid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("90s"), Ok(90 * NANOS_PER_SEC));
        assert_eq!(parse_go_duration("1m30s"), Ok(90 * NANOS_PER_SEC));
        assert_eq!(parse_go_duration("1.5h"), Ok(5400 * NANOS_PER_SEC));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("-3s"), Ok(-3 * NANOS_PER_SEC));
        assert_eq!(parse_go_duration("500ms"), Ok(NANOS_PER_SEC / 2));
        assert!(
            parse_go_duration("90")
                .unwrap_err()
                .contains("missing unit")
        );
        assert!(
            parse_go_duration("3d")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration(".s").is_err());
        assert!(parse_go_duration("99999999999999999999999h").is_err());
    }

    #[test]
    fn crd_timers_follow_metallbs_parse_timers() {
        let s = Duration::from_secs;
        assert_eq!(crd_timers(None, None), Ok((s(90), s(30))));
        assert_eq!(
            crd_timers(Some("3.9s"), None),
            Ok((s(3), Duration::from_millis(1000)))
        );
        assert_eq!(crd_timers(None, Some("20s")), Ok((s(60), s(20))));
        assert_eq!(crd_timers(Some("0s"), None), Ok((s(0), s(0))));
        assert_eq!(crd_timers(Some("1m"), Some("5.5s")), Ok((s(60), s(5))));
        let field = |h, k| crd_timers(h, k).unwrap_err().0;
        assert_eq!(field(Some("2s"), None), "holdTime");
        assert_eq!(
            field(None, Some("900ms")),
            "keepaliveTime",
            "derived hold 2.7s"
        );
        assert_eq!(field(Some("10s"), Some("11s")), "keepaliveTime");
        assert_eq!(field(Some("0s"), Some("1s")), "keepaliveTime");
        assert_eq!(field(Some("x"), None), "holdTime");
        assert_eq!(field(None, Some("-1s")), "keepaliveTime");
    }

    #[test]
    fn hold_time_rounds_down_and_keepalive_defaults_to_a_third() {
        assert_eq!(hold_time(Some("3.9s")), Ok(Duration::from_secs(3)));
        assert_eq!(hold_time(None), Ok(DEFAULT_HOLD_TIME));
        assert_eq!(hold_time(Some("0s")), Ok(Duration::ZERO));
        assert_eq!(
            keepalive_time(None, Duration::from_secs(90)),
            Ok(Duration::from_secs(30))
        );
    }
}
