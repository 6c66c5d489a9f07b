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

/// An advertisement restricting `l2/web` to eth1 of two of the three nodes: only the ranked
/// node of those two answers, only on eth1; moving the node list moves the IP; removing the
/// advertisement silences every node and the speaker says why.
#[test]
fn advertisement_restricts_nodes_and_interfaces() {
    if !environment_ready("advertisement_restricts_nodes_and_interfaces") {
        return;
    }
    let mut lan = Lan::new(3, binary());
    let second = lan.add_second_lan();
    let ip = "203.0.113.50";
    let vips = [Vip {
        service: "l2/web".into(),
        ips: vec![ip.into()],
    }];
    let all: Vec<&str> = lan.nodes.iter().map(|n| n.name.as_str()).collect();
    let ranked = ranking(ip, &all);
    let index = |name: &str| lan.nodes.iter().position(|n| n.name == name).unwrap();
    let (first, second_ranked) = (index(&ranked[0]), index(&ranked[1]));
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
