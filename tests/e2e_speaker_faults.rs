//! `ferrolb speaker` in Kubernetes mode under faults, end to end: the cluster of
//! `tests/e2e_speaker.rs` (real kube-apiserver + etcd in a namespace on the test LAN, the real
//! controller, real speakers in the node namespaces, a client namespace; see
//! `tests/e2e/speaker_lan.rs`), with one fault injected per test: Services sharing an address
//! across families, the API server killed and restarted, a speaker alone among Ready Nodes, a
//! node name longer than a label value and its ServiceL2Status deleted by hand, a Node tainted
//! out-of-service with gossip on, and with gossip off under a dead speaker.
//!
//! Skipped, with a message, when `KUBEBUILDER_ASSETS` is unset (even in CI). With it set, missing
//! root or tools fail the test when `CI` is set, and skip it otherwise.

mod e2e;
mod netns;
#[path = "e2e/speaker_lan.rs"]
mod speaker_lan;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use e2e::APPS;
use e2e::api::{create_service, ingress_ips, lb_service, wait_for_ips};
use e2e::wait::{PATIENCE, wait_for as wait_until};
use netns::{Lan, distinct, ranking, wait_for};
use speaker_lan::{
    POOL, SETTLE, Setup, answered_service, assert_nobody_answers, assert_only_answerer, ranked,
    set_endpoints, setup, setup_with,
};

/// Both families: the IPv6 range stays clear of the nodes' own addresses (2001:db8::11..13).
const DUAL_POOL: &str = "address-pools:
- name: lan
  protocol: layer2
  addresses:
  - 192.0.2.200-192.0.2.207
  - 2001:db8::200-2001:db8::20f
";

/// Waits (generously) until node `owner` alone answers ARP for `ip`, within `bound`; the
/// caller's promise decides the bound.
fn wait_answered_by(lan: &Lan, ip: &str, owner: usize, bound: Duration) -> Option<()> {
    let want = &lan.nodes[owner].mac;
    wait_for(bound, || {
        let macs = lan.arping(ip, 1);
        (!macs.is_empty() && macs.iter().all(|m| m == want)).then_some(())
    })
}

/// A RequireDualStack Service and an IPv6-only one share the IPv6 address (same
/// `allow-shared-ip` key, different ports). The addresses are chosen so that each Service's own
/// first IP ranks a different node first: the old per-Service election gave the shared IPv6 two
/// answerers (both Services' owners). The two are one address group, ranked by the lowest of its
/// members' first IPs (docs/architecture.md, "Election rules"): the dual-stack Service's IPv4.
/// Every neighbour advertisement for the IPv6 must come from that IPv4's first node, which also
/// answers the IPv4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_dual_stack_address_is_answered_by_exactly_one_node() {
    let test = "shared_dual_stack_address_is_answered_by_exactly_one_node";
    let setup = Setup {
        pool: DUAL_POOL,
        ..Setup::default()
    };
    let Some(cluster) = setup_with(test, setup).await else {
        return;
    };
    let lan = &cluster.lan;
    let all = [0, 1, 2];
    let v4 = "192.0.2.200";
    let v4_owner = ranked(lan, v4, &all)[0];
    let v6 = (0x200..=0x20f)
        .map(|n| format!("2001:db8::{n:x}"))
        .find(|ip| ranked(lan, ip, &all)[0] != v4_owner)
        .expect("some address of the range ranks another node first");

    let services: Api<Service> = Api::namespaced(cluster.client.clone(), APPS);
    let somewhere = lan.nodes[1].name.clone();
    set_endpoints(&cluster.client, "dual", &[(&somewhere, true)]).await;
    set_endpoints(&cluster.client, "v6only", &[(&somewhere, true)]).await;
    let dual = json!({
        "metadata": { "annotations": {
            "metallb.io/allow-shared-ip": "shared-v6",
            "metallb.io/loadBalancerIPs": format!("{v4},{v6}"),
        } },
        "spec": { "ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"] },
    });
    create_service(&services, &lb_service("dual", dual)).await;
    let v6only = json!({
        "metadata": { "annotations": {
            "metallb.io/allow-shared-ip": "shared-v6",
            "metallb.io/loadBalancerIPs": v6,
        } },
        "spec": {
            "ipFamilyPolicy": "SingleStack",
            "ipFamilies": ["IPv6"],
            "ports": [{ "name": "https", "protocol": "TCP", "port": 443, "targetPort": 8443 }],
        },
    });
    create_service(&services, &lb_service("v6only", v6only)).await;
    // Each Service's own first IP: the dual-stack one's is the IPv4, whose first node is not the
    // IPv6's.
    assert_eq!(wait_for_ips(&services, "dual").await, [v4, v6.as_str()]);
    assert_eq!(wait_for_ips(&services, "v6only").await, [v6.as_str()]);

    // The group's owner: the first node for the lowest first IP of its members (any IPv4 ranks
    // below any IPv6), not the IPv6's own first node.
    let owner = v4_owner;
    let owner_mac = lan.nodes[owner].mac.clone();
    // Settled: the owner alone answers a solicitation (the speakers may still be placing the
    // new Services a moment after the status appears).
    let settled = wait_for(SETTLE, || {
        let macs = lan.ndisc6(&v6);
        (!macs.is_empty() && macs.iter().all(|m| *m == owner_mac)).then_some(())
    });
    assert!(
        settled.is_some(),
        "{v6}: never advertised by {} ({owner_mac}) alone, the first node for {v4}; last: {:?}",
        lan.nodes[owner].name,
        lan.ndisc6(&v6)
    );
    // Then every advertisement, over many solicitations, from that one MAC.
    let mut replies = Vec::new();
    for _ in 0..15 {
        let macs = lan.ndisc6(&v6);
        assert!(!macs.is_empty(), "{v6}: a solicitation went unanswered");
        replies.extend(macs);
    }
    assert_eq!(
        distinct(&replies).into_iter().collect::<Vec<_>>(),
        [owner_mac],
        "{v6}: advertised by more than one node ({} replies)",
        replies.len()
    );
    assert_only_answerer(lan, v4, owner);
}

