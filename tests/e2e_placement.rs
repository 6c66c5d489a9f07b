//! Sticky ownership and even spread on real speakers in Kubernetes mode (network namespaces, a
//! real API server): with `--sticky-ownership` an address stays on the node that took it over
//! when its old owner comes back (one move, never two answerers, 10 ms probes); with
//! `--even-spread` 60 addresses over three nodes are 20 each, after a whole-cluster restart
//! exactly where `plan --even-spread` puts them, a node's death moves only its own, its return
//! a third.
//! ServiceL2Status objects and `ferrolb_speaker_announced` follow in both.
//!
//! Needs root (network namespaces), `arping`, `socat` and KUBEBUILDER_ASSETS; skipped
//! otherwise, failed under `CI=true`.

mod e2e;
mod netns;
#[path = "e2e/speaker_lan.rs"]
mod speaker_lan;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::Api;
use serde_json::json;

use e2e::api::{create_service, lb_service, wait_for_ips};
use e2e::{APPS, NAMESPACE};
use netns::wait_for;
use speaker_lan::{
    Setup, announced_by, answered_service, assert_only_answerer, plan_table, set_endpoints,
    setup_with, speaker_pod_name, start_kube_speaker_with,
};

const STICKY: &[&str] = &["--sticky-ownership"];
const EVEN: &[&str] = &["--even-spread"];

/// 60 addresses, none of them the LAN's own (the prober asks from 192.0.2.100).
const POOL60: &str = "address-pools:
- name: lan
  protocol: layer2
  addresses:
  - 203.0.113.1-203.0.113.60
";

/// SIGKILLs the speakers `nodes` and starts them again (back to back) as the DaemonSet would,
/// with `args`; waits until each is ready (joined, and heard the others' claims).
fn restart(cluster: &mut speaker_lan::Cluster, nodes: &[usize], args: &[&str]) {
    for &i in nodes {
        cluster.lan.signal(i, "KILL");
    }
    let kubeconfig = cluster
        .plane
        .lan_kubeconfig()
        .expect("namespaced control plane")
        .to_path_buf();
    for &i in nodes {
        let pod = speaker_pod_name(&cluster.lan.nodes[i].name);
        start_kube_speaker_with(
            &mut cluster.lan,
            i,
            &kubeconfig,
            &[("POD_NAME", &pod)],
            args,
        );
    }
    for &i in nodes {
        let ready = wait_for(Duration::from_secs(60), || {
            (cluster.lan.http_get(i, "/readyz").0 == 200).then_some(())
        });
        assert!(ready.is_some(), "speaker {i} never became ready again");
    }
}

/// Waits until ARP for `ip` is answered by node `i` alone (while the prober runs, arping also
/// hears the replies to its requests: every reply must be `i`'s).
fn wait_answered_by(lan: &netns::Lan, ip: &str, i: usize) {
    let want = &lan.nodes[i].mac;
    let alone = wait_for(Duration::from_secs(60), || {
        let macs = lan.arping(ip, 2);
        (!macs.is_empty() && macs.iter().all(|m| m == want)).then_some(())
    });
    let name = &lan.nodes[i].name;
    assert!(
        alone.is_some(),
        "{ip}: never answered by {name} alone: {:?}",
        lan.arping(ip, 2)
    );
}

/// The addresses each running speaker says it announces (`ferrolb_speaker_announced`), by
/// address: the node's index.
fn announced(lan: &netns::Lan, nodes: &[usize]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for &i in nodes {
        let (status, body) = lan.http_get(i, "/metrics");
        if status != 200 {
            continue;
        }
        for line in body.lines() {
            let Some(labels) = line.strip_prefix("ferrolb_speaker_announced{") else {
                continue;
            };
            if !line.ends_with(" 1") {
                continue;
            }
            if let Some(ip) = labels
                .split(',')
                .find_map(|l| l.strip_prefix("ip=\""))
                .and_then(|v| v.split('"').next())
                && out.insert(ip.to_owned(), i).is_some()
            {
                panic!("{ip} announced by two nodes");
            }
        }
    }
    out
}

fn counts(owners: &BTreeMap<String, usize>) -> Vec<usize> {
    let mut c = [0usize; 3];
    for i in owners.values() {
        c[*i] += 1;
    }
    c.to_vec()
}

/// Waits until the running speakers `nodes` announce all 60 addresses with these counts.
fn wait_for_spread(lan: &netns::Lan, nodes: &[usize], want: &[usize]) -> BTreeMap<String, usize> {
    wait_for(Duration::from_secs(60), || {
        let owners = announced(lan, nodes);
        (owners.len() == 60 && counts(&owners) == want).then_some(owners)
    })
    .unwrap_or_else(|| {
        panic!(
            "never {want:?}: {:?}\n{}",
            counts(&announced(lan, nodes)),
            speaker_lan::speaker_logs(lan)
        )
    })
}

