//! `ferrolb speaker` in Kubernetes mode, end to end: a real kube-apiserver + etcd (found through
//! `KUBEBUILDER_ASSETS`) in a network namespace of its own on the test LAN's bridge, the real
//! `ferrolb controller` allocating, and three real `ferrolb speaker` nodes in their namespaces,
//! each talking to the API server over the LAN and gossiping with the others. A client namespace
//! on the same bridge checks what a user on the LAN sees.
//!
//! There is no kubelet and no kube-proxy, so the test plays their parts: it creates the Node
//! objects (InternalIP, Ready) and, for `externalTrafficPolicy: Local`, the EndpointSlices; and
//! on every node it puts each EXTERNAL-IP on `lo` with `arp_ignore=1`/`arp_announce=2` on eth0
//! (what kube-proxy's IPVS mode does), so the kernel accepts traffic for the IP but never answers
//! ARP for it: only ferrolb does. A tiny TCP server on every node answers with its node name, so
//! a connection from the client to EXTERNAL-IP:80 shows which node the LAN sends the traffic to.
//!
//! Skipped, with a message, when `KUBEBUILDER_ASSETS` is unset (even in CI). With it set, missing
//! root or tools fail the test when `CI` is set, and skip it otherwise.

mod e2e;
mod netns;

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};
use serde_json::json;

use e2e::api::{self, create_service, delete_service, events_about, lb_service, wait_for_ips};
use e2e::control_plane::assets_dir;
use e2e::wait::{PATIENCE, wait_for as wait_until};
use e2e::{ControlPlane, Controller, ControllerOptions};
use netns::{Lan, distinct, environment_ready_with, in_ns, ranking, stdout, wait_for};

use e2e::{APPS, NAMESPACE};
const API_IP: &str = "192.0.2.50";
const API_IP6: &str = "2001:db8::50";
const POOL: &str = "address-pools:
- name: lan
  protocol: layer2
  addresses:
  - 192.0.2.200-192.0.2.207
";
/// How long the LAN may take to reflect a change made through the API (watch, election, GARP).
const SETTLE: Duration = Duration::from_secs(60);

/// One TCP connection per client: writes this node's name and closes. Arg: the node name.
const NAME_SERVER: &str = r#"
import socket, sys
name = (sys.argv[1] + "\n").encode()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80))
s.listen(64)
while True:
    c, _ = s.accept()
    try:
        c.sendall(name)
    except OSError:
        pass
    c.close()
"#;

/// Connects to ARGV1:80 and prints what the server said (nothing when it cannot connect).
const NAME_CLIENT: &str = r#"
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], 80), timeout=2)
    print(c.recv(100).decode().strip())
except OSError:
    pass
"#;

/// Everything one test runs; dropped in field order: controller, control plane, then the LAN
/// (speakers, servers and every namespace).
struct Cluster {
    controller: Controller,
    _plane: ControlPlane,
    client: Client,
    lan: Lan,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", speaker_logs(&self.lan));
        }
    }
}

fn speaker_logs(lan: &Lan) -> String {
    (0..lan.nodes.len())
        .map(|i| {
            let log = lan.log(i);
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!(
                "--- speaker {} (last lines)\n{}\n",
                lan.nodes[i].name,
                tail.join("\n")
            )
        })
        .collect()
}

/// Builds the LAN, the control plane in its own namespace, the Nodes, the controller and three
/// ready speakers. `None` when the test is skipped.
async fn setup(test: &str) -> Option<Cluster> {
    assets_dir(test)?;
    if !environment_ready_with(test, &["socat"]) {
        return None;
    }
    let mut lan = Lan::new(3, Path::new(env!("CARGO_BIN_EXE_ferrolb")));
    let (api_ns, _) = lan.add_host("api", "v5", API_IP, API_IP6);
    for i in 0..lan.nodes.len() {
        play_kube_proxy_node(&mut lan, i);
    }
    let plane = ControlPlane::start_in_netns(test, &api_ns, API_IP.parse().unwrap())
        .await
        .expect("KUBEBUILDER_ASSETS is set");
    let client = plane.client().await;
    // The speakers write ServiceL2Status and ConfigurationState objects: their CRDs first.
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/ferrolb/crds");
    plane.kubectl(&["apply", "-f", &crds.display().to_string()]);
    api::create_namespace(&client, NAMESPACE).await;
    api::create_namespace(&client, APPS).await;
    api::apply_config(&client, NAMESPACE, POOL).await;
    for node in &lan.nodes {
        create_ready_node(&client, &node.name, &node.ip4).await;
    }
    let controller =
        Controller::start_ready(&plane, &ControllerOptions::new(NAMESPACE, "ctrl")).await;

    let kubeconfig = plane.lan_kubeconfig().expect("namespaced control plane");
    let key_file = lan.key_file();
    for i in 0..lan.nodes.len() {
        let node = lan.nodes[i].name.clone();
        let ip = lan.nodes[i].ip4.clone();
        let metrics = format!("{ip}:7473");
        let args: Vec<&OsStr> = vec![
            "--kubeconfig".as_ref(),
            kubeconfig.as_os_str(),
            "--namespace".as_ref(),
            NAMESPACE.as_ref(),
            "--node-name".as_ref(),
            node.as_ref(),
            "--host-ip".as_ref(),
            ip.as_ref(),
            "--memberlist-key-file".as_ref(),
            key_file.as_os_str(),
            "--exclude-interfaces".as_ref(),
            "".as_ref(),
            "--metrics-addr".as_ref(),
            metrics.as_ref(),
        ];
        lan.start_speaker(i, &args, &[]);
    }
    let cluster = Cluster {
        controller,
        _plane: plane,
        client,
        lan,
    };
    // Ready = caches synced, announcer sockets open and gossip joined.
    for i in 0..cluster.lan.nodes.len() {
        let ready = wait_for(SETTLE, || {
            (cluster.lan.http_get(i, "/readyz").0 == 200).then_some(())
        });
        assert!(
            ready.is_some(),
            "speaker {} never became ready",
            cluster.lan.nodes[i].name
        );
    }
    Some(cluster)
}

