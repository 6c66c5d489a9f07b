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
pub mod overlap;
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
    AddressPool, AddressRange, BfdProfile, BgpAd, BgpAdvertisement, Community, Config,
    ConfigWarning, DynamicAsn, Families, L2Advertisement, Peer, Protocol, ServiceAllocation,
    Source, WarningKind,
};
pub use selector::{
    LabelSelector, Labels, NodeSelector, SelectorOperator, SelectorRequirement,
    selector_lists_disjoint,
};

/// Parses and validates a legacy config: a ConfigMap manifest (`kind: ConfigMap`, config text under
/// `data.config`) or the bare config text. Empty text is an empty, valid config.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let raw = parse::read_raw(text)?;
    validate::validate(raw).map_err(ConfigError::Invalid)
}

/// The empty-set guard, the same in the controller and the speakers: a config with no address
/// pools is refused while any Service of ours shows an address (`holders`: their keys). An
/// emptied ConfigMap or object set is far likelier a mistake than a wish to unassign
/// everything; removing the Services, or their type, does that. `None`: the config may load.
pub fn refuse_emptied(
    config: &Config,
    holders: impl IntoIterator<Item = String>,
) -> Option<String> {
    if !config.address_pools.is_empty() {
        return None;
    }
    let mut holders = holders.into_iter();
    let first = holders.next()?;
    let count = 1 + holders.count();
    Some(format!(
        "the config has no address pools, but {count} Service(s) hold addresses (first: {first}); \
         removing every pool would take all of them away, so the config is refused"
    ))
}

#[cfg(test)]
mod tests;