/// The API server is SIGKILLed for 20 s and restarted (every watch then gets "too old resource
/// version"). A Service created right after it is back gets its IP and is answered within 5 s of
/// its status showing it (kube-runtime's default watch backoff, grown to 30 s by then, kept the
/// speakers deaf for up to a minute). A Service from before is answered by its owner, and nobody
/// else, throughout: probed from before the kill until after the new Service is answered, and
/// never withdrawn (no speaker logs losing or taking it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_api_server_restart_a_new_service_is_answered_within_seconds() {
    let test = "after_an_api_server_restart_a_new_service_is_answered_within_seconds";
    let Some(mut cluster) = setup(test).await else {
        return;
    };
    let all = [0, 1, 2];
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), APPS);
    let somewhere = cluster.lan.nodes[0].name.clone();
    set_endpoints(&cluster.client, "before", &[(&somewhere, true)]).await;
    create_service(&services, &lb_service("before", json!({}))).await;
    let before = wait_for_ips(&services, "before").await[0].clone();
    let before_owner = ranked(&cluster.lan, &before, &all)[0];
    assert_only_answerer(&cluster.lan, &before, before_owner);

    // The prober is answered before the kill: it probes from before the outage.
    let requests = format!("ferrolb_layer2_requests_received{{ip=\"{before}\"}}");
    let asked = cluster.lan.metric(before_owner, &requests).unwrap_or(0.0);
    let probes = cluster.lan.start_prober(&[&before], 300);
    let probing = wait_for(SETTLE, || {
        let now = cluster.lan.metric(before_owner, &requests)?;
        (now >= asked + 10.0).then_some(())
    });
    assert!(
        probing.is_some(),
        "the prober's requests never reached {before}'s owner"
    );
    let log_from: Vec<usize> = all.iter().map(|&i| cluster.lan.log(i).len()).collect();
    cluster.plane.kill_apiserver();
    tokio::time::sleep(Duration::from_secs(20)).await;
    cluster.plane.restart_apiserver().await;

    let client = cluster.plane.client().await;
    let services: Api<Service> = Api::namespaced(client.clone(), APPS);
    set_endpoints(&client, "after", &[(&somewhere, true)]).await;
    create_service(&services, &lb_service("after", json!({}))).await;
    // The controller's side has its own test (tests/e2e_controller_faults.rs); here a generous
    // wait, so a slow controller does not hide what the speakers do.
    let after = wait_until(
        "after to get an EXTERNAL-IP",
        Duration::from_secs(30),
        || {
            let services = services.clone();
            async move {
                let ips = ingress_ips(&services.get("after").await.ok()?);
                ips.first().cloned()
            }
        },
    )
    .await;
    assert_ne!(after, before);
    let after_owner = ranked(&cluster.lan, &after, &all)[0];
    let lan = &cluster.lan;
    let answered = wait_answered_by(lan, &after, after_owner, Duration::from_secs(5));
    assert!(
        answered.is_some(),
        "{after}: not answered by {} alone within 5 s of its status showing it; now: {:?}",
        lan.nodes[after_owner].name,
        lan.arping(&after, 2)
    );

    // Still probing now (it prints its tallies only when it ends): it ran through the outage.
    let tally = lan.finish_prober(&probes, 1).remove(0);
    // The figures (the longest silence is 53 ms on an idle machine), not asserted: how long a
    // reply takes depends on the machine's load; who answered does not.
    eprintln!("{before} through the outage: {tally:?}");
    assert!(tally.unanswered < tally.probes, "{tally:?}");
    assert_eq!(
        tally.macs,
        [lan.nodes[before_owner].mac.clone()],
        "{before}: answered by another node during the outage: {tally:?}"
    );
    // Never withdrawn: the owner did not let go of it, and nobody else took it.
    for i in all {
        let log = lan.log(i);
        let moved: Vec<&str> = log[log_from[i]..]
            .lines()
            .filter(|l| l.contains("ownership") && l.contains(before.as_str()))
            .collect();
        assert!(
            moved.is_empty(),
            "{before} changed hands on {} during the outage: {moved:#?}",
            lan.nodes[i].name
        );
    }
    cluster.controller.assert_running();
    for i in all {
        assert!(cluster.lan.running(i), "speaker {i} exited");
    }
}

