//! `ferrolb controller`: wires the watches, the kube-runtime `Controller`, leader election, the
//! metrics/health server and shutdown around [`super::live`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::events::Reporter;
use kube::runtime::{Controller, WatchStreamExt, controller, reflector, watcher};
use kube::{Client, Resource};
use tokio::sync::watch;

use super::cached::CachedService;
use super::cli::ControllerArgs;
use super::crd_watch::watch_crds;
use super::elector::LeaseLoop;
use super::lease::{Elector, Timing};
use super::live::{ConfigOutcome, Context, error_policy, reconcile};
use super::metrics::ControllerMetrics;
use super::writes::FIELD_MANAGER;
use crate::k8s::backoff::{WatchBackoff, with_backoff};
use crate::k8s::metallb::ConfigSource;
use crate::k8s::review::KubeReviewer;
use crate::k8s::{ClientError, fenced_client};
use crate::runtime::termination;
use crate::telemetry::{self, Health, Registry};

/// How many Services are reconciled at once. kube-runtime's default is unbounded: on gaining the
/// lease with 10k Services cached, 10k reconcile futures (each holding its pending API calls)
/// would exist at the same time, and the heap they grew stays with the process. 32 in flight
/// keeps a burst of new Services well under a second each while bounding that peak.
pub const RECONCILE_CONCURRENCY: u16 = 32;

/// Why the controller could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot register metrics")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
    #[error("cannot serve /metrics over HTTPS (--metrics-secure)")]
    MetricsTls(#[from] crate::telemetry::tls::TlsError),
    #[error("leader election on Lease {namespace}/{lease} stopped: {reason}")]
    LeaseTaskEnded {
        namespace: String,
        lease: String,
        reason: String,
    },
    #[error("cannot listen for signals")]
    Signals(#[source] std::io::Error),
    #[error(transparent)]
    ServiceRange(#[from] crate::config::overlap::ServiceRangeError),
}

/// Settings of a running controller (the flags, resolved).
#[derive(Debug, Clone)]
pub struct Options {
    pub namespace: String,
    pub config_source: ConfigSource,
    pub config_name: String,
    pub lb_class: Option<String>,
    pub leader_elect: bool,
    pub lease_duration: u64,
    /// Name of the leader-election Lease in `namespace`.
    pub lease_name: String,
    /// Metric names: ferrolb's or MetalLB's.
    pub metric_naming: crate::metrics::Naming,
    /// `--memberlist-secret-name`: the gossip key Secret to create when missing.
    pub memberlist_secret: Option<String>,
    /// Unique among replicas: names the lease holder and the events' reporting instance.
    pub identity: String,
    /// `--service-cluster-ip-range`: stands in for ServiceCIDRs where the API does not serve them.
    pub service_cidrs: Vec<crate::config::overlap::ServiceCidr>,
}

/// This replica's identity: the pod name (or host name) plus a random suffix, so two processes
/// on one host, or a restarted pod, never pass for each other.
pub fn identity() -> String {
    let base = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "ferrolb-controller".into());
    format!("{base}-{:08x}", rand::random::<u32>())
}

/// `ferrolb controller`: everything from the flags (tracing must already be set up).
pub async fn main(args: ControllerArgs) -> Result<(), RunError> {
    // Every write the controller makes is fenced by its lease: no hidden retries.
    let client = fenced_client(args.kubeconfig.as_deref()).await?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let options = Options {
        namespace,
        config_source: args.config_source,
        config_name: args.config_name.clone(),
        lb_class: args.lb_class.clone(),
        leader_elect: args.leader_elect,
        lease_duration: args.lease_duration,
        lease_name: args.lease_name.clone(),
        metric_naming: crate::metrics::Naming::from_flag(args.metallb_metric_names),
        memberlist_secret: args.memberlist_secret_name.clone(),
        identity: identity(),
        service_cidrs: match args.service_cluster_ip_range.as_deref() {
            Some(text) => crate::config::overlap::parse_service_range(text)?,
            None => Vec::new(),
        },
    };
    let registry = Registry::new();
    let health = Health::new();
    let review_client = client.clone();
    let security = args
        .metrics_security
        .security(move || Arc::new(KubeReviewer::new(review_client)))?;
    let server = telemetry::serve_metrics(
        args.metrics_addr,
        registry.clone(),
        telemetry::TextRegistry::default(),
        health.clone(),
        security,
    )
    .await?;
    let result = run(
        client,
        options,
        &registry,
        health,
        termination().map_err(RunError::Signals)?,
    )
    .await;
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
    tracing::info!(namespace = %options.namespace, source = ?options.config_source,
        config = %options.config_name,
        lb_class = ?options.lb_class, identity = %options.identity, "starting controller");
    let metrics = ControllerMetrics::register_named(registry, options.metric_naming)?;
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
    );
    let watch = with_backoff(watch);
    let services = reflector(writer, watch)
        .inspect_ok(move |event| match event {
            watcher::Event::Delete(svc) => tap.service_deleted(svc),
            watcher::Event::Apply(svc) | watcher::Event::InitApply(svc) => tap.service_seen(svc),
            watcher::Event::InitDone => {
                tap.sweep_deleted();
                synced.mark(Readiness::SERVICES);
            }
            _ => {}
        })
        .touched_objects();
    let controller = Controller::for_stream(services, reader.clone())
        .with_config(controller::Config::default().concurrency(RECONCILE_CONCURRENCY))
        // The Controller backs its trigger stream off again, with kube-runtime's default (up to
        // 30 s) unless told otherwise: after an API server outage that alone kept new Services
        // waiting 20 s once the server was back.
        .trigger_backoff(WatchBackoff::new())
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

    // The cluster's own networks: nodes' addresses are never handed out, and pools overlapping
    // them get Warnings; nothing is allocated before the Nodes are listed.
    ctx.await_networks();
    tokio::spawn(super::networks::watch_networks(
        client.clone(),
        ctx.clone(),
        options.service_cidrs.clone(),
        stop_rx.clone(),
    ));
    let overlaps_ctx = ctx.clone();
    let mut overlaps_stop = stop_rx.clone();
    tokio::spawn(async move {
        while woken(overlaps_ctx.overlaps_due(), &mut overlaps_stop).await {
            overlaps_ctx.publish_overlaps().await;
        }
    });

    if let Some(name) = options.memberlist_secret.clone() {
        tokio::spawn(super::gossip_key::keep_key_secret(
            client.clone(),
            options.namespace.clone(),
            name,
            stop_rx.clone(),
        ));
    }

    let config_task = match options.config_source {
        ConfigSource::Configmap => tokio::spawn(watch_config(
            client.clone(),
            options.clone(),
            ctx.clone(),
            readiness.clone(),
            stop_rx.clone(),
        )),
        ConfigSource::Crds => {
            ctx.enable_status(&options.namespace);
            let status_ctx = ctx.clone();
            let mut status_stop = stop_rx.clone();
            tokio::spawn(async move {
                while woken(status_ctx.status_due(), &mut status_stop).await {
                    status_ctx.flush_status().await;
                }
            });
            let ready = readiness.clone();
            tokio::spawn(watch_crds(
                client.clone(),
                options.namespace.clone(),
                ctx.clone(),
                move || ready.mark(Readiness::CONFIG),
                stop_rx.clone(),
            ))
        }
    };

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
    if let Some(mut lease) = lease {
        lease.release().await;
    }
    Ok(())
}

