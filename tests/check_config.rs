//! `ferrolb check-config FILE`: exit codes and output, run as a user would run it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

fn check_config(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .arg("check-config")
        .arg(path)
        .output()
        .expect("run ferrolb")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The table cells of the row starting with `name`, split on runs of spaces.
fn row(stdout: &str, name: &str) -> Vec<String> {
    stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{stdout}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn valid_config_exits_zero_with_a_pool_summary() {
    let out = check_config(&fixture("full.yaml"));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["NAME", "PROTOCOL", "FAMILIES", "ADDRESSES", "AUTO-ASSIGN"]),
        "{stdout}"
    );
    assert_eq!(
        row(&stdout, "default"),
        ["default", "layer2", "IPv4,IPv6", "330", "true"]
    );
    assert_eq!(
        row(&stdout, "reserved"),
        ["reserved", "layer2", "IPv4,IPv6", "144", "false"]
    );
    // 256 IPv4 + 2^64 IPv6 addresses: counted exactly, no overflow.
    let bgp = row(&stdout, "bgp-pool");
    assert_eq!(bgp[..3], ["bgp-pool", "bgp", "IPv4,IPv6"]);
    assert_eq!(bgp[3], (256u128 + (1u128 << 64)).to_string());
    assert!(stdout.contains("peers: 2"), "{stdout}");
}

#[test]
fn configmap_manifest_is_accepted() {
    let out = check_config(&fixture("configmap.yaml"));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        row(&stdout, "default"),
        ["default", "layer2", "IPv4,IPv6", "24", "true"]
    );
    assert_eq!(
        row(&stdout, "manual"),
        ["manual", "layer2", "IPv4", "3", "false"]
    );
    assert!(stdout.contains("peers: 0"), "{stdout}");
}

#[test]
fn invalid_config_exits_one_listing_every_error() {
    let out = check_config(&fixture("invalid.yaml"));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(stderr.contains("6 validation errors"), "{stderr}");
    for expected in [
        "peer #1 (192.0.2.1), field hold-time: invalid hold time \"1s\": must be 0 or >=3s",
        "address pool \"default\" (#1), field addresses: invalid CIDR \"192.0.2.300/32\"",
        "address pool \"second\" (#2), field protocol: unknown protocol \"arp\"",
        "address pool \"default\" (#3), field addresses: invalid IP range \"198.51.100.9-198.51.100.1\"",
        "address pool \"default\" (#3), field name: duplicate definition of pool \"default\"",
        "address pool \"second\" (#2), field addresses: CIDR \"192.0.2.128-192.0.2.200\" overlaps with already defined CIDR \"192.0.2.0/24\" in address pool \"default\" (#1)",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn unknown_key_exits_one_naming_the_key_and_line() {
    let out = check_config(&fixture("unknown-key.yaml"));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unknown field `auto-asign`"), "{stderr}");
    assert!(stderr.contains("line 6"), "{stderr}");
}

#[test]
fn missing_file_exits_one_with_a_clear_error() {
    let path = fixture("does-not-exist.yaml");
    let out = check_config(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot read {}", path.display())),
        "{stderr}"
    );
}

#[test]
fn non_utf8_and_oversized_files_exit_one() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("binary.yaml");
    std::fs::write(&binary, [0xff, 0xfe, b'a', b':']).unwrap();
    let out = check_config(&binary);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot read"),
        "{}",
        text(&out.stderr)
    );

    let big = dir.path().join("big.yaml");
    let mut body = String::from("# padding\n");
    body.push_str(&"#".repeat(ferrolb::config::MAX_INPUT_BYTES));
    std::fs::write(&big, body).unwrap();
    let out = check_config(&big);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("larger than"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn shipped_example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example-config.yaml");
    let out = check_config(&path);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("NAME"), "{}", text(&out.stdout));
}

#[test]
fn crd_example_is_valid_and_shows_pinning_and_advertisements() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/crds-example.yaml");
    let out = check_config(&path);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(
        row(&stdout, "shop")[..6],
        ["shop", "IPv4", "4", "true", "1", "ns=shop"]
    );
    assert_eq!(row(&stdout, "reserved")[3], "false");
    assert_eq!(
        row(&stdout, "dmz"),
        [
            "dmz",
            "labels:zone=dmz",
            "node-role.example.com/edge=",
            "eth1",
            "expose=dmz",
            "<none>"
        ]
    );
    assert!(!stdout.contains("warning"), "{stdout}");
}

