//! The example configs in config/: every config passes `ferrolb check-config`, and every
//! `services-<name>.yaml` is planned against `<name>.yaml` by `ferrolb plan` with the pools and
//! addresses the allocation rules (docs/user-guide.md) promise.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{repo_root, run, run_ok, stderr, stdout};

const FERROLB: &str = env!("CARGO_BIN_EXE_ferrolb");

/// What `ferrolb plan` must decide for each example Service: (config, service, pool, addresses).
/// The addresses follow from the allocation rules: requested ones, the lowest free of the named pool,
/// or the lowest free of the auto-assign pools (Services handled in file order).
const EXPECTED: &[(&str, &str, &str, &[&str])] = &[
    ("single-ipv4.yaml", "web", "default", &["192.0.2.240"]),
    ("single-ipv4.yaml", "dns", "default", &["192.0.2.250"]),
    (
        "dual-stack.yaml",
        "frontend",
        "dual",
        &["198.51.100.16", "2001:db8:10::"],
    ),
    (
        "dual-stack.yaml",
        "api",
        "dual",
        &["198.51.100.17", "2001:db8:10::1"],
    ),
    (
        "dual-stack.yaml",
        "metrics-v6",
        "v6-only",
        &["2001:db8:20::10"],
    ),
    ("multi-pool.yaml", "app", "general", &["203.0.113.1"]),
    (
        "multi-pool.yaml",
        "billing",
        "reserved",
        &["198.51.100.200"],
    ),
    (
        "multi-pool.yaml",
        "ingress",
        "reserved",
        &["198.51.100.210"],
    ),
    ("multi-pool.yaml", "dns-tcp", "general", &["203.0.113.53"]),
    ("multi-pool.yaml", "dns-udp", "general", &["203.0.113.53"]),
    ("multi-pool.yaml", "local-web", "general", &["203.0.113.2"]),
];

/// The examples this suite owns: config/<name>.yaml with a config/services-<name>.yaml beside it.
/// (config/example-config.yaml and example-services.yaml are covered by the plan tests.)
fn example_pairs() -> Vec<(PathBuf, PathBuf)> {
    let dir = repo_root().join("config");
    let mut pairs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            let config = name.strip_prefix("services-")?;
            Some((dir.join(config), p))
        })
        .collect();
    pairs.sort();
    pairs
}

fn service_names(file: &Path) -> Vec<String> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&std::fs::read_to_string(file).unwrap()).unwrap();
    docs.iter()
        .filter(|d| d["kind"] == "Service")
        .map(|d| d["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_example_pairs_a_config_with_services() {
    let pairs = example_pairs();
    for (config, service, _, _) in EXPECTED {
        let (_, services) = pairs
            .iter()
            .find(|(c, _)| c.ends_with(config))
            .unwrap_or_else(|| panic!("config/{config} has no services file"));
        assert!(
            service_names(services).iter().any(|n| n == service),
            "{service} not in {}",
            services.display()
        );
    }
    for (config, services) in &pairs {
        assert!(
            config.is_file(),
            "{} has no {}",
            services.display(),
            config.display()
        );
        let names = service_names(services);
        assert!(!names.is_empty(), "{} holds no Service", services.display());
        let config_name = config.file_name().unwrap().to_string_lossy();
        for name in names {
            assert!(
                EXPECTED
                    .iter()
                    .any(|(c, s, _, _)| *c == config_name && *s == name),
                "{name} in {} has no expected plan in EXPECTED",
                services.display()
            );
        }
    }
}

#[test]
fn example_configs_pass_check_config() {
    for (config, _) in example_pairs() {
        run_ok(
            Command::new(FERROLB).arg("check-config").arg(&config),
            format!("ferrolb check-config {}", config.display()),
        );
    }
}

fn plan(config: &Path, services: &Path, format: &str) -> String {
    let out = run(Command::new(FERROLB)
        .arg("plan")
        .arg("--config")
        .arg(config)
        .arg("--services")
        .arg(services)
        .args(["-o", format]));
    assert!(
        out.status.success(),
        "ferrolb plan --config {} --services {} -o {format} failed:\n{}{}",
        config.display(),
        services.display(),
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

#[test]
fn example_services_plan_to_the_documented_addresses() {
    for (config, services) in example_pairs() {
        let config_name = config.file_name().unwrap().to_string_lossy().into_owned();
        // -o yaml: the Services as the controller would write them (status + pool annotation).
        let text = plan(&config, &services, "yaml");
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
        let planned: Vec<&Value> = docs
            .iter()
            .flat_map(|d| match d["items"].as_array() {
                Some(items) => items.iter().collect(),
                None => vec![d],
            })
            .filter(|d| d["kind"] == "Service")
            .collect();
        for (_, name, pool, ips) in EXPECTED.iter().filter(|(c, ..)| *c == config_name) {
            let svc = planned
                .iter()
                .find(|s| s["metadata"]["name"] == *name)
                .unwrap_or_else(|| panic!("plan for {config_name} lacks {name}:\n{text}"));
            assert_eq!(
                svc["metadata"]["annotations"]["metallb.io/ip-allocated-from-pool"], *pool,
                "{config_name}: pool of {name}"
            );
            let got: BTreeSet<IpAddr> = svc["status"]["loadBalancer"]["ingress"]
                .as_array()
                .unwrap_or_else(|| panic!("{name} has no ingress:\n{text}"))
                .iter()
                .map(|i| i["ip"].as_str().unwrap().parse().unwrap())
                .collect();
            let want: BTreeSet<IpAddr> = ips.iter().map(|ip| ip.parse().unwrap()).collect();
            assert_eq!(got, want, "{config_name}: addresses of {name}");
        }
        // The default table names every Service too.
        let table = plan(&config, &services, "table");
        for name in service_names(&services) {
            assert!(table.contains(&name), "table plan lacks {name}:\n{table}");
        }
    }
}
