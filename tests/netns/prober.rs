//! A background ARP prober in the client namespace: one broadcast request for each VIP every
//! 10 ms, every reply attributed to the request slot it arrived in (LAN round trips are far
//! below 10 ms), so a slot answered by two MACs is two answerers for one request. Only replies
//! to the prober count (target address the prober's): a new owner's gratuitous announcement is
//! no answer to a request, and counting it made a clean hand-over inside one slot (the old
//! owner answers the slot's request, lets go, the new one announces) look like two answerers.

use std::path::PathBuf;

use super::Lan;

/// Python (stdlib only). Args: MAX_DURATION_S STOP_FILE INTERVAL_S VIP... Runs until STOP_FILE
/// exists (or the maximum has passed, so it always ends). Prints one line per VIP at the end:
/// `VIP probes=N unanswered=N double=N longest_double=N longest_unanswered=N macs=a,b,...
/// moves=N` (moves: times a lone answer came from another MAC than the previous lone answer).
const PROBER: &str = r#"
import os, socket, struct, sys, time
duration, stop, interval, vips = float(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind(('eth0', 0))
src = s.getsockname()[4]
me4 = socket.inet_aton('192.0.2.100')
targets = [socket.inet_aton(v) for v in vips]
def request(tip):
    return b'\xff' * 6 + src + b'\x08\x06' + struct.pack('!HHBBH', 1, 0x0800, 6, 4, 1) + src + me4 + b'\0' * 6 + tip
stats = {v: [0, 0, 0, set(), 0, 0, 0, 0, None, 0] for v in vips}
end = time.monotonic() + duration
while time.monotonic() < end and not os.path.exists(stop):
    slot_end = time.monotonic() + interval
    seen = {v: set() for v in vips}
    for t in targets:
        s.send(request(t))
    while True:
        left = slot_end - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            f = s.recv(128)
        except socket.timeout:
            break
        if len(f) < 42 or f[12:14] != b'\x08\x06' or f[20:22] != b'\x00\x02':
            continue
        spa = socket.inet_ntoa(f[28:32])
        if f[38:42] != me4:
            continue
        if spa in seen:
            seen[spa].add(f[22:28].hex(':'))
    for v in vips:
        st = stats[v]
        st[0] += 1
        if not seen[v]:
            st[1] += 1
            st[6] += 1
            st[7] = max(st[7], st[6])
        else:
            st[6] = 0
        if len(seen[v]) > 1:
            st[2] += 1
            st[4] += 1
            st[5] = max(st[5], st[4])
        else:
            st[4] = 0
        st[3] |= seen[v]
        if len(seen[v]) == 1:
            (m,) = seen[v]
            if st[8] is not None and st[8] != m:
                st[9] += 1
            st[8] = m
for v in vips:
    st = stats[v]
    print(f"{v} probes={st[0]} unanswered={st[1]} double={st[2]} longest_double={st[5]} longest_unanswered={st[7]} macs={','.join(sorted(st[3]))} moves={st[9]}", flush=True)
"#;

/// One VIP's tally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTally {
    pub vip: String,
    pub probes: u64,
    pub unanswered: u64,
    /// Request slots answered by two or more MACs.
    pub double: u64,
    /// The longest run of consecutive such slots.
    pub longest_double: u64,
    /// The longest run of consecutive request slots nobody answered.
    pub longest_unanswered: u64,
    /// Every MAC that answered, sorted.
    pub macs: Vec<String>,
    /// How many times a slot answered by one MAC was answered by another than the last such
    /// slot: the address moved.
    pub moves: u64,
}

impl Lan {
    /// Starts probing `vips` every 10 ms until [`Lan::stop_prober`] (or `max_seconds`, so it
    /// always stops by itself); read the result with [`Lan::probe_results`].
    pub fn start_prober(&mut self, vips: &[&str], max_seconds: u32) -> PathBuf {
        let ns = self.client_ns.clone();
        self.start_prober_in(&ns, vips, max_seconds)
    }

    /// [`Lan::start_prober`] from namespace `ns`'s eth0 (e.g. the second LAN's client).
    pub fn start_prober_in(&mut self, ns: &str, vips: &[&str], max_seconds: u32) -> PathBuf {
        let log = self.dir.path().join("prober.log");
        let stop = self.dir.path().join("prober.stop");
        let duration = max_seconds.to_string();
        let stop = stop.to_string_lossy().into_owned();
        let mut args = vec![
            "python3",
            "-c",
            PROBER,
            duration.as_str(),
            stop.as_str(),
            "0.01",
        ];
        args.extend_from_slice(vips);
        self.spawn_in(ns, &args, &log);
        log
    }

    /// Tells the prober to finish and print its tallies.
    pub fn stop_prober(&self) {
        std::fs::write(self.dir.path().join("prober.stop"), "").expect("stop file");
    }

    /// Checks the prober at `log` is still running (it ran through what was measured), stops
    /// it and returns its tallies, one per VIP (`vips` of them; 30 s at most).
    pub fn finish_prober(&self, log: &std::path::Path, vips: usize) -> Vec<ProbeTally> {
        assert!(
            Self::probe_results(log).is_empty(),
            "the prober ended before the measurement did: {:?}",
            Self::probe_results(log)
        );
        self.stop_prober();
        super::wait_for(std::time::Duration::from_secs(30), || {
            let tallies = Self::probe_results(log);
            (tallies.len() == vips).then_some(tallies)
        })
        .expect("the prober prints its tallies when it stops")
    }

    /// The prober's tallies, once it has finished (empty until then).
    pub fn probe_results(log: &std::path::Path) -> Vec<ProbeTally> {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                let (vip, rest) = words.split_first()?;
                let value = |i: usize, name: &str| rest.get(i)?.strip_prefix(name);
                let count = |i: usize, name: &str| -> Option<u64> { value(i, name)?.parse().ok() };
                Some(ProbeTally {
                    vip: vip.to_string(),
                    probes: count(0, "probes=")?,
                    unanswered: count(1, "unanswered=")?,
                    double: count(2, "double=")?,
                    longest_double: count(3, "longest_double=")?,
                    longest_unanswered: count(4, "longest_unanswered=")?,
                    macs: value(5, "macs=")?
                        .split(',')
                        .filter(|m| !m.is_empty())
                        .map(str::to_string)
                        .collect(),
                    moves: count(6, "moves=")?,
                })
            })
            .collect()
    }
}
