//! The speaker suites' cluster on the network tests' LAN (`tests/e2e_speaker.rs`,
//! `tests/e2e_speaker_faults.rs`): a real kube-apiserver + etcd in a namespace of its own on the
//! bridge, the real controller, real speakers in the node namespaces, and what the test plays
//! instead of kubelet and kube-proxy. Included by each suite with `#[path]` next to `mod e2e;`
//! and `mod netns;` (the controller suites have no LAN); each uses a different part.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::e2e::control_plane::assets_dir;
use crate::e2e::{APPS, ControlPlane, Controller, ControllerOptions, NAMESPACE, api};
use crate::netns::{self, Lan, distinct, environment_ready_with, in_ns, ranking, stdout, wait_for};

pub const API_IP: &str = "192.0.2.50";
pub const API_IP6: &str = "2001:db8::50";
pub const POOL: &str = "address-pools:
- name: lan
  protocol: layer2
  addresses:
  - 192.0.2.200-192.0.2.207
";
/// How long the LAN may take to reflect a change made through the API (watch, election, GARP).
pub const SETTLE: Duration = Duration::from_secs(60);
/// The label the chart puts on speaker pods (the speakers' default `--ml-labels`).
const SPEAKER_LABEL: (&str, &str) = ("app.kubernetes.io/component", "speaker");

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
pub struct Cluster {
    pub controller: Controller,
    pub plane: ControlPlane,
    pub client: Client,
    pub lan: Lan,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", speaker_logs(&self.lan));
        }
    }
}

pub fn speaker_logs(lan: &Lan) -> String {
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

/// What [`setup_with`] builds besides the fixed parts.
pub struct Setup<'a> {
    /// The MetalLB-format ConfigMap's `config`.
    pub pool: &'a str,
    /// The nodes that run a speaker (and a speaker Pod); every node has a Ready Node object.
    pub speakers: &'a [usize],
    /// Node names other than the LAN's (`node-a`, ...), by node.
    pub names: Option<&'a [&'a str]>,
    /// Flags added to every speaker's command line (e.g. `--gossip=false`).
    pub speaker_args: &'a [&'a str],
    /// Environment added to every speaker's (e.g. a quieter `RUST_LOG`).
    pub speaker_env: &'a [(&'a str, &'a str)],
    /// The chart's CRD files (e.g. `ipaddresspools.yaml`) not applied: a cluster that never
    /// served those kinds.
    pub without_crds: &'a [&'a str],
    /// MetalLB's custom resources (multi-document YAML) applied with `kubectl` before the
    /// controller and speakers start. When not empty, both read them (`--config-source crds`)
    /// and `pool` is not written.
    pub objects: &'a str,
    /// Run on the LAN before the control plane and the speakers start (e.g. to start a router
    /// the speakers connect to).
    pub on_lan: Option<&'a mut dyn FnMut(&mut Lan)>,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            pool: POOL,
            speakers: &[0, 1, 2],
            names: None,
            speaker_args: &[],
            speaker_env: &[],
            without_crds: &[],
            objects: "",
            on_lan: None,
        }
    }
}

/// [`setup_with`] the default pool and a speaker on each of the three nodes.
pub async fn setup(test: &str) -> Option<Cluster> {
    setup_with(test, Setup::default()).await
}

