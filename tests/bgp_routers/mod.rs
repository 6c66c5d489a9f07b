//! Real routers for the BGP network tests, each in its own namespace with its own config, socket
//! and pid files in the LAN's temp dir: FRR's bgpd (no zebra, nothing installed in a kernel),
//! BIRD 2 and GoBGP. Each is started through [`Lan::spawn_in`], so it dies with the LAN.
#![allow(dead_code)] // each test uses some of them

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

use std::time::Duration;

use crate::netns::{Lan, in_ns, run, stdout, wait_for};

pub const BGPD: &str = "/usr/lib/frr/bgpd";
pub const ZEBRA: &str = "/usr/lib/frr/zebra";
pub const BFDD: &str = "/usr/lib/frr/bfdd";

/// A route as a router holds it: every path's next hop, and the attributes of one path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    pub next_hops: BTreeSet<String>,
    pub communities: BTreeSet<String>,
    pub large_communities: BTreeSet<String>,
    pub local_pref: Option<u32>,
}

pub type Rib = BTreeMap<String, Held>;

fn dir(lan: &Lan, name: &str) -> PathBuf {
    let dir = lan.dir.path().join(name);
    std::fs::create_dir_all(&dir).expect("router dir");
    // bgpd drops privileges to frr unless -S; vtysh and bird want a writable dir either way.
    let _ = std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777));
    dir
}

pub struct Frr {
    pub ns: String,
    pub dir: PathBuf,
    conf: String,
    /// bfdd's config, when FRR runs BFD: then zebra and bfdd run too (bgpd asks bfdd for its
    /// sessions through zebra).
    bfd: Option<String>,
}

impl Frr {
    /// Starts bgpd in `ns` with `conf` (the `router bgp` stanza and whatever else).
    pub fn start(lan: &mut Lan, ns: &str, name: &str, conf: &str) -> Frr {
        let frr = Frr {
            ns: ns.to_string(),
            dir: dir(lan, name),
            conf: conf.to_string(),
            bfd: None,
        };
        frr.spawn(lan);
        frr
    }

    /// [`Frr::start`] with zebra and bfdd too, bfdd reading `bfd_conf` (e.g. a `bfd` block with
    /// profiles), so `neighbor X bfd` lines in `conf` work.
    pub fn start_with_bfd(lan: &mut Lan, ns: &str, name: &str, conf: &str, bfd_conf: &str) -> Frr {
        let frr = Frr {
            ns: ns.to_string(),
            dir: dir(lan, name),
            conf: conf.to_string(),
            bfd: Some(bfd_conf.to_string()),
        };
        let api = frr.dir.join("zserv.api");
        let api = api.to_str().unwrap();
        let vty = frr.dir.to_str().unwrap();
        let zebra_conf = frr.dir.join("zebra.conf");
        std::fs::write(&zebra_conf, "").expect("write zebra.conf");
        let bfdd_conf = frr.dir.join("bfdd.conf");
        std::fs::write(&bfdd_conf, bfd_conf).expect("write bfdd.conf");
        let ctl = frr.dir.join("bfdd.sock");
        for (daemon, extra) in [
            (ZEBRA, vec!["-f", zebra_conf.to_str().unwrap()]),
            (
                BFDD,
                vec![
                    "-f",
                    bfdd_conf.to_str().unwrap(),
                    "--bfdctl",
                    ctl.to_str().unwrap(),
                ],
            ),
        ] {
            let short = daemon.rsplit('/').next().unwrap();
            let pid = frr.dir.join(format!("{short}.pid"));
            let log = format!(
                "--log=file:{}",
                frr.dir.join(format!("{short}.log")).display()
            );
            let mut args = vec![daemon, "-z", api, "--vty_socket", vty, "-i"];
            args.push(pid.to_str().unwrap());
            args.push(&log);
            args.extend(extra);
            lan.spawn_in(ns, &args, &frr.dir.join(format!("{short}.out")));
            let up = crate::netns::wait_for(std::time::Duration::from_secs(10), || {
                frr.dir.join(format!("{short}.vty")).exists().then_some(())
            });
            assert!(up.is_some(), "{short} did not start: {}", frr.log());
        }
        frr.spawn(lan);
        frr
    }

