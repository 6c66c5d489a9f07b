//! The checks of `ferrolb doctor`: each a pure function over objects already fetched from the
//! cluster (as JSON), returning what is wrong and how to fix it.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::config::crd::from_objects;
use crate::config::overlap::{ClusterNetworks, ServiceCidr, find_overlaps};
use crate::k8s::networks::{node_networks, service_cidrs};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Breaks ferrolb or changes to its config.
    Error,
    /// Works, but not as intended.
    Warning,
}

/// One thing wrong, and the command or change that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub check: &'static str,
    pub problem: String,
    pub fix: String,
}

/// What the checks look at, fetched once.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// ferrolb's namespace (where its config objects live).
    pub namespace: String,
    /// The labels of that namespace (Pod Security admission).
    pub namespace_labels: Option<Value>,
    pub webhook_configurations: Vec<Value>,
    /// CustomResourceDefinitions of the `metallb.io` group.
    pub crds: Vec<Value>,
    /// `namespace/name` of every Service.
    pub services: BTreeSet<String>,
    /// Deployments and DaemonSets in every namespace.
    pub workloads: Vec<Value>,
    /// MetalLB objects in `namespace` (pools, advertisements, BGP kinds).
    pub config_objects: Vec<Value>,
    /// kube-system/kube-proxy, if present.
    pub kube_proxy: Option<Value>,
    /// Every Node (their addresses and Pod CIDRs).
    pub nodes: Vec<Value>,
    /// Every `networking.k8s.io/v1` ServiceCIDR (Kubernetes 1.33+).
    pub service_cidrs: Vec<Value>,
    /// `--service-cluster-ip-range`: checked instead where no ServiceCIDR is listed.
    pub service_range: Vec<ServiceCidr>,
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn error(check: &'static str, problem: String, fix: String) -> Finding {
    Finding {
        severity: Severity::Error,
        check,
        problem,
        fix,
    }
}

/// Every check, in the order they are printed.
pub fn run_all(s: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(metallb_webhooks(s));
    out.extend(conversion_webhooks(s));
    out.extend(crds_missing(s));
    out.extend(metallb_running(s));
    out.extend(config_invalid(s));
    out.extend(speakers_not_ready(s));
    out.extend(strict_arp(s));
    out.extend(pod_security(s));
    out.extend(cluster_overlaps(s));
    out
}

fn service_missing(s: &Snapshot, client_config: &Value) -> Option<String> {
    let svc = client_config.get("service")?;
    let key = format!("{}/{}", str_at(svc, "/namespace"), str_at(svc, "/name"));
    (!s.services.contains(&key)).then_some(key)
}

