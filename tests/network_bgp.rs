//! BGP network tests: three `ferrolb speaker --static` nodes on a bridge announce their addresses
//! to real routers (FRR's bgpd, BIRD 2, GoBGP) in namespaces of their own, and the tests read the
//! routers' RIBs. Root only; with `CI` set a missing prerequisite fails instead of skipping.

mod bgp_routers;
mod netns;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use bgp_routers::{
    BGPD, Bird, Frr, Gobgp, Held, frr_conf, hops, logs, start_all, two_hops_away, wait_rib,
    write_file,
};
use netns::{Lan, environment_ready_with, run, wait_for};

/// How long sessions and routes get to appear (sessions start at once; the slowest part is a
/// loaded CI machine).
const SETTLE: Duration = Duration::from_secs(30);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrolb"))
}

fn ready(test: &str) -> bool {
    if !Path::new(BGPD).is_file() && std::env::var_os("CI").is_none() {
        eprintln!("SKIPPED: {test} needs FRR ({BGPD}; run scripts/install-test-tools.sh)");
        return false;
    }
    environment_ready_with(test, &["vtysh", "bird", "birdc", "gobgpd", "gobgp"])
}

fn all_three() -> BTreeSet<String> {
    hops(&["192.0.2.11", "192.0.2.12", "192.0.2.13"])
}

fn router(lan: &mut Lan, suffix: &str, port: &str, ip4: &str, ip6: &str) -> String {
    lan.add_host(suffix, port, ip4, ip6).0
}

/// FRR at 192.0.2.1 (AS 64512) on the LAN, peering over iBGP with every node for `families`.
fn ibgp_frr(lan: &mut Lan, families: &str) -> Frr {
    let rt = router(lan, "rt", "v8", "192.0.2.1", "2001:db8::1");
    let neighbors: Vec<(&str, u32, &str)> = lan
        .nodes
        .iter()
        .map(|n| (n.ip4.as_str(), 64512, ""))
        .collect();
    let conf = frr_conf(64512, "192.0.2.1", &neighbors, families);
    Frr::start(lan, &rt, "frr", &conf)
}

const IBGP_PEER: &str = "  peers:\n  - {name: rt, peer-address: 192.0.2.1, peer-asn: 64512, my-asn: \
                         64512, hold-time: 9}\n";

#[test]
fn frr_holds_every_prefix_from_all_three_with_the_configured_attributes() {
    if !ready("frr_holds_every_prefix") {
        return;
    }
    let mut lan = Lan::new(3, binary());
    let frr = ibgp_frr(&mut lan, "ipv4");
    let addresses = "- service: default/web\n  ips: [198.51.100.10]\n\
                     - service: default/agg\n  ips: [203.0.113.17]\n  \
                     bgp: {aggregation-length: 28, local-pref: 300, communities: ['65000:7']}\n\
                     - service: default/gone\n  ips: [198.51.100.20]\n";
    let bgp = format!(
        "{IBGP_PEER}  defaults:\n    communities: ['65000:1', '65000:2', 'large:64512:1:2']\n"
    );
    start_all(&mut lan, addresses, &bgp);
    let want = [
        ("198.51.100.10/32", all_three()),
        ("203.0.113.16/28", all_three()),
        ("198.51.100.20/32", all_three()),
    ];
    let context = || format!("{}\nfrr:\n{}", logs(&lan), frr.log());
    wait_rib("FRR, ECMP", || frr.rib("ipv4"), &want, SETTLE, context);
    // Every path carries what its address asked for, whoever sent it.
    for hop in all_three() {
        let shown = |p: &str| frr.vtysh(&format!("show bgp ipv4 unicast {p} json"));
        let web = frr.attributes("ipv4", "198.51.100.10/32", &hop);
        let want = Held {
            next_hops: hops(&[&hop]),
            communities: hops(&["65000:1", "65000:2"]),
            large_communities: hops(&["64512:1:2"]),
            // Unset local-pref is sent as 100.
            local_pref: Some(100),
        };
        assert_eq!(web, want, "{hop}: {}", shown("198.51.100.10/32"));
        let agg = frr.attributes("ipv4", "203.0.113.16/28", &hop);
        // Its own list replaces the default one, large communities included.
        let want = Held {
            communities: hops(&["65000:7"]),
            large_communities: BTreeSet::new(),
            local_pref: Some(300),
            ..want
        };
        assert_eq!(agg, want, "{hop}: {}", shown("203.0.113.16/28"));
    }
    // FRR uses all three (multipath), not just the best.
    let summary = frr.vtysh("show bgp ipv4 unicast 198.51.100.10/32");
    assert_eq!(summary.matches("multipath").count(), 3, "{summary}");

    // The address taken out of every file is withdrawn; the others stay.
    let fewer = addresses
        .split("- service: default/gone")
        .next()
        .unwrap()
        .to_string();
    for i in 0..3 {
        write_file(&lan, i, &fewer, &bgp);
    }
    let gone = wait_for(SETTLE, || {
        let rib = frr.rib("ipv4");
        (!rib.contains_key("198.51.100.20/32") && rib.len() == 2).then_some(())
    });
    assert!(
        gone.is_some(),
        "not withdrawn: {:#?}\n{}",
        frr.rib("ipv4"),
        context()
    );
}

