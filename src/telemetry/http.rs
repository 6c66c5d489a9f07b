//! The /metrics, /healthz and /readyz server every component runs: plain HTTP, or with
//! [`Security`] HTTPS where /metrics answers only requests its [`Gate`] allows (the probes stay
//! open to anyone, as the kubelet sends no token).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::auth::{Decision, Gate};
use super::tls::TlsListener;
use super::{Health, Security, TelemetryError, TextRegistry};

#[derive(Clone)]
struct AppState {
    registry: Registry,
    text: TextRegistry,
    health: Health,
    /// With --metrics-secure: who may read /metrics.
    gate: Option<Arc<Gate>>,
}

/// A running metrics/health server. Dropping it does not stop the server; call
/// [`Server::shutdown`] for that.
pub struct Server {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), TelemetryError>>,
}

impl Server {
    /// The address actually bound (useful when listening on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, lets in-flight requests finish, and waits for the server.
    pub async fn shutdown(mut self) -> Result<(), TelemetryError> {
        if let Some(stop) = self.stop.take() {
            // The server may have already exited on its own; then there is nobody to tell.
            let _ = stop.send(());
        }
        match self.task.await {
            Ok(result) => result,
            Err(join) => Err(TelemetryError::Serve(std::io::Error::other(
                join.to_string(),
            ))),
        }
    }
}

/// Binds `addr` and serves `/metrics` (Prometheus text format of `registry`), `/healthz` (200 while
/// the process runs) and `/readyz` (200 once `health` is ready, 503 before) on a spawned task.
/// Binding happens before this returns, so a port already in use is reported to the caller.
pub async fn serve(
    addr: SocketAddr,
    registry: Registry,
    health: Health,
) -> Result<Server, TelemetryError> {
    serve_with_text(addr, registry, TextRegistry::default(), health).await
}

/// [`serve`], with `/metrics` also carrying the families of `text` after the registry's.
pub async fn serve_with_text(
    addr: SocketAddr,
    registry: Registry,
    text: TextRegistry,
    health: Health,
) -> Result<Server, TelemetryError> {
    serve_metrics(addr, registry, text, health, None).await
}

/// [`serve_with_text`], over HTTPS with `/metrics` behind the gate when `security` is given.
pub async fn serve_metrics(
    addr: SocketAddr,
    registry: Registry,
    text: TextRegistry,
    health: Health,
    security: Option<Security>,
) -> Result<Server, TelemetryError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| TelemetryError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| TelemetryError::Bind { addr, source })?;
    let (tls, gate) = match security {
        Some(Security { tls, gate }) => (Some(tls), Some(gate)),
        None => (None, None),
    };
    let app = router(AppState {
        registry,
        text,
        health,
        gate,
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let stopped = async move {
        let _ = stopped.await;
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let task = match tls {
        Some(config) => {
            let listener = TlsListener::new(listener, local_addr, config);
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
                    .map_err(TelemetryError::Serve)
            })
        }
        None => tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
                .map_err(TelemetryError::Serve)
        }),
    };
    tracing::info!(%local_addr, scheme, "serving /metrics, /healthz and /readyz");
    Ok(Server {
        local_addr,
        stop: Some(stop),
        task,
    })
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(gate) = &state.gate
        && let Some(refused) = refusal(gate.decide(headers.get(header::AUTHORIZATION)).await)
    {
        return refused;
    }
    let encoder = TextEncoder::new();
    let mut body = String::new();
    match encoder.encode_utf8(&state.registry.gather(), &mut body) {
        Ok(()) => {
            state.text.write_text(&mut body);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
                body,
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot encode metrics: {e}\n"),
            )
                .into_response()
        }
    }
}