/// Three Ready Nodes, but a speaker (and its Pod, as with a `nodeSelector`) on only one: gossip
/// is on, yet nobody else is there to join. It must elect alone: answer for a Service once its
/// status shows the IP, alone, and report ready. (Counting Nodes instead of speakers, it waited
/// for a join that never came: no answer, `/readyz` 503.) How soon it answers is not asserted: a
/// bound would fail on a loaded machine, and the failure it guards against is an answer never
/// coming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_speaker_among_ready_nodes_answers_and_is_ready() {
    let test = "a_lone_speaker_among_ready_nodes_answers_and_is_ready";
    // The first Service gets the pool's lowest address; the lone speaker runs on the node that
    // ranks last for it, so it cannot be answering because it would have won anyway.
    let ip = "192.0.2.200";
    let names = ["node-a", "node-b", "node-c"]; // the LAN's nodes, in order
    let last = ranking(ip, &names)[2].clone();
    let lone = names.iter().position(|n| *n == last).unwrap();
    let speakers = [lone];
    let setup = Setup {
        pool: POOL,
        speakers: &speakers,
        ..Setup::default()
    };
    let Some(cluster) = setup_with(test, setup).await else {
        return;
    };
    let lan = &cluster.lan;
    assert_eq!(
        lan.http_get(lone, "/readyz").0,
        200,
        "the lone speaker is ready"
    );
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), APPS);
    let elsewhere = lan.nodes[(lone + 1) % 3].name.clone();
    set_endpoints(&cluster.client, "web", &[(&elsewhere, true)]).await;
    create_service(&services, &lb_service("web", json!({}))).await;
    assert_eq!(wait_for_ips(&services, "web").await, [ip]);
    assert_only_answerer(lan, ip, lone);
    assert_eq!(lan.http_get(lone, "/readyz").0, 200, "still ready");
}

