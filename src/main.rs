//! The `ferrolb` binary: the edge where library errors become `anyhow` reports.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ferrolb::telemetry::error_chain;

/// Bare-metal LoadBalancer for Kubernetes: a drop-in replacement for MetalLB's layer-2 mode.
#[derive(Parser)]
#[command(name = "ferrolb", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a config file — MetalLB custom resources (IPAddressPool, L2Advertisement...) or a
    /// legacy ConfigMap (manifest or bare config) — print a summary of its pools and
    /// advertisements and exit 0, or print every error found and exit 1.
    CheckConfig(ferrolb::config::check::CheckConfigArgs),
    /// Turn a legacy ConfigMap into the equivalent MetalLB custom resources (IPAddressPool,
    /// L2Advertisement, BGP kinds), printed as YAML; notes go to stderr.
    Convert(ferrolb::config::convert::ConvertArgs),
    /// Check a live cluster (with your kubeconfig) for what keeps ferrolb from working — MetalLB
    /// leftovers (webhooks, conversion webhooks, running pods), missing CRDs, an invalid config,
    /// unready speakers, kube-proxy IPVS without strictARP, a too strict Pod Security level —
    /// and print how to fix each. Exit 1 when an error is found.
    Doctor(ferrolb::doctor::DoctorArgs),
    /// Offline: run the controller's allocation over a config and Service manifests, and print
    /// the EXTERNAL-IP each Service would get and the events the controller would record.
    Plan(ferrolb::controller::cli::PlanArgs),
    /// Run the controller: assign IPs from the address pools (MetalLB's IPAddressPool objects,
    /// or with --config-source configmap a legacy MetalLB ConfigMap) to LoadBalancer Services and
    /// write them to their status (one active replica, leader-elected).
    Controller(ferrolb::controller::cli::ControllerArgs),
    /// Answer ARP/NDP for the LoadBalancer IPs this node is elected to announce.
    Speaker(Box<ferrolb::speaker::cli::SpeakerArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig(args) => exit_on(
            ferrolb::config::check::run(&args, &mut std::io::stdout().lock()).map_err(Into::into),
            1,
        ),
        Command::Convert(args) => {
            let result = ferrolb::config::convert::run(
                &args,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            );
            exit_on(result.map_err(anyhow::Error::from), 1)
        }
        Command::Doctor(args) => match run_doctor(&args) {
            Ok(false) => ExitCode::SUCCESS,
            Ok(true) => ExitCode::from(1),
            Err(e) => exit_on(Err(e), 2),
        },
        Command::Controller(args) => report(run_controller(args)),
        Command::Plan(args) => {
            let result = ferrolb::controller::cli::run_plan(
                &args,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
                Some(&ferrolb::announce_preview::preview),
            );
            exit_on(result.map_err(anyhow::Error::from), 1)
        }
        Command::Speaker(args) => report(speaker_main::run(*args)),
    }
}

/// Prints the doctor's report; `true` when it found an error.
fn run_doctor(args: &ferrolb::doctor::DoctorArgs) -> anyhow::Result<bool> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (report, failed) = runtime.block_on(ferrolb::doctor::run(args))?;
    print!("{report}");
    Ok(failed)
}

fn run_controller(args: ferrolb::controller::cli::ControllerArgs) -> anyhow::Result<()> {
    ferrolb::telemetry::init_tracing(args.log_format)?;
    // One thread: the controller waits on the API server, never on its own CPU (1000 Services
    // need a few ms of it each), and one thread means one malloc arena and one stack, which is
    // most of what a controller holding 10k Services can save beyond its caches.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(ferrolb::controller::run::main(args))?;
    Ok(())
}

/// A one-shot command's result: its error's chain on stderr (once) and exit status `code`.
fn exit_on(result: anyhow::Result<()>, code: u8) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(e.as_ref()));
            ExitCode::from(code)
        }
    }
}