/// The ServiceL2Status objects' nodes, counted by node name.
fn statuses_by_node(cluster: &speaker_lan::Cluster) -> BTreeMap<String, usize> {
    let text = cluster.plane.kubectl(&[
        "get",
        "servicel2statuses",
        "-n",
        NAMESPACE,
        "-o",
        "jsonpath={range .items[*]}{.status.node}{\"\\n\"}{end}",
    ]);
    let mut out = BTreeMap::new();
    for node in text.lines().filter(|l| !l.is_empty()) {
        *out.entry(node.to_owned()).or_insert(0) += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_ownership_keeps_the_successor_when_the_owner_returns() {
    let test = "sticky_ownership_keeps_the_successor_when_the_owner_returns";
    let setup = Setup {
        speaker_args: STICKY,
        ..Setup::default()
    };
    let Some(mut cluster) = setup_with(test, setup).await else {
        return;
    };
    // A cluster starting from scratch places by the ranking.
    let (ip, order) = answered_service(&cluster, "web").await;
    let (owner, next) = (order[0], order[1]);
    let log = cluster.lan.start_prober(&[&ip], 120);
    std::thread::sleep(Duration::from_secs(1));
    cluster.lan.signal(owner, "KILL");
    wait_answered_by(&cluster.lan, &ip, next);
    restart(&mut cluster, &[owner], STICKY);
    // Long enough for the ranking to have handed it back (its gate opens 0.5 s after joining).
    std::thread::sleep(Duration::from_secs(5));
    let tally = cluster.lan.finish_prober(&log, 1).remove(0);
    assert_only_answerer(&cluster.lan, &ip, next);
    eprintln!("sticky: kill, return: {tally:?}");
    assert_eq!(tally.double, 0, "two nodes answered one probe: {tally:?}");
    let macs = [&cluster.lan.nodes[owner].mac, &cluster.lan.nodes[next].mac];
    assert!(tally.macs.iter().all(|m| macs.contains(&m)), "{tally:?}");
    assert_eq!(
        tally.moves, 1,
        "the address moved once, to the successor: {tally:?}"
    );
    assert_eq!(announced(&cluster.lan, &[0, 1, 2]).get(&ip), Some(&next));
    let next_name = cluster.lan.nodes[next].name.clone();
    let shown = wait_for(Duration::from_secs(30), || {
        let by = statuses_by_node(&cluster);
        (by.len() == 1 && by.get(&next_name) == Some(&1)).then_some(by)
    });
    assert!(shown.is_some(), "{:?}", statuses_by_node(&cluster));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn even_spread_places_sixty_addresses_twenty_each_and_moves_only_what_it_must() {
    let test = "even_spread_places_sixty_addresses_twenty_each_and_moves_only_what_it_must";
    let setup = Setup {
        pool: POOL60,
        speaker_args: EVEN,
        ..Setup::default()
    };
    let Some(mut cluster) = setup_with(test, setup).await else {
        return;
    };
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), APPS);
    let somewhere = cluster.lan.nodes[0].name.clone();
    for i in 0..60 {
        let name = format!("svc-{i}");
        set_endpoints(&cluster.client, &name, &[(&somewhere, true)]).await;
        create_service(&services, &lb_service(&name, json!({}))).await;
    }
    let mut ip_of = BTreeMap::new();
    for i in 0..60 {
        let name = format!("svc-{i}");
        let ip = wait_for_ips(&services, &name).await.remove(0);
        ip_of.insert(name, ip);
    }
    wait_for_spread(&cluster.lan, &[0, 1, 2], &[20, 20, 20]);
    // The Services came one by one, so where each went depends on that history. The whole
    // cluster restarts: it places from scratch, one node per address, as the plan previews.
    restart(&mut cluster, &[0, 1, 2], EVEN);
    let lan = &cluster.lan;
    let first = wait_for_spread(lan, &[0, 1, 2], &[20, 20, 20]);
    // The plan's preview of a cluster placing from scratch is what the speakers did.
    let table = plan_table(&cluster, POOL60, &["--even-spread"]);
    let by = announced_by(&table);
    for (name, ip) in &ip_of {
        let node = &lan.nodes[first[ip]].name;
        assert_eq!(by.get(name), Some(node), "{name} {ip}\n{table}");
    }
    let shown = wait_for(Duration::from_secs(30), || {
        let by = statuses_by_node(&cluster);
        (by.values().copied().collect::<Vec<_>>() == [20, 20, 20]).then_some(by)
    });
    assert!(shown.is_some(), "{:?}", statuses_by_node(&cluster));

    // node 1 dies: only its addresses move, 10 to each survivor.
    cluster.lan.signal(1, "KILL");
    let after = wait_for_spread(&cluster.lan, &[0, 2], &[30, 0, 30]);
    for (ip, node) in &first {
        if *node != 1 {
            assert_eq!(
                after.get(ip),
                Some(node),
                "{ip} moved though its node lives"
            );
        }
    }
    // It returns: it takes its share, a third.
    restart(&mut cluster, &[1], EVEN);
    let back = wait_for_spread(&cluster.lan, &[0, 1, 2], &[20, 20, 20]);
    let moved = after
        .iter()
        .filter(|(ip, n)| back.get(*ip) != Some(n))
        .count();
    assert_eq!(moved, 20, "the returning node takes its share");
}
