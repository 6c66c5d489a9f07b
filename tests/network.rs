//! Network tests: three `ferrolb speaker --static` nodes and a client in namespaces on a bridge.
//! Root only; with `CI` set a missing prerequisite fails the test instead of skipping it.

mod netns;

use std::path::Path;
use std::time::Duration;

use netns::{Lan, Vip, distinct, environment_ready, ranking, wait_for};

const SETTLE: Duration = Duration::from_secs(20);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrolb"))
}

fn vip(service: &str, ips: &[&str]) -> Vip {
    Vip {
        service: service.to_string(),
        ips: ips.iter().map(|s| s.to_string()).collect(),
    }
}

/// Index of the node the election picks for `ip` among `alive`.
fn expected_owner(lan: &Lan, ip: &str, alive: &[usize]) -> usize {
    let names: Vec<&str> = alive.iter().map(|&i| lan.nodes[i].name.as_str()).collect();
    let first = ranking(ip, &names)[0].clone();
    lan.nodes.iter().position(|n| n.name == first).unwrap()
}

/// Waits until arping for `ip` is answered by exactly `owner` alone, or fails with the logs.
fn wait_single_answerer(lan: &Lan, ip: &str, owner: usize) {
    let want = lan.nodes[owner].mac.clone();
    let got = wait_for(SETTLE, || {
        let macs = lan.arping(ip, 2);
        (macs.len() == 2 && distinct(&macs).len() == 1 && macs[0] == want).then_some(())
    });
    assert!(
        got.is_some(),
        "{ip}: expected only {} ({want}) to answer; last: {:?}\nlogs:\n{}",
        lan.nodes[owner].name,
        lan.arping(ip, 2),
        logs(lan)
    );
}

fn logs(lan: &Lan) -> String {
    (0..lan.nodes.len())
        .map(|i| format!("--- {}\n{}", lan.nodes[i].name, lan.log(i)))
        .collect()
}

#[test]
fn v4_owner_answers_alone_and_client_kernel_resolves_to_it() {
    if !environment_ready("v4_owner_answers_alone") {
        return;
    }
    let mut lan = Lan::new(3, binary());
    let ip = "192.0.2.200";
    lan.start_all(&[vip("default/web", &[ip])]);
    let owner = expected_owner(&lan, ip, &[0, 1, 2]);
    wait_single_answerer(&lan, ip, owner);
    // Exactly one reply per request over several requests: nobody else chimes in.
    let macs = lan.arping(ip, 4);
    assert_eq!(macs.len(), 4, "one reply per request: {macs:?}");
    assert_eq!(distinct(&macs).len(), 1);
    // The client's own kernel resolves the VIP to the owner's MAC.
    lan.client_touch(ip);
    let entry = wait_for(SETTLE, || lan.neigh(ip)).expect("client neighbour entry");
    assert_eq!(entry.0, lan.nodes[owner].mac, "client kernel resolved {ip}");
    // Every speaker is ready (sockets open, gossip joined); only the owner counts answers.
    for i in 0..3 {
        let ready = wait_for(SETTLE, || {
            (lan.http_get(i, "/readyz").0 == 200).then_some(())
        });
        assert!(ready.is_some(), "{} not ready", lan.nodes[i].name);
    }
    let responses = format!("ferrolb_layer2_responses_sent{{ip=\"{ip}\"}}");
    let answered = lan.metric(owner, &responses).unwrap_or(0.0);
    assert!(answered >= 4.0, "owner counted {answered} responses");
    let announced = format!(
        "ferrolb_speaker_announced{{ip=\"{ip}\",node=\"{}\",service=\"default/web\"}}",
        lan.nodes[owner].name
    );
    assert_eq!(lan.metric(owner, &announced), Some(1.0));
    for other in (0..3).filter(|&i| i != owner) {
        assert_eq!(
            lan.metric(other, &responses),
            None,
            "non-owner has a series"
        );
    }
}

