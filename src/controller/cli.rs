//! Command-line arguments of `ferrolb controller` and `ferrolb plan`, and the `plan` command.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::plan::{PlanError, parse_objects, plan_with_networks};
use super::plan_networks::parse_networks;
use crate::config::overlap::{ClusterNetworks, ServiceRangeError, parse_service_range};
use crate::k8s::metallb::ConfigSource;
use crate::telemetry::{LogFormat, MetricsSecurityArgs};

/// The leader-election Lease when --lease-name is not given.
pub const DEFAULT_LEASE_NAME: &str = "ferrolb-controller";

/// Arguments of `ferrolb controller`.
#[derive(Debug, Clone, clap::Args)]
pub struct ControllerArgs {
    /// Kubeconfig file to reach the API server. Without it: the KUBECONFIG environment variable
    /// (or ~/.kube/config), then the in-cluster service account.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace holding the config ConfigMap and the leader-election Lease (default: the
    /// POD_NAMESPACE environment variable, then the kubeconfig's namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// Where the config comes from: MetalLB's custom resources (IPAddressPool, L2Advertisement,
    /// and the BGP kinds BGPPeer, BGPAdvertisement, Community, BFDProfile) in --namespace, or the
    /// legacy ConfigMap --config-name.
    #[arg(long, value_enum, default_value_t = ConfigSource::Crds)]
    pub config_source: ConfigSource,
    /// Name of the MetalLB-format ConfigMap (key `config`) in --namespace, read with
    /// --config-source configmap.
    #[arg(long, default_value = "config")]
    pub config_name: String,
    /// Handle only LoadBalancer Services whose spec.loadBalancerClass is exactly this class
    /// (default, or empty: only those without a class, as MetalLB). Services that are not ours
    /// are never touched, but an address of our pools their status shows is never handed out.
    #[arg(long)]
    pub lb_class: Option<String>,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:7472")]
    pub metrics_addr: SocketAddr,
    #[command(flatten)]
    pub metrics_security: MetricsSecurityArgs,
    /// Export MetalLB's metric names and labels (metallb_allocator_*,
    /// metallb_k8s_client_config_loaded_bool, ...) instead of ferrolb_*, so dashboards and alerts
    /// written for MetalLB keep working.
    #[arg(long)]
    pub metallb_metric_names: bool,
    /// Log line format (level from RUST_LOG, default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Run leader election on the Lease --lease-name in --namespace, so that only one of several
    /// replicas writes (`--leader-elect=false` for a single replica).
    #[arg(long, action = clap::ArgAction::Set, default_value_t = true, num_args = 0..=1,
          default_missing_value = "true")]
    pub leader_elect: bool,
    /// Name of the leader-election Lease in --namespace. Two controllers sharing a Lease (two
    /// releases in one namespace) would take turns leading each other's Services; the chart
    /// passes a release-scoped name.
    #[arg(long, default_value = DEFAULT_LEASE_NAME)]
    pub lease_name: String,
    /// Seconds a leader's lease stays valid without renewal: how long a crashed leader blocks
    /// the takeover (a leader that exits cleanly releases it at once). A leader that has not
    /// renewed for two thirds of this, by its own clock, stops writing, so a paused or cut-off
    /// leader has stopped before another replica may take over.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub lease_duration: u64,
    /// Secret in --namespace holding the speakers' gossip key (entry `secretkey`): created with
    /// a random key if it does not exist, never changed if it does. Unset: no Secret is managed.
    #[arg(long)]
    pub memberlist_secret_name: Option<String>,
    /// The cluster's service IP ranges, comma-separated CIDRs as kube-apiserver's flag of that
    /// name spells them (e.g. 10.96.0.0/12,fd00::/108). Used only where the API server does not
    /// serve networking.k8s.io/v1 ServiceCIDR objects (before Kubernetes 1.33), to warn about
    /// pools overlapping them; otherwise the ServiceCIDR objects are read.
    #[arg(long)]
    pub service_cluster_ip_range: Option<String>,
}