    fn spawn(&self, lan: &mut Lan) {
        let conf = self.dir.join("bgpd.conf");
        std::fs::write(&conf, &self.conf).expect("write bgpd.conf");
        let (pid, log) = (self.dir.join("bgpd.pid"), self.dir.join("bgpd.log"));
        let log_arg = format!("--log=file:{}", self.dir.join("frr.log").display());
        let api = self.dir.join("zserv.api");
        // Without BFD no zebra (-Z); with it, bgpd talks to zebra's socket.
        let zebra = match self.bfd {
            Some(_) => format!("--socket={}", api.display()),
            None => "-Z".to_string(),
        };
        let args = [
            BGPD,
            &zebra,
            "-S",
            "-n",
            "-P",
            "0",
            "-f",
            conf.to_str().unwrap(),
            "--vty_socket",
            self.dir.to_str().unwrap(),
            "-i",
            pid.to_str().unwrap(),
            &log_arg,
        ];
        lan.spawn_in(&self.ns, &args, &log);
        let up = crate::netns::wait_for(std::time::Duration::from_secs(10), || {
            self.dir.join("bgpd.vty").exists().then_some(())
        });
        assert!(up.is_some(), "bgpd did not start: {}", self.log());
    }

    /// Stops bgpd (SIGTERM: it tells its peers) and starts it again with the same config.
    pub fn restart(&self, lan: &mut Lan) {
        let pid = std::fs::read_to_string(self.dir.join("bgpd.pid")).unwrap_or_default();
        let pid = pid.trim().to_string();
        let _ = std::process::Command::new("kill").arg(&pid).status();
        let gone = crate::netns::wait_for(std::time::Duration::from_secs(10), || {
            (!std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")))
            .then_some(())
        });
        assert!(gone.is_some(), "bgpd {pid} did not stop");
        let _ = std::fs::remove_file(self.dir.join("bgpd.vty"));
        self.spawn(lan);
        let again = std::fs::read_to_string(self.dir.join("bgpd.pid")).unwrap_or_default();
        assert_ne!(again.trim(), pid, "a new bgpd");
    }

    pub fn vtysh(&self, command: &str) -> String {
        let socket = self.dir.to_str().unwrap();
        stdout(&in_ns(
            &self.ns,
            &["vtysh", "--vty_socket", socket, "-c", command],
        ))
    }

    fn json(&self, command: &str) -> Value {
        serde_json::from_str(&self.vtysh(command)).unwrap_or(Value::Null)
    }

    /// The state of the session with `neighbor` ("Established", "Active", …).
    pub fn state(&self, neighbor: &str) -> String {
        let v = self.json(&format!("show bgp neighbors {neighbor} json"));
        v[neighbor]["bgpState"].as_str().unwrap_or("?").to_string()
    }

    /// How many `afi` prefixes FRR holds from `neighbor` (`pfxRcd`).
    pub fn received(&self, afi: &str, neighbor: &str) -> u64 {
        let summary = self.json(&format!("show bgp {afi} unicast summary json"));
        summary["peers"][neighbor]["pfxRcd"].as_u64().unwrap_or(0)
    }

    pub fn neighbor(&self, neighbor: &str) -> Value {
        self.json(&format!("show bgp neighbors {neighbor} json"))[neighbor].clone()
    }

    /// Every prefix of `afi` ("ipv4"/"ipv6") with the next hops of its valid paths, and the
    /// attributes of its first path.
    pub fn rib(&self, afi: &str) -> Rib {
        let table = self.json(&format!("show bgp {afi} unicast json"));
        let mut rib = Rib::new();
        let Some(routes) = table["routes"].as_object() else {
            return rib;
        };
        for (prefix, paths) in routes {
            let mut held = Held::default();
            for path in paths.as_array().into_iter().flatten() {
                if path["valid"] != Value::Bool(true) {
                    continue;
                }
                for hop in path["nexthops"].as_array().into_iter().flatten() {
                    if hop["scope"].as_str() != Some("link-local")
                        && let Some(ip) = hop["ip"].as_str()
                    {
                        held.next_hops.insert(ip.to_string());
                    }
                }
            }
            rib.insert(prefix.clone(), held);
        }
        rib
    }

    /// `prefix`'s attributes as FRR shows the path from `next_hop`.
    pub fn attributes(&self, afi: &str, prefix: &str, next_hop: &str) -> Held {
        let detail = self.json(&format!("show bgp {afi} unicast {prefix} json"));
        let mut held = Held::default();
        for path in detail["paths"].as_array().into_iter().flatten() {
            let hops: BTreeSet<String> = path["nexthops"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|h| h["ip"].as_str().map(str::to_string))
                .collect();
            if !hops.contains(next_hop) {
                continue;
            }
            held.next_hops = hops;
            let words = |v: &Value| -> BTreeSet<String> {
                v["string"]
                    .as_str()
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_string)
                    .collect()
            };
            held.communities = words(&path["community"]);
            held.large_communities = words(&path["largeCommunity"]);
            held.local_pref = path["locPrf"]
                .as_u64()
                .or(path["localpref"].as_u64())
                .map(|v| v as u32);
        }
        held
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("frr.log")).unwrap_or_default()
    }

    /// bfdd's view of its session with `peer` (`show bfd peers json`), or `Null`.
    pub fn bfd_peer(&self, peer: &str) -> Value {
        let peers = self.json("show bfd peers json");
        peers
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["peer"].as_str() == Some(peer))
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// bfdd's log.
    pub fn bfd_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("bfdd.log")).unwrap_or_default()
    }
}

