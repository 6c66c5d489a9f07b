//! Failover measurement in the namespace LAN (root only): time from killing the owner of a VIP
//! to the first ARP reply from the new owner, with a client asking every 10 ms.
//!
//! ```text
//! cargo build --bin ferrolb && cargo run --example failover -- [TRIALS] [KILL|TERM|POWER|both]
//! ```
//!
//! KILL is SIGKILL with the owner's host up (its kernel answers gossip with ICMP port
//! unreachable); POWER takes the owner's link down, then SIGKILLs it, as a power loss looks to
//! the others (nothing answers); both is KILL then TERM.
//!
//! Prints every trial and the p50/p90/p99/max per signal. A reply counts when it answers the
//! client's probe (unicast to the client, target = client IP): gratuitous announcements are
//! reported separately, since they re-point clients without any probe.

#[path = "../tests/netns/mod.rs"]
mod netns;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use netns::{Lan, Vip, distinct, wait_for};

/// ARP prober (stdlib Python): a broadcast request for VIP every 10 ms; prints
/// "<unix ns> <probe|garp> <sender mac>" for every ARP reply or announcement about VIP.
const PROBER: &str = r#"
import select, socket, struct, sys, time
vip = socket.inet_aton(sys.argv[1]); me = socket.inet_aton('192.0.2.100')
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind(('eth0', 0x0806))
mac = s.getsockname()[4]
req = b'\xff' * 6 + mac + b'\x08\x06' + struct.pack('!HHBBH', 1, 0x0800, 6, 4, 1) + mac + me + b'\0' * 6 + vip
nxt = time.monotonic()
while True:
    now = time.monotonic()
    if now >= nxt:
        s.send(req); nxt = now + 0.010
    r, _, _ = select.select([s], [], [], max(0, nxt - time.monotonic()))
    if not r: continue
    f = s.recv(256)
    if len(f) < 42 or f[12:14] != b'\x08\x06': continue
    op = struct.unpack('!H', f[20:22])[0]
    sha, spa, tpa = f[22:28], f[28:32], f[38:42]
    if spa != vip or sha == mac: continue
    kind = 'probe' if op == 2 and tpa == me else 'garp'
    print(time.time_ns(), kind, sha.hex(':'), flush=True)
"#;

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

struct Trial {
    first_reply: Duration,
    first_garp: Option<Duration>,
}

fn trial(lan: &mut Lan, vip: &str, owner: usize, next: usize, signal: &str) -> Option<Trial> {
    let mut prober = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lan.client_ns,
            "python3",
            "-c",
            PROBER,
            vip,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let stdout = prober.stdout.take()?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Let the prober see the current owner before the kill.
    let owner_mac = lan.nodes[owner].mac.clone();
    let seen_owner = wait_for(Duration::from_secs(5), || {
        rx.try_iter()
            .any(|l| l.ends_with(&owner_mac) && l.contains("probe"))
            .then_some(())
    });
    let killed_at = unix_ns();
    if signal == "POWER" {
        lan.set_link(owner, false);
        lan.signal(owner, "KILL");
    } else {
        lan.signal(owner, signal);
    }
    let new_mac = lan.nodes[next].mac.clone();
    let mut first_garp = None;
    let mut first_reply = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while first_reply.is_none() && std::time::Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        let parts: Vec<&str> = line.split_whitespace().collect();
        let (Some(t), Some(kind), Some(mac)) = (parts.first(), parts.get(1), parts.get(2)) else {
            continue;
        };
        let Ok(t) = t.parse::<u128>() else { continue };
        if *mac != new_mac || t < killed_at {
            continue;
        }
        let after = Duration::from_nanos((t - killed_at) as u64);
        match *kind {
            "garp" if first_garp.is_none() => first_garp = Some(after),
            "probe" => first_reply = Some(after),
            _ => {}
        }
    }
    let _ = prober.kill();
    let _ = prober.wait();
    seen_owner?;
    Some(Trial {
        first_reply: first_reply?,
        first_garp,
    })
}

/// How a trial's stop is printed: SIGKILL, SIGTERM, or power loss.
fn label(signal: &str) -> String {
    if signal == "POWER" {
        "power loss".into()
    } else {
        format!("SIG{signal}")
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let trials: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let which = args.next().unwrap_or_else(|| "both".into());
    if !netns::environment_ready("failover measurement") {
        std::process::exit(2);
    }
    let binary = std::env::var_os("FERROLB_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("current exe");
            exe.parent()
                .and_then(|p| p.parent())
                .expect("target dir")
                .join("ferrolb")
        });
    let signals: Vec<&str> = match which.as_str() {
        "KILL" => vec!["KILL"],
        "TERM" => vec!["TERM"],
        "POWER" => vec!["POWER"],
        _ => vec!["KILL", "TERM"],
    };
    let mut lan = Lan::new(3, &binary);
    let vip = "192.0.2.250";
    lan.start_all(&[Vip {
        service: "bench/failover".into(),
        ips: vec![vip.into()],
    }]);
    let all: Vec<&str> = lan.nodes.iter().map(|n| n.name.as_str()).collect();
    let ranking = netns::ranking(vip, &all);
    let idx = |name: &str| lan.nodes.iter().position(|n| n.name == name).unwrap();
    let (owner, next) = (idx(&ranking[0]), idx(&ranking[1]));
    for signal in signals {
        let mut replies = Vec::new();
        let mut garps = Vec::new();
        for n in 0..trials {
            // Steady state: the owner answers alone.
            let steady = wait_for(Duration::from_secs(30), || {
                let macs = lan.arping(vip, 1);
                (distinct(&macs).len() == 1 && macs[0] == lan.nodes[owner].mac).then_some(())
            });
            if steady.is_none() {
                eprintln!("trial {n}: owner never settled; logs:\n{}", lan.log(owner));
                std::process::exit(1);
            }
            match trial(&mut lan, vip, owner, next, signal) {
                Some(t) => {
                    println!(
                        "{} trial {n:2}: first reply {:7.1} ms, first gratuitous {}",
                        label(signal),
                        t.first_reply.as_secs_f64() * 1e3,
                        t.first_garp
                            .map(|g| format!("{:7.1} ms", g.as_secs_f64() * 1e3))
                            .unwrap_or_else(|| "-".into())
                    );
                    replies.push(t.first_reply);
                    garps.extend(t.first_garp);
                }
                None => {
                    println!(
                        "{} trial {n:2}: no reply from the new owner within 10 s",
                        label(signal)
                    )
                }
            }
            if signal == "POWER" {
                lan.set_link(owner, true);
            }
            lan.start(owner);
        }
        for (what, mut v) in [("first reply", replies), ("first gratuitous", garps)] {
            if v.is_empty() {
                continue;
            }
            v.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            println!(
                "{} {what}: n={} p50={:.0} ms p90={:.0} ms p99={:.0} ms max={:.0} ms",
                label(signal),
                v.len(),
                ms(percentile(&v, 0.5)),
                ms(percentile(&v, 0.9)),
                ms(percentile(&v, 0.99)),
                ms(v[v.len() - 1])
            );
        }
    }
}
