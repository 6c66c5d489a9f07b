//! Command-line flags of `ferrolb speaker` (documented for users in docs/user-guide.md and the
//! chart README; tests/chart/docs.rs keeps them in step).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::gossip::{KeyFiles, SwimTiming};
use crate::k8s::ClientError;
use crate::k8s::metallb::ConfigSource;
use crate::k8s::review::KubeReviewer;
use crate::layer2::iface::{DEFAULT_EXCLUDES, ExcludePatterns};
use crate::telemetry::tls::TlsError;
use crate::telemetry::{LogFormat, MetricsSecurityArgs, Security};

use super::announcer::AnnouncerOptions;

/// Flags of `ferrolb speaker`.
#[derive(Debug, Clone, Args)]
pub struct SpeakerArgs {
    /// Kubeconfig file (default: $KUBECONFIG or ~/.kube/config, then the in-cluster account).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace holding the config: MetalLB's objects (IPAddressPool, L2Advertisement) or,
    /// with --config-source configmap, the legacy ConfigMap.
    #[arg(long, env = "POD_NAMESPACE", default_value = "ferrolb-system")]
    pub namespace: String,
    /// Where pools and advertisements come from: MetalLB's custom resources in --namespace, or
    /// the legacy ConfigMap --config-name.
    #[arg(long, value_enum, default_value_t = ConfigSource::Crds)]
    pub config_source: ConfigSource,
    /// Name of the MetalLB-format ConfigMap (with --config-source configmap).
    #[arg(long, default_value = "config")]
    pub config_name: String,
    /// Label selector of the speaker pods in --namespace (MetalLB's --ml-labels). A node
    /// running a Ready one counts as a speaker: a speaker waits to join gossip only while
    /// another counts, and with --gossip=false only Ready nodes running one are eligible.
    #[arg(
        long,
        env = "METALLB_ML_LABELS",
        default_value = "app.kubernetes.io/component=speaker"
    )]
    pub ml_labels: String,
    /// This node's name (the Node object and the gossip member name).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// This speaker's own Pod (the owner of the ServiceL2Status objects it writes, so they go
    /// with the pod). Without it the objects carry no owner reference.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Address other speakers reach this one at for gossip.
    #[arg(long, env = "HOST_IP")]
    pub host_ip: Option<IpAddr>,
    /// Only handle Services with this spec.loadBalancerClass (default, or empty: only those
    /// without one).
    #[arg(long)]
    pub lb_class: Option<String>,
    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, default_value = "0.0.0.0:7473")]
    pub metrics_addr: SocketAddr,
    /// Serve /metrics on --host-ip (with --metrics-addr's port) instead of --metrics-addr's
    /// address: on the host network a wildcard address also answers on every LoadBalancer IP the
    /// node holds locally (kube-proxy IPVS).
    #[arg(long)]
    pub metrics_on_host_ip: bool,
    #[command(flatten)]
    pub metrics_security: MetricsSecurityArgs,
    /// Export MetalLB's metric names and labels (metallb_layer2_*, metallb_speaker_announced,
    /// metallb_k8s_client_config_*_bool) instead of ferrolb_*, so dashboards and alerts written
    /// for MetalLB keep working.
    #[arg(long)]
    pub metallb_metric_names: bool,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Use SWIM gossip for liveness; with false, a node is alive when its Node is Ready and
    /// its speaker Pod is Ready. Either way a Node tainted node.kubernetes.io/out-of-service
    /// announces nothing. A speaker with no config holding address pools takes part in
    /// no election: it withdraws from gossip (the others elect again at once) and is not ready.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub gossip: bool,
    /// UDP port of the gossip protocol.
    #[arg(long, default_value_t = 7946)]
    pub gossip_port: u16,
    /// Gossip: milliseconds between two probes of a random member (default 200). Failure
    /// detection takes about probe interval + suspect timeout.
    #[arg(long, value_name = "MS")]
    pub gossip_probe_interval_ms: Option<u64>,
    /// Gossip: milliseconds a probed member has to answer before indirect probes are sent
    /// (default 50); must be shorter than the probe interval. A member whose host answers ICMP
    /// port unreachable is suspected at once and has twice this (at most the suspect timeout)
    /// to refute.
    #[arg(long, value_name = "MS")]
    pub gossip_probe_timeout_ms: Option<u64>,
    /// Gossip: milliseconds a member stays suspect before it is declared down and its addresses
    /// move (default 300). Raise it on lossy or congested networks. Also bounds the suspicion of
    /// a member whose host answers ICMP port unreachable (see --gossip-probe-timeout-ms).
    #[arg(long, value_name = "MS")]
    pub gossip_suspect_timeout_ms: Option<u64>,
    /// File holding the gossip shared secret (else $FERROLB_MEMBERLIST_KEY holds the key itself).
    /// Reread when it changes (a mounted Secret updated in place); a missing file is waited for.
    #[arg(long)]
    pub memberlist_key_file: Option<PathBuf>,
    /// File holding a second gossip key that is accepted but not sent with, for a key rotation
    /// (missing or empty file: none). Reread when it changes.
    #[arg(long)]
    pub memberlist_accept_key_file: Option<PathBuf>,
    /// Comma-separated interface-name glob patterns never answered on (default: MetalLB's list of
    /// container and virtualisation interfaces such as veth*, cni*, virbr*, plus bridges and
    /// overlays such as br-*, ovn-k8s-*; pass "" to use every interface).
    #[arg(long)]
    pub exclude_interfaces: Option<String>,
    /// Announce from nodes labelled node.kubernetes.io/exclude-from-external-load-balancers.
    #[arg(long)]
    pub ignore_exclude_lb: bool,
    /// Milliseconds a usable interface must stay without its link (no carrier, down or deleted)
    /// before it counts as down: then this node gives up the addresses advertised on it to a
    /// node whose link there is up (told through gossip). A shorter blip moves nothing. A link
    /// that returns counts as up at once.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub link_debounce_ms: u64,
    /// BGP mode: the port on which this node also takes the connections its BGP peers open
    /// (passive connects, as FRR does in MetalLB's FRR modes), bound once the config has a
    /// peer for this node; 0 turns it off (the speaker then only dials). A port already taken
    /// (another BGP daemon on the node) is logged once and the sessions are dialed only.
    #[arg(long, default_value_t = 179)]
    pub bgp_listen_port: u16,
    /// Sticky ownership: an address stays on the node announcing it while that node is alive
    /// and eligible; a node that joins or returns takes nothing announced elsewhere. The
    /// nodes say what they announce through gossip. Every speaker must run with the same
    /// placement flags (Kubernetes mode only).
    #[arg(long)]
    pub sticky_ownership: bool,
    /// Even spread: the nodes' counts of announced address groups differ by at most one where
    /// every group may go to every node; a node that leaves moves only its own, one that joins
    /// takes about its share. With --sticky-ownership only new addresses are placed by count
    /// (Kubernetes mode only).
    #[arg(long)]
    pub even_spread: bool,
    /// ARP probes per second this node sends at most to check that the owners of the IPv4
    /// addresses it is next in line for answer (0: check nothing). An owner that misses 3 in
    /// a row, while this node hears others, is reported (a Warning on the Service) and told
    /// through gossip; it withdraws from the address and the next node answers.
    #[arg(long, default_value_t = crate::speaker::answer_check::DEFAULT_RATE,
          value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub answer_checks_per_second: u32,
    /// Repeat gratuitous ARP / unsolicited NA for every owned IP at this interval (seconds,
    /// 1 to 86400).
    #[arg(long, value_parser = parse_seconds)]
    pub garp_interval: Option<Duration>,
    /// Run from a static YAML file (node, gossip, addresses, advertisements, BGP peers) instead
    /// of the Kubernetes API (not with --metrics-secure, whose reviews need the API, nor with
    /// --sticky-ownership or --even-spread).
    #[arg(
        long = "static",
        value_name = "FILE",
        conflicts_with_all = ["metrics_secure", "sticky_ownership", "even_spread"]
    )]
    pub static_file: Option<PathBuf>,
}