/// Output format of `ferrolb plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    /// A `kubectl get svc`-style table, then the events the controller would record.
    Table,
    /// The Services with status and pool annotation filled in (events go to stderr).
    Yaml,
}

/// Arguments of `ferrolb plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// Config: MetalLB custom resources (IPAddressPool, L2Advertisement...; multi-document YAML
    /// or a List), or a legacy ConfigMap manifest or bare config text (detected). Namespace
    /// objects in it feed `namespaceSelectors`.
    #[arg(long)]
    pub config: PathBuf,
    /// Service manifests: multi-document YAML and/or Lists, as `kubectl get svc -A -o yaml`
    /// prints; Namespace objects among them feed `namespaceSelectors`. Several files may follow
    /// one flag, or the flag may repeat.
    #[arg(long, required = true, num_args = 1..)]
    pub services: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = PlanFormat::Table)]
    pub output: PlanFormat,
    /// Plan as a controller started with this --lb-class (only Services of this class; empty:
    /// those without one).
    #[arg(long)]
    pub lb_class: Option<String>,
    /// The cluster's own networks: Node and ServiceCIDR manifests, as
    /// `kubectl get nodes,servicecidrs -o yaml` prints them. Nodes' InternalIP/ExternalIP
    /// addresses are never handed out, and pools overlapping a node's address, a node's
    /// spec.podCIDRs or a ServiceCIDR are listed under POOL WARNINGS, as the controller warns.
    /// With Nodes, an ANNOUNCED-BY column names the node the speakers would elect for each
    /// Service (give its EndpointSlices with --services: without one nobody announces it), or
    /// for a BGP pool every node that announces it, and a BGP ROUTES table lists each node's
    /// routes to each peer (prefix, local preference, communities, Services).
    #[arg(long, num_args = 1..)]
    pub nodes: Vec<PathBuf>,
    /// As the controller's flag: the service IP ranges (comma-separated CIDRs), for clusters
    /// whose API server serves no ServiceCIDR objects; used only when --nodes holds none.
    #[arg(long)]
    pub service_cluster_ip_range: Option<String>,
    /// With --nodes: the nodes whose speaker is alive (comma-separated names) for the
    /// ANNOUNCED-BY preview; default every Ready Node.
    #[arg(long, value_delimiter = ',', requires = "nodes")]
    pub live: Option<Vec<String>>,
    /// With --nodes: preview the speakers' --sticky-ownership. A cluster placing from
    /// scratch (no node claims an address yet) places as MetalLB's ranking does.
    #[arg(long, requires = "nodes")]
    pub sticky_ownership: bool,
    /// With --nodes: preview the speakers' --even-spread, as a cluster placing from scratch
    /// does.
    #[arg(long, requires = "nodes")]
    pub even_spread: bool,
}

/// Who would announce each planned Service's addresses (`plan --nodes`): the speakers'
/// election, which the controller does not hold, so the caller hands it in. Given the config,
/// the planned Services, the texts of the Services and Nodes files (EndpointSlices among the
/// former) and the live nodes, it returns each Service's cell by `namespace/name`.
pub type AnnouncePreview<'a> = &'a dyn Fn(
    &crate::config::Config,
    &[k8s_openapi::api::core::v1::Service],
    &[(String, String)],
    Option<&[String]>,
    crate::placement::Policy,
) -> Result<Preview, String>;

/// What [`AnnouncePreview`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preview {
    /// Each Service's ANNOUNCED-BY cell, by `namespace/name`.
    pub cells: std::collections::BTreeMap<String, String>,
    /// The BGP routes each node would announce: rows of NODE, PEER, PREFIX, LOCAL-PREF,
    /// COMMUNITIES, SERVICES.
    pub bgp: Vec<[String; 6]>,
}

