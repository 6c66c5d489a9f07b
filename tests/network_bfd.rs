//! BFD network tests: a `ferrolb speaker --static` node peers over eBGP with FRR (bgpd, zebra and
//! bfdd in a namespace of their own) with `neighbor X bfd` on FRR's side and a `bfd:` profile on
//! the speaker's, and the tests read FRR's BFD peers and RIB: the session comes up (also from a
//! passive speaker, over IPv6), a frozen speaker's route is gone within the BFD detection time
//! instead of the 90 s hold time, and a link fault takes BFD and the route down until it clears.
//! Root only; with `CI` set a missing prerequisite fails instead of skipping. Times are printed,
//! and asserted only against the hold time.

mod bgp_routers;
mod netns;

use std::path::Path;
use std::time::{Duration, Instant};

use bgp_routers::{BFDD, BGPD, Frr, ZEBRA, frr_conf, hops, logs, start_all, wait_rib};
use netns::{Lan, environment_ready_with, in_ns, run, stdout, wait_for};

/// How long sessions and routes get to appear or come back.
const SETTLE: Duration = Duration::from_secs(40);
/// The BGP hold time the speaker offers: far longer than any BFD detection here.
const HOLD: u64 = 90;
/// Well under the hold time: a withdrawal sooner than this was BFD's doing.
const WITHIN: Duration = Duration::from_secs(5);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrolb"))
}

fn ready(test: &str) -> bool {
    let frr = [BGPD, ZEBRA, BFDD].iter().all(|d| Path::new(d).is_file());
    if !frr && std::env::var_os("CI").is_none() {
        eprintln!("SKIPPED: {test} needs FRR with bfdd (run scripts/install-test-tools.sh)");
        return false;
    }
    environment_ready_with(test, &["vtysh", "nft"])
}

/// bfdd's profile: 100 ms both ways, ×3 (a 300 ms detection time).
const FRR_BFD: &str = "bfd\n profile fast\n  transmit-interval 100\n  receive-interval 100\n  \
                       detect-multiplier 3\n !\n!\n";

/// FRR at 192.0.2.1 / 2001:db8::1 (AS 64512), peering with BFD with `neighbor` (in AS
/// `neighbor_as`: 64513 for eBGP, 64512 for iBGP) for `afi`.
fn frr_with_bfd(lan: &mut Lan, neighbor: &str, neighbor_as: u32, afi: &str) -> Frr {
    let rt = lan.add_host("rt", "v8", "192.0.2.1", "2001:db8::1").0;
    let conf = frr_conf(
        64512,
        "192.0.2.1",
        &[(neighbor, neighbor_as, "bfd\nbfd profile fast")],
        afi,
    );
    Frr::start_with_bfd(lan, &rt, "frr", &conf, FRR_BFD)
}

/// The speaker's `bgp:` section: FRR as its one peer (eBGP from AS 64513), with `bfd` as the
/// peer's `bfd:`.
fn speaker_bgp(peer: &str, bfd: &str) -> String {
    speaker_bgp_as(peer, 64513, bfd)
}

fn speaker_bgp_as(peer: &str, my_as: u32, bfd: &str) -> String {
    format!(
        "  peers:\n  - {{name: rt, peer-address: '{peer}', peer-asn: 64512, my-asn: {my_as}, \
         hold-time: {HOLD}, connect-time: 2, bfd: {bfd}}}\n"
    )
}

const FAST: &str = "{receive-interval: 100, transmit-interval: 100, detect-multiplier: 3}";

fn bfd_status(frr: &Frr, peer: &str) -> String {
    frr.bfd_peer(peer)["status"]
        .as_str()
        .unwrap_or("?")
        .to_string()
}

fn context(lan: &Lan, frr: &Frr) -> String {
    format!(
        "{}\nbgpd:\n{}\nbfdd:\n{}\nbfd peers: {}",
        logs(lan),
        frr.log(),
        frr.bfd_log(),
        frr.vtysh("show bfd peers json")
    )
}

/// Waits until FRR's BFD session with `peer` is up, and has taken our fast timers (the Poll
/// sequence after Up finished).
fn wait_bfd_up(lan: &Lan, frr: &Frr, peer: &str) {
    let up = wait_for(SETTLE, || {
        let p = frr.bfd_peer(peer);
        (p["status"] == "up" && p["remote-transmit-interval"] == 100).then_some(())
    });
    assert!(up.is_some(), "BFD not up: {}", context(lan, frr));
}

