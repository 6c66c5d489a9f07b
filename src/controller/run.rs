//! `ferrolb controller`: wires the watches, the kube-runtime `Controller`, leader election, the
//! metrics/health server and shutdown around [`super::live`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::events::Reporter;
use kube::runtime::{Controller, WatchStreamExt, controller, reflector, watcher};
use kube::{Client, Config as KubeConfig};
use kube_lease_manager::{LeaseManagerBuilder, LeaseParams};
use tokio::sync::watch;

use super::cached::CachedService;
use super::cli::ControllerArgs;
use super::live::{ConfigOutcome, Context, FIELD_MANAGER, error_policy, reconcile};
use super::metrics::ControllerMetrics;
use crate::telemetry::{self, Health, Registry};

/// How many Services are reconciled at once. kube-runtime's default is unbounded: on gaining the
/// lease with 10k Services cached, 10k reconcile futures (each holding its pending API calls)
/// would exist at the same time, and the heap they grew stays with the process. 32 in flight
/// keeps a burst of new Services well under a second each while bounding that peak.
pub const RECONCILE_CONCURRENCY: u16 = 32;

/// Name of the leader-election Lease in the controller's namespace.
pub const LEASE_NAME: &str = "ferrolb-controller";

/// Why the controller could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot read kubeconfig {path}")]
    Kubeconfig {
        path: String,
        source: kube::config::KubeconfigError,
    },
    #[error("cannot configure the Kubernetes client")]
    ClientConfig(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot create the Kubernetes client")]
    Client(#[source] kube::Error),
    #[error("cannot register metrics")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
    #[error("leader election on Lease {namespace}/{LEASE_NAME} failed")]
    Lease {
        namespace: String,
        source: kube_lease_manager::LeaseManagerError,
    },
    #[error("cannot listen for signals")]
    Signals(#[source] std::io::Error),
}

/// Settings of a running controller (the flags, resolved).
#[derive(Debug, Clone)]
pub struct Options {
    pub namespace: String,
    pub config_name: String,
    pub lb_class: Option<String>,
    pub leader_elect: bool,
    pub lease_duration: u64,
    /// Unique among replicas: names the lease holder and the events' reporting instance.
    pub identity: String,
}

/// A Kubernetes client from `--kubeconfig`, else KUBECONFIG / ~/.kube/config, else in-cluster.
pub async fn client(kubeconfig: Option<&std::path::Path>) -> Result<Client, RunError> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|source| RunError::Kubeconfig {
                path: path.display().to_string(),
                source,
            })?;
            KubeConfig::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| RunError::ClientConfig(Box::new(e)))?
        }
        None => KubeConfig::infer()
            .await
            .map_err(|e| RunError::ClientConfig(Box::new(e)))?,
    };
    Client::try_from(config).map_err(RunError::Client)
}

/// This replica's identity: the pod name (or host name) plus a random suffix, so two processes
/// on one host, or a restarted pod, never pass for each other.
pub fn identity() -> String {
    let base = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "ferrolb-controller".into());
    format!("{base}-{:08x}", rand::random::<u32>())
}

/// Resolves when SIGTERM or SIGINT arrives.
pub fn termination() -> Result<impl Future<Output = ()> + Send + 'static, RunError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    })
}

/// `ferrolb controller`: everything from the flags (tracing must already be set up).
pub async fn main(args: ControllerArgs) -> Result<(), RunError> {
    let client = client(args.kubeconfig.as_deref()).await?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let options = Options {
        namespace,
        config_name: args.config_name.clone(),
        lb_class: args.lb_class.clone(),
        leader_elect: args.leader_elect,
        lease_duration: args.lease_duration,
        identity: identity(),
    };
    let registry = Registry::new();
    let health = Health::new();
    let server = telemetry::serve(args.metrics_addr, registry.clone(), health.clone()).await?;
    let result = run(client, options, &registry, health, termination()?).await;
    if let Err(e) = server.shutdown().await {
        tracing::warn!(error = %telemetry::error_chain(&e), "metrics server stopped with an error");
    }
    result
}

