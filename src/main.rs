//! The `ferrolb` binary: the edge where library errors become `anyhow` reports.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig(args) => {
            match ferrolb::config::check::run(&args, &mut std::io::stdout().lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Controller(args) => match run_controller(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e:#}");
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Plan(args) => {
            let result = ferrolb::controller::cli::run_plan(
                &args,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            );
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {:#}", anyhow::Error::from(e));
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn run_controller(args: ferrolb::controller::cli::ControllerArgs) -> anyhow::Result<()> {
    ferrolb::telemetry::init_tracing(args.log_format)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(ferrolb::controller::run::main(args))?;
    Ok(())
}