/// Waits until ndisc6 for `ip` is answered by `owner` alone.
fn wait_single_ndp_answerer(lan: &Lan, ip: &str, owner: usize) {
    let want = lan.nodes[owner].mac.clone();
    let got = wait_for(SETTLE, || {
        let macs = lan.ndisc6(ip);
        (!macs.is_empty() && macs.iter().all(|m| *m == want)).then_some(())
    });
    assert!(
        got.is_some(),
        "{ip}: expected only {} ({want}) to answer NDP; last: {:?}\nlogs:\n{}",
        lan.nodes[owner].name,
        lan.ndisc6(ip),
        logs(lan)
    );
}

/// Waits, without sending the VIP anything, until the client's entry for `ip` has `mac`.
fn wait_neigh_moves_to(lan: &Lan, ip: &str, owner: usize) {
    let want = lan.nodes[owner].mac.clone();
    let got = wait_for(SETTLE, || {
        lan.neigh(ip).filter(|(mac, _)| *mac == want).map(|_| ())
    });
    assert!(
        got.is_some(),
        "{ip}: client entry never moved to {} ({want}); entry {:?}\nlogs:\n{}",
        lan.nodes[owner].name,
        lan.neigh(ip),
        logs(lan)
    );
}

#[test]
fn v6_owner_answers_solicitations_and_unicast_nud() {
    if !environment_ready("v6_owner_answers") {
        return;
    }
    let mut lan = Lan::new(3, binary());
    let ip = "2001:db8::200";
    lan.start_all(&[vip("default/web6", &[ip])]);
    let owner = expected_owner(&lan, ip, &[0, 1, 2]);
    wait_single_ndp_answerer(&lan, ip, owner);
    // Kernel resolution through the solicited-node group.
    lan.client_touch(ip);
    let entry = wait_for(SETTLE, || lan.neigh(ip)).expect("client neighbour entry");
    assert_eq!(entry.0, lan.nodes[owner].mac);
    // Unicast NUD: a stale entry probed with a unicast solicitation becomes REACHABLE only
    // through a solicited advertisement, i.e. only if the owner answers the unicast probe.
    netns::run(
        "ip",
        &[
            "-n",
            &lan.client_ns,
            "-6",
            "neigh",
            "replace",
            ip,
            "lladdr",
            &lan.nodes[owner].mac,
            "dev",
            "eth0",
            "nud",
            "stale",
        ],
    );
    assert_eq!(lan.neigh(ip).map(|e| e.1), Some("STALE".to_string()));
    let reachable = wait_for(SETTLE, || {
        lan.client_touch(ip);
        lan.neigh(ip).filter(|(_, state)| state == "REACHABLE")
    });
    assert!(
        reachable.is_some(),
        "unicast NUD unanswered: {:?}",
        lan.neigh(ip)
    );
}

#[test]
fn non_owners_never_answer() {
    if !environment_ready("non_owners_never_answer") {
        return;
    }
    let mut lan = Lan::new(3, binary());
    let v4: Vec<String> = (201..207).map(|i| format!("192.0.2.{i}")).collect();
    let v6: Vec<String> = (201..204).map(|i| format!("2001:db8::{i}")).collect();
    let mut vips: Vec<Vip> = v4
        .iter()
        .map(|ip| vip(&format!("ns/v4-{ip}"), &[ip]))
        .collect();
    vips.extend(v6.iter().map(|ip| vip(&format!("ns/v6-{ip}"), &[ip])));
    lan.start_all(&vips);
    let owners: Vec<usize> = v4
        .iter()
        .map(|ip| expected_owner(&lan, ip, &[0, 1, 2]))
        .collect();
    assert!(
        distinct(&owners.iter().map(|o| o.to_string()).collect::<Vec<_>>()).len() >= 2,
        "the VIPs should spread over several nodes"
    );
    wait_single_answerer(&lan, &v4[0], owners[0]);
    // Ask for every VIP concurrently and count every reply: one per request, from the owner.
    std::thread::scope(|s| {
        let lan = &lan;
        let handles: Vec<_> = v4
            .iter()
            .zip(&owners)
            .map(|(ip, &owner)| s.spawn(move || (ip, owner, lan.arping(ip, 3))))
            .collect();
        for h in handles {
            let (ip, owner, macs) = h.join().unwrap();
            assert_eq!(macs.len(), 3, "{ip}: one reply per request, got {macs:?}");
            assert!(
                macs.iter().all(|m| *m == lan.nodes[owner].mac),
                "{ip}: a non-owner answered: {macs:?} (owner {})",
                lan.nodes[owner].mac
            );
        }
    });
    for ip in &v6 {
        let owner = expected_owner(&lan, ip, &[0, 1, 2]);
        wait_single_ndp_answerer(&lan, ip, owner);
    }
}