#[test]
fn sigterm_withdraws_at_once_a_silent_speaker_at_the_hold_time_and_a_router_restart_recovers() {
    if !ready("sigterm_withdraws_at_once") {
        return;
    }
    let mut lan = Lan::new(3, binary());
    let frr = ibgp_frr(&mut lan, "ipv4");
    let addresses = "- service: default/web\n  ips: [198.51.100.10]\n";
    start_all(&mut lan, addresses, IBGP_PEER);
    let p = "198.51.100.10/32";
    let context = || format!("{}\nfrr:\n{}", logs(&lan), frr.log());
    wait_rib(
        "FRR",
        || frr.rib("ipv4"),
        &[(p, all_three())],
        SETTLE,
        context,
    );

    // The router restarts: every session comes back and the route with all three next hops.
    frr.restart(&mut lan);
    wait_rib(
        "FRR after its restart",
        || frr.rib("ipv4"),
        &[(p, all_three())],
        SETTLE,
        || format!("{}\nfrr:\n{}", logs(&lan), frr.log()),
    );

    // SIGTERM: the speaker sends Cease before it exits; FRR drops its path at once. The hold
    // time is 9 s, so anything under it shows the Cease (not the hold timer) did it.
    let started = Instant::now();
    lan.signal(0, "TERM");
    let two = hops(&["192.0.2.12", "192.0.2.13"]);
    let context = || format!("{}\nfrr:\n{}", logs(&lan), frr.log());
    wait_rib(
        "FRR after SIGTERM",
        || frr.rib("ipv4"),
        &[(p, two.clone())],
        SETTLE,
        context,
    );
    let after_term = started.elapsed();
    eprintln!("SIGTERM to next hop gone from FRR's RIB: {after_term:?}");
    assert!(after_term < Duration::from_secs(3), "{after_term:?}");
    let neighbor = frr.neighbor("192.0.2.11");
    let text = neighbor.to_string();
    assert!(
        text.contains("ferrolb speaker shutting down"),
        "FRR did not get the shutdown communication: {text}"
    );
    assert!(lan.log(0).contains("telling BGP peers"), "{}", lan.log(0));

    // SIGSTOP: the connection stays open but nothing is sent; FRR's hold timer (the 9 s the
    // speaker offered) drops the path, and says so.
    let started = Instant::now();
    let frozen = lan.nodes[1]
        .child
        .as_ref()
        .expect("node-b runs")
        .id()
        .to_string();
    run("kill", &["-STOP", &frozen]);
    let one = hops(&["192.0.2.13"]);
    let context = || format!("{}\nfrr:\n{}", logs(&lan), frr.log());
    wait_rib(
        "FRR after SIGSTOP",
        || frr.rib("ipv4"),
        &[(p, one.clone())],
        SETTLE,
        context,
    );
    let after_stop = started.elapsed();
    eprintln!("SIGSTOP to next hop gone from FRR's RIB: {after_stop:?} (hold time 9 s)");
    // At the earliest the hold time after the last keepalive, sent every 3 s: 6 s, less a margin.
    assert!(
        after_stop >= Duration::from_secs(4),
        "{after_stop:?}: not the hold timer"
    );
    assert!(
        frr.neighbor("192.0.2.12")
            .to_string()
            .contains("Hold Timer Expired"),
        "{}",
        frr.neighbor("192.0.2.12")
    );
    lan.signal(1, "KILL");

    // SIGKILL: no Cease; the kernel closes the socket (or else the hold timer runs out).
    let started = Instant::now();
    lan.signal(2, "KILL");
    let context = || format!("{}\nfrr:\n{}", logs(&lan), frr.log());
    let gone = wait_for(SETTLE, || (!frr.rib("ipv4").contains_key(p)).then_some(()));
    assert!(
        gone.is_some(),
        "still held: {:#?}\n{}",
        frr.rib("ipv4"),
        context()
    );
    let after_kill = started.elapsed();
    eprintln!("SIGKILL to route gone from FRR's RIB: {after_kill:?}");
    assert!(after_kill < Duration::from_secs(9), "{after_kill:?}");
}