/// Why `ferrolb plan` failed.
#[derive(Debug, thiserror::Error)]
pub enum PlanCommandError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the announcement preview: {0}")]
    Preview(String),
    #[error("{path} is invalid")]
    Config {
        path: PathBuf,
        source: crate::config::ConfigError,
    },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    ServiceRange(#[from] ServiceRangeError),
    #[error("cannot write output")]
    Write(#[from] std::io::Error),
}

fn read(path: &PathBuf) -> Result<String, PlanCommandError> {
    std::fs::read_to_string(path).map_err(|source| PlanCommandError::Read {
        path: path.clone(),
        source,
    })
}

/// Runs `ferrolb plan`: the table (or YAML) to `out`, events to `err` in YAML mode.
pub fn run_plan(
    args: &PlanArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    preview: Option<AnnouncePreview<'_>>,
) -> Result<(), PlanCommandError> {
    let file = crate::config::parse_file(&read(&args.config)?).map_err(|source| {
        PlanCommandError::Config {
            path: args.config.clone(),
            source,
        }
    })?;
    let mut namespaces = file.namespaces;
    let mut services = Vec::new();
    // The texts the announcement preview reads again (EndpointSlices, Nodes).
    let mut texts: Vec<(String, String)> = Vec::new();
    for path in &args.services {
        let text = read(path)?;
        let (found, ns) = parse_objects(&text, &path.display().to_string())?;
        services.extend(found);
        namespaces.extend(ns);
        texts.push((path.display().to_string(), text));
    }
    let mut networks = ClusterNetworks::default();
    for path in &args.nodes {
        let text = read(path)?;
        let skipped = parse_networks(&text, &path.display().to_string(), &mut networks)?;
        texts.push((path.display().to_string(), text));
        for line in skipped {
            writeln!(err, "{line}")?;
        }
    }
    if networks.service_cidrs.is_empty()
        && let Some(text) = &args.service_cluster_ip_range
    {
        networks.service_cidrs = parse_service_range(text)?;
    }
    let plan = plan_with_networks(
        &file.config,
        &namespaces,
        &networks,
        services,
        args.lb_class.as_deref(),
    )?;
    let announced = match preview {
        Some(preview) if !args.nodes.is_empty() => Some(
            preview(
                &file.config,
                &plan.services,
                &texts,
                args.live.as_deref(),
                crate::placement::Policy {
                    sticky: args.sticky_ownership,
                    even: args.even_spread,
                },
            )
            .map_err(PlanCommandError::Preview)?,
        ),
        _ => None,
    };
    match args.output {
        PlanFormat::Table => {
            let cells = announced.as_ref().map(|p| &p.cells);
            out.write_all(plan.table_with(cells).as_bytes())?;
            if let Some(p) = announced.as_ref().filter(|p| !p.bgp.is_empty()) {
                let header = [
                    "NODE",
                    "PEER",
                    "PREFIX",
                    "LOCAL-PREF",
                    "COMMUNITIES",
                    "SERVICES",
                ];
                let rows: Vec<Vec<String>> = std::iter::once(header.map(String::from))
                    .chain(p.bgp.iter().cloned())
                    .map(|r| r.to_vec())
                    .collect();
                writeln!(out, "\nBGP ROUTES")?;
                out.write_all(crate::controller::plan::render_columns(&rows).as_bytes())?;
            }
        }
        PlanFormat::Yaml => {
            out.write_all(plan.to_yaml()?.as_bytes())?;
            for w in &plan.pool_warnings {
                let e = &w.event;
                writeln!(
                    err,
                    "pool {} {} {}: {}",
                    w.pool,
                    e.event_type(),
                    e.reason,
                    e.message
                )?;
            }
            for e in &plan.events {
                writeln!(
                    err,
                    "event {} {} {}: {}",
                    e.key, e.event_type, e.reason, e.message
                )?;
            }
            for (key, by) in announced.iter().flat_map(|p| &p.cells) {
                writeln!(err, "announced {key} by {by}")?;
            }
            for [node, peer, prefix, pref, communities, services] in
                announced.iter().flat_map(|p| &p.bgp)
            {
                writeln!(
                    err,
                    "bgp {node} to {peer}: {prefix} local-pref {pref} communities {communities} for {services}"
                )?;
            }
        }
    }
    Ok(())
}
