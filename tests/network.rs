//! Network tests: three `ferrolb speaker --static` nodes and a client in namespaces on a bridge.
//! Root only; with `CI` set a missing prerequisite fails the test instead of skipping it.

mod netns;

use std::path::Path;
use std::time::Duration;

use netns::{Lan, Vip, distinct, environment_ready, ranking, wait_for};

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
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
}
