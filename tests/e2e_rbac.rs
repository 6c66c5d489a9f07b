//! The chart's RBAC under the real authorizer, end to end. The other e2e suites run the binaries
//! as `system:masters`; here the chart is rendered with helm, its ServiceAccounts, Roles,
//! ClusterRoles and bindings (with its CRDs, Namespace and ConfigMap) are applied, and the real
//! `ferrolb controller` and two `ferrolb speaker`s (Kubernetes mode, in the node namespaces of
//! `tests/e2e/speaker_lan.rs`) run with a token of their own ServiceAccount and the flags of the
//! chart's Deployment and DaemonSet. The kube-apiserver (`--authorization-mode=RBAC`) keeps an
//! audit log of every request.
//!
//! Each test drives the components through their normal work (a pool, a Service given an address,
//! its events, the pool status and ConfigurationStates, the speakers' ServiceL2Status, the leader
//! Lease, the gossip key Secret), then checks that every call the components made was allowed
//! (no 401 or 403 in the audit log, every call one `ferrolb::k8s::access::API_ACCESS` lists), that
//! every grant of that table which the scenario reaches was used, and that no log says
//! "forbidden"; then that calls outside the grants are refused (403, seen as such in the audit
//! log). One test per config source: MetalLB's custom resources (the chart's default) and the
//! legacy ConfigMap.
//!
//! Skipped, with a message, when `KUBEBUILDER_ASSETS` is unset (even in CI). With it set, missing
//! root, tools or helm fail the test when `CI` is set, and skip it otherwise.

#[path = "e2e/chart_release.rs"]
mod chart_release;
#[allow(dead_code)] // the chart tests' helpers; this suite only renders the chart
#[path = "chart/support.rs"]
mod chart_support;
mod e2e;
mod netns;
#[path = "e2e/rbac_checks.rs"]
mod rbac_checks;
#[path = "e2e/speaker_lan.rs"]
mod speaker_lan;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};
use serde_json::{Value, json};

use chart_release::{ChartCommand, Source, account_user, service_account};
use chart_support::{Manifests, require_tool};
use e2e::api::{create_service, delete_service, events_about, lb_service, wait_for_ips};
use e2e::control_plane::{PlaneOptions, assets_dir, client_from};
use e2e::ferrolb::{binary, http_get};
use e2e::process::{ChildGuard, free_port};
use e2e::wait::{PATIENCE, wait_for};
use e2e::{APPS, ControlPlane, NAMESPACE, api};
use netns::{Lan, environment_ready_with};
use rbac_checks::Component;
use speaker_lan::{
    API_IP, API_IP6, SETTLE, assert_only_answerer, create_labelled_speaker_pod, create_ready_node,
    ranked, set_endpoints, speaker_logs,
};

/// The controller pod's name (its hostname, which names the Lease holder: the chart passes no
/// POD_NAME to the controller).
const CONTROLLER_POD: &str = "lb-ferrolb-controller-e2e";
const SERVICE: &str = "web";
/// The first address of the pool either source configures.
const SERVICE_IP: &str = "192.0.2.200";

/// The config as a user writes it for `--config-source crds`: the pool the Service gets its
/// address from, a pool that selects namespaces by label (so the controller watches Namespaces;
/// no namespace has the label), an L2Advertisement, and a BGPPeer (nobody answers at its
/// address: the ServiceBGPStatus objects list configured peers, not sessions) with a
/// BGPAdvertisement of the same pool, so it is announced by both modes.
const POOLS: &str = "apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec:
  addresses: [192.0.2.200-192.0.2.207]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: labelled, namespace: ferrolb-system}
spec:
  addresses: [198.51.100.0/29]
  serviceAllocation:
    namespaceSelectors:
    - matchLabels: {ferrolb-e2e/pool: labelled}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ferrolb-system}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: tor, namespace: ferrolb-system}
spec: {myASN: 64500, peerASN: 64501, peerAddress: 203.0.113.254}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: lan, namespace: ferrolb-system}
spec: {ipAddressPools: [lan]}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_allows_every_call_with_the_crd_config_source() {
    run(
        "chart_rbac_allows_every_call_with_the_crd_config_source",
        Source::Crds,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_allows_every_call_with_the_configmap_config_source() {
    run(
        "chart_rbac_allows_every_call_with_the_configmap_config_source",
        Source::ConfigMap,
    )
    .await;
}

/// Everything one test runs; dropped in field order: the controller, the control plane, then
/// the LAN (speakers and every namespace).
struct Cluster {
    controller: ChildGuard,
    plane: ControlPlane,
    lan: Lan,
    client: Client,
    chart: Manifests,
    /// Each component's ServiceAccount user.
    users: [(Component, String); 2],
    /// Clients with the controller's and the speaker's tokens, from the test process.
    token_clients: [Client; 2],
    controller_command: ChartCommand,
    /// The speaker Pod of each node.
    pods: Vec<String>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- controller (last lines of {})\n{}\n{}",
                self.controller.log_path().display(),
                self.controller.log_tail(40),
                speaker_logs(&self.lan)
            );
            if let Some(log) = self.plane.audit_log() {
                let refused = rbac_checks::refused_so_far(log, &self.users);
                eprintln!("--- calls of the components refused so far (audit log)\n{refused}");
            }
        }
    }
}

