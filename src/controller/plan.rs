//! `ferrolb plan`: the controller's decisions for a config and a set of Services, offline.
//!
//! The same [`Core`] the live controller runs is fed the Services in file order after the startup
//! rebuild, exactly as a freshly started controller would see them, so the plan is what the
//! controller would write. The core reads each Service as the live controller's watch decodes it
//! ([`CachedService`], through the same `From<Service>`); the decisions are then applied to the
//! parsed Services for output.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::{Service, ServiceSpec, ServiceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::cached::CachedService;
use super::reconcile::{Core, EventType, Outcome, PoolEvent, Reason, overlap_warnings};
use crate::config::overlap::ClusterNetworks;
use crate::config::{Config, Namespaces};
use crate::ipam::ServiceKey;
use crate::k8s::service::{allocated_pool, status_ips};

/// Why the Services could not be read or printed.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{source_name}: not valid YAML: {message}")]
    Yaml {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: document {document}: {message}")]
    Document {
        source_name: String,
        document: usize,
        message: String,
    },
    #[error("Service {key} appears more than once in the input")]
    Duplicate { key: ServiceKey },
    #[error("cannot write YAML: {0}")]
    Output(String),
    #[error("the config's pools were refused by the allocator")]
    Pools(#[from] crate::ipam::PoolSpecError),
}

/// An event the controller would record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanEvent {
    pub key: ServiceKey,
    pub event_type: EventType,
    pub reason: Reason,
    pub message: String,
}

/// The outcome of a plan: every input Service as the controller would leave it, the events,
/// and the Warnings the controller would record on pools overlapping the cluster's networks.
#[derive(Debug, Clone)]
pub struct Plan {
    pub services: Vec<Service>,
    pub events: Vec<PlanEvent>,
    pub pool_warnings: Vec<PoolEvent>,
}

fn budget_options() -> serde_saphyr::Options {
    // `kubectl get svc -A -o yaml` of a large cluster is big (managedFields included); the limits
    // still stop alias bombs and pathological nesting.
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: 64,
            max_documents: 100_000,
            max_nodes: 20_000_000,
            max_events: 40_000_000,
            max_aliases: 10_000,
            max_anchors: 10_000,
        },
    }
}

/// The YAML documents of `text`, each read as `T` (`None` for an empty one), within the budget.
pub fn read_docs<T: serde::de::DeserializeOwned>(
    text: &str,
    source_name: &str,
) -> Result<Vec<Option<T>>, PlanError> {
    serde_saphyr::from_multiple_with_options(text, budget_options()).map_err(|e| PlanError::Yaml {
        source_name: source_name.to_owned(),
        message: e.to_string(),
    })
}

/// One YAML document as read: typed fields (so a value like `y` or `on` stays the string the
/// Kubernetes schema says it is, instead of becoming a YAML 1.1 boolean), plus `items` for lists.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc {
    kind: Option<String>,
    api_version: Option<String>,
    #[serde(default)]
    metadata: ObjectMeta,
    spec: Option<ServiceSpec>,
    status: Option<ServiceStatus>,
    /// A list's items are read as documents of their own (an item's own `items` is unused).
    items: Option<Vec<Doc>>,
}

fn service_from(doc: Doc) -> Result<Service, String> {
    let Doc {
        api_version,
        metadata,
        spec,
        status,
        ..
    } = doc;
    if let Some(v) = api_version.as_deref()
        && v != "v1"
    {
        return Err(format!("apiVersion {v:?} is not v1"));
    }
    if metadata.name.as_deref().unwrap_or("").is_empty() {
        return Err("metadata.name is missing".into());
    }
    Ok(Service {
        metadata,
        spec,
        status,
    })
}

/// Reads Services from YAML: one or more documents, each a `Service` or a `List`/`ServiceList`
/// of them (as `kubectl get svc -A -o yaml` prints). `source_name` names the input in errors.
/// Namespace objects are allowed and skipped (see [`parse_objects`]).
pub fn parse_services(text: &str, source_name: &str) -> Result<Vec<Service>, PlanError> {
    parse_objects(text, source_name).map(|(services, _)| services)
}

