//! `--config-source crds`: watches MetalLB's objects in the release namespace (and Namespaces,
//! once a pool selects them by label) and loads the config they make into the context.
//!
//! The objects are validated together, as MetalLB does: a set that breaks a rule (two pools
//! overlapping, say) keeps the last good config in force, marks the config stale and records a
//! Warning event on each object an error names, with the field. A field ferrolb does not know
//! refuses nothing: it is ignored, and a Warning `UnknownField` on the object names it, once per
//! version of the object (see [`RecordedWarnings`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::{BoxStream, SelectAll};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ObjectReference};
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher;
use tokio::sync::watch;

use super::live::{ConfigOutcome, Context};
use crate::config::{ConfigError, ConfigWarning, Namespaces, Subject, WarningKind};
use crate::k8s::backoff::{WatchTrouble, with_backoff};
use crate::k8s::metallb::{KINDS, Kind, Objects};
use crate::k8s::source_hint::tell_if_not_served;

enum Change {
    Object(Kind, Result<watcher::Event<DynamicObject>, watcher::Error>),
    Namespace(Result<watcher::Event<Namespace>, watcher::Error>),
    Extras(Result<watcher::Event<ConfigMap>, watcher::Error>),
}

/// MetalLB's FRR modes append this ConfigMap's raw FRR configuration (key `extras`) to the
/// router's; ferrolb has no FRR, so it is reported, never silently ignored.
pub const BGP_EXTRAS: &str = "bgpextras";

fn extras_stream(client: &Client, namespace: &str) -> BoxStream<'static, Change> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={BGP_EXTRAS}"));
    with_backoff(watcher(api, config))
        .map(Change::Extras)
        .boxed()
}

/// The warning a `bgpextras` ConfigMap gets: what it would have done, and what to do instead.
pub fn extras_warning(cm: &ConfigMap) -> ConfigWarning {
    let keys: Vec<&str> = cm
        .data
        .iter()
        .flat_map(|d| d.keys().map(String::as_str))
        .collect();
    ConfigWarning::about(
        &Subject::Object {
            kind: "ConfigMap".into(),
            name: BGP_EXTRAS.into(),
        },
        "data",
        format!(
            "raw FRR configuration (keys: {}) is not applied: ferrolb's BGP speaker is native, \
             not FRR. Express it with BGPPeer, BGPAdvertisement, Community and BFDProfile \
             fields, or on the router; until then the sessions run without it",
            if keys.is_empty() {
                "none".to_owned()
            } else {
                keys.join(", ")
            }
        ),
        WarningKind::NotImplemented,
    )
}

fn kind_stream(client: &Client, namespace: &str, kind: Kind) -> BoxStream<'static, Change> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &kind.api_resource());
    with_backoff(watcher(api, watcher::Config::default()))
        .map(move |e| Change::Object(kind, e))
        .boxed()
}

fn namespace_stream(client: &Client) -> BoxStream<'static, Change> {
    with_backoff(watcher(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    ))
    .map(Change::Namespace)
    .boxed()
}

/// Namespace labels as the watch shows them.
#[derive(Default)]
struct NamespaceView {
    started: bool,
    listed: bool,
    labels: Namespaces,
    relisting: Namespaces,
}

impl NamespaceView {
    /// Returns whether the labels in force may have changed.
    fn apply(&mut self, event: watcher::Event<Namespace>) -> bool {
        let entry = |ns: &Namespace| {
            (
                ns.metadata.name.clone().unwrap_or_default(),
                ns.metadata.labels.clone().unwrap_or_default(),
            )
        };
        match event {
            watcher::Event::Init => {
                self.relisting.clear();
                false
            }
            watcher::Event::InitApply(ns) => {
                let (k, v) = entry(&ns);
                self.relisting.insert(k, v);
                false
            }
            watcher::Event::InitDone => {
                self.labels = std::mem::take(&mut self.relisting);
                self.listed = true;
                true
            }
            watcher::Event::Apply(ns) => {
                let (k, v) = entry(&ns);
                self.labels.insert(k, v) != Some(entry(&ns).1)
            }
            watcher::Event::Delete(ns) => {
                self.labels.remove(&entry(&ns).0);
                true
            }
        }
    }
}

