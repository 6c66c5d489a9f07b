//! The Kubernetes speaker over BGP against every router and fault MetalLB users meet, end to
//! end: the speaker suites' cluster (`tests/e2e/speaker_lan.rs`: a real kube-apiserver on the
//! LAN, the real controller, three real `ferrolb speaker`s in node namespaces reading MetalLB's
//! custom resources) with routers (`tests/bgp_routers`) started on the LAN before the speakers.
//! Two clusters, each shared by several scenarios:
//!
//! - `bird_gobgp_and_a_node_selected_frr_...`: BIRD over eBGP (a BGPPeer with another
//!   `peerASN`) and GoBGP over iBGP hold a `Cluster` Service with the three nodes as next hops
//!   and a `Local` one with the nodes that have a ready endpoint; a third BGPPeer (FRR) with
//!   `nodeSelectors` gets sessions, and next hops, from the labelled nodes only, and they follow
//!   the labels.
//! - `md5_from_a_secret_multihop_ipv6_and_a_refused_advertisement`: one BGPPeer's MD5 key comes
//!   from a `kubernetes.io/basic-auth` Secret (wrong key: its sessions go down within the
//!   connect deadline, `ferrolb_bgp_session_up` and the log say so; right again: back), another
//!   peer is an FRR two hops away (`ebgpMultiHop`; one of its neighbors checks the TTL) whose
//!   IPv4 sessions also carry the IPv6 pool (`dualStackAddressFamily`) and whose `bfdProfile`
//!   runs multi-hop BFD with it from every node, a third is an IPv6
//!   session carrying the IPv6 pool; then a BGPAdvertisement that refuses the config (a second
//!   `localPref` for the pool) leaves every session and route as it was while the
//!   ConfigurationStates say Invalid and `ferrolb_config_stale` is 1, a new Service is still
//!   announced under the last good config, and the fixed object applies without a session
//!   reset.
//!
//! The benchmark (`#[ignore]`d) times Services to FRR's RIB and 10 000 Services to FRR and
//! GoBGP (BENCHMARKS.md, "BGP"). Skipped like `tests/e2e_bgp.rs` without `KUBEBUILDER_ASSETS`;
//! with it set, missing root, tools or FRR fail the test when `CI` is set.

#[path = "e2e/bgp_lan.rs"]
mod bgp_lan;
mod bgp_routers;
mod e2e;
mod netns;
/// The benchmark's 10 000 Services, made as the scale measurement makes its own.
#[allow(dead_code)]
#[path = "scale/cluster.rs"]
mod scale_cluster;
#[path = "e2e/speaker_lan.rs"]
mod speaker_lan;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use bgp_lan::{
    cluster_with_routers, cluster_with_routers_on, hops, hops6, label_node, routed_pool,
    routed_service, set, tail, wait_for_route,
};
use bgp_routers::{Bird, Frr, Gobgp, Held, OffBridge, frr_conf, two_hops_away};
use e2e::NAMESPACE;
use e2e::api::{create_service, lb_service};
use e2e::process::memory;
use e2e::wait::{PATIENCE, wait_for};
use speaker_lan::{Cluster, set_endpoints, speaker_logs, start_kube_speaker_with};

/// The nodes' AS (every BGPPeer's `myASN`).
const AS: u32 = 64512;
const BIRD_AS: u32 = 64600;
const FAR_AS: u32 = 64520;
/// The label the `edge` BGPPeer's `nodeSelectors` match.
const EDGE_LABEL: &str = "bgp.example.com/edge";

/// The first cluster's objects: BIRD (eBGP) and GoBGP (iBGP) peers of every node, FRR (iBGP)
/// of the nodes labelled [`EDGE_LABEL`], one advertisement for all.
fn routers_objects() -> String {
    format!(
        "{pool}---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: bird, namespace: {NAMESPACE}}}
spec:
  myASN: {AS}
  peerASN: {BIRD_AS}
  peerAddress: 192.0.2.2
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: gobgp, namespace: {NAMESPACE}}}
spec:
  myASN: {AS}
  peerASN: {AS}
  peerAddress: 192.0.2.3
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: edge, namespace: {NAMESPACE}}}
spec:
  myASN: {AS}
  peerASN: {AS}
  peerAddress: 192.0.2.1
  nodeSelectors:
  - matchLabels:
      {EDGE_LABEL}: \"true\"
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: routed, namespace: {NAMESPACE}}}
spec:
  ipAddressPools: [routed]
  localPref: 250
  communities: ['65000:7', 'large:64512:1:2']
",
        pool = routed_pool()
    )
}

struct ThreeRouters {
    bird: Bird,
    gobgp: Gobgp,
    edge: Frr,
}

