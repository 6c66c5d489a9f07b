//! Network tests of advertisements: three `ferrolb speaker --static` nodes, each with eth0 on
//! one bridge and eth1 on another, a client on each bridge. Root only (see tests/network.rs).

mod netns;

use std::path::Path;
use std::time::Duration;

use netns::{Lan, Vip, environment_ready, ranking, wait_for};

const SETTLE: Duration = Duration::from_secs(20);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrolb"))
}

fn logs(lan: &Lan) -> String {
    (0..lan.nodes.len())
        .map(|i| format!("--- {}\n{}", lan.nodes[i].name, lan.log(i)))
        .collect()
}

fn advertise(lan: &Lan, vips: &[Vip], extra: &str) {
    for i in 0..lan.nodes.len() {
        lan.write_config_with(i, vips, &lan.key_file(), extra);
    }
}

fn only_eth1_of(nodes: &[&str]) -> String {
    format!(
        "advertisements:\n- name: lan2\n  services: [l2/web]\n  nodes: [{}]\n  interfaces: [eth1]\n",
        nodes.join(", ")
    )
}

/// A speaker log line's timestamp (`2026-12-05T04:10:16.304878Z`, UTC) as a system time.
fn log_time(stamp: &str) -> Option<std::time::SystemTime> {
    let (date, time) = stamp.strip_suffix('Z')?.split_once('T')?;
    let mut ymd = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let (hms, fraction) = time.split_once('.')?;
    let mut parts = hms.split(':').map(|p| p.parse::<u64>().ok());
    let (h, min, s) = (parts.next()??, parts.next()??, parts.next()??);
    // Days since 1970-01-01 (civil calendar, proleptic Gregorian).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    let micros: u64 = format!("{fraction:0<6}").get(..6)?.parse().ok()?;
    let secs = days * 86_400 + h * 3600 + min * 60 + s;
    Some(std::time::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros))
}

/// Three nodes on both LANs and `l2/web` at `ip`: the LAN, the second LAN, the service, and
/// the nodes (indices) in the election's order for `ip`.
fn two_lans(ip: &str) -> (Lan, netns::SecondLan, [Vip; 1], Vec<usize>) {
    let mut lan = Lan::new(3, binary());
    let second = lan.add_second_lan();
    let vips = [Vip {
        service: "l2/web".into(),
        ips: vec![ip.into()],
    }];
    let all: Vec<&str> = lan.nodes.iter().map(|n| n.name.as_str()).collect();
    let order = ranking(ip, &all)
        .iter()
        .map(|name| lan.nodes.iter().position(|n| n.name == *name).unwrap())
        .collect();
    (lan, second, vips, order)
}

/// An advertisement restricting `l2/web` to eth1 of two of the three nodes: only the ranked
/// node of those two answers, only on eth1; moving the node list moves the IP; removing the
/// advertisement silences every node and the speaker says why.
#[test]
fn advertisement_restricts_nodes_and_interfaces() {
    if !environment_ready("advertisement_restricts_nodes_and_interfaces") {
        return;
    }
    let ip = "203.0.113.50";
    let (mut lan, second, vips, order) = two_lans(ip);
    let all: Vec<&str> = lan.nodes.iter().map(|n| n.name.as_str()).collect();
    let ranked = ranking(ip, &all);
    let (first, second_ranked) = (order[0], order[1]);
    // The overall first-ranked node is left out, so the advertisement visibly decides.
    let chosen = [ranked[1].as_str(), ranked[2].as_str()];
    advertise(&lan, &vips, &only_eth1_of(&chosen));
    for i in 0..3 {
        lan.start(i);
    }

    let expect_on_eth1 = |owner: usize| {
        let want = second.macs[owner].clone();
        let got = wait_for(SETTLE, || {
            let macs = lan.arping_from(&second.client_ns, ip, 2);
            (macs.len() == 2 && macs.iter().all(|m| *m == want)).then_some(())
        });
        assert!(
            got.is_some(),
            "expected only {}'s eth1 ({want}) to answer; got {:?}\n{}",
            lan.nodes[owner].name,
            lan.arping_from(&second.client_ns, ip, 2),
            logs(&lan)
        );
        // Never on eth0: the first LAN's client gets no answer at all.
        let eth0 = lan.arping(ip, 2);
        assert!(
            eth0.is_empty(),
            "answered on eth0: {eth0:?}\n{}",
            logs(&lan)
        );
    };
    expect_on_eth1(second_ranked);

    // The node list changes to include the overall first-ranked node: the IP moves to it.
    let moved = [ranked[0].as_str(), ranked[2].as_str()];
    advertise(&lan, &vips, &only_eth1_of(&moved));
    expect_on_eth1(first);

    // No advertisement selects the service any more: nobody answers, on either LAN.
    advertise(
        &lan,
        &vips,
        "advertisements:\n- name: other\n  services: [l2/other]\n",
    );
    let silent = wait_for(SETTLE, || {
        (lan.arping_from(&second.client_ns, ip, 1).is_empty() && lan.arping(ip, 1).is_empty())
            .then_some(())
    });
    assert!(silent.is_some(), "still answered\n{}", logs(&lan));
    let said = wait_for(SETTLE, || {
        (0..3)
            .any(|i| lan.log(i).contains("no advertisement selects l2/web"))
            .then_some(())
    });
    assert!(said.is_some(), "no cause logged\n{}", logs(&lan));
}