/// Reads Services and Namespaces (whose labels feed pools' `namespaceSelectors`) from YAML.
pub fn parse_objects(
    text: &str,
    source_name: &str,
) -> Result<(Vec<Service>, Namespaces), PlanError> {
    let docs: Vec<Option<Doc>> = read_docs(text, source_name)?;
    let mut services = Vec::new();
    let mut namespaces = Namespaces::new();
    for (index, doc) in docs.into_iter().enumerate() {
        let document = index + 1;
        let doc_err = |message: String| PlanError::Document {
            source_name: source_name.to_owned(),
            document,
            message,
        };
        let Some(mut doc) = doc else { continue };
        match doc.kind.take().as_deref() {
            Some("Service") => services.push(service_from(doc).map_err(doc_err)?),
            Some("Namespace") => add_namespace(&mut namespaces, doc.metadata),
            // Read by `plan --nodes`' announcement preview, not by the allocator.
            Some("EndpointSlice") | Some("EndpointSliceList") => {}
            Some("List") | Some("ServiceList") | Some("NamespaceList") => {
                for (i, item) in doc.items.unwrap_or_default().into_iter().enumerate() {
                    // API lists omit each item's kind; kubectl's List keeps it.
                    match item.kind.as_deref() {
                        Some("Service") | None => {}
                        Some("Namespace") => {
                            add_namespace(&mut namespaces, item.metadata);
                            continue;
                        }
                        Some("EndpointSlice") => continue,
                        Some(other) => {
                            return Err(doc_err(format!("items[{i}] is a {other}, not a Service")));
                        }
                    }
                    let svc =
                        service_from(item).map_err(|m| doc_err(format!("items[{i}]: {m}")))?;
                    services.push(svc);
                }
            }
            Some(other) => {
                return Err(doc_err(format!(
                    "kind {other:?} is not a Service, a Namespace or a List"
                )));
            }
            None => return Err(doc_err("kind is missing".into())),
        }
    }
    Ok((services, namespaces))
}

fn add_namespace(namespaces: &mut Namespaces, metadata: ObjectMeta) {
    if let Some(name) = metadata.name {
        namespaces.insert(
            name,
            metadata.labels.unwrap_or_default().into_iter().collect(),
        );
    }
}

/// Runs the controller's decisions over `services` in order, after the startup rebuild.
pub fn plan(
    config: &Config,
    services: Vec<Service>,
    lb_class: Option<&str>,
) -> Result<Plan, PlanError> {
    plan_with_namespaces(config, &Namespaces::new(), services, lb_class)
}

/// [`plan`] with the labels of the cluster's Namespaces, for `namespaceSelectors`.
pub fn plan_with_namespaces(
    config: &Config,
    namespaces: &Namespaces,
    services: Vec<Service>,
    lb_class: Option<&str>,
) -> Result<Plan, PlanError> {
    let networks = ClusterNetworks::default();
    plan_with_networks(config, namespaces, &networks, services, lb_class)
}

/// [`plan_with_namespaces`] with the cluster's own networks: the nodes' addresses are never
/// handed out, and pools overlapping any of them get Warnings, as in the live controller.
pub fn plan_with_networks(
    config: &Config,
    namespaces: &Namespaces,
    networks: &ClusterNetworks,
    services: Vec<Service>,
    lb_class: Option<&str>,
) -> Result<Plan, PlanError> {
    // What the core reads: each Service as the live controller holds it.
    let views: Vec<CachedService> = services.iter().cloned().map(CachedService::from).collect();
    let mut seen = BTreeSet::new();
    for view in &views {
        let key = view.key();
        if !seen.insert(key.clone()) {
            return Err(PlanError::Duplicate { key });
        }
    }
    let mut core = Core::new(lb_class.map(str::to_owned));
    core.set_namespaces(namespaces.clone());
    core.set_node_addresses(networks.node_addresses());
    core.set_config(config)?;
    // With a config loaded the rebuild cannot wait; its issues resurface as ClearAssignment
    // events on the Services concerned.
    let _ = core.rebuild(views.iter());
    let mut events = Vec::new();
    let mut out = Vec::with_capacity(services.len());
    for (mut svc, view) in services.into_iter().zip(&views) {
        let decision = core.reconcile(view);
        // The Warnings the controller records on a pool about a Service not ours are listed
        // with that Service (their message names the pool).
        let pool_events = decision.pool_events.into_iter().map(|p| p.event);
        events.extend(
            decision
                .events
                .into_iter()
                .chain(pool_events)
                .map(|e| PlanEvent {
                    key: decision.key.clone(),
                    event_type: e.event_type(),
                    reason: e.reason,
                    message: e.message,
                }),
        );
        if let Outcome::Apply(desired) = decision.outcome {
            desired.apply_to(&mut svc);
        }
        out.push(svc);
    }
    Ok(Plan {
        services: out,
        events,
        pool_warnings: overlap_warnings(config, networks),
    })
}