/// Crash or stop the owner of a dual-stack service; the next-ranked node must take over and
/// the client's existing entries must move to it from the unsolicited announcements alone.
fn failover(signal: &str) {
    let mut lan = Lan::new(3, binary());
    let (ip4, ip6) = ("192.0.2.210", "2001:db8::210");
    lan.start_all(&[vip("default/dual", &[ip4, ip6])]);
    let owner = expected_owner(&lan, ip4, &[0, 1, 2]);
    wait_single_answerer(&lan, ip4, owner);
    wait_single_ndp_answerer(&lan, ip6, owner);
    for ip in [ip4, ip6] {
        lan.client_touch(ip);
        wait_neigh_moves_to(&lan, ip, owner);
    }
    lan.signal(owner, signal);
    let rest: Vec<usize> = (0..3).filter(|&i| i != owner).collect();
    let next = expected_owner(&lan, ip4, &rest);
    // No traffic to the VIPs from here on until the entries have moved.
    wait_neigh_moves_to(&lan, ip4, next);
    wait_neigh_moves_to(&lan, ip6, next);
    wait_single_answerer(&lan, ip4, next);
    wait_single_ndp_answerer(&lan, ip6, next);
}

#[test]
fn sigkill_of_the_owner_moves_the_ip_and_the_client_entry() {
    if !environment_ready("sigkill_failover") {
        return;
    }
    failover("KILL");
}

#[test]
fn sigterm_of_the_owner_hands_over_at_once() {
    if !environment_ready("sigterm_failover") {
        return;
    }
    failover("TERM");
}

#[test]
fn sigterm_releases_leaves_and_exits_cleanly() {
    if !environment_ready("sigterm_clean_exit") {
        return;
    }
    let mut lan = Lan::new(2, binary());
    let ip = "192.0.2.211";
    lan.start_all(&[vip("default/one", &[ip])]);
    let owner = expected_owner(&lan, ip, &[0, 1]);
    wait_single_answerer(&lan, ip, owner);
    let mut child = lan.nodes[owner].child.take().unwrap();
    netns::run("kill", &["-TERM", &child.id().to_string()]);
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "speaker exit status after SIGTERM: {status}"
    );
    let log = lan.log(owner);
    assert!(log.contains("leaving the gossip cluster"), "{log}");
    wait_single_answerer(&lan, ip, 1 - owner);
}

#[test]
fn restarted_owner_gets_its_ip_back_and_re_announces() {
    if !environment_ready("restart_returns") {
        return;
    }
    let mut lan = Lan::new(3, binary());
    let ip = "192.0.2.220";
    lan.start_all(&[vip("default/back", &[ip])]);
    let owner = expected_owner(&lan, ip, &[0, 1, 2]);
    wait_single_answerer(&lan, ip, owner);
    lan.client_touch(ip);
    wait_neigh_moves_to(&lan, ip, owner);
    lan.signal(owner, "KILL");
    let rest: Vec<usize> = (0..3).filter(|&i| i != owner).collect();
    let next = expected_owner(&lan, ip, &rest);
    wait_neigh_moves_to(&lan, ip, next);
    lan.start(owner);
    // Back per the ranking, and the client learns it from the re-announcement alone.
    wait_neigh_moves_to(&lan, ip, owner);
    wait_single_answerer(&lan, ip, owner);
}

