//! Captures the gratuitous announcements (gratuitous ARP and unsolicited neighbor
//! advertisements) a node sends, in the client namespace, with the kernel's receive timestamp
//! of each frame, so pacing is judged on when frames crossed the LAN, not on when Python read
//! them.

use std::path::PathBuf;
use std::time::Duration;

use super::{Lan, wait_for};

/// Python (stdlib only). Args: MAX_DURATION_S SRC_MAC EXPECTED READY_FILE. Writes READY_FILE
/// once bound, then prints `SECONDS.NANOS IP` for every announcement frame from SRC_MAC until
/// EXPECTED distinct IPs were seen (or the maximum passed), then `done`.
const CAPTURE: &str = r#"
import socket, struct, sys, time
duration, src, expected, ready = float(sys.argv[1]), bytes.fromhex(sys.argv[2].replace(':', '')), int(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(('eth0', 0))
s.setsockopt(socket.SOL_SOCKET, 33, 256 << 20)  # SO_RCVBUFFORCE: hold a whole burst
s.setsockopt(socket.SOL_SOCKET, 35, 1)  # SO_TIMESTAMPNS
open(ready, 'w').close()
seen = set()
out = []
end = time.monotonic() + duration
while len(seen) < expected and time.monotonic() < end:
    s.settimeout(max(0.01, end - time.monotonic()))
    try:
        f, anc, _, _ = s.recvmsg(256, 64)
    except socket.timeout:
        break
    if f[6:12] != src:
        continue
    ip = None
    if f[12:14] == b'\x08\x06' and len(f) >= 42 and f[28:32] == f[38:42]:
        ip = socket.inet_ntoa(f[28:32])
    elif f[12:14] == b'\x86\xdd' and len(f) >= 78 and f[20] == 58 and f[54] == 136:
        ip = socket.inet_ntop(socket.AF_INET6, f[62:78])
    if ip is None:
        continue
    ts = None
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == 35:
            sec, nsec = struct.unpack('qq', data[:16])
            ts = f"{sec}.{nsec:09d}"
    out.append(f"{ts or repr(time.time())} {ip}")
    seen.add(ip)
sys.stdout.write('\n'.join(out) + '\ndone\n')
"#;

/// One captured announcement frame: kernel receive time (seconds) and the announced IP.
#[derive(Debug, Clone, PartialEq)]
pub struct Announcement {
    pub at: f64,
    pub ip: String,
}

impl Lan {
    /// Starts capturing node `node`'s announcements in the client namespace until `expected`
    /// distinct IPs were announced (at most `max_seconds`); returns once the socket is bound.
    /// Read the result with [`Lan::captured`].
    pub fn start_capture(&mut self, node: usize, expected: usize, max_seconds: u32) -> PathBuf {
        let log = self.dir.path().join("capture.log");
        let ready = self.dir.path().join("capture.ready");
        let (duration, expected) = (max_seconds.to_string(), expected.to_string());
        let mac = self.nodes[node].mac.clone();
        let ready_arg = ready.to_string_lossy().into_owned();
        let ns = self.client_ns.clone();
        self.spawn_in(
            &ns,
            &[
                "python3", "-c", CAPTURE, &duration, &mac, &expected, &ready_arg,
            ],
            &log,
        );
        wait_for(Duration::from_secs(10), || ready.exists().then_some(()))
            .expect("the capture socket is bound");
        log
    }

    /// The captured frames once the capture has finished; none while it runs.
    pub fn captured(log: &std::path::Path) -> Option<Vec<Announcement>> {
        let text = std::fs::read_to_string(log).ok()?;
        if !text.lines().any(|l| l == "done") {
            return None;
        }
        Some(
            text.lines()
                .filter_map(|line| {
                    let (at, ip) = line.split_once(' ')?;
                    Some(Announcement {
                        at: at.parse().ok()?,
                        ip: ip.to_string(),
                    })
                })
                .collect(),
        )
    }
}
