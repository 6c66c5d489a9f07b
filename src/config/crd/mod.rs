//! MetalLB v0.13+ custom resources (`metallb.io`) as a config source.
//!
//! [`parse_file`] reads a file of objects — multi-document YAML, or a `List` as `kubectl get -o
//! yaml` prints — or the legacy ConfigMap (told apart automatically), into the same [`Config`]
//! the ConfigMap produces, plus the labels of any Namespace objects in the file (for
//! `namespaceSelectors`). [`from_objects`] is the same for objects already decoded (the API).

mod bgp;
mod bgp_ads;
mod pools;
pub(crate) mod raw;

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::{ConfigError, Rule, Subject, ValidationError};
use super::parse::decode_documents;
use super::raw::RawManifest;
use super::schema::{Config, ConfigWarning, Labels, WarningKind};

/// API group of every MetalLB object.
pub const GROUP: &str = "metallb.io";

/// Namespace name -> labels, for `serviceAllocation.namespaceSelectors`.
pub type Namespaces = BTreeMap<String, Labels>;

/// What a config file holds: the config and the Namespace objects found beside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFile {
    pub config: Config,
    pub namespaces: Namespaces,
}

/// The kinds this source reads, with the API versions accepted for each.
const POOL: &str = "IPAddressPool";
const L2: &str = "L2Advertisement";
const BGP_KINDS: [&str; 4] = ["BGPPeer", "BGPAdvertisement", "BFDProfile", "Community"];
/// Status-only MetalLB kinds a `kubectl get` of the namespace may include: not config.
const STATUS_KINDS: [&str; 4] = [
    "ServiceL2Status",
    "ServiceBGPStatus",
    "ConfigurationState",
    "ServiceStatus",
];

/// Reads a config file: custom resources, or a legacy ConfigMap (manifest or bare text).
pub fn parse_file(text: &str) -> Result<ConfigFile, ConfigError> {
    let docs: Vec<Option<Value>> = decode_documents(text)?;
    let mut objects = Vec::new();
    let mut legacy: Vec<Value> = Vec::new();
    for doc in docs.into_iter().flatten() {
        flatten_lists(doc, &mut objects);
    }
    objects.retain(|o| {
        let is_legacy = o.get("kind").and_then(Value::as_str) == Some("ConfigMap")
            || (o.is_object() && o.get("kind").is_none() && o.get("apiVersion").is_none());
        if is_legacy {
            legacy.push(o.clone());
        }
        !is_legacy
    });
    if legacy.is_empty() {
        return from_objects(objects, None);
    }
    let metallb = objects
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) != Some("Namespace"))
        .count();
    if legacy.len() > 1 || metallb > 0 {
        return Err(ConfigError::Manifest(
            "the file mixes a legacy ConfigMap with other config objects; use one source".into(),
        ));
    }
    let namespaces = namespaces_of(&objects)?;
    let config = match legacy.pop() {
        // A lone ConfigMap or bare config: the legacy parser reads the text itself, so its
        // errors and line numbers are exactly those of `check-config` before CRDs existed.
        _ if objects.is_empty() => super::parse(text)?,
        Some(doc) if doc.get("kind").is_some() => {
            let manifest: RawManifest =
                serde_json::from_value(doc).map_err(|e| ConfigError::Manifest(e.to_string()))?;
            super::parse(&super::parse::config_text_of(manifest)?)?
        }
        Some(doc) => super::parse(&serde_json::to_string(&doc).unwrap_or_default())?,
        None => Config::default(),
    };
    Ok(ConfigFile { config, namespaces })
}

/// `List` objects (`kubectl get a,b -o yaml`) are replaced by their items.
fn flatten_lists(doc: Value, out: &mut Vec<Value>) {
    let is_list = doc
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k == "List" || k.ends_with("List"))
        && doc.get("items").is_some();
    if !is_list {
        out.push(doc);
        return;
    }
    if let Some(Value::Array(items)) = doc.get("items").cloned() {
        for item in items {
            flatten_lists(item, out);
        }
    }
}

fn object_kind(o: &Value) -> (String, String) {
    let kind = o
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let version = o
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    (kind, version)
}

fn namespaces_of(objects: &[Value]) -> Result<Namespaces, ConfigError> {
    let mut out = Namespaces::new();
    for o in objects {
        if object_kind(o).0 != "Namespace" {
            continue;
        }
        let ns: raw::RawNamespace = serde_json::from_value(o.clone())
            .map_err(|e| ConfigError::Manifest(format!("a Namespace object: {e}")))?;
        if let Some(name) = ns.metadata.name {
            out.insert(name, ns.metadata.labels.unwrap_or_default());
        }
    }
    Ok(out)
}

