//! `ferrolb convert`: a legacy ConfigMap's config as the equivalent MetalLB custom resources,
//! named as MetalLB's own converter (`configmaptocrs`) names them, so `plan` gives every Service
//! holding an address the same address from either form.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::schema::{AddressRange, Config, LabelSelector, Protocol, ip_to_u128};
use super::selector::{SelectorOperator, is_dns_subdomain};

/// What `convert` produced: the YAML documents, and what the user should know about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    pub yaml: String,
    /// Renamed objects, order differences, anything that could change an allocation.
    pub notes: Vec<String>,
}

/// Why a config cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("cannot make {kind} name {name:?} a Kubernetes name: {why}")]
    Name {
        kind: &'static str,
        name: String,
        why: &'static str,
    },
    #[error("{kind} names {first:?} and {second:?} both become {name:?}")]
    Collision {
        kind: &'static str,
        first: String,
        second: String,
        name: String,
    },
    #[error("cannot write YAML: {0}")]
    Yaml(String),
}

/// MetalLB's rule: a name not matching `^[a-z][-a-z0-9]{0,61}[a-z0-9]$` is cut to 63
/// characters, lower-cased, `_` turned into `-`, and everything before its first letter dropped.
pub fn kubernetes_name(kind: &'static str, name: &str) -> Result<String, ConvertError> {
    let valid = |s: &str| {
        let b = s.as_bytes();
        b.len() >= 2
            && b.len() <= 63
            && b[0].is_ascii_lowercase()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[b.len() - 1] != b'-'
    };
    if valid(name) {
        return Ok(name.to_owned());
    }
    let cut: String = name.chars().take(63).collect();
    let lowered = cut.to_lowercase().replace('_', "-");
    let Some(first) = lowered.find(|c: char| c.is_ascii_lowercase()) else {
        return Err(ConvertError::Name {
            kind,
            name: name.to_owned(),
            why: "it has no letter a-z",
        });
    };
    let out = lowered[first..].to_owned();
    // MetalLB stops here; an object the API server would refuse is better refused now.
    if !is_dns_subdomain(&out) {
        return Err(ConvertError::Name {
            kind,
            name: name.to_owned(),
            why: "it holds characters other than letters, digits, '-' and '_'",
        });
    }
    Ok(out)
}

/// A range as MetalLB would write it: the CIDR when it is one, else `start-end`.
fn address_text(r: &AddressRange) -> String {
    let (start, end) = (ip_to_u128(r.start), ip_to_u128(r.end));
    let bits: u32 = if r.start.is_ipv4() { 32 } else { 128 };
    let span = end - start;
    if span == u128::MAX {
        return format!("{}/0", r.start);
    }
    let size = span + 1;
    if size.is_power_of_two() && start % size == 0 {
        return format!("{}/{}", r.start, bits - size.trailing_zeros());
    }
    r.to_string()
}

fn selector_json(sel: &LabelSelector) -> Value {
    let mut out = serde_json::Map::new();
    if !sel.match_labels.is_empty() {
        out.insert("matchLabels".into(), json!(sel.match_labels));
    }
    if !sel.match_expressions.is_empty() {
        let exprs: Vec<Value> = sel
            .match_expressions
            .iter()
            .map(|e| {
                let op = match e.operator {
                    SelectorOperator::In => "In",
                    SelectorOperator::NotIn => "NotIn",
                    SelectorOperator::Exists => "Exists",
                    SelectorOperator::DoesNotExist => "DoesNotExist",
                };
                let mut m = json!({"key": e.key, "operator": op});
                if !e.values.is_empty() {
                    m["values"] = json!(e.values);
                }
                m
            })
            .collect();
        out.insert("matchExpressions".into(), Value::Array(exprs));
    }
    Value::Object(out)
}

fn object(version: &str, kind: &str, name: &str, namespace: &str, spec: Value) -> Value {
    json!({
        "apiVersion": format!("metallb.io/{version}"),
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    })
}