/// One speaker announcing 198.51.100.10 to FRR, BFD up and the route held.
fn one_speaker(profile: &str) -> (Lan, Frr) {
    let mut lan = Lan::new(1, binary());
    let frr = frr_with_bfd(&mut lan, "192.0.2.11", 64513, "ipv4");
    let addresses = "- service: default/web\n  ips: [198.51.100.10]\n";
    start_all(&mut lan, addresses, &speaker_bgp("192.0.2.1", profile));
    let want = [("198.51.100.10/32", hops(&["192.0.2.11"]))];
    let ctx = || context(&lan, &frr);
    wait_rib("FRR", || frr.rib("ipv4"), &want, SETTLE, ctx);
    wait_bfd_up(&lan, &frr, "192.0.2.11");
    (lan, frr)
}

fn wait_route_gone(lan: &Lan, frr: &Frr, what: &str) -> Duration {
    let started = Instant::now();
    let gone = wait_for(Duration::from_secs(HOLD + 30), || {
        (!frr.rib("ipv4").contains_key("198.51.100.10/32")).then_some(())
    });
    assert!(gone.is_some(), "{what}: still held: {}", context(lan, frr));
    started.elapsed()
}

#[test]
fn bfd_comes_up_and_a_frozen_speaker_s_route_goes_within_the_detection_time() {
    if !ready("bfd_frozen_speaker") {
        return;
    }
    let (mut lan, frr) = one_speaker(FAST);
    let peer = frr.bfd_peer("192.0.2.11");
    eprintln!("FRR's BFD peer: {peer}");
    assert_eq!(peer["multihop"], false, "{peer}");
    assert_eq!(peer["remote-detect-multiplier"], 3, "{peer}");
    assert_eq!(peer["remote-receive-interval"], 100, "{peer}");

    // SIGSTOP: no TCP reset, no Cease, no AdminDown; only BFD can tell within the hold time.
    let pid = lan.nodes[0].child.as_ref().expect("runs").id().to_string();
    run("kill", &["-STOP", &pid]);
    let took = wait_route_gone(&lan, &frr, "after SIGSTOP");
    eprintln!(
        "SIGSTOP to route gone from FRR's RIB: {took:?} (BFD 100 ms x3; BGP hold time {HOLD} s)"
    );
    assert!(took < WITHIN, "{took:?}: not BFD\n{}", context(&lan, &frr));
    assert_eq!(bfd_status(&frr, "192.0.2.11"), "down");
    // FRR closed the BGP session for BFD (it too says Cease / BFD Down, RFC 9384).
    let neighbor = frr.neighbor("192.0.2.11");
    eprintln!(
        "FRR's last notification: {}",
        neighbor["lastNotificationReason"]
    );
    // (It says so in the notification it sent, or, before that shows, in the reset's reason.)
    let said = |field: &str| {
        neighbor[field]
            .as_str()
            .is_some_and(|r| r.to_lowercase().contains("bfd down"))
    };
    assert!(
        said("lastNotificationReason") || said("lastResetDueTo"),
        "{neighbor}"
    );

    // Thawed: it finds its BFD and BGP sessions gone, and both come back.
    run("kill", &["-CONT", &pid]);
    let started = Instant::now();
    let want = [("198.51.100.10/32", hops(&["192.0.2.11"]))];
    let ctx = || context(&lan, &frr);
    wait_rib("FRR after SIGCONT", || frr.rib("ipv4"), &want, SETTLE, ctx);
    wait_bfd_up(&lan, &frr, "192.0.2.11");
    eprintln!("SIGCONT to route back: {:?}", started.elapsed());
    assert!(lan.log(0).contains("BFD session down"), "{}", lan.log(0));
    lan.signal(0, "TERM");
}

