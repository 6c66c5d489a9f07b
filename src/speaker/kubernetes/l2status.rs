//! `ServiceL2Status` objects (`kubectl get servicel2statuses`): which node announces each
//! Service over layer 2, and on which interfaces, as MetalLB writes them. The kind
//! ([`L2`]) and what this node wants of it ([`desired`]); the diff and the writer are the ones
//! every per-Service status kind shares ([`super::status`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Value, json};

use super::status::StatusKind;

/// `ServiceL2Status`: `status.interfaces` lists the interfaces an announcement is restricted to,
/// each as `{name: ...}` (empty: every usable interface, as MetalLB leaves it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct L2;

impl StatusKind for L2 {
    const KIND: &'static str = "ServiceL2Status";
    const PLURAL: &'static str = "servicel2statuses";
    const GENERATE_NAME: &'static str = "l2-";
    const FIELD: &'static str = "interfaces";
    type Key = Arc<str>;
    type Names = Vec<String>;

    fn item(name: &str) -> Value {
        json!({ "name": name })
    }

    fn name_of(item: &Value) -> Option<&str> {
        item.get("name")?.as_str()
    }
}

/// Each Service this node announces (`namespace/name`, the cache's key) with the interfaces
/// its announcement is restricted to.
pub type Desired = super::status::DesiredOf<L2>;

/// The Services this node announces (`namespace/name`), each with the interfaces its
/// announcement is restricted to (empty: every usable interface, as MetalLB leaves it). `own`
/// is this node's usable interfaces, when known.
pub fn desired(
    announced: &BTreeMap<Arc<str>, Vec<IpAddr>>,
    only_on: &BTreeMap<IpAddr, BTreeSet<String>>,
    own: Option<&BTreeSet<String>>,
) -> Desired {
    announced
        .iter()
        .map(|(service, ips)| {
            let names: BTreeSet<String> = ips
                .iter()
                .filter_map(|ip| only_on.get(ip))
                .flatten()
                .filter(|n| own.is_none_or(|o| o.contains(*n)))
                .cloned()
                .collect();
            (service.clone(), names.into_iter().collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn desired_lists_only_restricted_interfaces_this_node_has() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let c: IpAddr = "2001:db8::3".parse().unwrap();
        let announced = BTreeMap::from([
            ("shop/web".into(), vec![a, c]),
            ("shop/api".into(), vec![b]),
        ]);
        let only_on = BTreeMap::from([(a, set(&["eth1", "eth2"])), (c, set(&["eth3"]))]);
        let own = set(&["eth0", "eth1", "eth3"]);
        let want: Desired = BTreeMap::from([
            ("shop/api".into(), vec![]),
            ("shop/web".into(), vec!["eth1".into(), "eth3".into()]),
        ]);
        assert_eq!(desired(&announced, &only_on, Some(&own)), want);
        // Interfaces not known yet: every restriction is listed.
        let all = desired(&announced, &only_on, None);
        assert_eq!(all["shop/web"], ["eth1", "eth2", "eth3"]);
    }
}
