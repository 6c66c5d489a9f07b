//! `ferrolb check-config FILE`: validate a config file before applying it.

use std::io::{self, Write};
use std::path::PathBuf;

use super::error::ConfigError;
use super::summary;

/// Arguments of `ferrolb check-config`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckConfigArgs {
    /// MetalLB-format config to check: a ConfigMap manifest (the config under `data.config`) or the
    /// bare config text. Exits 0 and prints a summary of the pools when valid, 1 with every error
    /// found otherwise.
    pub file: PathBuf,
}

/// Why `check-config` failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is invalid: {source}", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: ConfigError,
    },
    #[error("cannot write the summary: {0}")]
    Output(#[source] io::Error),
}

/// Reads and validates the file; on success writes the summary to `out`.
pub fn run(args: &CheckConfigArgs, out: &mut impl Write) -> Result<(), CheckError> {
    let path = &args.file;
    let bytes = std::fs::read(path).map_err(|source| CheckError::Read {
        path: path.clone(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| CheckError::Read {
        path: path.clone(),
        source: io::Error::new(io::ErrorKind::InvalidData, e.utf8_error()),
    })?;
    let config = super::parse(&text).map_err(|source| CheckError::Invalid {
        path: path.clone(),
        source,
    })?;
    writeln!(out, "{}: valid", path.display()).map_err(CheckError::Output)?;
    out.write_all(summary::render(&config).as_bytes())
        .map_err(CheckError::Output)
}
