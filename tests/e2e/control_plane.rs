//! A real Kubernetes control plane for one test: etcd and kube-apiserver from `KUBEBUILDER_ASSETS`
//! (the envtest convention), on loopback ports of their own, with a generated PKI, a kubeconfig for
//! an admin user, and everything in a temporary folder removed when the test ends.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::certs::Pki;
use super::netns_bridge::{Bridge, Network};
use super::process::{ChildGuard, free_port};

/// Environment variable naming the folder that holds `kube-apiserver` and `etcd`.
pub const ASSETS_ENV: &str = "KUBEBUILDER_ASSETS";

/// Service cluster-IP ranges: dual-stack, so tests can create IPv6 Services (the large pools of
/// the benchmarks live in 2001:db8::/32). Cluster IPs are only bookkeeping here: no traffic.
const SERVICE_CIDRS: &str = "10.0.0.0/16,fd00:10::/108";

/// The API port inside a namespace of the control plane's own.
pub const NETNS_API_PORT: u16 = 6443;

/// The audit policy of [`PlaneOptions::audit`]: every request at level Metadata (who, what, on
/// which object, and the answer's code), once its answer is complete (watches also when their
/// answer starts).
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
";

/// What a test asks of its control plane beyond the defaults.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlaneOptions {
    /// Keep an audit log of every request (`--audit-policy-file`, `--audit-log-path`: one JSON
    /// line per event, written as each request completes), read with [`ControlPlane::audit_log`].
    pub audit: bool,
}

pub struct ControlPlane {
    // Field order is drop order: the way in closes first, the API server stops before etcd,
    // the folder goes last.
    bridge: Option<Bridge>,
    apiserver: ChildGuard,
    /// The same command again, for [`ControlPlane::restart_apiserver`].
    apiserver_restart: Option<Command>,
    etcd: ChildGuard,
    kubeconfig: PathBuf,
    lan_kubeconfig: Option<PathBuf>,
    server: String,
    /// The API server's address on the LAN, for a control plane in a namespace.
    lan_server: Option<String>,
    ca_cert: PathBuf,
    audit_log: Option<PathBuf>,
    dir: PathBuf,
    /// Removes `dir` on drop; `None` when `FERROLB_E2E_KEEP` asks to keep the logs.
    _cleanup: Option<tempfile::TempDir>,
}

