//! The Kubernetes speaker over BGP, end to end: the speaker suites' cluster
//! (`tests/e2e/speaker_lan.rs`: a real kube-apiserver on the LAN, the real controller, three real
//! `ferrolb speaker`s in node namespaces) reading MetalLB's custom resources
//! (`--config-source crds`: an IPAddressPool, a BGPPeer, a BGPAdvertisement with communities
//! and a localPref, a Community alias), and FRR's bgpd (`tests/bgp_routers`) on the same LAN at
//! 192.0.2.1, started before the speakers, passive towards the three nodes (iBGP, multipath).
//! The tests read FRR's RIB through vtysh's JSON:
//!
//! - a `Cluster` Service with a ready endpoint is held with all three nodes as next hops and the
//!   advertisement's attributes, each node writes a ServiceBGPStatus naming the peer, and
//!   deleting the Service withdraws it;
//! - an `externalTrafficPolicy: Local` Service is announced only by nodes with a ready endpoint,
//!   and follows them;
//! - each node records a `nodeAssigned` event (protocol "bgp") for the Service it announces, and
//!   a `bgpSessionDown` Warning on the BGPPeer when the router restarts;
//! - SIGTERM of one speaker removes its next hop (Cease, with the shutdown communication), the
//!   other two stay;
//! - `ferrolb plan --nodes` over the cluster's own objects lists the same routes FRR learnt.
//!
//! Skipped when `KUBEBUILDER_ASSETS` is unset; with it set, missing root, tools or FRR fail the
//! test when `CI` is set and skip it otherwise.

#[path = "e2e/bgp_lan.rs"]
mod bgp_lan;
mod bgp_routers;
mod e2e;
mod netns;
#[path = "e2e/speaker_lan.rs"]
mod speaker_lan;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kube::api::{DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};
use serde_json::json;

use bgp_lan::{
    cluster_with_routers, hops, routed_pool, routed_service, services, set, tail, wait_for_route,
};
use bgp_routers::{Frr, Held, Rib, frr_conf};
use e2e::api::{delete_service, events_about};
use e2e::wait::{PATIENCE, wait_for};
use e2e::{APPS, NAMESPACE};
use speaker_lan::{Cluster, plan_table, set_endpoints, speaker_logs};

const ROUTER: &str = "192.0.2.1";
const AS: u32 = 64512;
/// The BGPPeer's name: what plan's PEER column and the ServiceBGPStatus objects say.
const PEER: &str = "frr";

/// What a user applies: a pool handed out over BGP, FRR as the peer (iBGP, so LOCAL_PREF is
/// sent), an advertisement with a localPref and communities (one through a Community alias, one
/// large), and the alias.
fn objects() -> String {
    format!(
        "{pool}---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: {PEER}, namespace: {NAMESPACE}}}
spec: {{myASN: {AS}, peerASN: {AS}, peerAddress: {ROUTER}, holdTime: 90s}}
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {{name: aliases, namespace: {NAMESPACE}}}
spec:
  communities:
  - {{name: web-tier, value: '65000:8'}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: routed, namespace: {NAMESPACE}}}
spec:
  ipAddressPools: [routed]
  localPref: 150
  communities: ['65000:7', web-tier, 'large:64512:1:2']
",
        pool = routed_pool()
    )
}

/// The cluster (MetalLB objects, crds source) with FRR started on its LAN before the speakers;
/// `None` when the test is skipped.
async fn bgp_cluster(test: &str) -> Option<(Cluster, Frr)> {
    cluster_with_routers(test, &objects(), &[], |lan| {
        let (rt, _) = lan.add_host("rt", "v8", ROUTER, "2001:db8::1");
        let neighbors: Vec<(&str, u32, &str)> =
            lan.nodes.iter().map(|n| (n.ip4.as_str(), AS, "")).collect();
        let conf = frr_conf(AS, ROUTER, &neighbors, "ipv4");
        Frr::start(lan, &rt, "frr", &conf)
    })
    .await
}

/// FRR's RIB with each next hop named by its node.
fn rib_by_node(cluster: &Cluster, rib: &Rib) -> BTreeMap<String, BTreeSet<String>> {
    rib.iter()
        .map(|(prefix, held)| {
            let nodes = held
                .next_hops
                .iter()
                .map(|hop| {
                    cluster
                        .lan
                        .nodes
                        .iter()
                        .find(|n| &n.ip4 == hop)
                        .map_or_else(|| hop.clone(), |n| n.name.clone())
                })
                .collect();
            (prefix.clone(), nodes)
        })
        .collect()
}