/// BIRD over eBGP and GoBGP over iBGP: both hold every prefix with all three next hops and the
/// communities; LOCAL_PREF reaches the iBGP peer only (BIRD shows its own default for eBGP routes).
#[test]
fn bird_and_gobgp_hold_every_prefix_from_all_three() {
    if !ready("bird_and_gobgp") {
        return;
    }
    let mut lan = Lan::new(3, binary());
    let bird_ns = router(&mut lan, "bird", "v7", "192.0.2.2", "2001:db8::2");
    let gobgp_ns = router(&mut lan, "gobgp", "v6", "192.0.2.3", "2001:db8::3");
    let addresses: Vec<String> = lan.nodes.iter().map(|n| n.ip4.clone()).collect();
    let nodes: Vec<(&str, u32)> = addresses.iter().map(|a| (a.as_str(), 64513)).collect();
    let bird = Bird::start(&mut lan, &bird_ns, "192.0.2.2", 64600, &nodes);
    let gobgp = Gobgp::start(&mut lan, &gobgp_ns, "192.0.2.3", 64513, &nodes, "ipv4");
    let addresses = "- service: default/web\n  ips: [198.51.100.10]\n  bgp: {local-pref: 250}\n\
                     - service: default/agg\n  ips: [203.0.113.17]\n  bgp: {aggregation-length: 24}\n";
    let bgp = "  peers:\n  - {name: bird, peer-address: 192.0.2.2, peer-asn: 64600, my-asn: 64513}\n  \
               - {name: gobgp, peer-address: 192.0.2.3, peer-asn: 64513, my-asn: 64513}\n  \
               defaults:\n    communities: ['65000:1', 'large:64513:7:8']\n";
    start_all(&mut lan, addresses, bgp);
    let want = [
        ("198.51.100.10/32", all_three()),
        ("203.0.113.0/24", all_three()),
    ];
    let bird_rib = wait_rib(
        "BIRD",
        || bird.rib(),
        &want,
        SETTLE,
        || format!("{}\nbird:\n{}", logs(&lan), bird.log()),
    );
    let gobgp_rib = wait_rib(
        "GoBGP",
        || gobgp.rib(),
        &want,
        SETTLE,
        || format!("{}\ngobgp:\n{}", logs(&lan), gobgp.log()),
    );
    for (name, rib) in [("BIRD", &bird_rib), ("GoBGP", &gobgp_rib)] {
        for (prefix, _) in &want {
            let held: &Held = &rib[*prefix];
            assert_eq!(held.communities, hops(&["65000:1"]), "{name} {prefix}");
            assert_eq!(
                held.large_communities,
                hops(&["64513:7:8"]),
                "{name} {prefix}"
            );
        }
    }
    assert_eq!(
        gobgp_rib["198.51.100.10/32"].local_pref,
        Some(250),
        "iBGP: ours"
    );
    assert_eq!(
        gobgp_rib["203.0.113.0/24"].local_pref,
        Some(100),
        "iBGP: unset is 100"
    );
    assert_eq!(
        bird_rib["198.51.100.10/32"].local_pref,
        Some(100),
        "eBGP: BIRD's default, not 250"
    );
}

