//! Which network interfaces the speaker answers on.
//!
//! Interfaces are read from sysfs (`/sys/class/net`) rather than netlink: it needs no extra
//! dependency or `unsafe`, shows the network namespace the process runs in (`ip netns exec` and
//! host-network pods both mount a matching sysfs), and a full scan of a node's interfaces costs a
//! few dozen small reads, so the speaker simply rescans on a short period (see `RESCAN_PERIOD`)
//! instead of subscribing to link events. Link changes are rare; a second's delay before a new
//! interface starts answering is harmless, and an interface going down stops delivering frames on
//! its own.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::wire::Mac;

/// How often the speaker re-reads the interface list.
pub const RESCAN_PERIOD: Duration = Duration::from_secs(1);

/// Patterns excluded when the operator gives none: interfaces that container networking creates
/// on a node (pod veths, CNI bridges and tunnels), where answering for a LoadBalancer IP would at
/// best be useless and at worst attract traffic meant for the LAN.
pub const DEFAULT_EXCLUDES: &[&str] = &[
    // MetalLB's default list (its `ignoreInterfaces`): container, libvirt and kube-proxy devices.
    "docker*",
    "cni*",
    "veth*",
    "cali*",
    "flannel*",
    "cilium_*",
    "lxc*",
    "lxcbr*",
    "cbr*",
    "virbr*",
    "dummy*",
    "kube-ipvs*",
    "nodelocaldns*",
    "vxlan*",
    "tunl*",
    "weave*",
    // Common bridges and overlays beyond MetalLB's list: docker networks, kube-router,
    // OVN-Kubernetes, Geneve tunnels, Antrea.
    "br-*",
    "kube-bridge",
    "ovn-k8s-*",
    "genev_sys_*",
    "antrea-*",
];

// Interface flags from <linux/if.h>, as sysfs prints them in `flags`.
const IFF_UP: u32 = 0x1;
const IFF_BROADCAST: u32 = 0x2;
const IFF_LOOPBACK: u32 = 0x8;
const IFF_NOARP: u32 = 0x80;
const IFF_SLAVE: u32 = 0x800;
/// `ARPHRD_ETHER`: the only link type whose frames the codecs build.
const ARPHRD_ETHER: u32 = 1;

/// An interface the speaker may answer on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    pub mac: Mac,
}

/// What sysfs says about one interface, before the eligibility rules are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub name: String,
    pub index: u32,
    pub mac: Option<Mac>,
    pub flags: u32,
    pub link_type: u32,
    /// Enslaved to a bridge, bond or other master device.
    pub has_master: bool,
}

impl LinkInfo {
    /// Applies the speaker's interface rules (docs/user-guide.md): up, broadcast-capable, ARP-capable, Ethernet, not loopback, not
    /// enslaved, not excluded by name. Returns the interface when eligible.
    pub fn eligible(&self, excludes: &ExcludePatterns) -> Option<Interface> {
        let f = self.flags;
        let usable = f & IFF_UP != 0
            && f & IFF_BROADCAST != 0
            && f & (IFF_NOARP | IFF_LOOPBACK | IFF_SLAVE) == 0
            && self.link_type == ARPHRD_ETHER
            && !self.has_master
            && !excludes.matches(&self.name);
        match (usable, self.mac) {
            (true, Some(mac)) if mac != Mac::ZERO => Some(Interface {
                name: self.name.clone(),
                index: self.index,
                mac,
            }),
            _ => None,
        }
    }
}

/// Interface-name glob patterns (`*` any run, `?` one character) that the speaker never uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExcludePatterns(Vec<String>);

impl ExcludePatterns {
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(patterns: I) -> Self {
        Self(
            patterns
                .into_iter()
                .map(Into::into)
                .filter(|p: &String| !p.is_empty())
                .collect(),
        )
    }

    /// Parses the comma-separated form of `--exclude-interfaces`.
    pub fn parse_list(list: &str) -> Self {
        Self::new(list.split(',').map(str::trim))
    }

    pub fn matches(&self, name: &str) -> bool {
        self.0
            .iter()
            .any(|p| glob_match(p.as_bytes(), name.as_bytes()))
    }
}

/// Iterative glob matcher with single-star backtracking: linear in practice, no recursion.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

