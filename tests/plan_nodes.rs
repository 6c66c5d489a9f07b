//! `ferrolb plan --nodes`: the cluster's own networks read from `kubectl get
//! nodes,servicecidrs -o yaml`-style input, decided as the live controller does (the real binary).

use std::process::Command;

const CONFIG: &str = "address-pools:
- name: lan
  protocol: layer2
  addresses: [192.0.2.0/30, 10.96.0.0/30]
";

const SERVICES: &str = "apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: web, namespace: shop}
  spec: {type: LoadBalancer, ports: [{port: 80}]}
- apiVersion: v1
  kind: Service
  metadata:
    name: wants-node
    namespace: shop
    annotations: {metallb.io/loadBalancerIPs: 192.0.2.0}
  spec: {type: LoadBalancer, ports: [{port: 80}]}
";

const NODES: &str = "apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: {name: node-1}
  spec: {podCIDRs: [10.244.0.0/24]}
  status:
    addresses:
    - {type: InternalIP, address: 192.0.2.0}
    - {type: ExternalIP, address: not-an-address}
- apiVersion: networking.k8s.io/v1
  kind: ServiceCIDR
  metadata: {name: kubernetes}
  spec: {cidrs: [10.96.0.0/12]}
";

fn plan(dir: &std::path::Path, extra: &[&str]) -> (String, String) {
    let config = dir.join("config.yaml");
    let services = dir.join("services.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    std::fs::write(&services, SERVICES).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .args(["plan", "--config"])
        .arg(&config)
        .arg("--services")
        .arg(&services)
        .args(extra)
        .output()
        .expect("run ferrolb");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "plan failed: {stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

#[test]
fn plan_skips_node_addresses_and_lists_every_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = dir.path().join("cluster.yaml");
    std::fs::write(&nodes, NODES).unwrap();
    let (out, stderr) = plan(dir.path(), &["--nodes", nodes.to_str().unwrap()]);
    // The lowest free address is not node-1's own.
    let web = out
        .lines()
        .find(|l| l.starts_with("shop ") && l.contains(" web "))
        .unwrap();
    assert!(web.contains("192.0.2.1"), "{out}");
    let wants = out.lines().find(|l| l.contains("wants-node")).unwrap();
    assert!(wants.contains("<pending>"), "{out}");
    assert!(
        out.contains(
            "192.0.2.0 is the InternalIP of node node-1: a node's own address is never handed out"
        ),
        "{out}"
    );
    let warnings = out
        .split("POOL WARNINGS\n")
        .nth(1)
        .and_then(|w| w.split("\n\n").next())
        .unwrap_or_else(|| panic!("no POOL WARNINGS in {out}"));
    assert_eq!(warnings.lines().count(), 3, "{warnings}");
    assert!(
        warnings.contains("lan    ClusterNetworkOverlap"),
        "{warnings}"
    );
    assert!(
        warnings.contains("pool \"lan\" holds 192.0.2.0, the InternalIP of node node-1"),
        "{warnings}"
    );
    assert!(
        warnings.contains("ServiceCIDR kubernetes (10.96.0.0/12) at 10.96.0.0-10.96.0.3"),
        "{warnings}"
    );
    // The malformed address is skipped, named on stderr.
    assert!(
        stderr.contains("Node node-1: status.addresses[1] (ExternalIP) \"not-an-address\" is not an IP address; skipped"),
        "{stderr}"
    );

    // Without nodes nothing is known: the node's address is handed out and nothing is said,
    // unless the service range is given by flag.
    let (out, _) = plan(dir.path(), &[]);
    assert!(!out.contains("POOL WARNINGS"), "{out}");
    let (out, _) = plan(
        dir.path(),
        &["--service-cluster-ip-range", "10.96.0.0/12,fd00::/108"],
    );
    assert!(
        out.contains("overlaps the service cluster IP range 10.96.0.0/12 (--service-cluster-ip-range) at 10.96.0.0-10.96.0.3"),
        "{out}"
    );
}