/// Watches the objects until `stop`, loading every complete, changed set into `ctx`; `ready`
/// is called after each load (the first one makes the config state known).
pub async fn watch_crds(
    client: Client,
    namespace: String,
    ctx: Arc<Context>,
    ready: impl Fn() + Send + 'static,
    mut stop: watch::Receiver<bool>,
) {
    let mut streams: SelectAll<BoxStream<'static, Change>> = SelectAll::new();
    for kind in KINDS {
        streams.push(kind_stream(&client, &namespace, kind));
    }
    let mut objects = Objects::default();
    let mut namespaces = NamespaceView::default();
    let mut reported_missing = BTreeSet::new();
    let mut relisting = BTreeSet::new();
    let mut recorded = RecordedWarnings::default();
    streams.push(extras_stream(&client, &namespace));
    let (mut extras, mut extras_relist): (Option<ConfigMap>, Option<ConfigMap>) = (None, None);
    loop {
        let change = tokio::select! {
            c = streams.next() => c,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Some(change) = change else { return };
        match change {
            Change::Object(kind, Ok(event)) => match event {
                watcher::Event::Init => {
                    relisting.insert(kind);
                    objects.relist(kind);
                    continue;
                }
                watcher::Event::InitApply(o) => {
                    objects.apply(kind, &o);
                    continue;
                }
                watcher::Event::InitDone => {
                    relisting.remove(&kind);
                    objects.listed(kind);
                }
                watcher::Event::Apply(o) => objects.apply(kind, &o),
                watcher::Event::Delete(o) => objects.delete(kind, &o),
            },
            Change::Object(kind, Err(e)) => {
                let trouble = crate::k8s::backoff::watch_trouble(&e);
                let e = crate::telemetry::error_chain(&e);
                if trouble == WatchTrouble::Expired {
                    tracing::debug!(kind = kind.kind, error = %e, "watch expired; listing again");
                    continue;
                }
                if objects.unreadable(kind) {
                    tracing::warn!(kind = kind.kind, error = %e,
                        "cannot read this BGP kind (CRD absent, or its conversion webhook gone \
                         with MetalLB); it counts as empty (no such BGP object is in force), layer 2 goes on");
                } else if trouble == WatchTrouble::NotServed && kind.required {
                    if reported_missing.is_empty() {
                        // Said once, with what to do (a ConfigMap to read or convert).
                        let client = client.clone();
                        let namespace = namespace.clone();
                        tokio::spawn(async move {
                            let configmaps =
                                Api::<ConfigMap>::namespaced(client.clone(), &namespace);
                            tell_if_not_served(&client, configmaps, "controller", &namespace).await
                        });
                    }
                    reported_missing.insert(kind);
                    tracing::debug!(kind = kind.kind, error = %e,
                        "this kind is not served; retrying");
                    continue;
                } else if kind.required {
                    tracing::warn!(kind = kind.kind, error = %e, "watch failed; retrying");
                    continue;
                } else {
                    continue;
                }
            }
            Change::Namespace(Ok(event)) => {
                if !namespaces.apply(event) || !namespaces.listed {
                    continue;
                }
                ctx.set_namespaces(namespaces.labels.clone());
            }
            Change::Extras(Ok(event)) => match event {
                watcher::Event::Init => {
                    extras_relist = None;
                    continue;
                }
                watcher::Event::InitApply(cm) => {
                    extras_relist = Some(cm);
                    continue;
                }
                watcher::Event::InitDone => extras = extras_relist.take(),
                watcher::Event::Apply(cm) => extras = Some(cm),
                watcher::Event::Delete(_) => extras = None,
            },
            Change::Extras(Err(e)) => {
                if crate::k8s::backoff::watch_trouble(&e) != WatchTrouble::Expired {
                    tracing::debug!(error = %crate::telemetry::error_chain(&e),
                        "bgpextras ConfigMap watch failed; retrying");
                }
                continue;
            }
            Change::Namespace(Err(e)) => {
                if crate::k8s::backoff::watch_trouble(&e) != WatchTrouble::Expired {
                    tracing::warn!(error = %crate::telemetry::error_chain(&e),
                        "Namespace watch failed; retrying");
                }
                continue;
            }
        }
        if !relisting.is_empty() || !objects.is_complete(&KINDS) {
            continue;
        }
        if objects.uses_namespace_selectors() {
            if !namespaces.started {
                namespaces.started = true;
                streams.push(namespace_stream(&client));
            }
            if !namespaces.listed {
                continue;
            }
        }
        load(&ctx, &objects, extras.as_ref(), &namespace, &mut recorded).await;
        ready();
    }
}

/// The unknown-field warnings already recorded as events, each with the version of its object
/// (`metadata.generation`, which the controller's own status writes leave unchanged): a reload
/// of an unchanged object records nothing again, a new version of it records its warnings anew.
#[derive(Debug, Default)]
pub(super) struct RecordedWarnings(BTreeSet<WarningKey>);

/// An object's reference and version (`metadata.generation`), by kind and name.
type Resolve<'a> = dyn Fn(&str, &str) -> Option<(ObjectReference, Option<i64>)> + Sync + 'a;

/// (kind, name, uid, generation, field, message).
type WarningKey = (String, String, Option<String>, Option<i64>, String, String);

pub(super) async fn load(
    ctx: &Context,
    objects: &Objects,
    extras: Option<&ConfigMap>,
    namespace: &str,
    recorded: &mut RecordedWarnings,
) {
    let built = objects.build(namespace, &Namespaces::new()).map(|mut f| {
        f.config.warnings.extend(extras.map(extras_warning));
        f
    });
    let errors = match &built {
        Err(ConfigError::Invalid(errors)) => errors.clone(),
        _ => Vec::new(),
    };
    let warnings = built
        .as_ref()
        .map(|f| f.config.warnings.clone())
        .unwrap_or_default();
    // The pools' Warnings go on their objects, once their config is in force.
    let pools = built.as_ref().ok().map(|f| {
        f.config
            .address_pools
            .iter()
            .filter_map(|p| Some((p.name.clone(), objects.reference("IPAddressPool", &p.name)?)))
            .collect()
    });
    let outcome = ctx.load_parsed(built.map(|f| f.config).map_err(|e| e.to_string()));
    if let Some(pools) = pools
        && matches!(outcome, ConfigOutcome::Loaded | ConfigOutcome::Unchanged)
    {
        ctx.set_config_objects(pools, None);
    }
    if outcome == ConfigOutcome::Loaded {
        // Reported once per config that carries them (BGP fields ferrolb does not implement,
        // such as BFD, VRF, localASN; fields ferrolb does not know, ignored).
        for w in &warnings {
            tracing::warn!(object = %w.object, field = %w.field, "{}", w.message);
        }
    }
    if matches!(outcome, ConfigOutcome::Loaded | ConfigOutcome::Unchanged) {
        let reference = |kind: &str, name: &str| match (kind, extras) {
            ("ConfigMap", Some(cm)) if name == BGP_EXTRAS => {
                Some((kube::Resource::object_ref(cm, &()), None))
            }
            _ => Some((
                objects.reference(kind, name)?,
                objects.generation(kind, name),
            )),
        };
        record_unknown_fields(ctx, &reference, &warnings, recorded).await;
    }
    if !matches!(outcome, ConfigOutcome::Invalid(_)) {
        return;
    }
    for e in errors {
        let Subject::Object { kind, name } = &e.subject else {
            continue;
        };
        if let Some(reference) = objects.reference(kind, name) {
            let message = format!("{}: {}", e.field, e.message);
            ctx.report_invalid_object(&reference, &message).await;
        }
    }
}

/// Records each unknown-field or not-implemented warning of the config in force as a Warning
/// on its object (`reference`: the object and its version), unless already recorded for this
/// version of the object (leader only: a replica that does not lead records them once it leads
/// and loads again).
async fn record_unknown_fields(
    ctx: &Context,
    reference: &Resolve<'_>,
    warnings: &[ConfigWarning],
    recorded: &mut RecordedWarnings,
) {
    let mut current = BTreeSet::new();
    for w in warnings.iter().filter(|w| w.kind != WarningKind::Other) {
        let Some(Subject::Object { kind, name }) = &w.subject else {
            continue;
        };
        let Some((reference, generation)) = reference(kind, name) else {
            continue;
        };
        let key: WarningKey = (
            kind.clone(),
            name.clone(),
            reference.uid.clone(),
            generation,
            w.field.clone(),
            w.message.clone(),
        );
        if !recorded.0.contains(&key) {
            let message = format!("field {}: {}", w.field, w.message);
            if !ctx.report_warning_field(&reference, w.kind, &message).await {
                continue;
            }
        }
        current.insert(key);
    }
    // Warnings gone (the field removed, the object deleted) are forgotten.
    recorded.0 = current;
}
