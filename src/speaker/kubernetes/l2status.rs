//! `ServiceL2Status` objects (`kubectl get servicel2statuses`): which node announces each
//! Service, as MetalLB writes them. This is the pure part: from what this speaker announces and
//! the objects it sees to the creates, status patches and deletes due.
//!
//! Speakers never fight over one object (MetalLB #2930): a speaker creates and patches only
//! objects labelled with its own node, and deletes another node's object only when that node is
//! not alive in its view and it announces that Service itself now. A live node's leftovers are
//! its own to delete, and it does so as soon as it stops announcing.
//!
//! Objects are labelled with their node ([`NODE_LABEL`]) as MetalLB labels them, but a label
//! value holds at most 63 characters and a node name up to 253: a longer name is labelled with
//! [`node_label`] (its start and a hash of it), and the exact name is read from `status.node`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const NODE_LABEL: &str = "metallb.io/node";
pub const SERVICE_NAME_LABEL: &str = "metallb.io/service-name";
pub const SERVICE_NAMESPACE_LABEL: &str = "metallb.io/service-namespace";

/// One `ServiceL2Status` object as seen in the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Shared with the cache's key.
    pub name: Arc<str>,
    /// Its node: `status.node` once written, else its `metallb.io/node` label (the name itself,
    /// or for a name longer than a label value its [`node_label`]). One allocation per node.
    pub node: Arc<str>,
    /// `namespace/name` from its two service labels.
    pub service: String,
    /// `status.interfaces`; `None` while the status is not written yet.
    pub interfaces: Option<Vec<String>>,
}

impl Observed {
    /// Reads the labels and status of an object; `None` for an object without the three labels
    /// (not one a speaker wrote, so never touched).
    pub fn from_parts(
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
        let interfaces = status.filter(|s| s.get("node").is_some()).map(|s| {
            s.get("interfaces")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(|i| i.get("name")?.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        });
        Some(Self {
            name: name.clone(),
            node: crate::k8s::node::shared_name(node),
            service: format!("{ns}/{svc}"),
            interfaces,
        })
    }
}

/// What to do to bring the objects in line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create this node's object for `service` (then write its status).
    Create {
        service: String,
        interfaces: Vec<String>,
    },
    /// Write the status of this node's object `name`.
    Patch {
        name: String,
        service: String,
        interfaces: Vec<String>,
    },
    Delete {
        name: String,
    },
}

/// Each Service this node announces (`namespace/name`, the cache's key) with the interfaces
/// its announcement is restricted to.
pub type Desired = BTreeMap<Arc<str>, Vec<String>>;

/// The Services this node announces (`namespace/name`), each with the interfaces its
/// announcement is restricted to (empty: every usable interface, as MetalLB leaves it). `own`
/// is this node's usable interfaces, when known.
pub fn desired(
    announced: &BTreeMap<Arc<str>, Vec<IpAddr>>,
    only_on: &BTreeMap<IpAddr, BTreeSet<String>>,
    own: Option<&BTreeSet<String>>,
) -> Desired {
    announced
        .iter()
        .map(|(service, ips)| {
            let names: BTreeSet<String> = ips
                .iter()
                .filter_map(|ip| only_on.get(ip))
                .flatten()
                .filter(|n| own.is_none_or(|o| o.contains(*n)))
                .cloned()
                .collect();
            (service.clone(), names.into_iter().collect())
        })
        .collect()
}

/// The actions that make the objects match `desired` for node `me`. `alive` is the set of
/// nodes alive in this speaker's view.
pub fn diff<'a>(
    me: &str,
    desired: &Desired,
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
                    if o.interfaces.as_ref() != Some(want) {
                        actions.push(Action::Patch {
                            name: o.name.to_string(),
                            service: o.service.clone(),
                            interfaces: want.clone(),
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
    for (service, interfaces) in desired {
        if !mine.contains(&**service) {
            actions.push(Action::Create {
                service: service.to_string(),
                interfaces: interfaces.clone(),
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

/// The status patch of this node's object for `service`.
pub fn status(me: &str, service: &str, interfaces: &[String]) -> Value {
    let (ns, name) = service.split_once('/').unwrap_or(("", service));
    let interfaces: Vec<Value> = interfaces.iter().map(|n| json!({"name": n})).collect();
    json!({"status": {
        "node": me,
        "serviceName": name,
        "serviceNamespace": ns,
        "interfaces": interfaces,
    }})
}

#[cfg(test)]
#[path = "l2status_tests.rs"]
mod tests;
