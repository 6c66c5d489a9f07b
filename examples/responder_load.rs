//! Responder throughput, reply latency and memory with 10k owned IPs, through real sockets in
//! the namespace LAN (root only).
//!
//! ```text
//! cargo build --release --bin ferrolb --example responder_load
//! FERROLB_BIN=target/release/ferrolb target/release/examples/responder_load
//! ```
//!
//! One speaker (a cluster of one, so it owns everything) announces 10 000 IPs: 608 IPv4 (all
//! the documentation ranges allow) and 9 392 IPv6. It is pinned to CPU 0 and the load generator
//! to CPU 1. The generator, re-executed inside the client namespace, sends broadcast ARP
//! requests for the IPv4 VIPs (a) as fast as it can for 3 s, counting replies, and (b) at a fixed
//! rate, timing each request to its reply. RSS is read from /proc before and after the load, and
//! after ten scrapes of /metrics. Per phase, the speaker's CPU time and run-queue wait (time it
//! was runnable but its CPU was busy with another task) come from /proc/PID/task/*/schedstat.

#[path = "../tests/netns/mod.rs"]
mod netns;

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferrolb::layer2::arp::{ArpOperation, ArpRepr};
use ferrolb::layer2::iface::{self, ExcludePatterns};
use ferrolb::layer2::socket::PacketSocket;
use ferrolb::layer2::wire::Mac;
use netns::{Lan, Vip, wait_for};

fn v4_vips() -> Vec<Ipv4Addr> {
    let mut v = Vec::new();
    for i in 150..250u8 {
        v.push(Ipv4Addr::new(192, 0, 2, i));
    }
    for i in 1..255u8 {
        v.push(Ipv4Addr::new(198, 51, 100, i));
        v.push(Ipv4Addr::new(203, 0, 113, i));
    }
    v
}

fn vm_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Scheduler statistics summed over every thread of `pid`: (on-CPU ns, run-queue wait ns,
/// context switches). The wait is time the speaker was runnable but another task had its CPU,
/// which tells a slow speaker from a busy machine.
fn sched_totals(pid: u32) -> (u64, u64, u64) {
    let mut totals = (0, 0, 0);
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return totals;
    };
    for task in tasks.flatten() {
        let path = task.path();
        if let Ok(stat) = std::fs::read_to_string(path.join("schedstat")) {
            let f: Vec<u64> = stat
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            totals.0 += f.first().copied().unwrap_or(0);
            totals.1 += f.get(1).copied().unwrap_or(0);
        }
        if let Ok(status) = std::fs::read_to_string(path.join("status")) {
            totals.2 += status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    totals
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("blast") {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(blast(&args[2], &args[3]));
        return;
    }
    if !netns::environment_ready("responder load") {
        std::process::exit(2);
    }
    let binary = std::env::var_os("FERROLB_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("exe");
            exe.parent()
                .and_then(|p| p.parent())
                .expect("dir")
                .join("ferrolb")
        });
    let lan = Lan::new(1, &binary);
    let v4 = v4_vips();
    let mut vips: Vec<Vip> = v4
        .iter()
        .map(|ip| Vip {
            service: format!("load/{ip}"),
            ips: vec![ip.to_string()],
        })
        .collect();
    let v6_count = 10_000 - vips.len();
    for i in 0..v6_count {
        let ip = Ipv6Addr::from(0x2001_0db8_0100_0000_0000_0000_0000_0000u128 + 1 + i as u128);
        vips.push(Vip {
            service: format!("load/{ip}"),
            ips: vec![ip.to_string()],
        });
    }
    lan.write_config(0, &vips, &lan.key_file());
    let mut speaker = Command::new("ip")
        .args(["netns", "exec", &lan.nodes[0].ns, "taskset", "-c", "0"])
        .arg(&binary)
        .args(["speaker", "--static"])
        .arg(&lan.nodes[0].config)
        .args(["--exclude-interfaces", ""])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("speaker");
    let pid = speaker.id();
    let owner_mac = lan.nodes[0].mac.clone();
    let probe = v4[v4.len() - 1].to_string();
    let answered = wait_for(Duration::from_secs(60), || {
        lan.arping(&probe, 1)
            .first()
            .filter(|m| **m == owner_mac)
            .map(|_| ())
    });
    assert!(answered.is_some(), "speaker never answered for {probe}");
    // Let the announcement backoff (4 s) finish before measuring memory at rest.
    std::thread::sleep(Duration::from_secs(6));
    let rss_idle = vm_rss_kib(pid);
    println!(
        "owned IPs: {} ({} IPv4, {} IPv6)",
        vips.len(),
        v4.len(),
        v6_count
    );
    println!(
        "speaker RSS with 10k owned IPs, idle: {:.1} MiB",
        rss_idle as f64 / 1024.0
    );
    let me = std::env::current_exe().expect("exe");
    for (mode, label) in [("flood", "max rate, 3 s"), ("10000", "10k req/s, 3 s")] {
        let before = sched_totals(pid);
        let load = load_average();
        let out = Command::new("ip")
            .args(["netns", "exec", &lan.client_ns, "taskset", "-c", "1"])
            .arg(&me)
            .args(["blast", mode, &owner_mac])
            .output()
            .expect("blast");
        println!(
            "--- {label}\n{}",
            String::from_utf8_lossy(&out.stdout).trim_end()
        );
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        }
        let after = sched_totals(pid);
        println!(
            "speaker: on CPU {} ms, runnable but waiting for CPU 0 {} ms, {} context switches; load average before: {load}",
            (after.0 - before.0) / 1_000_000,
            (after.1 - before.1) / 1_000_000,
            after.2 - before.2,
        );
    }
    let rss_after = vm_rss_kib(pid);
    println!(
        "speaker RSS after load: {:.1} MiB",
        rss_after as f64 / 1024.0
    );
    // Prometheus scrapes every 15-60 s; what do scrapes of the ~20 000 per-IP series leave behind?
    let mut series = 0;
    for _ in 0..10 {
        let (status, body) = lan.http_get(0, "/metrics");
        assert_eq!(status, 200, "scraping the speaker's /metrics failed");
        series = body.lines().filter(|l| !l.starts_with('#')).count();
    }
    println!(
        "speaker RSS after 10 scrapes of /metrics ({series} series): {:.1} MiB",
        vm_rss_kib(pid) as f64 / 1024.0
    );
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = speaker.wait();
}

