//! What the controller writes back to MetalLB's objects (`--config-source crds`, leader only):
//! each `IPAddressPool.status` (addresses assigned and available per family, as MetalLB v0.15),
//! and the `ConfigurationState` named `controller` (Valid / Invalid with the errors, as MetalLB
//! v0.15.3). The bodies are built by pure functions; the writes are merge patches on the status
//! subresource with the controller's field manager.

use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use super::writes::FIELD_MANAGER;
use crate::ipam::PoolStats;
use crate::k8s::config_state::{bounded, configuration_state_of, write_state};
use crate::k8s::metallb::POOL;

/// Name of the controller's ConfigurationState object.
pub const STATE_NAME: &str = "controller";
/// The condition type MetalLB's controller sets (its pool reconciler).
pub const CONDITION_TYPE: &str = "poolReconcilerValid";

fn clamp(n: u128) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The status patch of one pool.
pub fn pool_status(stats: &PoolStats) -> Value {
    let total_v4 = stats.total.saturating_sub(stats.ipv6_total);
    let in_use_v4 = stats.in_use.saturating_sub(stats.ipv6_in_use);
    json!({"status": {
        "assignedIPv4": clamp(in_use_v4),
        "assignedIPv6": clamp(stats.ipv6_in_use),
        "availableIPv4": clamp(total_v4.saturating_sub(in_use_v4)),
        "availableIPv6": clamp(stats.ipv6_total.saturating_sub(stats.ipv6_in_use)),
    }})
}

/// ferrolb's own condition: whether a pool overlaps the cluster's networks (a ServiceCIDR, a
/// node's address, a Pod CIDR). A warning, not a refusal: `result` stays as the config says.
pub const OVERLAP_CONDITION: &str = "poolOverlapsClusterNetworks";

/// ferrolb's own condition: the fields of the config in force ferrolb reads but does not
/// implement (BGP fields such as `vrf`, a `bgpextras` ConfigMap). A warning, not a refusal.
pub const NOT_IMPLEMENTED_CONDITION: &str = "fieldsNotImplemented";

/// The ConfigurationState status for a config that loaded (`None`) or was refused (the errors),
/// with the pools' `overlaps` (one message each) and the fields `not_implemented` (one each) in
/// conditions of their own. `now` is an RFC 3339 time, the conditions' lastTransitionTime.
pub fn configuration_state(
    error: Option<&str>,
    overlaps: &[String],
    not_implemented: &[String],
    now: &str,
) -> Value {
    let mut out = configuration_state_of(CONDITION_TYPE, error, now);
    let overlap = warning_condition(
        OVERLAP_CONDITION,
        overlaps,
        ("PoolOverlap", "NoOverlap"),
        "no pool overlaps a ServiceCIDR, a node's address or a Pod CIDR",
        now,
    );
    let fields = warning_condition(
        NOT_IMPLEMENTED_CONDITION,
        not_implemented,
        ("NotImplemented", "AllApplied"),
        "every field of the configuration is applied",
        now,
    );
    if let Some(conditions) = out["status"]["conditions"].as_array_mut() {
        conditions.push(overlap);
        conditions.push(fields);
    }
    out
}

/// A warning condition of ours: "True" with `reasons.0` and the `items` (`; `-separated), or
/// "False" with `reasons.1` and `clear` when there are none.
fn warning_condition(
    kind: &str,
    items: &[String],
    reasons: (&str, &str),
    clear: &str,
    now: &str,
) -> Value {
    let (status, reason, message) = match items {
        [] => ("False", reasons.1, clear.to_owned()),
        _ => ("True", reasons.0, bounded(&items.join("; "))),
    };
    json!({"type": kind, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": now})
}

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

/// Writes one pool's status.
pub async fn write_pool_status(
    client: &Client,
    namespace: &str,
    pool: &str,
    status: &Value,
) -> Result<(), kube::Error> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &POOL.api_resource());
    api.patch_status(pool, &params(), &Patch::Merge(status))
        .await
        .map(|_| ())
}