async fn run(test: &str, source: Source) {
    if assets_dir(test).is_none() || !environment_ready_with(test, &["socat"]) {
        return;
    }
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let cluster = setup(test, source, &helm).await;
    drive(&cluster, source).await;

    let users = &cluster.users;
    let audit_log = cluster.plane.audit_log().expect("audit log on");
    rbac_checks::wait_for_every_grant_used(audit_log, users, source).await;
    rbac_checks::assert_every_call_allowed(audit_log, users);
    let mut logs = vec![("controller".to_string(), cluster.controller.log_text())];
    for (i, node) in cluster.lan.nodes.iter().enumerate() {
        logs.push((format!("speaker {}", node.name), cluster.lan.log(i)));
    }
    for (name, log) in &logs {
        assert!(
            !log.to_lowercase().contains("forbidden"),
            "the {name} log says forbidden:\n{log}"
        );
    }

    let refused = rbac_checks::refused_calls(
        cluster.token_clients.clone(),
        &cluster.pods[0],
        cluster
            .controller_command
            .flag("--memberlist-secret-name")
            .expect("the chart has the controller manage the gossip key Secret"),
        cluster
            .controller_command
            .flag("--lease-name")
            .expect("lease name"),
    )
    .await;
    rbac_checks::wait_for_refusals_audited(audit_log, users, &refused).await;
}

/// Renders and installs the chart for `source`, and starts the controller and a speaker on each
/// of the two nodes with their ServiceAccounts' tokens and the chart's flags.
async fn setup(test: &str, source: Source, helm: &Path) -> Cluster {
    let mut lan = Lan::new(2, Path::new(env!("CARGO_BIN_EXE_ferrolb")));
    let (api_ns, _) = lan.add_host("api", "v5", API_IP, API_IP6);
    let audit = PlaneOptions { audit: true };
    let plane = ControlPlane::start_in_netns_with(test, &api_ns, API_IP.parse().unwrap(), audit)
        .await
        .expect("KUBEBUILDER_ASSETS is set");
    let client = plane.client().await;

    let chart = chart_release::render(helm, plane.dir(), source);
    let controller = chart.workload("controller").expect("a controller");
    let speaker = chart.workload("speaker").expect("a speaker");
    for workload in [controller, speaker] {
        assert!(
            chart_support::args(workload).contains(&format!("--config-source={}", source.flag())),
            "{source:?}: {:?}",
            chart_support::args(workload)
        );
    }
    chart_release::install(&plane, &chart);
    api::create_namespace(&client, APPS).await;
    if source == Source::Crds {
        let path = plane.dir().join("pools.yaml");
        std::fs::write(&path, POOLS).unwrap();
        plane.kubectl(&["apply", "-f", &path.display().to_string()]);
    }
    // What the kubelets would have made: the Nodes, and a Ready speaker Pod on each, labelled
    // as the DaemonSet's template labels them.
    let labels = &speaker["spec"]["template"]["metadata"]["labels"];
    let speaker_set = speaker["metadata"]["name"].as_str().unwrap();
    let mut pods = Vec::new();
    for node in &lan.nodes {
        create_ready_node(&client, &node.name, &node.ip4).await;
        let pod = format!("{speaker_set}-{}", node.name);
        create_labelled_speaker_pod(&client, &pod, &node.name, labels).await;
        pods.push(pod);
    }

    let token = |workload: &Value| {
        let client = client.clone();
        let account = service_account(workload);
        async move { chart_release::token(&client, NAMESPACE, &account).await }
    };
    let (controller_token, speaker_token) = (token(controller).await, token(speaker).await);
    let controller_kubeconfig =
        plane.token_kubeconfig("kubeconfig-controller", plane.server(), &controller_token);
    let lan_server = plane.lan_server().expect("namespaced control plane");
    let speaker_kubeconfig =
        plane.token_kubeconfig("kubeconfig-speaker", lan_server, &speaker_token);
    let speaker_here =
        plane.token_kubeconfig("kubeconfig-speaker-host", plane.server(), &speaker_token);
    let token_clients = [
        client_from(&controller_kubeconfig).await,
        client_from(&speaker_here).await,
    ];

    let users = [Component::Controller, Component::Speaker].map(|c| {
        let workload = chart.workload(c.name()).expect("rendered workload");
        (c, account_user(NAMESPACE, &service_account(workload)))
    });
    let (controller_process, controller_command) =
        start_controller(&plane, controller, &controller_kubeconfig).await;
    let mut cluster = Cluster {
        controller: controller_process,
        plane,
        lan,
        client,
        chart,
        users,
        token_clients,
        controller_command,
        pods,
    };
    start_speakers(&mut cluster, &speaker_kubeconfig).await;
    cluster
}

