//! Speakers at scale, measured by hand (`#[ignore]`d; it prints figures and asserts no timing):
//! three real `ferrolb speaker`s in Kubernetes mode, gossip on, against a real kube-apiserver +
//! etcd in a namespace of the test LAN, holding thousands of IPv6 LoadBalancer Services.
//!
//! 1. Creates `FERROLB_SCALE_SERVICES` (6000) Services with their EXTERNAL-IPs and a ready
//!    EndpointSlice each, and waits until a prober in the client namespace sees every IP
//!    answered by exactly one node (about a third each).
//! 2. `FERROLB_SCALE_TRIALS` (3) times: SIGKILLs the speaker owning the most IPs and measures, per
//!    IP it held, the time from the kill until a solicitation for it is first answered by
//!    another node; then restarts the killed speaker and waits until it holds its IPs again.
//! 3. Grows the cluster to `FERROLB_SCALE_TOTAL` (10 000) Services and reads every speaker's
//!    memory once all are answered and the speakers are idle.
//!
//! The prober solicits `FERROLB_SCALE_PROBE_RATE` (20 000) IPs per second, so a cycle over the
//! killed node's IPs lasts count / rate; its measured cycle time is printed, and bounds the
//! resolution. After a kill an IP is no longer solicited once another node answered for it, so
//! the cycle shrinks to the IPs still waiting. The speaker binary is `FERROLB_E2E_BIN` (see
//! BENCHMARKS.md for the command with a release build), else the debug build cargo made for
//! this test. The prober is this test binary: build it optimized (`--profile bench`, as
//! BENCHMARKS.md does) for it to keep its rate.

mod e2e;
mod netns;
mod scale;
#[path = "e2e/speaker_lan.rs"]
mod speaker_lan;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;
use std::time::Duration;

use e2e::process::memory;
use scale::cluster::{ScaleCluster, vip};
use scale::prober::{Answer, CHILD_ENV, Pace, Prober, child_main, unix_ns};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn summary(sorted: &[Duration]) -> String {
    if sorted.is_empty() {
        return "none".to_string();
    }
    let ms = |p: f64| percentile(sorted, p).as_secs_f64() * 1000.0;
    format!(
        "min {:.0} ms  p50 {:.0} ms  p90 {:.0} ms  p99 {:.0} ms  max {:.0} ms",
        ms(0.0),
        ms(0.50),
        ms(0.90),
        ms(0.99),
        ms(1.0)
    )
}

/// Re-executed by [`Prober::start`] inside the client namespace; does nothing when run directly.
#[test]
#[ignore = "the prober of scale_failover_and_speaker_memory, which runs it in a namespace"]
fn scale_prober_child() {
    if let Some(job) = std::env::var_os(CHILD_ENV) {
        child_main(std::path::Path::new(&job));
    }
}