/// Converts a legacy config into custom resources in `namespace`.
pub fn convert(config: &Config, namespace: &str) -> Result<Converted, ConvertError> {
    let mut notes = Vec::new();
    let mut objects = Vec::new();
    let mut names: Vec<(String, String)> = Vec::new();
    for pool in &config.address_pools {
        let name = kubernetes_name("IPAddressPool", &pool.name)?;
        if let Some((first, _)) = names.iter().find(|(_, n)| *n == name) {
            return Err(ConvertError::Collision {
                kind: "IPAddressPool",
                first: first.clone(),
                second: pool.name.clone(),
                name,
            });
        }
        if name != pool.name {
            notes.push(format!(
                "pool {:?} is named {name:?}: Services annotated with address-pool {:?} must \
                 be changed to the new name",
                pool.name, pool.name
            ));
        }
        names.push((pool.name.clone(), name));
    }
    let new_name = |old: &str| {
        names
            .iter()
            .find(|(o, _)| o == old)
            .map_or_else(|| old.to_owned(), |(_, n)| n.clone())
    };
    let (mut l2, mut bgp) = (0, 0);
    let mut ads = Vec::new();
    for pool in &config.address_pools {
        let name = new_name(&pool.name);
        let mut spec = json!({
            "addresses": pool.addresses.iter().map(address_text).collect::<Vec<_>>(),
        });
        if !pool.auto_assign {
            spec["autoAssign"] = json!(false);
        }
        if pool.avoid_buggy_ips {
            spec["avoidBuggyIPs"] = json!(true);
        }
        objects.push(object("v1beta1", "IPAddressPool", &name, namespace, spec));
        match pool.protocol {
            Protocol::Layer2 => {
                l2 += 1;
                let spec = json!({"ipAddressPools": [name]});
                ads.push(object(
                    "v1beta1",
                    "L2Advertisement",
                    &format!("l2advertisement{l2}"),
                    namespace,
                    spec,
                ));
            }
            Protocol::Bgp => {
                for ad in &pool.bgp_advertisements {
                    bgp += 1;
                    let mut spec = json!({"ipAddressPools": [name]});
                    if ad.aggregation_length != 32 {
                        spec["aggregationLength"] = json!(ad.aggregation_length);
                    }
                    if ad.aggregation_length_v6 != 128 {
                        spec["aggregationLengthV6"] = json!(ad.aggregation_length_v6);
                    }
                    if let Some(pref) = ad.local_pref {
                        spec["localPref"] = json!(pref);
                    }
                    if !ad.communities.is_empty() {
                        let c: Vec<String> =
                            ad.communities.iter().map(ToString::to_string).collect();
                        spec["communities"] = json!(c);
                    }
                    ads.push(object(
                        "v1beta1",
                        "BGPAdvertisement",
                        &format!("bgpadvertisement{bgp}"),
                        namespace,
                        spec,
                    ));
                }
            }
        }
    }
    objects.extend(ads);
    bgp_objects(config, namespace, &mut objects)?;
    order_note(config, &new_name, &mut notes);

    let mut yaml = String::new();
    for o in &objects {
        let doc = serde_saphyr::to_string(o).map_err(|e| ConvertError::Yaml(e.to_string()))?;
        let _ = write!(yaml, "---\n{doc}");
        if !doc.ends_with('\n') {
            yaml.push('\n');
        }
    }
    Ok(Converted { yaml, notes })
}

/// Legacy fallback order is the ConfigMap's; custom resources fall back by name. Where the two
/// differ a new Service could get an address from another pool than before.
fn order_note(config: &Config, new_name: &dyn Fn(&str) -> String, notes: &mut Vec<String>) {
    let legacy: Vec<String> = config
        .address_pools
        .iter()
        .filter(|p| p.auto_assign)
        .map(|p| new_name(&p.name))
        .collect();
    let mut by_name = legacy.clone();
    by_name.sort();
    if legacy != by_name {
        notes.push(format!(
            "automatic allocation tries auto-assign pools in ConfigMap order ({}) but \
             IPAddressPools by name ({}): Services holding an address keep it, but a new Service \
             may get its address from another pool; rename the pools, or use serviceAllocation \
             priorities, to keep the old order",
            legacy.join(", "),
            by_name.join(", ")
        ));
    }
}

