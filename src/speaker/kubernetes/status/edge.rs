//! Writes this speaker's per-Service status objects of one kind ([`super::StatusKind`]:
//! `ServiceL2Status`, `ServiceBGPStatus`) on a task of its own, and, when its inputs carry a
//! config result, its ConfigurationState `speaker-<node>`: the announcer never waits for the API
//! server. One writer runs per kind. Each pass diffs what the speaker wants against the objects
//! a reflector shows ([`super::diff`]); a
//! failed call is logged and tried again on the next pass. A pass that failed is tried again
//! after [`RETRY_INITIAL`], doubling while passes keep failing up to [`RETRY_MAX`] (or sooner
//! when the inputs change); a pass stops at the first call the server did not take at all
//! (unavailable, overloaded, unreachable), so an outage costs one request per attempt, and
//! what was written stays as it is. A change of the speaker's inputs is written
//! [`WRITE_SETTLE`] after it (later changes in that time join the same pass). An object
//! deleted behind the writer's back is made again: the watch's delete or a list without it
//! ([`WatchNews`]), or a status write answered 404, tells the writer it is gone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use super::{Action, DesiredOf, Observed, StatusKind};
use crate::config::crd::GROUP;
use crate::k8s::backoff::Exponential;
use crate::k8s::config_state;
use crate::speaker::kubernetes::WRITE_SETTLE;
use crate::speaker::kubernetes::cache::StatusView;
use crate::speaker::kubernetes::store::{self, Decoded, Store, View};
use crate::telemetry::error_chain;

/// A pass that failed is tried again after this long even if nothing changes; the delay doubles
/// while passes keep failing ([`crate::k8s::backoff::Exponential`]), up to [`RETRY_MAX`].
pub const RETRY_INITIAL: Duration = Duration::from_secs(1);
/// The longest wait between two attempts of a failing pass.
pub const RETRY_MAX: Duration = Duration::from_secs(30);

const FIELD_MANAGER: &str = "ferrolb-speaker";

/// What the speaker's loop hands the writer of kind `K` after each pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs<K: StatusKind> {
    /// The Services this node has an object of kind `K` for, with the names each lists.
    /// Shared: the writer's copy of the inputs is the channel's, not a third one.
    pub desired: Arc<DesiredOf<K>>,
    /// Nodes alive in this speaker's view.
    pub alive: BTreeSet<String>,
    /// The last config load: `Some(None)` valid, `Some(Some(errors))` refused; written to the
    /// ConfigurationState `speaker-<node>`. `None`: nothing to write (one writer carries it).
    pub config: Option<Option<String>>,
}

fn resource<K: StatusKind>() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1beta1", K::KIND), K::PLURAL)
}

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

/// The writer of one speaker.
pub struct StatusWriter {
    pub client: Client,
    pub namespace: String,
    pub me: String,
    /// `--pod-name`: the owner of the objects (garbage-collected with the pod).
    pub pod_name: Option<String>,
}

/// What the watch of this node's objects tells the writer besides what its cache holds: which
/// objects it saw deleted, and which of its lists are complete. An object the writer created
/// and the watch never showed (deleted before that, by a user or another actor) is otherwise
/// indistinguishable from one the watch has not shown yet.
#[derive(Debug, Default)]
pub struct WatchNews {
    /// Objects whose delete the watch showed since the writer last heard.
    deleted: Vec<Arc<str>>,
    /// Lists begun (an `Init`, sent before the list request), and the number of the last one
    /// completed: an object created before a list began and absent from it is gone.
    lists_begun: u64,
    listed: u64,
}

impl WatchNews {
    /// Notes what a watch event says about objects that are gone.
    pub fn note<V: View>(&mut self, event: &watcher::Event<Decoded<V>>) {
        match event {
            watcher::Event::Delete(d) => self.deleted.push(d.view.key().clone()),
            watcher::Event::Init => self.lists_begun += 1,
            watcher::Event::InitDone => self.listed = self.lists_begun,
            watcher::Event::Apply(_) | watcher::Event::InitApply(_) => {}
        }
    }
}

type News = Arc<Mutex<WatchNews>>;

fn lock(news: &News) -> std::sync::MutexGuard<'_, WatchNews> {
    news.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Watches this node's objects of kind `K` in the namespace (projected: [`StatusView`]), poking
