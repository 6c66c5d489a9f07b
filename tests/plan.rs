//! `ferrolb plan` on the shipped examples, run as a user would (the real binary).
//!
//! Expectations are derived from the rules, not pasted from a run: see the comment at each one.
//! Services are decided in file order after the restart rebuild registers shop/api's 192.0.2.5.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .display()
        .to_string()
}

fn ferrolb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .args(args)
        .output()
        .expect("run ferrolb")
}

fn plan(extra: &[&str]) -> Output {
    let config = repo("config/example-config.yaml");
    let services = repo("config/example-services.yaml");
    let mut args = vec![
        "plan",
        "--config",
        config.as_str(),
        "--services",
        services.as_str(),
    ];
    args.extend_from_slice(extra);
    let out = ferrolb(&args);
    assert!(
        out.status.success(),
        "plan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

struct Row {
    kind: String,
    external_ip: String,
    pool: String,
    ports: String,
}

/// (service, reason, message) of one event line.
type EventLine = (String, String, String);

/// The service table (up to the blank line) in order and keyed by namespace/name, and the
/// event lines.
fn parse(stdout: &str) -> (Vec<String>, BTreeMap<String, Row>, Vec<EventLine>) {
    let (table, events) = stdout
        .split_once("\n\n")
        .expect("table, blank line, events");
    let mut lines = table.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect();
    let mut order = Vec::new();
    let mut rows = BTreeMap::new();
    for line in lines {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells.len(), 6, "row {line:?}");
        let key = format!("{}/{}", cells[0], cells[1]);
        order.push(key.clone());
        rows.insert(
            key,
            Row {
                kind: cells[2].into(),
                external_ip: cells[3].into(),
                pool: cells[4].into(),
                ports: cells[5].into(),
            },
        );
    }
    assert_eq!(
        header,
        [
            "NAMESPACE",
            "NAME",
            "TYPE",
            "EXTERNAL-IP",
            "POOL",
            "PORT(S)"
        ]
    );
    let mut event_lines = events.lines();
    assert_eq!(event_lines.next(), Some("EVENTS"));
    let event_header: Vec<&str> = event_lines.next().unwrap().split_whitespace().collect();
    assert_eq!(event_header, ["SERVICE", "TYPE", "REASON", "MESSAGE"]);
    let events = event_lines
        .map(|l| {
            let mut parts = l.split_whitespace();
            let service = parts.next().unwrap().to_owned();
            let _type = parts.next().unwrap();
            let reason = parts.next().unwrap().to_owned();
            let message = parts.collect::<Vec<_>>().join(" ");
            (service, reason, message)
        })
        .collect();
    (order, rows, events)
}

#[test]
fn example_plan_follows_every_rule() {
    let out = plan(&[]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let (order, rows, events) = parse(&stdout);

    // Every Service is listed, in file order.
    assert_eq!(
        order,
        [
            "shop/web",
            "shop/api",
            "shop/checkout",
            "infra/ingress",
            "infra/monitoring",
            "infra/dns-tcp",
            "infra/dns-udp",
            "shop/dual-required",
            "shop/dual-preferred",
            "shop/internal",
            "other/foreign",
            "shop/impossible",
            "shop/conflicting",
        ]
    );
    let ip = |k: &str| rows[k].external_ip.as_str();
    let pool = |k: &str| rows[k].pool.as_str();

    // "default" (first auto-assign pool) avoids buggy IPs: .0 is skipped, .1 is the lowest.
    assert_eq!((ip("shop/web"), pool("shop/web")), ("192.0.2.1", "default"));
    assert_eq!(rows["shop/web"].ports, "80/TCP,443/TCP");
    // Restart: the address in shop/api's status is re-registered before anything is allocated.
    assert_eq!((ip("shop/api"), pool("shop/api")), ("192.0.2.5", "default"));
    // spec.loadBalancerIP from the auto-assign: false pool that contains it.
    assert_eq!(
        (ip("shop/checkout"), pool("shop/checkout")),
        ("198.51.100.15", "reserved")
    );
    // loadBalancerIPs annotation.
    assert_eq!(ip("infra/ingress"), "192.0.2.100");
    // address-pool annotation: lowest of "reserved" (198.51.100.10-20; .15 is taken but higher).
    assert_eq!(
        (ip("infra/monitoring"), pool("infra/monitoring")),
        ("198.51.100.10", "reserved")
    );
    // Sharing: taken in "default" are .1, .5 and .100, so dns-tcp gets .2 and dns-udp shares it
    // (same key, 53/TCP vs 53/UDP, both Cluster traffic policy) rather than taking .3.
    assert_eq!(ip("infra/dns-tcp"), "192.0.2.2");
    assert_eq!(ip("infra/dns-udp"), "192.0.2.2");
    // RequireDualStack: "default" has no IPv6, "dual" is the next auto-assign pool: the lowest
    // of each family, IPv4 first as in spec.ipFamilies.
    assert_eq!(
        (ip("shop/dual-required"), pool("shop/dual-required")),
        ("203.0.113.0,2001:db8:1::", "dual")
    );
    // PreferDualStack, IPv6 first: the next pair from "dual", IPv6 listed first.
    assert_eq!(ip("shop/dual-preferred"), "2001:db8:1::1,203.0.113.1");
    // Not a LoadBalancer / another class: untouched.
    assert_eq!(
        (
            rows["shop/internal"].kind.as_str(),
            ip("shop/internal"),
            pool("shop/internal")
        ),
        ("ClusterIP", "<none>", "<none>")
    );
    assert_eq!(
        (ip("other/foreign"), pool("other/foreign")),
        ("<pending>", "<none>")
    );
    // The impossible and the invalid request stay pending.
    assert_eq!(ip("shop/impossible"), "<pending>");
    assert_eq!(ip("shop/conflicting"), "<pending>");

    // No address is held twice except the one the sharing rules allow.
    let mut holders: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (key, row) in &rows {
        if row.external_ip.starts_with('<') {
            continue;
        }
        for addr in row.external_ip.split(',') {
            holders.entry(addr).or_default().push(key);
        }
    }
    for (addr, keys) in &holders {
        if *addr == "192.0.2.2" {
            assert_eq!(keys, &["infra/dns-tcp", "infra/dns-udp"]);
        } else {
            assert_eq!(keys.len(), 1, "{addr} held by {keys:?}");
        }
    }

    // Events: an IPAllocated for each new allocation (not for shop/api, which keeps its
    // address), AllocationFailed for the impossible request, LoadBalancerFailed for the invalid
    // Service, nothing for the ClusterIP and the foreign class.
    let summary: Vec<(&str, &str)> = events
        .iter()
        .map(|(s, r, _)| (s.as_str(), r.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("shop/web", "IPAllocated"),
            ("shop/checkout", "IPAllocated"),
            ("infra/ingress", "IPAllocated"),
            ("infra/monitoring", "IPAllocated"),
            ("infra/dns-tcp", "IPAllocated"),
            ("infra/dns-udp", "IPAllocated"),
            ("shop/dual-required", "IPAllocated"),
            ("shop/dual-preferred", "IPAllocated"),
            ("shop/impossible", "AllocationFailed"),
            ("shop/conflicting", "LoadBalancerFailed"),
        ]
    );
    let message = |svc: &str| &events.iter().find(|(s, _, _)| s == svc).unwrap().2;
    // The failure names the Service, the address, the pool and the reason.
    let failed = message("shop/impossible");
    assert!(
        failed.contains("shop/impossible")
            && failed.contains("192.0.2.0")
            && failed.contains("\"default\"")
            && failed.contains("buggy"),
        "{failed}"
    );
    let invalid = message("shop/conflicting");
    assert!(
        invalid.contains("192.0.2.51")
            && invalid.contains("192.0.2.50")
            && invalid.contains("metallb.io/loadBalancerIPs"),
        "{invalid}"
    );
    assert!(message("shop/dual-required").contains("from pool \"dual\""));
}

#[test]
fn lb_class_flag_takes_the_foreign_service() {
    let out = plan(&["--lb-class", "example.com/other-lb"]);
    let (_, rows, events) = parse(&String::from_utf8(out.stdout).unwrap());
    // The only Service of that class: the lowest free address of "default" (.0 is skipped as
    // a buggy address).
    assert_eq!(rows["other/foreign"].external_ip, "192.0.2.1");
    assert!(
        events
            .iter()
            .any(|(s, r, _)| s == "other/foreign" && r == "IPAllocated")
    );
    // Classless Services belong to the cluster's default load balancer then: not ours.
    assert_eq!(rows["shop/web"].external_ip, "<pending>");
    // The address one of them shows stays taken, and the pool's Warning says by whom.
    assert_eq!(rows["shop/api"].external_ip, "192.0.2.5");
    let (not_ours, ours): (Vec<_>, Vec<_>) =
        events.iter().partition(|(s, _, _)| s != "other/foreign");
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(not_ours.len(), 1, "{not_ours:?}");
    let (service, reason, message) = not_ours[0];
    assert_eq!(
        (service.as_str(), reason.as_str()),
        ("shop/api", "AddressHeldElsewhere")
    );
    assert!(
        message.contains("192.0.2.5") && message.contains("\"default\""),
        "{message}"
    );
}

#[test]
fn yaml_output_carries_status_and_pool_annotation() {
    let out = plan(&["-o", "yaml"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let services = ferrolb::controller::plan::parse_services(&stdout, "plan -o yaml").unwrap();
    assert_eq!(services.len(), 13);
    let by_name = |name: &str| {
        services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
            .unwrap()
    };
    let ingress_ips = |name: &str| -> Vec<String> {
        by_name(name)
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.clone())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.ip)
            .collect()
    };
    let pool_annotation = |name: &str| {
        by_name(name)
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("metallb.io/ip-allocated-from-pool").cloned())
    };
    assert_eq!(ingress_ips("web"), ["192.0.2.1"]);
    assert_eq!(pool_annotation("web").as_deref(), Some("default"));
    assert_eq!(
        ingress_ips("dual-preferred"),
        ["2001:db8:1::1", "203.0.113.1"]
    );
    assert_eq!(pool_annotation("dual-preferred").as_deref(), Some("dual"));
    assert!(ingress_ips("impossible").is_empty());
    assert_eq!(pool_annotation("impossible"), None);
    // Annotations the user set survive.
    assert_eq!(
        by_name("dns-udp")
            .metadata
            .annotations
            .as_ref()
            .unwrap()
            .get("metallb.io/allow-shared-ip")
            .map(String::as_str),
        Some("dns")
    );
    // Events go to stderr so stdout stays pure YAML.
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("shop/impossible Warning AllocationFailed"),
        "{stderr}"
    );
}