#[test]
fn partitioned_node_heals_to_a_single_answerer() {
    if !environment_ready("partition_heal") {
        return;
    }
    let mut lan = Lan::new(3, binary());
    let ips = ["192.0.2.230", "192.0.2.231", "192.0.2.232", "192.0.2.233"];
    let vips: Vec<Vip> = ips
        .iter()
        .map(|ip| vip(&format!("p/{ip}"), &[ip]))
        .collect();
    lan.start_all(&vips);
    let owner = expected_owner(&lan, ips[0], &[0, 1, 2]);
    wait_single_answerer(&lan, ips[0], owner);
    lan.set_link(owner, false);
    let rest: Vec<usize> = (0..3).filter(|&i| i != owner).collect();
    wait_single_answerer(&lan, ips[0], expected_owner(&lan, ips[0], &rest));
    lan.set_link(owner, true);
    for ip in ips {
        wait_single_answerer(&lan, ip, expected_owner(&lan, ip, &[0, 1, 2]));
    }
}

#[test]
fn wrong_gossip_key_neither_joins_nor_takes_an_ip() {
    if !environment_ready("wrong_key") {
        return;
    }
    let mut lan = Lan::new(3, binary());
    // VIPs the intruder (node-c, index 2) would own if it were accepted.
    let wanted: Vec<String> = (240..255)
        .map(|i| format!("192.0.2.{i}"))
        .filter(|ip| expected_owner(&lan, ip, &[0, 1, 2]) == 2)
        .take(2)
        .collect();
    assert!(!wanted.is_empty());
    let vips: Vec<Vip> = wanted
        .iter()
        .map(|ip| vip(&format!("k/{ip}"), &[ip]))
        .collect();
    let bad_key = lan.dir.path().join("bad-key");
    std::fs::write(&bad_key, "a-completely-different-key-987654").unwrap();
    lan.write_config(0, &vips, &lan.key_file());
    lan.write_config(1, &vips, &lan.key_file());
    lan.write_config(2, &vips, &bad_key);
    for i in 0..3 {
        lan.start(i);
    }
    for ip in &wanted {
        wait_single_answerer(&lan, ip, expected_owner(&lan, ip, &[0, 1]));
    }
    // Proof that both sides have decided, rather than a pause: each member has refused several
    // of the intruder's announcements (it re-announces every second while alone), and the
    // intruder has not joined (/readyz 503, it sees itself alone), so it may not elect.
    let refused = "ferrolb_gossip_packets_dropped_total{reason=\"auth\"}";
    for i in 0..2 {
        let got = wait_for(SETTLE, || (lan.metric(i, refused)? >= 3.0).then_some(()));
        assert!(
            got.is_some(),
            "{} never refused the intruder: {:?}\n{}",
            lan.nodes[i].name,
            lan.metric(i, refused),
            logs(&lan)
        );
        assert_eq!(lan.metric(i, "ferrolb_members{state=\"alive\"}"), Some(2.0));
    }
    let not_joined = wait_for(SETTLE, || {
        (lan.http_get(2, "/readyz").0 == 503).then_some(())
    });
    assert!(
        not_joined.is_some(),
        "the intruder's /readyz: {:?}",
        lan.http_get(2, "/readyz")
    );
    assert_eq!(lan.metric(2, "ferrolb_members{state=\"alive\"}"), Some(1.0));
    for ip in &wanted {
        let owner = &lan.nodes[expected_owner(&lan, ip, &[0, 1])].mac;
        let macs = lan.arping(ip, 2);
        assert!(
            macs.len() == 2 && macs.iter().all(|m| m == owner),
            "{ip}: answered by {macs:?}, not {owner} alone (intruder {})",
            lan.nodes[2].mac
        );
    }
    assert!(
        lan.running(2),
        "the intruder keeps running, it is just not admitted"
    );
    let intruder = lan.log(2);
    assert!(!intruder.contains("joined the cluster"), "{intruder}");
    assert!(!intruder.contains("taking ownership"), "{intruder}");
    for i in 0..2 {
        assert!(!lan.log(i).contains("member=node-c"), "{}", lan.log(i));
    }
}