/// `notify` on each change and noting deletes in `news`. Only this node's: every node's would be
/// one object per announced Service of the cluster in every speaker. The objects of nodes that
/// are not alive, which this speaker may have to delete, are listed when the live set changes
/// ([`list_others_statuses`]).
fn watch_statuses<K: StatusKind>(
    client: &Client,
    namespace: &str,
    me: &str,
    notify: &Arc<Notify>,
    news: &News,
) -> Store<StatusView<K>> {
    let api = Api::<Decoded<StatusView<K>>>::namespaced(client.clone(), namespace);
    let notify = notify.clone();
    let news = news.clone();
    crate::k8s::reflect::reflect(
        api,
        watcher::Config::default().labels(&format!(
            "{}={}",
            super::NODE_LABEL,
            super::node_label(me)
        )),
        K::KIND,
        store::Writer::default(),
        move |writer, event| {
            lock(&news).note(event);
            writer.apply(event);
            notify.notify_one();
        },
    )
}

impl StatusWriter {
    /// Writes the objects of kind `K` (the kind of `inputs`) until `inputs`' sender is dropped.
    pub fn spawn<K: StatusKind>(
        self,
        mut inputs: watch::Receiver<Inputs<K>>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let notify = Arc::new(Notify::new());
            let mut state = WriterState::default();
            let mut backoff = Exponential::new(RETRY_INITIAL, RETRY_MAX);
            let store = watch_statuses::<K>(
                &self.client,
                &self.namespace,
                &self.me,
                &notify,
                &state.news,
            );
            loop {
                let now = inputs.borrow_and_update().clone();
                // Until the first list, absent objects may just be unseen: diff nothing yet.
                let listed = store.is_ready();
                // Without that list the pass still writes this node's own objects.
                let others = self.others::<K>(&mut state, &now.alive).await;
                let seen = store.state();
                let seen = seen.iter().filter_map(|o| o.observed());
                // Until the watch has listed, the pass waits for it (it pokes `notify`).
                let passed = !listed || self.pass(&mut state, &now, seen).await;
                let ok = self.write_config(&mut state, &now).await && passed && others;
                // After a failure the next attempt waits for the backoff (or new inputs), not
                // for the watch; success starts the backoff over.
                let retry = if ok {
                    backoff.reset();
                    None
                } else {
                    backoff.next()
                };
                tokio::select! {
                    r = inputs.changed() => {
                        if r.is_err() {
                            break;
                        }
                        tokio::time::sleep(WRITE_SETTLE).await;
                    }
                    () = notify.notified(), if ok || !listed => {}
                    () = tokio::time::sleep(retry.unwrap_or_default()), if retry.is_some() => {}
                }
            }
        })
    }

    /// Lists the objects of the nodes not in `alive` when `alive` changed since the last
    /// list; false if the list failed (tried again on the next pass).
    pub async fn others<K: StatusKind>(
        &self,
        state: &mut WriterState,
        alive: &BTreeSet<String>,
    ) -> bool {
        if state.others_of.as_ref() == Some(alive) {
            return true;
        }
        match list_others_statuses::<K>(&self.client, &self.namespace, &self.me, alive).await {
            Ok(others) => {
                state.not_served = false;
                state.others = others;
                state.others_of = Some(alive.clone());
                true
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {
                // The kind is not served (MetalLB's CRDs older than v0.15 lack
                // ServiceBGPStatus): said once, not at every retry.
                if !std::mem::replace(&mut state.not_served, true) {
                    warn!(
                        kind = K::KIND,
                        "this kind is not served (the chart's CRDs are not installed?): none of its objects is written until it is; retrying quietly"
                    );
                }
                false
            }
            Err(e) => {
                warn!(error = %error_chain(&e), "cannot list the {} objects of nodes that are gone; retrying", K::KIND);
                false
            }
        }
    }

    /// One diff and its calls; false if any failed. `seen` is this node's objects; the other
    /// nodes' come from [`Self::others`].
    pub async fn pass<'a, K: StatusKind>(
        &self,
        state: &mut WriterState,
        inputs: &Inputs<K>,
        seen: impl IntoIterator<Item = &'a Observed>,
    ) -> bool {
        let seen: Vec<&Observed> = seen.into_iter().collect();
        let names: BTreeSet<&str> = seen.iter().map(|o| &*o.name).collect();
        // Objects the API answered 404 for count as gone while the store still shows them.
        state.gone.retain(|name| names.contains(name.as_str()));
        let seen = seen.into_iter().filter(|o| !state.gone.contains(&*o.name));
        // Objects created but not yet in the store count as there, or the next pass would
        // create a second one; unless the watch showed their delete, or completed a list
        // begun after their create without them: then they are gone, and made again.
        let listed = {
            let mut news = lock(&state.news);
            for name in std::mem::take(&mut news.deleted) {
                state.created.remove(&*name);
            }
            news.listed
        };
        state
            .created
            .retain(|name, c| !names.contains(name.as_str()) && c.lists_begun >= listed);
        let all = seen
            .chain(state.created.values().map(|c| &c.observed))
            .chain(&state.others);
        let mut ok = true;
        for action in super::diff(&self.me, &*inputs.desired, all, &inputs.alive) {
            if let Err(e) = self.act::<K>(state, &action).await {
                ok = false;
                if unavailable(&e) {
                    // The next call would meet the same: stop here, and back off.
                    warn!(?action, error = %error_chain(&e), "cannot update {}: the API server did not take it; backing off", K::KIND);
                    break;
                }
                warn!(?action, error = %error_chain(&e), "cannot update {}; retrying on the next pass", K::KIND);
            }
        }
        ok
    }

    async fn act<K: StatusKind>(
        &self,
        state: &mut WriterState,
        action: &Action,
    ) -> Result<(), kube::Error> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.namespace, &resource::<K>());
        match action {
            Action::Create { service, names } => {
                self.create::<K>(state, &api, service, names).await?;
            }
            Action::Patch {
                name,
                service,
                names,
            } => {
                let status = super::status::<K>(&self.me, service, names);
                match patch_status_of(&api, name, &status).await {
                    Err(kube::Error::Api(e)) if e.code == 404 => {
                        // Deleted by someone else, and the watch has not shown it yet.
                        info!(%service, object = %name, "{} was deleted; creating it again", K::KIND);
                        state.forget(name);
                        self.create::<K>(state, &api, service, names).await?;
                    }
                    other => other?,
                }
            }
            Action::Delete { name } => {
                state.created.remove(name);
                state.others.retain(|o| *o.name != **name);
                info!(object = %name, "{} deleted", K::KIND);
                delete_status(&api, name).await?;
            }
        }
        Ok(())
    }

    /// Creates this node's object for `service` and writes its status.
    async fn create<K: StatusKind>(
        &self,
        state: &mut WriterState,
        api: &Api<DynamicObject>,
        service: &str,
        names: &[String],
    ) -> Result<(), kube::Error> {
        let owner = self.owner(state).await?;
        let name = create_status::<K>(api, &self.me, service, owner).await?;
        info!(%service, object = %name, "{} created", K::KIND);
        let lists_begun = lock(&state.news).lists_begun;
        let observed = Observed {
            name: name.as_str().into(),
            node: crate::k8s::node::shared_name(&self.me),
            service: service.to_owned(),
            names: None,
        };
        state.created.insert(
            name.clone(),
            Created {
                observed,
                lists_begun,
            },
        );
        let status = super::status::<K>(&self.me, service, names);
        match patch_status_of(api, &name, &status).await {
            Ok(()) => {
                if let Some(c) = state.created.get_mut(&name) {
                    c.observed.names = Some(names.to_vec());
                }
                Ok(())
            }
            Err(e) => {
                if matches!(&e, kube::Error::Api(s) if s.code == 404) {
                    // Deleted before its status was written: the next pass makes it again.
                    state.forget(&name);
                }
                Err(e)
            }
        }
    }

    /// The owner reference to this speaker's pod, read once.
    async fn owner(&self, state: &mut WriterState) -> Result<Option<OwnerReference>, kube::Error> {
        let Some(pod) = &self.pod_name else {
            return Ok(None);
        };
        if state.owner.is_none() {
            let p = own_pod(&self.client, &self.namespace, pod).await?;
            state.owner = p.owner_ref(&());
        }
        Ok(state.owner.clone())
    }

    /// Writes `speaker-<node>` when the config result changed since the last write.
    async fn write_config<K: StatusKind>(
        &self,
        state: &mut WriterState,
        inputs: &Inputs<K>,
    ) -> bool {
        let Some(result) = &inputs.config else {
            return true;
        };
        if state.config_written.as_ref() == Some(result) {
            return true;
        }
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let body = config_state::configuration_state_of(
            config_state::SPEAKER_CONDITION,
            result.as_deref(),
            &now,
        );
        match write_speaker_state(&self.client, &self.namespace, &self.me, &body).await {
            Ok(()) => {
                state.config_written = Some(result.clone());
                true
            }
            Err(e) => {
                warn!(error = %error_chain(&e), "cannot write the speaker's ConfigurationState; retrying");
                false
            }
        }
    }
}

