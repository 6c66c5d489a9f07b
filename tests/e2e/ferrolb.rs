//! Runs the real `ferrolb controller` binary against a [`ControlPlane`], the way a Deployment would:
//! flags, a kubeconfig, a metrics port; and reads its `/readyz` and `/metrics` like a kubelet and a
//! Prometheus would.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::control_plane::ControlPlane;
use super::process::{ChildGuard, free_port};
use super::wait::{PATIENCE, wait_for};

/// How one controller replica is started.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// The release namespace (`--namespace`): where the ConfigMap and the Lease live.
    pub namespace: String,
    /// This replica's name, given as `POD_NAME` (and `HOSTNAME`), as the Deployment's downward API
    /// would; the Lease's holder identity is expected to contain it.
    pub identity: String,
    pub leader_elect: bool,
    /// `--lease-duration` in seconds; short in tests so takeovers do not stall them.
    pub lease_duration_secs: u64,
    /// `--config-source`: `configmap` (what most suites write) or `crds`.
    pub config_source: &'static str,
    pub extra_args: Vec<String>,
    /// `RUST_LOG` for this replica (default: `FERROLB_E2E_LOG`, else `info`).
    pub log: Option<String>,
}

impl ControllerOptions {
    pub fn new(namespace: &str, identity: &str) -> ControllerOptions {
        ControllerOptions {
            namespace: namespace.to_string(),
            identity: identity.to_string(),
            leader_elect: false,
            lease_duration_secs: 4,
            config_source: "configmap",
            extra_args: Vec::new(),
            log: None,
        }
    }

    /// Read MetalLB's custom resources instead of the ConfigMap.
    pub fn crds(mut self) -> ControllerOptions {
        self.config_source = "crds";
        self
    }

    pub fn leader_elect(mut self, on: bool) -> ControllerOptions {
        self.leader_elect = on;
        self
    }
}

pub struct Controller {
    process: ChildGuard,
    metrics_port: u16,
    options: ControllerOptions,
}

/// The `ferrolb` binary under test: the one cargo built for this test run, or `FERROLB_E2E_BIN`
/// (measurements point it at a release build while the harness itself stays a debug build).
pub fn binary() -> std::path::PathBuf {
    std::env::var_os("FERROLB_E2E_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_ferrolb").into())
}

/// Runs `ferrolb doctor` against `plane` for ferrolb in `namespace`: its exit code and report
/// (printed, with its stderr, for the test's log).
pub fn doctor(plane: &ControlPlane, namespace: &str) -> (Option<i32>, String) {
    let output = Command::new(binary())
        .arg("doctor")
        .arg(format!("--kubeconfig={}", plane.kubeconfig().display()))
        .arg(format!("--namespace={namespace}"))
        .output()
        .expect("run ferrolb doctor");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    println!(
        "ferrolb doctor:\n{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), report)
}

static STARTS: AtomicUsize = AtomicUsize::new(0);

impl Controller {
    /// Starts `ferrolb controller` (it need not be ready yet: see [`Controller::wait_ready`]).
    pub fn start(plane: &ControlPlane, options: &ControllerOptions) -> Controller {
        let metrics_port = free_port();
        let mut command = Command::new(binary());
        command
            .arg("controller")
            .arg(format!("--kubeconfig={}", plane.kubeconfig().display()))
            .arg(format!("--namespace={}", options.namespace))
            .arg(format!("--metrics-addr=127.0.0.1:{metrics_port}"))
            .arg(format!("--leader-elect={}", options.leader_elect))
            .arg(format!("--lease-duration={}", options.lease_duration_secs))
            .arg(format!("--config-source={}", options.config_source))
            .args(&options.extra_args)
            .env("POD_NAME", &options.identity)
            .env("HOSTNAME", &options.identity)
            .env("POD_NAMESPACE", &options.namespace)
            .env_remove("KUBECONFIG")
            .env(
                "RUST_LOG",
                options.log.clone().unwrap_or_else(|| {
                    std::env::var("FERROLB_E2E_LOG").unwrap_or_else(|_| "info".to_string())
                }),
            );
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        let log = plane
            .dir()
            .join(format!("controller-{}-{n}.log", options.identity));
        Controller {
            process: ChildGuard::spawn("ferrolb controller", command, &log),
            metrics_port,
            options: options.clone(),
        }
    }

    /// Starts a replica and waits until its `/readyz` answers 200.
    pub async fn start_ready(plane: &ControlPlane, options: &ControllerOptions) -> Controller {
        let mut controller = Controller::start(plane, options);
        controller.wait_ready().await;
        controller
    }

    pub async fn wait_ready(&mut self) {
        self.wait_ready_within(PATIENCE).await;
    }

    /// [`Controller::wait_ready`] with a deadline of its own (a restart over 10k Services
    /// re-registers every one of them before it is ready).
    pub async fn wait_ready_within(&mut self, patience: Duration) {
        let port = self.metrics_port;
        let what = format!("{} to answer /readyz with 200", self.options.identity);
        let process = &mut self.process;
        wait_for(&what, patience, || {
            process.assert_running();
            async move { matches!(http_get(port, "/readyz").await, Some((200, _))).then_some(()) }
        })
        .await;
    }

    pub fn identity(&self) -> &str {
        &self.options.identity
    }

    pub fn options(&self) -> &ControllerOptions {
        &self.options
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn assert_running(&mut self) {
        self.process.assert_running();
    }

    /// SIGKILL: a crash, no lease release.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGTERM, as on a rolling update; waits for the process to exit.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.process.terminate(Duration::from_secs(30))
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    pub async fn metrics(&self) -> String {
        match http_get(self.metrics_port, "/metrics").await {
            Some((200, body)) => body,
            other => panic!(
                "{}: /metrics answered {other:?}; log tail:\n{}",
                self.identity(),
                self.log_tail(20)
            ),
        }
    }

    /// The value of one series, named exactly as exposed, e.g. `ferrolb_config_stale` or
    /// `ferrolb_allocator_addresses_in_use_total{pool="default"}`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.metrics().await, series)
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        // A failing test shows what the controller said last.
        if std::thread::panicking() {
            eprintln!(
                "--- {} log tail ({}) ---\n{}",
                self.identity(),
                self.process.log_path().display(),
                self.log_tail(40)
            );
        }
    }
}

/// Finds `series` (name plus exact label set) in Prometheus text exposition format.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

/// A bare HTTP/1.0 GET on 127.0.0.1 (no chunked encoding to decode): status code and body.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let exchange = async {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        get_on(stream, path, "").await
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

/// An HTTP/1.0 GET of `path` on an open connection, with `headers` (each line ending in CRLF)
/// added: status code and body once the server closes. A server that closes a TLS stream without
/// close_notify has still given its whole answer.
pub async fn get_on<S>(mut stream: S, path: &str, headers: &str) -> Option<(u16, String)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{headers}\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}