/// Writes the controller's ConfigurationState, creating the object the first time.
pub async fn write_configuration_state(
    client: &Client,
    namespace: &str,
    status: &Value,
) -> Result<(), kube::Error> {
    let labels = [(
        "metallb.io/component-type".to_owned(),
        "controller".to_owned(),
    )]
    .into();
    write_state(client, namespace, STATE_NAME, labels, FIELD_MANAGER, status).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(total: u128, in_use: u128, total_v6: u128, in_use_v6: u128) -> PoolStats {
        PoolStats {
            pool: "p".into(),
            total,
            in_use,
            ipv6_total: total_v6,
            ipv6_in_use: in_use_v6,
        }
    }

    #[test]
    fn pool_status_counts_each_family() {
        assert_eq!(
            pool_status(&stats(16 + 8, 3 + 1, 8, 1)),
            json!({"status": {"assignedIPv4": 3, "assignedIPv6": 1,
                              "availableIPv4": 13, "availableIPv6": 7}})
        );
    }

    #[test]
    fn a_huge_ipv6_pool_reports_the_largest_count_not_a_wrapped_one() {
        let s = pool_status(&stats(1 << 64, 1, 1 << 64, 1));
        assert_eq!(s["status"]["availableIPv6"], i64::MAX);
        assert_eq!(s["status"]["availableIPv4"], 0);
    }

    #[test]
    fn configuration_state_says_valid_or_invalid_with_the_errors() {
        let ok = configuration_state(None, &[], &[], "2026-11-30T00:00:00Z");
        assert_eq!(ok["status"]["result"], "Valid");
        assert!(ok["status"].get("errorSummary").is_none());
        assert_eq!(ok["status"]["conditions"][0]["status"], "True");
        let bad = configuration_state(
            Some("IPAddressPool \"b\": addresses: overlaps"),
            &[],
            &[],
            "t",
        );
        assert_eq!(bad["status"]["result"], "Invalid");
        assert_eq!(
            bad["status"]["errorSummary"],
            "IPAddressPool \"b\": addresses: overlaps"
        );
        assert_eq!(
            bad["status"]["conditions"][0]["reason"],
            "ConfigurationError"
        );
        assert_eq!(bad["status"]["conditions"][0]["type"], CONDITION_TYPE);
    }

    #[test]
    fn overlaps_are_a_condition_of_their_own_and_leave_the_config_valid() {
        let overlaps = [
            "pool \"a\" holds 192.0.2.1, the InternalIP of node n1: never handed out".to_owned(),
        ];
        let warned = configuration_state(None, &overlaps, &[], "t");
        assert_eq!(warned["status"]["result"], "Valid");
        assert!(warned["status"].get("errorSummary").is_none());
        let condition = &warned["status"]["conditions"][1];
        assert_eq!(condition["type"], OVERLAP_CONDITION);
        assert_eq!(condition["status"], "True");
        assert_eq!(condition["reason"], "PoolOverlap");
        assert!(
            condition["message"]
                .as_str()
                .unwrap()
                .contains("InternalIP of node n1")
        );
        let clear = configuration_state(None, &[], &[], "t");
        assert_eq!(clear["status"]["conditions"][1]["status"], "False");
        assert_eq!(clear["status"]["conditions"][0]["status"], "True");
    }

    #[test]
    fn fields_not_implemented_are_a_condition_of_their_own_and_leave_the_config_valid() {
        let fields = ["BGPPeer \"r\": spec.vrf: VRFs are not implemented".to_owned()];
        let warned = configuration_state(None, &[], &fields, "t");
        assert_eq!(warned["status"]["result"], "Valid");
        let condition = &warned["status"]["conditions"][2];
        assert_eq!(condition["type"], NOT_IMPLEMENTED_CONDITION);
        assert_eq!(condition["status"], "True");
        assert_eq!(condition["reason"], "NotImplemented");
        assert_eq!(condition["message"], fields[0]);
        let clear = configuration_state(None, &[], &[], "t");
        assert_eq!(clear["status"]["conditions"][2]["status"], "False");
    }
}