/// Runs the controller until `shutdown` resolves, then stops writing, lets in-flight reconciles
/// finish and releases the lease so a standby takes over at once.
pub async fn run(
    client: Client,
    options: Options,
    registry: &Registry,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    tracing::info!(namespace = %options.namespace, config = %options.config_name,
        lb_class = ?options.lb_class, identity = %options.identity, "starting controller");
    let metrics = ControllerMetrics::register(registry)?;
    let (reader, writer) = reflector::store::<CachedService>();
    let (trigger_all, all_requests) = futures::channel::mpsc::unbounded::<()>();
    let reporter = Reporter {
        controller: FIELD_MANAGER.to_owned(),
        instance: Some(options.identity.clone()),
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        reporter,
        options.lb_class.clone(),
        reader.clone(),
        metrics,
        trigger_all,
    ));

    let (stop_tx, stop_rx) = watch::channel(false);
    let (controller_stop_tx, controller_stop_rx) = futures::channel::oneshot::channel::<()>();
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
        let _ = controller_stop_tx.send(());
    });

    // Services in all namespaces: the store feeds the core, deletes free addresses.
    let tap = ctx.clone();
    // Set on the first complete list.
    let readiness = Arc::new(Readiness::new(health.clone()));
    let synced = readiness.clone();
    // Decoded straight into the compact cached form: the cache is most of the controller's memory.
    let watch = watcher(
        Api::<CachedService>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff();
    let services = reflector(writer, watch)
        .inspect_ok(move |event| match event {
            watcher::Event::Delete(svc) => tap.service_deleted(svc),
            watcher::Event::InitDone => {
                tap.sweep_deleted();
                synced.mark(Readiness::SERVICES);
            }
            _ => {}
        })
        .touched_objects();
    let controller = Controller::for_stream(services, reader.clone())
        .with_config(controller::Config::default().concurrency(RECONCILE_CONCURRENCY))
        .reconcile_all_on(all_requests)
        .graceful_shutdown_on(controller_stop_rx.map(|_| ()))
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %telemetry::error_chain(&e), "controller step");
            }
            futures::future::ready(())
        });
    let controller = tokio::spawn(controller);

    let config_task = tokio::spawn(watch_config(
        client.clone(),
        options.clone(),
        ctx.clone(),
        readiness.clone(),
        stop_rx.clone(),
    ));

    // Readiness (Service cache synced, config state known, lease state known) is set by
    // whichever of the three arrives last; see `Readiness::mark`.

    let lease = match lead_until_stop(client, &options, ctx.clone(), readiness, stop_rx).await {
        Ok(lease) => lease,
        Err(e) => {
            health.set_ready(false);
            return Err(e);
        }
    };
    // Stop in order: no new writes (done above), in-flight reconciles finish, and only then the
    // Lease is released, so the next leader never overlaps with a write of ours.
    health.set_ready(false);
    let _ = controller.await;
    let _ = config_task.await;
    match lease {
        Some(lease) => lease.release().await,
        None => Ok(()),
    }
}

/// A held Lease watch: dropping the channel makes the lease task release the Lease.
struct LeaseWatch {
    namespace: String,
    channel: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
}

impl LeaseWatch {
    async fn release(self) -> Result<(), RunError> {
        drop(self.channel);
        match self.task.await {
            Ok(Ok(_)) => {
                tracing::info!("lease released");
                Ok(())
            }
            Ok(Err(source)) => Err(RunError::Lease {
                namespace: self.namespace,
                source,
            }),
            Err(join) => {
                tracing::error!(error = %join, "lease task failed");
                Ok(())
            }
        }
    }
}

/// `/readyz` turns ready once the Service cache is synced, the config state is known and the
/// lease state is known, whichever comes last. (Not `Store::wait_until_ready`: kube-runtime
/// wakes only one of several waiters there, and the Controller already waits on it.)
pub struct Readiness {
    health: Health,
    seen: [AtomicBool; 3],
}

