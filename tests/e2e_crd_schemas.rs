//! The chart's CustomResourceDefinitions against a real kube-apiserver (found through
//! `KUBEBUILDER_ASSETS`; skipped, with a message, when it is unset): they install, the example
//! objects apply, every CEL rule and structural check refuses its bad object with its message,
//! BGPPeer serves both versions without a conversion webhook, and `kubectl get` shows the columns.

// Only the control plane is needed here, not the ferrolb processes.
#[allow(unused_imports)]
mod e2e;

use std::path::PathBuf;
use std::process::Command;

use e2e::ControlPlane;

const NS: &str = "metallb-system";

fn repo(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .display()
        .to_string()
}

/// `kubectl` with `stdin`, as `(succeeded, stdout + stderr)`.
fn kubectl(plane: &ControlPlane, args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", plane.kubeconfig().display()))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl is installed (scripts/install-test-tools.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn apply(plane: &ControlPlane, yaml: &str) -> (bool, String) {
    kubectl(plane, &["apply", "-f", "-"], yaml)
}

fn pool(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}, namespace: \
         {NS}}}\nspec:\n{spec}\n"
    )
}

async fn with_crds(test: &str) -> Option<ControlPlane> {
    let plane = ControlPlane::start(test).await?;
    let crds = repo("charts/ferrolb/crds");
    let out = plane.kubectl(&["apply", "--server-side", "-f", &crds]);
    eprintln!("{out}");
    plane.wait_crds_established();
    plane.kubectl(&["create", "namespace", NS]);
    Some(plane)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crds_install_and_the_example_objects_apply() {
    let Some(plane) = with_crds("the_crds_install_and_the_example_objects_apply").await else {
        return;
    };
    let out = plane.kubectl(&["apply", "-f", &repo("config/crds-example.yaml")]);
    eprintln!("{out}");
    for object in [
        "ipaddresspool.metallb.io/shop created",
        "ipaddresspool.metallb.io/gold created",
        "ipaddresspool.metallb.io/general created",
        "ipaddresspool.metallb.io/reserved created",
        "l2advertisement.metallb.io/everywhere created",
        "l2advertisement.metallb.io/dmz created",
    ] {
        assert!(out.contains(object), "{object} in:\n{out}");
    }

    // Usage counts are status, written through the subresource, and shown by `kubectl get`.
    plane.kubectl(&[
        "patch",
        "ipaddresspool",
        "-n",
        NS,
        "general",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"assignedIPv4":3,"availableIPv4":251,"assignedIPv6":1,"availableIPv6":255}}"#,
    ]);
    let table = plane.kubectl(&["get", "ipaddresspools", "-n", NS]);
    eprintln!("{table}");
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "AUTO ASSIGN",
            "AVOID BUGGY IPS",
            "ADDRESSES",
            "ASSIGNED IPV4",
            "AVAILABLE IPV4",
            "ASSIGNED IPV6",
            "AVAILABLE IPV6",
            "AGE"
        ]
    );
    let general: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("general "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        general[..7],
        [
            "general",
            "true",
            "true",
            r#"["198.51.100.0/24","2001:db8:20::/120"]"#,
            "3",
            "251",
            "1"
        ]
    );
    let reserved = table.lines().find(|l| l.starts_with("reserved ")).unwrap();
    assert!(reserved.contains("false"), "{reserved}");

    // Forms MetalLB accepts stay accepted: host bits set, a one-address range, spaces, IPv6.
    let (ok, out) = apply(
        &plane,
        &pool(
            "edge-forms",
            "  addresses: [\"10.0.0.5/24\", \"192.0.2.40-192.0.2.40\", \" 2001:db8:1::1 - \
             2001:db8:1::ff\", \"2001:db8:2::/64\"]",
        ),
    );
    assert!(ok, "{out}");

    // BGPPeer: written as the old version, read as the new one, with no webhook in between.
    let (ok, out) = apply(
        &plane,
        &format!(
            "apiVersion: metallb.io/v1beta1\nkind: BGPPeer\nmetadata: {{name: p, namespace: \
             {NS}}}\nspec: {{myASN: 64500, peerASN: 64501, peerAddress: 192.0.2.1, holdTime: \
             90s}}\n"
        ),
    );
    assert!(ok, "{out}");
    assert!(out.contains("deprecated"), "{out}");
    let peer = plane.kubectl(&[
        "get",
        "bgppeers.v1beta2.metallb.io",
        "-n",
        NS,
        "p",
        "-o",
        "jsonpath={.apiVersion} {.spec.peerASN}",
    ]);
    assert_eq!(peer, "metallb.io/v1beta2 64501");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_refuses_each_bad_object_with_its_message() {
    let Some(plane) = with_crds("the_api_server_refuses_each_bad_object_with_its_message").await
    else {
        return;
    };
    let selector = |sel: &str| {
        format!("  addresses: [192.0.2.0/24]\n  serviceAllocation: {{serviceSelectors: [{sel}]}}")
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "not an address",
            pool("bad", "  addresses: [\"192.0.2.300/24\"]"),
            "spec.addresses[0]: Invalid value: \"192.0.2.300/24\": must be a CIDR (192.0.2.0/24) \
             or a range of two IP addresses",
        ),
        (
            "an address without a prefix length",
            pool("bad", "  addresses: [192.0.2.0/24, 192.0.2.7]"),
            "spec.addresses[1]: Invalid value: \"192.0.2.7\": must be a CIDR",
        ),
        (
            "a range with one bad end",
            pool("bad", "  addresses: [\"192.0.2.1-192.0.2\"]"),
            "must be a CIDR (192.0.2.0/24) or a range of two IP addresses",
        ),
        (
            "a range across families",
            pool("bad", "  addresses: [\"192.0.2.10-2001:db8::1\"]"),
            "the start and end of a range must both be IPv4 or both IPv6",
        ),
        (
            "an IPv4 range backwards",
            pool("bad", "  addresses: [\"192.0.2.20 - 192.0.2.10\"]"),
            "spec.addresses[0]: Invalid value: \"192.0.2.20 - 192.0.2.10\": the start of a range \
             must not be after its end",
        ),
        (
            "an IPv4 range backwards by one",
            pool("bad", "  addresses: [\"192.0.2.128-192.0.2.127\"]"),
            "the start of a range must not be after its end",
        ),
        (
            "an IPv6 range backwards",
            pool("bad", "  addresses: [\"2001:db8::ff-2001:db8::1\"]"),
            "the start of a range must not be after its end",
        ),
        (
            "no addresses",
            pool("bad", "  addresses: []"),
            "spec.addresses in body should have at least 1 items",
        ),
        (
            "no addresses field",
            pool("bad", "  autoAssign: true"),
            "spec.addresses: Required value",
        ),
        (
            "a namespace twice",
            pool(
                "bad",
                "  addresses: [192.0.2.0/24]\n  serviceAllocation: {namespaces: [a, b, a]}",
            ),
            "spec.serviceAllocation.namespaces[2]: Duplicate value: \"a\"",
        ),
        (
            "a selector twice",
            pool(
                "bad",
                &selector("{matchLabels: {a: b}}, {matchLabels: {a: b}}"),
            ),
            "spec.serviceAllocation.serviceSelectors: Invalid value: a selector is listed twice",
        ),
        (
            "In without values",
            pool(
                "bad",
                &selector("{matchExpressions: [{key: a, operator: In}]}"),
            ),
            "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist",
        ),
        (
            "Exists with values",
            pool(
                "bad",
                &selector("{matchExpressions: [{key: a, operator: Exists, values: [x]}]}"),
            ),
            "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist",
        ),
        (
            "a value twice",
            pool(
                "bad",
                &selector("{matchExpressions: [{key: a, operator: In, values: [x, x]}]}"),
            ),
            "matchExpressions[0].values[1]: Duplicate value: \"x\"",
        ),
        (
            "two expressions on one key",
            pool(
                "bad",
                &selector(
                    "{matchExpressions: [{key: a, operator: Exists}, {key: a, operator: \
                     DoesNotExist}]}",
                ),
            ),
            "matchExpressions[1]: Duplicate value: {\"key\":\"a\"}",
        ),
        (
            "an unknown operator",
            pool(
                "bad",
                &selector("{matchExpressions: [{key: a, operator: Within}]}"),
            ),
            "Unsupported value: \"Within\"",
        ),
        (
            "a misspelt field",
            pool("bad", "  addresses: [192.0.2.0/24]\n  autoAsign: false"),
            "unknown field \"spec.autoAsign\"",
        ),
        (
            "a pool named twice in an advertisement",
            format!(
                "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: bad, \
                 namespace: {NS}}}\nspec: {{ipAddressPools: [a, a]}}\n"
            ),
            "spec.ipAddressPools[1]: Duplicate value: \"a\"",
        ),
        (
            "a BGPPeer without myASN",
            format!(
                "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: bad, \
                 namespace: {NS}}}\nspec: {{peerASN: 1, peerAddress: 192.0.2.1}}\n"
            ),
            "spec.myASN: Required value",
        ),
    ];
    let mut refused = Vec::new();
    for (what, yaml, expected) in &cases {
        let (ok, out) = apply(&plane, yaml);
        eprintln!("{what}: {}", out.trim());
        assert!(!ok, "{what} was accepted:\n{yaml}");
        assert!(
            out.contains(expected),
            "{what}: expected {expected:?} in:\n{out}"
        );
        refused.push(*what);
    }
    assert_eq!(refused.len(), cases.len());
    // Nothing got in.
    let pools = plane.kubectl(&["get", "ipaddresspools,l2advertisements,bgppeers", "-n", NS]);
    assert!(!pools.contains("bad"), "{pools}");

    // Status fields: ServiceL2Status and ServiceBGPStatus names are immutable, ConfigurationState
    // results an enum.
    let (ok, out) = apply(
        &plane,
        &format!(
            "apiVersion: metallb.io/v1beta1\nkind: ServiceL2Status\nmetadata: {{name: l2-web, \
             namespace: {NS}}}\n"
        ),
    );
    assert!(ok, "{out}");
    let status = |kind: &str, name: &str, patch: &str| {
        kubectl(
            &plane,
            &[
                "patch",
                kind,
                "-n",
                NS,
                name,
                "--subresource=status",
                "--type=merge",
                "-p",
                patch,
            ],
            "",
        )
    };
    let (ok, out) = status(
        "servicel2status",
        "l2-web",
        r#"{"status":{"node":"n1","serviceName":"web","serviceNamespace":"apps","interfaces":[{"name":"eth0"}]}}"#,
    );
    assert!(ok, "{out}");
    let (ok, out) = status("servicel2status", "l2-web", r#"{"status":{"node":"n2"}}"#);
    eprintln!("node changed: {}", out.trim());
    assert!(
        !ok && out.contains("status.node: Invalid value: \"n2\": Value is immutable"),
        "{out}"
    );
    let table = plane.kubectl(&["get", "servicel2statuses", "-n", NS]);
    eprintln!("{table}");
    assert!(table.starts_with("NAME"), "{table}");
    for column in ["ALLOCATED NODE", "SERVICE NAME", "SERVICE NAMESPACE"] {
        assert!(table.lines().next().unwrap().contains(column), "{table}");
    }
    assert_eq!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()[..4],
        ["l2-web", "n1", "web", "apps"]
    );

    // ServiceBGPStatus: the same immutable names, its peers a list of names, MetalLB's columns.
    let (ok, out) = apply(
        &plane,
        &format!(
            "apiVersion: metallb.io/v1beta1\nkind: ServiceBGPStatus\nmetadata: {{name: bgp-web, \
             namespace: {NS}}}\nspec: {{}}\n"
        ),
    );
    assert!(ok, "{out}");
    let (ok, out) = status(
        "servicebgpstatus",
        "bgp-web",
        r#"{"status":{"node":"n1","serviceName":"web","serviceNamespace":"apps","peers":["tor-a","tor-b"]}}"#,
    );
    assert!(ok, "{out}");
    for (field, value) in [
        ("node", "n2"),
        ("serviceName", "api"),
        ("serviceNamespace", "x"),
    ] {
        let (ok, out) = status(
            "servicebgpstatus",
            "bgp-web",
            &format!(r#"{{"status":{{"{field}":"{value}"}}}}"#),
        );
        eprintln!("{field} changed: {}", out.trim());
        assert!(
            !ok && out.contains(&format!(
                "status.{field}: Invalid value: \"{value}\": Value is immutable"
            )),
            "{out}"
        );
    }
    let (ok, out) = status(
        "servicebgpstatus",
        "bgp-web",
        r#"{"status":{"peers":[{"name":"tor-a"}]}}"#,
    );
    assert!(!ok && out.contains("status.peers[0]"), "{out}");
    let (ok, out) = status(
        "servicebgpstatus",
        "bgp-web",
        r#"{"status":{"peers":["tor-c"]}}"#,
    );
    assert!(ok, "the peers change: {out}");
    let table = plane.kubectl(&["get", "servicebgpstatuses", "-n", NS]);
    eprintln!("{table}");
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .filter(|c| !c.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(
        header,
        ["NAME", "NODE", "SERVICE NAME", "SERVICE NAMESPACE", "AGE"],
        "{table}"
    );
    assert_eq!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()[..4],
        ["bgp-web", "n1", "web", "apps"]
    );

    let (ok, out) = apply(
        &plane,
        &format!(
            "apiVersion: metallb.io/v1beta1\nkind: ConfigurationState\nmetadata: {{name: \
             controller, namespace: {NS}}}\n"
        ),
    );
    assert!(ok, "{out}");
    let (ok, out) = status(
        "configurationstate",
        "controller",
        r#"{"status":{"result":"Maybe"}}"#,
    );
    eprintln!("result Maybe: {}", out.trim());
    assert!(
        !ok && out.contains("status.result: Unsupported value: \"Maybe\""),
        "{out}"
    );
    let (ok, out) = status(
        "configurationstate",
        "controller",
        r#"{"status":{"result":"Invalid","errorSummary":"pool a overlaps pool b","conditions":[{"type":"poolReconcilerValid","status":"False","reason":"ConfigurationError","message":"pool a overlaps pool b","lastTransitionTime":"2026-11-30T01:00:00Z"}]}}"#,
    );
    assert!(ok, "{out}");
    let table = plane.kubectl(&["get", "configurationstates", "-n", NS]);
    eprintln!("{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..2], ["controller", "Invalid"], "{table}");
    assert!(table.contains("pool a overlaps pool b"), "{table}");
}
