//! The file that feeds `ferrolb speaker --static FILE`: this node, its gossip peers and the
//! addresses to announce, in place of the Kubernetes API.
//!
//! ```yaml
//! node: node-a                      # this speaker's member name
//! gossip:
//!   bind: 192.0.2.11:7946           # UDP address to listen on and advertise
//!   seeds: [192.0.2.12:7946]        # members to join through (may include this node)
//!   key-file: /etc/ferrolb/key      # optional; else --memberlist-key-file / FERROLB_MEMBERLIST_KEY
//! addresses:
//! - service: default/web
//!   ips: [192.0.2.100, 2001:db8::100]   # the first IP decides the owner for all of them
//!   nodes: [node-a, node-b]             # optional: only these nodes may announce
//! advertisements:                       # optional: see `static_ads`
//! - name: lan
//!   interfaces: [eth1]
//! bgp:                                  # optional: BGP peers and defaults, see `static_bgp`
//!   peers:
//!   - {name: tor, peer-address: 192.0.2.1, peer-asn: 64512, my-asn: 64513}
//! ```
//!
//! An `addresses` entry may carry `bgp:` announcement options (`communities`, `local-pref`,
//! `aggregation-length`, `aggregation-length-v6`, `peers`) over `bgp.defaults`; with a `bgp:`
//! section every node an entry allows announces its addresses to its peers (`static_bgp`).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

use thiserror::Error;

/// The static counterpart of an L2Advertisement (see [`super::static_ads`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticAdvertisement {
    pub name: String,
    #[serde(default)]
    pub services: Option<BTreeSet<String>>,
    #[serde(default)]
    pub nodes: Option<BTreeSet<String>>,
    #[serde(default)]
    pub interfaces: Option<BTreeSet<String>>,
    /// The static form of `preferredNodeSelectors`: the named nodes score `weight` (1–100).
    #[serde(default, rename = "preferredNodes")]
    pub preferred_nodes: Option<Vec<StaticPreference>>,
}

/// One `preferredNodes` entry of a static advertisement.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticPreference {
    pub weight: u32,
    pub nodes: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    pub node: String,
    pub gossip: GossipSection,
    #[serde(default)]
    pub addresses: Vec<StaticService>,
    /// Where services are announced (see [`super::static_ads`]); absent = everywhere.
    #[serde(default)]
    pub advertisements: Option<Vec<StaticAdvertisement>>,
    /// BGP peers and default announcement options (see [`super::static_bgp`]).
    #[serde(default)]
    pub bgp: Option<super::static_bgp::BgpSection>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GossipSection {
    pub bind: SocketAddr,
    #[serde(default)]
    pub seeds: Vec<SocketAddr>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticService {
    pub service: String,
    pub ips: Vec<IpAddr>,
    /// Nodes allowed to announce; absent means every live member.
    #[serde(default)]
    pub nodes: Option<BTreeSet<String>>,
    /// How BGP announces these addresses (over `bgp.defaults`).
    #[serde(default)]
    pub bgp: Option<super::static_bgp::Announce>,
}

/// Why a static file was refused. The speaker keeps its previous file in force.
#[derive(Debug, Error)]
pub enum StaticConfigError {
    #[error("static speaker file is not valid YAML for the expected schema: {0}")]
    Syntax(String),
    #[error("static speaker file: `node` must not be empty")]
    EmptyNode,
    #[error("static speaker file: service #{index} has an empty `service` name")]
    EmptyServiceName { index: usize },
    #[error("static speaker file: service {service:?} is listed twice")]
    DuplicateService { service: String },
    #[error("static speaker file: service {service:?} has no `ips`")]
    NoIps { service: String },
    #[error("static speaker file: IP {ip} is given to both {first:?} and {second:?}")]
    SharedIp {
        ip: IpAddr,
        first: String,
        second: String,
    },
    #[error("static speaker file: service {service:?} lists more than one IPv4 or IPv6 address")]
    TooManyPerFamily { service: String },
    #[error(
        "static speaker file: advertisement {advertisement:?} has a preferredNodes weight of \
         {weight}, outside 1-100"
    )]
    PreferenceWeight { advertisement: String, weight: u32 },
    /// The whole message in the text (no `source()`), like the variants above.
    #[error("static speaker file: {0}")]
    Bgp(super::static_bgp::BgpConfigError),
}

/// Parses and validates a static speaker file.
pub fn parse(text: &str) -> Result<StaticConfig, StaticConfigError> {
    let config: StaticConfig =
        serde_saphyr::from_str(text).map_err(|e| StaticConfigError::Syntax(e.to_string()))?;
    config.validate()?;
    Ok(config)
}