#[test]
fn a_link_fault_takes_bfd_and_the_route_down_and_both_return_when_it_clears() {
    if !ready("bfd_link_fault") {
        return;
    }
    let (lan, frr) = one_speaker(FAST);
    // Every packet in and out of the speaker's eth0 dropped (nftables in its namespace).
    let ns = lan.nodes[0].ns.clone();
    let rules = lan.dir.path().join("fault.nft");
    std::fs::write(
        &rules,
        "table inet bfdfault {\n chain in { type filter hook input priority 0; policy accept; \
         iifname \"eth0\" drop; }\n chain out { type filter hook output priority 0; policy \
         accept; oifname \"eth0\" drop; }\n}\n",
    )
    .expect("write rules");
    let out = in_ns(&ns, &["nft", "-f", rules.to_str().unwrap()]);
    assert!(out.status.success(), "nft: {}", stdout(&out));
    let took = wait_route_gone(&lan, &frr, "after the link fault");
    eprintln!("link fault to route gone from FRR's RIB: {took:?} (BGP hold time {HOLD} s)");
    assert!(took < WITHIN, "{took:?}: not BFD\n{}", context(&lan, &frr));
    let down = wait_for(Duration::from_secs(5), || {
        lan.log(0).contains("BFD session down").then_some(())
    });
    assert!(
        down.is_some(),
        "the speaker saw no BFD failure: {}",
        lan.log(0)
    );
    assert!(
        lan.log(0).contains("closing the BGP session"),
        "{}",
        lan.log(0)
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(bfd_status(&frr, "192.0.2.11"), "down");

    let out = in_ns(&ns, &["nft", "delete", "table", "inet", "bfdfault"]);
    assert!(out.status.success(), "nft: {}", stdout(&out));
    let started = Instant::now();
    wait_bfd_up(&lan, &frr, "192.0.2.11");
    let bfd_back = started.elapsed();
    let want = [("198.51.100.10/32", hops(&["192.0.2.11"]))];
    let ctx = || context(&lan, &frr);
    wait_rib(
        "FRR after the fault",
        || frr.rib("ipv4"),
        &want,
        SETTLE,
        ctx,
    );
    eprintln!(
        "fault cleared to BFD up: {bfd_back:?}, to route back: {:?}",
        started.elapsed()
    );
}

#[test]
fn a_passive_speaker_comes_up_over_ipv6_because_frr_is_active() {
    if !ready("bfd_passive_ipv6") {
        return;
    }
    let mut lan = Lan::new(1, binary());
    let frr = frr_with_bfd(&mut lan, "2001:db8::11", 64513, "ipv6");
    let addresses = "- service: default/web6\n  ips: ['2001:db8:100::10']\n";
    let passive = "{receive-interval: 100, transmit-interval: 100, passive-mode: true}";
    start_all(&mut lan, addresses, &speaker_bgp("2001:db8::1", passive));
    let want = [("2001:db8:100::10/128", hops(&["2001:db8::11"]))];
    let ctx = || context(&lan, &frr);
    wait_rib("FRR, IPv6", || frr.rib("ipv6"), &want, SETTLE, ctx);
    wait_bfd_up(&lan, &frr, "2001:db8::11");
    let peer = frr.bfd_peer("2001:db8::11");
    eprintln!("FRR's BFD peer: {peer}");
    assert_eq!(peer["multihop"], false, "{peer}");
    assert!(lan.log(0).contains("BFD session up"), "{}", lan.log(0));
}

/// iBGP with the router on the node's subnet: FRR runs single-hop BFD for it (multi-hop only for
/// an iBGP neighbor on no shared network), and so does the speaker; the session comes up and a
/// frozen speaker's route goes within the detection time.
#[test]
fn an_ibgp_peer_on_the_node_s_subnet_gets_single_hop_bfd_as_frr_runs_it() {
    if !ready("an_ibgp_peer_gets_single_hop_bfd") {
        return;
    }
    let mut lan = Lan::new(1, binary());
    let frr = frr_with_bfd(&mut lan, "192.0.2.11", 64512, "ipv4");
    let addresses = "- service: default/web\n  ips: [198.51.100.10]\n";
    start_all(
        &mut lan,
        addresses,
        &speaker_bgp_as("192.0.2.1", 64512, FAST),
    );
    let want = [("198.51.100.10/32", hops(&["192.0.2.11"]))];
    let ctx = || context(&lan, &frr);
    wait_rib("FRR, iBGP", || frr.rib("ipv4"), &want, SETTLE, ctx);
    wait_bfd_up(&lan, &frr, "192.0.2.11");
    let peer = frr.bfd_peer("192.0.2.11");
    assert_eq!(peer["multihop"], false, "{peer}");
    let pid = lan.nodes[0].child.as_ref().expect("runs").id().to_string();
    run("kill", &["-STOP", &pid]);
    let took = wait_route_gone(&lan, &frr, "after SIGSTOP, iBGP");
    eprintln!("iBGP BFD: SIGSTOP to route gone from FRR's RIB: {took:?}");
    assert!(took < WITHIN, "{took:?}: not BFD\n{}", context(&lan, &frr));
    run("kill", &["-CONT", &pid]);
}