/// FRR's config for one AS peering passively with `neighbors` (address, remote AS, `extra` lines
/// such as `password x`) in the address families `afi` names ("ipv4", "ipv6" or both), with
/// multipath on.
pub fn frr_conf(
    local_as: u32,
    router_id: &str,
    neighbors: &[(&str, u32, &str)],
    afi: &str,
) -> String {
    let mut conf = format!(
        "frr defaults traditional\nrouter bgp {local_as}\n bgp router-id {router_id}\n \
         no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n \
         bgp bestpath as-path multipath-relax\n"
    );
    for (address, remote_as, extra) in neighbors {
        conf.push_str(&format!(
            " neighbor {address} remote-as {remote_as}\n neighbor {address} passive\n"
        ));
        for line in extra.lines().filter(|l| !l.trim().is_empty()) {
            conf.push_str(&format!(" neighbor {address} {}\n", line.trim()));
        }
    }
    for afi in afi.split_whitespace() {
        conf.push_str(&format!(" address-family {afi} unicast\n"));
        for (address, _, _) in neighbors {
            conf.push_str(&format!("  neighbor {address} activate\n"));
        }
        conf.push_str("  maximum-paths 16\n  maximum-paths ibgp 16\n exit-address-family\n");
    }
    conf
}

/// A namespace a test made off the bridge, deleted when dropped.
pub struct OffBridge(pub String);

impl Drop for OffBridge {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// A router namespace two hops from the nodes, for eBGP multihop:
/// nodes ── bridge ── fw (192.0.2.254 | 203.0.113.254, forwarding; bridge port `fw_port`) ──
/// `<prefix>-far` (203.0.113.1). Every node routes 203.0.113.0/24 through fw; the router
/// routes 192.0.2.0/24 back.
/// Returns rt's namespace (keep it as long as the LAN).
pub fn two_hops_away(lan: &mut Lan, fw_port: &str) -> OffBridge {
    let fw = lan
        .add_host("fw", fw_port, "192.0.2.254", "2001:db8::254")
        .0;
    let rt = OffBridge(format!("{}-far", lan.prefix));
    run("ip", &["netns", "add", &rt.0]);
    run("ip", &["-n", &rt.0, "link", "set", "lo", "up"]);
    run(
        "ip",
        &[
            "-n", &fw, "link", "add", "r0", "type", "veth", "peer", "name", "eth0", "netns", &rt.0,
        ],
    );
    run(
        "ip",
        &["-n", &fw, "addr", "add", "203.0.113.254/24", "dev", "r0"],
    );
    run("ip", &["-n", &fw, "link", "set", "r0", "up"]);
    run(
        "ip",
        &[
            "netns",
            "exec",
            &fw,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ],
    );
    run(
        "ip",
        &["-n", &rt.0, "addr", "add", "203.0.113.1/24", "dev", "eth0"],
    );
    run("ip", &["-n", &rt.0, "link", "set", "eth0", "up"]);
    run(
        "ip",
        &[
            "-n",
            &rt.0,
            "route",
            "add",
            "192.0.2.0/24",
            "via",
            "203.0.113.254",
        ],
    );
    for node in &lan.nodes {
        run(
            "ip",
            &[
                "-n",
                &node.ns,
                "route",
                "add",
                "203.0.113.0/24",
                "via",
                "192.0.2.254",
            ],
        );
    }
    rt
}

pub struct Bird {
    ns: String,
    socket: PathBuf,
    dir: PathBuf,
}

impl Bird {
    /// BIRD 2 as AS `local_as` peering passively with each of `neighbors` in `remote_as`.
    pub fn start(
        lan: &mut Lan,
        ns: &str,
        local: &str,
        local_as: u32,
        neighbors: &[(&str, u32)],
    ) -> Bird {
        let dir = dir(lan, "bird");
        let mut conf = format!(
            "router id {local};\nprotocol device {{ scan time 1; }}\n\
             template bgp node {{\n  local {local} as {local_as};\n  passive on;\n  \
             ipv4 {{ import all; export none; }};\n}}\n"
        );
        for (i, (address, remote_as)) in neighbors.iter().enumerate() {
            conf.push_str(&format!(
                "protocol bgp n{i} from node {{ neighbor {address} as {remote_as}; }}\n"
            ));
        }
        let path = dir.join("bird.conf");
        std::fs::write(&path, conf).expect("write bird.conf");
        let socket = dir.join("bird.ctl");
        let args = [
            "bird",
            "-f",
            "-c",
            path.to_str().unwrap(),
            "-s",
            socket.to_str().unwrap(),
            "-P",
            dir.join("bird.pid").to_str().unwrap(),
        ]
        .map(str::to_string);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        lan.spawn_in(ns, &args, &dir.join("bird.log"));
        Bird {
            ns: ns.to_string(),
            socket,
            dir,
        }
    }

