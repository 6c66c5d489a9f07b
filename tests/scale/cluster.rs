//! The cluster of the scale measurement: a real kube-apiserver + etcd in a namespace of the test
//! LAN, three `ferrolb speaker`s in Kubernetes mode (gossip on) with a speaker Pod each, and the
//! objects a controller, kubelet and EndpointSlice controller would write, written directly:
//! LoadBalancer Services with their status IPs and one ready EndpointSlice each. No ferrolb
//! controller runs: the speakers only read the status, and thousands of allocations would load
//! the two shared cores during the very measurement.

use std::net::Ipv6Addr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::e2e::api::{self, lb_service};
use crate::e2e::control_plane::assets_dir;
use crate::e2e::{APPS, ControlPlane, NAMESPACE};
use crate::netns::{Lan, environment_ready_with, wait_for};
use crate::speaker_lan::{
    API_IP, API_IP6, create_ready_node, create_speaker_pod, speaker_pod_name, start_kube_speaker,
};

/// The pool, on the LAN's /64 (2001:db8::a:0 - 2001:db8::a:ffff).
const POOL: &str = "address-pools:
- name: scale
  protocol: layer2
  addresses:
  - 2001:db8::a:0/112
";
/// Concurrent API requests while creating the objects.
const CONCURRENCY: usize = 32;

/// The `i`th Service's EXTERNAL-IP.
pub fn vip(i: usize) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0xa, 0)) + 1 + i as u128)
}

/// The `i`th Service's endpoint (bookkeeping only: nothing is sent to it).
fn pod_ip(i: usize) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0x244, 0, 0, 0, 0, 0)) + 1 + i as u128)
}

/// Field order is drop order: the control plane stops before the LAN (and its speakers) goes.
pub struct ScaleCluster {
    pub plane: ControlPlane,
    pub client: Client,
    pub lan: Lan,
    kubeconfig: PathBuf,
}

impl ScaleCluster {
    /// `None` when the test is skipped (no `KUBEBUILDER_ASSETS`, no root).
    pub async fn start(test: &str, binary: &Path) -> Option<ScaleCluster> {
        assets_dir(test)?;
        if !environment_ready_with(test, &["socat"]) {
            return None;
        }
        let mut lan = Lan::new(3, binary);
        let (api_ns, _) = lan.add_host("api", "v5", API_IP, API_IP6);
        let plane = ControlPlane::start_in_netns(test, &api_ns, API_IP.parse().unwrap())
            .await
            .expect("KUBEBUILDER_ASSETS is set");
        let client = plane.client().await;
        let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/ferrolb/crds");
        plane.kubectl(&["apply", "-f", &crds.display().to_string()]);
        api::create_namespace(&client, NAMESPACE).await;
        api::create_namespace(&client, APPS).await;
        api::apply_config(&client, NAMESPACE, POOL).await;
        for node in &lan.nodes {
            create_ready_node(&client, &node.name, &node.ip4).await;
            create_speaker_pod(&client, &node.name).await;
        }
        let kubeconfig = plane
            .lan_kubeconfig()
            .expect("namespaced control plane")
            .to_path_buf();
        let mut cluster = ScaleCluster {
            plane,
            client,
            lan,
            kubeconfig,
        };
        for i in 0..cluster.lan.nodes.len() {
            cluster.start_speaker(i);
        }
        for i in 0..cluster.lan.nodes.len() {
            cluster.wait_ready(i);
        }
        Some(cluster)
    }

    /// Starts node `i`'s speaker, as its DaemonSet pod would run it.
    pub fn start_speaker(&mut self, i: usize) {
        let pod = speaker_pod_name(&self.lan.nodes[i].name);
        // Per-Service info lines for thousands of Services would only measure the logger; the
        // loop's "ownership changed" line times each takeover's pass. The loop's module alone:
        // a target matches every target it begins, and the longer directive wins, so
        // `kubernetes::` keeps the room's other modules (the status writer, the pass) at warn.
        let env = [
            ("POD_NAME", pod.as_str()),
            (
                "RUST_LOG",
                "warn,ferrolb::speaker::kubernetes=info,ferrolb::speaker::kubernetes::=warn",
            ),
        ];
        start_kube_speaker(&mut self.lan, i, &self.kubeconfig, &env);
    }

