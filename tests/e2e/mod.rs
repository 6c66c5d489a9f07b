//! Support for the Kubernetes end-to-end tests: a real etcd + kube-apiserver found through
//! `KUBEBUILDER_ASSETS`, the `ferrolb` binaries run against it, and the API driven as a user would.
//! Each test binary uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod api;
pub mod audit;
pub mod certs;
pub mod control_plane;
pub mod ferrolb;
pub mod https;
pub mod ledger;
pub mod netns_bridge;
pub mod process;
pub mod wait;

/// The namespace ferrolb runs in (its ConfigMap, Lease and events), as the chart installs it.
pub const NAMESPACE: &str = "ferrolb-system";
/// The namespace the suites create their Services in.
pub const APPS: &str = "apps";

pub use control_plane::ControlPlane;
// Not every suite runs the controller (the scale measurement writes what it would).
#[allow(unused_imports)]
pub use ferrolb::{Controller, ControllerOptions};

/// What a component reading MetalLB's custom resources says, once, in a cluster without their
/// CRDs while the ConfigMap `config` of [`NAMESPACE`] holds a MetalLB config
/// (`ferrolb::k8s::source_hint`).
pub fn switching_hint() -> String {
    format!("The ConfigMap {NAMESPACE}/config holds a MetalLB config")
}

/// Whether `log` shows the [`switching_hint`] followed by at least two lines containing
/// `retries` (its watches retried after it was said).
pub fn hint_then_retries(log: &str, retries: &str) -> bool {
    log.find(&switching_hint())
        .is_some_and(|at| log[at..].matches(retries).count() >= 2)
}

/// `component`'s `log` says the [`switching_hint`] exactly once, naming both fixes.
pub fn assert_switching_hint_once(log: &str, component: &str) {
    let hint = switching_hint();
    assert_eq!(log.matches(&hint).count(), 1, "{log}");
    let line = log.lines().find(|l| l.contains(&hint)).unwrap_or_default();
    assert!(
        line.contains(&format!("the {component} reads its config")),
        "{line}"
    );
    assert!(
        line.contains("--config-source configmap --config-name config"),
        "{line}"
    );
    assert!(
        line.contains(&format!(
            "kubectl get configmap -n {NAMESPACE} config -o yaml | ferrolb convert --namespace \
             {NAMESPACE} - | kubectl apply -f -"
        )),
        "{line}"
    );
}