    pub fn birdc(&self, command: &str) -> String {
        let socket = self.socket.to_str().unwrap();
        let mut args = vec!["birdc", "-s", socket];
        args.extend(command.split_whitespace());
        stdout(&in_ns(&self.ns, &args))
    }

    /// `show route all`: each prefix with every path's BGP.next_hop and the first path's
    /// communities, large communities and local preference.
    pub fn rib(&self) -> Rib {
        let mut rib = Rib::new();
        let mut current: Option<String> = None;
        let mut first_path = true;
        for line in self.birdc("show route all").lines() {
            if !line.starts_with(char::is_whitespace) && line.contains('/') {
                let prefix = line
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                rib.entry(prefix.clone()).or_default();
                current = Some(prefix);
                first_path = true;
                continue;
            }
            let Some(held) = current.as_ref().and_then(|p| rib.get_mut(p)) else {
                continue;
            };
            let line = line.trim();
            if line.starts_with("unicast [") {
                first_path = false;
            }
            if let Some(hop) = line.strip_prefix("BGP.next_hop:") {
                held.next_hops.insert(hop.trim().to_string());
            } else if !first_path {
                continue;
            } else if let Some(c) = line.strip_prefix("BGP.community:") {
                // (65000,1) (65000,2)
                held.communities = c
                    .split_whitespace()
                    .map(|w| w.trim_matches(|c| c == '(' || c == ')').replace(',', ":"))
                    .collect();
            } else if let Some(c) = line.strip_prefix("BGP.large_community:") {
                // (64512, 1, 2)
                held.large_communities = c
                    .split(')')
                    .map(|w| w.trim().trim_start_matches('(').replace(", ", ":"))
                    .filter(|w| !w.is_empty())
                    .collect();
            } else if let Some(p) = line.strip_prefix("BGP.local_pref:") {
                held.local_pref = p.trim().parse().ok();
            }
        }
        rib
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("bird.log")).unwrap_or_default()
    }
}

pub struct Gobgp {
    ns: String,
    dir: PathBuf,
    afi: String,
}

impl Gobgp {
    /// gobgpd as AS `local_as`, passive towards each of `neighbors` in `remote_as`, with
    /// multiple paths on.
    pub fn start(
        lan: &mut Lan,
        ns: &str,
        local: &str,
        local_as: u32,
        neighbors: &[(&str, u32)],
        afi: &str,
    ) -> Gobgp {
        let dir = dir(lan, "gobgp");
        let mut conf = format!(
            "[global.config]\n  as = {local_as}\n  router-id = \"{local}\"\n  \
             local-address-list = [\"{local}\"]\n\
             [global.use-multiple-paths.config]\n  enabled = true\n"
        );
        for (address, remote_as) in neighbors {
            conf.push_str(&format!(
                "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{address}\"\n    \
                 peer-as = {remote_as}\n  [neighbors.transport.config]\n    passive-mode = true\n  \
                 [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      \
                 afi-safi-name = \"{afi}-unicast\"\n"
            ));
        }
        let path = dir.join("gobgpd.toml");
        std::fs::write(&path, conf).expect("write gobgpd.toml");
        let args = [
            "gobgpd",
            "-f",
            path.to_str().unwrap(),
            "-t",
            "toml",
            "--api-hosts",
            "127.0.0.1:50051",
        ];
        lan.spawn_in(ns, &args, &dir.join("gobgpd.log"));
        Gobgp {
            ns: ns.to_string(),
            dir,
            afi: afi.to_string(),
        }
    }

