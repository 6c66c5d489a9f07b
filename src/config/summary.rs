//! The human summary `check-config` prints for a valid config.

use std::fmt::Write as _;

use super::schema::Config;

/// One row of the pool table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRow {
    pub name: String,
    pub protocol: String,
    pub families: String,
    /// Addresses in the pool's ranges (before `avoid-buggy-ips` exclusions).
    pub addresses: u128,
    pub auto_assign: bool,
}

/// The pool rows, in config order.
pub fn pool_rows(config: &Config) -> Vec<PoolRow> {
    config
        .address_pools
        .iter()
        .map(|p| PoolRow {
            name: p.name.clone(),
            protocol: p.protocol.to_string(),
            families: p.families().to_string(),
            addresses: p.address_count(),
            auto_assign: p.auto_assign,
        })
        .collect()
}

/// A `kubectl`-style table of pools (NAME, PROTOCOL, FAMILIES, ADDRESSES, AUTO-ASSIGN) followed
/// by the number of peers, BGP communities and BFD profiles.
pub fn render(config: &Config) -> String {
    let header = ["NAME", "PROTOCOL", "FAMILIES", "ADDRESSES", "AUTO-ASSIGN"];
    let rows: Vec<[String; 5]> = pool_rows(config)
        .into_iter()
        .map(|r| {
            [
                r.name,
                r.protocol,
                r.families,
                r.addresses.to_string(),
                r.auto_assign.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}   ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    let _ = writeln!(
        out,
        "\npools: {}  peers: {}  bgp-communities: {}  bfd-profiles: {}",
        config.address_pools.len(),
        config.peers.len(),
        config.bgp_communities.len(),
        config.bfd_profiles.len()
    );
    out
}
