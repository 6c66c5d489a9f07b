//! What the BGP side tells operators in events, worked out from what changed (pure): a
//! `nodeAssigned` event with protocol "bgp" when this node starts announcing a Service, a
//! Warning on the Service when one of its addresses cannot be announced from this node (two
//! advertisements disagree on its localPref, or no peer here carries its family), and a Warning
//! on the BGPPeer when its session from this node goes down, does not come up, cannot start, or
//! leaves routes out. Each is said once per cause: again only after it cleared.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;

use super::events::{Assigned, Protocol, node_reference};
use super::reconcile::Stores;
use crate::advertise_bgp::{NodeRoutes, Withheld};

/// One event about a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceNews {
    /// This node started announcing it over BGP.
    Assigned(String),
    /// (Service, note): some of its addresses cannot be announced from this node.
    NotAnnounced(String, String),
}

/// One Warning about a peer's session from this node: (peer name, reason, note).
pub type PeerNews = (String, &'static str, String);

/// The Warning reason of an address no peer gets.
pub const NOT_ANNOUNCED: &str = "bgpNotAnnounced";
/// The Warning reason of a session that is not Established.
pub const SESSION_DOWN: &str = "bgpSessionDown";
/// The Warning reason of a peer whose session cannot start (a missing Secret, a bad routerID).
pub const PEER_NOT_STARTED: &str = "bgpPeerNotStarted";
/// The Warning reason of routes a session cannot carry (a family the router did not agree to).
pub const ROUTES_SKIPPED: &str = "bgpRoutesNotSent";

/// What was said, so each cause is said once.
#[derive(Debug, Default)]
pub struct BgpEvents {
    announced: BTreeSet<String>,
    /// Service → the note last said.
    not_announced: BTreeMap<String, String>,
    /// (peer, reason) → the note last said.
    peers: BTreeMap<(String, &'static str), String>,
}

impl BgpEvents {
    /// The Service events this node's new routes call for.
    pub fn services(&mut self, me: &str, routes: &NodeRoutes) -> Vec<ServiceNews> {
        let mut news: Vec<ServiceNews> = routes
            .services
            .keys()
            .filter(|s| !self.announced.contains(*s))
            .map(|s| ServiceNews::Assigned(s.clone()))
            .collect();
        self.announced = routes.services.keys().cloned().collect();
        let mut notes = BTreeMap::new();
        for (service, why) in &routes.withheld {
            if let Withheld::ConflictingLocalPref { .. } = why {
                notes.insert(
                    service.clone(),
                    format!("not announced over BGP from node {me}: {why}"),
                );
            }
        }
        for (service, ips) in &routes.unreachable {
            let list: Vec<String> = ips.iter().map(ToString::to_string).collect();
            let note = format!(
                "{} not announced over BGP from node {me}: the peers its BGPAdvertisements name \
                 here are all of the other address family (an IPv6 address needs an IPv6 \
                 session, or dualStackAddressFamily on an IPv4 one)",
                list.join(", ")
            );
            notes
                .entry(service.clone())
                .and_modify(|n: &mut String| {
                    n.push_str("; ");
                    n.push_str(&note);
                })
                .or_insert(note);
        }
        for (service, note) in &notes {
            if self.not_announced.get(service) != Some(note) {
                news.push(ServiceNews::NotAnnounced(service.clone(), note.clone()));
            }
        }
        self.not_announced = notes;
        news
    }

    /// The peer Warnings due now, given every current problem: (peer, reason) → note. A problem
    /// gone is forgotten, so its return is said again.
    pub fn peers(&mut self, now: BTreeMap<(String, &'static str), String>) -> Vec<PeerNews> {
        let news = now
            .iter()
            .filter(|(key, note)| self.peers.get(*key) != Some(*note))
            .map(|((peer, reason), note)| (peer.clone(), *reason, note.clone()))
            .collect();
        self.peers = now;
        news
    }
}

/// The events for `news`: on the Services (found in the caches; one deleted meanwhile gets
/// none) and on the BGPPeer objects (or this Node, for a peer of the legacy ConfigMap).
pub fn to_events(
    news: (Vec<ServiceNews>, Vec<PeerNews>),
    stores: &Stores,
    me: &str,
) -> Vec<Assigned> {
    let (services, peers) = news;
    let mut out = Vec::new();
    for n in services {
        let (service, warning) = match n {
            ServiceNews::Assigned(s) => (s, None),
            ServiceNews::NotAnnounced(s, note) => (s, Some((NOT_ANNOUNCED, note))),
        };
        if let Some(view) = stores.services.get(&service) {
            out.push(Assigned {
                reference: view.object_ref(),
                service,
                warning,
                protocol: Protocol::Bgp,
            });
        }
    }
    for (peer, reason, note) in peers {
        out.push(Assigned {
            reference: peer_reference(stores, &peer).unwrap_or_else(|| node_reference(me)),
            service: String::new(),
            warning: Some((reason, note)),
            protocol: Protocol::Bgp,
        });
    }
    out
}

/// The BGPPeer object named `peer`, from the caches.
fn peer_reference(stores: &Stores, peer: &str) -> Option<ObjectReference> {
    let metallb = stores.metallb.as_ref()?;
    metallb
        .bgp
        .iter()
        .filter(|(kind, _)| kind.kind == "BGPPeer")
        .find_map(|(kind, store)| {
            let object = store
                .state()
                .into_iter()
                .find(|o| o.metadata.name.as_deref() == Some(peer))?;
            Some(object.object_ref(&kind.api_resource()))
        })
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn routes(services: &[&str]) -> NodeRoutes {
        NodeRoutes {
            services: services
                .iter()
                .map(|s| ((*s).to_owned(), BTreeSet::from(["r".to_owned()])))
                .collect(),
            ..NodeRoutes::default()
        }
    }

    #[test]
    fn a_service_is_assigned_once_each_time_it_starts_being_announced() {
        let mut e = BgpEvents::default();
        let a = |s: &str| ServiceNews::Assigned(s.into());
        assert_eq!(e.services("n", &routes(&["a/web"])), [a("a/web")]);
        assert_eq!(e.services("n", &routes(&["a/web", "a/api"])), [a("a/api")]);
        assert!(e.services("n", &routes(&["a/web", "a/api"])).is_empty());
        assert!(e.services("n", &routes(&["a/api"])).is_empty());
        assert_eq!(e.services("n", &routes(&["a/web", "a/api"])), [a("a/web")]);
    }

    #[test]
    fn an_address_nobody_here_can_carry_or_a_conflict_warns_once_per_cause() {
        let mut e = BgpEvents::default();
        let mut r = routes(&["a/web"]);
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        r.unreachable.insert("a/web".into(), BTreeSet::from([v6]));
        r.withheld.insert(
            "a/odd".into(),
            Withheld::ConflictingLocalPref {
                prefix: "198.51.100.0/24".parse().unwrap(),
                peer: "r".into(),
            },
        );
        // Withheld for this node's own reasons: nothing to warn about.
        r.withheld
            .insert("a/local".into(), Withheld::NoLocalEndpoints);
        let news = e.services("node-a", &r);
        let warned: Vec<&String> = news
            .iter()
            .filter_map(|n| match n {
                ServiceNews::NotAnnounced(s, note) => {
                    assert!(note.contains("node-a"), "{note}");
                    Some(s)
                }
                ServiceNews::Assigned(_) => None,
            })
            .collect();
        assert_eq!(warned, ["a/odd", "a/web"]);
        assert!(matches!(&news[0], ServiceNews::Assigned(s) if s == "a/web"));
        let ServiceNews::NotAnnounced(_, note) = &news[2] else {
            panic!("{news:?}");
        };
        assert!(note.contains("2001:db8::7") && note.contains("dualStackAddressFamily"));
        // The same again: silence. Cleared, then back: said again.
        assert!(e.services("node-a", &r).is_empty());
        e.services("node-a", &routes(&["a/web"]));
        assert_eq!(e.services("node-a", &r).len(), 2);
    }

    #[test]
    fn a_peer_problem_is_said_once_and_again_after_it_cleared() {
        let mut e = BgpEvents::default();
        let down = |note: &str| BTreeMap::from([(("r".to_owned(), SESSION_DOWN), note.to_owned())]);
        assert_eq!(e.peers(down("refused")).len(), 1);
        assert!(e.peers(down("refused")).is_empty());
        assert_eq!(
            e.peers(down("hold timer expired"))[0].2,
            "hold timer expired"
        );
        assert!(e.peers(BTreeMap::new()).is_empty());
        assert_eq!(e.peers(down("hold timer expired")).len(), 1);
    }
}
