//! The config exactly as written: serde shapes of MetalLB's YAML, no meaning attached yet.
//!
//! Every struct denies unknown fields (a misspelt `auto-asign` must not silently fall back to the
//! default). Optional keys are `Option` so an explicit `null`, which MetalLB's YAML library also
//! accepted, reads as "not set". Values whose range MetalLB checks itself (aggregation lengths)
//! are read wide so the validator can name the field instead of the parser failing on a type.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(rename = "address-pools")]
    pub address_pools: Option<Vec<RawPool>>,
    pub peers: Option<Vec<RawPeer>>,
    #[serde(rename = "bgp-communities")]
    pub bgp_communities: Option<BTreeMap<String, String>>,
    #[serde(rename = "bfd-profiles")]
    pub bfd_profiles: Option<Vec<RawBfdProfile>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPool {
    pub name: Option<String>,
    pub protocol: Option<String>,
    pub addresses: Option<Vec<String>>,
    #[serde(rename = "auto-assign")]
    pub auto_assign: Option<bool>,
    #[serde(rename = "avoid-buggy-ips")]
    pub avoid_buggy_ips: Option<bool>,
    #[serde(rename = "bgp-advertisements")]
    pub bgp_advertisements: Option<Vec<RawAdvertisement>>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdvertisement {
    #[serde(rename = "aggregation-length")]
    pub aggregation_length: Option<i64>,
    #[serde(rename = "aggregation-length-v6")]
    pub aggregation_length_v6: Option<i64>,
    pub localpref: Option<u32>,
    pub communities: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPeer {
    #[serde(rename = "my-asn")]
    pub my_asn: Option<u32>,
    #[serde(rename = "peer-asn")]
    pub peer_asn: Option<u32>,
    #[serde(rename = "peer-address")]
    pub peer_address: Option<String>,
    #[serde(rename = "peer-port")]
    pub peer_port: Option<u16>,
    #[serde(rename = "source-address")]
    pub source_address: Option<String>,
    #[serde(rename = "hold-time")]
    pub hold_time: Option<String>,
    #[serde(rename = "keepalive-time")]
    pub keepalive_time: Option<String>,
    #[serde(rename = "router-id")]
    pub router_id: Option<String>,
    pub password: Option<String>,
    #[serde(rename = "node-selectors")]
    pub node_selectors: Option<Vec<RawNodeSelector>>,
    #[serde(rename = "bfd-profile")]
    pub bfd_profile: Option<String>,
    #[serde(rename = "ebgp-multihop")]
    pub ebgp_multihop: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNodeSelector {
    #[serde(rename = "match-labels")]
    pub match_labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "match-expressions")]
    pub match_expressions: Option<Vec<RawRequirement>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRequirement {
    pub key: Option<String>,
    pub operator: Option<String>,
    pub values: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBfdProfile {
    pub name: Option<String>,
    #[serde(rename = "receive-interval")]
    pub receive_interval: Option<u32>,
    #[serde(rename = "transmit-interval")]
    pub transmit_interval: Option<u32>,
    #[serde(rename = "detect-multiplier")]
    pub detect_multiplier: Option<u32>,
    #[serde(rename = "echo-interval")]
    pub echo_interval: Option<u32>,
    #[serde(rename = "echo-mode")]
    pub echo_mode: Option<bool>,
    #[serde(rename = "passive-mode")]
    pub passive_mode: Option<bool>,
    #[serde(rename = "minimum-ttl")]
    pub minimum_ttl: Option<u32>,
}

/// A Kubernetes ConfigMap manifest, as `kubectl get cm -o yaml` prints it or a user writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawManifest {
    #[serde(rename = "apiVersion")]
    pub api_version: Option<String>,
    pub kind: Option<String>,
    // Server-populated metadata (managedFields, annotations...) is irrelevant to the config.
    #[allow(dead_code)]
    pub metadata: Option<IgnoredAny>,
    pub data: Option<BTreeMap<String, Option<String>>>,
    #[serde(rename = "binaryData")]
    #[allow(dead_code)]
    pub binary_data: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub immutable: Option<bool>,
}