#[test]
fn malformed_frames_do_not_crash_or_change_answers() {
    if !environment_ready("malformed_frames") {
        return;
    }
    let mut lan = Lan::new(3, binary());
    let (ip4, ip6) = ("192.0.2.215", "2001:db8::215");
    lan.start_all(&[vip("m/v4", &[ip4]), vip("m/v6", &[ip6])]);
    let owner4 = expected_owner(&lan, ip4, &[0, 1, 2]);
    let owner6 = expected_owner(&lan, ip6, &[0, 1, 2]);
    wait_single_answerer(&lan, ip4, owner4);
    wait_single_ndp_answerer(&lan, ip6, owner6);
    for node in 0..3 {
        let sent = lan.send_junk(ip4, ip6, &lan.nodes[node].mac.clone(), 1500);
        assert!(sent > 1000, "junk frames sent: {sent}");
    }
    // These requests reach the owners' sockets behind the junk: answered, the junk was read.
    let macs = lan.arping(ip4, 3);
    assert_eq!(macs.len(), 3, "{macs:?}");
    assert!(macs.iter().all(|m| *m == lan.nodes[owner4].mac), "{macs:?}");
    wait_single_ndp_answerer(&lan, ip6, owner6);
    for i in 0..3 {
        assert!(
            lan.running(i),
            "{} died:\n{}",
            lan.nodes[i].name,
            lan.log(i)
        );
    }
}

#[test]
fn static_file_changes_apply_and_broken_files_are_ignored() {
    if !environment_ready("static_file_reload") {
        return;
    }
    let mut lan = Lan::new(2, binary());
    let (a, b) = ("192.0.2.221", "192.0.2.222");
    lan.start_all(&[vip("r/a", &[a])]);
    wait_single_answerer(&lan, a, expected_owner(&lan, a, &[0, 1]));
    assert!(lan.arping(b, 1).is_empty(), "{b} is not configured yet");
    // Added while running: answered by its owner.
    for i in 0..2 {
        lan.write_config(i, &[vip("r/a", &[a]), vip("r/b", &[b])], &lan.key_file());
    }
    wait_single_answerer(&lan, b, expected_owner(&lan, b, &[0, 1]));
    // A broken file is refused and the last good one stays in force.
    for i in 0..2 {
        std::fs::write(&lan.nodes[i].config, "node: [unclosed\n").unwrap();
    }
    let refused = wait_for(SETTLE, || {
        (0..2)
            .all(|i| lan.log(i).contains("static speaker file rejected"))
            .then_some(())
    });
    assert!(refused.is_some(), "{}", logs(&lan));
    wait_single_answerer(&lan, a, expected_owner(&lan, a, &[0, 1]));
    wait_single_answerer(&lan, b, expected_owner(&lan, b, &[0, 1]));
    // Removed: nobody answers any more.
    for i in 0..2 {
        lan.write_config(i, &[vip("r/b", &[b])], &lan.key_file());
    }
    let silent = wait_for(SETTLE, || lan.arping(a, 1).is_empty().then_some(()));
    assert!(silent.is_some(), "{a} still answered after removal");
}

/// Per-IP series exist only for IPs with traffic, and all of an IP's series go when the node
/// stops announcing it (here: the IP is removed from the static file).
#[test]
fn per_ip_series_follow_traffic_and_ownership() {
    if !environment_ready("per_ip_series") {
        return;
    }
    let mut lan = Lan::new(1, binary());
    let (asked, quiet) = ("192.0.2.231", "192.0.2.232");
    lan.start_all(&[vip("m/asked", &[asked]), vip("m/quiet", &[quiet])]);
    wait_single_answerer(&lan, asked, 0);
    let series = |ip: &str| -> Vec<String> {
        let (_, body) = lan.http_get(0, "/metrics");
        body.lines()
            .filter(|l| !l.starts_with('#') && l.contains(&format!("ip=\"{ip}\"")))
            .map(|l| l.split_once(' ').map_or(l, |(s, _)| s).to_string())
            .collect()
    };
    // The quiet IP has been announced (gratuitous ARP) but never asked about.
    let quiet_series = wait_for(SETTLE, || {
        let s = series(quiet);
        (s.len() == 2).then_some(s)
    });
    assert_eq!(
        quiet_series.unwrap_or_else(|| series(quiet)),
        [
            format!("ferrolb_layer2_gratuitous_sent{{ip=\"{quiet}\"}}"),
            format!(
                "ferrolb_speaker_announced{{ip=\"{quiet}\",node=\"node-a\",service=\"m/quiet\"}}"
            ),
        ]
    );
    let requests = format!("ferrolb_layer2_requests_received{{ip=\"{asked}\"}}");
    assert!(
        lan.metric(0, &requests).unwrap_or(0.0) >= 2.0,
        "{:?}",
        series(asked)
    );
    assert_eq!(series(asked).len(), 4, "{:?}", series(asked));

    // No longer announced: every series of the IP is gone, the other IP's stay.
    lan.write_config(0, &[vip("m/quiet", &[quiet])], &lan.key_file());
    let gone = wait_for(SETTLE, || series(asked).is_empty().then_some(()));
    assert!(gone.is_some(), "still exported: {:?}", series(asked));
    assert_eq!(series(quiet).len(), 2, "{:?}", series(quiet));
}

