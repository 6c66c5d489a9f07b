//! Which speakers count: a lone speaker elects at once and is ready, whatever the number of
//! Nodes; with gossip off only Ready nodes running a speaker are eligible. The gate is driven the
//! way the Kubernetes edge drives it (`needs_join` = gossip on and `others_expected`).

use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;

use super::*;
use crate::speaker::election_gate::ElectionGate;

pub(super) fn speaker_pod(node: &str, ready: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("speaker-{node}"), "namespace": "ferrolb-system",
                     "labels": {"app.kubernetes.io/component": "speaker"}},
        "spec": {"nodeName": node, "containers": []},
        "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    }))
    .unwrap()
}

/// One speaker (a `nodeSelector` picking one node) among three Ready Nodes, gossip on, nobody to
/// join: it owns every address at once, even one it ranks last for, and is ready.
#[tokio::test]
async fn a_lone_speaker_among_three_nodes_announces_at_once_and_is_ready() {
    let ip = "192.0.2.90";
    let me = ranked(ip)[2];
    let mut h = Harness::new(me);
    // Its own pod is not Ready yet (readiness waits for this very decision).
    put(&mut h.speakers, speaker_pod(me, false));
    h.add(service("web", ip, "Cluster"));
    let t = Instant::now();
    let mut gate = ElectionGate::new(h.rec.others_expected());
    gate.observe(false, t);
    // Gossip has not even listed this node yet: it counts itself anyway.
    let pass = h.rec.pass(Some(&live(&[])), gate.may_elect(t));
    assert_eq!(h.owned(), [ip]);
    assert_eq!(pass.assigned.len(), 1);
    assert!(ready(true, true, gate.joined(), h.rec.others_expected()));

    // A second speaker turns Ready: this one must join it before electing again.
    let other = ranked(ip)[0];
    put(&mut h.speakers, speaker_pod(other, true));
    gate.set_needs_join(h.rec.others_expected());
    assert!(!gate.may_elect(t));
    assert!(!ready(true, true, gate.joined(), h.rec.others_expected()));
    h.rec.pass(Some(&live(&[me])), gate.may_elect(t));
    assert!(h.owned().is_empty(), "not joined: owns nothing");
    gate.observe(true, t);
    let later = t + crate::speaker::election_gate::SETTLE;
    h.rec.pass(Some(&live(&[me, other])), gate.may_elect(later));
    assert!(h.owned().is_empty(), "the other speaker ranks first");
}

/// Gossip off: a Ready Node that runs no speaker is not eligible, or it would win addresses
/// nobody answers. When a speaker starts there, it is.
#[tokio::test]
async fn with_gossip_off_a_ready_node_without_a_speaker_never_wins() {
    let ip = (1..=254)
        .map(|i| format!("192.0.2.{i}"))
        .find(|ip| ranked(ip)[0] == "node-b")
        .unwrap();
    let me = *ranked(&ip)[1..].first().unwrap();
    let mut h = Harness::new(me);
    put(&mut h.speakers, speaker_pod("node-a", true));
    put(&mut h.speakers, speaker_pod("node-c", true));
    h.add(service("web", &ip, "Cluster"));
    h.rec.pass(None, true);
    assert_eq!(
        h.owned(),
        std::slice::from_ref(&ip),
        "node-b runs no speaker"
    );

    put(&mut h.speakers, speaker_pod("node-b", true));
    h.rec.pass(None, true);
    assert!(h.owned().is_empty(), "node-b's speaker is ready: it wins");
}
