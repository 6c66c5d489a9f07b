//! Every Kubernetes API call the two components make, as the RBAC rules they need. The chart's
//! Roles are rendered from the same reasoning and tests/chart.rs checks them against this table
//! (nothing more, nothing less), and checks the table against the calls in the source.

/// Where a rule applies: cluster-wide (a ClusterRole) or in the release namespace (a Role).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Cluster,
    ReleaseNamespace,
}

/// The verbs one component uses on one resource, and why.
#[derive(Clone, Copy, Debug)]
pub struct ApiAccess {
    pub component: &'static str,
    pub scope: Scope,
    pub group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    pub why: &'static str,
}

const fn access(
    component: &'static str,
    scope: Scope,
    group: &'static str,
    resource: &'static str,
    verbs: &'static [&'static str],
    why: &'static str,
) -> ApiAccess {
    ApiAccess {
        component,
        scope,
        group,
        resource,
        verbs,
        why,
    }
}

use Scope::{Cluster, ReleaseNamespace};

pub const API_ACCESS: &[ApiAccess] = &[
    access(
        "controller",
        Cluster,
        "",
        "services",
        &["list", "watch", "get", "patch"],
        "watch Services (controller::run); patch adds the pool annotation, get re-reads a Service whose write conflicted (controller::writes)",
    ),
    access(
        "controller",
        Cluster,
        "",
        "services/status",
        &["patch"],
        "merge-patch status.loadBalancer.ingress (controller::writes)",
    ),
    access(
        "controller",
        Cluster,
        "events.k8s.io",
        "events",
        &["create", "patch"],
        "events on Services and the ConfigMap; kube's Recorder patches a repeat within a batch",
    ),
    access(
        "controller",
        ReleaseNamespace,
        "",
        "configmaps",
        &["list", "watch"],
        "watch the config ConfigMap (controller::run::watch_config)",
    ),
    access(
        "controller",
        ReleaseNamespace,
        "coordination.k8s.io",
        "leases",
        &["get", "create", "patch"],
        "leader election (controller::elector: get, create when absent, a merge patch preconditioned on the read resourceVersion to renew, take or release)",
    ),
    access(
        "controller",
        ReleaseNamespace,
        "",
        "secrets",
        &["create", "get"],
        "the gossip key Secret (controller::gossip_key): create it with a random key when missing; get only that one Secret (resourceNames), to see whether it exists. Granted only when the chart manages the Secret",
    ),
    access(
        "controller",
        Cluster,
        "",
        "namespaces",
        &["list", "watch"],
        "Namespace labels, for pools' serviceAllocation.namespaceSelectors (controller::crd_watch)",
    ),
    access(
        "controller",
        ReleaseNamespace,
        "metallb.io",
        "ipaddresspools",
        &["list", "watch"],
        "the config from MetalLB's custom resources, --config-source crds (controller::crd_watch)",
    ),
    access(
        "controller",
        ReleaseNamespace,
        "metallb.io",
        "l2advertisements",
        &["list", "watch"],
        "the config from MetalLB's custom resources, --config-source crds (controller::crd_watch)",
    ),
    access(
        "controller",
        ReleaseNamespace,
        "metallb.io",
        "bgppeers",
        &["list", "watch"],
        "the config from MetalLB's custom resources, --config-source crds (controller::crd_watch)",
    ),
    access(
        "controller",
        ReleaseNamespace,
        "metallb.io",
        "bgpadvertisements",
        &["list", "watch"],
        "the config from MetalLB's custom resources, --config-source crds (controller::crd_watch)",
    ),
    access(
        "controller",
        ReleaseNamespace,
        "metallb.io",
        "bfdprofiles",
        &["list", "watch"],
        "the config from MetalLB's custom resources, --config-source crds (controller::crd_watch)",
    ),
    access(
        "controller",
        ReleaseNamespace,
        "metallb.io",
        "communities",
        &["list", "watch"],
        "the config from MetalLB's custom resources, --config-source crds (controller::crd_watch)",
    ),
    access(
        "controller",
        ReleaseNamespace,
        "metallb.io",
        "ipaddresspools/status",
        &["patch"],
        "pool usage per family written to each pool's status (controller::crd_status)",
    ),
    access(
        "controller",
        ReleaseNamespace,
        "metallb.io",
        "configurationstates",
        &["create"],
        "the ConfigurationState `controller`, created the first time (controller::crd_status)",
    ),
    access(
        "controller",
        ReleaseNamespace,
        "metallb.io",
        "configurationstates/status",
        &["patch"],
        "the ConfigurationState's result and errors (controller::crd_status)",
    ),
    access(
        "speaker",
        Cluster,
        "",
        "services",
        &["list", "watch"],
        "Services and their status IPs (speaker::kubernetes)",
    ),
    access(
        "speaker",
        Cluster,
        "",
        "nodes",
        &["list", "watch"],
        "node eligibility, and InternalIPs seeding the gossip (speaker::kubernetes)",
    ),
    access(
        "speaker",
        Cluster,
        "discovery.k8s.io",
        "endpointslices",
        &["list", "watch"],
        "externalTrafficPolicy: Local needs a ready endpoint on the node (speaker::kubernetes)",
    ),
    access(
        "speaker",
        Cluster,
        "events.k8s.io",
        "events",
        &["create"],
        "nodeAssigned events; a fresh Recorder per batch of distinct Services never patches",
    ),
    access(
        "speaker",
        ReleaseNamespace,
        "",
        "configmaps",
        &["list", "watch"],
        "watch the config ConfigMap (speaker::kubernetes)",
    ),
    access(
        "speaker",
        ReleaseNamespace,
        "",
        "pods",
        &["list", "watch"],
        "the speaker pods (--ml-labels): which nodes run a ready speaker (speaker::kubernetes)",
    ),
    access(
        "speaker",
        ReleaseNamespace,
        "metallb.io",
        "ipaddresspools",
        &["list", "watch"],
        "the config from MetalLB's custom resources, --config-source crds (speaker::kubernetes)",
    ),
    access(
        "speaker",
        ReleaseNamespace,
        "metallb.io",
        "l2advertisements",
        &["list", "watch"],
        "the config from MetalLB's custom resources, --config-source crds (speaker::kubernetes)",
    ),
];