#[test]
fn an_md5_session_comes_up_and_a_wrong_password_does_not() {
    if !ready("md5") {
        return;
    }
    let mut lan = Lan::new(2, binary());
    let rt = router(&mut lan, "rt", "v8", "192.0.2.1", "2001:db8::1");
    let neighbors = [
        ("192.0.2.11", 64512, "password s3cret-md5"),
        ("192.0.2.12", 64512, "password s3cret-md5"),
    ];
    let frr = Frr::start(
        &mut lan,
        &rt,
        "frr",
        &frr_conf(64512, "192.0.2.1", &neighbors, "ipv4"),
    );
    let addresses = "- service: default/web\n  ips: [198.51.100.10]\n";
    let peer = |password: &str| {
        format!(
            "  peers:\n  - {{name: rt, peer-address: 192.0.2.1, peer-asn: 64512, my-asn: 64512, \
             password: {password}}}\n"
        )
    };
    write_file(&lan, 0, addresses, &peer("s3cret-md5"));
    write_file(&lan, 1, addresses, &peer("not-the-key"));
    lan.start(0);
    lan.start(1);
    let p = "198.51.100.10/32";
    let context = || format!("{}\nfrr:\n{}", logs(&lan), frr.log());
    wait_rib(
        "FRR, MD5",
        || frr.rib("ipv4"),
        &[(p, hops(&["192.0.2.11"]))],
        SETTLE,
        context,
    );
    assert_eq!(frr.state("192.0.2.11"), "Established");
    // The other speaker keeps trying (backoff 0, 1, 2, 4 s): it never gets through.
    std::thread::sleep(Duration::from_secs(8));
    assert_ne!(frr.state("192.0.2.12"), "Established", "{}", context());
    assert_eq!(frr.rib("ipv4")[p].next_hops, hops(&["192.0.2.11"]));
}

#[test]
fn ebgp_multihop_reaches_a_router_two_hops_away() {
    if !ready("ebgp_multihop") {
        return;
    }
    let mut lan = Lan::new(2, binary());
    let rt = two_hops_away(&mut lan, "v7");
    // node-b's neighbor checks the TTL (GTSM, RFC 5082): only packets sent with TTL 255 arrive
    // with the 254 one forwarding hop leaves, so it comes up only if the speaker sets it.
    // node-a's runs BFD, multi-hop (RFC 5883) as FRR does for an ebgp-multihop neighbor.
    let neighbors = [
        (
            "192.0.2.11",
            64513,
            "ebgp-multihop 2\nbfd\nbfd profile fast",
        ),
        ("192.0.2.12", 64513, "ttl-security hops 2"),
    ];
    let conf = frr_conf(64512, "203.0.113.1", &neighbors, "ipv4");
    let bfd = "bfd\n profile fast\n  transmit-interval 100\n  receive-interval 100\n !\n!\n";
    let frr = Frr::start_with_bfd(&mut lan, &rt.0, "frr", &conf, bfd);
    let addresses = "- service: default/web\n  ips: [198.51.100.10]\n";
    let bgp = "  peers:\n  - {name: rt, peer-address: 203.0.113.1, peer-asn: 64512, my-asn: 64513, \
               ebgp-multihop: true, bfd: {receive-interval: 100, transmit-interval: 100}}\n";
    start_all(&mut lan, addresses, bgp);
    let context = || format!("{}\nfrr:\n{}", logs(&lan), frr.log());
    let want = [("198.51.100.10/32", hops(&["192.0.2.11", "192.0.2.12"]))];
    wait_rib(
        "FRR two hops away",
        || frr.rib("ipv4"),
        &want,
        SETTLE,
        context,
    );
    assert_eq!(frr.state("192.0.2.11"), "Established");
    assert_eq!(frr.state("192.0.2.12"), "Established");
    let up = wait_for(SETTLE, || {
        let p = frr.bfd_peer("192.0.2.11");
        (p["status"] == "up").then_some(p)
    });
    let peer = up.unwrap_or_else(|| panic!("multi-hop BFD not up: {}", frr.bfd_peer("192.0.2.11")));
    assert_eq!(peer["multihop"], true, "{peer}");
}

