//! Answer verification on real speakers in Kubernetes mode (network namespaces, a real API
//! server): the node next in line for an address probes it, notices an owner whose ARP replies
//! never reach the LAN, and the owner withdraws so the next node answers; a checker that cannot
//! hear anyone moves nothing.
//!
//! Needs root (network namespaces), `nft`, `arping`, `socat` and KUBEBUILDER_ASSETS; skipped
//! otherwise, failed under `CI=true`.

mod e2e;
mod netns;
#[path = "e2e/speaker_lan.rs"]
mod speaker_lan;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kube::Api;

use e2e::APPS;
use e2e::api::events_about;
use e2e::wait::wait_for as wait_until;
use netns::{in_ns, wait_for};
use speaker_lan::{SETTLE, answered_service, setup};

/// The target: an owner whose ARP replies are dropped is replaced within this.
const REPLACED_WITHIN: Duration = Duration::from_secs(10);

/// Drops the ARP replies leaving `device` in namespace `ns` (nftables, netdev egress hook:
/// also the replies a packet socket sends, as ferrolb's responder does): those for `from`
/// only (`arp saddr ip`), or every one.
fn drop_arp_replies_leaving(ns: &str, device: &str, from: Option<&str>) {
    let chain = format!("{{ type filter hook egress device {device} priority 0; }}");
    let mut rule = vec![
        "nft",
        "add",
        "rule",
        "netdev",
        "fault",
        "out",
        "arp",
        "operation",
        "reply",
    ];
    if let Some(ip) = from {
        rule.extend(["arp", "saddr", "ip", ip]);
    }
    rule.push("drop");
    for args in [
        vec!["nft", "add", "table", "netdev", "fault"],
        vec!["nft", "add", "chain", "netdev", "fault", "out", &chain],
        rule,
    ] {
        let out = in_ns(ns, &args);
        assert!(
            out.status.success(),
            "{args:?} in {ns}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The owner's speaker is alive (gossip says so) but its ARP replies for the Service's address
/// never leave its node. The
/// node next in line finds it silent, a Warning on the Service names it, the owner withdraws
/// and the next node answers: within 10 s, and never two nodes for one probe. (With answer
/// checks off, as before them, nobody answers for as long as the fault lasts.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_whose_arp_replies_are_dropped_is_replaced_with_a_warning() {
    let test = "an_owner_whose_arp_replies_are_dropped_is_replaced_with_a_warning";
    if !netns::environment_ready_with(test, &["nft"]) {
        return;
    }
    let Some(mut cluster) = setup(test).await else {
        return;
    };
    let (ip, order) = answered_service(&cluster, "web").await;
    let (owner, next) = (order[0], order[1]);
    let owner_name = cluster.lan.nodes[owner].name.clone();
    let log = cluster.lan.start_prober(&[&ip], 90);
    std::thread::sleep(Duration::from_secs(1));
    let owner_ns = cluster.lan.nodes[owner].ns.clone();
    // Its replies for the Service's address: a wedged responder, an anti-spoofing filter. (All
    // of its ARP replies would also starve the others' neighbour entries for its gossip
    // address: then SWIM declares it down, a crash as far as the election goes.)
    drop_arp_replies_leaving(&owner_ns, "eth0", Some(&ip));
    let faulted = Instant::now();
    let lan = &cluster.lan;
    let want = lan.nodes[next].mac.clone();
    // (arping also hears the replies to the prober's requests: every reply counts.)
    let moved = wait_for(SETTLE, || {
        let macs = lan.arping(&ip, 1);
        (!macs.is_empty() && macs.iter().all(|m| *m == want)).then(Instant::now)
    });
    let moved = moved.unwrap_or_else(|| {
        panic!(
            "{ip}: the next node ({want}) never answered alone after the owner went silent; \
             last replies {:?}\n{}",
            lan.arping(&ip, 2),
            speaker_lan::speaker_logs(lan)
        )
    });
    std::thread::sleep(Duration::from_secs(2));
    let tally = lan.finish_prober(&log, 1).remove(0);
    eprintln!(
        "silent owner replaced {:?} after the fault (arping); prober: {tally:?}",
        moved - faulted
    );
    // The prober's longest silence (10 ms slots) is the fault's: the owner went silent at
    // once, and the next node answered when it took over.
    let silence = Duration::from_millis(10 * tally.longest_unanswered);
    assert!(
        silence <= REPLACED_WITHIN,
        "{ip} unanswered for {silence:?}, over {REPLACED_WITHIN:?}: {tally:?}"
    );
    assert_eq!(tally.double, 0, "two nodes answered one probe: {tally:?}");
    assert!(
        tally
            .macs
            .iter()
            .all(|m| *m == lan.nodes[owner].mac || *m == want),
        "{tally:?}"
    );
    let warning = wait_until("the OwnerNotAnswering Warning", SETTLE, || async {
        events_about(&cluster.client, APPS, "Service", "web")
            .await
            .into_iter()
            .find(|e| e.reason == "OwnerNotAnswering")
    })
    .await;
    assert_eq!(warning.type_, "Warning");
    assert!(
        warning
            .note
            .contains(&format!("node {owner_name} announces {ip}")),
        "{warning:?}"
    );
    let owner_log = cluster.lan.log(owner);
    assert!(
        owner_log.contains("does not hear this node's answers: withdrawing")
            && owner_log.contains("reopening every packet socket"),
        "the owner neither withdrew nor healed:\n{owner_log}"
    );
}

/// Every ARP reply to the checker (the node next in line) is dropped before it arrives: it
/// hears nobody, not even the other nodes' kernels, so it reports itself (gauge, Warning) and
/// moves nothing: the owner keeps answering alone throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checker_that_hears_nobody_moves_nothing() {
    let test = "a_checker_that_hears_nobody_moves_nothing";
    if !netns::environment_ready_with(test, &["nft"]) {
        return;
    }
    let Some(mut cluster) = setup(test).await else {
        return;
    };
    let (ip, order) = answered_service(&cluster, "web").await;
    let (owner, checker) = (order[0], order[1]);
    let checker_name = cluster.lan.nodes[checker].name.clone();
    let log = cluster.lan.start_prober(&[&ip], 90);
    // The bridge port toward the checker: its egress is the checker's ingress.
    let bridge = cluster.lan.bridge_ns.clone();
    drop_arp_replies_leaving(&bridge, &format!("v{}", checker + 1), None);
    let lan = &cluster.lan;
    std::thread::sleep(Duration::from_secs(1));
    let deaf = wait_for(Duration::from_secs(20), || {
        (lan.metric(checker, "ferrolb_speaker_answer_checks_deaf") == Some(1.0)).then_some(())
    });
    assert!(
        deaf.is_some(),
        "the checker never said it hears nobody:\n{}",
        lan.log(checker)
    );
    // Longer than a silent owner takes to be replaced.
    std::thread::sleep(REPLACED_WITHIN);
    let tally = lan.finish_prober(&log, 1).remove(0);
    eprintln!("deaf checker; prober: {tally:?}");
    // Nothing moved: only the owner ever answered, and never a silence like a hand-over's
    // (a slot or two can go unanswered on a loaded machine).
    assert_eq!(tally.macs, [lan.nodes[owner].mac.clone()], "{tally:?}");
    assert!(tally.longest_unanswered <= 20, "{tally:?}");
    assert_eq!(
        lan.metric(checker, "ferrolb_speaker_silent_owner_addresses"),
        Some(0.0)
    );
    let warning = wait_until("the AnswerChecksDeaf Warning", SETTLE, || async {
        events_about(&cluster.client, "default", "Node", &checker_name)
            .await
            .into_iter()
            .find(|e| e.reason == "AnswerChecksDeaf")
    })
    .await;
    assert!(warning.note.contains("moves nothing"), "{warning:?}");
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), APPS);
    assert!(
        !events_about(&cluster.client, APPS, "Service", "web")
            .await
            .iter()
            .any(|e| e.reason == "OwnerNotAnswering"),
        "{:?}",
        services.get("web").await.ok().map(|s| s.metadata.name)
    );
}