/// The assets folder, or `None` (after printing why the test is skipped) when it is not configured.
pub fn assets_dir(test: &str) -> Option<PathBuf> {
    match std::env::var_os(ASSETS_ENV) {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            for bin in ["kube-apiserver", "etcd"] {
                assert!(
                    dir.join(bin).is_file(),
                    "{ASSETS_ENV}={} has no `{bin}` binary",
                    dir.display()
                );
            }
            Some(dir)
        }
        _ => {
            eprintln!(
                "SKIPPED {test}: {ASSETS_ENV} is not set. The Kubernetes end-to-end suite needs a \
                 folder with `kube-apiserver` and `etcd` binaries (the envtest convention); no \
                 package registry ships them, see tests/e2e/README.md."
            );
            None
        }
    }
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver on the host's loopback and waits until the API server is
    /// ready. `None` when `KUBEBUILDER_ASSETS` is unset (the test should return early: it is
    /// skipped).
    pub async fn start(test: &str) -> Option<ControlPlane> {
        ControlPlane::launch(test, Network::Loopback, PlaneOptions::default()).await
    }

    /// Starts etcd and kube-apiserver inside the network namespace `netns` (made by the test),
    /// serving on `address:6443` there, so processes in other namespaces on the same LAN reach
    /// it over the wire (their kubeconfig: [`ControlPlane::lan_kubeconfig`]). The test process
    /// stays in the host namespace, which never gets a LAN address: it reaches the API server
    /// through a Unix socket (not namespaced) that `socat` inside `netns` connects to the API
    /// port, fed by a forwarder on a free 127.0.0.1 port of the host, which is what
    /// [`ControlPlane::kubeconfig`] names.
    pub async fn start_in_netns(test: &str, netns: &str, address: IpAddr) -> Option<ControlPlane> {
        ControlPlane::start_in_netns_with(test, netns, address, PlaneOptions::default()).await
    }

    /// [`ControlPlane::start_in_netns`] with `options`.
    pub async fn start_in_netns_with(
        test: &str,
        netns: &str,
        address: IpAddr,
        options: PlaneOptions,
    ) -> Option<ControlPlane> {
        let network = Network::Netns {
            netns: netns.to_string(),
            address,
        };
        ControlPlane::launch(test, network, options).await
    }

    async fn launch(test: &str, network: Network, options: PlaneOptions) -> Option<ControlPlane> {
        let assets = assets_dir(test)?;
        let temp = tempfile::Builder::new()
            .prefix("ferrolb-e2e-")
            .tempdir()
            .expect("temp dir");
        let keep = std::env::var_os("FERROLB_E2E_KEEP").is_some();
        eprintln!(
            "{test}: control plane and logs in {}{}",
            temp.path().display(),
            if keep {
                " (kept: FERROLB_E2E_KEEP)"
            } else {
                ""
            }
        );
        let (dir, cleanup) = if keep {
            (temp.keep(), None)
        } else {
            (temp.path().to_path_buf(), Some(temp))
        };
        let dir = dir.as_path();
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut serving_ips = vec![loopback];
        serving_ips.extend(network.address());
        let pki = Pki::generate(dir, &serving_ips);

        // In a namespace of its own the control plane has the ports to itself; on the host's
        // loopback it takes free ones.
        let (etcd_client_port, etcd_peer_port, port) = match network {
            Network::Loopback => (free_port(), free_port(), free_port()),
            Network::Netns { .. } => (2379, 2380, NETNS_API_PORT),
        };
        let etcd_client = format!("http://127.0.0.1:{etcd_client_port}");
        let etcd_peer = format!("http://127.0.0.1:{etcd_peer_port}");
        let mut etcd = network.command(&assets.join("etcd"));
        etcd.arg(format!("--data-dir={}", dir.join("etcd").display()))
            .arg(format!("--listen-client-urls={etcd_client}"))
            .arg(format!("--advertise-client-urls={etcd_client}"))
            .arg(format!("--listen-peer-urls={etcd_peer}"))
            .arg("--unsafe-no-fsync=true");
        let etcd = ChildGuard::spawn("etcd", etcd, &dir.join("etcd.log"));

        let (bind, advertise) = match network.address() {
            // Every address of its own namespace: loopback for the socat bridge, the LAN
            // address for everyone else.
            Some(address) => ("0.0.0.0".to_string(), address.to_string()),
            None => ("127.0.0.1".to_string(), "127.0.0.1".to_string()),
        };
        let home = match network.address() {
            Some(address) => format!("https://{}", SocketAddr::new(address, port)),
            None => format!("https://127.0.0.1:{port}"),
        };
        let arg = |name: &str, path: &Path| format!("--{name}={}", path.display());
        let mut apiserver = network.command(&assets.join("kube-apiserver"));
        let mut restart = network.command(&assets.join("kube-apiserver"));
        apiserver
            .arg(format!("--etcd-servers={etcd_client}"))
            .arg(format!("--bind-address={bind}"))
            .arg(format!("--advertise-address={advertise}"))
            .arg(format!("--secure-port={port}"))
            .arg(arg("cert-dir", &dir.join("apiserver-certs")))
            .arg(arg("tls-cert-file", &pki.serving_cert))
            .arg(arg("tls-private-key-file", &pki.serving_key))
            .arg(arg("client-ca-file", &pki.ca_cert))
            .arg("--authorization-mode=RBAC")
            .arg(format!("--service-account-issuer={home}"))
            .arg(arg("service-account-key-file", &pki.service_account_pub))
            .arg(arg(
                "service-account-signing-key-file",
                &pki.service_account_key,
            ))
            .arg(format!("--service-cluster-ip-range={SERVICE_CIDRS}"))
            // No pods run here, so nothing needs service-account tokens mounted.
            .arg("--disable-admission-plugins=ServiceAccount")
            .arg("--allow-privileged=true");
        let audit_log = options.audit.then(|| {
            let policy = dir.join("audit-policy.yaml");
            std::fs::write(&policy, AUDIT_POLICY).expect("write the audit policy");
            let log = dir.join("audit.log");
            apiserver
                .arg(arg("audit-policy-file", &policy))
                .arg(arg("audit-log-path", &log));
            log
        });
        // The flags only: `restart` already has the namespace prefix, if any.
        let prefix = restart.get_args().count();
        restart.args(apiserver.get_args().skip(prefix));
        let apiserver =
            ChildGuard::spawn("kube-apiserver", apiserver, &dir.join("kube-apiserver.log"));

        let (server, bridge, lan_kubeconfig, lan_server) = match &network {
            Network::Loopback => (home, None, None, None),
            Network::Netns { .. } => {
                let bridge = Bridge::start(&network, dir, port).await;
                let lan = dir.join("kubeconfig-lan");
                std::fs::write(&lan, kubeconfig_yaml(&home, &pki)).expect("write kubeconfig");
                (
                    format!("https://127.0.0.1:{}", bridge.port),
                    Some(bridge),
                    Some(lan),
                    Some(home),
                )
            }
        };
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(&server, &pki)).expect("write kubeconfig");

        let mut plane = ControlPlane {
            bridge,
            apiserver,
            apiserver_restart: Some(restart),
            etcd,
            kubeconfig,
            lan_kubeconfig,
            server,
            lan_server,
            ca_cert: pki.ca_cert.clone(),
            audit_log,
            dir: dir.to_path_buf(),
            _cleanup: cleanup,
        };
        plane.wait_ready().await;
        Some(plane)
    }

    async fn wait_ready(&mut self) {
        let client = self.client().await;
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            self.etcd.assert_running();
            self.apiserver.assert_running();
            let request = http::Request::get("/readyz")
                .body(Vec::new())
                .expect("request");
            let last = match client.request_text(request).await {
                Ok(body) if body.trim() == "ok" => return,
                Ok(body) => body,
                Err(e) => e.to_string(),
            };
            assert!(
                Instant::now() < deadline,
                "kube-apiserver never became ready (last answer: {last}); log tail:\n{}\netcd log tail:\n{}",
                self.apiserver.log_tail(30),
                self.etcd.log_tail(10)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// An admin client, through the same kubeconfig a user (and the controller) reads.
    pub async fn client(&self) -> Client {
        client_from(&self.kubeconfig).await
    }

    /// The kubeconfig the test process (host namespace) uses; the controller uses it too.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// For a control plane in a namespace: a kubeconfig naming its LAN address, for processes
    /// in the other namespaces on the LAN (speakers).
    pub fn lan_kubeconfig(&self) -> Option<&Path> {
        self.lan_kubeconfig.as_deref()
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// For a control plane in a namespace: the API server's URL on the LAN.
    pub fn lan_server(&self) -> Option<&str> {
        self.lan_server.as_deref()
    }

    /// Writes `<dir>/<file>`, a kubeconfig that authenticates with `token` (a ServiceAccount's,
    /// say) to `server` (one of [`ControlPlane::server`], [`ControlPlane::lan_server`]), trusting
    /// the control plane's CA as the admin kubeconfig does.
    pub fn token_kubeconfig(&self, file: &str, server: &str, token: &str) -> PathBuf {
        let path = self.dir.join(file);
        let text = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: token
  user:
    token: {token}
contexts:
- name: e2e
  context:
    cluster: e2e
    user: token
current-context: e2e
",
            ca = self.ca_cert.display(),
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// The audit log, when the control plane was started with [`PlaneOptions::audit`].
    pub fn audit_log(&self) -> Option<&Path> {
        self.audit_log.as_deref()
    }

    /// The test's temporary folder (logs of every process started for it live here).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `kubectl` against this control plane; panics with its stderr when it fails.
    /// Waits until every CustomResourceDefinition applied so far is served.
    pub fn wait_crds_established(&self) {
        self.kubectl(&[
            "wait",
            "--for=condition=Established",
            "crd",
            "--all",
            "--timeout=60s",
        ]);
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        let output = Command::new("kubectl")
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args)
            .output()
            .expect("kubectl is installed (scripts/install-test-tools.sh)");
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn apiserver_pid(&self) -> u32 {
        self.apiserver.pid()
    }

    /// SIGKILL of kube-apiserver (etcd keeps running): an API server crash.
    pub fn kill_apiserver(&mut self) {
        self.apiserver.kill();
    }

    /// Starts kube-apiserver again with the same flags (once per control plane), and waits
    /// until it is ready.
    pub async fn restart_apiserver(&mut self) {
        let command = self
            .apiserver_restart
            .take()
            .expect("the API server is restarted once per test");
        self.apiserver = ChildGuard::spawn(
            "kube-apiserver",
            command,
            &self.dir.join("kube-apiserver-restarted.log"),
        );
        self.wait_ready().await;
    }
}

/// A client that authenticates as the kubeconfig at `path` says.
pub async fn client_from(path: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig to client config");
    Client::try_from(config).expect("client")
}

fn kubeconfig_yaml(server: &str, pki: &Pki) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: admin
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: e2e
  context:
    cluster: e2e
    user: admin
current-context: e2e
",
        ca = pki.ca_cert.display(),
        cert = pki.admin_cert.display(),
        key = pki.admin_key.display(),
    )
}
