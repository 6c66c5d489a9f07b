//! The pinning benchmark's inputs are what BENCHMARKS.md says they are: `check-config` accepts
//! them, and `plan` (the real binary) of a small generated set assigns every Service, pinned
//! Services only in pools pinned to them and the others only in unpinned pools. Timings are not
//! asserted here; they are in BENCHMARKS.md.

#[path = "../benches/support/pin_model.rs"]
mod pin_model;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

const SERVICES: usize = 200;

fn ferrolb(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .args(args)
        .output()
        .expect("run ferrolb");
    assert!(
        out.status.success(),
        "ferrolb {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `namespace/name` -> (external IP, pool) from plan's table; every input row must be there.
fn plan(config: &str, services: &str) -> BTreeMap<String, (String, String)> {
    let stdout = ferrolb(&["plan", "--config", config, "--services", services]);
    let table = stdout.split_once("\n\n").map_or(stdout.as_str(), |t| t.0);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
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
    let rows: BTreeMap<String, (String, String)> = lines
        .map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            (
                format!("{}/{}", cols[0], cols[1]),
                (cols[3].to_owned(), cols[4].to_owned()),
            )
        })
        .collect();
    assert_eq!(rows.len(), SERVICES, "{stdout}");
    rows
}

fn key(j: usize) -> String {
    format!(
        "{}/{}",
        pin_model::namespace_name(pin_model::service_namespace(j)),
        pin_model::service_name(j)
    )
}

/// The address must lie in the pool's 10.octet.0.0/20.
fn assert_in_pool(ip: &str, pool: &str, what: &str) {
    let octet: usize = pool.trim_start_matches("pool-").parse().unwrap();
    let parts: Vec<usize> = ip.split('.').map(|p| p.parse().unwrap()).collect();
    assert!(
        parts.len() == 4 && parts[0] == 10 && parts[1] == octet && parts[2] < 16,
        "{what}: {ip} is not in {pool}"
    );
}

#[test]
fn generated_pin_workload_is_valid_and_planned_by_its_pins() {
    let dir = tempfile::tempdir().unwrap();
    let pools = pin_model::pools(true);
    let pinned = write(dir.path(), "pinned.yaml", &pin_model::crd_yaml(&pools));
    let unpinned = write(
        dir.path(),
        "unpinned.yaml",
        &pin_model::crd_yaml(&pin_model::pools(false)),
    );
    let legacy = write(dir.path(), "legacy.yaml", &pin_model::legacy_yaml());
    let services = write(
        dir.path(),
        "services.yaml",
        &pin_model::services_yaml(SERVICES),
    );

    for config in [&pinned, &unpinned, &legacy] {
        let summary = ferrolb(&["check-config", config]);
        for i in [0, 99] {
            let name = pin_model::pool_name(i);
            assert!(
                summary.contains(&name),
                "{config}: {name} missing: {summary}"
            );
        }
    }
    assert_eq!(pools.iter().filter(|p| p.pin.is_some()).count(), 50);

    let planned = plan(&pinned, &services);
    let unpinned_pools: BTreeSet<String> = pools
        .iter()
        .filter(|p| p.pin.is_none())
        .map(|p| p.name.clone())
        .collect();
    // Each kind of pin must decide some of the 200, or the check below proves little.
    let mut by_kind = [0usize; 3];
    for j in 0..SERVICES {
        let (ip, pool) = &planned[&key(j)];
        assert_ne!(pool, "<none>", "{} was not assigned", key(j));
        assert_in_pool(ip, pool, &key(j));
        let pins = pin_model::pinned_pools(&pools, j);
        if pins.is_empty() {
            assert!(unpinned_pools.contains(pool), "{} in {pool}", key(j));
            continue;
        }
        assert!(
            pins.contains(pool),
            "{} in {pool}, pinned to {pins:?}",
            key(j)
        );
        let chosen = pools.iter().find(|p| &p.name == pool).unwrap();
        by_kind[match &chosen.pin {
            Some((_, pin_model::Pin::Namespaces(_))) => 0,
            Some((_, pin_model::Pin::Team(_))) => 1,
            _ => 2,
        }] += 1;
    }
    assert!(by_kind.iter().all(|&n| n > 0), "per kind: {by_kind:?}");

    // Without pins every Service is assigned from the unpinned pools, and the legacy ConfigMap
    // form of those pools (the pre-pinning benchmark input) plans exactly the same.
    let plain = plan(&unpinned, &services);
    assert!(
        plain.values().all(|(_, pool)| pool != "<none>"),
        "{plain:?}"
    );
    assert_eq!(plan(&legacy, &services), plain);
}
