//! `--metrics-secure` end to end (`metrics.secure` in the chart): the real `ferrolb controller` and
//! `ferrolb speaker` serve /metrics over HTTPS, and every request is authenticated with a
//! TokenReview and authorised with a SubjectAccessReview (`get` on the non-resource URL
//! `/metrics`) by a real kube-apiserver (`--authorization-mode=RBAC`).
//!
//! The chart is rendered with helm (`metrics.secure=true`) and its Namespace, CRDs,
//! ServiceAccounts, (Cluster)Roles and bindings applied, so the components review tokens with their
//! own ServiceAccount's token and the chart's grants; each runs with the args of its rendered
//! workload. The controller uses the self-signed certificate it makes at start; the speaker the
//! certificate of a Secret (`metrics.tlsSecret`), written where the DaemonSet mounts it, which the
//! client checks against its CA. Prometheus is a ServiceAccount bound to the chart's
//! `<fullname>-metrics-reader` ClusterRole; a second ServiceAccount has no grant.
//!
//! Skipped, with a message, when `KUBEBUILDER_ASSETS` is unset; helm missing fails it under `CI`.

#[allow(dead_code)] // the RBAC suite's helpers; this one renders its own values
#[path = "e2e/chart_release.rs"]
mod chart_release;
#[allow(dead_code)] // the chart tests' helpers; this suite only renders the chart
#[path = "chart/support.rs"]
mod chart_support;
mod e2e;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

use chart_release::{ChartCommand, service_account};
use chart_support::{Manifests, render_with, require_tool};
use e2e::certs::Pki;
use e2e::control_plane::{ControlPlane, assets_dir};
use e2e::ferrolb::{binary, http_get};
use e2e::https::{Trust, https_get, https_get_with};
use e2e::process::{ChildGuard, free_port};
use e2e::wait::{PATIENCE, wait_for};
use e2e::{NAMESPACE, api};

/// Where the Prometheus and the other ServiceAccount live.
const MONITORING: &str = "monitoring";
/// The Secret `metrics.tlsSecret` names (it need not exist: the test plays the kubelet's mount).
const TLS_SECRET: &str = "ferrolb-metrics-tls";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_metrics_answer_only_reviewed_and_authorised_tokens() {
    let test = "secure_metrics_answer_only_reviewed_and_authorised_tokens";
    if assets_dir(test).is_none() {
        return;
    }
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let mut plane = ControlPlane::start(test)
        .await
        .expect("KUBEBUILDER_ASSETS is set");
    let client = plane.client().await;

    // Self-signed for the controller; the Secret's certificate for the speaker (gossip off: the
    // speaker runs in the host's network namespace, alone).
    let self_signed = render_with(
        &helm,
        None,
        &[
            "--include-crds",
            "--set",
            "metrics.secure=true,namespace.podSecurityLabels=true",
        ],
    );
    let with_secret = render_with(
        &helm,
        None,
        &[
            "--set",
            &format!("metrics.secure=true,metrics.tlsSecret={TLS_SECRET}"),
            "--set",
            "speaker.memberlist.enabled=false",
        ],
    );
    chart_release::install(&plane, &self_signed);
    let reader_role = metrics_reader_role(&self_signed);

    // Prometheus, bound to the chart's reader role; and an account without that grant.
    api::create_namespace(&client, MONITORING).await;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), MONITORING);
    for name in ["prometheus", "stranger"] {
        let account = serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
        accounts
            .create(&PostParams::default(), &account)
            .await
            .unwrap_or_else(|e| panic!("create ServiceAccount {name}: {e}"));
    }
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": { "name": "prometheus-ferrolb-metrics" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": reader_role },
        "subjects": [{ "kind": "ServiceAccount", "name": "prometheus", "namespace": MONITORING }],
    });
    let path = plane.dir().join("prometheus-binding.json");
    std::fs::write(&path, binding.to_string()).unwrap();
    plane.kubectl(&["apply", "-f", &path.display().to_string()]);
    let prometheus = chart_release::token(&client, MONITORING, "prometheus").await;
    let stranger = chart_release::token(&client, MONITORING, "stranger").await;

    let (mut controller, controller_port) =
        start_controller(&plane, &client, self_signed.workload("controller").unwrap()).await;
    let any = Trust::Any;
    check_reviews(controller_port, &any, &prometheus, &stranger, "controller").await;
    let body = metrics_body(controller_port, &any, &prometheus).await;
    assert!(
        body.contains("# TYPE ferrolb_config_loaded gauge"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE ferrolb_config_updates_total counter"),
        "{body}"
    );

    let pki_dir = plane.dir().join("metrics-pki");
    std::fs::create_dir_all(&pki_dir).unwrap();
    let pki = Pki::generate(&pki_dir, &["127.0.0.1".parse().unwrap()]);
    let (mut speaker, speaker_port) = start_speaker(
        &plane,
        &client,
        with_secret.workload("speaker").unwrap(),
        &pki,
    )
    .await;
    let ca = Trust::Ca(pki.ca_cert.clone());
    check_reviews(speaker_port, &ca, &prometheus, &stranger, "speaker").await;
    let body = metrics_body(speaker_port, &ca, &prometheus).await;
    assert!(
        body.contains("# TYPE ferrolb_config_loaded gauge"),
        "{body}"
    );
    assert!(body.contains("ferrolb_speaker_"), "{body}");
    // The Secret's certificate is the one served: a client trusting another CA gets nowhere.
    let other_dir = plane.dir().join("other-pki");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = Pki::generate(&other_dir, &["127.0.0.1".parse().unwrap()]);
    assert_eq!(
        https_get(speaker_port, "/healthz", None, &Trust::Ca(other.ca_cert)).await,
        None
    );

    // With the API server gone, a token not reviewed before can be neither accepted nor refused:
    // 503, never the metrics.
    plane.kill_apiserver();
    for (port, trust, who) in [
        (controller_port, &any, "controller"),
        (speaker_port, &ca, "speaker"),
    ] {
        let answer = https_get(port, "/metrics", Some("never-reviewed-token"), trust).await;
        assert_eq!(answer.as_ref().map(|a| a.0), Some(503), "{who}: {answer:?}");
        // The probes do not depend on the API server.
        assert_eq!(
            https_get(port, "/healthz", None, trust).await.map(|a| a.0),
            Some(200),
            "{who}"
        );
    }
    controller.assert_running();
    speaker.assert_running();
}