/// Runs inside the client namespace: sends ARP requests for the VIPs and counts replies.
async fn blast(mode: &str, owner: &str) {
    let eth0 = iface::discover(&ExcludePatterns::default())
        .expect("interfaces")
        .into_iter()
        .find(|i| i.name == "eth0")
        .expect("eth0");
    let mac = eth0.mac;
    let owner: Mac = owner.parse().expect("owner mac");
    let socket = Arc::new(PacketSocket::open(eth0.index).expect("packet socket"));
    let vips = v4_vips();
    let me = Ipv4Addr::new(192, 0, 2, 100);
    let frames: Vec<Vec<u8>> = vips
        .iter()
        .map(|ip| {
            ArpRepr {
                eth_dst: Mac::BROADCAST,
                eth_src: mac,
                operation: ArpOperation::Request,
                sender_mac: mac,
                sender_ip: me,
                target_mac: Mac::ZERO,
                target_ip: *ip,
            }
            .to_vec()
        })
        .collect();
    let index: HashMap<Ipv4Addr, usize> = vips.iter().enumerate().map(|(i, ip)| (*ip, i)).collect();
    let sent_at: Arc<Vec<AtomicU64>> =
        Arc::new((0..vips.len()).map(|_| AtomicU64::new(0)).collect());
    let epoch = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let rx = {
        let (socket, received, latencies, sent_at) = (
            socket.clone(),
            received.clone(),
            latencies.clone(),
            sent_at.clone(),
        );
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1514];
            loop {
                let Ok(n) = socket.recv(&mut buf).await else {
                    return;
                };
                let Ok(reply) = ArpRepr::parse(&buf[..n]) else {
                    continue;
                };
                if reply.operation != ArpOperation::Reply
                    || reply.eth_src != owner
                    || reply.target_ip != me
                {
                    continue;
                }
                received.fetch_add(1, Ordering::Relaxed);
                if let Some(&i) = index.get(&reply.sender_ip) {
                    let sent = sent_at[i].load(Ordering::Relaxed);
                    let now = epoch.elapsed().as_nanos() as u64;
                    if sent > 0 && now > sent {
                        latencies.lock().unwrap().push(now - sent);
                    }
                }
            }
        })
    };
    let me_before = sched_totals(std::process::id());
    let duration = Duration::from_secs(3);
    let start = Instant::now();
    let mut sent = 0u64;
    let rate: Option<u64> = mode.parse().ok();
    while start.elapsed() < duration {
        let i = (sent as usize) % frames.len();
        if let Some(rate) = rate {
            let due = start + Duration::from_nanos(sent * 1_000_000_000 / rate);
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
            sent_at[i].store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        if socket.send(&frames[i]).await.is_ok() {
            sent += 1;
        }
        if rate.is_none() && sent.is_multiple_of(64) {
            tokio::task::yield_now().await;
        }
    }
    let elapsed = start.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    rx.abort();
    let me_after = sched_totals(std::process::id());
    println!(
        "generator: on CPU {} ms, runnable but waiting for CPU 1 {} ms",
        (me_after.0 - me_before.0) / 1_000_000,
        (me_after.1 - me_before.1) / 1_000_000,
    );
    let got = received.load(Ordering::Relaxed);
    println!(
        "requests sent: {sent} ({:.0}/s); replies received: {got} ({:.0}/s, {:.1}% answered)",
        sent as f64 / elapsed.as_secs_f64(),
        got as f64 / elapsed.as_secs_f64(),
        100.0 * got as f64 / sent.max(1) as f64
    );
    let mut lat = latencies.lock().unwrap().clone();
    if rate.is_some() && !lat.is_empty() {
        lat.sort_unstable();
        let p = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize] as f64 / 1e3;
        println!(
            "reply latency (request sent -> reply received, client side): p50 {:.0} us, p99 {:.0} us, max {:.0} us (n={})",
            p(0.5),
            p(0.99),
            lat[lat.len() - 1] as f64 / 1e3,
            lat.len()
        );
    }
}