/// The `ServiceL2Status` objects of `apps/web`, as (name, `metallb.io/node` label, `status.node`).
async fn l2_statuses_of_web(client: &kube::Client) -> Vec<(String, String, String)> {
    use kube::api::{DynamicObject, ListParams};
    use kube::core::{ApiResource, GroupVersionKind};
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", "v1beta1", "ServiceL2Status"),
        "servicel2statuses",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), e2e::NAMESPACE, &resource);
    let Ok(list) = api.list(&ListParams::default()).await else {
        return Vec::new();
    };
    list.items
        .into_iter()
        .filter_map(|o| {
            let labels = o.metadata.labels.clone().unwrap_or_default();
            (labels.get("metallb.io/service-name").map(String::as_str) == Some("web")).then(|| {
                (
                    o.metadata.name.clone().unwrap_or_default(),
                    labels.get("metallb.io/node").cloned().unwrap_or_default(),
                    o.data["status"]["node"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
        })
        .collect()
}

/// A speaker on a node whose name is longer than a label value may be (Kubernetes allows 253
/// characters in a node name, 63 in a label value) still gets its Service's `ServiceL2Status`:
/// labelled with a value the API server accepts, the exact name in `status.node`. (Labelled with
/// the whole name, every create was refused and the object never existed.) Deleted by hand, the
/// object is made again by its speaker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_named_node_keeps_its_service_l2_status_even_when_deleted_by_hand() {
    let test = "a_long_named_node_keeps_its_service_l2_status_even_when_deleted_by_hand";
    let long = format!(
        "{}node-a",
        "rack-17.row-4.hall-b.datacenter-frankfurt-2.compute.internal.".repeat(3)
    );
    assert!(long.len() > 63 && long.len() <= 253);
    let names = [long.as_str(), "node-b", "node-c"];
    let setup = Setup {
        pool: POOL,
        speakers: &[0],
        names: Some(&names),
        ..Setup::default()
    };
    let Some(cluster) = setup_with(test, setup).await else {
        return;
    };
    let client = cluster.client.clone();
    let services: Api<Service> = Api::namespaced(client.clone(), APPS);
    set_endpoints(&client, "web", &[(&long, true)]).await;
    create_service(&services, &lb_service("web", json!({}))).await;
    let ip = wait_for_ips(&services, "web").await;
    assert_only_answerer(&cluster.lan, &ip[0], 0);

    let mine = |seen: &[(String, String, String)]| -> Option<String> {
        match seen {
            [(name, label, node)] if *node == long => {
                assert!(label.len() <= 63 && label.starts_with("rack-17"), "{label}");
                Some(name.clone())
            }
            _ => None,
        }
    };
    let first = wait_until("the long-named node's ServiceL2Status", PATIENCE, || {
        let client = client.clone();
        async move { mine(&l2_statuses_of_web(&client).await) }
    })
    .await;

    // Someone deletes it: its speaker makes it again.
    cluster
        .plane
        .kubectl(&["delete", "servicel2statuses", "-n", e2e::NAMESPACE, &first]);
    let again = wait_until("the ServiceL2Status made again", PATIENCE, || {
        let client = client.clone();
        let first = first.clone();
        async move { mine(&l2_statuses_of_web(&client).await).filter(|name| *name != first) }
    })
    .await;
    assert_ne!(again, first);
}

/// Puts Kubernetes' out-of-service taint on Node `name` (`Some`), or takes every taint off
/// (`None`), as an operator does with `kubectl taint`.
async fn set_out_of_service(client: &kube::Client, name: &str, on: bool) {
    let nodes: Api<Node> = Api::all(client.clone());
    let taints = if on {
        json!([{"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown",
            "effect": "NoExecute"}])
    } else {
        json!(null)
    };
    nodes
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": taints}})),
        )
        .await
        .unwrap_or_else(|e| panic!("taint Node {name}: {e}"));
}

/// Gossip on: the owner's speaker is alive and a member, but its Node gets the out-of-service
/// taint. The owner stops answering and the next node in the ranking answers alone; with the
/// taint gone the ranking gives the address back. (Before, the taint was not read: the owner
/// kept answering.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_service_node_hands_its_addresses_on_with_gossip_on() {
    let test = "an_out_of_service_node_hands_its_addresses_on_with_gossip_on";
    let Some(cluster) = setup(test).await else {
        return;
    };
    let (ip, order) = answered_service(&cluster, "web").await;
    let owner = cluster.lan.nodes[order[0]].name.clone();
    set_out_of_service(&cluster.client, &owner, true).await;
    assert_only_answerer(&cluster.lan, &ip, order[1]);
    set_out_of_service(&cluster.client, &owner, false).await;
    assert_only_answerer(&cluster.lan, &ip, order[0]);
}

/// Gossip off (`--gossip=false`): liveness is the Node's and its speaker Pod's Ready condition,
/// which the test leaves True as a kubelet that died with its node would. The owner's speaker is
/// killed: nobody answers, and nothing moves by itself. The operator taints the Node
/// out-of-service, and the next node in the ranking answers alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_gossip_off_the_out_of_service_taint_moves_a_dead_nodes_addresses() {
    let test = "with_gossip_off_the_out_of_service_taint_moves_a_dead_nodes_addresses";
    let setup = Setup {
        speaker_args: &["--gossip=false"],
        ..Setup::default()
    };
    let Some(mut cluster) = setup_with(test, setup).await else {
        return;
    };
    let (ip, order) = answered_service(&cluster, "web").await;
    cluster.lan.signal(order[0], "KILL");
    assert_nobody_answers(&cluster.lan, &ip);
    let owner = cluster.lan.nodes[order[0]].name.clone();
    set_out_of_service(&cluster.client, &owner, true).await;
    assert_only_answerer(&cluster.lan, &ip, order[1]);
}