fn routers_context(routers: &ThreeRouters) -> String {
    tail("bird", &routers.bird.log(), 20)
        + &tail("gobgp", &routers.gobgp.log(), 20)
        + &tail("frr (edge)", &routers.edge.log(), 20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bird_gobgp_and_a_node_selected_frr_hold_each_service_with_its_nodes() {
    let test = "bird_gobgp_and_a_node_selected_frr_hold_each_service_with_its_nodes";
    let objects = routers_objects();
    let tools = ["bird", "birdc", "gobgpd", "gobgp"];
    let started = cluster_with_routers(test, &objects, &tools, |lan| {
        let nodes: Vec<String> = lan.nodes.iter().map(|n| n.ip4.clone()).collect();
        let bird_ns = lan.add_host("bird", "v7", "192.0.2.2", "2001:db8::2").0;
        let gobgp_ns = lan.add_host("gobgp", "v6", "192.0.2.3", "2001:db8::3").0;
        let rt = lan.add_host("rt", "v8", "192.0.2.1", "2001:db8::1").0;
        let bird_peers: Vec<(&str, u32)> = nodes.iter().map(|a| (a.as_str(), AS)).collect();
        let edge_peers: Vec<(&str, u32, &str)> =
            nodes.iter().map(|a| (a.as_str(), AS, "")).collect();
        ThreeRouters {
            bird: Bird::start(lan, &bird_ns, "192.0.2.2", BIRD_AS, &bird_peers),
            gobgp: Gobgp::start(lan, &gobgp_ns, "192.0.2.3", AS, &bird_peers, "ipv4"),
            edge: Frr::start(
                lan,
                &rt,
                "frr",
                &frr_conf(AS, "192.0.2.1", &edge_peers, "ipv4"),
            ),
        }
    })
    .await;
    let Some((cluster, routers)) = started else {
        return;
    };
    let context = || routers_context(&routers);
    let local = json!({ "spec": { "externalTrafficPolicy": "Local" } });
    // `web` (Cluster) has one ready endpoint, on node-b: every node announces it. `local`
    // (Local) has ready endpoints on node-a and node-c and a not-ready one on node-b.
    let web = routed_service(&cluster, "web", json!({}), &[(1, true)]).await;
    let only = routed_service(
        &cluster,
        "local",
        local,
        &[(0, true), (1, false), (2, true)],
    )
    .await;
    let (web, only) = (format!("{web}/32"), format!("{only}/32"));
    let all = hops(&cluster, &[0, 1, 2]);
    let a_c = hops(&cluster, &[0, 2]);
    for (prefix, want) in [(&web, &all), (&only, &a_c)] {
        let (bird, gobgp) = (|| routers.bird.rib(), || routers.gobgp.rib());
        let want = Some(want.clone());
        wait_for_route(&cluster, "BIRD", bird, prefix, want.clone(), context).await;
        wait_for_route(&cluster, "GoBGP", gobgp, prefix, want, context).await;
    }
    // Nothing else, and the advertisement's attributes: LOCAL_PREF only over iBGP (BIRD shows
    // its own default for an eBGP route).
    let (bird, gobgp) = (routers.bird.rib(), routers.gobgp.rib());
    for (name, rib, local_pref) in [("BIRD", &bird, 100), ("GoBGP", &gobgp, 250)] {
        let prefixes: BTreeSet<&String> = rib.keys().collect();
        assert_eq!(prefixes, [&web, &only].into(), "{name}: {rib:#?}");
        for held in rib.values() {
            assert_eq!(held.communities, set(&["65000:7"]), "{name}: {held:?}");
            assert_eq!(held.large_communities, set(&["64512:1:2"]), "{name}");
            assert_eq!(held.local_pref, Some(local_pref), "{name}: {held:?}");
        }
    }

    // The `edge` peer selects labelled nodes only: none yet, so FRR holds nothing (its
    // neighbors never opened), while BIRD and GoBGP go on.
    let edge = || routers.edge.rib("ipv4");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(edge().is_empty(), "{:#?}\n{}", edge(), context());
    for node in &cluster.lan.nodes {
        assert_ne!(
            routers.edge.state(&node.ip4),
            "Established",
            "{}",
            node.name
        );
    }
    label_node(&cluster, 0, EDGE_LABEL, Some("true")).await;
    label_node(&cluster, 1, EDGE_LABEL, Some("true")).await;
    let a_b = hops(&cluster, &[0, 1]);
    wait_for_route(&cluster, "FRR", edge, &web, Some(a_b), context).await;
    // (`local` has no ready endpoint on node-b.)
    let a = hops(&cluster, &[0]);
    wait_for_route(&cluster, "FRR", edge, &only, Some(a), context).await;
    // node-b loses the label and node-c gets it: node-b's session closes, node-c's opens.
    label_node(&cluster, 1, EDGE_LABEL, None).await;
    label_node(&cluster, 2, EDGE_LABEL, Some("true")).await;
    wait_for_route(&cluster, "FRR", edge, &web, Some(a_c.clone()), context).await;
    let rib = wait_for_route(&cluster, "FRR", edge, &only, Some(a_c.clone()), context).await;
    assert_eq!(rib.len(), 2, "{rib:#?}");
    // node-b said why it left (a Cease with the shutdown communication), not a reset.
    let b = &cluster.lan.nodes[1].ip4;
    wait_for("node-b's session with FRR to close", PATIENCE, || async {
        (routers.edge.state(b) != "Established").then_some(())
    })
    .await;
    let said = routers.edge.neighbor(b).to_string();
    assert!(
        said.contains("peer removed from configuration"),
        "node-b did not tell FRR it left: {said}\n{}",
        speaker_logs(&cluster.lan)
    );
    // The other peers have no nodeSelectors: they keep all three.
    for (name, rib) in [("BIRD", routers.bird.rib()), ("GoBGP", routers.gobgp.rib())] {
        assert_eq!(rib[&web].next_hops, all, "{name}: {rib:#?}");
    }
}

/// The MD5 key of the `frr` BGPPeer, in the Secret it names.
const KEY: &str = "s3cret-md5";

/// The second cluster's objects: an IPv4 and an IPv6 pool; FRR on the LAN as two peers, one
/// over IPv4 with its MD5 key in a basic-auth Secret and one over IPv6; an FRR two hops away
/// (eBGP multihop, with a BFDProfile: multi-hop BFD); one advertisement of both pools.
fn faults_objects() -> String {
    format!(
        "{pool}---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: routed-v6, namespace: {NAMESPACE}}}
spec:
  addresses: ['2001:db8:100::10-2001:db8:100::1f']
---
apiVersion: v1
kind: Secret
metadata: {{name: frr-md5, namespace: {NAMESPACE}}}
type: kubernetes.io/basic-auth
stringData: {{password: {KEY}}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: frr, namespace: {NAMESPACE}}}
spec:
  myASN: {AS}
  peerASN: {AS}
  peerAddress: 192.0.2.1
  passwordSecret: {{name: frr-md5, namespace: {NAMESPACE}}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: frr-v6, namespace: {NAMESPACE}}}
spec:
  myASN: {AS}
  peerASN: {AS}
  peerAddress: 2001:db8::1
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: far, namespace: {NAMESPACE}}}
spec:
  myASN: {AS}
  peerASN: {FAR_AS}
  peerAddress: 203.0.113.1
  ebgpMultiHop: true
  dualStackAddressFamily: true
  bfdProfile: fast
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {{name: fast, namespace: {NAMESPACE}}}
spec: {{receiveInterval: 100, transmitInterval: 100, detectMultiplier: 3}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: routed, namespace: {NAMESPACE}}}
spec:
  ipAddressPools: [routed, routed-v6]
  localPref: 150
  communities: ['65000:7']
