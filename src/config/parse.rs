//! YAML to raw config: size and structure budget, manifest-or-bare detection, strict decoding.
//!
//! The ConfigMap comes from the Kubernetes API, which anyone with edit rights on one ConfigMap can
//! fill. The budget keeps a hostile document (deep nesting, alias bombs, huge scalar counts) from
//! costing more than a real config would before it is rejected.

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, IgnoredAny};

use super::error::ConfigError;
use super::raw::{RawConfig, RawManifest};

/// Largest accepted input in bytes. Kubernetes caps a ConfigMap at 1 MiB; a manifest file adds
/// metadata around it, so allow twice that.
pub const MAX_INPUT_BYTES: usize = 2 * 1024 * 1024;

/// Deepest nesting a real config or manifest needs is about 10 (peer > node-selectors >
/// match-expressions > values; `managedFields` in a fetched manifest); 32 leaves room.
pub const MAX_DEPTH: usize = 32;

/// Real configs use few or no anchors; this cap still allows hand-written reuse.
pub const MAX_ALIASES: usize = 256;

/// Nodes (scalars + collections): a config with thousands of pools stays far below this.
pub const MAX_NODES: usize = 100_000;

/// Events replayed through aliases: bounds alias bombs (nested anchors each repeated many times),
/// which stay under the alias count but expand exponentially.
pub const MAX_REPLAYED_EVENTS: usize = 10_000;

/// Documents accepted in one file of custom resources (a `kubectl get -o yaml` List is one).
pub const MAX_DOCUMENTS: usize = 10_000;

fn options(max_documents: usize) -> serde_saphyr::Options {
    let mut options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            // The parser rejects deeper flow collections (`[[[...]]]`) on its own.
            flow_nesting_limit: MAX_DEPTH,
            max_aliases: MAX_ALIASES,
            max_anchors: MAX_ALIASES,
            max_nodes: MAX_NODES,
            max_events: 2 * MAX_NODES,
            max_documents: max_documents,
            max_total_scalar_bytes: MAX_INPUT_BYTES,
            max_merge_keys: MAX_ALIASES,
            max_reader_input_bytes: Some(MAX_INPUT_BYTES),
            max_recorded_anchor_events: MAX_REPLAYED_EVENTS,
        },
    };
    options.alias_limits.max_total_replayed_events = MAX_REPLAYED_EVENTS;
    options
}

fn decode<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    serde_saphyr::from_str_with_options(text, options(1)).map_err(|e| budget_or_syntax(&e, 1))
}

/// Every document of a multi-document YAML text (empty documents come back as `None`), under
/// the same budget as a single config.
pub(crate) fn decode_documents<T: DeserializeOwned>(
    text: &str,
) -> Result<Vec<Option<T>>, ConfigError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(ConfigError::TooLarge {
            size: text.len(),
            limit: MAX_INPUT_BYTES,
        });
    }
    serde_saphyr::from_multiple_with_options(text, options(MAX_DOCUMENTS))
        .map_err(|e| budget_or_syntax(&e, MAX_DOCUMENTS))
}

fn budget_or_syntax(e: &serde_saphyr::Error, max_documents: usize) -> ConfigError {
    {
        if let serde_saphyr::Error::Budget { breach, location } = innermost(e) {
            return ConfigError::Budget(format!(
                "{} (at line {} column {})",
                describe_breach(breach, max_documents),
                location.line(),
                location.column()
            ));
        }
        if let serde_saphyr::Error::ExternalMessage {
            source, location, ..
        } = innermost(e)
            && let serde_saphyr::ExternalMessageSource::Parser(scan) = source.as_ref()
            && matches!(
                scan.kind(),
                serde_saphyr::granit_parser::ErrorKind::RecursionLimitExceeded
            )
        {
            // The parser's own nesting guard can fire before the budget sees the depth.
            return ConfigError::Budget(format!(
                "nesting deeper than {MAX_DEPTH} levels (at line {} column {})",
                location.line(),
                location.column()
            ));
        }
        let msg = e.to_string();
        // The binary adds its own "error:" prefix; do not say it twice.
        ConfigError::Syntax(msg.strip_prefix("error: ").unwrap_or(&msg).to_owned())
    }
}

