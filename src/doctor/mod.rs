//! `ferrolb doctor`: checks a live cluster for what keeps ferrolb from working (MetalLB
//! leftovers, missing CRDs, an invalid config, unready speakers, kube-proxy without strictARP,
//! a Pod Security level too strict for the speaker, pools overlapping a ServiceCIDR, a node's
//! address or a Pod CIDR) and prints how to fix each. The checks are
//! pure ([`checks`]); [`fetch`] only reads the objects they look at.

pub mod checks;
pub mod fetch;

use std::path::PathBuf;

/// Arguments of `ferrolb doctor`.
#[derive(Debug, Clone, clap::Args)]
pub struct DoctorArgs {
    /// Kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// ferrolb's namespace, where its config objects live.
    #[arg(long, default_value = "ferrolb-system")]
    pub namespace: String,
    /// The service IP ranges (comma-separated CIDRs, as kube-apiserver's flag of that name), to
    /// check the pools against where the API server serves no ServiceCIDR objects (before
    /// Kubernetes 1.33).
    #[arg(long)]
    pub service_cluster_ip_range: Option<String>,
}

/// Runs every check; returns the report and whether any finding is an error.
pub async fn run(args: &DoctorArgs) -> Result<(String, bool), fetch::FetchError> {
    let client = crate::k8s::client(args.kubeconfig.as_deref()).await?;
    let (mut snapshot, unreadable) = fetch::snapshot(&client, &args.namespace).await;
    if let Some(text) = &args.service_cluster_ip_range {
        snapshot.service_range = crate::config::overlap::parse_service_range(text)?;
    }
    let findings = checks::run_all(&snapshot);
    let failed = findings
        .iter()
        .any(|f| f.severity == checks::Severity::Error);
    let mut report = checks::render(&findings);
    for what in unreadable {
        report.push_str(&format!("could not check: {what}\n"));
    }
    Ok((report, failed))
}
