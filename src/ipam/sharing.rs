//! When two services may hold the same address (MetalLB's `allow-shared-ip` rules): both carry
//! the same non-empty sharing key, no `{protocol, port}` is used by both, and they agree on the
//! external traffic policy (for `Local`, on the pod selector too, because the one node announcing
//! the address must have endpoints of every sharer).

use super::error::ConflictReason;
use super::types::{Port, Request, TrafficPolicy};

/// The part of a request that decides sharing, kept per service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SharingParams {
    pub key: Option<String>,
    /// Sorted and deduplicated, so overlap is a merge walk.
    pub ports: Vec<Port>,
    pub traffic: TrafficPolicy,
}

impl SharingParams {
    pub fn of(request: &Request) -> SharingParams {
        let mut ports = request.ports.clone();
        ports.sort_unstable();
        ports.dedup();
        SharingParams {
            key: request.effective_sharing_key().map(str::to_owned),
            ports,
            traffic: request.traffic.clone(),
        }
    }

    /// Whether a service with `self` may share an address with one holding it with `other`.
    pub fn compatible_with(&self, other: &SharingParams) -> Result<(), ConflictReason> {
        match (&self.key, &other.key) {
            (Some(ours), Some(theirs)) if ours == theirs => {}
            _ => {
                return Err(ConflictReason::SharingKeyMismatch {
                    ours: self.key.clone(),
                    theirs: other.key.clone(),
                });
            }
        }
        if let Some(port) = first_common(&self.ports, &other.ports) {
            return Err(ConflictReason::PortOverlap { port });
        }
        match (&self.traffic, &other.traffic) {
            (TrafficPolicy::Cluster, TrafficPolicy::Cluster) => Ok(()),
            (TrafficPolicy::Local { selector: a }, TrafficPolicy::Local { selector: b }) => {
                if a == b {
                    Ok(())
                } else {
                    Err(ConflictReason::SelectorMismatch)
                }
            }
            _ => Err(ConflictReason::TrafficPolicyMismatch),
        }
    }
}

fn first_common(a: &[Port], b: &[Port]) -> Option<Port> {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return Some(a[i]),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ipam::{Family, Protocol};

    fn params(
        key: Option<&str>,
        ports: &[(Protocol, u16)],
        traffic: TrafficPolicy,
    ) -> SharingParams {
        let mut request = Request::single(Family::V4);
        request.sharing_key = key.map(str::to_owned);
        request.ports = ports
            .iter()
            .map(|&(protocol, port)| Port { protocol, port })
            .collect();
        request.traffic = traffic;
        SharingParams::of(&request)
    }

    fn local(app: &str) -> TrafficPolicy {
        TrafficPolicy::Local {
            selector: BTreeMap::from([("app".to_owned(), app.to_owned())]),
        }
    }

    #[test]
    fn same_key_disjoint_ports_same_policy_share() {
        let dns_udp = params(Some("dns"), &[(Protocol::Udp, 53)], TrafficPolicy::Cluster);
        let dns_tcp = params(Some("dns"), &[(Protocol::Tcp, 53)], TrafficPolicy::Cluster);
        assert_eq!(dns_udp.compatible_with(&dns_tcp), Ok(()));
        let a = params(Some("k"), &[(Protocol::Tcp, 80)], local("web"));
        let b = params(Some("k"), &[(Protocol::Tcp, 443)], local("web"));
        assert_eq!(a.compatible_with(&b), Ok(()));
    }

    #[test]
    fn each_rule_refuses_with_its_reason() {
        let tcp80 = [(Protocol::Tcp, 80)];
        let none = params(None, &tcp80, TrafficPolicy::Cluster);
        let empty = params(Some(""), &[(Protocol::Udp, 1)], TrafficPolicy::Cluster);
        let k = params(Some("k"), &[(Protocol::Udp, 1)], TrafficPolicy::Cluster);
        assert!(matches!(
            none.compatible_with(&none),
            Err(ConflictReason::SharingKeyMismatch { .. })
        ));
        assert_eq!(
            empty.compatible_with(&empty),
            Err(ConflictReason::SharingKeyMismatch {
                ours: None,
                theirs: None
            }),
            "an empty key is no key"
        );
        let other_key = params(Some("j"), &tcp80, TrafficPolicy::Cluster);
        assert!(matches!(
            k.compatible_with(&other_key),
            Err(ConflictReason::SharingKeyMismatch { .. })
        ));
        let k80 = params(
            Some("k"),
            &[(Protocol::Tcp, 80), (Protocol::Udp, 1)],
            TrafficPolicy::Cluster,
        );
        assert_eq!(
            k.compatible_with(&k80),
            Err(ConflictReason::PortOverlap {
                port: Port {
                    protocol: Protocol::Udp,
                    port: 1
                }
            })
        );
        let k_local = params(Some("k"), &tcp80, local("web"));
        assert_eq!(
            k.compatible_with(&k_local),
            Err(ConflictReason::TrafficPolicyMismatch)
        );
        let k_local_db = params(Some("k"), &[(Protocol::Tcp, 5432)], local("db"));
        assert_eq!(
            k_local.compatible_with(&k_local_db),
            Err(ConflictReason::SelectorMismatch)
        );
    }
}