#[test]
fn an_ipv6_session_carries_ipv6_prefixes_with_each_node_s_ipv6_next_hop() {
    if !ready("ipv6_session") {
        return;
    }
    let mut lan = Lan::new(3, binary());
    let rt = router(&mut lan, "rt", "v8", "192.0.2.1", "2001:db8::1");
    let neighbors: Vec<(&str, u32, &str)> = lan
        .nodes
        .iter()
        .map(|n| (n.ip6.as_str(), 64512, ""))
        .collect();
    let conf = frr_conf(64512, "192.0.2.1", &neighbors, "ipv6");
    let frr = Frr::start(&mut lan, &rt, "frr", &conf);
    let addresses = "- service: default/web\n  ips: [198.51.100.10, 2001:db8:100::10]\n\
                     - service: default/agg\n  ips: [2001:db8:200::17]\n  \
                     bgp: {aggregation-length-v6: 64}\n";
    let bgp =
        "  peers:\n  - {name: rt, peer-address: '2001:db8::1', peer-asn: 64512, my-asn: 64512}\n";
    start_all(&mut lan, addresses, bgp);
    let six = hops(&["2001:db8::11", "2001:db8::12", "2001:db8::13"]);
    let want = [
        ("2001:db8:100::10/128", six.clone()),
        ("2001:db8:200::/64", six),
    ];
    let context = || format!("{}\nfrr:\n{}", logs(&lan), frr.log());
    wait_rib("FRR, IPv6", || frr.rib("ipv6"), &want, SETTLE, context);
    // The IPv4 address is not sent on a session that did not negotiate IPv4, and the speaker
    // says so.
    assert!(frr.rib("ipv4").is_empty());
    assert!(
        lan.log(0).contains("did not negotiate address family 1/1"),
        "{}",
        lan.log(0)
    );
}

/// The binary the benchmark runs: `FERROLB_BENCH_BIN` (e.g. a release build), else the test's.
fn bench_binary() -> std::path::PathBuf {
    std::env::var_os("FERROLB_BENCH_BIN").map_or_else(|| binary().to_path_buf(), Into::into)
}

