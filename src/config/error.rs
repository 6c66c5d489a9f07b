//! Errors of config parsing and validation.
//!
//! A config is rejected as a whole, so validation collects every problem it finds instead of
//! stopping at the first: a user fixing a ConfigMap sees the full list in one `check-config` run.

use std::fmt;

/// Why a config text was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The input is larger than the parser accepts at all (checked before any parsing).
    #[error("config is {size} bytes, larger than the {limit} bytes accepted")]
    TooLarge {
        /// Size of the input in bytes.
        size: usize,
        /// The accepted maximum.
        limit: usize,
    },
    /// The text is not YAML of the expected shape: syntax errors, unknown keys, wrong types, or a
    /// document that exceeds the parser's budget (depth, nodes, aliases).
    #[error("could not parse config: {0}")]
    Syntax(String),
    /// The document is larger or more complex than a real config could be (too deep, too many
    /// nodes, an alias bomb, several documents): rejected before it costs more.
    #[error("config rejected by the parser budget: {0}")]
    Budget(String),
    /// The document is a Kubernetes manifest, but not a ConfigMap carrying `data.config`.
    #[error("not a usable ConfigMap: {0}")]
    Manifest(String),
    /// The document parsed, but breaks one or more validation rules. Never empty.
    #[error("{}", ValidationList(.0))]
    Invalid(Vec<ValidationError>),
}

impl ConfigError {
    /// Every validation error, or an empty slice when the config failed before validation.
    pub fn validation_errors(&self) -> &[ValidationError] {
        match self {
            ConfigError::Invalid(errors) => errors,
            _ => &[],
        }
    }
}

struct ValidationList<'a>(&'a [ValidationError]);

impl fmt::Display for ValidationList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} validation error{}", if n == 1 { "" } else { "s" })?;
        for e in self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

/// The part of the config a validation error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// An entry of `address-pools`; `index` counts from 1 as MetalLB's messages do.
    Pool {
        /// 1-based position in `address-pools`.
        index: usize,
        /// The pool's name, when it has one.
        name: Option<String>,
    },
    /// An entry of `peers`.
    Peer {
        /// 1-based position in `peers`.
        index: usize,
        /// The `peer-address` as written.
        address: String,
    },
    /// A named entry of `bgp-communities`.
    Community {
        /// The community's alias.
        name: String,
    },
    /// A custom resource, e.g. `IPAddressPool "prod"`.
    Object {
        /// The object's kind.
        kind: String,
        /// `metadata.name`, or `#N` (its position in the input) when it has none.
        name: String,
    },
    /// An entry of `bfd-profiles`.
    BfdProfile {
        /// 1-based position in `bfd-profiles`.
        index: usize,
        /// The profile's name, when it has one.
        name: Option<String>,
    },
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Pool {
                index,
                name: Some(name),
            } => write!(f, "address pool {name:?} (#{index})"),
            Subject::Pool { index, name: None } => write!(f, "address pool #{index}"),
            Subject::Peer { index, address } if address.is_empty() => write!(f, "peer #{index}"),
            Subject::Peer { index, address } => write!(f, "peer #{index} ({address})"),
            Subject::Community { name } => write!(f, "bgp community {name:?}"),
            Subject::Object { kind, name } => write!(f, "{kind} {name:?}"),
            Subject::BfdProfile {
                index,
                name: Some(name),
            } => write!(f, "bfd profile {name:?} (#{index})"),
            Subject::BfdProfile { index, name: None } => write!(f, "bfd profile #{index}"),
        }
    }
}

/// Which validation rule an error comes from, for callers that react to specific rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    MissingName,
    MissingProtocol,
    UnknownProtocol,
    MissingAddresses,
    InvalidCidr,
    InvalidRange,
    RangeStartAfterEnd,
    MixedFamilyRange,
    DuplicatePool,
    OverlappingAddresses,
    AdvertisementsInLayer2Pool,
    InvalidAggregationLength,
    AggregationLengthTooShort,
    DuplicateAdvertisement,
    InvalidCommunity,
    UnknownCommunity,
    DuplicateCommunity,
    MissingAsn,
    EbgpMultihopForIbgp,
    InvalidPeerAddress,
    InvalidSourceAddress,
    InvalidRouterId,
    InvalidHoldTime,
    InvalidKeepaliveTime,
    InvalidNodeSelector,
    DuplicatePeer,
    UnknownBfdProfile,
    DuplicateBfdProfile,
    BfdValueOutOfRange,
    // Custom-resource input.
    /// A document that is not a config object this source reads.
    UnsupportedKind,
    /// An object that does not fit its kind's schema (unknown field, wrong type).
    MalformedObject,
    /// `metadata.name` missing or not a valid Kubernetes name.
    InvalidObjectName,
    /// Two objects of one kind with one name.
    DuplicateObject,
    /// A name listed twice (`serviceAllocation.namespaces`, `ipAddressPools`, `interfaces`).
    DuplicateEntry,
    /// Two selectors in one list that mean the same.
    DuplicateSelector,
    /// A `preferredNodeSelectors` entry without a weight of 1–100 or without a preference.
    InvalidPreference,
    // BGP custom resources.
    /// `peerASN` and `dynamicASN` both set, or `dynamicASN` not `internal`/`external`.
    InvalidPeerAsn,
    /// `peerPort` outside 1–16384.
    InvalidPeerPort,
    /// `connectTime` not whole seconds of 1–65535.
    InvalidConnectTime,
    /// `password` and `passwordSecret` both set.
    PasswordConflict,
    /// `serviceSelectors` with an aggregation length other than 32/128.
    ServiceSelectorsWithAggregation,
    /// Two BGPAdvertisements of one pool announcing the same prefixes to the same peers from
    /// the same nodes with different `localPref`.
    LocalPrefConflict,
}

/// One broken rule: which pool/peer/community/profile, which field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// What the error is about.
    pub subject: Subject,
    /// The YAML key concerned, e.g. `addresses` or `bgp-advertisements[2].communities`.
    pub field: String,
    /// The rule broken.
    pub rule: Rule,
    /// Human-readable detail, worded after MetalLB's messages where MetalLB has one.
    pub message: String,
}

impl ValidationError {
    pub(crate) fn new(
        subject: Subject,
        field: impl Into<String>,
        rule: Rule,
        message: impl Into<String>,
    ) -> Self {
        ValidationError {
            subject,
            field: field.into(),
            rule,
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, field {}: {}",
            self.subject, self.field, self.message
        )
    }
}

impl std::error::Error for ValidationError {}
