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
    }
}