/// Probes `ips` until every one is answered by exactly one node, in a fresh run of three cycles
/// each time (so what it reports is who answers now, not earlier); returns each IP's node, or
/// what the last survey saw when that did not happen within `patience`.
fn survey(
    cluster: &ScaleCluster,
    ips: &[Ipv6Addr],
    rate: u32,
    patience: Duration,
) -> Result<Vec<usize>, String> {
    let deadline = std::time::Instant::now() + patience;
    let dir = cluster.lan.dir.path().to_path_buf();
    loop {
        let pace = Pace {
            rate,
            cycles: 3,
            max_secs: 60,
            victim: None,
        };
        let prober = Prober::start(&cluster.lan.client_ns, &dir, "survey", ips, &pace).wait_done();
        let mut macs: BTreeMap<Ipv6Addr, BTreeSet<&str>> = BTreeMap::new();
        for answer in prober.answers.iter().filter(|a| a.solicited) {
            macs.entry(answer.ip).or_default().insert(&answer.mac);
        }
        let unanswered = ips.iter().filter(|ip| !macs.contains_key(ip)).count();
        let doubled = macs.values().filter(|m| m.len() > 1).count();
        if unanswered == 0 && doubled == 0 {
            return Ok(ips
                .iter()
                .map(|ip| {
                    let mac = macs[ip].first().expect("answered");
                    cluster.lan.node_by_mac(mac).expect("a speaker's MAC")
                })
                .collect());
        }
        let seen = format!(
            "{unanswered} of {} IPs unanswered, {doubled} answered by two nodes",
            ips.len()
        );
        eprintln!("survey: {seen} (cycles {:?})", prober.cycles);
        if std::time::Instant::now() >= deadline {
            return Err(format!("not settled after {patience:?}: {seen}"));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn print_memory(cluster: &ScaleCluster, services: usize, when: &str) {
    for i in 0..cluster.lan.nodes.len() {
        let name = &cluster.lan.nodes[i].name;
        match cluster.speaker_pid(i).and_then(memory) {
            Some(m) => println!("FIGURES {services} Services, {when}: speaker {name} {m}"),
            None => println!("FIGURES {services} Services, {when}: speaker {name} not running"),
        }
    }
    println!("FIGURES (load average {})", load_average());
    println!(
        "FIGURES gossip \"we were declared down\" so far per speaker: {:?}",
        declared_down(cluster)
    );
}

/// How often each speaker has logged being declared down by the others (false suspicion when
/// it was running all along).
fn declared_down(cluster: &ScaleCluster) -> Vec<usize> {
    (0..cluster.lan.nodes.len())
        .map(|i| cluster.lan.log(i).matches("we were declared down").count())
        .collect()
}

/// One failover trial: kill the node owning the most of `ips`, time each of its IPs until
/// another node answers a probe for it.
fn trial(cluster: &mut ScaleCluster, n: usize, ips: &[Ipv6Addr], owners: &[usize], rate: u32) {
    let mut held = vec![0usize; cluster.lan.nodes.len()];
    for &o in owners {
        held[o] += 1;
    }
    let victim = (0..held.len()).max_by_key(|&i| held[i]).expect("nodes");
    let theirs: Vec<Ipv6Addr> = ips
        .iter()
        .zip(owners)
        .filter(|(_, o)| **o == victim)
        .map(|(ip, _)| *ip)
        .collect();
    let victim_mac = cluster.lan.nodes[victim].mac.clone();
    let name = cluster.lan.nodes[victim].name.clone();
    let dir = cluster.lan.dir.path().to_path_buf();
    let mut prober = Prober::start(
        &cluster.lan.client_ns,
        &dir,
        &format!("trial{n}"),
        &theirs,
        &Pace {
            rate,
            cycles: 0,
            max_secs: 600,
            victim: Some(&victim_mac),
        },
    );
    let want: BTreeSet<Ipv6Addr> = theirs.iter().copied().collect();
    let before = prober.wait_until(Duration::from_secs(60), |answers: &[Answer]| {
        let seen: BTreeSet<Ipv6Addr> = answers
            .iter()
            .filter(|a| a.solicited && a.mac == victim_mac)
            .map(|a| a.ip)
            .collect();
        seen.len() == want.len()
    });
    assert!(
        before,
        "{name} did not answer for all its {} IPs",
        want.len()
    );
    let load = load_average();
    let killed_at = unix_ns();
    cluster.lan.signal(victim, "KILL");
    let taken_over = |answers: &[Answer], solicited: bool| -> BTreeMap<Ipv6Addr, Duration> {
        let mut first = BTreeMap::new();
        for a in answers
            .iter()
            .filter(|a| a.solicited == solicited && a.mac != victim_mac && a.at_ns >= killed_at)
        {
            let after = Duration::from_nanos((a.at_ns - killed_at) as u64);
            let entry = first.entry(a.ip).or_insert(after);
            *entry = (*entry).min(after);
        }
        first
    };
    let all = prober.wait_until(Duration::from_secs(60), |answers: &[Answer]| {
        taken_over(answers, true).len() == want.len()
    });
    let prober = prober.finish();
    let answered = taken_over(&prober.answers, true);
    let announced = taken_over(&prober.answers, false);
    let mut times: Vec<Duration> = answered.values().copied().collect();
    times.sort();
    let mut announce_times: Vec<Duration> = announced.values().copied().collect();
    announce_times.sort();
    let new_owners: BTreeSet<&str> = prober
        .answers
        .iter()
        .filter(|a| a.solicited && a.mac != victim_mac && a.at_ns >= killed_at)
        .filter_map(|a| cluster.lan.node_by_mac(&a.mac))
        .map(|i| cluster.lan.nodes[i].name.as_str())
        .collect();
    println!(
        "FIGURES trial {n}: SIGKILL of {name}, owner of {} of {} IPs (load average at the kill {load})",
        want.len(),
        ips.len()
    );
    println!(
        "FIGURES trial {n}: kill -> first probe answered by another node ({}/{} IPs{}; new owners {new_owners:?}): {}",
        answered.len(),
        want.len(),
        if all { "" } else { ", gave up after 60 s" },
        summary(&times)
    );
    println!(
        "FIGURES trial {n}: kill -> first unsolicited advertisement from another node ({} IPs): {}",
        announced.len(),
        summary(&announce_times)
    );
    if let Some(c) = prober.cycles {
        println!(
            "FIGURES trial {n}: prober cycle over {} IPs at {rate}/s: mean {:.0?}, max {:.0?} ({} cycles, {} failed sends)",
            want.len(),
            c.mean,
            c.max,
            c.count,
            c.send_errors
        );
    }
    for i in (0..cluster.lan.nodes.len()).filter(|&i| i != victim) {
        println!(
            "FIGURES trial {n}: {} after the kill: {}",
            cluster.lan.nodes[i].name,
            timeline(&cluster.lan.log(i), killed_at)
        );
    }
    cluster.start_speaker(victim);
    cluster.wait_ready(victim);
}

/// What a surviving speaker logged after the kill, in ms after it: when gossip declared the
/// victim down and when its ownership changed (the pass that took the IPs over), so the
/// takeover splits into detection, the pass, and answering.
fn timeline(log: &str, killed_at: u128) -> String {
    let mut out = Vec::new();
    for line in log.lines() {
        let Some(at) = line.split_whitespace().next().and_then(rfc3339_ns) else {
            continue;
        };
        if at < killed_at {
            continue;
        }
        let what = if line.contains("gossip: member down") {
            "member down"
        } else if line.contains("ownership changed") {
            "ownership changed"
        } else {
            continue;
        };
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        };
        let owned = field("owned")
            .map(|o| format!(" ({o} IPs"))
            .unwrap_or_default();
        let pass = match (field("pass_ms"), field("since_wake_ms")) {
            (Some(p), Some(w)) => {
                let thread = match (field("pass_cpu_ms"), field("pass_wait_ms")) {
                    (Some(c), Some(q)) => format!(" ({c} on a CPU, {q} waiting for one)"),
                    _ => String::new(),
                };
                format!("; pass {p} ms{thread}, {w} ms since the loop woke)")
            }
            _ if owned.is_empty() => String::new(),
            _ => ")".to_owned(),
        };
        out.push(format!(
            "+{} ms {what}{owned}{pass}",
            (at - killed_at) / 1_000_000
        ));
    }
    if out.is_empty() {
        "nothing logged".to_owned()
    } else {
        out.join(", ")
    }
}

/// `2026-11-30T09:28:19.123456Z` (the speaker's log timestamps) as unix ns, read by jiff (as
/// k8s-openapi does).
fn rfc3339_ns(stamp: &str) -> Option<u128> {
    let at: k8s_openapi::jiff::Timestamp = stamp.parse().ok()?;
    u128::try_from(at.as_nanosecond()).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, run by hand: see BENCHMARKS.md"]
async fn scale_failover_and_speaker_memory() {
    let test = "scale_failover_and_speaker_memory";
    let services = env_number("FERROLB_SCALE_SERVICES", 6000);
    let total = env_number("FERROLB_SCALE_TOTAL", 10_000).max(services);
    let trials = env_number("FERROLB_SCALE_TRIALS", 3);
    let rate = env_number("FERROLB_SCALE_PROBE_RATE", 20_000) as u32;
    let binary = e2e::ferrolb::binary();
    let Some(mut cluster) = ScaleCluster::start(test, &binary).await else {
        return;
    };
    println!("FIGURES speaker binary {}", binary.display());
    print_memory(&cluster, 0, "ready");

    let took = cluster.create_services(0..services).await;
    println!("FIGURES created {services} Services (+ status, + EndpointSlice) in {took:.1?}");
    let ips: Vec<Ipv6Addr> = (0..services).map(vip).collect();
    let started = std::time::Instant::now();
    let mut owners =
        tokio::task::block_in_place(|| survey(&cluster, &ips, rate, Duration::from_secs(900)))
            .unwrap_or_else(|e| panic!("{e}"));
    let mut held = vec![0usize; cluster.lan.nodes.len()];
    for &o in &owners {
        held[o] += 1;
    }
    println!(
        "FIGURES every IP answered by one node {:.1?} after the last object was written; IPs per node {held:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    print_memory(&cluster, services, "idle after sync");

    for n in 1..=trials {
        let settled = tokio::task::block_in_place(|| {
            trial(&mut cluster, n, &ips, &owners, rate);
            survey(&cluster, &ips, rate, Duration::from_secs(300))
        });
        match settled {
            Ok(now) => owners = now,
            Err(e) => {
                println!("FIGURES after trial {n} and the restart: {e}; no more trials");
                break;
            }
        }
    }

    if total > services {
        let took = cluster.create_services(services..total).await;
        println!(
            "FIGURES created {} more Services in {took:.1?}",
            total - services
        );
        let ips: Vec<Ipv6Addr> = (0..total).map(vip).collect();
        let settled =
            tokio::task::block_in_place(|| survey(&cluster, &ips, rate, Duration::from_secs(600)));
        match settled {
            Ok(_) => println!("FIGURES all {total} IPs answered by one node each"),
            Err(e) => println!("FIGURES {total} Services: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(15)).await;
        print_memory(&cluster, total, "idle after sync");
    }
    if let Some(api) = memory(cluster.plane.apiserver_pid()) {
        eprintln!("(kube-apiserver {api})");
    }
}

#[test]
fn log_timestamps_read_as_unix_time() {
    assert_eq!(
        rfc3339_ns("2026-11-30T09:28:19.123456Z"),
        Some(1_796_030_899_123_456_000)
    );
    assert_eq!(
        rfc3339_ns("2024-02-29T23:59:59Z"),
        Some(1_709_251_199_000_000_000)
    );
    assert_eq!(rfc3339_ns("\u{1b}[2m2026"), None);
    let log = "2026-11-30T09:28:19.000000Z  WARN ferrolb::gossip::udp: gossip: member down member=node-a\n\
               2026-11-30T09:28:19.250000Z  INFO ferrolb::speaker::kubernetes: ownership changed owned=1012 restricted=0 evaluated=6000 pass_ms=41 pass_cpu_ms=30 pass_wait_ms=9 since_wake_ms=43\n\
               2026-11-30T09:28:20.000000Z  INFO ferrolb::speaker::kubernetes: ownership changed owned=0 restricted=0\n";
    assert_eq!(
        timeline(log, 1_796_030_898_500_000_000),
        "+500 ms member down, +750 ms ownership changed (1012 IPs; pass 41 ms (30 on a CPU, 9 waiting for one), 43 ms since the loop woke), \
         +1500 ms ownership changed (0 IPs)"
    );
}
