//! `ferrolb check-config FILE`: validate a config file before applying it.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use super::MAX_INPUT_BYTES;
use super::error::ConfigError;
use super::summary;

/// Arguments of `ferrolb check-config`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckConfigArgs {
    /// Config to check: MetalLB custom resources (IPAddressPool, L2Advertisement, BGP kinds,
    /// Namespaces; multi-document YAML or a `kubectl get -o yaml` List), or a legacy ConfigMap
    /// manifest (the config under `data.config`) or its bare config text; the form is detected.
    /// Exits 0 and prints a summary of the pools (and advertisements) when valid, with a
    /// `warning:` line for what does not invalidate it (a custom resource's field ferrolb does
    /// not know, ignored; a pool nothing announces); 1 with every error found otherwise.
    pub file: PathBuf,
}

/// Why `check-config` failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is invalid", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: ConfigError,
    },
    #[error("cannot write the summary")]
    Output(#[source] io::Error),
}

/// Reads and validates the file; on success writes the summary to `out`.
pub fn run(args: &CheckConfigArgs, out: &mut impl Write) -> Result<(), CheckError> {
    let path = &args.file;
    let read_error = |source| CheckError::Read {
        path: path.clone(),
        source,
    };
    // Read at most one byte past the limit, so a huge (or endless) file costs no more than that.
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() > MAX_INPUT_BYTES {
        let size = std::fs::metadata(path)
            .ok()
            .and_then(|m| usize::try_from(m.len()).ok())
            .filter(|s| *s > MAX_INPUT_BYTES)
            .unwrap_or(bytes.len());
        return Err(CheckError::Invalid {
            path: path.clone(),
            source: ConfigError::TooLarge {
                size,
                limit: MAX_INPUT_BYTES,
            },
        });
    }
    let text = String::from_utf8(bytes).map_err(|e| CheckError::Read {
        path: path.clone(),
        source: io::Error::new(io::ErrorKind::InvalidData, e.utf8_error()),
    })?;
    let config = super::parse_file(&text)
        .map_err(|source| CheckError::Invalid {
            path: path.clone(),
            source,
        })?
        .config;
    writeln!(out, "{}: valid", path.display()).map_err(CheckError::Output)?;
    out.write_all(summary::render(&config).as_bytes())
        .map_err(CheckError::Output)
}