/// Reports why a component stopped, once, and turns it into exit status 1: as a log line when
/// logging is set up (so JSON logs stay JSON), else on stderr.
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let chain = error_chain(e.as_ref());
            if tracing::dispatcher::has_been_set() {
                tracing::error!(error = %chain, "stopped");
            } else {
                eprintln!("error: {chain}");
            }
            ExitCode::FAILURE
        }
    }
}

mod speaker_main {
    use anyhow::{Context, bail};
    use ferrolb::metrics::Naming;
    use ferrolb::speaker::cli::SpeakerArgs;
    use ferrolb::speaker::kubernetes::cluster::ViewOptions;
    use ferrolb::speaker::kubernetes::{self, GossipOptions, KubeOptions};
    use ferrolb::speaker::static_mode::{self, StaticOptions};
    use ferrolb::telemetry::{self, Health};

    pub fn run(args: SpeakerArgs) -> anyhow::Result<()> {
        telemetry::init_tracing(args.log_format).context("setting up logging")?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        runtime.block_on(async move {
            let registry = prometheus::Registry::new();
            // Per-IP families (thousands of series) are written as text, not kept in the registry.
            let text = telemetry::TextRegistry::default();
            let health = Health::new();
            let metrics_addr = args.metrics_bind().map_err(anyhow::Error::msg)?;
            let security = args.metrics_security().await?;
            let server = telemetry::serve_metrics(
                metrics_addr,
                registry.clone(),
                text.clone(),
                health.clone(),
                security,
            )
            .await
            .context("starting the metrics server")?;
            let shutdown = ferrolb::runtime::termination()
                .context("installing the SIGTERM/SIGINT handlers")?;
            let result = match args.static_file.clone() {
                Some(file) => {
                    let options = StaticOptions {
                        file,
                        keys: args.key_files(),
                        announcer: args.announcer_options(),
                        timing: args.swim_timing().map_err(anyhow::Error::msg)?,
                        link_debounce: std::time::Duration::from_millis(args.link_debounce_ms),
                        bgp_listen_port: args.bgp_listen_port,
                        naming: Naming::from_flag(args.metallb_metric_names),
                    };
                    static_mode::run(options, &registry, &text, health, shutdown)
                        .await
                        .context("static speaker")
                }
                None => kubernetes_mode(&args, &registry, &text, health, shutdown).await,
            };
            let _ = server.shutdown().await;
            result
        })
    }

    async fn kubernetes_mode(
        args: &SpeakerArgs,
        registry: &prometheus::Registry,
        text: &telemetry::TextRegistry,
        health: Health,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let Some(node_name) = args.node_name.clone() else {
            bail!("--node-name (or NODE_NAME) is required outside --static mode");
        };
        let gossip = if args.gossip {
            let Some(host_ip) = args.host_ip else {
                bail!(
                    "--host-ip (or HOST_IP) is required with gossip: it is the address other speakers reach this one at"
                );
            };
            Some(GossipOptions {
                port: args.gossip_port,
                host_ip,
                keys: args.key_files(),
                timing: args.swim_timing().map_err(anyhow::Error::msg)?,
            })
        } else {
            None
        };
        let client = ferrolb::k8s::client(args.kubeconfig.as_deref()).await?;
        let options = KubeOptions {
            node_name,
            pod_name: args.pod_name.clone(),
            namespace: args.namespace.clone(),
            config_source: args.config_source,
            config_name: args.config_name.clone(),
            speaker_labels: args.ml_labels.clone(),
            view: ViewOptions {
                lb_class: args.lb_class.clone(),
                ignore_exclude_lb: args.ignore_exclude_lb,
                placement: args.placement(),
            },
            gossip,
            announcer: args.announcer_options(),
            link_debounce: std::time::Duration::from_millis(args.link_debounce_ms),
            bgp_listen_port: args.bgp_listen_port,
            naming: Naming::from_flag(args.metallb_metric_names),
        };
        kubernetes::run(client, options, registry, text, health, shutdown)
            .await
            .context("speaker")
    }
}