/// MetalLB's admission webhooks left behind: they fail closed, so every create or update of a
/// pool is refused while their Service is gone.
pub fn metallb_webhooks(s: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    for vwc in &s.webhook_configurations {
        let name = str_at(vwc, "/metadata/name");
        let hooks = vwc.get("webhooks").and_then(Value::as_array);
        let missing: BTreeSet<String> = hooks
            .into_iter()
            .flatten()
            .filter_map(|h| service_missing(s, h.get("clientConfig")?))
            .collect();
        let about_metallb = hooks.into_iter().flatten().any(|h| {
            h.pointer("/rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|r| r.to_string().contains("metallb.io"))
        });
        if name == "metallb-webhook-configuration" || (about_metallb && !missing.is_empty()) {
            let why = if missing.is_empty() {
                "MetalLB's admission webhooks are still registered".to_owned()
            } else {
                format!(
                    "it sends metallb.io objects to Service {} which does not exist, so every \
                     create or update of a pool or advertisement is refused",
                    missing.into_iter().collect::<Vec<_>>().join(", ")
                )
            };
            out.push(error(
                "metallb-leftovers",
                format!("ValidatingWebhookConfiguration {name}: {why}"),
                format!("kubectl delete validatingwebhookconfiguration {name}"),
            ));
        }
    }
    out
}

/// A `metallb.io` CRD whose conversion webhook points at a missing Service: the API server
/// cannot serve that kind at all.
pub fn conversion_webhooks(s: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    for crd in &s.crds {
        if str_at(crd, "/spec/conversion/strategy") != "Webhook" {
            continue;
        }
        let Some(missing) = crd
            .pointer("/spec/conversion/webhook/clientConfig")
            .and_then(|c| service_missing(s, c))
        else {
            continue;
        };
        let name = str_at(crd, "/metadata/name");
        out.push(error(
            "metallb-leftovers",
            format!(
                "CRD {name}: its conversion webhook points at Service {missing}, which does not \
                 exist, so {name} cannot be read or written"
            ),
            format!(
                "kubectl apply --server-side --force-conflicts -f charts/ferrolb/crds/ (ferrolb's \
                 CRDs need no conversion webhook), or kubectl patch crd {name} --type=merge -p \
                 '{{\"spec\":{{\"conversion\":{{\"strategy\":\"None\"}}}}}}'"
            ),
        ));
    }
    out
}

/// The CRDs ferrolb reads its config from.
pub fn crds_missing(s: &Snapshot) -> Vec<Finding> {
    let have: BTreeSet<&str> = s.crds.iter().map(|c| str_at(c, "/metadata/name")).collect();
    ["ipaddresspools.metallb.io", "l2advertisements.metallb.io"]
        .into_iter()
        .filter(|n| !have.contains(n))
        .map(|n| {
            error(
                "crds",
                format!("CRD {n} is not installed: ferrolb (--config-source crds) has no config"),
                "kubectl apply -f charts/ferrolb/crds/ (helm install does this on first install)"
                    .into(),
            )
        })
        .collect()
}

/// MetalLB's own controller or speaker still running beside ferrolb.
pub fn metallb_running(s: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in &s.workloads {
        let images = w
            .pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| str_at(c, "/image"));
        let metallb = images
            .into_iter()
            .find(|i| i.contains("metallb/controller") || i.contains("metallb/speaker"));
        if let Some(image) = metallb {
            let (kind, ns, name) = (
                str_at(w, "/kind"),
                str_at(w, "/metadata/namespace"),
                str_at(w, "/metadata/name"),
            );
            out.push(error(
                "metallb-running",
                format!("{kind} {ns}/{name} runs MetalLB ({image}) beside ferrolb: both answer for the same addresses"),
                format!("helm uninstall metallb -n {ns} (keeps the CRDs and objects), or kubectl -n {ns} delete {} {name}", kind.to_lowercase()),
            ));
        }
    }
    out
}

/// The config objects in ferrolb's namespace, validated exactly as the controller does.
pub fn config_invalid(s: &Snapshot) -> Vec<Finding> {
    match from_objects(s.config_objects.clone(), Some(&s.namespace)) {
        Ok(file) if file.config.address_pools.is_empty() => vec![Finding {
            severity: Severity::Warning,
            check: "config",
            problem: format!("no IPAddressPool in namespace {}: no Service gets an address", s.namespace),
            fix: "apply an IPAddressPool and an L2Advertisement there (see the chart's NOTES)".into(),
        }],
        Ok(_) => Vec::new(),
        Err(e) => vec![error(
            "config",
            format!("the objects in namespace {} are refused: {e}", s.namespace),
            "fix the objects named above (ferrolb check-config FILE shows the same errors offline); \
             the last good config stays in force meanwhile"
                .into(),
        )],
    }
}