/// The chart's ClusterRole for Prometheus: `get` on the non-resource URL /metrics, nothing else.
fn metrics_reader_role(chart: &Manifests) -> String {
    let roles: Vec<&Value> = chart
        .of_kind("ClusterRole")
        .filter(|r| r["rules"][0].get("nonResourceURLs").is_some())
        .collect();
    assert_eq!(roles.len(), 1, "one metrics reader ClusterRole: {roles:?}");
    assert_eq!(
        roles[0]["rules"],
        json!([{ "nonResourceURLs": ["/metrics"], "verbs": ["get"] }])
    );
    roles[0]["metadata"]["name"].as_str().unwrap().to_string()
}

/// The answers every `--metrics-secure` endpoint gives: probes without a token, 401 without a
/// token or with one the API server does not know, 403 for an account without the grant, 200
/// for Prometheus; plain HTTP gets no answer.
async fn check_reviews(port: u16, trust: &Trust, prometheus: &str, stranger: &str, who: &str) {
    let status = |answer: Option<(u16, String)>| answer.map(|a| a.0);
    assert_eq!(
        status(https_get(port, "/healthz", None, trust).await),
        Some(200),
        "{who}"
    );
    assert_eq!(
        status(https_get(port, "/metrics", None, trust).await),
        Some(401),
        "{who}"
    );
    let garbage = https_get(port, "/metrics", Some("not-a-token"), trust).await;
    assert_eq!(status(garbage), Some(401), "{who}");
    let basic = https_get_with(port, "/metrics", Some("Basic cHJvbTpwcm9t".into()), trust).await;
    assert_eq!(status(basic), Some(401), "{who}");
    let refused = https_get(port, "/metrics", Some(stranger), trust).await;
    assert_eq!(status(refused.clone()), Some(403), "{who}: {refused:?}");
    // Asked again (from the cache now), still refused.
    assert_eq!(
        status(https_get(port, "/metrics", Some(stranger), trust).await),
        Some(403)
    );
    assert_eq!(
        status(https_get(port, "/metrics", Some(prometheus), trust).await),
        Some(200)
    );
    assert_eq!(
        http_get(port, "/metrics").await.map(|a| a.0),
        None,
        "{who}: plain HTTP"
    );
}