/// Whether the server did not take a call at all (unavailable, overloaded, unreachable), as
/// opposed to refusing this one object.
fn unavailable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500,
        _ => true,
    }
}

/// An object this writer created that its watch may not have shown yet.
#[derive(Debug)]
struct Created {
    observed: Observed,
    /// [`WatchNews::lists_begun`] when it was created.
    lists_begun: u64,
}

/// What the writer remembers between passes.
#[derive(Debug, Default)]
pub struct WriterState {
    created: BTreeMap<String, Created>,
    /// Objects the API answered 404 for, while the store still shows them.
    gone: BTreeSet<String>,
    /// Shared with the watch of this node's objects.
    news: News,
    /// Objects of nodes not alive, as listed when the live set was `others_of`.
    others: Vec<Observed>,
    others_of: Option<BTreeSet<String>>,
    owner: Option<OwnerReference>,
    config_written: Option<Option<String>>,
    /// The kind was answered 404 (not served), and that was said.
    not_served: bool,
}

impl WriterState {
    /// `name` is gone: neither created by this writer nor there, whatever the store shows.
    fn forget(&mut self, name: &str) {
        self.created.remove(name);
        self.gone.insert(name.to_owned());
    }
}

/// The objects of kind `K` of nodes other than `me` and not in `alive`: selected by their labels
/// (a long node name's label is its [`super::node_label`]), then by the exact node name their
/// status holds.
pub async fn list_others_statuses<K: StatusKind>(
    client: &Client,
    namespace: &str,
    me: &str,
    alive: &BTreeSet<String>,
) -> Result<Vec<Observed>, kube::Error> {
    let api = Api::<Decoded<StatusView<K>>>::namespaced(client.clone(), namespace);
    let label = super::NODE_LABEL;
    let excluded: BTreeSet<std::borrow::Cow<'_, str>> = alive
        .iter()
        .map(String::as_str)
        .chain([me])
        .map(super::node_label)
        .collect();
    let excluded: Vec<&str> = excluded.iter().map(|v| &**v).collect();
    let selector = format!("{label},{label} notin ({})", excluded.join(","));
    let list = api.list(&ListParams::default().labels(&selector)).await?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|o| o.view.observed().cloned())
        .filter(|o| *o.node != *me && !alive.contains(&*o.node))
        .collect())
}

