//! A LAN of network namespaces on a bridge, for the network tests and the failover measurement.
//!
//! Layout (everything inside namespaces created here; the host's own namespace is never touched):
//!
//! ```text
//!   <p>-br: bridge br0 ── v1 ── eth0 <p>-n1  node-a 192.0.2.11  2001:db8::11
//!                      ── v2 ── eth0 <p>-n2  node-b 192.0.2.12  2001:db8::12
//!                      ── v3 ── eth0 <p>-n3  node-c 192.0.2.13  2001:db8::13
//!                      ── v9 ── eth0 <p>-cl  client 192.0.2.100 2001:db8::100
//!                      ── (more with `Lan::add_host`, e.g. an API server's namespace)
//! ```
//!
//! Each node runs the real `ferrolb speaker`: `--static FILE` by default, or any flags through
//! `Lan::start_speaker` (the Kubernetes end-to-end suite). Dropping the [`Lan`] kills the
//! speakers and deletes every namespace, whether the test passed or panicked.
#![allow(dead_code)] // each user (tests, example) uses a different part

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

mod capture;
mod client;
mod faults;
mod prober;
mod second;

// Only the advertisement tests use a second LAN.
#[allow(unused_imports)]
pub use second::SecondLan;

pub const KEY: &str = "ferrolb-network-test-key-0123456789";

/// True when the environment can run namespace tests. Without `CI`, a missing prerequisite
/// prints why and returns false (the test then skips); with `CI` set it panics, so CI never
/// silently skips the network tier.
pub fn environment_ready(test: &str) -> bool {
    environment_ready_with(test, &[])
}

