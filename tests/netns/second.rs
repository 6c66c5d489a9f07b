//! A second LAN for the [`super::Lan`]: bridge `br1` in the bridge namespace, an `eth1` in
//! every node (198.51.100.0/24) and a second client on it, so tests can tell which interface a
//! node answers on.
//!
//! ```text
//!   br1 ── w1 ── eth1 node-a 198.51.100.11
//!       ── w2 ── eth1 node-b 198.51.100.12
//!       ── w3 ── eth1 node-c 198.51.100.13
//!       ── w9 ── eth0 <p>-c2 client 198.51.100.100
//! ```

use super::{Lan, in_ns, run, stdout};

pub struct SecondLan {
    pub client_ns: String,
    /// eth1's MAC of each node, by node index.
    pub macs: Vec<String>,
}

fn mac_of(ns: &str, dev: &str) -> String {
    let out = stdout(&run("ip", &["-n", ns, "-br", "link", "show", dev]));
    out.split_whitespace()
        .nth(2)
        .expect("mac in `ip -br link` output")
        .to_string()
}

fn plug(br_ns: &str, port: &str, ns: &str, dev: &str, ip4: &str) {
    run(
        "ip",
        &[
            "-n", br_ns, "link", "add", port, "type", "veth", "peer", "name", dev, "netns", ns,
        ],
    );
    run(
        "ip",
        &["-n", br_ns, "link", "set", port, "master", "br1", "up"],
    );
    run(
        "ip",
        &["-n", ns, "addr", "add", &format!("{ip4}/24"), "dev", dev],
    );
    run("ip", &["-n", ns, "link", "set", dev, "up"]);
}

impl Lan {
    /// Adds the second LAN; call before starting the speakers.
    pub fn add_second_lan(&mut self) -> SecondLan {
        let br = self.bridge_ns.clone();
        run("ip", &["-n", &br, "link", "add", "br1", "type", "bridge"]);
        run(
            "ip",
            &[
                "-n",
                &br,
                "link",
                "set",
                "br1",
                "type",
                "bridge",
                "forward_delay",
                "0",
            ],
        );
        run("ip", &["-n", &br, "link", "set", "br1", "up"]);
        let mut macs = Vec::new();
        for i in 0..self.nodes.len() {
            let ns = self.nodes[i].ns.clone();
            let ip4 = format!("198.51.100.{}", 11 + i);
            plug(&br, &format!("w{}", i + 1), &ns, "eth1", &ip4);
            macs.push(mac_of(&ns, "eth1").to_ascii_lowercase());
        }
        let client_ns = format!("{}-c2", self.prefix);
        self.add_ns(&client_ns);
        plug(&br, "w9", &client_ns, "eth0", "198.51.100.100");
        SecondLan { client_ns, macs }
    }

    /// Takes node `i`'s second-LAN link down or up from the bridge side: the node's eth1 loses
    /// (or regains) carrier while it stays administratively up, as when a cable or switch port
    /// dies.
    pub fn set_second_link(&self, i: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        let port = format!("w{}", i + 1);
        run("ip", &["-n", &self.bridge_ns, "link", "set", &port, state]);
    }

    /// Broadcast ARP requests for `ip` from namespace `ns`'s eth0: the MAC of every reply.
    pub fn arping_from(&self, ns: &str, ip: &str, count: u32) -> Vec<String> {
        let out = in_ns(
            ns,
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
}
