//! What the client namespace sends besides ARP/NDP probes: malformed frames at the speakers and
//! HTTP requests to their metrics servers.

use super::{Lan, in_ns, stdout};

/// Python (stdlib only) that floods malformed ARP/NDP frames out of the client's eth0:
/// truncated and lying-length packets, bad operations, wrong hop limits, broken NDP options and
/// random garbage under both EtherTypes. Args: VIP4 VIP6 DST_MAC COUNT.
const JUNK_SENDER: &str = r#"
import random, socket, struct, sys
vip4, vip6, dst, count = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3].replace(':', '')), int(sys.argv[4])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('eth0', 0))
src = s.getsockname()[4]
bcast = b'\xff' * 6
ip4 = socket.inet_aton(vip4)
ip6 = socket.inet_pton(socket.AF_INET6, vip6)
me4 = socket.inet_aton('192.0.2.100')
me6 = socket.inet_pton(socket.AF_INET6, '2001:db8::100')
def eth(d, t): return d + src + struct.pack('!H', t)
def arp(hl=6, pl=4, op=1, sha=None, tip=ip4):
    return struct.pack('!HHBBH', 1, 0x0800, hl, pl, op) + (sha or src) + me4 + b'\0' * 6 + tip
def ns(hop=255, plen=None, opts=b'', target=ip6, icmp_type=135):
    body = struct.pack('!BBHI', icmp_type, 0, 0, 0) + target + opts
    grp = bytes.fromhex('ff0200000000000000000001ff') + target[13:]
    hdr = struct.pack('!IHBB', 0x60000000, len(body) if plen is None else plen, 58, hop) + me6 + grp
    return hdr + body
frames = [
    eth(bcast, 0x0806) + arp()[:10],
    eth(bcast, 0x0806) + arp(hl=8),
    eth(bcast, 0x0806) + arp(pl=16),
    eth(bcast, 0x0806) + arp(op=3),
    eth(bcast, 0x0806) + arp(op=0),
    eth(bcast, 0x0806) + arp(sha=bcast),
    eth(bcast, 0x0806) + arp(sha=b'\0' * 6),
    eth(dst, 0x0806) + arp()[:27],
    eth(bcast, 0x86dd) + ns(hop=64),
    eth(bcast, 0x86dd) + ns(plen=400),
    eth(bcast, 0x86dd) + ns(plen=3),
    eth(bcast, 0x86dd) + ns(opts=b'\x01\x00' + b'\0' * 6),
    eth(bcast, 0x86dd) + ns(opts=b'\x01\xff' + b'\0' * 6),
    eth(bcast, 0x86dd) + ns(opts=b'\x01\x01' + b'\xff' * 6),
    eth(bcast, 0x86dd) + ns()[:50],
    eth(dst, 0x86dd) + ns(icmp_type=135)[:61],
    eth(bcast, 0x86dd),
    eth(bcast, 0x0806),
]
rnd = random.Random(7)
sent = 0
for i in range(count):
    if i % 3 == 0:
        f = frames[i % len(frames)]
    else:
        f = eth(rnd.choice([bcast, dst]), rnd.choice([0x0806, 0x86dd])) + bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 120)))
        if len(f) > 20 and f[12:14] == b'\x86\xdd' and rnd.random() < 0.5:
            f = f[:20] + b'\x3a' + f[21:54] + b'\x87' + f[55:] if len(f) > 55 else f
    try:
        s.send(f[:1514])
        sent += 1
    except OSError:
        pass
print(sent)
"#;

impl Lan {
    /// Sends `count` malformed frames from the client (see `JUNK_SENDER`); returns how many left.
    pub fn send_junk(&self, vip4: &str, vip6: &str, dst_mac: &str, count: u32) -> u32 {
        let out = in_ns(
            &self.client_ns,
            &[
                "python3",
                "-c",
                JUNK_SENDER,
                vip4,
                vip6,
                dst_mac,
                &count.to_string(),
            ],
        );
        assert!(
            out.status.success(),
            "junk sender failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout(&out).trim().parse().unwrap_or(0)
    }
}

impl Lan {
    /// GET http://<node ip4>:7473<path> from the client; (status, body), status 0 if unreachable.
    pub fn http_get(&self, node: usize, path: &str) -> (u16, String) {
        const GET: &str = r#"
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=2)
    print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print(0)
"#;
        let url = format!("http://{}:7473{path}", self.nodes[node].ip4);
        let out = in_ns(&self.client_ns, &["python3", "-c", GET, &url]);
        let text = stdout(&out);
        let mut lines = text.splitn(2, '\n');
        let status = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        (status, lines.next().unwrap_or("").to_string())
    }

    /// The value of a Prometheus sample (`name{labels}`), read from node `node`'s /metrics.
    pub fn metric(&self, node: usize, sample: &str) -> Option<f64> {
        let (_, body) = self.http_get(node, "/metrics");
        body.lines()
            .find(|l| l.starts_with(sample) && l[sample.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }
}