    /// Waits until node `i`'s speaker answers `/readyz` with 200.
    pub fn wait_ready(&mut self, i: usize) {
        let ready = wait_for(Duration::from_secs(300), || {
            (self.lan.http_get(i, "/readyz").0 == 200).then_some(())
        });
        assert!(
            ready.is_some(),
            "speaker {} never became ready; log:\n{}",
            self.lan.nodes[i].name,
            self.lan.log(i)
        );
    }

    pub fn speaker_pid(&self, i: usize) -> Option<u32> {
        self.lan.nodes[i]
            .child
            .as_ref()
            .map(std::process::Child::id)
    }

    /// Creates Services `range` (IPv6, no NodePorts), writes each one's EXTERNAL-IP
    /// ([`vip`]) into its status and gives it one ready endpoint (on the nodes in turn; the
    /// traffic policy is Cluster, so any ready endpoint makes it announceable). Returns how long
    /// that took.
    pub async fn create_services(&self, range: Range<usize>) -> Duration {
        let nodes: Vec<String> = self.lan.nodes.iter().map(|n| n.name.clone()).collect();
        create_services(&self.client, &nodes, range).await
    }
}

/// [`ScaleCluster::create_services`] on any cluster: Services `range` with their [`vip`] in
/// their status and one ready endpoint each, on `nodes` in turn. Returns how long that took.
pub async fn create_services(client: &Client, nodes: &[String], range: Range<usize>) -> Duration {
    let start = Instant::now();
    stream::iter(range)
        .for_each_concurrent(CONCURRENCY, |i| {
            let client = client.clone();
            let node = nodes[i % nodes.len()].clone();
            async move { create_one(&client, i, &node).await }
        })
        .await;
    start.elapsed()
}

async fn create_one(client: &Client, i: usize, node: &str) {
    let services: Api<Service> = Api::namespaced(client.clone(), APPS);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), APPS);
    let name = format!("svc-{i}");
    let service = lb_service(
        &name,
        json!({ "spec": {
            "ipFamilies": ["IPv6"],
            "ipFamilyPolicy": "SingleStack",
            "allocateLoadBalancerNodePorts": false,
        } }),
    );
    let status =
        json!({ "status": { "loadBalancer": { "ingress": [{ "ip": vip(i).to_string() }] } } });
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {
            "name": format!("{name}-scale"),
            "labels": {
                "kubernetes.io/service-name": name,
                "endpointslice.kubernetes.io/managed-by": "ferrolb-e2e",
            },
        },
        "addressType": "IPv6",
        "ports": [{ "name": "http", "protocol": "TCP", "port": 8080 }],
        "endpoints": [{
            "addresses": [pod_ip(i).to_string()],
            "nodeName": node,
            "conditions": { "ready": true, "serving": true },
        }],
    }))
    .expect("valid EndpointSlice");
    // A loaded API server sometimes times a request out: retry, the objects are idempotent.
    retry(&format!("create Service {name}"), || async {
        match services.create(&PostParams::default(), &service).await {
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            other => other.map(drop),
        }
    })
    .await;
    retry(&format!("status of Service {name}"), || async {
        services
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .map(drop)
    })
    .await;
    retry(&format!("EndpointSlice of {name}"), || async {
        match slices.create(&PostParams::default(), &slice).await {
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            other => other.map(drop),
        }
    })
    .await;
}

async fn retry<F, Fut>(what: &str, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), kube::Error>>,
{
    for n in 1.. {
        match attempt().await {
            Ok(()) => return,
            Err(e) if n < 10 => {
                eprintln!("{what}: {e} (attempt {n}, retrying)");
                tokio::time::sleep(Duration::from_millis(500 * n)).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}
