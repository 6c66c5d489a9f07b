//! The custom resources exactly as written: serde shapes of MetalLB's `metallb.io` objects.
//!
//! No struct denies unknown fields: `super::decode_object` collects the fields these shapes do
//! not know (a field a newer MetalLB added,
//! or a misspelt `autoAsign`) and reports each as a warning naming the object and the field,
//! instead of refusing the whole config or defaulting silently. A known field of the wrong type
//! is still an error. `metadata` and `status` are written by the API server and carry much more
//! than a config needs, so only the fields read here are looked at. (The legacy ConfigMap's
//! shapes, `config::raw`, still deny unknown keys: that text is written by hand.)

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::config::selector::{RequirementInput, SelectorInput};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawMeta {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
}

/// Any object: the envelope around a kind's spec.
#[derive(Debug, Deserialize)]
pub(crate) struct RawObject<S> {
    #[serde(rename = "apiVersion")]
    #[allow(dead_code)]
    pub api_version: Option<String>,
    #[allow(dead_code)]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: RawMeta,
    pub spec: Option<S>,
    #[allow(dead_code)]
    pub status: Option<IgnoredAny>,
}

/// A `v1` Namespace: only its name and labels matter (for `namespaceSelectors`).
#[derive(Debug, Deserialize)]
pub(crate) struct RawNamespace {
    #[serde(default)]
    pub metadata: RawMeta,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawSelector {
    #[serde(rename = "matchLabels")]
    pub match_labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "matchExpressions")]
    pub match_expressions: Option<Vec<RawRequirement>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawRequirement {
    pub key: Option<String>,
    pub operator: Option<String>,
    pub values: Option<Vec<String>>,
}

impl From<RawSelector> for SelectorInput {
    fn from(raw: RawSelector) -> SelectorInput {
        SelectorInput {
            match_labels: raw.match_labels,
            match_expressions: raw.match_expressions.map(|exprs| {
                exprs
                    .into_iter()
                    .map(|r| RequirementInput {
                        key: r.key,
                        operator: r.operator,
                        values: r.values,
                    })
                    .collect()
            }),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawPoolSpec {
    pub addresses: Option<Vec<String>>,
    #[serde(rename = "autoAssign")]
    pub auto_assign: Option<bool>,
    #[serde(rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: Option<bool>,
    #[serde(rename = "serviceAllocation")]
    pub service_allocation: Option<RawServiceAllocation>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawServiceAllocation {
    pub priority: Option<i32>,
    pub namespaces: Option<Vec<String>>,
    #[serde(rename = "namespaceSelectors")]
    pub namespace_selectors: Option<Vec<RawSelector>>,
    #[serde(rename = "serviceSelectors")]
    pub service_selectors: Option<Vec<RawSelector>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawL2Spec {
    #[serde(rename = "ipAddressPools")]
    pub ip_address_pools: Option<Vec<String>>,
    #[serde(rename = "ipAddressPoolSelectors")]
    pub ip_address_pool_selectors: Option<Vec<RawSelector>>,
    #[serde(rename = "nodeSelectors")]
    pub node_selectors: Option<Vec<RawSelector>>,
    pub interfaces: Option<Vec<String>>,
    #[serde(rename = "serviceSelectors")]
    pub service_selectors: Option<Vec<RawSelector>>,
    #[serde(rename = "preferredNodeSelectors")]
    pub preferred_node_selectors: Option<Vec<RawPreferredNode>>,
}

/// One `L2Advertisement.spec.preferredNodeSelectors` entry.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawPreferredNode {
    pub weight: Option<i64>,
    pub preference: Option<RawSelector>,
}

/// `BGPPeer`, v1beta1 and v1beta2 fields together (v1beta1 is a subset apart from its selector
/// struct, which reads the same; ferrolb's chart serves both versions with every field).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawBgpPeerSpec {
    #[serde(rename = "myASN")]
    pub my_asn: Option<u32>,
    #[serde(rename = "peerASN")]
    pub peer_asn: Option<u32>,
    #[serde(rename = "localASN")]
    pub local_asn: Option<u32>,
    #[serde(rename = "dynamicASN")]
    pub dynamic_asn: Option<String>,
    #[serde(rename = "peerAddress")]
    pub peer_address: Option<String>,
    pub interface: Option<String>,
    #[serde(rename = "sourceAddress")]
    pub source_address: Option<String>,
    #[serde(rename = "peerPort")]
    pub peer_port: Option<i64>,
    #[serde(rename = "holdTime")]
    pub hold_time: Option<String>,
    #[serde(rename = "keepaliveTime")]
    pub keepalive_time: Option<String>,
    #[serde(rename = "connectTime")]
    pub connect_time: Option<String>,
    #[serde(rename = "routerID")]
    pub router_id: Option<String>,
    #[serde(rename = "nodeSelectors")]
    pub node_selectors: Option<Vec<RawSelector>>,
    pub password: Option<String>,
    #[serde(rename = "passwordSecret")]
    pub password_secret: Option<BTreeMap<String, String>>,
    #[serde(rename = "bfdProfile")]
    pub bfd_profile: Option<String>,
    #[serde(rename = "enableGracefulRestart")]
    pub enable_graceful_restart: Option<bool>,
    #[serde(rename = "ebgpMultiHop")]
    pub ebgp_multi_hop: Option<bool>,
    pub vrf: Option<String>,
    #[serde(rename = "disableMP")]
    pub disable_mp: Option<bool>,
    #[serde(rename = "dualStackAddressFamily")]
    pub dual_stack_address_family: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawBgpAdvertisementSpec {
    #[serde(rename = "aggregationLength")]
    pub aggregation_length: Option<i64>,
    #[serde(rename = "aggregationLengthV6")]
    pub aggregation_length_v6: Option<i64>,
    #[serde(rename = "localPref")]
    pub local_pref: Option<u32>,
    pub communities: Option<Vec<String>>,
    #[serde(rename = "ipAddressPools")]
    pub ip_address_pools: Option<Vec<String>>,
    #[serde(rename = "ipAddressPoolSelectors")]
    pub ip_address_pool_selectors: Option<Vec<RawSelector>>,
    #[serde(rename = "nodeSelectors")]
    pub node_selectors: Option<Vec<RawSelector>>,
    pub peers: Option<Vec<String>>,
    #[serde(rename = "serviceSelectors")]
    pub service_selectors: Option<Vec<RawSelector>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawBfdProfileSpec {
    #[serde(rename = "receiveInterval")]
    pub receive_interval: Option<i64>,
    #[serde(rename = "transmitInterval")]
    pub transmit_interval: Option<i64>,
    #[serde(rename = "detectMultiplier")]
    pub detect_multiplier: Option<i64>,
    #[serde(rename = "echoInterval")]
    pub echo_interval: Option<i64>,
    #[serde(rename = "echoMode")]
    pub echo_mode: Option<bool>,
    #[serde(rename = "passiveMode")]
    pub passive_mode: Option<bool>,
    #[serde(rename = "minimumTtl")]
    pub minimum_ttl: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawCommunitySpec {
    pub communities: Option<Vec<RawCommunityAlias>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawCommunityAlias {
    pub name: Option<String>,
    pub value: Option<String>,
}
