//! `ferrolb plan --nodes` with BGP: every node that passes the rules announces (no election),
//! each prefix to the peers with a session on it, with what the peer receives (the real
//! binary, on the fixtures in tests/fixtures/plan_bgp).

use std::path::Path;
use std::process::Command;

fn plan(extra: &[&str]) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plan_bgp");
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .arg("plan")
        .arg("--config")
        .arg(dir.join("config.yaml"))
        .arg("--services")
        .arg(dir.join("services.yaml"))
        .arg("--nodes")
        .arg(dir.join("nodes.yaml"))
        .args(extra)
        .output()
        .expect("run ferrolb");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "plan failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The rows of the BGP ROUTES table, columns split on runs of spaces.
fn routes(table: &str) -> Vec<Vec<String>> {
    table
        .split("BGP ROUTES\n")
        .nth(1)
        .expect("a BGP ROUTES table")
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[test]
fn every_eligible_node_announces_each_prefix_to_its_peers_with_what_they_receive() {
    let out = plan(&[]);
    let rows = routes(&out);
    let row = |node: &str, peer: &str, prefix: &str| {
        rows.iter()
            .find(|r| r[0] == node && r[1] == peer && r[2] == prefix)
            .unwrap_or_else(|| panic!("no route {node} {peer} {prefix} in\n{out}"))
            .clone()
    };
    // peer1 (eBGP, every node): no LOCAL_PREF; the /32 carries its alias's community, the
    // covering /24 its own, and the /24 names both Services it stands for.
    assert_eq!(
        row("node-a", "peer1", "198.51.100.10/32")[3..5],
        ["-", "65535:65282"]
    );
    assert_eq!(
        row("node-a", "peer1", "198.51.100.0/24")[3..],
        ["-", "64500:7", "shop/web,shop/local"]
    );
    // peer2 (iBGP, only nodes labelled rack=r1): the advertisement's local preference, or 100.
    assert_eq!(row("node-a", "peer2", "198.51.100.10/32")[3], "150");
    assert_eq!(row("node-a", "peer2", "198.51.100.0/24")[3], "100");
    assert!(
        !rows.iter().any(|r| r[0] == "node-b" && r[1] == "peer2"),
        "node-b is not in rack r1, so it has no session with peer2:\n{out}"
    );
    // shop/local (externalTrafficPolicy: Local) has its endpoint on node-a: node-b leaves it out.
    assert!(
        !rows
            .iter()
            .any(|r| r[0] == "node-b" && r[2] == "198.51.100.20/32")
    );
    assert_eq!(row("node-b", "peer1", "198.51.100.0/24")[5], "shop/web");
    assert!(out.contains("bgp: node-a, node-b"), "{out}");
}

#[test]
fn a_node_excluded_from_load_balancers_announces_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plan_bgp");
    let nodes = std::fs::read_to_string(fixtures.join("nodes.yaml")).expect("fixture");
    let excluded = nodes.replace(
        "labels: {rack: r2}",
        "labels: {rack: r2, node.kubernetes.io/exclude-from-external-load-balancers: \"\"}",
    );
    assert_ne!(nodes, excluded);
    let path = dir.path().join("nodes.yaml");
    std::fs::write(&path, excluded).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .arg("plan")
        .arg("--config")
        .arg(fixtures.join("config.yaml"))
        .arg("--services")
        .arg(fixtures.join("services.yaml"))
        .arg("--nodes")
        .arg(&path)
        .output()
        .expect("run ferrolb");
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!routes(&out).iter().any(|r| r[0] == "node-b"), "{out}");
    assert!(out.contains("bgp: node-a "), "{out}");
}