/// Builds the config from decoded objects. With `namespace`, objects in other namespaces are
/// left out (as MetalLB reads only its own) with a warning; objects without one are kept.
pub fn from_objects(
    objects: Vec<Value>,
    namespace: Option<&str>,
) -> Result<ConfigFile, ConfigError> {
    let namespaces = namespaces_of(&objects)?;
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut sorted = Sorted::default();
    for (index, o) in objects.into_iter().enumerate() {
        let (kind, version) = object_kind(&o);
        let name = o
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map_or_else(|| format!("#{}", index + 1), str::to_owned);
        let subject = Subject::Object {
            kind: if kind.is_empty() {
                "object".into()
            } else {
                kind.clone()
            },
            name,
        };
        if kind == "Namespace" {
            continue;
        }
        if let (Some(want), Some(have)) = (
            namespace,
            o.pointer("/metadata/namespace").and_then(Value::as_str),
        ) && want != have
        {
            warnings.push(ConfigWarning::about(
                &subject,
                "metadata.namespace",
                format!("in namespace {have:?}, not {want:?}: ignored"),
                WarningKind::Other,
            ));
            continue;
        }
        let group_ok = version.split_once('/').is_some_and(|(g, _)| g == GROUP);
        let bucket = match (kind.as_str(), version.rsplit('/').next()) {
            (POOL, Some("v1beta1")) if group_ok => &mut sorted.pools,
            (L2, Some("v1beta1")) if group_ok => &mut sorted.l2,
            ("BGPPeer", Some("v1beta1" | "v1beta2")) if group_ok => &mut sorted.bgp,
            (k, Some("v1beta1")) if group_ok && BGP_KINDS.contains(&k) => &mut sorted.bgp,
            (k, _) if group_ok && STATUS_KINDS.contains(&k) => continue,
            _ => {
                errors.push(ValidationError::new(
                    subject,
                    "kind",
                    Rule::UnsupportedKind,
                    format!(
                        "apiVersion {version:?} kind {kind:?} is not a config object; expected \
                         {GROUP}/v1beta1 IPAddressPool, L2Advertisement, BGPAdvertisement, \
                         Community or BFDProfile, {GROUP}/v1beta1 or v1beta2 BGPPeer, or a v1 \
                         Namespace"
                    ),
                ));
                continue;
            }
        };
        bucket.push((subject, o));
    }
    let mut config = pools::build(sorted.pools, sorted.l2, &mut errors, &mut warnings);
    let bgp = bgp::build(
        sorted.bgp,
        &config.address_pools,
        &mut errors,
        &mut warnings,
    );
    config.peers = bgp.peers;
    config.bgp_advertisements = bgp.advertisements;
    config.bgp_communities = bgp.communities;
    config.bfd_profiles = bgp.bfd_profiles;
    pools::warn_unannounced(&config, &mut warnings);
    if !errors.is_empty() {
        return Err(ConfigError::Invalid(errors));
    }
    config.warnings = warnings;
    Ok(ConfigFile { config, namespaces })
}

/// Objects by kind, each with the subject its errors are reported against.
#[derive(Default)]
struct Sorted {
    pools: Vec<(Subject, Value)>,
    l2: Vec<(Subject, Value)>,
    bgp: Vec<(Subject, Value)>,
}

/// What an unknown field's warning says.
const UNKNOWN_FIELD: &str = "unknown field, ignored: ferrolb does not know it (a field a newer \
                             MetalLB added, or a misspelt one); the fields ferrolb knows apply";

/// Decodes one object, or records why not against `subject`.
///
/// A field ferrolb does not know does not refuse the object: it is ignored, with a warning
/// naming the object and the field's path, and every known field applies (MetalLB's newer CRDs
/// keep fields of their own). A known field of the wrong type refuses the object, naming the
/// field. `metadata` and `status` are written by the API server and read only for what a
/// config needs, so what else they hold is no finding.
pub(crate) fn decode_object<T: serde::de::DeserializeOwned>(
    subject: &Subject,
    value: Value,
    errors: &mut Vec<ValidationError>,
    warnings: &mut Vec<ConfigWarning>,
) -> Option<T> {
    let mut unknown: Vec<String> = Vec::new();
    let mut note = |path: serde_ignored::Path<'_>| {
        let field = field_path(&path);
        let top = field.split(['.', '[']).next().unwrap_or_default();
        if !matches!(top, "metadata" | "status") {
            unknown.push(field);
        }
    };
    let decoded =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(value, &mut note));
    match decoded {
        Ok(v) => {
            warnings.extend(unknown.into_iter().map(|field| {
                ConfigWarning::about(subject, field, UNKNOWN_FIELD, WarningKind::UnknownField)
            }));
            Some(v)
        }
        Err(e) => {
            let field = match e.path().to_string() {
                p if p == "." => "spec".to_owned(),
                p => p,
            };
            errors.push(ValidationError::new(
                subject.clone(),
                field,
                Rule::MalformedObject,
                format!("does not fit the schema: {}", e.inner()),
            ));
            None
        }
    }
}

/// A field's path as errors name it: `spec.nodeSelectors[0].matchLabels`.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => match field_path(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

#[cfg(test)]
mod bgp_ad_tests;
#[cfg(test)]
mod bgp_tests;
#[cfg(test)]
mod tests;