/// Columns padded like kubectl's tabwriter: each as wide as its widest cell plus three spaces.
pub fn render_columns(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == columns {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}", width = widths[c] + 3);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn service_type(svc: &Service) -> &str {
    svc.spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("ClusterIP")
}

/// EXTERNAL-IP as kubectl shows it: a LoadBalancer's ingress addresses or `<pending>`, else the
/// `spec.externalIPs` or `<none>`.
fn external_ip(svc: &Service) -> String {
    if service_type(svc) == "LoadBalancer" {
        let ips = status_ips(svc);
        if ips.is_empty() {
            return "<pending>".into();
        }
        let ips: Vec<String> = ips.iter().map(ToString::to_string).collect();
        return ips.join(",");
    }
    match svc.spec.as_ref().and_then(|s| s.external_ips.as_ref()) {
        Some(ips) if !ips.is_empty() => ips.join(","),
        _ => "<none>".into(),
    }
}

/// PORT(S) as kubectl shows it: `80:31234/TCP` with a node port, `80/TCP` without.
fn ports(svc: &Service) -> String {
    let parts: Vec<String> = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .map(|p| {
            let protocol = p.protocol.as_deref().unwrap_or("TCP");
            match p.node_port {
                Some(node_port) => format!("{}:{node_port}/{protocol}", p.port),
                None => format!("{}/{protocol}", p.port),
            }
        })
        .collect();
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

impl Plan {
    /// The `kubectl get svc`-style table followed by the events.
    pub fn table(&self) -> String {
        self.table_with(None)
    }

    /// [`Self::table`] with an `ANNOUNCED-BY` column: each Service's cell by its
    /// `namespace/name` (`plan --nodes`; empty for a Service without one).
    pub fn table_with(&self, announced: Option<&BTreeMap<String, String>>) -> String {
        let mut header = vec!["NAMESPACE", "NAME", "TYPE", "EXTERNAL-IP", "POOL"];
        if announced.is_some() {
            header.push("ANNOUNCED-BY");
        }
        header.push("PORT(S)");
        let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
        for svc in &self.services {
            let namespace = svc
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            let name = svc.metadata.name.clone().unwrap_or_default();
            let key = format!("{namespace}/{name}");
            let mut row = vec![
                namespace,
                name,
                service_type(svc).to_owned(),
                external_ip(svc),
                allocated_pool(svc).unwrap_or("<none>").to_owned(),
            ];
            if let Some(by) = announced {
                row.push(by.get(&key).cloned().unwrap_or_default());
            }
            row.push(ports(svc));
            rows.push(row);
        }
        let mut out = render_columns(&rows);
        out.push('\n');
        if !self.pool_warnings.is_empty() {
            out.push_str("POOL WARNINGS\n");
            let mut rows = vec![["POOL", "REASON", "MESSAGE"].map(String::from).to_vec()];
            for w in &self.pool_warnings {
                rows.push(vec![
                    w.pool.clone(),
                    w.event.reason.to_string(),
                    w.event.message.clone(),
                ]);
            }
            out.push_str(&render_columns(&rows));
            out.push('\n');
        }
        if self.events.is_empty() {
            out.push_str("No events.\n");
            return out;
        }
        out.push_str("EVENTS\n");
        let mut rows = vec![
            ["SERVICE", "TYPE", "REASON", "MESSAGE"]
                .map(String::from)
                .to_vec(),
        ];
        for e in &self.events {
            rows.push(vec![
                e.key.to_string(),
                e.event_type.to_string(),
                e.reason.to_string(),
                e.message.clone(),
            ]);
        }
        out.push_str(&render_columns(&rows));
        out
    }

    /// The Services with status and pool annotation filled in, as a `List` like
    /// `kubectl get svc -o yaml` prints.
    pub fn to_yaml(&self) -> Result<String, PlanError> {
        #[derive(Serialize)]
        struct List<'a> {
            #[serde(rename = "apiVersion")]
            api_version: &'static str,
            kind: &'static str,
            items: &'a [Service],
        }
        serde_saphyr::to_string(&List {
            api_version: "v1",
            kind: "List",
            items: &self.services,
        })
        .map_err(|e| PlanError::Output(e.to_string()))
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
