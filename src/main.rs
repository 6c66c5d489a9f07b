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
enum Command {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {}
}