impl Readiness {
    pub const SERVICES: usize = 0;
    pub const CONFIG: usize = 1;
    pub const LEASE: usize = 2;

    pub fn new(health: Health) -> Self {
        Self {
            health,
            seen: Default::default(),
        }
    }

    pub fn mark(&self, which: usize) {
        if let Some(flag) = self.seen.get(which) {
            flag.store(true, Ordering::Release);
        }
        if self.seen.iter().all(|f| f.load(Ordering::Acquire)) && !self.health.is_ready() {
            tracing::info!("caches synced and lease state known: ready");
            self.health.set_ready(true);
        }
    }
}

/// Leader election: sets the context's leading flag from the Lease until shutdown, then stops
/// this replica's writes and hands back the Lease watch for release. Without
/// `--leader-elect` this replica leads from the start.
async fn lead_until_stop(
    client: Client,
    options: &Options,
    ctx: Arc<Context>,
    readiness: Arc<Readiness>,
    mut stop: watch::Receiver<bool>,
) -> Result<Option<LeaseWatch>, RunError> {
    if !options.leader_elect {
        readiness.mark(Readiness::LEASE);
        ctx.set_leading(true);
        let _ = stop.wait_for(|s| *s).await;
        ctx.set_leading(false);
        return Ok(None);
    }
    let duration = options.lease_duration.max(2);
    let grace = (duration / 3).max(1);
    let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
        .with_namespace(options.namespace.clone())
        .with_parameters(LeaseParams::new(options.identity.clone(), duration, grace))
        .build()
        .await
        .map_err(|source| RunError::Lease {
            namespace: options.namespace.clone(),
            source,
        })?;
    readiness.mark(Readiness::LEASE);
    let (mut channel, task) = manager.watch().await;
    loop {
        tokio::select! {
            changed = channel.changed() => {
                if changed.is_err() {
                    tracing::error!("lease task ended; this replica stops writing");
                    break;
                }
                let now = *channel.borrow_and_update();
                ctx.set_leading(now);
            }
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    ctx.set_leading(false);
    let _ = stop.wait_for(|s| *s).await;
    Ok(Some(LeaseWatch {
        namespace: options.namespace.clone(),
        channel,
        task,
    }))
}

/// Watches the config ConfigMap and loads every version of it into the context.
async fn watch_config(
    client: Client,
    options: Options,
    ctx: Arc<Context>,
    readiness: Arc<Readiness>,
    mut stop: watch::Receiver<bool>,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, &options.namespace);
    let config =
        watcher::Config::default().fields(&format!("metadata.name={}", options.config_name));
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut seen_in_list = false;
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Some(event) = event else { return };
        match event {
            Ok(watcher::Event::Init) => seen_in_list = false,
            Ok(watcher::Event::InitApply(cm)) => {
                seen_in_list = true;
                load(&ctx, &cm).await;
            }
            Ok(watcher::Event::Apply(cm)) => load(&ctx, &cm).await,
            Ok(watcher::Event::InitDone) => {
                if !seen_in_list {
                    tracing::warn!(namespace = %options.namespace, name = %options.config_name,
                        "config ConfigMap not found; no addresses are allocated until it exists");
                    ctx.load_config(None);
                }
                readiness.mark(Readiness::CONFIG);
            }
            Ok(watcher::Event::Delete(_)) => {
                ctx.load_config(None);
            }
            Err(e) => {
                tracing::warn!(error = %telemetry::error_chain(&e), "config watch error; retrying")
            }
        }
    }
}

async fn load(ctx: &Context, cm: &ConfigMap) {
    if let ConfigOutcome::Invalid(message) = ctx.load_config(Some(cm)) {
        ctx.report_invalid_config(cm, &message).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_differ_between_processes_on_one_host() {
        let (a, b) = (identity(), identity());
        assert_ne!(a, b);
        assert_eq!(a.rsplit('-').next().map(str::len), Some(8));
    }
}