/// The shortest `--garp-interval`: a re-announcement is only useful to a neighbour cache that
/// lost the entry, and Linux ignores updates within `locktime` (1 s) of the last one anyway.
const GARP_INTERVAL_MIN_SECS: f64 = 1.0;

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(GARP_INTERVAL_MIN_SECS..=86_400.0).contains(&secs) {
        return Err(format!(
            "{secs} s is outside {GARP_INTERVAL_MIN_SECS}..=86400 seconds (below 1 s every owned \
             address would be re-announced faster than neighbour caches can use it)"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Why `--metrics-secure` could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MetricsSecurityError {
    #[error("--metrics-secure needs the Kubernetes API for its reviews")]
    Client(#[from] ClientError),
    #[error("cannot serve /metrics over HTTPS (--metrics-secure)")]
    Tls(#[from] TlsError),
}

impl SpeakerArgs {
    /// With `--metrics-secure`: the HTTPS configuration and the reviews of each /metrics request
    /// by the API server --kubeconfig names (a client of its own, made before the metrics server
    /// starts). `None` without the flag.
    pub async fn metrics_security(&self) -> Result<Option<Security>, MetricsSecurityError> {
        if !self.metrics_security.metrics_secure {
            return Ok(None);
        }
        let client = crate::k8s::client(self.kubeconfig.as_deref()).await?;
        Ok(self
            .metrics_security
            .security(move || Arc::new(KubeReviewer::new(client)))?)
    }

    /// Where the metrics server listens.
    pub fn metrics_bind(&self) -> Result<SocketAddr, &'static str> {
        match (self.metrics_on_host_ip, self.host_ip) {
            (false, _) => Ok(self.metrics_addr),
            (true, Some(ip)) => Ok(SocketAddr::new(ip, self.metrics_addr.port())),
            (true, None) => Err("--metrics-on-host-ip needs --host-ip (or HOST_IP)"),
        }
    }

    pub fn excludes(&self) -> ExcludePatterns {
        match &self.exclude_interfaces {
            Some(list) => ExcludePatterns::parse_list(list),
            None => ExcludePatterns::new(DEFAULT_EXCLUDES.iter().copied()),
        }
    }

    /// The gossip timing: the defaults with the `--gossip-*-ms` flags applied, refused when the
    /// result cannot work (the error names the flags).
    pub fn swim_timing(&self) -> Result<SwimTiming, String> {
        let mut timing = SwimTiming::default();
        let ms = Duration::from_millis;
        if let Some(v) = self.gossip_probe_interval_ms {
            timing.probe_period = ms(v);
        }
        if let Some(v) = self.gossip_probe_timeout_ms {
            timing.probe_rtt = ms(v);
        }
        if let Some(v) = self.gossip_suspect_timeout_ms {
            timing.suspect_to_down_after = ms(v);
        }
        // A port-unreachable suspicion sent straight to its member gets two probe round trips to
        // be refuted, never more than any suspicion gets.
        timing.icmp_suspect_to_down_after = timing
            .probe_rtt
            .saturating_mul(2)
            .min(timing.suspect_to_down_after);
        timing.validate().map_err(|e| {
            format!(
                "--gossip-probe-interval-ms / --gossip-probe-timeout-ms / \
                 --gossip-suspect-timeout-ms: {e}"
            )
        })?;
        Ok(timing)
    }

    pub fn key_files(&self) -> KeyFiles {
        KeyFiles {
            key: self.memberlist_key_file.clone(),
            accept: self.memberlist_accept_key_file.clone(),
        }
    }

    /// The placement policy (`--sticky-ownership`, `--even-spread`).
    pub fn placement(&self) -> crate::placement::Policy {
        crate::placement::Policy {
            sticky: self.sticky_ownership,
            even: self.even_spread,
        }
    }

    pub fn announcer_options(&self) -> AnnouncerOptions {
        AnnouncerOptions {
            excludes: self.excludes(),
            garp_interval: self.garp_interval,
            answer_checks_per_second: self.answer_checks_per_second,
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
        assert_eq!(
            w.args.metrics_bind().unwrap(),
            "0.0.0.0:7473".parse().unwrap()
        );
        let w = Wrap::try_parse_from(["x", "--metrics-on-host-ip", "--host-ip", "2001:db8::7"])
            .unwrap();
        assert_eq!(
            w.args.metrics_bind().unwrap(),
            "[2001:db8::7]:7473".parse().unwrap()
        );
        let w = Wrap::try_parse_from(["x", "--metrics-on-host-ip"]).unwrap();
        assert!(w.args.metrics_bind().is_err());
        assert!(Wrap::try_parse_from(["x", "--garp-interval", "0"]).is_err());
        assert!(Wrap::try_parse_from(["x", "--garp-interval", "0.1"]).is_err());
        assert!(Wrap::try_parse_from(["x", "--garp-interval", "0.999"]).is_err());
        assert!(Wrap::try_parse_from(["x", "--garp-interval", "1"]).is_ok());
        assert!(Wrap::try_parse_from(["x", "--garp-interval", "soon"]).is_err());
    }

    #[test]
    fn placement_flags_set_the_policy_and_are_refused_with_a_static_file() {
        let w = Wrap::try_parse_from(["x", "--sticky-ownership", "--even-spread"]).unwrap();
        assert_eq!(w.args.placement().label(), "sticky-even");
        assert!(
            Wrap::try_parse_from(["x"])
                .unwrap()
                .args
                .placement()
                .is_ranked()
        );
        for flag in ["--sticky-ownership", "--even-spread"] {
            let refused = Wrap::try_parse_from(["x", "--static", "/f.yaml", flag]);
            assert!(refused.is_err(), "{flag} with --static");
        }
    }

    #[test]
    fn gossip_timing_flags_override_the_defaults_and_bad_ones_are_refused() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["t"];
            argv.extend_from_slice(extra);
            Wrap::try_parse_from(argv).unwrap().args
        };
        assert_eq!(parse(&[]).swim_timing().unwrap(), SwimTiming::default());
        let t = parse(&[
            "--gossip-probe-interval-ms=1000",
            "--gossip-probe-timeout-ms=400",
            "--gossip-suspect-timeout-ms=2500",
        ])
        .swim_timing()
        .unwrap();
        assert_eq!(t.probe_period, Duration::from_millis(1000));
        assert_eq!(t.probe_rtt, Duration::from_millis(400));
        assert_eq!(t.suspect_to_down_after, Duration::from_millis(2500));
        // A port-unreachable suspicion: two probe timeouts, never more than the suspect timeout.
        assert_eq!(t.icmp_suspect_to_down_after, Duration::from_millis(800));
        let short = parse(&["--gossip-suspect-timeout-ms=60"])
            .swim_timing()
            .unwrap();
        assert_eq!(short.icmp_suspect_to_down_after, Duration::from_millis(60));
        assert_eq!(t.gossip_interval, SwimTiming::default().gossip_interval);
        // A probe timeout as long as the interval leaves no time for indirect probes.
        let err = parse(&["--gossip-probe-timeout-ms=200"])
            .swim_timing()
            .unwrap_err();
        assert!(
            err.contains("--gossip-probe-timeout-ms") && err.contains("probe_rtt"),
            "{err}"
        );
        let err = parse(&["--gossip-suspect-timeout-ms=0"])
            .swim_timing()
            .unwrap_err();
        assert!(
            err.contains("suspect_to_down_after must be greater than zero"),
            "{err}"
        );
    }
}