/// Starts `ferrolb controller` with the Deployment's args and env (its metrics on a free port of
/// 127.0.0.1 instead of the pod's) and waits until it is ready.
async fn start_controller(
    plane: &ControlPlane,
    workload: &Value,
    kubeconfig: &Path,
) -> (ChildGuard, ChartCommand) {
    let fields = BTreeMap::from([("metadata.namespace", NAMESPACE.to_string())]);
    let mut command = ChartCommand::of(workload, &fields, &BTreeMap::new());
    let port = free_port();
    command.set_flag("--metrics-addr", &format!("127.0.0.1:{port}"));
    let mut process = Command::new(binary());
    process
        .arg("controller")
        .args(&command.args)
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .env_remove("KUBECONFIG")
        .env_remove("POD_NAME")
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .env("HOSTNAME", CONTROLLER_POD);
    let log = plane.dir().join("controller.log");
    let mut controller = ChildGuard::spawn("ferrolb controller", process, &log);
    wait_for(
        "the controller to answer /readyz with 200",
        PATIENCE,
        || {
            controller.assert_running();
            async move { matches!(http_get(port, "/readyz").await, Some((200, _))).then_some(()) }
        },
    )
    .await;
    (controller, command)
}

/// Plays the kubelet for the speakers: once the controller has created the gossip key Secret,
/// puts it where the DaemonSet mounts it, then starts each node's speaker with the DaemonSet's
/// args and env, and waits until each is ready.
async fn start_speakers(cluster: &mut Cluster, kubeconfig: &Path) {
    let secret = cluster
        .controller_command
        .flag("--memberlist-secret-name")
        .expect("the chart has the controller manage the gossip key Secret")
        .to_string();
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let data = wait_for(
        "the controller to create the gossip key Secret",
        PATIENCE,
        || {
            let secrets = secrets.clone();
            let secret = secret.clone();
            async move { secrets.get_opt(&secret).await.ok()??.data }
        },
    )
    .await;
    let workload = cluster.chart.workload("speaker").unwrap().clone();
    let volumes = workload["spec"]["template"]["spec"]["volumes"].clone();
    for i in 0..cluster.lan.nodes.len() {
        let node = cluster.lan.nodes[i].name.clone();
        let mut mounts = BTreeMap::new();
        for volume in volumes.as_array().unwrap() {
            assert_eq!(volume["secret"]["secretName"], secret.as_str(), "{volume}");
            let name = volume["name"].as_str().unwrap();
            let folder = cluster.plane.dir().join(format!("{node}-volume-{name}"));
            std::fs::create_dir_all(&folder).unwrap();
            for (key, value) in &data {
                std::fs::write(folder.join(key), &value.0).unwrap();
            }
            mounts.insert(name, folder);
        }
        let fields = BTreeMap::from([
            ("metadata.namespace", NAMESPACE.to_string()),
            ("spec.nodeName", node.clone()),
            ("metadata.name", cluster.pods[i].clone()),
            ("status.hostIP", cluster.lan.nodes[i].ip4.clone()),
        ]);
        let command = ChartCommand::of(&workload, &fields, &mounts);
        let mut args: Vec<PathBuf> = command.args.iter().map(PathBuf::from).collect();
        args.push(format!("--kubeconfig={}", kubeconfig.display()).into());
        let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let env: Vec<(&str, &str)> = command
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        cluster.lan.start_speaker(i, &args, &env);
    }
    for i in 0..cluster.lan.nodes.len() {
        let lan = &mut cluster.lan;
        let ready = netns::wait_for(SETTLE, || {
            assert!(lan.running(i), "speaker {} exited", lan.nodes[i].name);
            (lan.http_get(i, "/readyz").0 == 200).then_some(())
        });
        assert!(
            ready.is_some(),
            "speaker {} never became ready",
            lan.nodes[i].name
        );
    }
}