/// The error under the snippet and alias wrappers serde-saphyr adds for rendering.
fn innermost(mut e: &serde_saphyr::Error) -> &serde_saphyr::Error {
    while let serde_saphyr::Error::WithSnippet { error, .. }
    | serde_saphyr::Error::AliasError { error, .. } = e
    {
        e = error;
    }
    e
}

fn describe_breach(breach: &serde_saphyr::budget::BudgetBreach, max_documents: usize) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    match breach {
        B::Depth { depth } => format!("nesting depth {depth} exceeds the limit of {MAX_DEPTH}"),
        B::Documents { .. } if max_documents == 1 => {
            "more than one YAML document; a config is a single document".into()
        }
        B::Documents { .. } => format!("more than {max_documents} YAML documents"),
        B::Nodes { .. } | B::Events { .. } => {
            format!("more than {MAX_NODES} YAML nodes (after alias expansion)")
        }
        B::Aliases { .. } | B::Anchors { .. } => {
            format!("more than {MAX_ALIASES} YAML aliases or anchors")
        }
        B::RecordedAnchorEvents { .. } => {
            format!("aliases expand to more than {MAX_REPLAYED_EVENTS} YAML events")
        }
        B::ScalarBytes { .. } => format!("more than {MAX_INPUT_BYTES} bytes of text"),
        other => format!("{other:?}"),
    }
}

/// Text without any YAML content (empty, blanks, comments) is an empty config, as in MetalLB.
fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---" || l == "..."
    })
}

/// Reads the ConfigMap manifest or the bare `config` text into the raw schema.
pub(crate) fn read_raw(text: &str) -> Result<RawConfig, ConfigError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(ConfigError::TooLarge {
            size: text.len(),
            limit: MAX_INPUT_BYTES,
        });
    }
    if is_blank(text) {
        return Ok(RawConfig::default());
    }
    // A first, schema-free pass tells the two forms apart by their top-level keys, so the strict
    // pass can report unknown keys against the right schema.
    let top: Option<BTreeMap<String, IgnoredAny>> = decode(text)?;
    let Some(top) = top else {
        return Ok(RawConfig::default());
    };
    if top.contains_key("kind") || top.contains_key("apiVersion") {
        let inner = config_text_of(decode(text)?)?;
        // Line numbers in these errors count from the start of the `data.config` text.
        return read_bare(&inner).map_err(|e| match e {
            ConfigError::Syntax(m) => ConfigError::Syntax(format!("in data.config: {m}")),
            ConfigError::Budget(m) => ConfigError::Budget(format!("in data.config: {m}")),
            other => other,
        });
    }
    read_bare(text)
}

fn read_bare(text: &str) -> Result<RawConfig, ConfigError> {
    if is_blank(text) {
        return Ok(RawConfig::default());
    }
    let raw: Option<RawConfig> = decode(text)?;
    Ok(raw.unwrap_or_default())
}

pub(crate) fn config_text_of(manifest: RawManifest) -> Result<String, ConfigError> {
    match manifest.kind.as_deref() {
        Some("ConfigMap") => {}
        Some(other) => {
            return Err(ConfigError::Manifest(format!(
                "kind is {other:?}, expected \"ConfigMap\""
            )));
        }
        None => return Err(ConfigError::Manifest("kind is missing".into())),
    }
    if let Some(version) = manifest.api_version.as_deref()
        && version != "v1"
    {
        return Err(ConfigError::Manifest(format!(
            "apiVersion is {version:?}, expected \"v1\""
        )));
    }
    match manifest.data.and_then(|mut d| d.remove("config")) {
        Some(Some(text)) => Ok(text),
        // `config: ""` or `config: null` both mean an empty config, as an empty key does.
        Some(None) => Ok(String::new()),
        None => Err(ConfigError::Manifest(
            "data.config is missing (MetalLB reads its config from the key \"config\")".into(),
        )),
    }
}