/// Creates this node's object of kind `K` for `service`; returns the name the server generated.
pub async fn create_status<K: StatusKind>(
    api: &Api<DynamicObject>,
    me: &str,
    service: &str,
    owner: Option<OwnerReference>,
) -> Result<String, kube::Error> {
    let mut object = DynamicObject::new("", &resource::<K>());
    object.metadata.name = None;
    object.metadata.generate_name = Some(K::GENERATE_NAME.to_owned());
    object.metadata.labels = Some(super::labels(me, service));
    object.metadata.owner_references = owner.map(|o| vec![o]);
    object.data = json!({"spec": {}});
    let post = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    let made = api.create(&post, &object).await?;
    Ok(made.metadata.name.unwrap_or_default())
}

/// Writes the status of one object (`api` names its kind).
pub async fn patch_status_of(
    api: &Api<DynamicObject>,
    name: &str,
    status: &Value,
) -> Result<(), kube::Error> {
    // Called by path: the method-call form marks a Service status patch in the RBAC table test;
    // this is the per-Service status kinds' one, marked by this function's name.
    Api::patch_status(api, name, &params(), &Patch::Merge(status))
        .await
        .map(|_| ())
}

/// Deletes one object (`api` names its kind); already gone counts as done.
pub async fn delete_status(api: &Api<DynamicObject>, name: &str) -> Result<(), kube::Error> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Reads this speaker's own Pod (for the owner reference).
pub async fn own_pod(client: &Client, namespace: &str, name: &str) -> Result<Pod, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    pods.get(name).await
}

/// The name of `me`'s ConfigurationState: `speaker-<node>` as MetalLB names it, shortened
/// ([`super::shortened`]) past the 253 characters an object name may have.
pub fn config_state_name(me: &str) -> String {
    super::shortened(&format!("speaker-{me}"), 253).into_owned()
}

/// Writes the ConfigurationState `speaker-<node>`, creating it the first time.
pub async fn write_speaker_state(
    client: &Client,
    namespace: &str,
    me: &str,
    status: &Value,
) -> Result<(), kube::Error> {
    let labels = [
        ("metallb.io/component-type".to_owned(), "speaker".to_owned()),
        (
            "metallb.io/node-name".to_owned(),
            super::node_label(me).into_owned(),
        ),
    ]
    .into();
    config_state::write_state(
        client,
        namespace,
        &config_state_name(me),
        labels,
        FIELD_MANAGER,
        status,
    )
    .await
}

#[cfg(test)]
#[path = "edge_tests.rs"]
mod tests;