/// Gossip on eth0, the service on eth1 (a management NIC and a service NIC). The owner's eth1
/// loses carrier for 300 ms: nothing moves, and it answers again. Then it loses carrier for
/// good: within a few seconds the next node whose eth1 is up answers, alone (the others learn
/// the owner's link state through gossip, which stays healthy on eth0). When the link comes
/// back the ranking gives the address back. (Before, a dead service link moved nothing: the
/// owner stayed elected for an address nobody could reach.)
#[test]
fn a_dead_service_link_moves_the_address_and_a_blip_does_not() {
    if !environment_ready("a_dead_service_link_moves_the_address_and_a_blip_does_not") {
        return;
    }
    let ip = "203.0.113.60";
    let (mut lan, second, vips, order) = two_lans(ip);
    let (owner, next) = (order[0], order[1]);
    let all: Vec<&str> = lan.nodes.iter().map(|n| n.name.as_str()).collect();
    advertise(&lan, &vips, &only_eth1_of(&all));
    for i in 0..3 {
        lan.start(i);
    }
    let answered_by = |lan: &Lan, node: usize, within: Duration| {
        let want = second.macs[node].clone();
        wait_for(within, || {
            let macs = lan.arping_from(&second.client_ns, ip, 2);
            (macs.len() == 2 && macs.iter().all(|m| *m == want)).then_some(())
        })
    };
    assert!(
        answered_by(&lan, owner, SETTLE).is_some(),
        "the owner never answered on eth1\n{}",
        logs(&lan)
    );

    // 10 ms ARP probes from the second LAN's client from here to the end.
    let probes = lan.start_prober_in(&second.client_ns.clone(), &[ip], 120);
    // A 300 ms blip: the owner keeps the address, nobody else takes it.
    lan.set_second_link(owner, false);
    std::thread::sleep(Duration::from_millis(300));
    lan.set_second_link(owner, true);
    // Past the 1 s debounce: had the blip counted, the next node would hold it now.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        answered_by(&lan, owner, SETTLE).is_some(),
        "the owner stopped answering after a blip\n{}",
        logs(&lan)
    );
    for other in [next, 3 - owner - next] {
        assert!(
            !lan.log(other).contains("taking ownership"),
            "{} took the address during a blip\n{}",
            lan.nodes[other].name,
            logs(&lan)
        );
    }

    // The link dies for good: the next node with eth1 up answers, alone.
    let died = std::time::Instant::now();
    lan.set_second_link(owner, false);
    assert!(
        answered_by(&lan, next, SETTLE).is_some(),
        "nobody else answered for the dead link's address\n{}",
        logs(&lan)
    );
    eprintln!(
        "service link down -> next node answering (arping, 1 s resolution): {:?}",
        died.elapsed()
    );

    // Back: the ranking decides again. The owner sends its link's return to the others from
    // the netlink event, not from a periodic rescan: printed, not asserted.
    let returned = std::time::SystemTime::now();
    lan.set_second_link(owner, true);
    assert!(
        answered_by(&lan, owner, SETTLE).is_some(),
        "the owner never took its address back\n{}",
        logs(&lan)
    );
    if let Some(sent) = lan
        .log(owner)
        .lines()
        .filter(|l| l.contains("interface state sent") && l.contains(r#"up=["eth0", "eth1"]"#))
        .filter_map(|l| log_time(l.split_whitespace().next()?))
        .find(|t| *t >= returned)
    {
        eprintln!(
            "link back -> its state sent to the others: {:?}",
            sent.duration_since(returned).unwrap_or_default()
        );
    }
    let tally = lan.finish_prober(&probes, 1).remove(0);
    // The longest silence is the link's death to the next node's first answer (debounce 1 s
    // included): printed for BENCHMARKS.md, not asserted.
    eprintln!(
        "longest silence: {} probe slots of 10 ms; {tally:?}",
        tally.longest_unanswered
    );
    assert_eq!(
        tally.double,
        0,
        "two nodes answered one request\n{}",
        logs(&lan)
    );
}