/// Where `line` first occurs in `log` on a line that also names `member`.
fn line_about(log: &str, line: &str, member: &str) -> Option<usize> {
    log.lines()
        .position(|l| l.contains(line) && l.contains(&format!("member={member}")))
}

/// A SIGKILLed speaker whose host stays up: the host's kernel answers the survivors' next probe
/// with ICMP port unreachable, so they suspect it at once and declare it down when it does not
/// refute, instead of waiting for the probe to time out (docs/user-guide.md, "Failover").
#[test]
fn a_killed_speaker_whose_host_answers_port_unreachable_is_suspected_at_once() {
    if !environment_ready("icmp_suspicion") {
        return;
    }
    let mut lan = Lan::new(3, binary());
    let ip = "192.0.2.220";
    lan.start_all(&[vip("default/icmp", &[ip])]);
    let owner = expected_owner(&lan, ip, &[0, 1, 2]);
    wait_single_answerer(&lan, ip, owner);
    let victim = lan.nodes[owner].name.clone();
    lan.signal(owner, "KILL");
    let rest: Vec<usize> = (0..3).filter(|&i| i != owner).collect();
    wait_single_answerer(&lan, ip, expected_owner(&lan, ip, &rest));
    let down = wait_for(SETTLE, || {
        rest.iter()
            .all(|&i| line_about(&lan.log(i), "gossip: member down", &victim).is_some())
            .then_some(())
    });
    assert!(
        down.is_some(),
        "{victim} never declared down\n{}",
        logs(&lan)
    );
    // On some survivor the unrefuted port-unreachable suspicion is what declared it down: the
    // suspicion came first, then the ICMP path's own verdict, then the member down.
    let by_icmp = rest.iter().copied().find(|&i| {
        let log = lan.log(i);
        let suspected = line_about(&log, "gossip: member suspected: port unreachable", &victim);
        let confirmed = line_about(
            &log,
            "gossip: port-unreachable suspicion not refuted",
            &victim,
        );
        let down = line_about(&log, "gossip: member down", &victim);
        matches!((suspected, confirmed, down), (Some(s), Some(c), Some(d)) if s < c && c <= d)
    });
    let Some(survivor) = by_icmp else {
        panic!(
            "no survivor declared {victim} down from ICMP\n{}",
            logs(&lan)
        );
    };
    let counted = lan.metric(survivor, "ferrolb_gossip_icmp_suspicions_total");
    assert!(counted.unwrap_or(0.0) >= 1.0, "{counted:?}");
    // No survivor was declared down, by the ICMP path or any other. (A survivor may have been
    // suspected and refuted: a port unreachable about a datagram sent to it before its socket
    // was bound can be read after it joined.)
    let survivors: Vec<&str> = rest.iter().map(|&i| lan.nodes[i].name.as_str()).collect();
    for &i in &rest {
        let log = lan.log(i);
        for name in &survivors {
            for line in [
                "gossip: port-unreachable suspicion not refuted",
                "gossip: member down",
            ] {
                assert!(
                    line_about(&log, line, name).is_none(),
                    "{}: {line} {name}\n{}",
                    lan.nodes[i].name,
                    logs(&lan)
                );
            }
        }
    }
}