/// The components' normal work, each step awaited until the API shows it done.
async fn drive(cluster: &Cluster, source: Source) {
    let (client, lan) = (&cluster.client, &cluster.lan);
    let services: Api<Service> = Api::namespaced(client.clone(), APPS);
    create_service(&services, &lb_service(SERVICE, json!({}))).await;
    assert_eq!(wait_for_ips(&services, SERVICE).await, [SERVICE_IP]);
    set_endpoints(client, SERVICE, &[(&lan.nodes[0].name, true)]).await;
    let owner = ranked(lan, SERVICE_IP, &[0, 1])[0];
    let owner_name = lan.nodes[owner].name.clone();
    assert_only_answerer(lan, SERVICE_IP, owner);

    // The owner's ServiceL2Status, owned by its Pod (which it read).
    let statuses = metallb_api(client, "ServiceL2Status", "servicel2statuses");
    let owner_pod = cluster.pods[owner].clone();
    wait_for("the owner's ServiceL2Status", PATIENCE, || {
        let (statuses, owner_name, owner_pod) =
            (statuses.clone(), owner_name.clone(), owner_pod.clone());
        async move {
            let seen = l2_statuses_of(&statuses, SERVICE).await?;
            let one = seen.first()?;
            let by_owner = seen.len() == 1
                && one.data["status"]["node"] == owner_name.as_str()
                && one.metadata.owner_references.as_ref()?.first()?.name == owner_pod;
            by_owner.then_some(())
        }
    })
    .await;

    for (reason, from) in [
        ("IPAllocated", None),
        ("nodeAssigned", Some(owner_name.clone())),
    ] {
        wait_for(&format!("a {reason} event"), PATIENCE, || {
            let from = from.clone();
            async move {
                let events = events_about(client, APPS, "Service", SERVICE).await;
                events
                    .iter()
                    .any(|e| {
                        e.reason == reason
                            && from.as_ref().is_none_or(|n| e.reporting_instance == *n)
                    })
                    .then_some(())
            }
        })
        .await;
    }

    // `kubectl auth can-i patch pods --as` the speaker's ServiceAccount: no.
    let speaker_user = &cluster.users[1].1;
    let can_i = std::process::Command::new("kubectl")
        .arg(format!(
            "--kubeconfig={}",
            cluster.plane.kubeconfig().display()
        ))
        .args([
            "auth",
            "can-i",
            "patch",
            "pods",
            "-n",
            NAMESPACE,
            "--as",
            speaker_user,
        ])
        .output()
        .expect("kubectl");
    assert_eq!(
        String::from_utf8_lossy(&can_i.stdout).trim(),
        "no",
        "{speaker_user} may patch pods: {}",
        String::from_utf8_lossy(&can_i.stderr)
    );

    // The leader's Lease.
    let lease = cluster.controller_command.flag("--lease-name").unwrap();
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    wait_for("the controller to hold its Lease", PATIENCE, || {
        let leases = leases.clone();
        async move {
            let holder = leases.get(lease).await.ok()?.spec?.holder_identity?;
            holder.starts_with(CONTROLLER_POD).then_some(())
        }
    })
    .await;

    // MetalLB's status objects: the pool's usage and each component's ConfigurationState.
    let states = metallb_api(client, "ConfigurationState", "configurationstates");
    let mut valid = vec!["speaker-node-a".to_string(), "speaker-node-b".to_string()];
    if source == Source::Crds {
        let pools = metallb_api(client, "IPAddressPool", "ipaddresspools");
        wait_for("the pool's status to count the address", PATIENCE, || {
            let pools = pools.clone();
            async move {
                let pool = pools.get("lan").await.ok()?;
                (pool.data["status"]["assignedIPv4"] == 1).then_some(())
            }
        })
        .await;
        valid.push("controller".to_string());
    }
    for name in valid {
        wait_for(
            &format!("ConfigurationState {name} Valid"),
            PATIENCE,
            || {
                let (states, name) = (states.clone(), name.clone());
                async move {
                    let state = states.get(&name).await.ok()?;
                    (state.data["status"]["result"] == "Valid").then_some(())
                }
            },
        )
        .await;
    }

    // Deleted: its announcer deletes its ServiceL2Status.
    delete_service(&services, SERVICE).await;
    wait_for("the ServiceL2Status to be deleted", PATIENCE, || {
        let statuses = statuses.clone();
        async move {
            l2_statuses_of(&statuses, SERVICE)
                .await?
                .is_empty()
                .then_some(())
        }
    })
    .await;
}

fn metallb_api(client: &Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("metallb.io", "v1beta1", kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    Api::namespaced_with(client.clone(), NAMESPACE, &resource)
}

/// The ServiceL2Status objects of `service` (`None` when the list fails).
async fn l2_statuses_of(api: &Api<DynamicObject>, service: &str) -> Option<Vec<DynamicObject>> {
    let selector = format!("metallb.io/service-name={service}");
    let list = api
        .list(&ListParams::default().labels(&selector))
        .await
        .ok()?;
    Some(list.items)
}
