//! Advertisements in the static speaker file (pure): the static counterpart of L2Advertisement,
//! naming nodes and Services directly since static mode has no Node or Service labels.
//!
//! ```yaml
//! advertisements:             # optional; absent = every service, every node, every interface
//! - name: lan-only
//!   services: [default/web]   # optional; absent = every service in the file
//!   nodes: [node-a, node-b]   # optional; absent = every live member
//!   interfaces: [eth1]        # optional; absent = every usable interface
//!   preferredNodes:           # optional: preferredNodeSelectors by node name
//!   - weight: 50              # 1-100; the highest summed score announces, the hash breaks ties
//!     nodes: [node-b]
//! ```
//!
//! A file with `advertisements` announces a service only through the advertisements that
//! select it, exactly as a pool without an L2Advertisement is not announced in Kubernetes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::advertise::{self, Health, Interfaces, Reach};
use crate::election::{EligibilityOptions, Liveness, NodeStatus, TrafficScope};

use super::static_config::{StaticAdvertisement, StaticService};
use crate::speaker::answer_check::Target;
use crate::speaker::ownership::{self, Offer, Placed};

/// One service's election in static mode.
pub type StaticDecision = Placed;

fn reach(
    svc: &StaticService,
    ads: Option<&[StaticAdvertisement]>,
    live: &BTreeSet<String>,
) -> Vec<Reach> {
    let allowed = |node: &&String| svc.nodes.as_ref().is_none_or(|n| n.contains(*node));
    let Some(ads) = ads else {
        return vec![Reach {
            nodes: live.iter().filter(allowed).cloned().collect(),
            interfaces: Interfaces::All,
            preferred: BTreeMap::new(),
        }];
    };
    ads.iter()
        .filter(|ad| {
            ad.services
                .as_ref()
                .is_none_or(|s| s.contains(&svc.service))
        })
        .map(|ad| {
            let nodes: BTreeSet<String> = live
                .iter()
                .filter(allowed)
                .filter(|n| ad.nodes.as_ref().is_none_or(|a| a.contains(*n)))
                .cloned()
                .collect();
            // Each selected node scores the weights of the preferences naming it.
            let preferred = nodes
                .iter()
                .map(|n| {
                    let score = ad
                        .preferred_nodes
                        .iter()
                        .flatten()
                        .filter(|p| p.nodes.contains(n))
                        .map(|p| p.weight)
                        .sum::<u32>();
                    (n.clone(), score)
                })
                .filter(|(_, score)| *score > 0)
                .collect();
            Reach {
                nodes,
                interfaces: match &ad.interfaces {
                    None => Interfaces::All,
                    Some(names) => Interfaces::Named(names.clone()),
                },
                preferred,
            }
        })
        .collect()
}

/// Elects every service of the file among the live members its advertisements select, one
/// owner per group of services sharing an address.
pub fn decide(
    services: &[StaticService],
    ads: Option<&[StaticAdvertisement]>,
    live: &BTreeSet<String>,
    known: &BTreeMap<String, BTreeSet<String>>,
    withdrawn: &ownership::Withdrawn,
) -> Vec<StaticDecision> {
    let nodes: Vec<NodeStatus> = live
        .iter()
        .map(|name| NodeStatus {
            name: name.clone(),
            ready: true,
            network_unavailable: false,
            out_of_service: false,
            exclude_from_external_lb: false,
        })
        .collect();
    let health = Health {
        nodes: &nodes,
        liveness: Liveness::Gossip(live),
        scope: TrafficScope::Cluster,
        options: EligibilityOptions::default(),
        known_interfaces: known,
    };
    let offers: Vec<Offer> = services
        .iter()
        .map(|svc| {
            let reach = reach(svc, ads, live);
            let eligible = if reach.is_empty() {
                Err(advertise::Cause::NoAdvertisement {
                    pool: svc.service.clone(),
                })
            } else {
                advertise::candidates(&reach, health)
            };
            Offer {
                service: svc.service.as_str().into(),
                ips: svc.ips.as_slice().into(),
                reach: reach.into(),
                eligible,
            }
        })
        .collect();
    // A node whose interfaces gossip has not carried (yet) is assumed to have them all.
    // The static mode places by MetalLB's ranking (the placement flags are refused with it).
    ownership::place(&offers, known, withdrawn, ownership::Steering::ranked())
}

/// What `me` serves: IP -> service, and the interfaces of IPs restricted to some.
pub type Serving = (BTreeMap<IpAddr, String>, BTreeMap<IpAddr, BTreeSet<String>>);

pub fn serving(me: &str, decisions: &[StaticDecision]) -> Serving {
    let mut owned = BTreeMap::new();
    for d in decisions
        .iter()
        .filter(|d| d.decision.node.as_deref() == Some(me))
    {
        for ip in d.ips.iter() {
            owned.insert(*ip, d.service.to_string());
        }
    }
    // A shared address takes the interfaces every sharer allows.
    let only_on =
        ownership::address_interfaces(me, decisions.iter().map(|d| (&*d.ips, &d.decision)));
    (owned, only_on)
}