fn parse_number(text: &str) -> Option<u32> {
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Reads every interface under `root` (normally `/sys/class/net`). Interfaces that vanish or
/// whose attributes cannot be parsed mid-scan are skipped: the next scan sees the settled state.
pub fn read_links(root: &Path) -> io::Result<Vec<LinkInfo>> {
    let mut links = Vec::new();
    for entry in fs::read_dir(root)? {
        let Ok(entry) = entry else { continue };
        let dir: PathBuf = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let read = |attr: &str| fs::read_to_string(dir.join(attr)).ok();
        let (Some(index), Some(flags), Some(link_type)) = (
            read("ifindex").as_deref().and_then(parse_number),
            read("flags").as_deref().and_then(parse_number),
            read("type").as_deref().and_then(parse_number),
        ) else {
            continue;
        };
        links.push(LinkInfo {
            name,
            index,
            mac: read("address").and_then(|text| text.trim().parse().ok()),
            flags,
            link_type,
            has_master: dir.join("master").exists() || dir.join("brport").exists(),
        });
    }
    links.sort_by_key(|l| l.index);
    Ok(links)
}

/// The eligible interfaces of this network namespace.
pub fn discover(excludes: &ExcludePatterns) -> io::Result<Vec<Interface>> {
    Ok(read_links(Path::new("/sys/class/net"))?
        .iter()
        .filter_map(|l| l.eligible(excludes))
        .collect())
}

/// Whether interface `name` has its link (`carrier` in sysfs): `Some(false)` without carrier or
/// when the interface is administratively down (the kernel then refuses the read), `None` when
/// it cannot be told (the interface is gone, or the attribute is unreadable otherwise).
pub fn carrier(name: &str) -> Option<bool> {
    let dir = Path::new("/sys/class/net").join(name);
    match fs::read_to_string(dir.join("carrier")) {
        Ok(text) => Some(text.trim() == "1"),
        Err(e) if e.raw_os_error() == Some(22) => Some(false), // EINVAL: down
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, flags: u32) -> LinkInfo {
        LinkInfo {
            name: name.into(),
            index: 2,
            mac: Some(Mac([2, 0, 0, 0, 0, 1])),
            flags,
            link_type: ARPHRD_ETHER,
            has_master: false,
        }
    }

    const UP_BCAST: u32 = 0x1003; // UP | BROADCAST | MULTICAST

    #[test]
    fn up_broadcast_ethernet_is_eligible() {
        let got = link("eth0", UP_BCAST).eligible(&ExcludePatterns::default());
        assert_eq!(got.map(|i| i.name), Some("eth0".to_string()));
    }

    #[test]
    fn each_rule_excludes() {
        let none = ExcludePatterns::default();
        assert!(
            link("eth0", UP_BCAST & !IFF_UP).eligible(&none).is_none(),
            "down"
        );
        assert!(
            link("eth0", IFF_UP).eligible(&none).is_none(),
            "no broadcast"
        );
        assert!(
            link("eth0", UP_BCAST | IFF_NOARP).eligible(&none).is_none(),
            "NOARP"
        );
        assert!(
            link("bond0s", UP_BCAST | IFF_SLAVE)
                .eligible(&none)
                .is_none(),
            "bond slave"
        );
        assert!(link("lo", 0x9).eligible(&none).is_none(), "loopback");
        let mut enslaved = link("eth1", UP_BCAST);
        enslaved.has_master = true;
        assert!(enslaved.eligible(&none).is_none(), "bridge port");
        let mut tun = link("wg0", UP_BCAST);
        tun.link_type = 65534;
        assert!(tun.eligible(&none).is_none(), "not ethernet");
        let mut nomac = link("eth2", UP_BCAST);
        nomac.mac = Some(Mac::ZERO);
        assert!(nomac.eligible(&none).is_none(), "zero mac");
        let ex = ExcludePatterns::parse_list("veth*, docker0");
        assert!(
            link("veth12ab", UP_BCAST).eligible(&ex).is_none(),
            "excluded"
        );
        assert!(
            link("docker0", UP_BCAST).eligible(&ex).is_none(),
            "excluded"
        );
        assert!(link("eth0", UP_BCAST).eligible(&ex).is_some());
    }

    #[test]
    fn glob_matching() {
        assert!(glob_match(b"veth*", b"veth"));
        assert!(glob_match(b"veth*", b"veth0abc"));
        assert!(!glob_match(b"veth*", b"eth0"));
        assert!(glob_match(b"*0", b"eth0"));
        assert!(glob_match(b"e?h*", b"eth10"));
        assert!(glob_match(b"a*b*c", b"axxbyybzc"));
        assert!(!glob_match(b"a*b*c", b"axxbyyb"));
        assert!(glob_match(b"*", b""));
        assert!(!glob_match(b"eth0", b"eth01"));
    }

    #[test]
    fn number_parsing() {
        assert_eq!(parse_number("0x1003\n"), Some(0x1003));
        assert_eq!(parse_number("7\n"), Some(7));
        assert_eq!(parse_number("x"), None);
    }

    #[test]
    fn reads_a_sysfs_tree() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |name: &str, idx: &str, flags: &str, master: bool| {
            let d = dir.path().join(name);
            fs::create_dir(&d).unwrap();
            fs::write(d.join("ifindex"), idx).unwrap();
            fs::write(d.join("flags"), flags).unwrap();
            fs::write(d.join("type"), "1\n").unwrap();
            fs::write(d.join("address"), "02:00:00:00:00:0A\n").unwrap();
            if master {
                fs::create_dir(d.join("master")).unwrap();
            }
        };
        mk("eth0", "3\n", "0x1003\n", false);
        mk("eth1", "2\n", "0x1003\n", true);
        mk("broken", "x\n", "0x1003\n", false);
        let links = read_links(dir.path()).unwrap();
        assert_eq!(
            links.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            ["eth1", "eth0"]
        );
        let eligible: Vec<_> = links
            .iter()
            .filter_map(|l| l.eligible(&ExcludePatterns::default()))
            .collect();
        assert_eq!(eligible.len(), 1);
        assert_eq!(eligible[0].index, 3);
        // sysfs ends the address with a newline; the shared MAC parser reads it all the same.
        assert_eq!(eligible[0].mac, Mac([2, 0, 0, 0, 0, 10]));
    }
}
