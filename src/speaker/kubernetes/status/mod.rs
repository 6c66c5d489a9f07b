//! The per-Service status objects speakers write, as MetalLB writes them: `ServiceL2Status`
//! (`kubectl get servicel2statuses`: which node announces a Service over layer 2, on which
//! interfaces, [`super::l2status`]) and `ServiceBGPStatus` (`kubectl get servicebgpstatuses`:
//! which BGP peers a node hands a Service to, [`bgp`]). One object per (Service, node), labelled
//! with both; the kinds differ only in their names and the list their status holds
//! ([`StatusKind`]). This is the pure part: from what this speaker wants and the objects it sees
//! to the creates, status patches and deletes due. [`edge`] writes them.
//!
//! Speakers never fight over one object (MetalLB #2930): a speaker creates and patches only
//! objects labelled with its own node, and deletes another node's object only when that node is
//! not alive in its view and it wants that Service's object itself now. A live node's leftovers
//! are its own to delete, and it does so as soon as it lets go.
//!
//! Objects are labelled with their node ([`NODE_LABEL`]) as MetalLB labels them, but a label
//! value holds at most 63 characters and a node name up to 253: a longer name is labelled with
//! [`node_label`] (its start and a hash of it), and the exact name is read from `status.node`.

pub mod bgp;
pub mod edge;

use std::borrow::{Borrow, Cow};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Arc;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const NODE_LABEL: &str = "metallb.io/node";
pub const SERVICE_NAME_LABEL: &str = "metallb.io/service-name";
pub const SERVICE_NAMESPACE_LABEL: &str = "metallb.io/service-namespace";

/// One kind of per-Service status object: its names, and the list of names its status holds
/// besides the node and the Service (layer 2: `interfaces`, BGP: `peers`).
pub trait StatusKind:
    Debug + Clone + Copy + Default + PartialEq + Eq + Send + Sync + 'static
{
    /// The kind, as in `kind:` and the logs.
    const KIND: &'static str;
    /// The resource, as in the API path and the RBAC rules.
    const PLURAL: &'static str;
    /// `metadata.generateName` of the objects a speaker creates.
    const GENERATE_NAME: &'static str;
    /// The status field holding the list.
    const FIELD: &'static str;
    /// The key of [`DesiredOf`]: a Service's `namespace/name`.
    type Key: Borrow<str> + Ord + Debug + Send + Sync + 'static;
    /// The names wanted for one Service.
    type Names: Names;

    /// One name as the status lists it.
    fn item(name: &str) -> Value;
    /// The name an item of the status's list holds.
    fn name_of(item: &Value) -> Option<&str>;
}

/// The names wanted in one Service's status, in the order written.
pub trait Names: Debug + Clone + Default + PartialEq + Eq + Send + Sync + 'static {
    fn names(&self) -> impl Iterator<Item = &String>;
}

impl Names for Vec<String> {
    fn names(&self) -> impl Iterator<Item = &String> {
        self.iter()
    }
}

impl Names for BTreeSet<String> {
    fn names(&self) -> impl Iterator<Item = &String> {
        self.iter()
    }
}

/// What a speaker wants of kind `K`: each Service (`namespace/name`) with the names its object
/// lists; a Service absent has no object of this node.
pub type DesiredOf<K> = BTreeMap<<K as StatusKind>::Key, <K as StatusKind>::Names>;

/// One status object as seen in the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Shared with the cache's key.
    pub name: Arc<str>,
    /// Its node: `status.node` once written, else its `metallb.io/node` label (the name itself,
    /// or for a name longer than a label value its [`node_label`]). One allocation per node.
    pub node: Arc<str>,
    /// `namespace/name` from its two service labels.
    pub service: String,
    /// The list of its status ([`StatusKind::FIELD`]); `None` while the status is not written.
    pub names: Option<Vec<String>>,
}

impl Observed {
    /// Reads the labels and status of an object of kind `K`; `None` for an object without the
    /// three labels (not one a speaker wrote, so never touched).
    pub fn from_parts<K: StatusKind>(
        name: &Arc<str>,
        labels: &BTreeMap<String, String>,
        status: Option<&Value>,
    ) -> Option<Self> {
        let label = labels.get(NODE_LABEL)?;
        let ns = labels.get(SERVICE_NAMESPACE_LABEL)?;
        let svc = labels.get(SERVICE_NAME_LABEL)?;
        // The label of a long node name is cut: the status holds the exact name.
        let node = status
            .and_then(|s| s.get("node")?.as_str())
            .filter(|n| !n.is_empty())
            .unwrap_or(label);
        let names = status.filter(|s| s.get("node").is_some()).map(|s| {
            s.get(K::FIELD)
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(|i| K::name_of(i).map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        });
        Some(Self {
            name: name.clone(),
            node: crate::k8s::node::shared_name(node),
            service: format!("{ns}/{svc}"),
            names,
        })
    }
}

/// What to do to bring the objects in line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create this node's object for `service` (then write its status).
    Create {
        service: String,
        names: Vec<String>,
    },
    /// Write the status of this node's object `name`.
    Patch {
        name: String,
        service: String,
        names: Vec<String>,
    },
    Delete {
        name: String,
    },
}