    /// How many prefixes GoBGP's global RIB holds (`gobgp global rib summary`).
    pub fn destinations(&self) -> u64 {
        let out = stdout(&in_ns(
            &self.ns,
            &[
                "gobgp", "-p", "50051", "global", "rib", "summary", "-a", &self.afi,
            ],
        ));
        // "Table ipv6-unicast\nDestination: 10000, Path: 10000"
        out.split("Destination: ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    }

    /// `gobgp global rib -j`: each prefix with every path's next hop and the first path's
    /// communities, large communities and local preference.
    pub fn rib(&self) -> Rib {
        let out = stdout(&in_ns(
            &self.ns,
            &[
                "gobgp",
                "-u",
                "127.0.0.1",
                "-p",
                "50051",
                "global",
                "rib",
                "-a",
                &self.afi,
                "-j",
            ],
        ));
        let table: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        let mut rib = Rib::new();
        for (prefix, paths) in table.as_object().into_iter().flatten() {
            let mut held = Held::default();
            for (i, path) in paths.as_array().into_iter().flatten().enumerate() {
                for attr in path["attrs"].as_array().into_iter().flatten() {
                    match attr["type"].as_u64() {
                        Some(3) => {
                            if let Some(hop) = attr["nexthop"].as_str() {
                                held.next_hops.insert(hop.to_string());
                            }
                        }
                        Some(8) if i == 0 => {
                            held.communities = attr["communities"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(Value::as_u64)
                                .map(|c| format!("{}:{}", c >> 16, c & 0xffff))
                                .collect();
                        }
                        Some(5) if i == 0 => {
                            held.local_pref = attr["value"].as_u64().map(|v| v as u32);
                        }
                        Some(32) if i == 0 => {
                            held.large_communities = attr["value"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                // GoBGP's `LargeCommunity` has no JSON tags.
                                .map(|c| {
                                    format!("{}:{}:{}", c["ASN"], c["LocalData1"], c["LocalData2"])
                                })
                                .collect();
                        }
                        _ => {}
                    }
                }
            }
            rib.insert(prefix.clone(), held);
        }
        rib
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gobgpd.log")).unwrap_or_default()
    }
}

// The static speakers' files and the RIB checks every BGP network test shares.

/// Writes node `i`'s static file: gossip with every node, `addresses` (YAML list entries, or
/// none) and the `bgp:` section's body.
pub fn write_file(lan: &Lan, i: usize, addresses: &str, bgp: &str) {
    let node = &lan.nodes[i];
    let seeds: Vec<String> = lan
        .nodes
        .iter()
        .map(|n| format!("{}:7946", n.ip4))
        .collect();
    let addresses = if addresses.trim().is_empty() {
        " []\n".to_string()
    } else {
        format!("\n{addresses}")
    };
    let text = format!(
        "node: {}\ngossip:\n  bind: {}:7946\n  seeds: [{}]\n  key-file: {}\naddresses:{addresses}\
         bgp:\n{bgp}",
        node.name,
        node.ip4,
        seeds.join(", "),
        lan.key_file().display()
    );
    let tmp = node.config.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write static file");
    std::fs::rename(&tmp, &node.config).expect("rename static file");
}

pub fn start_all(lan: &mut Lan, addresses: &str, bgp: &str) {
    for i in 0..lan.nodes.len() {
        write_file(lan, i, addresses, bgp);
        lan.start(i);
    }
}

pub fn logs(lan: &Lan) -> String {
    (0..lan.nodes.len())
        .map(|i| format!("--- {}\n{}", lan.nodes[i].name, lan.log(i)))
        .collect()
}

pub fn hops(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Waits until `rib()` holds every prefix of `want` with exactly those next hops; returns the
/// RIB, or fails with `context()`.
pub fn wait_rib(
    what: &str,
    rib: impl Fn() -> Rib,
    want: &[(&str, BTreeSet<String>)],
    timeout: Duration,
    context: impl Fn() -> String,
) -> Rib {
    let got = wait_for(timeout, || {
        let rib = rib();
        want.iter()
            .all(|(p, h)| rib.get(*p).is_some_and(|held| held.next_hops == *h))
            .then_some(rib)
    });
    got.unwrap_or_else(|| {
        panic!(
            "{what}: expected {want:?}\nlast RIB: {:#?}\n{}",
            rib(),
            context()
        )
    })
}
