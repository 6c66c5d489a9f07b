//! The chart installed as the RBAC end-to-end test needs it (`tests/e2e_rbac.rs`): rendered with
//! helm (CRDs included), the objects the components need to start applied with the admin's
//! kubectl, a token for each ServiceAccount from the TokenRequest API, and each component's
//! command line read from its rendered workload, as the kubelet would run it. Included with
//! `#[path]` next to `mod e2e;` and the chart tests' helpers (`tests/chart/support.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::chart_support::{Manifests, container, pod_spec, render_with};
use crate::e2e::ControlPlane;

/// The chart's `configSource`, the components' `--config-source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// MetalLB's custom resources, the chart's default.
    Crds,
    /// The legacy ConfigMap.
    ConfigMap,
}

impl Source {
    pub fn flag(self) -> &'static str {
        match self {
            Source::Crds => "crds",
            Source::ConfigMap => "configmap",
        }
    }

    /// The chart's values: the Namespace rendered (with its Pod Security labels), and for the
    /// legacy source the ConfigMap, rendered from `configInline` with the pool the tests use.
    pub fn values(self) -> &'static str {
        match self {
            Source::Crds => "namespace: {podSecurityLabels: true}\n",
            Source::ConfigMap => {
                "namespace: {podSecurityLabels: true}
configSource: configmap
configInline:
  address-pools:
  - name: lan
    protocol: layer2
    addresses: [192.0.2.200-192.0.2.207]
"
            }
        }
    }
}

/// Kinds applied before everything else: the namespace and MetalLB's CRDs.
const FIRST: &[&str] = &["Namespace", "CustomResourceDefinition"];
/// Then what the components need to start and to be authorized.
const THEN: &[&str] = &[
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ConfigMap",
];
/// Rendered but not applied: there is no kube-controller-manager or kubelet to run them (the
/// test runs the binaries itself, with these workloads' flags).
const NOT_APPLIED: &[&str] = &["Deployment", "DaemonSet", "Service", "PodDisruptionBudget"];

/// Renders the chart for `source` (its values written to `dir`), CRDs included.
pub fn render(helm: &Path, dir: &Path, source: Source) -> Manifests {
    let file = dir.join("chart-values.yaml");
    std::fs::write(&file, source.values()).expect("write the values file");
    let manifests = render_with(helm, Some(&file), &["--include-crds"]);
    for doc in &manifests.docs {
        let kind = doc["kind"].as_str().unwrap_or_default();
        assert!(
            FIRST.contains(&kind) || THEN.contains(&kind) || NOT_APPLIED.contains(&kind),
            "the chart renders a {kind} ({}): decide whether tests/e2e/chart_release.rs applies it",
            doc["metadata"]["name"]
        );
    }
    manifests
}

/// Applies the rendered objects the components need (in order: namespace and CRDs, then
/// accounts, roles, bindings and the ConfigMap), as the admin.
pub fn install(plane: &ControlPlane, manifests: &Manifests) {
    let apply = |kinds: &[&str], file: &str| {
        let items: Vec<&Value> = manifests
            .docs
            .iter()
            .filter(|d| kinds.contains(&d["kind"].as_str().unwrap_or_default()))
            .collect();
        assert!(!items.is_empty(), "the chart renders none of {kinds:?}");
        let path = plane.dir().join(file);
        let list = json!({ "apiVersion": "v1", "kind": "List", "items": items });
        std::fs::write(&path, list.to_string()).expect("write the objects to apply");
        plane.kubectl(&["apply", "-f", &path.display().to_string()]);
    };
    apply(FIRST, "chart-first.json");
    plane.wait_crds_established();
    apply(THEN, "chart-then.json");
}

/// A token for ServiceAccount `namespace/account` (TokenRequest: `create serviceaccounts/token`).
pub async fn token(client: &Client, namespace: &str, account: &str) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request: TokenRequest =
        serde_json::from_value(json!({ "spec": { "audiences": [], "expirationSeconds": 3600 } }))
            .unwrap();
    let answer = accounts
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for {namespace}/{account}: {e}"));
    answer.status.expect("a TokenRequest's answer").token
}

/// The user name a ServiceAccount's token authenticates as.
pub fn account_user(namespace: &str, account: &str) -> String {
    format!("system:serviceaccount:{namespace}:{account}")
}

/// The ServiceAccount a workload's pods run as.
pub fn service_account(workload: &Value) -> String {
    pod_spec(workload)["serviceAccountName"]
        .as_str()
        .expect("the workload names its ServiceAccount")
        .to_string()
}

/// A component's command line as the chart's workload gives it: the container's args after the
/// subcommand, with `$(VAR)` expanded from its env, and that env.
#[derive(Clone, Debug)]
pub struct ChartCommand {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl ChartCommand {
    /// Reads `workload`'s container. `fields` gives what the downward API would put in each
    /// `fieldRef` (`metadata.namespace`, `spec.nodeName`, ...); `mounts` gives, for each volume
    /// mount, the local folder that plays it (paths under the mount are rewritten). An env source
    /// or mount not given fails the test, so a chart change is noticed here.
    pub fn of(
        workload: &Value,
        fields: &BTreeMap<&str, String>,
        mounts: &BTreeMap<&str, PathBuf>,
    ) -> ChartCommand {
        let c = container(workload);
        let env: Vec<(String, String)> = c["env"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|e| {
                let name = e["name"].as_str().expect("env name").to_string();
                let value = if let Some(v) = e["value"].as_str() {
                    v.to_string()
                } else if let Some(path) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                    fields
                        .get(path)
                        .unwrap_or_else(|| panic!("env {name}: no value for fieldRef {path}"))
                        .clone()
                } else {
                    panic!("env {name}: unsupported source {e}")
                };
                (name, value)
            })
            .collect();
        let mount_paths: Vec<(String, &PathBuf)> = c["volumeMounts"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|m| {
                let name = m["name"].as_str().expect("mount name");
                let local = mounts
                    .get(name)
                    .unwrap_or_else(|| panic!("no local folder for volume mount {name}"));
                let path = m["mountPath"].as_str().expect("mountPath").to_string();
                (path, local)
            })
            .collect();
        let raw = c["args"].as_array().expect("container args");
        let args = raw[1..]
            .iter()
            .map(|a| {
                let mut arg = a.as_str().expect("string arg").to_string();
                for (name, value) in &env {
                    arg = arg.replace(&format!("$({name})"), value);
                }
                for (path, local) in &mount_paths {
                    arg = arg.replace(path.as_str(), &local.display().to_string());
                }
                arg
            })
            .collect();
        ChartCommand { args, env }
    }

    /// The value of `--name=value`.
    pub fn flag(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}=");
        self.args.iter().find_map(|a| a.strip_prefix(&prefix))
    }

    /// Replaces the value of `--name=value`, which the chart must pass.
    pub fn set_flag(&mut self, name: &str, value: &str) {
        let prefix = format!("{name}=");
        let arg = self
            .args
            .iter_mut()
            .find(|a| a.starts_with(&prefix))
            .unwrap_or_else(|| panic!("the chart passes no {name}"));
        *arg = format!("{prefix}{value}");
    }
}
