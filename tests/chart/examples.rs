//! The example configs in config/: every config passes `ferrolb check-config`, and every
//! `services-<name>.yaml` is planned against `<name>.yaml` by `ferrolb plan` with the addresses the
//! allocation rules (DESIGN.md) promise.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{repo_root, run, stderr, stdout};

const FERROLB: &str = env!("CARGO_BIN_EXE_ferrolb");

/// Addresses each plan must show, whatever order the Services are handled in: requested ones,
/// pool-pinned ones (lowest of the pool) and the lowest free ones of the auto-assign pools.
const EXPECTED_IPS: &[(&str, &[&str])] = &[
    ("single-ipv4.yaml", &["192.0.2.240", "192.0.2.250"]),
    (
        "dual-stack.yaml",
        &[
            "198.51.100.16",
            "198.51.100.17",
            "2001:db8:10::",
            "2001:db8:10::1",
            "2001:db8:20::10",
        ],
    ),
    (
        "multi-pool.yaml",
        &[
            "203.0.113.1",
            "203.0.113.2",
            "198.51.100.200",
            "198.51.100.210",
            "203.0.113.53",
        ],
    ),
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
    let names: Vec<_> = pairs
        .iter()
        .map(|(c, _)| c.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for (config, _) in EXPECTED_IPS {
        assert!(
            names.iter().any(|n| n == config),
            "config/{config} has no services file"
        );
    }
    for (config, services) in &pairs {
        assert!(
            config.is_file(),
            "{} has no {}",
            services.display(),
            config.display()
        );
        assert!(
            !service_names(services).is_empty(),
            "{} holds no Service",
            services.display()
        );
    }
}

#[test]
fn example_configs_pass_check_config() {
    for (config, _) in example_pairs() {
        let out = run(Command::new(FERROLB).arg("check-config").arg(&config));
        assert!(
            out.status.success(),
            "ferrolb check-config {} failed:\n{}{}",
            config.display(),
            stdout(&out),
            stderr(&out)
        );
    }
}

#[test]
fn example_services_plan_to_the_documented_addresses() {
    for (config, services) in example_pairs() {
        let out = run(Command::new(FERROLB)
            .arg("plan")
            .arg("--config")
            .arg(&config)
            .arg("--services")
            .arg(&services));
        let text = stdout(&out);
        assert!(
            out.status.success(),
            "ferrolb plan --config {} --services {} failed:\n{text}{}",
            config.display(),
            services.display(),
            stderr(&out)
        );
        for name in service_names(&services) {
            assert!(
                text.contains(&name),
                "plan for {} does not mention {name}:\n{text}",
                services.display()
            );
        }
        let config_name = config.file_name().unwrap().to_string_lossy().into_owned();
        let expected = EXPECTED_IPS
            .iter()
            .find(|(c, _)| *c == config_name)
            .map(|(_, ips)| *ips);
        for ip in expected.unwrap_or_default() {
            assert!(
                text.contains(ip),
                "plan for {config_name} does not assign {ip}:\n{text}"
            );
        }
    }
}
