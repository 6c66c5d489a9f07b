//! `ferrolb plan --nodes` against the real speakers: the ANNOUNCED-BY column it prints for the
//! cluster's own objects (`kubectl get svc,endpointslices` and `kubectl get nodes`) names the
//! node that answers ARP for each address on the LAN, and `--live` previews the election
//! without a node.
//!
//! Needs root (network namespaces), `arping`, `socat` and KUBEBUILDER_ASSETS; skipped
//! otherwise, failed under `CI=true`.

mod e2e;
mod netns;
#[path = "e2e/speaker_lan.rs"]
mod speaker_lan;

use std::collections::BTreeMap;
use std::process::Command;

use e2e::APPS;
use speaker_lan::{POOL, answered_service, ranked, setup};

/// The ANNOUNCED-BY cell of each Service in `plan`'s table, by name.
fn announced_by(table: &str) -> BTreeMap<String, String> {
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    let column = header.find("ANNOUNCED-BY").expect("an ANNOUNCED-BY column");
    let name_at = header.find(" NAME ").expect("a NAME column") + 1;
    lines
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let name = l[name_at..].split_whitespace().next().unwrap_or_default();
            let by = l[column..].split_whitespace().next().unwrap_or_default();
            (name.to_owned(), by.to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_names_the_node_that_answers_each_address() {
    let test = "plan_names_the_node_that_answers_each_address";
    let Some(cluster) = setup(test).await else {
        return;
    };
    let mut ips = BTreeMap::new();
    for name in ["web", "api", "db", "cache"] {
        ips.insert(name, answered_service(&cluster, name).await.0);
    }
    let lan = &cluster.lan;
    let dir = cluster.plane.dir().to_path_buf();
    let objects = dir.join("objects.yaml");
    let nodes = dir.join("nodes.yaml");
    let config = dir.join("config.yaml");
    std::fs::write(
        &objects,
        cluster
            .plane
            .kubectl(&["get", "svc,endpointslices", "-n", APPS, "-o", "yaml"]),
    )
    .unwrap();
    std::fs::write(
        &nodes,
        cluster.plane.kubectl(&["get", "nodes", "-o", "yaml"]),
    )
    .unwrap();
    std::fs::write(&config, POOL).unwrap();
    let plan = |extra: &[&str]| -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
            .arg("plan")
            .arg("--config")
            .arg(&config)
            .arg("--services")
            .arg(&objects)
            .arg("--nodes")
            .arg(&nodes)
            .args(extra)
            .output()
            .expect("run ferrolb plan");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let table = plan(&[]);
    let by = announced_by(&table);
    for (name, ip) in &ips {
        let macs = lan.arping(ip, 2);
        let answering = macs
            .first()
            .and_then(|mac| lan.node_by_mac(mac))
            .map(|i| lan.nodes[i].name.clone());
        assert_eq!(
            by.get(*name).cloned(),
            answering,
            "{name} {ip}: plan says {:?}, the LAN answers from {macs:?}\n{table}",
            by.get(*name)
        );
    }
    // Without node-c: the election among node-a and node-b.
    let without = announced_by(&plan(&["--live", "node-a,node-b"]));
    for (name, ip) in &ips {
        let expected = &lan.nodes[ranked(lan, ip, &[0, 1])[0]].name;
        assert_eq!(without.get(*name), Some(expected), "{name} {ip}");
    }
}
