//! Link faults injected into a node's namespace.

use super::{Lan, run, stdout};

impl Lan {
    /// Deletes node `i`'s eth0 (and its bridge port) and creates it again with the same name and
    /// addresses, as a NIC driver reload or a recreated bond would. The new interface has a new
    /// index and a new MAC, which becomes the node's `mac`.
    pub fn recreate_link(&mut self, i: usize) {
        let (ns, ip4, ip6) = {
            let n = &self.nodes[i];
            (n.ns.clone(), n.ip4.clone(), n.ip6.clone())
        };
        let port = format!("v{}", i + 1);
        let br = self.bridge_ns.clone();
        run("ip", &["-n", &ns, "link", "del", "eth0"]);
        run(
            "ip",
            &[
                "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ],
        );
        run(
            "ip",
            &["-n", &br, "link", "set", &port, "master", "br0", "up"],
        );
        run(
            "ip",
            &[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ip4}/24"),
                "dev",
                "eth0",
            ],
        );
        run(
            "ip",
            &[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ip6}/64"),
                "dev",
                "eth0",
                "nodad",
            ],
        );
        run("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
        let out = stdout(&run("ip", &["-n", &ns, "-br", "link", "show", "eth0"]));
        if let Some(mac) = out.split_whitespace().nth(2) {
            self.nodes[i].mac = mac.to_ascii_lowercase();
        }
    }
}