/// Waits until the ServiceL2Status objects for `apps/web` are exactly one, written by `node`
/// (its label and its status agree); returns (name, node) of every object then.
async fn wait_for_l2_status(client: &Client, node: &str) -> Vec<(String, String)> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", "v1beta1", "ServiceL2Status"),
        "servicel2statuses",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &resource);
    let what = format!("the ServiceL2Status of web on {node}");
    wait_until(&what, PATIENCE, || {
        let api = api.clone();
        async move {
            let list = api.list(&ListParams::default()).await.ok()?;
            let seen: Vec<(String, String, serde_json::Value)> = list
                .items
                .into_iter()
                .filter(|o| {
                    o.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("metallb.io/service-name"))
                        .map(String::as_str)
                        == Some("web")
                })
                .map(|o| {
                    let labels = o.metadata.labels.clone().unwrap_or_default();
                    (
                        o.metadata.name.clone().unwrap_or_default(),
                        labels.get("metallb.io/node").cloned().unwrap_or_default(),
                        o.data.get("status").cloned().unwrap_or_default(),
                    )
                })
                .collect();
            let done = seen.len() == 1
                && seen[0].1 == node
                && seen[0].2["node"] == node
                && seen[0].2["serviceName"] == "web"
                && seen[0].2["serviceNamespace"] == APPS;
            done.then(|| seen.into_iter().map(|(n, node, _)| (n, node)).collect())
        }
    })
    .await
}

/// Node `i` as kube-proxy's IPVS mode leaves it: the kernel never answers ARP for an address
/// that is not on the asking interface, nor uses one as an ARP source; plus the name server.
fn play_kube_proxy_node(lan: &mut Lan, i: usize) {
    let ns = lan.nodes[i].ns.clone();
    for setting in [
        "net.ipv4.conf.all.arp_ignore=1",
        "net.ipv4.conf.all.arp_announce=2",
        "net.ipv4.conf.eth0.arp_ignore=1",
        "net.ipv4.conf.eth0.arp_announce=2",
    ] {
        netns::run("ip", &["netns", "exec", &ns, "sysctl", "-qw", setting]);
    }
    let name = lan.nodes[i].name.clone();
    let log = lan.dir.path().join(format!("{name}-server.log"));
    lan.spawn_in(&ns, &["python3", "-c", NAME_SERVER, &name], &log);
}

/// Every node accepts traffic for `ip` (kube-proxy puts each LoadBalancer IP on every node).
fn accept_on_every_node(lan: &Lan, ip: &str) {
    for node in &lan.nodes {
        netns::run(
            "ip",
            &[
                "-n",
                &node.ns,
                "addr",
                "add",
                &format!("{ip}/32"),
                "dev",
                "lo",
            ],
        );
    }
}

/// A Node as a kubelet would register it: InternalIP and Ready, written through the status
/// subresource.
async fn create_ready_node(client: &Client, name: &str, ip: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
    nodes
        .create(&PostParams::default(), &node)
        .await
        .unwrap_or_else(|e| panic!("create Node {name}: {e}"));
    let status = json!({ "status": {
        "addresses": [{ "type": "InternalIP", "address": ip }],
        "conditions": [{ "type": "Ready", "status": "True", "reason": "KubeletReady" }],
    } });
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap_or_else(|e| panic!("set Node {name} status: {e}"));
}

