//! Command-line flags of `ferrolb speaker` (documented for users in docs/user-guide.md and the
//! chart README; tests/chart/docs.rs keeps them in step).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::layer2::iface::{DEFAULT_EXCLUDES, ExcludePatterns};
use crate::telemetry::LogFormat;

use super::announcer::AnnouncerOptions;

/// Flags of `ferrolb speaker`.
#[derive(Debug, Clone, Args)]
pub struct SpeakerArgs {
    /// Kubeconfig file (default: $KUBECONFIG or ~/.kube/config, then the in-cluster account).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace holding the ConfigMap.
    #[arg(long, env = "POD_NAMESPACE", default_value = "ferrolb-system")]
    pub namespace: String,
    /// Name of the MetalLB-format ConfigMap.
    #[arg(long, default_value = "config")]
    pub config_name: String,
    /// This node's name (the Node object and the gossip member name).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Address other speakers reach this one at for gossip.
    #[arg(long, env = "HOST_IP")]
    pub host_ip: Option<IpAddr>,
    /// Only handle Services with this spec.loadBalancerClass (default: only those without one).
    #[arg(long)]
    pub lb_class: Option<String>,
    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, default_value = "0.0.0.0:7473")]
    pub metrics_addr: SocketAddr,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Use SWIM gossip for liveness; with false, a node is alive when its Node is Ready.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub gossip: bool,
    /// UDP port of the gossip protocol.
    #[arg(long, default_value_t = 7946)]
    pub gossip_port: u16,
    /// File holding the gossip shared secret (else $FERROLB_MEMBERLIST_KEY holds the key itself).
    #[arg(long)]
    pub memberlist_key_file: Option<PathBuf>,
    /// Comma-separated interface-name glob patterns never answered on (default: MetalLB's list of
    /// container and virtualisation interfaces such as veth*, cni*, virbr*, plus bridges and
    /// overlays such as br-*, ovn-k8s-*; pass "" to use every interface).
    #[arg(long)]
    pub exclude_interfaces: Option<String>,
    /// Announce from nodes labelled node.kubernetes.io/exclude-from-external-load-balancers.
    #[arg(long)]
    pub ignore_exclude_lb: bool,
    /// Repeat gratuitous ARP / unsolicited NA for every owned IP at this interval (seconds).
    #[arg(long, value_parser = parse_seconds)]
    pub garp_interval: Option<Duration>,
    /// Run from a static YAML file (node, gossip, addresses, advertisements) instead of the
    /// Kubernetes API.
    #[arg(long = "static", value_name = "FILE")]
    pub static_file: Option<PathBuf>,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(0.1..=86_400.0).contains(&secs) {
        return Err(format!("{secs} s is outside 0.1..=86400 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl SpeakerArgs {
    pub fn excludes(&self) -> ExcludePatterns {
        match &self.exclude_interfaces {
            Some(list) => ExcludePatterns::parse_list(list),
            None => ExcludePatterns::new(DEFAULT_EXCLUDES.iter().copied()),
        }
    }

    pub fn announcer_options(&self) -> AnnouncerOptions {
        AnnouncerOptions {
            excludes: self.excludes(),
            garp_interval: self.garp_interval,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: SpeakerArgs,
    }

    #[test]
    fn flags_parse_with_defaults_and_overrides() {
        let w =
            Wrap::try_parse_from(["x", "--static", "/f.yaml", "--garp-interval", "2.5"]).unwrap();
        assert_eq!(w.args.static_file, Some(PathBuf::from("/f.yaml")));
        assert_eq!(w.args.garp_interval, Some(Duration::from_millis(2500)));
        assert!(w.args.gossip);
        assert_eq!(w.args.gossip_port, 7946);
        assert!(w.args.excludes().matches("veth1234"));
        let w =
            Wrap::try_parse_from(["x", "--exclude-interfaces", "", "--gossip", "false"]).unwrap();
        assert!(!w.args.excludes().matches("veth1234"));
        assert!(!w.args.gossip);
        assert!(Wrap::try_parse_from(["x", "--garp-interval", "0"]).is_err());
        assert!(Wrap::try_parse_from(["x", "--garp-interval", "soon"]).is_err());
    }
}