/// ferrolb's speaker DaemonSet has pods that are not ready.
pub fn speakers_not_ready(s: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in &s.workloads {
        let is_speaker = str_at(w, "/kind") == "DaemonSet"
            && str_at(w, "/metadata/labels/app.kubernetes.io~1name") == "ferrolb"
            && str_at(w, "/metadata/labels/app.kubernetes.io~1component") == "speaker";
        if !is_speaker {
            continue;
        }
        let n = |f: &str| {
            w.pointer(&format!("/status/{f}"))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        let (want, ready) = (n("desiredNumberScheduled"), n("numberReady"));
        if ready < want {
            let ns = str_at(w, "/metadata/namespace");
            out.push(Finding {
                severity: Severity::Warning,
                check: "speakers",
                problem: format!("{ready} of {want} speakers are ready: addresses owned by the others are not answered"),
                fix: format!("kubectl -n {ns} get pods -l app.kubernetes.io/component=speaker; kubectl -n {ns} describe pod <not ready>"),
            });
        }
    }
    out
}

/// kube-proxy in IPVS mode without strictARP: every node answers ARP for every address.
pub fn strict_arp(s: &Snapshot) -> Vec<Finding> {
    let Some(cm) = &s.kube_proxy else {
        return Vec::new();
    };
    let text = str_at(cm, "/data/config.conf");
    let Ok(conf) = serde_saphyr::from_str::<Value>(text) else {
        return Vec::new();
    };
    let ipvs = conf.get("mode").and_then(Value::as_str) == Some("ipvs");
    let strict = conf.pointer("/ipvs/strictARP").and_then(Value::as_bool) == Some(true);
    if !ipvs || strict {
        return Vec::new();
    }
    vec![error(
        "kube-proxy",
        "kube-proxy runs in IPVS mode without strictARP: every node answers ARP for every \
         LoadBalancer address, so failover breaks"
            .into(),
        "kubectl -n kube-system edit configmap kube-proxy (set ipvs.strictARP: true), then \
         kubectl -n kube-system rollout restart daemonset kube-proxy"
            .into(),
    )]
}

/// The speaker needs host networking and NET_RAW: only the `privileged` Pod Security level
/// admits it.
pub fn pod_security(s: &Snapshot) -> Vec<Finding> {
    let level = s
        .namespace_labels
        .as_ref()
        .and_then(|l| l.get("pod-security.kubernetes.io/enforce"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if !matches!(level, "baseline" | "restricted") {
        return Vec::new();
    }
    vec![error(
        "pod-security",
        format!(
            "namespace {} enforces Pod Security level {level}: speaker pods (host network, \
             NET_RAW) are refused",
            s.namespace
        ),
        format!(
            "kubectl label namespace {} pod-security.kubernetes.io/enforce=privileged --overwrite",
            s.namespace
        ),
    )]
}

/// Pools overlapping a ServiceCIDR, a node's InternalIP/ExternalIP or a node's Pod CIDR: each
/// overlap named (a warning: the controller refuses none of them, but never hands out a node's
/// own address, and the others collide with Service or Pod traffic).
pub fn cluster_overlaps(s: &Snapshot) -> Vec<Finding> {
    let Ok(file) = from_objects(s.config_objects.clone(), Some(&s.namespace)) else {
        // An invalid config is reported by `config_invalid`.
        return Vec::new();
    };
    let mut networks = ClusterNetworks::default();
    for v in &s.nodes {
        if let Ok(node) = serde_json::from_value(v.clone()) {
            networks.nodes.push(node_networks(&node).0);
        }
    }
    for v in &s.service_cidrs {
        if let Ok(object) = serde_json::from_value(v.clone()) {
            networks.service_cidrs.extend(service_cidrs(&object).0);
        }
    }
    if networks.service_cidrs.is_empty() {
        networks.service_cidrs = s.service_range.clone();
    }
    find_overlaps(&file.config, &networks)
        .into_iter()
        .map(|o| Finding {
            severity: Severity::Warning,
            check: "overlap",
            problem: o.message(),
            fix: o.fix(),
        })
        .collect()
}

/// The report as printed: one block per finding, or a line saying all is well.
pub fn render(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "no problems found\n".into();
    }
    let mut out = String::new();
    for f in findings {
        let level = match f.severity {
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
        };
        out.push_str(&format!(
            "{level} [{}] {}\n  fix: {}\n",
            f.check, f.problem, f.fix
        ));
    }
    out
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