async fn metrics_body(port: u16, trust: &Trust, token: &str) -> String {
    match https_get(port, "/metrics", Some(token), trust).await {
        Some((200, body)) => body,
        other => panic!("/metrics answered {other:?}"),
    }
}

/// A kubeconfig for the workload's ServiceAccount.
async fn account_kubeconfig(
    plane: &ControlPlane,
    client: &kube::Client,
    workload: &Value,
) -> PathBuf {
    let account = service_account(workload);
    let token = chart_release::token(client, NAMESPACE, &account).await;
    plane.token_kubeconfig(&format!("kubeconfig-{account}"), plane.server(), &token)
}

/// Runs `command` (the workload's args) as `subcommand` and waits until /healthz answers over
/// HTTPS on `port`.
async fn start(
    plane: &ControlPlane,
    subcommand: &str,
    command: &ChartCommand,
    kubeconfig: &Path,
    port: u16,
) -> ChildGuard {
    let mut process = Command::new(binary());
    process
        .arg(subcommand)
        .args(&command.args)
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .env_remove("KUBECONFIG")
        .envs(command.env.iter().map(|(k, v)| (k, v)));
    let log = plane.dir().join(format!("{subcommand}.log"));
    let mut child = ChildGuard::spawn(&format!("ferrolb {subcommand}"), process, &log);
    let what = format!("the {subcommand} to answer /healthz over HTTPS");
    wait_for(&what, PATIENCE, || {
        child.assert_running();
        async move {
            matches!(
                https_get(port, "/healthz", None, &Trust::Any).await,
                Some((200, _))
            )
            .then_some(())
        }
    })
    .await;
    child
}

async fn start_controller(
    plane: &ControlPlane,
    client: &kube::Client,
    workload: &Value,
) -> (ChildGuard, u16) {
    let fields = BTreeMap::from([("metadata.namespace", NAMESPACE.to_string())]);
    let mut command = ChartCommand::of(workload, &fields, &BTreeMap::new());
    assert!(
        command.args.contains(&"--metrics-secure".to_string()),
        "{:?}",
        command.args
    );
    let port = free_port();
    command.set_flag("--metrics-addr", &format!("127.0.0.1:{port}"));
    let kubeconfig = account_kubeconfig(plane, client, workload).await;
    let child = start(plane, "controller", &command, &kubeconfig, port).await;
    (child, port)
}

/// The speaker with the Secret's certificate where the DaemonSet mounts it, on 127.0.0.1 as its
/// host IP.
async fn start_speaker(
    plane: &ControlPlane,
    client: &kube::Client,
    workload: &Value,
    pki: &Pki,
) -> (ChildGuard, u16) {
    let volumes = workload["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("the speaker mounts the certificate Secret");
    let mut mounts = BTreeMap::new();
    for volume in volumes {
        assert_eq!(volume["secret"]["secretName"], TLS_SECRET, "{volume}");
        let name = volume["name"].as_str().unwrap();
        let folder = plane.dir().join(format!("speaker-volume-{name}"));
        std::fs::create_dir_all(&folder).unwrap();
        for (key, file) in [
            ("tls.crt", &pki.serving_cert),
            ("tls.key", &pki.serving_key),
            ("ca.crt", &pki.ca_cert),
        ] {
            std::fs::copy(file, folder.join(key)).unwrap();
        }
        mounts.insert(name, folder);
    }
    let fields = BTreeMap::from([
        ("metadata.namespace", NAMESPACE.to_string()),
        ("metadata.name", "lb-ferrolb-speaker-e2e".to_string()),
        ("spec.nodeName", "e2e-node".to_string()),
        ("status.hostIP", "127.0.0.1".to_string()),
    ]);
    let mut command = ChartCommand::of(workload, &fields, &mounts);
    assert!(
        command.args.contains(&"--metrics-secure".to_string()),
        "{:?}",
        command.args
    );
    let port = free_port();
    command.set_flag("--metrics-addr", &format!("0.0.0.0:{port}"));
    let kubeconfig = account_kubeconfig(plane, client, workload).await;
    let child = start(plane, "speaker", &command, &kubeconfig, port).await;
    (child, port)
}