/// The addresses `me` is next in line for, to check that their owner answers (on every
/// usable interface: an owner answers on the ones its advertisements allow).
pub fn targets(me: &str, decisions: &[StaticDecision]) -> BTreeMap<IpAddr, Target> {
    let mut out = BTreeMap::new();
    for d in decisions {
        if let (Some(owner), Some(next)) = (&d.decision.node, &d.decision.next)
            && &**next == me
        {
            for ip in d.ips.iter() {
                out.entry(*ip).or_insert_with(|| Target {
                    owner: owner.clone(),
                    service: d.service.clone(),
                    interfaces: None,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, ip: &str) -> StaticService {
        StaticService {
            service: name.into(),
            ips: vec![ip.parse().unwrap()],
            nodes: None,
            bgp: None,
        }
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn advertisements_pick_services_nodes_and_interfaces() {
        let services = [svc("web", "10.0.0.1"), svc("db", "10.0.0.2")];
        let ads = [StaticAdvertisement {
            name: "lan".into(),
            services: Some(set(&["web"])),
            nodes: Some(set(&["node-a", "node-c"])),
            interfaces: Some(set(&["eth1"])),
            preferred_nodes: None,
        }];
        let live = set(&["node-a", "node-b", "node-c"]);
        let decisions = decide(
            &services,
            Some(&ads),
            &live,
            &BTreeMap::new(),
            &ownership::Withdrawn::new(),
        );
        // 10.0.0.1 ranks node-b first, but node-b is not selected: node-a.
        assert_eq!(decisions[0].decision.node.as_deref(), Some("node-a"));
        assert_eq!(decisions[1].decision.node, None, "db has no advertisement");
        assert_eq!(
            decisions[1].decision.cause.as_ref().map(|c| c.label()),
            Some("no_advertisement")
        );
        let (owned, only_on) = serving("node-a", &decisions);
        assert_eq!(owned.len(), 1);
        assert_eq!(only_on.values().next(), Some(&set(&["eth1"])));
        // Without advertisements every service goes everywhere, as before.
        let all = decide(
            &services,
            None,
            &live,
            &BTreeMap::new(),
            &ownership::Withdrawn::new(),
        );
        assert_eq!(all[0].decision.node.as_deref(), Some("node-b"));
        assert!(serving("node-b", &all).1.is_empty());
    }

    /// Two services sharing one address through advertisements naming different interfaces:
    /// the address is answered only on the interfaces both allow, in either order.
    #[test]
    fn a_shared_address_is_served_on_the_interfaces_every_sharer_allows() {
        let ads = [
            StaticAdvertisement {
                name: "lan".into(),
                services: Some(set(&["web"])),
                nodes: None,
                interfaces: Some(set(&["eth1", "eth2"])),
                preferred_nodes: None,
            },
            StaticAdvertisement {
                name: "dmz".into(),
                services: Some(set(&["api"])),
                nodes: None,
                interfaces: Some(set(&["eth2", "eth3"])),
                preferred_nodes: None,
            },
        ];
        let live = set(&["node-a", "node-b", "node-c"]);
        for services in [
            [svc("web", "10.0.0.1"), svc("api", "10.0.0.1")],
            [svc("api", "10.0.0.1"), svc("web", "10.0.0.1")],
        ] {
            let decisions = decide(
                &services,
                Some(&ads),
                &live,
                &BTreeMap::new(),
                &ownership::Withdrawn::new(),
            );
            let owner = decisions[0].decision.node.clone().unwrap();
            assert_eq!(decisions[1].decision.node.as_deref(), Some(&*owner));
            let (owned, only_on) = serving(&owner, &decisions);
            assert_eq!(owned.len(), 1);
            assert_eq!(
                only_on.get(&"10.0.0.1".parse().unwrap()),
                Some(&set(&["eth2"])),
                "{}",
                services[0].service
            );
        }
    }

    /// `preferredNodes` in the file scores as `preferredNodeSelectors` does: the preferred node
    /// announces every Service it may, the others only when it is gone; a node outside the
    /// advertisement's `nodes` scores nothing; the next in line is the runner-up.
    #[test]
    fn preferred_nodes_win_while_alive() {
        use super::super::static_config::StaticPreference;
        let services: Vec<StaticService> = (1..=8)
            .map(|i| svc(&format!("s{i}"), &format!("10.0.0.{i}")))
            .collect();
        let ads = [StaticAdvertisement {
            name: "lan".into(),
            services: None,
            nodes: Some(set(&["node-a", "node-b", "node-c"])),
            interfaces: None,
            preferred_nodes: Some(vec![
                StaticPreference {
                    weight: 60,
                    nodes: set(&["node-c"]),
                },
                StaticPreference {
                    weight: 90,
                    nodes: set(&["node-d"]),
                },
            ]),
        }];
        let elect = |live: &[&str]| {
            decide(
                &services,
                Some(&ads),
                &set(live),
                &BTreeMap::new(),
                &ownership::Withdrawn::new(),
            )
        };
        for d in elect(&["node-a", "node-b", "node-c", "node-d"]) {
            assert_eq!(d.decision.node.as_deref(), Some("node-c"), "{}", d.service);
            let first = d.ips[0];
            let plain = crate::election::rank(first, ["node-a", "node-b"])[0];
            assert_eq!(d.decision.next.as_deref(), Some(plain));
        }
        for d in elect(&["node-a", "node-b", "node-d"]) {
            let plain = crate::election::rank(d.ips[0], ["node-a", "node-b"])[0];
            assert_eq!(d.decision.node.as_deref(), Some(plain));
        }
    }
}
