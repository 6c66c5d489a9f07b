//! `ServiceBGPStatus` objects (`kubectl get servicebgpstatuses`, MetalLB v0.15+): for each
//! Service a node hands to at least one BGP peer, one object of that node listing the peers
//! (`status.peers`, the BGPPeer names, sorted). They say what the node's config sends where, not
//! whether a session is up. Written by the same diff and writer as `ServiceL2Status`
//! ([`super`], [`super::edge`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;

use super::StatusKind;
use super::edge::Inputs;

/// `ServiceBGPStatus`: `status.peers` lists peer names as plain strings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bgp;

impl StatusKind for Bgp {
    const KIND: &'static str = "ServiceBGPStatus";
    const PLURAL: &'static str = "servicebgpstatuses";
    const GENERATE_NAME: &'static str = "bgp-";
    const FIELD: &'static str = "peers";
    type Key = String;
    type Names = BTreeSet<String>;

    fn item(name: &str) -> Value {
        Value::String(name.to_owned())
    }

    fn name_of(item: &Value) -> Option<&str> {
        item.as_str()
    }
}

/// Each Service (`namespace/name`) this node announces over BGP now, with the peers (BGPPeer
/// names) its prefixes go to: [`crate::advertise_bgp::NodeRoutes::services`]. A Service with no
/// peer has no object, as in MetalLB; an empty set counts as none.
pub type Desired = BTreeMap<String, BTreeSet<String>>;

/// What the speaker's loop hands the BGP writer ([`super::edge::StatusWriter::spawn`]).
pub type BgpInputs = Inputs<Bgp>;

/// The writer's inputs for `services` (what [`Desired`] says) and the nodes alive in this
/// speaker's view. Services whose peer set is empty are left out: they get no object.
pub fn inputs(services: &Arc<Desired>, alive: BTreeSet<String>) -> BgpInputs {
    let desired = if services.values().any(BTreeSet::is_empty) {
        Arc::new(
            services
                .iter()
                .filter(|(_, peers)| !peers.is_empty())
                .map(|(s, p)| (s.clone(), p.clone()))
                .collect(),
        )
    } else {
        services.clone()
    };
    Inputs {
        desired,
        alive,
        config: None,
    }
}

#[cfg(test)]
#[path = "bgp_tests.rs"]
mod tests;