",
        pool = routed_pool()
    )
}

/// A second advertisement of the `routed` pool to every peer from every node: with another
/// `localPref` than `routed`'s it refuses the whole config (one prefix, one peer, two local
/// preferences); with the same one it adds its community.
fn premium(local_pref: u32) -> String {
    format!(
        "apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: premium, namespace: {NAMESPACE}}}
spec:
  ipAddressPools: [routed]
  localPref: {local_pref}
  communities: ['65000:42']
"
    )
}

struct FaultRouters {
    frr: Frr,
    far: Frr,
    /// The namespace of `far`, off the bridge.
    _far_ns: OffBridge,
}

fn apply_yaml(cluster: &Cluster, name: &str, yaml: &str) {
    let file = cluster.plane.dir().join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).expect("write the object");
    cluster
        .plane
        .kubectl(&["apply", "-f", &file.display().to_string()]);
}

/// `frr-md5`'s password set to `password` (`stringData`, as `kubectl apply` of the Secret).
async fn set_password(cluster: &Cluster, password: &str) {
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let patch = json!({ "stringData": { "password": password } });
    secrets
        .patch("frr-md5", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .expect("patch the Secret");
}

/// Waits until node `i`'s `sample` is `value`.
async fn wait_metric(cluster: &Cluster, i: usize, sample: &str, value: f64) {
    let what = format!("{sample} = {value} on {}", cluster.lan.nodes[i].name);
    wait_for(&what, PATIENCE, || async {
        (cluster.lan.metric(i, sample) == Some(value)).then_some(())
    })
    .await;
}

fn configuration_states(cluster: &Cluster) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", "v1beta1", "ConfigurationState"),
        "configurationstates",
    );
    Api::namespaced_with(cluster.client.clone(), NAMESPACE, &resource)
}

