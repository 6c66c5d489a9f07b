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

use speaker_lan::{POOL, announced_by, answered_service, plan_table, ranked, setup};

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
    let plan = |extra: &[&str]| plan_table(&cluster, POOL, extra);
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