/// Writes the one EndpointSlice of Service `service` (as the EndpointSlice controller would):
/// one endpoint per `(node, ready)`.
async fn set_endpoints(client: &Client, service: &str, endpoints: &[(&str, bool)]) {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), APPS);
    let name = format!("{service}-e2e");
    let endpoints: Vec<_> = endpoints
        .iter()
        .enumerate()
        .map(|(n, (node, ready))| {
            json!({
                "addresses": [format!("10.244.{n}.10")],
                "nodeName": node,
                "conditions": { "ready": ready },
            })
        })
        .collect();
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": APPS,
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "ferrolb-e2e",
            },
        },
        "addressType": "IPv4",
        "ports": [{ "name": "http", "protocol": "TCP", "port": 8080 }],
        "endpoints": endpoints,
    });
    slices
        .patch(
            &name,
            &PatchParams::apply("ferrolb-e2e").force(),
            &Patch::Apply(slice),
        )
        .await
        .unwrap_or_else(|e| panic!("apply EndpointSlice {name}: {e}"));
}

fn node_index(lan: &Lan, name: &str) -> usize {
    lan.nodes.iter().position(|n| n.name == name).unwrap()
}

/// The election's order of `nodes` (indices) for `ip`, first = owner.
fn ranked(lan: &Lan, ip: &str, nodes: &[usize]) -> Vec<usize> {
    let names: Vec<&str> = nodes.iter().map(|&i| lan.nodes[i].name.as_str()).collect();
    ranking(ip, &names)
        .iter()
        .map(|name| node_index(lan, name))
        .collect()
}

/// What the server behind `ip`:80 says its node is, as seen from the client (None: no answer).
fn connect_from_client(lan: &Lan, ip: &str) -> Option<String> {
    let out = in_ns(&lan.client_ns, &["python3", "-c", NAME_CLIENT, ip]);
    let said = stdout(&out).trim().to_string();
    (!said.is_empty()).then_some(said)
}

/// Node `owner` alone serves `ip`: it is the only ARP answerer and the client's traffic lands on it.
fn assert_serves(lan: &Lan, ip: &str, owner: usize) {
    assert_only_answerer(lan, ip, owner);
    assert_traffic_reaches(lan, ip, owner);
}

/// Waits until ARP for `ip` is answered by node `owner` and nobody else, then checks it over
/// several more requests (one reply each, all from the owner).
fn assert_only_answerer(lan: &Lan, ip: &str, owner: usize) {
    let want = lan.nodes[owner].mac.clone();
    let settled = wait_for(SETTLE, || {
        let macs = lan.arping(ip, 2);
        (macs.len() == 2 && macs.iter().all(|m| *m == want)).then_some(())
    });
    assert!(
        settled.is_some(),
        "{ip}: expected only {} ({want}) to answer ARP; last replies: {:?}",
        lan.nodes[owner].name,
        lan.arping(ip, 2)
    );
    let macs = lan.arping(ip, 5);
    assert_eq!(macs.len(), 5, "{ip}: one reply per request, got {macs:?}");
    assert_eq!(
        distinct(&macs).into_iter().collect::<Vec<_>>(),
        [want],
        "{ip}: replies from more than the owner"
    );
}

/// Waits until a connection from the client to `ip`:80 lands on node `owner`, with the client
/// kernel's neighbour entry for `ip` on the owner's MAC.
fn assert_traffic_reaches(lan: &Lan, ip: &str, owner: usize) {
    let node = &lan.nodes[owner];
    let landed = wait_for(SETTLE, || {
        let said = connect_from_client(lan, ip)?;
        (said == node.name).then_some(())
    });
    assert!(
        landed.is_some(),
        "{ip}:80 from the client never reached {}; last answer {:?}, neighbour entry {:?}",
        node.name,
        connect_from_client(lan, ip),
        lan.neigh(ip)
    );
    let entry = lan.neigh(ip).expect("the client resolved the EXTERNAL-IP");
    assert_eq!(entry.0, node.mac, "client's neighbour entry for {ip}");
}