impl StaticConfig {
    fn validate(&self) -> Result<(), StaticConfigError> {
        if self.node.trim().is_empty() {
            return Err(StaticConfigError::EmptyNode);
        }
        let mut services = BTreeSet::new();
        let mut ips: std::collections::BTreeMap<IpAddr, &str> = Default::default();
        for (index, svc) in self.addresses.iter().enumerate() {
            if svc.service.trim().is_empty() {
                return Err(StaticConfigError::EmptyServiceName { index });
            }
            if !services.insert(svc.service.as_str()) {
                return Err(StaticConfigError::DuplicateService {
                    service: svc.service.clone(),
                });
            }
            if svc.ips.is_empty() {
                return Err(StaticConfigError::NoIps {
                    service: svc.service.clone(),
                });
            }
            let v4 = svc.ips.iter().filter(|ip| ip.is_ipv4()).count();
            if v4 > 1 || svc.ips.len() - v4 > 1 {
                return Err(StaticConfigError::TooManyPerFamily {
                    service: svc.service.clone(),
                });
            }
            for ip in &svc.ips {
                if let Some(first) = ips.insert(*ip, &svc.service) {
                    return Err(StaticConfigError::SharedIp {
                        ip: *ip,
                        first: first.to_string(),
                        second: svc.service.clone(),
                    });
                }
            }
        }
        for ad in self.advertisements.iter().flatten() {
            for p in ad.preferred_nodes.iter().flatten() {
                if !(1..=100).contains(&p.weight) {
                    return Err(StaticConfigError::PreferenceWeight {
                        advertisement: ad.name.clone(),
                        weight: p.weight,
                    });
                }
            }
        }
        super::static_bgp::validate(self.bgp.as_ref(), &self.bgp_addresses())
            .map_err(StaticConfigError::Bgp)?;
        Ok(())
    }

    /// The `addresses` entries as the BGP mode reads them.
    pub fn bgp_addresses(&self) -> Vec<super::static_bgp::BgpAddress<'_>> {
        self.addresses
            .iter()
            .map(|s| super::static_bgp::BgpAddress {
                service: &s.service,
                ips: &s.ips,
                nodes: s.nodes.as_ref(),
                bgp: s.bgp.as_ref(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "
node: node-a
gossip:
  bind: 192.0.2.11:7946
  seeds: [192.0.2.12:7946, 192.0.2.13:7946]
  key-file: /tmp/key
addresses:
- service: default/web
  ips: [192.0.2.100, 2001:db8::100]
- service: default/db
  ips: [192.0.2.101]
  nodes: [node-b]
";

    #[test]
    fn parses_the_documented_shape() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.node, "node-a");
        assert_eq!(c.gossip.seeds.len(), 2);
        assert_eq!(c.gossip.key_file, Some(PathBuf::from("/tmp/key")));
        assert_eq!(c.addresses[0].ips.len(), 2);
        assert_eq!(c.addresses[0].nodes, None);
        assert_eq!(
            c.addresses[1].nodes,
            Some(BTreeSet::from(["node-b".to_string()]))
        );
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../../../config/example-static-speaker.yaml");
        let c = parse(text).unwrap();
        assert_eq!(c.addresses.len(), 2);
    }

    #[test]
    fn rejects_bad_files_with_the_offending_item() {
        let unknown = GOOD.replace("key-file", "keyfile");
        assert!(matches!(parse(&unknown), Err(StaticConfigError::Syntax(_))));
        let bad_ip = GOOD.replace("192.0.2.101", "192.0.2.300");
        assert!(matches!(parse(&bad_ip), Err(StaticConfigError::Syntax(_))));
        let dup = GOOD.replace("default/db", "default/web");
        let err = parse(&dup).unwrap_err();
        assert!(err.to_string().contains("default/web"), "{err}");
        let shared = GOOD.replace("192.0.2.101", "192.0.2.100");
        let err = parse(&shared).unwrap_err();
        assert!(matches!(err, StaticConfigError::SharedIp { .. }), "{err}");
        assert!(err.to_string().contains("default/db"));
        let empty = GOOD.replace("ips: [192.0.2.101]", "ips: []");
        assert!(matches!(
            parse(&empty),
            Err(StaticConfigError::NoIps { .. })
        ));
        let two_v4 = GOOD.replace("2001:db8::100", "192.0.2.102");
        assert!(matches!(
            parse(&two_v4),
            Err(StaticConfigError::TooManyPerFamily { .. })
        ));
        let no_node = GOOD.replace("node: node-a", "node: ''");
        assert!(matches!(parse(&no_node), Err(StaticConfigError::EmptyNode)));
    }

    #[test]
    fn preferred_nodes_are_read_and_their_weight_bounded() {
        let with = |weight: u32| {
            format!(
                "{GOOD}advertisements:\n- name: lan\n  preferredNodes:\n  - weight: {weight}\n    \
                 nodes: [node-b]\n"
            )
        };
        let config = parse(&with(40)).unwrap();
        let ads = config.advertisements.unwrap();
        let preferred = ads[0].preferred_nodes.as_ref().unwrap();
        assert_eq!(preferred[0].weight, 40);
        assert!(preferred[0].nodes.contains("node-b"));
        for weight in [0, 101] {
            let error = parse(&with(weight)).unwrap_err();
            assert!(
                matches!(error, StaticConfigError::PreferenceWeight { .. }),
                "{error}"
            );
            assert!(error.to_string().contains("\"lan\""), "{error}");
        }
    }
}
