//! Config parsing cost: a large valid config, and how fast hostile documents are rejected.
//!
//! `cargo bench --bench config`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ferrolb::config::{ConfigError, MAX_DEPTH, MAX_INPUT_BYTES, parse};

/// 1000 pools, each one IPv4 /28, one IPv4 range and one IPv6 /120; every other pool BGP.
fn large_config() -> String {
    let mut text = String::from("address-pools:\n");
    for i in 0..1000u32 {
        let (a, b) = (i / 16, (i % 16) * 16);
        let protocol = if i % 2 == 0 { "layer2" } else { "bgp" };
        text.push_str(&format!(
            "- name: pool-{i}\n  protocol: {protocol}\n  addresses:\n  - 10.{a}.{b}.0/28\n  \
             - 10.100.{a}.{b}-10.100.{a}.{}\n  - 2001:db8:{i:x}::/120\n",
            b + 15
        ));
    }
    text
}

fn alias_bomb() -> String {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..20 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    text
}

fn deep_nesting() -> String {
    let mut text = String::new();
    for depth in 0..MAX_DEPTH * 20 {
        text.push_str(&" ".repeat(depth));
        text.push_str("x:\n");
    }
    text
}

/// A document just under the size limit made of tiny nodes: `peers: [1,1,1,...]`.
fn many_nodes() -> String {
    let mut text = String::from("peers: [");
    while text.len() < MAX_INPUT_BYTES - 4 {
        text.push_str("1,");
    }
    text.push_str("1]\n");
    text
}

fn benches(c: &mut Criterion) {
    let large = large_config();
    assert_eq!(parse(&large).unwrap().address_pools.len(), 1000);
    c.bench_function("parse 1000 pools (3000 entries)", |b| {
        b.iter(|| parse(black_box(&large)))
    });
    for (name, text) in [
        ("reject alias bomb (10^20 expansion)", alias_bomb()),
        ("reject 640-deep nesting", deep_nesting()),
        ("reject 2 MiB of tiny nodes", many_nodes()),
    ] {
        assert!(
            matches!(parse(&text), Err(ConfigError::Budget(_))),
            "{name}"
        );
        c.bench_function(name, |b| b.iter(|| parse(black_box(&text))));
    }
}

criterion_group!(config, benches);
criterion_main!(config);