#[test]
fn unreadable_inputs_fail_with_the_path() {
    let config = repo("config/example-config.yaml");
    let out = ferrolb(&[
        "plan",
        "--config",
        &config,
        "--services",
        "/nonexistent/services.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/services.yaml"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad-config.yaml");
    std::fs::write(
        &bad,
        "address-pools:\n- name: p\n  protocol: layer3\n  addresses: [192.0.2.0/24]\n",
    )
    .unwrap();
    let services = repo("config/example-services.yaml");
    let out = ferrolb(&[
        "plan",
        "--config",
        bad.to_str().unwrap(),
        "--services",
        &services,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad-config.yaml") && stderr.contains("layer3"),
        "{stderr}"
    );
}

/// The custom-resource example: each Service's address follows from the rule its comment in
/// config/crds-example-services.yaml names (pinned by namespace, by namespace selector and
/// service selector together, no fallback to a pinned pool, annotation reaching an auto-assign
/// off pool, annotation refused by serviceAllocation, IPv6 fallback).
#[test]
fn crd_example_is_planned_by_the_pinning_rules() {
    let config = repo("config/crds-example.yaml");
    let services = repo("config/crds-example-services.yaml");
    let out = ferrolb(&[
        "plan",
        "--config",
        config.as_str(),
        "--services",
        services.as_str(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, rows, events) = parse(&stdout);
    let got = |key: &str| {
        let r = &rows[key];
        (r.external_ip.as_str(), r.pool.as_str())
    };
    assert_eq!(got("shop/web"), ("192.0.2.8", "shop"));
    assert_eq!(
        got("payments/checkout"),
        ("192.0.2.16,2001:db8:10::", "gold")
    );
    assert_eq!(got("staging/checkout"), ("198.51.100.1", "general"));
    assert_eq!(got("default/vpn"), ("203.0.113.10", "reserved"));
    assert_eq!(got("default/sneaky"), ("<pending>", "<none>"));
    assert_eq!(got("default/api6"), ("2001:db8:20::", "general"));
    assert!(
        events
            .iter()
            .any(|(svc, reason, msg)| svc == "default/sneaky"
                && reason == "AllocationFailed"
                && msg.contains("serviceAllocation")),
        "{stdout}"
    );
}

/// `convert -` reads the ConfigMap from stdin (what `kubectl get configmap -o yaml` pipes in) and
/// writes what `convert FILE` writes.
#[test]
fn convert_reads_stdin_given_a_dash() {
    let legacy = repo("config/example-config.yaml");
    let from_file = ferrolb(&["convert", legacy.as_str()]);
    assert!(from_file.status.success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .args(["convert", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ferrolb");
    let text = std::fs::read(&legacy).unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &text).unwrap();
    let from_stdin = child.wait_with_output().unwrap();
    assert!(
        from_stdin.status.success(),
        "{}",
        String::from_utf8_lossy(&from_stdin.stderr)
    );
    assert!(!from_stdin.stdout.is_empty());
    assert_eq!(from_stdin.stdout, from_file.stdout);
    assert_eq!(from_stdin.stderr, from_file.stderr);
}

/// `convert` of the legacy example gives objects on which `plan` keeps every address the legacy
/// config gave.
#[test]
fn converted_legacy_example_plans_the_same_addresses() {
    let legacy = repo("config/example-config.yaml");
    let services = repo("config/example-services.yaml");
    let converted = ferrolb(&["convert", legacy.as_str()]);
    assert!(
        converted.status.success(),
        "{}",
        String::from_utf8_lossy(&converted.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let crds = dir.path().join("crds.yaml");
    std::fs::write(&crds, &converted.stdout).unwrap();
    let first = plan(&["-o", "yaml"]);
    let planned = dir.path().join("planned.yaml");
    std::fs::write(&planned, &first.stdout).unwrap();
    let table = |config: &str, services: &str| {
        let out = ferrolb(&["plan", "--config", config, "--services", services]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (_, rows, _) = parse(&String::from_utf8_lossy(&out.stdout));
        rows.into_iter()
            .map(|(k, r)| (k, r.external_ip))
            .collect::<BTreeMap<_, _>>()
    };
    let legacy_ips = table(&legacy, &services);
    let crd_ips = table(crds.to_str().unwrap(), planned.to_str().unwrap());
    let mut held = 0;
    for (key, ip) in &legacy_ips {
        if ip != "<pending>" {
            held += 1;
            assert_eq!(crd_ips.get(key), Some(ip), "{key}");
        }
    }
    assert!(
        held > 3,
        "the example should hold addresses: {legacy_ips:?}"
    );
}
