//! The BGP suites' part of the speaker cluster (`tests/e2e_bgp.rs`, `tests/e2e_bgp_routers.rs`):
//! the cluster of `speaker_lan.rs` with routers (`tests/bgp_routers`) started on its LAN before
//! the speakers, the Services of a routed pool, and waiting for a router's RIB. Included by each
//! suite with `#[path]` next to `mod bgp_routers;`, `mod e2e;`, `mod netns;` and
//! `#[path = "e2e/speaker_lan.rs"] mod speaker_lan;`.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Service};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::bgp_routers::{BGPD, Rib};
use crate::e2e::api::{create_service, lb_service, wait_for_ips};
use crate::e2e::control_plane::assets_dir;
use crate::e2e::wait::PATIENCE;
use crate::e2e::{APPS, NAMESPACE};
use crate::netns::{Lan, environment_ready_with};
use crate::speaker_lan::{Cluster, Setup, set_endpoints, setup_with, speaker_logs};

/// Whether the test can run: FRR's bgpd, `kubectl` and the `tools` (e.g. `birdc`) present.
/// Without FRR the test is skipped, unless `CI` is set (then it fails).
pub fn routers_present(test: &str, tools: &[&str]) -> bool {
    if !Path::new(BGPD).is_file() && std::env::var_os("CI").is_none() {
        eprintln!("SKIPPED: {test} needs FRR ({BGPD}; run scripts/install-test-tools.sh)");
        return false;
    }
    let mut tools = tools.to_vec();
    tools.extend(["vtysh", "kubectl"]);
    environment_ready_with(test, &tools)
}

/// The cluster with MetalLB's `objects` (the crds source) and what `start` starts on its LAN
/// before the control plane and the speakers (the routers); `None` when the test is skipped.
pub async fn cluster_with_routers<R>(
    test: &str,
    objects: &str,
    tools: &[&str],
    start: impl FnOnce(&mut Lan) -> R,
) -> Option<(Cluster, R)> {
    cluster_with_routers_on(test, objects, tools, &[0, 1, 2], &[], start).await
}

/// [`cluster_with_routers`] with speakers on the nodes of `speakers` only, each with
/// `speaker_env` added to its environment.
pub async fn cluster_with_routers_on<R>(
    test: &str,
    objects: &str,
    tools: &[&str],
    speakers: &[usize],
    speaker_env: &[(&str, &str)],
    start: impl FnOnce(&mut Lan) -> R,
) -> Option<(Cluster, R)> {
    assets_dir(test)?;
    if !routers_present(test, tools) {
        return None;
    }
    let mut start = Some(start);
    let mut routers = None;
    let mut on_lan = |lan: &mut Lan| {
        if let Some(start) = start.take() {
            routers = Some(start(lan));
        }
    };
    let setup = Setup {
        objects,
        speakers,
        on_lan: Some(&mut on_lan),
        speaker_env,
        ..Setup::default()
    };
    let cluster = setup_with(test, setup).await?;
    Some((cluster, routers.expect("the routers started with the LAN")))
}

/// The IPAddressPool `routed` (198.51.100.10-19) every BGP suite hands its Services from.
pub fn routed_pool() -> String {
    format!(
        "apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: routed, namespace: {NAMESPACE}}}
spec:
  addresses: [198.51.100.10-198.51.100.19]
"
    )
}

pub fn services(cluster: &Cluster) -> Api<Service> {
    Api::namespaced(cluster.client.clone(), APPS)
}

/// The IPv4 addresses of nodes `nodes`: the next hops their speakers send on IPv4 sessions.
pub fn hops(cluster: &Cluster, nodes: &[usize]) -> BTreeSet<String> {
    nodes
        .iter()
        .map(|&i| cluster.lan.nodes[i].ip4.clone())
        .collect()
}

/// The IPv6 addresses of nodes `nodes`: their next hops on IPv6 sessions.
pub fn hops6(cluster: &Cluster, nodes: &[usize]) -> BTreeSet<String> {
    nodes
        .iter()
        .map(|&i| cluster.lan.nodes[i].ip6.clone())
        .collect()
}

pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A `type: LoadBalancer` Service (`extra` merged in) with its EndpointSlice: one endpoint per
/// `(node, ready)`. Returns its address, once the controller wrote it.
pub async fn routed_service(
    cluster: &Cluster,
    name: &str,
    extra: serde_json::Value,
    endpoints: &[(usize, bool)],
) -> String {
    let endpoints: Vec<(&str, bool)> = endpoints
        .iter()
        .map(|&(i, ready)| (cluster.lan.nodes[i].name.as_str(), ready))
        .collect();
    set_endpoints(&cluster.client, name, &endpoints).await;
    create_service(&services(cluster), &lb_service(name, extra)).await;
    wait_for_ips(&services(cluster), name).await.remove(0)
}

/// Waits until `rib()` holds `prefix` with exactly `want` as next hops (`None`: not at all);
/// returns that RIB. `what` names the router; `context()` is printed on failure (with the
/// speakers' logs).
pub async fn wait_for_route(
    cluster: &Cluster,
    what: &str,
    rib: impl Fn() -> Rib,
    prefix: &str,
    want: Option<BTreeSet<String>>,
    context: impl Fn() -> String,
) -> Rib {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = rib();
        if got.get(prefix).map(|h| h.next_hops.clone()) == want {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {PATIENCE:?} waiting for {what} to hold {prefix} with next hops \
             {want:?}; last RIB {got:#?}\n{}{}",
            speaker_logs(&cluster.lan),
            context()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The last `n` lines of a router's log, for a failure's context.
pub fn tail(name: &str, log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().rev().take(n).collect();
    let lines: Vec<&str> = lines.into_iter().rev().collect();
    format!("--- {name} (last lines)\n{}\n", lines.join("\n"))
}

/// Sets (`Some`) or removes (`None`) label `key` on the Node of node `i`, as `kubectl label`.
pub async fn label_node(cluster: &Cluster, i: usize, key: &str, value: Option<&str>) {
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let name = &cluster.lan.nodes[i].name;
    let patch = json!({ "metadata": { "labels": { key: value } } });
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap_or_else(|e| panic!("label Node {name}: {e}"));
}