/// Waits until the ConfigurationState `name` says `result` (`Valid` / `Invalid`); returns its
/// status.
async fn wait_config_state(cluster: &Cluster, name: &str, result: &str) -> serde_json::Value {
    let states = configuration_states(cluster);
    let what = format!("the ConfigurationState {name} to say {result}");
    wait_for(&what, PATIENCE, || {
        let states = states.clone();
        async move {
            let state = states.get_opt(name).await.ok()??;
            (state.data["status"]["result"] == result).then(|| state.data["status"].clone())
        }
    })
    .await
}

/// How many times FRR established each of `neighbors` (`connectionsEstablished`).
fn connections(frr: &Frr, neighbors: &[String]) -> BTreeMap<String, u64> {
    neighbors
        .iter()
        .map(|n| {
            let count = frr.neighbor(n)["connectionsEstablished"].as_u64();
            (n.clone(), count.unwrap_or(0))
        })
        .collect()
}

/// Everything the routers hold: each RIB, each path's attributes of `prefix`, each session's
/// connection count.
fn snapshot(cluster: &Cluster, routers: &FaultRouters, prefix: &str) -> String {
    let v4: Vec<String> = hops(cluster, &[0, 1, 2]).into_iter().collect();
    let v6: Vec<String> = hops6(cluster, &[0, 1, 2]).into_iter().collect();
    let paths: Vec<Held> = v4
        .iter()
        .map(|hop| routers.frr.attributes("ipv4", prefix, hop))
        .collect();
    format!(
        "frr ipv4 {:#?}\nfrr ipv6 {:#?}\nfar {:#?}\nfar ipv6 {:#?}\n{prefix} {paths:#?}\n\
         frr sessions {:?} {:?}\nfar sessions {:?}",
        routers.frr.rib("ipv4"),
        routers.frr.rib("ipv6"),
        routers.far.rib("ipv4"),
        routers.far.rib("ipv6"),
        connections(&routers.frr, &v4),
        connections(&routers.frr, &v6),
        connections(&routers.far, &v4),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_from_a_secret_multihop_ipv6_and_a_refused_advertisement() {
    let test = "md5_from_a_secret_multihop_ipv6_and_a_refused_advertisement";
    let objects = faults_objects();
    let started = cluster_with_routers(test, &objects, &[], |lan| {
        let v4: Vec<String> = lan.nodes.iter().map(|n| n.ip4.clone()).collect();
        let v6: Vec<String> = lan.nodes.iter().map(|n| n.ip6.clone()).collect();
        let password = format!("password {KEY}");
        let mut neighbors: Vec<(&str, u32, &str)> = v4
            .iter()
            .map(|a| (a.as_str(), AS, password.as_str()))
            .collect();
        neighbors.extend(v6.iter().map(|a| (a.as_str(), AS, "")));
        let rt = lan.add_host("rt", "v8", "192.0.2.1", "2001:db8::1").0;
        let frr = Frr::start(
            lan,
            &rt,
            "frr",
            &frr_conf(AS, "192.0.2.1", &neighbors, "ipv4 ipv6"),
        );
        // node-c's neighbor checks the TTL (GTSM): it comes up only if the speaker sends 255.
        let far_ns = two_hops_away(lan, "v7");
        let bfd = "bfd\nbfd profile fast";
        let (multihop, gtsm) = (
            format!("ebgp-multihop 2\n{bfd}"),
            format!("ttl-security hops 2\n{bfd}"),
        );
        let far_neighbors = [
            (v4[0].as_str(), AS, multihop.as_str()),
            (v4[1].as_str(), AS, multihop.as_str()),
            (v4[2].as_str(), AS, gtsm.as_str()),
        ];
        let far_conf = frr_conf(FAR_AS, "203.0.113.1", &far_neighbors, "ipv4 ipv6");
        let far_bfd =
            "bfd\n profile fast\n  transmit-interval 100\n  receive-interval 100\n !\n!\n";
        FaultRouters {
            frr,
            far: Frr::start_with_bfd(lan, &far_ns.0, "far", &far_conf, far_bfd),
            _far_ns: far_ns,
        }
    })
    .await;
    let Some((cluster, routers)) = started else {
        return;
    };
    let t0 = Instant::now();
    let phase = |what: &str| eprintln!("{:>6.1} s  {what}", t0.elapsed().as_secs_f64());
    let context = || tail("frr", &routers.frr.log(), 20) + &tail("far", &routers.far.log(), 20);
    let (frr4, frr6) = (|| routers.frr.rib("ipv4"), || routers.frr.rib("ipv6"));
    let far = || routers.far.rib("ipv4");
    let v6 = json!({ "spec": { "ipFamilies": ["IPv6"], "ipFamilyPolicy": "SingleStack" } });
    let web = routed_service(&cluster, "web", json!({}), &[(0, true)]).await;
    let web6 = routed_service(&cluster, "web6", v6, &[(1, true)]).await;
    assert!(web6.starts_with("2001:db8:100::"), "{web6}");
    let (web, web6) = (format!("{web}/32"), format!("{web6}/128"));
    let all = hops(&cluster, &[0, 1, 2]);
    // MD5 (FRR requires the key), over IPv4.
    wait_for_route(&cluster, "FRR", frr4, &web, Some(all.clone()), context).await;
    // The IPv6 pool over the IPv6 session, each node's IPv6 address the next hop.
    let all6 = hops6(&cluster, &[0, 1, 2]);
    wait_for_route(&cluster, "FRR (IPv6)", frr6, &web6, Some(all6), context).await;
    // Two hops away: through fw, and with TTL 255 (node-c's GTSM neighbor).
    wait_for_route(
        &cluster,
        "the far FRR",
        far,
        &web,
        Some(all.clone()),
        context,
    )
    .await;
    // `dualStackAddressFamily`: the far peer's IPv4 sessions carry the IPv6 prefix too, each
    // from its node's IPv6 address.
    for node in &cluster.lan.nodes {
        let what = format!("the far FRR to receive {web6} from {} over IPv4", node.name);
        wait_for(&what, PATIENCE, || async {
            (routers.far.received("ipv6", &node.ip4) == 1).then_some(())
        })
        .await;
        let held = routers.far.attributes("ipv6", &web6, &node.ip6);
        assert_eq!(held.next_hops, set(&[&node.ip6]), "{held:?}");
    }
    // Each prefix on its own family's sessions only, elsewhere.
    assert_eq!(frr4().len(), 1, "{:#?}", frr4());
    assert_eq!(frr6().len(), 1, "{:#?}", frr6());
    assert_eq!(far().len(), 1, "{:#?}", far());
    for node in &cluster.lan.nodes {
        assert_eq!(routers.frr.received("ipv6", &node.ip4), 0, "{}", node.name);
        assert_eq!(routers.frr.received("ipv4", &node.ip6), 0, "{}", node.name);
    }

    // The BGPPeer's BFDProfile runs from every node: multi-hop BFD (RFC 5883) with the far FRR.
    for node in &cluster.lan.nodes {
        let what = format!("multi-hop BFD from {} up at the far FRR", node.name);
        let peer = wait_for(&what, PATIENCE, || async {
            let p = routers.far.bfd_peer(&node.ip4);
            (p["status"] == "up").then_some(p)
        })
        .await;
        assert_eq!(peer["multihop"], true, "{peer}");
    }
    wait_metric(
        &cluster,
        0,
        "ferrolb_bfd_session_up{peer=\"203.0.113.1\"}",
        1.0,
    )
    .await;
    phase("every route at every router, BFD up");
    // The Secret's password goes wrong: the speakers restart the `frr` sessions with it, FRR
    // refuses them (their segments carry another MD5 signature), and the route goes.
    let logged: Vec<usize> = (0..3).map(|i| cluster.lan.log(i).len()).collect();
    set_password(&cluster, "not-the-key").await;
    wait_for_route(&cluster, "FRR", frr4, &web, None, context).await;
    phase("wrong key: FRR dropped the route");
    let session_up = "ferrolb_bgp_session_up{peer=\"192.0.2.1:179\"}";
    for (i, before) in logged.iter().enumerate() {
        wait_metric(&cluster, i, session_up, 0.0).await;
        let what = format!(
            "{} to log why the session is down",
            cluster.lan.nodes[i].name
        );
        wait_for(&what, PATIENCE, || async {
            let log = cluster.lan.log(i);
            log[*before..]
                .lines()
                .any(|l| l.contains("BGP session not established") && l.contains("frr"))
                .then_some(())
        })
        .await;
        assert_ne!(routers.frr.state(&cluster.lan.nodes[i].ip4), "Established");
    }
    phase("wrong key: sessions down, metrics and logs say so");
    // The other sessions are not touched.
    assert_eq!(frr6()[&web6].next_hops.len(), 3, "{:#?}", frr6());
    assert_eq!(far()[&web].next_hops, all, "{:#?}", far());
    // Right again: back.
    set_password(&cluster, KEY).await;
    wait_for_route(&cluster, "FRR", frr4, &web, Some(all.clone()), context).await;
    for i in 0..3 {
        wait_metric(&cluster, i, session_up, 1.0).await;
    }
    phase("right key: sessions and route back");
    let held = routers
        .frr
        .attributes("ipv4", &web, &cluster.lan.nodes[0].ip4);
    assert_eq!(held.local_pref, Some(150), "{held:?}");
    assert_eq!(held.communities, set(&["65000:7"]), "{held:?}");

    // An advertisement that refuses the config (a second local preference for the pool's
    // prefixes): the last good config stays, and every session and route with it.
    let before = snapshot(&cluster, &routers, &web);
    let logged: Vec<usize> = (0..3).map(|i| cluster.lan.log(i).len()).collect();
    apply_yaml(&cluster, "premium", &premium(200));
    for (i, node) in cluster.lan.nodes.iter().enumerate() {
        let name = format!("speaker-{}", node.name);
        let state = wait_config_state(&cluster, &name, "Invalid").await;
        let summary = state["errorSummary"].as_str().unwrap_or_default();
        assert!(summary.contains("premium"), "{state:#}");
        wait_metric(&cluster, i, "ferrolb_config_stale", 1.0).await;
        assert!(
            cluster.lan.log(i)[logged[i]..].contains("keeping the last good config"),
            "{}",
            cluster.lan.log(i)
        );
    }
    let state = wait_config_state(&cluster, "controller", "Invalid").await;
    eprintln!("refused: {}", state["errorSummary"]);
    phase("refused: ConfigurationStates Invalid");
    // Given time to act on it, nothing changed at any router.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = snapshot(&cluster, &routers, &web);
    assert_eq!(before, during, "{}", speaker_logs(&cluster.lan));
    // The speakers are live on the last good config: a new Service is announced with its
    // attributes.
    let late = routed_service(&cluster, "late", json!({}), &[(2, true)]).await;
    let late = format!("{late}/32");
    wait_for_route(&cluster, "FRR", frr4, &late, Some(all.clone()), context).await;
    let held = routers
        .frr
        .attributes("ipv4", &late, &cluster.lan.nodes[2].ip4);
    assert_eq!(
        (held.local_pref, held.communities.clone()),
        (Some(150), set(&["65000:7"])),
        "{held:?}"
    );

    phase("a new Service announced under the last good config");
    // Fixed (the same local preference): the new config applies, its community joins on every
    // route, and the sessions carry the change without a reset.
    let v4: Vec<String> = all.iter().cloned().collect();
    let sessions = connections(&routers.frr, &v4);
    apply_yaml(&cluster, "premium", &premium(150));
    for node in &cluster.lan.nodes {
        wait_config_state(&cluster, &format!("speaker-{}", node.name), "Valid").await;
    }
    wait_config_state(&cluster, "controller", "Valid").await;
    let both = set(&["65000:7", "65000:42"]);
    for prefix in [&web, &late] {
        for hop in &all {
            let what = format!("{prefix} from {hop} with communities {both:?}");
            wait_for(&what, PATIENCE, || async {
                let held = routers.frr.attributes("ipv4", prefix, hop);
                (held.communities == both && held.local_pref == Some(150)).then_some(())
            })
            .await;
        }
    }
    phase("fixed: the new config applied");
    assert_eq!(connections(&routers.frr, &v4), sessions);
    // The IPv6 pool is not the new advertisement's: unchanged.
    let held6 = routers
        .frr
        .attributes("ipv6", &web6, &cluster.lan.nodes[0].ip6);
    assert_eq!(held6.communities, set(&["65000:7"]), "{held6:?}");
}

/// The benchmark's Services: IPv4 ones the controller places (`routed`), and 10 000 IPv6 ones
/// whose addresses the test writes (`bench`, [`scale_cluster::vip`]), announced once the
/// `bench` advertisement exists. Both peers carry IPv6 on their IPv4 session.
fn bench_objects() -> String {
    format!(
        "apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: routed, namespace: {NAMESPACE}}}
spec:
  addresses: [198.51.100.10-198.51.100.49]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: bench, namespace: {NAMESPACE}}}
spec:
  addresses: ['2001:db8::a:0/112']
  autoAssign: false
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: frr, namespace: {NAMESPACE}}}
spec: {{myASN: {AS}, peerASN: {AS}, peerAddress: 192.0.2.1, dualStackAddressFamily: true}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: gobgp, namespace: {NAMESPACE}}}
spec: {{myASN: {AS}, peerASN: 64700, peerAddress: 192.0.2.3, dualStackAddressFamily: true}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: routed, namespace: {NAMESPACE}}}
spec:
  ipAddressPools: [routed]