/// The actions that make the objects match `desired` for node `me`. `alive` is the set of
/// nodes alive in this speaker's view.
pub fn diff<'a, S: Borrow<str> + Ord, N: Names>(
    me: &str,
    desired: &BTreeMap<S, N>,
    observed: impl IntoIterator<Item = &'a Observed>,
    alive: &BTreeSet<String>,
) -> Vec<Action> {
    // An object whose status is not written yet is known by its label only.
    let my_label = node_label(me);
    let alive_labels: BTreeSet<Cow<'_, str>> = alive.iter().map(|n| node_label(n)).collect();
    let mut actions = Vec::new();
    let mut mine: BTreeSet<&str> = BTreeSet::new();
    let mut sorted: Vec<&Observed> = observed.into_iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for o in sorted {
        if *o.node == *me || *o.node == *my_label {
            match desired.get(o.service.as_str()) {
                // A duplicate of our own (a create whose answer was lost) goes.
                Some(want) if mine.insert(o.service.as_str()) => {
                    let written = o.names.as_ref();
                    if !written.is_some_and(|w| w.iter().eq(want.names())) {
                        actions.push(Action::Patch {
                            name: o.name.to_string(),
                            service: o.service.clone(),
                            names: want.names().cloned().collect(),
                        });
                    }
                }
                _ => actions.push(Action::Delete {
                    name: o.name.to_string(),
                }),
            }
        } else if desired.contains_key(o.service.as_str())
            && !alive.contains(&*o.node)
            && !alive_labels.contains(&*o.node)
        {
            actions.push(Action::Delete {
                name: o.name.to_string(),
            });
        }
    }
    for (service, names) in desired {
        if !mine.contains(service.borrow()) {
            actions.push(Action::Create {
                service: service.borrow().to_owned(),
                names: names.names().cloned().collect(),
            });
        }
    }
    actions
}

/// The longest label value the API server accepts.
pub const LABEL_VALUE_MAX: usize = 63;

/// How many hex digits of a long name's SHA-256 end its shortened form (64 bits: two node
/// names of one cluster never meet on one).
const HASH_DIGITS: usize = 16;

/// `value` if it is at most `max` bytes long, else its first characters (only alphanumerics,
/// `-`, `_` and `.`; starting and ending alphanumeric), a dash and the first [`HASH_DIGITS`] hex
/// digits of its SHA-256: deterministic (every speaker works out the same for a node), and
/// different for values that only differ past the cut.
pub fn shortened(value: &str, max: usize) -> Cow<'_, str> {
    if value.len() <= max {
        return Cow::Borrowed(value);
    }
    let hash: String = Sha256::digest(value.as_bytes())
        .iter()
        .take(HASH_DIGITS / 2)
        .map(|b| format!("{b:02x}"))
        .collect();
    let keep = max.saturating_sub(HASH_DIGITS + 1);
    let start: String = value
        .chars()
        .take(keep)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let start = start.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if start.is_empty() {
        Cow::Owned(hash)
    } else {
        Cow::Owned(format!("{start}-{hash}"))
    }
}

/// The [`NODE_LABEL`] value of `node`'s objects: the name itself up to 63 characters (as
/// MetalLB labels them), else its [`shortened`] form, since the API server refuses a longer
/// label value. The exact name is in each object's `status.node`.
pub fn node_label(node: &str) -> Cow<'_, str> {
    shortened(node, LABEL_VALUE_MAX)
}

/// The labels of this node's object for `service` (`namespace/name`).
pub fn labels(me: &str, service: &str) -> BTreeMap<String, String> {
    let (ns, name) = service.split_once('/').unwrap_or(("", service));
    [
        (NODE_LABEL.to_owned(), node_label(me).into_owned()),
        (SERVICE_NAME_LABEL.to_owned(), name.to_owned()),
        (SERVICE_NAMESPACE_LABEL.to_owned(), ns.to_owned()),
    ]
    .into()
}

/// The status patch of this node's object of kind `K` for `service`.
pub fn status<K: StatusKind>(me: &str, service: &str, names: &[String]) -> Value {
    let (ns, name) = service.split_once('/').unwrap_or(("", service));
    let items: Vec<Value> = names.iter().map(|n| K::item(n)).collect();
    let mut body = json!({
        "node": me,
        "serviceName": name,
        "serviceNamespace": ns,
    });
    body[K::FIELD] = Value::Array(items);
    json!({ "status": body })
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