/// Waits until nobody answers ARP for `ip`, then checks it stays so over several requests.
fn assert_nobody_answers(lan: &Lan, ip: &str) {
    let silent = wait_for(SETTLE, || lan.arping(ip, 1).is_empty().then_some(()));
    assert!(
        silent.is_some(),
        "{ip}: still answered by {:?}",
        lan.arping(ip, 1)
    );
    let macs = lan.arping(ip, 3);
    assert!(macs.is_empty(), "{ip}: answered by {macs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_created_through_the_api_is_reachable_at_its_external_ip() {
    let test = "service_created_through_the_api_is_reachable_at_its_external_ip";
    let Some(mut cluster) = setup(test).await else {
        return;
    };
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), APPS);
    create_service(&services, &lb_service("web", json!({}))).await;
    let ips = wait_for_ips(&services, "web").await;
    assert_eq!(ips, ["192.0.2.200"], "lowest address of the pool");
    let ip = ips[0].as_str();
    accept_on_every_node(&cluster.lan, ip);

    // No endpoint yet: nobody announces it (MetalLB's rule). One ready endpoint, anywhere (the
    // policy is Cluster): its owner answers.
    assert_nobody_answers(&cluster.lan, ip);
    let somewhere = cluster.lan.nodes[2].name.clone();
    set_endpoints(&cluster.client, "web", &[(&somewhere, true)]).await;
    let order = ranked(&cluster.lan, ip, &[0, 1, 2]);
    let owner = order[0];
    assert_serves(&cluster.lan, ip, owner);

    // The new announcer says so on the Service, and nobody else does.
    let owner_name = cluster.lan.nodes[owner].name.clone();
    let client = cluster.client.clone();
    let assigned = wait_until("a nodeAssigned event on web", PATIENCE, || {
        let client = client.clone();
        async move {
            let events = events_about(&client, APPS, "Service", "web").await;
            let assigned: Vec<_> = events
                .into_iter()
                .filter(|e| e.reason == "nodeAssigned")
                .collect();
            (!assigned.is_empty()).then_some(assigned)
        }
    })
    .await;
    for event in &assigned {
        assert!(
            event.note.contains(&owner_name) && event.reporting_instance == owner_name,
            "nodeAssigned from a node other than {owner_name}: {event:?}"
        );
    }

    // `kubectl get servicel2statuses` names the announcer: one object, written by the owner.
    let statuses = wait_for_l2_status(&client, &owner_name).await;
    assert_eq!(statuses.len(), 1, "{statuses:?}");

    // The owner's speaker crashes: the next in the ranking takes the IP over, and its
    // gratuitous ARP re-points the client, whose connections land there.
    cluster.lan.signal(owner, "KILL");
    let next = order[1];
    assert_serves(&cluster.lan, ip, next);
    cluster.controller.assert_running();

    // The ServiceL2Status follows: the dead node's object is deleted by the new owner, whose
    // own object is the only one left.
    let next_name = cluster.lan.nodes[next].name.clone();
    let statuses = wait_for_l2_status(&client, &next_name).await;
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    let shown =
        cluster
            ._plane
            .kubectl(&["get", "servicel2statuses", "-n", NAMESPACE, "-o", "wide"]);
    eprintln!("kubectl get servicel2statuses -n {NAMESPACE}:\n{shown}");
    assert!(
        shown.contains(&next_name) && !shown.contains(&owner_name),
        "{shown}"
    );

    // Deleted through the API: the IP is released and nobody answers for it any more.
    delete_service(&services, "web").await;
    assert_nobody_answers(&cluster.lan, ip);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_traffic_policy_is_answered_only_from_nodes_with_a_ready_endpoint() {
    let test = "local_traffic_policy_is_answered_only_from_nodes_with_a_ready_endpoint";
    let Some(cluster) = setup(test).await else {
        return;
    };
    let lan = &cluster.lan;
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), APPS);
    let local = json!({ "spec": { "externalTrafficPolicy": "Local" } });
    create_service(&services, &lb_service("local", local)).await;
    let ips = wait_for_ips(&services, "local").await;
    let ip = ips[0].as_str();
    accept_on_every_node(lan, ip);
    let order = ranked(lan, ip, &[0, 1, 2]);
    let name = |i: usize| lan.nodes[order[i]].name.as_str();

    // Ready only on the ranking's second node; the first holds an endpoint that is not ready,
    // so "any endpoint" or "ranking over every node" would both pick the wrong node.
    set_endpoints(
        &cluster.client,
        "local",
        &[(name(0), false), (name(1), true)],
    )
    .await;
    assert_serves(lan, ip, order[1]);

    // The ready endpoint moves to the third node: so does the IP, and the client follows.
    set_endpoints(
        &cluster.client,
        "local",
        &[(name(0), false), (name(1), false), (name(2), true)],
    )
    .await;
    assert_serves(lan, ip, order[2]);

    // Two nodes with a ready endpoint: the ranking decides between them.
    set_endpoints(
        &cluster.client,
        "local",
        &[(name(0), true), (name(2), true)],
    )
    .await;
    assert_serves(lan, ip, order[0]);

    // No ready endpoint anywhere: no node may attract the traffic.
    set_endpoints(
        &cluster.client,
        "local",
        &[(name(0), false), (name(2), false)],
    )
    .await;
    assert_nobody_answers(lan, ip);
}