"
    )
}

/// The benchmark speaker's log filter: warnings, and the loop's own lines.
const QUIET: &str = "warn,ferrolb::speaker::kubernetes=info,ferrolb::speaker::kubernetes::=warn";

const BENCH_AD: &str = "apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bench, namespace: ferrolb-system}
spec:
  ipAddressPools: [bench]
";

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// min / median / max.
fn spread(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let median = samples[samples.len() / 2];
    format!(
        "min {} median {} max {} (n = {})",
        ms(samples[0]),
        ms(median),
        ms(samples[samples.len() - 1]),
        samples.len()
    )
}

/// Polls until FRR (its IPv6 `pfxRcd` from node-a) and GoBGP both hold `count` prefixes;
/// each one's time since `since`, and the speaker's peak RSS seen meanwhile (KiB).
fn until_both_hold(
    routers: &BenchRouters,
    frr_neighbor: &str,
    count: u64,
    since: Instant,
    pid: u32,
) -> (Duration, Duration, u64) {
    let (mut frr_done, mut gobgp_done, mut peak) = (None, None, 0);
    while frr_done.is_none() || gobgp_done.is_none() {
        assert!(
            since.elapsed() < Duration::from_secs(600),
            "not every prefix arrived: FRR {} GoBGP {}",
            routers.frr.received("ipv6", frr_neighbor),
            routers.gobgp.destinations()
        );
        peak = peak.max(memory(pid).map_or(0, |m| m.peak));
        if frr_done.is_none() && routers.frr.received("ipv6", frr_neighbor) == count {
            frr_done = Some(since.elapsed());
        }
        if gobgp_done.is_none() && routers.gobgp.destinations() == count {
            gobgp_done = Some(since.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (frr_done.unwrap(), gobgp_done.unwrap(), peak)
}

struct BenchRouters {
    frr: Frr,
    gobgp: Gobgp,
}

/// BENCHMARKS.md, "BGP" (Kubernetes mode): one speaker (node-a) in the cluster with the real
/// controller and API server, peering with FRR (iBGP) and GoBGP (eBGP), both sessions
/// dual-stack. (a) 20 Services created one by one: the time from the create call to the
/// controller's address in the Service's status, and to the prefix in FRR's RIB. (b) 10 000
/// IPv6 Services (status written by the test, one ready endpoint each; the controller stopped):
/// the time from applying the BGPAdvertisement that selects their pool to both RIBs holding all
/// of them, then from a restart of the speaker (SIGTERM, start) to both holding them again, and
/// the speaker's RSS. `FERROLB_E2E_BIN` names the binary of the speaker and controller:
/// `cargo nextest run --test e2e_bgp_routers --run-ignored only -E 'test(bgp_bench)' --no-capture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by hand (BENCHMARKS.md)"]
async fn bgp_bench_kubernetes_services_to_frr_and_gobgp() {
    // `FERROLB_BGP_BENCH_SERVICES` for a smaller run (a check of the benchmark itself).
    let services = std::env::var("FERROLB_BGP_BENCH_SERVICES").ok();
    let count: usize = services.and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let test = "bgp_bench_kubernetes_services_to_frr_and_gobgp";
    let objects = bench_objects();
    // Per-Service info lines for 10 000 Services would measure the logger (as e2e_scale).
    let env = [("RUST_LOG", QUIET)];
    let tools = ["gobgpd", "gobgp"];
    let started = cluster_with_routers_on(test, &objects, &tools, &[0], &env, |lan| {
        let a = lan.nodes[0].ip4.clone();
        let rt = lan.add_host("rt", "v8", "192.0.2.1", "2001:db8::1").0;
        let gobgp_ns = lan.add_host("gobgp", "v6", "192.0.2.3", "2001:db8::3").0;
        let conf = frr_conf(AS, "192.0.2.1", &[(a.as_str(), AS, "")], "ipv4 ipv6");
        BenchRouters {
            frr: Frr::start(lan, &rt, "frr", &conf),
            gobgp: Gobgp::start(lan, &gobgp_ns, "192.0.2.3", 64700, &[(&a, AS)], "ipv6"),
        }
    })
    .await;
    let Some((mut cluster, routers)) = started else {
        return;
    };
    let a = cluster.lan.nodes[0].ip4.clone();
    let node_a = cluster.lan.nodes[0].name.clone();
    eprintln!("BENCH binary {}", e2e::ferrolb::binary().display());

    // (a) One by one: create -> EXTERNAL-IP -> FRR's RIB.
    let api = bgp_lan::services(&cluster);
    let (mut to_ip, mut to_rib) = (Vec::new(), Vec::new());
    for n in 0..20 {
        let name = format!("one-{n}");
        set_endpoints(&cluster.client, &name, &[(&node_a, true)]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let created = Instant::now();
        create_service(&api, &lb_service(&name, json!({}))).await;
        let ip = loop {
            let service = api.get(&name).await.expect("get the Service");
            let ingress = service.status.and_then(|s| s.load_balancer?.ingress);
            if let Some(ip) = ingress.and_then(|i| i.first()?.ip.clone()) {
                break ip;
            }
            assert!(created.elapsed() < PATIENCE, "{name} got no address");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        to_ip.push(created.elapsed());
        let command = format!("show bgp ipv4 unicast {ip}/32 json");
        while !routers.frr.vtysh(&command).contains("\"paths\"") {
            assert!(created.elapsed() < PATIENCE, "{ip} never reached FRR");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        to_rib.push(created.elapsed());
    }
    eprintln!(
        "BENCH k8s bgp: Service created -> EXTERNAL-IP: {}",
        spread(to_ip)
    );
    eprintln!(
        "BENCH k8s bgp: Service created -> FRR RIB: {}",
        spread(to_rib)
    );

    // (b) 10 000 Services, not announced until their advertisement exists.
    cluster.controller.terminate();
    let nodes: Vec<String> = cluster.lan.nodes.iter().map(|n| n.name.clone()).collect();
    let took = scale_cluster::create_services(&cluster.client, &nodes, 0..count).await;
    eprintln!("BENCH k8s bgp: {count} Services with status and EndpointSlice created in {took:?}");
    // The speaker has them all in its cache: its pass after the last one is quick.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let pid = cluster.lan.nodes[0].child.as_ref().expect("speaker").id();
    let before = memory(pid).expect("the speaker's memory");
    assert_eq!(routers.gobgp.destinations(), 0, "nothing announced yet");
    let applied = Instant::now();
    apply_yaml(&cluster, "bench-ad", BENCH_AD);
    let total = count as u64;
    let (frr_done, gobgp_done, peak) = until_both_hold(&routers, &a, total, applied, pid);
    let after = memory(pid).expect("the speaker's memory");
    eprintln!(
        "BENCH k8s bgp: advertisement applied -> FRR holds all {count}: {}; GoBGP: {}; speaker \
         peak RSS meanwhile {:.1} MiB; before: {before}; after: {after}",
        ms(frr_done),
        ms(gobgp_done),
        peak as f64 / 1024.0
    );
    // The speaker restarts (SIGTERM: Cease, the routers drop its routes; then start).
    cluster.lan.signal(0, "TERM");
    let gone = wait_for(
        "both routers to drop the speaker's routes",
        PATIENCE,
        || async {
            (routers.frr.received("ipv6", &a) == 0 && routers.gobgp.destinations() == 0)
                .then_some(())
        },
    );
    gone.await;
    let kubeconfig = cluster
        .plane
        .lan_kubeconfig()
        .expect("kubeconfig")
        .to_path_buf();
    let logged = cluster.lan.log(0).len();
    let restarted = Instant::now();
    start_kube_speaker_with(
        &mut cluster.lan,
        0,
        &kubeconfig,
        &env,
        &["--config-source=crds"],
    );
    let pid = cluster.lan.nodes[0].child.as_ref().expect("speaker").id();
    let (frr_done, gobgp_done, peak) = until_both_hold(&routers, &a, total, restarted, pid);
    eprintln!(
        "BENCH k8s bgp: speaker start -> FRR holds all {count}: {}; GoBGP: {}; speaker peak RSS \
         {:.1} MiB",
        ms(frr_done),
        ms(gobgp_done),
        peak as f64 / 1024.0
    );
    // What kept a session from coming up at once after the restart (GoBGP holds a neighbor
    // that sent a Cease Idle for a while, refusing it).
    let log = cluster.lan.log(0);
    for line in log[logged..]
        .lines()
        .filter(|l| l.contains("not established"))
    {
        eprintln!("BENCH speaker: {line}");
    }
    eprintln!("{}", tail("gobgpd", &routers.gobgp.log(), 15));
    // The ServiceBGPStatus objects (one per Service: the 20 and the rest) trail the routes:
    // written by their own task, as fast as the API server takes them.
    let want = count + 20;
    let mut statuses = 0;
    while statuses < want && restarted.elapsed() < Duration::from_secs(420) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        statuses = bgp_status_count(&cluster).await;
    }
    let settled = memory(pid).expect("the speaker's memory");
    eprintln!(
        "BENCH k8s bgp: speaker start -> {statuses} of {want} ServiceBGPStatus objects: {:.0} s; \
         speaker then: {settled}",
        restarted.elapsed().as_secs_f64()
    );
}

/// How many ServiceBGPStatus objects the speakers keep.
async fn bgp_status_count(cluster: &Cluster) -> usize {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", "v1beta1", "ServiceBGPStatus"),
        "servicebgpstatuses",
    );
    let api: Api<DynamicObject> = Api::all_with(cluster.client.clone(), &resource);
    api.list_metadata(&Default::default())
        .await
        .map_or(0, |l| l.items.len())
}