#[test]
fn crd_errors_name_the_object_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a}\nspec:\n  \
         addresses: [192.0.2.0/24]\n---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\n\
         metadata: {name: b}\nspec:\n  addresses: [192.0.2.128/25]\n  serviceAllocation:\n    \
         namespaces: [x, x]\n",
    )
    .unwrap();
    let out = check_config(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("IPAddressPool \"b\", field spec.serviceAllocation.namespaces[1]"),
        "{stderr}"
    );
    assert!(
        stderr.contains("overlaps") && stderr.contains("IPAddressPool \"a\""),
        "{stderr}"
    );
}

/// A field ferrolb does not know in a custom resource (one a newer MetalLB added) is a warning
/// naming the object and the field, and the config is valid: exit 0, the known fields shown.
#[test]
fn an_unknown_crd_field_is_a_warning_and_the_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer.yaml");
    std::fs::write(
        &path,
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan}\nspec:\n  \
         addresses: [192.0.2.0/28]\n---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\n\
         metadata: {name: l2}\nspec:\n  ipAddressPools: [lan]\n  interfaces: [eth0]\n  \
         nodeFailoverSelectors:\n  - weight: 50\n    preference:\n      matchLabels: {zone: \
         east}\n",
    )
    .unwrap();
    let out = check_config(&path);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains(": valid"), "{stdout}");
    assert_eq!(
        row(&stdout, "l2"),
        ["l2", "lan", "<all>", "eth0", "<all>", "<none>"]
    );
    let warning = stdout
        .lines()
        .find(|l| l.starts_with("warning:") && l.contains("L2Advertisement \"l2\""))
        .unwrap_or_else(|| panic!("no warning about the advertisement in:\n{stdout}"));
    assert!(
        warning.contains("field spec.nodeFailoverSelectors")
            && warning.contains("unknown field")
            && warning.contains("ignored"),
        "{warning}"
    );
}

/// MetalLB's documented BGP examples: valid, and the summary shows each peer (name, address,
/// ASNs, nodes) and each advertisement (pools, peers, aggregation, local preference,
/// communities).
#[test]
fn bgp_objects_are_shown_peer_by_peer_and_advertisement_by_advertisement() {
    let out = check_config(&fixture("bgp-metallb-docs.yaml"));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(!stdout.contains("warning"), "{stdout}");
    assert_eq!(
        row(&stdout, "sample"),
        [
            "sample",
            "10.0.0.1:179",
            "64500",
            "64501",
            "90s",
            "-",
            "<all>"
        ]
    );
    assert_eq!(
        row(&stdout, "legacy-router")[..5],
        ["legacy-router", "10.0.0.2:179", "64500", "64502", "120s"]
    );
    assert_eq!(
        row(&stdout, "local"),
        [
            "local",
            "bgp-pool",
            "<all>",
            "/32,/128",
            "100",
            "65535:65282",
            "<all>",
            "<all>"
        ]
    );
    assert_eq!(
        row(&stdout, "external")[..5],
        ["external", "bgp-pool", "<all>", "/24,/128", "-"]
    );
    let example = row(&stdout, "example");
    // The peer and the advertisement share the name; the advertisement's row comes second.
    let ad = stdout
        .lines()
        .filter(|l| l.starts_with("example "))
        .nth(1)
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(
        example[..4],
        ["example", "172.30.0.3:180", "64512", "64512"]
    );
    assert!(
        ad.contains("first-pool")
            && ad.contains(" sample ")
            && ad.contains("kubernetes.io/hostname=NodeA"),
        "{ad}"
    );
    assert!(
        stdout.contains("peers: 3  bgpadvertisements: 3  communities: 1"),
        "{stdout}"
    );
}

#[test]
fn legacy_peers_and_bgp_advertisements_are_shown() {
    let out = check_config(&fixture("full.yaml"));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(
        row(&stdout, "peer1")[..5],
        ["peer1", "192.0.2.1:1179", "64500", "64501", "120s"]
    );
    assert_eq!(row(&stdout, "peer2")[1], "[2001:db8::1]:179");
    assert_eq!(
        row(&stdout, "bgpadvertisement1")[..2],
        ["bgpadvertisement1", "bgp-pool"]
    );
}
