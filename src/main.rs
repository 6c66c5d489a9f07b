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
    /// Check a MetalLB-format config file (ConfigMap manifest or bare config): print a summary of
    /// its pools and exit 0, or print every error found and exit 1.
    CheckConfig(ferrolb::config::check::CheckConfigArgs),
    /// Offline: run the controller's allocation over a config and Service manifests, and print
    /// the EXTERNAL-IP each Service would get and the events the controller would record.
    Plan(ferrolb::controller::cli::PlanArgs),
    /// Run the controller: assign IPs from the ConfigMap's pools to LoadBalancer Services and
    /// write them to their status (one active replica, leader-elected).
    Controller(ferrolb::controller::cli::ControllerArgs),
    /// Answer ARP/NDP for the LoadBalancer IPs this node is elected to announce.
    Speaker(ferrolb::speaker::cli::SpeakerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig(args) => {
            match ferrolb::config::check::run(&args, &mut std::io::stdout().lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {}", error_chain(&e));
                    ExitCode::from(1)
                }
            }
        }
        Command::Controller(args) => report(run_controller(args)),
        Command::Plan(args) => {
            let result = ferrolb::controller::cli::run_plan(
                &args,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            );
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {}", error_chain(&e));
                    ExitCode::from(1)
                }
            }
        }
        Command::Speaker(args) => report(speaker_main::run(args)),
    }
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
    use ferrolb::membership::SwimTiming;
    use ferrolb::speaker::cli::SpeakerArgs;
    use ferrolb::speaker::cluster::ViewOptions;
    use ferrolb::speaker::kubernetes::{self, GossipOptions, KubeOptions};
    use ferrolb::speaker::static_mode::{self, StaticOptions};
    use ferrolb::telemetry::{self, Health};
    use tokio::signal::unix::{SignalKind, signal};

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
            let server = telemetry::serve_with_text(
                args.metrics_addr,
                registry.clone(),
                text.clone(),
                health.clone(),
            )
            .await
            .context("starting the metrics server")?;
            let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
            let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
            let shutdown = async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            };
            let result = match args.static_file.clone() {
                Some(file) => {
                    let options = StaticOptions {
                        file,
                        key_file: args.memberlist_key_file.clone(),
                        announcer: args.announcer_options(),
                        timing: SwimTiming::default(),
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
                key_file: args.memberlist_key_file.clone(),
                timing: SwimTiming::default(),
            })
        } else {
            None
        };
        let client = client(args.kubeconfig.as_deref()).await?;
        let options = KubeOptions {
            node_name,
            namespace: args.namespace.clone(),
            config_name: args.config_name.clone(),
            view: ViewOptions {
                lb_class: args.lb_class.clone(),
                ignore_exclude_lb: args.ignore_exclude_lb,
            },
            gossip,
            announcer: args.announcer_options(),
        };
        kubernetes::run(client, options, registry, text, health, shutdown)
            .await
            .context("speaker")
    }

    /// A client from `--kubeconfig`, else KUBECONFIG / ~/.kube/config, else in-cluster.
    async fn client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
        let config = match kubeconfig {
            Some(path) => {
                let file = kube::config::Kubeconfig::read_from(path)
                    .with_context(|| format!("reading kubeconfig {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(file, &Default::default())
                    .await
                    .with_context(|| format!("using kubeconfig {}", path.display()))?
            }
            None => kube::Config::infer()
                .await
                .context("no kubeconfig found and not running in a cluster")?,
        };
        kube::Client::try_from(config).context("building the Kubernetes client")
    }
}
