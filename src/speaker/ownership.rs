//! Which IPs this node announces (pure): the one election path of both speaker modes. Each mode
//! works out the nodes eligible for a service (Kubernetes: [`super::cluster`]; static: the live
//! members allowed by the file), then [`elect`] picks the owner and [`owned_by`] turns the
//! decisions into this node's owned set.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::election;

/// A service as the speaker sees it, whatever the source (static file or Kubernetes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncedService {
    pub service: String,
    pub ips: Vec<IpAddr>,
    /// Nodes allowed to announce beyond liveness (static `nodes`, or `Local` endpoints and node
    /// conditions in Kubernetes); `None` = every live node.
    pub allowed: Option<BTreeSet<String>>,
}

/// The announcing decision for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// `namespace/name` in Kubernetes, the file's name in static mode.
    pub service: String,
    /// The IPs announced together, in order (the first decides the owner).
    pub ips: Vec<IpAddr>,
    /// The elected node, if any is eligible.
    pub node: Option<String>,
}

/// Elects the announcer of one service among `eligible` nodes.
pub fn elect<'a>(
    service: String,
    ips: Vec<IpAddr>,
    eligible: impl IntoIterator<Item = &'a str>,
) -> Announcement {
    let node = election::service_owner(&ips, eligible).map(str::to_owned);
    Announcement { service, ips, node }
}

/// Static mode's decisions: a service's eligible nodes are the live members it allows.
pub fn announcers(services: &[AnnouncedService], live: &BTreeSet<String>) -> Vec<Announcement> {
    services
        .iter()
        .map(|svc| {
            let eligible = live
                .iter()
                .filter(|n| svc.allowed.as_ref().is_none_or(|a| a.contains(*n)))
                .map(String::as_str);
            elect(svc.service.clone(), svc.ips.clone(), eligible)
        })
        .collect()
}

/// The IPs `me` must answer for, each with the service it belongs to.
pub fn owned_by(me: &str, announcements: &[Announcement]) -> BTreeMap<IpAddr, String> {
    announcements
        .iter()
        .filter(|a| a.node.as_deref() == Some(me))
        .flat_map(|a| a.ips.iter().map(|ip| (*ip, a.service.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, ips: &[&str], allowed: Option<&[&str]>) -> AnnouncedService {
        AnnouncedService {
            service: name.into(),
            ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
            allowed: allowed.map(|a| a.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn live(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exactly_one_live_node_owns_each_service_and_it_is_the_first_ranked() {
        let services = vec![
            svc("a", &["10.0.0.1"], None),
            svc("b", &["10.0.0.2", "2001:db8::2"], None),
        ];
        let all = live(&["node-a", "node-b", "node-c"]);
        // The election's test vector: 10.0.0.1 -> node-b first; 10.0.0.2 -> node-b first.
        let b = owned_by("node-b", &announcers(&services, &all));
        assert_eq!(b.len(), 3, "node-b owns both services, dual-stack together");
        assert!(owned_by("node-a", &announcers(&services, &all)).is_empty());
        // node-b dies: 10.0.0.1 goes to node-a, 10.0.0.2 (and its v6 sibling) to node-c.
        let rest = live(&["node-a", "node-c"]);
        let a = owned_by("node-a", &announcers(&services, &rest));
        let c = owned_by("node-c", &announcers(&services, &rest));
        assert_eq!(
            a.keys().map(|i| i.to_string()).collect::<Vec<_>>(),
            ["10.0.0.1"]
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c.values().next().map(String::as_str), Some("b"));
    }

    #[test]
    fn allowed_nodes_restrict_the_election() {
        let services = vec![svc("a", &["10.0.0.1"], Some(&["node-c"]))];
        let all = live(&["node-a", "node-b", "node-c"]);
        assert_eq!(owned_by("node-c", &announcers(&services, &all)).len(), 1);
        assert!(owned_by("node-b", &announcers(&services, &all)).is_empty());
        let without_c = live(&["node-a", "node-b"]);
        assert_eq!(announcers(&services, &without_c)[0].node, None);
    }
}