/// Waits for `wake`: `true` when it came, `false` when shutdown came first.
async fn woken(wake: impl Future<Output = ()>, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = wake => true,
        _ = stop.wait_for(|s| *s) => false,
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

/// Leader election: keeps the context's leadership current from the Lease until shutdown, then
/// stops this replica's writes and hands back the election loop for the release. Without
/// `--leader-elect` this replica leads from the start.
async fn lead_until_stop(
    client: Client,
    options: &Options,
    ctx: Arc<Context>,
    readiness: Arc<Readiness>,
    mut stop: watch::Receiver<bool>,
) -> Result<Option<LeaseLoop>, RunError> {
    if !options.leader_elect {
        readiness.mark(Readiness::LEASE);
        ctx.set_leading(true);
        let _ = stop.wait_for(|s| *s).await;
        ctx.set_leading(false);
        return Ok(None);
    }
    let api = Api::<Lease>::namespaced(client, &options.namespace);
    let elector = Elector::new(
        options.identity.clone(),
        Timing::for_lease(options.lease_duration),
    );
    let mut election = LeaseLoop::new(api, &options.lease_name, elector);
    let task = {
        let ctx = ctx.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            election
                .run(&ctx, move || readiness.mark(Readiness::LEASE), stop)
                .await;
            election
        })
    };
    supervise_lease(task, &ctx, &options.namespace, &options.lease_name, stop).await
}

/// Waits for shutdown while watching the election task: if it ends first (a panic, a bug),
/// nothing keeps the leadership deadline current any more, so this replica stops writing,
/// turns not ready and the controller exits with an error (and is restarted) rather than
/// standing by forever with nobody campaigning.
pub async fn supervise_lease<T>(
    mut task: tokio::task::JoinHandle<T>,
    ctx: &Context,
    namespace: &str,
    lease: &str,
    mut stop: watch::Receiver<bool>,
) -> Result<Option<T>, RunError> {
    let ended = tokio::select! {
        ended = &mut task => ended,
        _ = stop.wait_for(|s| *s) => {
            ctx.lead_until(None);
            return Ok(task.await.ok());
        }
    };
    ctx.lead_until(None);
    if *stop.borrow() {
        return Ok(ended.ok());
    }
    let reason = match ended {
        Ok(_) => "it returned".to_owned(),
        Err(e) => e.to_string(),
    };
    tracing::error!(%reason, "the leader-election task ended; this replica stops writing and exits");
    Err(RunError::LeaseTaskEnded {
        namespace: namespace.to_owned(),
        lease: lease.to_owned(),
        reason,
    })
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
    let mut events = with_backoff(watcher(api, config)).boxed();
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
    // The ConfigMap defines every pool: the pools' Warnings go on it.
    ctx.set_config_objects(Default::default(), Some(cm.object_ref(&())));
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