fn context(cluster: &Cluster, frr: &Frr) -> String {
    format!(
        "{}{}",
        speaker_logs(&cluster.lan),
        tail("frr", &frr.log(), 30)
    )
}

/// Waits until FRR holds `prefix` with exactly `want` as next hops (`None`: not at all);
/// returns FRR's whole RIB then.
async fn wait_for_hops(
    cluster: &Cluster,
    frr: &Frr,
    prefix: &str,
    want: Option<BTreeSet<String>>,
) -> Rib {
    let rib = || frr.rib("ipv4");
    wait_for_route(cluster, "FRR", rib, prefix, want, || {
        tail("frr", &frr.log(), 30)
    })
    .await
}

fn bgp_status_api(client: &Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", "v1beta1", "ServiceBGPStatus"),
        "servicebgpstatuses",
    );
    Api::all_with(client.clone(), &resource)
}

/// The ServiceBGPStatus objects of `apps/<service>`: node (its label, which `status.node`
/// must match) -> peers; `None` while one has no status yet (or the list fails).
async fn bgp_statuses(client: &Client, service: &str) -> Option<BTreeMap<String, Vec<String>>> {
    let list = bgp_status_api(client)
        .list(&ListParams::default())
        .await
        .ok()?;
    let mut seen = BTreeMap::new();
    for o in list.items {
        let labels = o.metadata.labels.clone().unwrap_or_default();
        let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
        if label("metallb.io/service-name") != service
            || label("metallb.io/service-namespace") != APPS
        {
            continue;
        }
        let status = &o.data["status"];
        // Created first, its status written next: between the two, not settled yet.
        status["node"].as_str()?;
        let node = label("metallb.io/node");
        assert_eq!(status["node"].as_str(), Some(node.as_str()), "{o:?}");
        assert_eq!(status["serviceName"].as_str(), Some(service), "{o:?}");
        let peers = status["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect();
        seen.insert(node, peers);
    }
    Some(seen)
}

async fn wait_for_bgp_statuses(cluster: &Cluster, service: &str, nodes: &[usize]) {
    let want: BTreeMap<String, Vec<String>> = nodes
        .iter()
        .map(|&i| (cluster.lan.nodes[i].name.clone(), vec![PEER.to_owned()]))
        .collect();
    let client = &cluster.client;
    wait_for(
        &format!("the ServiceBGPStatus objects of {service} to be {want:?}"),
        PATIENCE,
        || {
            let want = want.clone();
            async move { (bgp_statuses(client, service).await? == want).then_some(()) }
        },
    )
    .await;
}

/// Waits until each of `nodes` recorded an event with `reason` about `kind`/`name` in
/// `namespace` whose note has `says`.
async fn wait_for_events(
    cluster: &Cluster,
    (namespace, kind, name): (&str, &str, &str),
    reason: &str,
    says: &str,
    nodes: &[usize],
) {
    let want: BTreeSet<String> = nodes
        .iter()
        .map(|&i| cluster.lan.nodes[i].name.clone())
        .collect();
    let client = &cluster.client;
    wait_for(
        &format!("{reason} events saying {says:?} about {kind} {name} from {want:?}"),
        PATIENCE,
        || {
            let want = want.clone();
            async move {
                let seen: BTreeSet<String> = events_about(client, namespace, kind, name)
                    .await
                    .into_iter()
                    .filter(|e| e.reason == reason && e.note.contains(says))
                    .map(|e| e.reporting_instance)
                    .collect();
                (seen == want).then_some(())
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_service_reaches_frr_from_every_node_with_its_attributes_until_deleted() {
    let test = "a_cluster_service_reaches_frr_from_every_node_with_its_attributes_until_deleted";
    let Some((cluster, frr)) = bgp_cluster(test).await else {
        return;
    };
    // One ready endpoint, on node-b: with the Cluster policy every node announces.
    let ip = routed_service(&cluster, "web", json!({}), &[(1, true)]).await;
    let prefix = format!("{ip}/32");
    let all = hops(&cluster, &[0, 1, 2]);
    wait_for_hops(&cluster, &frr, &prefix, Some(all.clone())).await;
    // Every path carries the advertisement's attributes, the alias resolved.
    for hop in &all {
        let held = frr.attributes("ipv4", &prefix, hop);
        let want = Held {
            next_hops: set(&[hop]),
            communities: set(&["65000:7", "65000:8"]),
            large_communities: set(&["64512:1:2"]),
            local_pref: Some(150),
        };
        assert_eq!(
            held,
            want,
            "{hop}: {}",
            frr.vtysh(&format!("show bgp ipv4 unicast {prefix} json"))
        );
    }
    // FRR uses all three (multipath), not just the best.
    let summary = frr.vtysh(&format!("show bgp ipv4 unicast {prefix}"));
    assert_eq!(summary.matches("multipath").count(), 3, "{summary}");
    // Each node says which peer it hands the Service to, and that it announces it.
    wait_for_bgp_statuses(&cluster, "web", &[0, 1, 2]).await;
    let web = (APPS, "Service", "web");
    wait_for_events(
        &cluster,
        web,
        "nodeAssigned",
        "protocol \"bgp\"",
        &[0, 1, 2],
    )
    .await;

    // Deleted: withdrawn by every node, and the status objects go.
    delete_service(&services(&cluster), "web").await;
    let rib = wait_for_hops(&cluster, &frr, &prefix, None).await;
    assert!(rib.is_empty(), "nothing else was announced: {rib:#?}");
    wait_for_bgp_statuses(&cluster, "web", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_service_is_announced_only_by_nodes_with_a_ready_endpoint() {
    let test = "a_local_service_is_announced_only_by_nodes_with_a_ready_endpoint";
    let Some((cluster, frr)) = bgp_cluster(test).await else {
        return;
    };
    let local = json!({ "spec": { "externalTrafficPolicy": "Local" } });
    // node-a holds a not-ready endpoint, node-b a ready one, node-c none.
    let ip = routed_service(&cluster, "local", local, &[(0, false), (1, true)]).await;
    let prefix = format!("{ip}/32");
    wait_for_hops(&cluster, &frr, &prefix, Some(hops(&cluster, &[1]))).await;
    wait_for_bgp_statuses(&cluster, "local", &[1]).await;

    // The ready endpoints move to node-a and node-c: the next hops follow.
    let names: Vec<String> = cluster.lan.nodes.iter().map(|n| n.name.clone()).collect();
    set_endpoints(
        &cluster.client,
        "local",
        &[(&names[0], true), (&names[1], false), (&names[2], true)],
    )
    .await;
    wait_for_hops(&cluster, &frr, &prefix, Some(hops(&cluster, &[0, 2]))).await;
    wait_for_bgp_statuses(&cluster, "local", &[0, 2]).await;

    // No ready endpoint anywhere: nobody announces it.
    set_endpoints(&cluster.client, "local", &[(&names[0], false)]).await;
    wait_for_hops(&cluster, &frr, &prefix, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_of_a_speaker_removes_only_its_next_hop_with_a_cease() {
    let test = "sigterm_of_a_speaker_removes_only_its_next_hop_with_a_cease";
    let Some((mut cluster, frr)) = bgp_cluster(test).await else {
        return;
    };
    let ip = routed_service(&cluster, "web", json!({}), &[(2, true)]).await;
    let prefix = format!("{ip}/32");
    wait_for_hops(&cluster, &frr, &prefix, Some(hops(&cluster, &[0, 1, 2]))).await;

    // The router restarts: every node's session goes down (a Warning on the BGPPeer from
    // each) and comes back with the route.
    frr.restart(&mut cluster.lan);
    let peer = (NAMESPACE, "BGPPeer", PEER);
    wait_for_events(
        &cluster,
        peer,
        "bgpSessionDown",
        "not established",
        &[0, 1, 2],
    )
    .await;
    wait_for_hops(&cluster, &frr, &prefix, Some(hops(&cluster, &[0, 1, 2]))).await;

    // The hold time is 90 s, so the path going well before it is the Cease's doing; FRR's view
    // of the session says so too.
    let started = Instant::now();
    cluster.lan.signal(0, "TERM");
    wait_for_hops(&cluster, &frr, &prefix, Some(hops(&cluster, &[1, 2]))).await;
    let took = started.elapsed();
    eprintln!("SIGTERM to node-a's next hop gone from FRR's RIB: {took:?}");
    assert!(took < Duration::from_secs(60), "{took:?}: not the Cease");
    let a = cluster.lan.nodes[0].ip4.clone();
    let neighbor = frr.neighbor(&a).to_string();
    assert!(
        neighbor.contains("ferrolb speaker shutting down"),
        "FRR did not get the shutdown communication: {neighbor}"
    );
    assert!(
        cluster
            .lan
            .log(0)
            .contains("shutting down: telling the BGP peers"),
        "{}",
        cluster.lan.log(0)
    );
    // The others keep announcing, steadily.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rib = frr.rib("ipv4");
    assert_eq!(
        rib.get(&prefix).map(|h| h.next_hops.clone()),
        Some(hops(&cluster, &[1, 2])),
        "{rib:#?}\n{}",
        context(&cluster, &frr)
    );
}

/// The rows of plan's BGP ROUTES table, columns split on runs of spaces.
fn plan_routes(table: &str) -> Vec<Vec<String>> {
    table
        .split("BGP ROUTES\n")
        .nth(1)
        .unwrap_or_else(|| panic!("a BGP ROUTES table in\n{table}"))
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// `ferrolb plan --nodes` over what `kubectl get` prints of the cluster: its config objects,
/// Services and EndpointSlices, Nodes (speaker_lan's [`plan_table`]).
fn plan(cluster: &Cluster) -> String {
    let kinds = "ipaddresspools,bgppeers,bgpadvertisements,communities";
    let config = cluster
        .plane
        .kubectl(&["get", kinds, "-n", NAMESPACE, "-o", "yaml"]);
    plan_table(cluster, &config, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_lists_the_routes_frr_learnt_from_the_live_speakers() {
    let test = "plan_lists_the_routes_frr_learnt_from_the_live_speakers";
    let Some((cluster, frr)) = bgp_cluster(test).await else {
        return;
    };
    let local = json!({ "spec": { "externalTrafficPolicy": "Local" } });
    // A Cluster Service (every node), a Local one (node-c only), a Local one whose only
    // endpoint is not ready and a Cluster one without endpoints (nobody).
    let web = routed_service(&cluster, "web", json!({}), &[(0, true)]).await;
    let only_c = routed_service(&cluster, "only-c", local.clone(), &[(1, false), (2, true)]).await;
    let idle = routed_service(&cluster, "idle", local, &[(0, false)]).await;
    let empty = routed_service(&cluster, "empty", json!({}), &[]).await;
    wait_for_hops(
        &cluster,
        &frr,
        &format!("{web}/32"),
        Some(hops(&cluster, &[0, 1, 2])),
    )
    .await;
    let rib = wait_for_hops(
        &cluster,
        &frr,
        &format!("{only_c}/32"),
        Some(hops(&cluster, &[2])),
    )
    .await;
    for ip in [&idle, &empty] {
        assert!(!rib.contains_key(&format!("{ip}/32")), "{ip}: {rib:#?}");
    }

    let table = plan(&cluster);
    eprintln!("{table}");
    let rows = plan_routes(&table);
    // plan: prefix -> nodes (every row to the one peer, with the advertisement's local pref).
    let mut planned: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in &rows {
        assert_eq!(row[1], PEER, "{table}");
        assert_eq!(row[3], "150", "{table}");
        // What FRR holds from that node carries what plan says it sends.
        let node = cluster.lan.nodes.iter().find(|n| n.name == row[0]);
        let hop = node.map(|n| n.ip4.clone()).unwrap_or_default();
        let held = frr.attributes("ipv4", &row[2], &hop);
        let mut sent: BTreeSet<String> = held.communities.clone();
        sent.extend(held.large_communities.iter().map(|c| format!("large:{c}")));
        let planned_communities: BTreeSet<String> = row[4].split(',').map(str::to_owned).collect();
        assert_eq!(planned_communities, sent, "{row:?} vs FRR {held:?}");
        assert_eq!(
            held.local_pref.map(|p| p.to_string()).as_deref(),
            Some("150"),
            "{held:?}"
        );
        planned
            .entry(row[2].clone())
            .or_default()
            .insert(row[0].clone());
    }
    let learnt = rib_by_node(&cluster, &frr.rib("ipv4"));
    assert_eq!(
        planned,
        learnt,
        "plan (left) and FRR (right) disagree\n{table}\n{}",
        context(&cluster, &frr)
    );
}