/// [`environment_ready`] for a test that also needs `extra_tools`.
pub fn environment_ready_with(test: &str, extra_tools: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root (CAP_NET_ADMIN/CAP_NET_RAW)".to_string());
    }
    let tools = ["ip", "arping", "ndisc6", "ping", "python3"];
    for &tool in tools.iter().chain(extra_tools) {
        if !tool_exists(tool) {
            missing.push(format!("`{tool}` (run scripts/install-test-tools.sh)"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let message = format!("network test {test} needs: {}", missing.join(", "));
    if std::env::var_os("CI").is_some() {
        panic!("{message} (CI is set, so this is a failure, not a skip)");
    }
    eprintln!("SKIPPED: {message}");
    false
}

fn is_root() -> bool {
    // /proc/self/status "Uid:" real effective saved fs
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn tool_exists(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

/// Runs a command, panicking with its output when it fails.
pub fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command inside namespace `ns`, returning its output whatever the exit status.
pub fn in_ns(ns: &str, args: &[&str]) -> Output {
    let mut full = vec!["netns", "exec", ns];
    full.extend_from_slice(args);
    Command::new("ip")
        .args(&full)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip {full:?}: {e}"))
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `f` every 50 ms until it returns `Some`, or gives up after `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub ns: String,
    pub ip4: String,
    pub ip6: String,
    pub mac: String,
    pub config: PathBuf,
    pub log: PathBuf,
    pub child: Option<Child>,
}

/// One VIP group as written into every node's static file.
#[derive(Debug, Clone)]
pub struct Vip {
    pub service: String,
    pub ips: Vec<String>,
}

pub struct Lan {
    pub prefix: String,
    pub bridge_ns: String,
    pub client_ns: String,
    pub client_mac: String,
    pub nodes: Vec<Node>,
    pub dir: tempfile::TempDir,
    pub binary: PathBuf,
    namespaces: Vec<String>,
    /// Processes started with [`Lan::spawn_in`].
    background: Vec<Child>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Lan {
    /// Builds the LAN with `count` speaker nodes (not started yet).
    pub fn new(count: usize, binary: &Path) -> Lan {
        let prefix = format!(
            "flt{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let mut lan = Lan {
            bridge_ns: format!("{prefix}-br"),
            client_ns: format!("{prefix}-cl"),
            client_mac: String::new(),
            prefix: prefix.clone(),
            nodes: Vec::new(),
            dir,
            binary: binary.to_path_buf(),
            namespaces: Vec::new(),
            background: Vec::new(),
        };
        lan.add_ns(&lan.bridge_ns.clone());
        let br = lan.bridge_ns.clone();
        run("ip", &["-n", &br, "link", "add", "br0", "type", "bridge"]);
        // Forward at once (no STP listening delay) so a healed link carries traffic immediately.
        run(
            "ip",
            &[
                "-n",
                &br,
                "link",
                "set",
                "br0",
                "type",
                "bridge",
                "forward_delay",
                "0",
            ],
        );
        run("ip", &["-n", &br, "link", "set", "br0", "up"]);
        let names = ["node-a", "node-b", "node-c", "node-d", "node-e"];
        assert!(count <= names.len(), "at most {} nodes", names.len());
        for (i, name) in names.iter().enumerate().take(count) {
            let ns = format!("{prefix}-n{}", i + 1);
            let ip4 = format!("192.0.2.{}", 11 + i);
            let ip6 = format!("2001:db8::{}", 11 + i);
            let mac = lan.attach(&ns, &format!("v{}", i + 1), &ip4, &ip6);
            lan.nodes.push(Node {
                name: name.to_string(),
                ns,
                ip4,
                ip6,
                mac,
                config: lan.dir.path().join(format!("node{}.yaml", i + 1)),
                log: lan.dir.path().join(format!("node{}.log", i + 1)),
                child: None,
            });
        }
        let cl = lan.client_ns.clone();
        lan.client_mac = lan.attach(&cl, "v9", "192.0.2.100", "2001:db8::100");
        // The client probes a stale neighbour after 1 s instead of 5 s (unicast NUD test).
        in_ns(
            &cl,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.neigh.eth0.delay_first_probe_time=1",
            ],
        );
        std::fs::write(lan.dir.path().join("key"), KEY).expect("write key");
        lan
    }

    fn add_ns(&mut self, ns: &str) {
        run("ip", &["netns", "add", ns]);
        self.namespaces.push(ns.to_string());
        run("ip", &["-n", ns, "link", "set", "lo", "up"]);
    }

    /// Creates namespace `ns` with `eth0` plugged into the bridge; returns eth0's MAC.
    fn attach(&mut self, ns: &str, port: &str, ip4: &str, ip6: &str) -> String {
        self.add_ns(ns);
        let br = self.bridge_ns.clone();
        run(
            "ip",
            &[
                "-n", &br, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ],
        );
        run(
            "ip",
            &["-n", &br, "link", "set", port, "master", "br0", "up"],
        );
        run(
            "ip",
            &["-n", ns, "addr", "add", &format!("{ip4}/24"), "dev", "eth0"],
        );
        run(
            "ip",
            &[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip6}/64"),
                "dev",
                "eth0",
                "nodad",
            ],
        );
        run("ip", &["-n", ns, "link", "set", "eth0", "up"]);
        let out = stdout(&run("ip", &["-n", ns, "-br", "link", "show", "eth0"]));
        out.split_whitespace()
            .nth(2)
            .expect("mac in `ip -br link` output")
            .to_string()
    }

    /// Writes node `i`'s static file: every node seeds every other, same key, same VIPs.
    pub fn write_config(&self, i: usize, vips: &[Vip], key_file: &Path) {
        self.write_config_with(i, vips, key_file, "");
    }

    /// [`Lan::write_config`] with `extra` YAML appended (e.g. an `advertisements:` section).
    pub fn write_config_with(&self, i: usize, vips: &[Vip], key_file: &Path, extra: &str) {
        let node = &self.nodes[i];
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("{}:7946", n.ip4))
            .collect();
        let mut text = format!(
            "node: {}\ngossip:\n  bind: {}:7946\n  seeds: [{}]\n  key-file: {}\naddresses:\n",
            node.name,
            node.ip4,
            seeds.join(", "),
            key_file.display()
        );
        for vip in vips {
            text.push_str(&format!(
                "- service: {}\n  ips: [{}]\n",
                vip.service,
                vip.ips.join(", ")
            ));
        }
        text.push_str(extra);
        // Write then rename, so a running speaker never reads half a file.
        let tmp = node.config.with_extension("tmp");
        std::fs::write(&tmp, text).expect("write static file");
        std::fs::rename(&tmp, &node.config).expect("rename static file");
    }

    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("key")
    }

    /// Writes every node's file and starts every speaker.
    pub fn start_all(&mut self, vips: &[Vip]) {
        for i in 0..self.nodes.len() {
            self.write_config(i, vips, &self.key_file());
            self.start(i);
        }
    }

    /// Starts node `i`'s speaker (its file must exist).
    pub fn start(&mut self, i: usize) {
        let config = self.nodes[i].config.clone();
        let metrics = format!("{}:7473", self.nodes[i].ip4);
        let args = [
            "--static".as_ref(),
            config.as_os_str(),
            "--exclude-interfaces".as_ref(),
            "".as_ref(),
            "--metrics-addr".as_ref(),
            metrics.as_ref(),
        ];
        self.start_speaker(i, &args, &[]);
    }

    /// Starts `ferrolb speaker ARGS` in node `i`'s namespace with `env` added, logging to the
    /// node's log; it is killed when the [`Lan`] is dropped, like the static speakers.
    pub fn start_speaker(&mut self, i: usize, args: &[&OsStr], env: &[(&str, &str)]) {
        let node = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("log file");
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &node.ns])
            .arg(&self.binary)
            .arg("speaker");
        // The suites write the legacy ConfigMap, unless ARGS name a source (the flag may be given
        // once only).
        if !args
            .iter()
            .any(|a| a.to_string_lossy().starts_with("--config-source"))
        {
            command.arg("--config-source=configmap");
        }
        let child = command
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn speaker");
        node.child = Some(child);
    }

    /// Plugs one more namespace, `<prefix>-<suffix>`, into the bridge (through bridge port
    /// `port`) with these addresses, e.g. for a server the nodes talk to. Returns the namespace's
    /// name and eth0's MAC. It is deleted with the rest.
    pub fn add_host(&mut self, suffix: &str, port: &str, ip4: &str, ip6: &str) -> (String, String) {
        let ns = format!("{}-{suffix}", self.prefix);
        let mac = self.attach(&ns, port, ip4, ip6);
        (ns, mac)
    }

    /// Runs `args` in namespace `ns` in the background (stdout and stderr to `log`); the process
    /// is killed when the [`Lan`] is dropped.
    pub fn spawn_in(&mut self, ns: &str, args: &[&str], log: &Path) {
        let out = std::fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("clone log handle");
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?} in {ns}: {e}"));
        self.background.push(child);
    }

    /// Sends `signal` (e.g. "KILL", "TERM") to node `i`'s speaker and reaps it.
    pub fn signal(&mut self, i: usize, signal: &str) {
        if let Some(mut child) = self.nodes[i].child.take() {
            // `ip netns exec` execs the binary, so the child pid is the speaker itself.
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Whether node `i`'s speaker is still running.
    pub fn running(&mut self, i: usize) -> bool {
        match self.nodes[i].child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    /// Index of the node with this MAC.
    pub fn node_by_mac(&self, mac: &str) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.mac.eq_ignore_ascii_case(mac))
    }

    /// Sends `count` broadcast ARP requests for `ip` from the client and returns the MAC of
    /// every reply (one entry per reply, so two answerers show up twice per request).
    pub fn arping(&self, ip: &str, count: u32) -> Vec<String> {
        let out = in_ns(
            &self.client_ns,
            &["arping", "-b", "-c", &count.to_string(), "-I", "eth0", ip],
        );
        stdout(&out)
            .lines()
            .filter(|l| l.contains("reply from"))
            .filter_map(|l| {
                let start = l.find('[')?;
                let end = l.find(']')?;
                Some(l[start + 1..end].to_ascii_lowercase())
            })
            .collect()
    }

    /// Multicast neighbor solicitations for `ip` from the client; the MAC of every advert.
    pub fn ndisc6(&self, ip: &str) -> Vec<String> {
        let out = in_ns(
            &self.client_ns,
            &["ndisc6", "-m", "-n", "-r", "2", "-w", "700", ip, "eth0"],
        );
        stdout(&out)
            .lines()
            .filter(|l| l.contains("link-layer address"))
            .filter_map(|l| l.split_whitespace().last().map(str::to_ascii_lowercase))
            .collect()
    }

    /// The client kernel's neighbour entry for `ip`: (MAC, state), if it has one with an address.
    pub fn neigh(&self, ip: &str) -> Option<(String, String)> {
        let family = if ip.contains(':') { "-6" } else { "-4" };
        let out = in_ns(
            &self.client_ns,
            &["ip", family, "neigh", "show", ip, "dev", "eth0"],
        );
        let text = stdout(&out);
        let words: Vec<&str> = text.split_whitespace().collect();
        let mac = words
            .iter()
            .position(|w| *w == "lladdr")
            .and_then(|p| words.get(p + 1))?;
        Some((mac.to_ascii_lowercase(), words.last()?.to_string()))
    }

    /// Makes the client's kernel resolve `ip` by sending it one packet.
    pub fn client_touch(&self, ip: &str) {
        let ping = if ip.contains(':') { "-6" } else { "-4" };
        let _ = in_ns(&self.client_ns, &["ping", ping, "-c", "1", "-W", "1", ip]);
    }

    /// Takes node `i`'s link down (partition) or up (heal).
    pub fn set_link(&self, i: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        run(
            "ip",
            &["-n", &self.nodes[i].ns, "link", "set", "eth0", state],
        );
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.signal(i, "KILL");
        }
        for child in &mut self.background {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// The election's ranking of node names for `ip`, first = owner.
pub fn ranking(ip: &str, nodes: &[&str]) -> Vec<String> {
    let ip: IpAddr = ip.parse().expect("ip");
    ferrolb::election::rank(ip, nodes.iter().copied())
        .into_iter()
        .map(str::to_string)
        .collect()
}

pub fn distinct(macs: &[String]) -> BTreeSet<String> {
    macs.iter().cloned().collect()
}
