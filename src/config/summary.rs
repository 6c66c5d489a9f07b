//! The human summary `check-config` prints for a valid config.

use std::fmt::Write as _;

use super::schema::{
    BgpAd, Config, DynamicAsn, L2Advertisement, LabelSelector, Peer, ServiceAllocation, Source,
};

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

/// Columns padded like kubectl's tabwriter.
fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
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
    for row in rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

fn selectors(list: &[LabelSelector]) -> String {
    if list.is_empty() {
        return "<all>".into();
    }
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Who a pool is pinned to, as one cell.
fn pinned_to(sa: Option<&ServiceAllocation>) -> String {
    let Some(sa) = sa else {
        return "-".into();
    };
    if sa.pins_everyone() {
        return "<all services>".into();
    }
    let mut parts = Vec::new();
    if !sa.namespaces.is_empty() {
        let names: Vec<&str> = sa.namespaces.iter().map(String::as_str).collect();
        parts.push(format!("ns={}", names.join(",")));
    }
    if !sa.namespace_selectors.is_empty() {
        parts.push(format!("ns:{}", selectors(&sa.namespace_selectors)));
    }
    if !sa.service_selectors.is_empty() {
        parts.push(format!("svc:{}", selectors(&sa.service_selectors)));
    }
    parts.join(" ")
}

fn ad_row(ad: &L2Advertisement) -> [String; 6] {
    let mut pools: Vec<String> = ad.pools.clone();
    pools.extend(ad.pool_selectors.iter().map(|s| format!("labels:{s}")));
    let pools = if pools.is_empty() {
        "<all>".into()
    } else {
        pools.join(",")
    };
    let interfaces = if ad.interfaces.is_empty() {
        "<all>".into()
    } else {
        ad.interfaces.join(",")
    };
    [
        ad.name.clone(),
        pools,
        selectors(&ad.node_selectors),
        interfaces,
        selectors(&ad.service_selectors),
        if ad.preferred.is_empty() {
            "<none>".into()
        } else {
            ad.preferred
                .iter()
                .map(|p| format!("{}:{}", p.weight, p.preference))
                .collect::<Vec<_>>()
                .join(" | ")
        },
    ]
}

fn peer_row(p: &Peer) -> [String; 7] {
    let address = match p.peer_address {
        std::net::IpAddr::V6(a) => format!("[{a}]:{}", p.peer_port),
        a => format!("{a}:{}", p.peer_port),
    };
    let peer_asn = match p.dynamic_asn {
        Some(DynamicAsn::Internal) => "internal".into(),
        Some(DynamicAsn::External) => "external".into(),
        None => p.peer_asn.to_string(),
    };
    [
        p.name.clone(),
        address,
        p.my_asn.to_string(),
        peer_asn,
        format!("{}s", p.hold_time.as_secs()),
        p.bfd_profile.clone().unwrap_or_else(|| "-".into()),
        selectors(&p.node_selectors),
    ]
}

fn bgp_ad_row(ad: &BgpAd) -> [String; 8] {
    let mut pools: Vec<String> = ad.pools.clone();
    pools.extend(ad.pool_selectors.iter().map(|s| format!("labels:{s}")));
    let all = |v: Vec<String>| {
        if v.is_empty() {
            "<all>".into()
        } else {
            v.join(",")
        }
    };
    [
        ad.name.clone(),
        all(pools),
        all(ad.peers.clone()),
        format!("/{},/{}", ad.aggregation_length, ad.aggregation_length_v6),
        ad.local_pref.map_or_else(|| "-".into(), |p| p.to_string()),
        if ad.communities.is_empty() {
            "-".into()
        } else {
            ad.communities
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        },
        selectors(&ad.node_selectors),
        selectors(&ad.service_selectors),
    ]
}

/// The BGP peers and advertisements (both sources), each table only when it has rows.
fn render_bgp(config: &Config, out: &mut String) {
    if !config.peers.is_empty() {
        out.push('\n');
        let rows: Vec<[String; 7]> = config.peers.iter().map(peer_row).collect();
        out.push_str(&table(
            [
                "PEER", "ADDRESS", "MY-ASN", "PEER-ASN", "HOLD", "BFD", "NODES",
            ],
            &rows,
        ));
    }
    if !config.bgp_advertisements.is_empty() {
        out.push('\n');
        let rows: Vec<[String; 8]> = config.bgp_advertisements.iter().map(bgp_ad_row).collect();
        out.push_str(&table(
            [
                "BGPADVERTISEMENT",
                "POOLS",
                "PEERS",
                "AGGREGATION",
                "LOCAL-PREF",
                "COMMUNITIES",
                "NODES",
                "SERVICES",
            ],
            &rows,
        ));
    }
}

/// What `check-config` prints for custom resources: pools with their pinning, advertisements,
/// BGP objects and warnings.
fn render_crds(config: &Config) -> String {
    let rows: Vec<[String; 7]> = config
        .address_pools
        .iter()
        .map(|p| {
            let ads: Vec<&str> = config
                .l2_advertisements_for(p)
                .iter()
                .map(|a| a.name.as_str())
                .collect();
            let sa = p.allocation.as_ref();
            [
                p.name.clone(),
                p.families().to_string(),
                p.address_count().to_string(),
                p.auto_assign.to_string(),
                sa.map_or("-".into(), |a| a.priority.to_string()),
                pinned_to(sa),
                if ads.is_empty() && !config.bgp_advertisements_for(p).is_empty() {
                    "<none: BGP only>".into()
                } else if ads.is_empty() {
                    "<none: not announced>".into()
                } else {
                    ads.join(",")
                },
            ]
        })
        .collect();
    let mut out = table(
        [
            "POOL",
            "FAMILIES",
            "ADDRESSES",
            "AUTO-ASSIGN",
            "PRIORITY",
            "PINNED-TO",
            "L2-ADVERTISEMENTS",
        ],
        &rows,
    );
    out.push('\n');
    let ads: Vec<[String; 6]> = config.l2_advertisements.iter().map(ad_row).collect();
    out.push_str(&table(
        [
            "L2ADVERTISEMENT",
            "POOLS",
            "NODES",
            "INTERFACES",
            "SERVICES",
            "PREFERRED",
        ],
        &ads,
    ));
    render_bgp(config, &mut out);
    let _ = writeln!(
        out,
        "\npools: {}  l2advertisements: {}  peers: {}  bgpadvertisements: {}  communities: {}  \
         bfdprofiles: {}",
        config.address_pools.len(),
        config.l2_advertisements.len(),
        config.peers.len(),
        config.bgp_advertisements.len(),
        config.bgp_communities.len(),
        config.bfd_profiles.len()
    );
    for w in &config.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// A `kubectl`-style table of pools (NAME, PROTOCOL, FAMILIES, ADDRESSES, AUTO-ASSIGN), the BGP
/// peers and advertisements, then the number of peers, BGP communities and BFD profiles; for
/// custom resources, pools with their priority and pinning, then the L2 advertisements, the
/// BGP peers and advertisements. Any warnings last.
pub fn render(config: &Config) -> String {
    if config.source == Source::Crds {
        return render_crds(config);
    }
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
    let mut out = table(header, &rows);
    render_bgp(config, &mut out);
    let _ = writeln!(
        out,
        "\npools: {}  peers: {}  bgp-communities: {}  bfd-profiles: {}",
        config.address_pools.len(),
        config.peers.len(),
        config.bgp_communities.len(),
        config.bfd_profiles.len()
    );
    for w in &config.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}
