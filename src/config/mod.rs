//! The config model and its two sources, MetalLB v0.13+ custom resources ([`crd`]) and the
//! legacy (v0.9–v0.12) ConfigMap: schema, parsing and validation (pure).
//!
//! [`parse`] turns the ConfigMap manifest, or the bare text of its `config` key, into a
//! [`Config`] that satisfies every MetalLB validation rule, or a [`ConfigError`] listing every
//! rule broken, each naming the pool/peer and the field. Parsing is strict (unknown keys are
//! errors) and bounded (see [`MAX_INPUT_BYTES`] and the other budget constants).

mod addresses;
pub mod check;
mod community;
pub mod convert;
pub mod crd;
mod error;
mod parse;
mod peers;
mod raw;
mod schema;
mod selector;
pub mod summary;
mod validate;

pub use community::parse_community;
pub use crd::{ConfigFile, Namespaces, parse_file};
pub use error::{ConfigError, Rule, Subject, ValidationError};
pub use parse::{MAX_ALIASES, MAX_DEPTH, MAX_DOCUMENTS, MAX_INPUT_BYTES, MAX_NODES};
pub use schema::{
    AddressPool, AddressRange, BfdProfile, BgpAdvertisement, Community, Config, ConfigWarning,
    Families, L2Advertisement, Peer, Protocol, ServiceAllocation, Source, WarningKind,
};
pub use selector::{LabelSelector, Labels, NodeSelector, SelectorOperator, SelectorRequirement};

/// Parses and validates a legacy config: a ConfigMap manifest (`kind: ConfigMap`, config text under
/// `data.config`) or the bare config text. Empty text is an empty, valid config.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let raw = parse::read_raw(text)?;
    validate::validate(raw).map_err(ConfigError::Invalid)
}

#[cfg(test)]
mod tests;