/// Builds the LAN, the control plane in its own namespace, the Nodes, the controller and the
/// speakers of `setup.speakers` (each with a Ready speaker Pod, as the DaemonSet would have),
/// waiting until each is ready. `None` when the test is skipped.
pub async fn setup_with(test: &str, setup: Setup<'_>) -> Option<Cluster> {
    assets_dir(test)?;
    if !environment_ready_with(test, &["socat"]) {
        return None;
    }
    // The speakers run the binary under test (`FERROLB_E2E_BIN` for a measurement's).
    let mut lan = Lan::new(3, &crate::e2e::ferrolb::binary());
    for (node, name) in lan.nodes.iter_mut().zip(setup.names.unwrap_or_default()) {
        node.name = (*name).to_owned();
    }
    let (api_ns, _) = lan.add_host("api", "v5", API_IP, API_IP6);
    for i in 0..lan.nodes.len() {
        play_kube_proxy_node(&mut lan, i);
    }
    if let Some(on_lan) = setup.on_lan {
        on_lan(&mut lan);
    }
    let plane = ControlPlane::start_in_netns(test, &api_ns, API_IP.parse().unwrap())
        .await
        .expect("KUBEBUILDER_ASSETS is set");
    let client = plane.client().await;
    // The speakers write ServiceL2Status and ConfigurationState objects: their CRDs first.
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/ferrolb/crds");
    let mut files: Vec<String> = std::fs::read_dir(&crds)
        .expect("the chart's crds folder")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            name.ends_with(".yaml") && !setup.without_crds.contains(&name)
        })
        .map(|path| path.display().to_string())
        .collect();
    files.sort();
    let mut apply = vec!["apply"];
    for file in &files {
        apply.extend(["-f", file.as_str()]);
    }
    plane.kubectl(&apply);
    api::create_namespace(&client, NAMESPACE).await;
    api::create_namespace(&client, APPS).await;
    let crds_source = !setup.objects.is_empty();
    if crds_source {
        plane.wait_crds_established();
        let file = plane.dir().join("metallb-objects.yaml");
        std::fs::write(&file, setup.objects).expect("write the MetalLB objects");
        plane.kubectl(&["apply", "-f", &file.display().to_string()]);
    } else {
        api::apply_config(&client, NAMESPACE, setup.pool).await;
    }
    for node in &lan.nodes {
        create_ready_node(&client, &node.name, &node.ip4).await;
    }
    for &i in setup.speakers {
        create_speaker_pod(&client, &lan.nodes[i].name).await;
    }
    let mut options = ControllerOptions::new(NAMESPACE, "ctrl");
    let mut speaker_args: Vec<&str> = setup.speaker_args.to_vec();
    if crds_source {
        options = options.crds();
        speaker_args.insert(0, "--config-source=crds");
    }
    let controller = Controller::start_ready(&plane, &options).await;

    let kubeconfig = plane.lan_kubeconfig().expect("namespaced control plane");
    for &i in setup.speakers {
        start_kube_speaker_with(&mut lan, i, kubeconfig, setup.speaker_env, &speaker_args);
    }
    let cluster = Cluster {
        controller,
        plane,
        client,
        lan,
    };
    // Ready = caches synced, announcer sockets open and gossip joined (when others run).
    for &i in setup.speakers {
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

/// Starts node `i`'s `ferrolb speaker` in Kubernetes mode, as the chart's DaemonSet runs it,
/// with `env` added to its environment.
pub fn start_kube_speaker(lan: &mut Lan, i: usize, kubeconfig: &Path, env: &[(&str, &str)]) {
    start_kube_speaker_with(lan, i, kubeconfig, env, &[]);
}

/// [`start_kube_speaker`] with `extra` flags after the chart's.
pub fn start_kube_speaker_with(
    lan: &mut Lan,
    i: usize,
    kubeconfig: &Path,
    env: &[(&str, &str)],
    extra: &[&str],
) {
    let key_file = lan.key_file();
    let node = lan.nodes[i].name.clone();
    let ip = lan.nodes[i].ip4.clone();
    let metrics = format!("{ip}:7473");
    let mut args: Vec<&OsStr> = vec![
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
    args.extend(extra.iter().map(OsStr::new));
    lan.start_speaker(i, &args, env);
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
pub fn accept_on_every_node(lan: &Lan, ip: &str) {
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
pub async fn create_ready_node(client: &Client, name: &str, ip: &str) {
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

/// The name of the speaker Pod on `node`.
pub fn speaker_pod_name(node: &str) -> String {
    format!("speaker-{node}")
}

/// The speaker Pod the chart's DaemonSet would run on `node`, Ready (status written as the
/// kubelet would): the speakers count the nodes running one (`--ml-labels`).
pub async fn create_speaker_pod(client: &Client, node: &str) {
    let labels = json!({ SPEAKER_LABEL.0: SPEAKER_LABEL.1 });
    create_labelled_speaker_pod(client, &speaker_pod_name(node), node, &labels).await;
}

/// [`create_speaker_pod`] with the Pod's `name` and `labels` (a JSON object) given, as a
/// DaemonSet's template sets them.
pub async fn create_labelled_speaker_pod(
    client: &Client,
    name: &str,
    node: &str,
    labels: &serde_json::Value,
) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "nodeName": node,
            "hostNetwork": true,
            "containers": [{ "name": "speaker", "image": "ferrolb:e2e" }],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("create Pod {name}: {e}"));
    let status = json!({ "status": {
        "phase": "Running",
        "conditions": [{ "type": "Ready", "status": "True" }],
    } });
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap_or_else(|e| panic!("set Pod {name} status: {e}"));
}

/// Writes the one EndpointSlice of Service `service` (as the EndpointSlice controller would):
/// one endpoint per `(node, ready)`.
pub async fn set_endpoints(client: &Client, service: &str, endpoints: &[(&str, bool)]) {
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

pub fn node_index(lan: &Lan, name: &str) -> usize {
    lan.nodes.iter().position(|n| n.name == name).unwrap()
}

/// The election's order of `nodes` (indices) for `ip`, first = owner.
pub fn ranked(lan: &Lan, ip: &str, nodes: &[usize]) -> Vec<usize> {
    let names: Vec<&str> = nodes.iter().map(|&i| lan.nodes[i].name.as_str()).collect();
    ranking(ip, &names)
        .iter()
        .map(|name| node_index(lan, name))
        .collect()
}

/// What the server behind `ip`:80 says its node is, as seen from the client (None: no answer).
pub fn connect_from_client(lan: &Lan, ip: &str) -> Option<String> {
    let out = in_ns(&lan.client_ns, &["python3", "-c", NAME_CLIENT, ip]);
    let said = stdout(&out).trim().to_string();
    (!said.is_empty()).then_some(said)
}

/// Node `owner` alone serves `ip`: it is the only ARP answerer and the client's traffic lands on it.
pub fn assert_serves(lan: &Lan, ip: &str, owner: usize) {
    assert_only_answerer(lan, ip, owner);
    assert_traffic_reaches(lan, ip, owner);
}

/// A Service `name` in [`APPS`] with a ready endpoint, its address answered by its owner
/// alone; returns the address and the ranking of the three nodes for it.
pub async fn answered_service(cluster: &Cluster, name: &str) -> (String, Vec<usize>) {
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(cluster.client.clone(), APPS);
    let somewhere = cluster.lan.nodes[0].name.clone();
    set_endpoints(&cluster.client, name, &[(&somewhere, true)]).await;
    api::create_service(&services, &api::lb_service(name, json!({}))).await;
    let ip = api::wait_for_ips(&services, name).await.remove(0);
    let order = ranked(&cluster.lan, &ip, &[0, 1, 2]);
    assert_only_answerer(&cluster.lan, &ip, order[0]);
    (ip, order)
}

/// Waits until ARP for `ip` is answered by node `owner` and nobody else, then checks it over
/// several more requests (one reply each, all from the owner).
pub fn assert_only_answerer(lan: &Lan, ip: &str, owner: usize) {
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
pub fn assert_traffic_reaches(lan: &Lan, ip: &str, owner: usize) {
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
pub fn assert_nobody_answers(lan: &Lan, ip: &str) {
    let silent = wait_for(SETTLE, || lan.arping(ip, 1).is_empty().then_some(()));
    assert!(
        silent.is_some(),
        "{ip}: still answered by {:?}",
        lan.arping(ip, 1)
    );
    let macs = lan.arping(ip, 3);
    assert!(macs.is_empty(), "{ip}: answered by {macs:?}");
}

/// The ANNOUNCED-BY cell of each Service in `plan`'s table, by name.
pub fn announced_by(table: &str) -> BTreeMap<String, String> {
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    let column = header.find("ANNOUNCED-BY").expect("an ANNOUNCED-BY column");
    let name_at = header.find(" NAME ").expect("a NAME column") + 1;
    lines
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let name = l[name_at..].split_whitespace().next().unwrap_or_default();
            let by = l[column..].split_whitespace().next().unwrap_or_default();
            (name.to_owned(), by.to_owned())
        })
        .collect()
}

/// `ferrolb plan --nodes` over the cluster's own objects (`kubectl get svc,endpointslices`
/// in the apps namespace, `kubectl get nodes`) and `pool` as its config, with `extra` flags;
/// its table.
pub fn plan_table(cluster: &Cluster, pool: &str, extra: &[&str]) -> String {
    let dir = cluster.plane.dir().to_path_buf();
    let objects = dir.join("objects.yaml");
    let nodes = dir.join("nodes.yaml");
    let config = dir.join("config.yaml");
    let kubectl = |args: &[&str]| cluster.plane.kubectl(args);
    std::fs::write(
        &objects,
        kubectl(&["get", "svc,endpointslices", "-n", APPS, "-o", "yaml"]),
    )
    .unwrap();
    std::fs::write(&nodes, kubectl(&["get", "nodes", "-o", "yaml"])).unwrap();
    std::fs::write(&config, pool).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .arg("plan")
        .arg("--config")
        .arg(&config)
        .arg("--services")
        .arg(&objects)
        .arg("--nodes")
        .arg(&nodes)
        .args(extra)
        .output()
        .expect("run ferrolb plan");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