/// The answer to a /metrics request the gate did not allow; `None` when it did.
fn refusal(decision: Decision) -> Option<Response> {
    let status = decision.status();
    let response = match decision {
        Decision::Allowed => return None,
        Decision::Unauthenticated => (
            status,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"ferrolb\"")],
            "a bearer token the API server accepts (TokenReview) is required\n",
        )
            .into_response(),
        Decision::Forbidden => (
            status,
            "this user may not get /metrics (SubjectAccessReview: get on the non-resource URL /metrics)\n",
        )
            .into_response(),
        Decision::Unavailable => (
            status,
            "cannot review the token with the API server now; try again\n",
        )
            .into_response(),
    };
    Some(response)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.health.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::TextFamilies;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Minimal HTTP/1.1 GET over a raw socket, so the test exercises the real listener.
    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        let status: u16 = raw
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {raw:?}"));
        let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (status, body.to_owned())
    }

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[tokio::test]
    async fn readyz_follows_health_and_healthz_is_always_ok() {
        let health = Health::new();
        let server = serve(loopback(), Registry::new(), health.clone())
            .await
            .unwrap();
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);

        assert_eq!(get(addr, "/healthz").await.0, 200);
        assert_eq!(get(addr, "/readyz").await.0, 503);
        health.set_ready(true);
        assert_eq!(get(addr, "/readyz").await.0, 200);
        assert_eq!(get(addr, "/healthz").await.0, 200);
        health.set_ready(false);
        assert_eq!(get(addr, "/readyz").await.0, 503);
        assert_eq!(get(addr, "/nope").await.0, 404);

        server.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn metrics_exposes_registered_metrics_in_text_format() {
        let registry = Registry::new();
        let gauge = prometheus::IntGaugeVec::new(
            prometheus::Opts::new("ferrolb_test_in_use", "addresses in use"),
            &["pool"],
        )
        .unwrap();
        registry.register(Box::new(gauge.clone())).unwrap();
        gauge.with_label_values(&["default"]).set(7);

        let server = serve(loopback(), registry, Health::new()).await.unwrap();
        let (status, body) = get(server.local_addr(), "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            body.contains("# TYPE ferrolb_test_in_use gauge"),
            "body: {body}"
        );
        assert!(
            body.contains("ferrolb_test_in_use{pool=\"default\"} 7"),
            "body: {body}"
        );
        // Later changes are visible: the registry is read per request, not snapshotted.
        gauge.with_label_values(&["default"]).set(9);
        let (_, body) = get(server.local_addr(), "/metrics").await;
        assert!(
            body.contains("ferrolb_test_in_use{pool=\"default\"} 9"),
            "body: {body}"
        );
        server.shutdown().await.unwrap();
    }

    struct Counted(std::sync::atomic::AtomicU64);

    impl TextFamilies for Counted {
        fn write_text(&self, out: &mut String) {
            let n = self.0.load(Ordering::Relaxed);
            out.push_str(&format!(
                "# HELP ferrolb_test_text a text family\n# TYPE ferrolb_test_text counter\nferrolb_test_text{{ip=\"192.0.2.1\"}} {n}\n"
            ));
        }
    }

    #[tokio::test]
    async fn text_families_follow_the_registry_and_are_read_per_request() {
        let registry = Registry::new();
        let gauge = prometheus::IntGauge::new("ferrolb_test_gauge", "a gauge").unwrap();
        registry.register(Box::new(gauge.clone())).unwrap();
        gauge.set(3);
        let text = TextRegistry::default();
        let source = Arc::new(Counted(std::sync::atomic::AtomicU64::new(1)));
        let server = serve_with_text(loopback(), registry, text.clone(), Health::new())
            .await
            .unwrap();
        // Registered after the server started: still served.
        text.register(source.clone());
        let (status, body) = get(server.local_addr(), "/metrics").await;
        assert_eq!(status, 200);
        let gauge_at = body.find("ferrolb_test_gauge 3").expect(&body);
        let text_at = body
            .find("ferrolb_test_text{ip=\"192.0.2.1\"} 1\n")
            .expect(&body);
        assert!(gauge_at < text_at, "{body}");
        source.0.store(5, Ordering::Relaxed);
        let (_, body) = get(server.local_addr(), "/metrics").await;
        assert!(
            body.contains("ferrolb_test_text{ip=\"192.0.2.1\"} 5\n"),
            "{body}"
        );
        server.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn binding_a_used_port_is_reported() {
        let first = serve(loopback(), Registry::new(), Health::new())
            .await
            .unwrap();
        let err = serve(first.local_addr(), Registry::new(), Health::new())
            .await
            .err()
            .expect("second bind on the same port must fail");
        assert!(matches!(err, TelemetryError::Bind { .. }), "{err}");
        assert!(err.to_string().contains(&first.local_addr().to_string()));
        first.shutdown().await.unwrap();
    }
}

#[cfg(test)]
#[path = "https_tests.rs"]
mod https_tests;