fn vm_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// BENCHMARKS.md, "BGP": one speaker announces 10 000 IPv6 /128s (over IPv4 sessions, so with its
/// IPv6 next hop) to FRR and GoBGP; how long until both RIBs hold all of them and the speaker's
/// peak RSS; then how long an address added to the static file takes to reach FRR's RIB.
/// `cargo nextest run --test network_bgp --run-ignored only -E 'test(bgp_bench)' --no-capture`
#[test]
#[ignore = "benchmark: run by hand (BENCHMARKS.md)"]
fn bgp_bench_ten_thousand_prefixes_to_two_routers() {
    if !ready("bgp_bench") {
        return;
    }
    const COUNT: u32 = 10_000;
    let mut lan = Lan::new(1, &bench_binary());
    let rt = router(&mut lan, "rt", "v8", "192.0.2.1", "2001:db8::1");
    let gobgp_ns = router(&mut lan, "gobgp", "v6", "192.0.2.3", "2001:db8::3");
    let conf = frr_conf(64512, "192.0.2.1", &[("192.0.2.11", 64513, "")], "ipv6");
    let frr = Frr::start(&mut lan, &rt, "frr", &conf);
    let gobgp = Gobgp::start(
        &mut lan,
        &gobgp_ns,
        "192.0.2.3",
        64700,
        &[("192.0.2.11", 64513)],
        "ipv6",
    );
    let mut addresses = String::new();
    for i in 0..COUNT {
        addresses.push_str(&format!(
            "- service: bench/s{i}\n  ips: ['2001:db8:1::{i:x}']\n"
        ));
    }
    let bgp = "  peers:\n  - {name: frr, peer-address: 192.0.2.1, peer-asn: 64512, my-asn: 64513}\n  \
               - {name: gobgp, peer-address: 192.0.2.3, peer-asn: 64700, my-asn: 64513}\n";
    write_file(&lan, 0, &addresses, bgp);
    let frr_count = || frr.received("ipv6", "192.0.2.11");
    let gobgp_count = || gobgp.destinations();
    let started = Instant::now();
    lan.start(0);
    let pid = lan.nodes[0].child.as_ref().expect("speaker").id();
    let mut frr_done = None;
    let mut gobgp_done = None;
    let mut peak = 0;
    while (frr_done.is_none() || gobgp_done.is_none())
        && started.elapsed() < Duration::from_secs(300)
    {
        peak = peak.max(vm_kib(pid, "VmHWM:").unwrap_or(0));
        if frr_done.is_none() && frr_count() == u64::from(COUNT) {
            frr_done = Some(started.elapsed());
        }
        if gobgp_done.is_none() && gobgp_count() == u64::from(COUNT) {
            gobgp_done = Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (Some(frr_done), Some(gobgp_done)) = (frr_done, gobgp_done) else {
        panic!(
            "not every prefix arrived: FRR {} GoBGP {}\n{}\nfrr:\n{}\ngobgp:\n{}",
            frr_count(),
            gobgp_count(),
            logs(&lan),
            frr.log(),
            gobgp.log()
        );
    };
    peak = peak.max(vm_kib(pid, "VmHWM:").unwrap_or(0));
    let rss = vm_kib(pid, "VmRSS:").unwrap_or(0);
    eprintln!(
        "BENCH bgp 10k: speaker start -> FRR holds all {COUNT}: {frr_done:?}; GoBGP: {gobgp_done:?}; \
         speaker peak RSS {peak} KiB, RSS after {rss} KiB"
    );
    // A new address in the file, to FRR's RIB (the file is polled once a second), with the
    // 10 000 entries in the file, then with 10.
    let delays = added_to_frr(&lan, &frr, &mut addresses, bgp, 0);
    eprintln!(
        "BENCH bgp file (10 000 entries) -> FRR RIB: {delays:?} (median {:?})",
        delays[2]
    );
    let mut small: String = addresses
        .lines()
        .take(20)
        .map(|l| format!("{l}\n"))
        .collect();
    let shrunk = Instant::now();
    write_file(&lan, 0, &small, bgp);
    let withdrawn = wait_for(Duration::from_secs(120), || {
        (frr_count() == 10 && gobgp_count() == 10).then_some(shrunk.elapsed())
    })
    .expect("all but 10 withdrawn from both");
    eprintln!("BENCH bgp 9 995 withdrawn from the file -> both RIBs hold 10: {withdrawn:?}");
    let delays = added_to_frr(&lan, &frr, &mut small, bgp, 5);
    eprintln!(
        "BENCH bgp file (10 entries) -> FRR RIB: {delays:?} (median {:?})",
        delays[2]
    );
    let peak = peak.max(vm_kib(pid, "VmHWM:").unwrap_or(0));
    eprintln!("BENCH bgp speaker peak RSS over the run: {peak} KiB");
}

/// Adds five addresses to the file one by one; how long each took to reach FRR's RIB, sorted.
fn added_to_frr(
    lan: &Lan,
    frr: &Frr,
    addresses: &mut String,
    bgp: &str,
    from: u32,
) -> Vec<Duration> {
    let mut delays = Vec::new();
    for n in from..from + 5 {
        // Spread over the poll period, so the figures show its whole range.
        std::thread::sleep(Duration::from_millis(300 + 170 * u64::from(n - from)));
        addresses.push_str(&format!(
            "- service: bench/new{n}\n  ips: ['2001:db8:2::{n:x}']\n"
        ));
        let prefix = format!("2001:db8:2::{n:x}/128");
        let added = Instant::now();
        write_file(lan, 0, addresses, bgp);
        let seen = wait_for(Duration::from_secs(30), || {
            frr.vtysh(&format!("show bgp ipv6 unicast {prefix} json"))
                .contains("\"paths\"")
                .then_some(())
        });
        assert!(seen.is_some(), "{prefix} never reached FRR");
        delays.push(added.elapsed());
    }
    delays.sort();
    delays
}

/// An IPv4 session that also negotiated IPv6 carries the IPv6 prefixes too, with the IPv6 address
/// the node has on the session's interface as next hop.
#[test]
fn an_ipv4_session_carries_ipv6_prefixes_with_the_node_s_ipv6_next_hop() {
    if !ready("ipv4_session_ipv6_prefixes") {
        return;
    }
    let mut lan = Lan::new(2, binary());
    let frr = ibgp_frr(&mut lan, "ipv4 ipv6");
    let addresses = "- service: default/web\n  ips: [198.51.100.10, 2001:db8:100::10]\n";
    start_all(&mut lan, addresses, IBGP_PEER);
    let context = || format!("{}\nfrr:\n{}", logs(&lan), frr.log());
    let v4 = [("198.51.100.10/32", hops(&["192.0.2.11", "192.0.2.12"]))];
    wait_rib("FRR, IPv4", || frr.rib("ipv4"), &v4, SETTLE, context);
    let v6 = [(
        "2001:db8:100::10/128",
        hops(&["2001:db8::11", "2001:db8::12"]),
    )];
    wait_rib(
        "FRR, IPv6 over IPv4",
        || frr.rib("ipv6"),
        &v6,
        SETTLE,
        context,
    );
}

fn with_frr(lan: &Lan, frr: &Frr) -> String {
    format!("{}\nfrr:\n{}", logs(lan), frr.log())
}

/// Graceful restart as MetalLB's FRR modes negotiate it: FRR keeps a killed speaker's routes
/// (stale) while it restarts, the restarted speaker's End-of-RIB drops what it no longer
/// announces, and a route refresh from FRR gets the whole table again.
#[test]
fn with_graceful_restart_frr_keeps_a_killed_speaker_s_routes_until_it_is_back() {
    if !ready("with_graceful_restart") {
        return;
    }
    let mut lan = Lan::new(1, binary());
    let frr = ibgp_frr(&mut lan, "ipv4");
    let (kept, dropped) = ("198.51.100.10/32", "198.51.100.20/32");
    let addresses = "- service: default/web\n  ips: [198.51.100.10]\n\
                     - service: default/old\n  ips: [198.51.100.20]\n";
    let bgp = IBGP_PEER.replace("hold-time: 9}", "hold-time: 9, graceful-restart: true}");
    start_all(&mut lan, addresses, &bgp);
    let one = hops(&["192.0.2.11"]);
    let want = [(kept, one.clone()), (dropped, one.clone())];
    wait_rib(
        "FRR",
        || frr.rib("ipv4"),
        &want,
        SETTLE,
        || with_frr(&lan, &frr),
    );
    let neighbor = frr.neighbor("192.0.2.11").to_string();
    assert!(neighbor.contains("gracefulRestart"), "{neighbor}");

    // FRR asks again (no soft-reconfiguration inbound: a ROUTE-REFRESH); the speaker resends.
    frr.vtysh("clear bgp ipv4 unicast 192.0.2.11 soft in");
    let refreshed = wait_for(SETTLE, || {
        lan.log(0)
            .contains("route refresh: sending every route again")
            .then_some(())
    });
    assert!(
        refreshed.is_some(),
        "no route refresh\n{}",
        with_frr(&lan, &frr)
    );
    wait_rib(
        "FRR after the refresh",
        || frr.rib("ipv4"),
        &want,
        SETTLE,
        || with_frr(&lan, &frr),
    );

    // SIGKILL: the kernel resets the connection. Without graceful restart FRR drops the routes
    // within milliseconds; with it, they stay, marked stale, for the restart time (120 s).
    lan.signal(0, "KILL");
    let stale = wait_for(SETTLE, || {
        let path = frr.vtysh(&format!("show bgp ipv4 unicast {kept} json"));
        path.contains("\"stale\":true").then_some(path)
    });
    assert!(
        stale.is_some(),
        "not kept as stale: {:#?}\n{}",
        frr.rib("ipv4"),
        with_frr(&lan, &frr)
    );
    std::thread::sleep(Duration::from_secs(3));
    let rib = frr.rib("ipv4");
    assert!(
        rib.get(kept).is_some_and(|h| h.next_hops == one) && rib.contains_key(dropped),
        "routes gone while the speaker restarts: {rib:#?}\n{}",
        with_frr(&lan, &frr)
    );

    // Back without `old`: its End-of-RIB ends the restart and FRR drops the stale route.
    write_file(
        &lan,
        0,
        "- service: default/web\n  ips: [198.51.100.10]\n",
        &bgp,
    );
    lan.start(0);
    let settled = wait_for(SETTLE, || {
        let rib = frr.rib("ipv4");
        let fresh = !frr
            .vtysh(&format!("show bgp ipv4 unicast {kept} json"))
            .contains("\"stale\":true");
        (fresh && !rib.contains_key(dropped) && rib.get(kept).is_some_and(|h| h.next_hops == one))
            .then_some(())
    });
    assert!(
        settled.is_some(),
        "after the restart: {:#?}\n{}",
        frr.rib("ipv4"),
        with_frr(&lan, &frr)
    );
}

/// Passive connects: with the speaker's own connections to the router dropped (a firewall that
/// lets only the router open sessions), FRR, configured active-only, connects to the speaker's
/// listener and the session carries the routes; a second connection while the session is up is
/// closed at once (the established one wins).
#[test]
fn a_router_that_opens_the_session_itself_gets_the_routes() {
    if !ready("a_router_that_opens_the_session_itself") {
        return;
    }
    let mut lan = Lan::new(1, binary());
    let rt = router(&mut lan, "rt", "v8", "192.0.2.1", "2001:db8::1");
    let node = (lan.nodes[0].ns.clone(), lan.nodes[0].ip4.clone());
    // The router dials (every second), never waits for us.
    let extra = "timers connect 1";
    let conf = frr_conf(
        64512,
        "192.0.2.1",
        &[(node.1.as_str(), 64512, extra)],
        "ipv4",
    )
    .replace(&format!(" neighbor {} passive\n", node.1), "");
    let frr = Frr::start(&mut lan, &rt, "frr", &conf);
    // Our SYNs to the router's BGP port never leave the node.
    let nft = |args: &[&str]| netns::in_ns(&node.0, &[&["nft"], args].concat());
    nft(&["add", "table", "inet", "dialout"]);
    nft(&[
        "add",
        "chain",
        "inet",
        "dialout",
        "out",
        "{ type filter hook output priority 0 ; }",
    ]);
    nft(&[
        "add",
        "rule",
        "inet",
        "dialout",
        "out",
        "tcp",
        "dport",
        "179",
        "tcp",
        "flags",
        "&",
        "(syn|ack)",
        "==",
        "syn",
        "drop",
    ]);
    start_all(
        &mut lan,
        "- service: default/web\n  ips: [198.51.100.10]\n",
        IBGP_PEER,
    );
    let one = hops(&["192.0.2.11"]);
    wait_rib(
        "FRR, through its own connection",
        || frr.rib("ipv4"),
        &[("198.51.100.10/32", one)],
        SETTLE,
        || with_frr(&lan, &frr),
    );
    assert!(
        lan.log(0).contains("BGP connection from the peer taken"),
        "{}",
        lan.log(0)
    );
    // Another connection from the router while the session is up: closed at once.
    let out = netns::in_ns(
        &rt,
        &[
            "bash",
            "-c",
            "exec 3<>/dev/tcp/192.0.2.11/179 && timeout 2 cat <&3; echo rc=$?",
        ],
    );
    let said = netns::stdout(&out);
    assert!(
        !said.contains("rc=124"),
        "the connection stayed open: {said}"
    );
}