fn bgp_objects(config: &Config, namespace: &str, out: &mut Vec<Value>) -> Result<(), ConvertError> {
    for (i, p) in config.peers.iter().enumerate() {
        let mut spec = json!({
            "myASN": p.my_asn,
            "peerASN": p.peer_asn,
            "peerAddress": p.peer_address.to_string(),
            "holdTime": format!("{}s", p.hold_time.as_secs()),
        });
        // A third of the hold time is what a BGPPeer without keepaliveTime gets.
        if p.keepalive_time != p.hold_time / 3 {
            spec["keepaliveTime"] = json!(format!("{}s", p.keepalive_time.as_secs()));
        }
        if p.peer_port != 179 {
            spec["peerPort"] = json!(p.peer_port);
        }
        if let Some(a) = p.source_address {
            spec["sourceAddress"] = json!(a.to_string());
        }
        if let Some(a) = p.router_id {
            spec["routerID"] = json!(a.to_string());
        }
        if let Some(pw) = &p.password {
            spec["password"] = json!(pw);
        }
        if !p.node_selectors.is_empty() {
            spec["nodeSelectors"] =
                Value::Array(p.node_selectors.iter().map(selector_json).collect());
        }
        if let Some(b) = &p.bfd_profile {
            spec["bfdProfile"] = json!(kubernetes_name("BFDProfile", b)?);
        }
        if p.ebgp_multihop {
            spec["ebgpMultiHop"] = json!(true);
        }
        out.push(object(
            "v1beta2",
            "BGPPeer",
            &format!("peer{}", i + 1),
            namespace,
            spec,
        ));
    }
    for b in &config.bfd_profiles {
        let mut spec = serde_json::Map::new();
        let fields = [
            ("receiveInterval", b.receive_interval),
            ("transmitInterval", b.transmit_interval),
            ("detectMultiplier", b.detect_multiplier),
            ("echoInterval", b.echo_interval),
            ("minimumTtl", b.minimum_ttl),
        ];
        for (k, v) in fields {
            if let Some(v) = v {
                spec.insert(k.into(), json!(v));
            }
        }
        if b.echo_mode {
            spec.insert("echoMode".into(), json!(true));
        }
        if b.passive_mode {
            spec.insert("passiveMode".into(), json!(true));
        }
        let name = kubernetes_name("BFDProfile", &b.name)?;
        out.push(object(
            "v1beta1",
            "BFDProfile",
            &name,
            namespace,
            Value::Object(spec),
        ));
    }
    if !config.bgp_communities.is_empty() {
        let aliases: Vec<Value> = config
            .bgp_communities
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
        out.push(object(
            "v1beta1",
            "Community",
            "communities",
            namespace,
            json!({"communities": aliases}),
        ));
    }
    Ok(())
}

/// Arguments of `ferrolb convert`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConvertArgs {
    /// Legacy MetalLB config: a ConfigMap manifest or the bare config text; `-` reads it from
    /// stdin (`kubectl get configmap -n NS NAME -o yaml | ferrolb convert --namespace NS -`).
    /// The custom resources go to stdout (apply them with `kubectl apply -f`); notes about
    /// renamed pools and a changed pool order go to stderr.
    pub file: std::path::PathBuf,
    /// Namespace of the objects written (MetalLB reads them only from its own namespace).
    #[arg(long, default_value = "metallb-system")]
    pub namespace: String,
}

/// Why `ferrolb convert` failed.
#[derive(Debug, thiserror::Error)]
pub enum ConvertCommandError {
    #[error("cannot read {}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is invalid", path.display())]
    Invalid {
        path: std::path::PathBuf,
        #[source]
        source: super::ConfigError,
    },
    #[error("{} already holds custom resources; nothing to convert", path.display())]
    AlreadyCrds { path: std::path::PathBuf },
    #[error(transparent)]
    Convert(#[from] ConvertError),
    #[error("cannot write output")]
    Write(#[from] std::io::Error),
}

/// Runs `ferrolb convert`: objects to `out`, notes to `err`.
pub fn run(
    args: &ConvertArgs,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> Result<(), ConvertCommandError> {
    let path = &args.file;
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map(|_| text)
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|source| ConvertCommandError::Read {
        path: path.clone(),
        source,
    })?;
    let config = super::parse_file(&text)
        .map_err(|source| ConvertCommandError::Invalid {
            path: path.clone(),
            source,
        })?
        .config;
    if config.source == super::Source::Crds {
        return Err(ConvertCommandError::AlreadyCrds { path: path.clone() });
    }
    let converted = convert(&config, &args.namespace)?;
    out.write_all(converted.yaml.as_bytes())?;
    for note in &converted.notes {
        writeln!(err, "note: {note}")?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
