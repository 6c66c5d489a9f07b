//! The metric families the binaries export, scraped from the real /metrics server after every
//! family has been exercised through the constructors the controller and the speaker use:
//! MetalLB's names and labels with `--metallb-metric-names` (and none of them without), and the
//! chart's Grafana dashboard and PrometheusRule referring only to names that exist.

#[path = "chart/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use ferrolb::controller::metrics::ControllerMetrics;
use ferrolb::gossip::{DropCounts, GossipCollector, GossipStats, MemberCounts};
use ferrolb::ipam::PoolStats;
use ferrolb::metrics::{ConfigMetrics, Naming};
use ferrolb::speaker::bgp_metrics::{BfdSample, BgpMetrics, PeerSample};
use ferrolb::speaker::metrics::{
    AnnouncedMetric, CandidateMetric, Layer2Metrics, ServiceIpsMetric, VerifyMetrics,
};
use ferrolb::telemetry::{self, Health, Registry, TextRegistry};
use serde_json::Value;
use support::*;

/// MetalLB's families a layer-2 user's dashboards and alerts read (MetalLB's
/// `internal/allocator/stats.go`, `internal/k8s/controllers/stats.go`, `internal/layer2/stats.go`,
/// `speaker/main.go`): name, type, label names in MetalLB's order, and which component exports
/// it. MetalLB's `metallb_allocator_services_allocated_total` is registered there but never set,
/// so MetalLB itself never exports it. The BGP families are its native speaker's
/// (`internal/bgp/native/stats.go`), one series per peer labelled `peer="address:port"`.
const METALLB: &[(&str, &str, &[&str], &str)] = &[
    (
        "metallb_allocator_addresses_total",
        "gauge",
        &["pool"],
        "controller",
    ),
    (
        "metallb_allocator_addresses_in_use_total",
        "gauge",
        &["pool"],
        "controller",
    ),
    (
        "metallb_allocator_ipv4_addresses_total",
        "gauge",
        &["pool"],
        "controller",
    ),
    (
        "metallb_allocator_ipv4_addresses_in_use_total",
        "gauge",
        &["pool"],
        "controller",
    ),
    (
        "metallb_allocator_ipv6_addresses_total",
        "gauge",
        &["pool"],
        "controller",
    ),
    (
        "metallb_allocator_ipv6_addresses_in_use_total",
        "gauge",
        &["pool"],
        "controller",
    ),
    (
        "metallb_k8s_client_config_loaded_bool",
        "gauge",
        &[],
        "controller",
    ),
    (
        "metallb_k8s_client_config_stale_bool",
        "gauge",
        &[],
        "controller",
    ),
    (
        "metallb_k8s_client_updates_total",
        "counter",
        &[],
        "controller",
    ),
    (
        "metallb_k8s_client_update_errors_total",
        "counter",
        &[],
        "controller",
    ),
    (
        "metallb_k8s_client_config_loaded_bool",
        "gauge",
        &[],
        "speaker",
    ),
    (
        "metallb_k8s_client_config_stale_bool",
        "gauge",
        &[],
        "speaker",
    ),
    (
        "metallb_k8s_client_updates_total",
        "counter",
        &[],
        "speaker",
    ),
    (
        "metallb_k8s_client_update_errors_total",
        "counter",
        &[],
        "speaker",
    ),
    (
        "metallb_layer2_requests_received",
        "counter",
        &["ip"],
        "speaker",
    ),
    (
        "metallb_layer2_responses_sent",
        "counter",
        &["ip"],
        "speaker",
    ),
    (
        "metallb_layer2_gratuitous_sent",
        "counter",
        &["ip"],
        "speaker",
    ),
    (
        "metallb_speaker_announced",
        "gauge",
        &["service", "protocol", "node", "ip"],
        "speaker",
    ),
    ("metallb_bgp_session_up", "gauge", &["peer"], "speaker"),
    ("metallb_bgp_updates_total", "counter", &["peer"], "speaker"),
    (
        "metallb_bgp_announced_prefixes_total",
        "gauge",
        &["peer"],
        "speaker",
    ),
    (
        "metallb_bgp_pending_prefixes_total",
        "gauge",
        &["peer"],
        "speaker",
    ),
    // MetalLB's FRR mode (its frr-metrics sidecar); without its `vrf` label (no VRFs here).
    ("metallb_bfd_session_up", "gauge", &["peer"], "speaker"),
    (
        "metallb_bfd_session_up_events",
        "counter",
        &["peer"],
        "speaker",
    ),
    (
        "metallb_bfd_session_down_events",
        "counter",
        &["peer"],
        "speaker",
    ),
    (
        "metallb_bfd_control_packet_input",
        "counter",
        &["peer"],
        "speaker",
    ),
    (
        "metallb_bfd_control_packet_output",
        "counter",
        &["peer"],
        "speaker",
    ),
];

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    raw.split_once("\r\n\r\n").unwrap().1.to_owned()
}

async fn serve(registry: Registry, text: TextRegistry) -> String {
    let server = telemetry::serve_with_text(
        "127.0.0.1:0".parse().unwrap(),
        registry,
        text,
        Health::new(),
    )
    .await
    .unwrap();
    let body = get(server.local_addr(), "/metrics").await;
    server.shutdown().await.unwrap();
    body
}

/// The controller's /metrics with every family holding a sample: a dual-stack pool with an
/// address of each family in use, and a config applied then refused.
async fn controller_scrape(naming: Naming) -> String {
    let registry = Registry::new();
    let m = ControllerMetrics::register_named(&registry, naming).unwrap();
    m.set_pools(&[PoolStats {
        pool: "dual".into(),
        total: 20,
        in_use: 2,
        ipv6_total: 4,
        ipv6_in_use: 1,
    }]);
    m.config.applied();
    m.config.refused();
    serve(registry, TextRegistry::default()).await
}

/// The speaker's /metrics, wired as `speaker::kubernetes::run` wires it, with traffic counted,
/// an IP announced, gossip members known and a BGP session up.
async fn speaker_scrape(naming: Naming) -> String {
    let registry = Registry::new();
    let text = TextRegistry::default();
    let l2 = Layer2Metrics::with_names(&text, naming);
    let announced = AnnouncedMetric::with_names(&text, naming);
    ServiceIpsMetric::register(&registry, naming)
        .unwrap()
        .set(1);
    CandidateMetric::register(&registry, naming)
        .unwrap()
        .set(true);
    VerifyMetrics::register(&registry, naming)
        .unwrap()
        .set(1, false, Some(1));
    let config = ConfigMetrics::register(&registry, naming).unwrap();
    config.applied();
    config.refused();
    let (_tx, rx) = tokio::sync::watch::channel(GossipStats {
        members: MemberCounts {
            alive: 2,
            suspect: 0,
            down: 1,
        },
        drops: DropCounts {
            auth: 1,
            decode: 0,
            replay: 0,
        },
        ..GossipStats::default()
    });
    registry
        .register(Box::new(GossipCollector::new(rx).unwrap()))
        .unwrap();
    let ip: IpAddr = "192.0.2.10".parse().unwrap();
    let counters = l2.counters(ip);
    counters.request();
    counters.response();
    counters.gratuitous();
    announced.set("default/web", "node-a", ip, true);
    BgpMetrics::with_names(&text, naming).set(
        [(
            "192.0.2.1:179".to_owned(),
            PeerSample {
                up: true,
                updates_sent: 2,
                announced: 1,
                pending: 1,
                bfd: Some(BfdSample::default()),
            },
        )]
        .into(),
    );
    serve(registry, text).await
}

/// Family name -> (type, label names of its samples).
fn families(scrape: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            out.entry(name.into()).or_default().0 = kind.into();
        } else if !line.starts_with('#') && !line.is_empty() {
            let name_end = line.find(['{', ' ']).unwrap();
            let labels = match line[name_end..].strip_prefix('{') {
                Some(rest) => rest[..rest.find('}').unwrap()]
                    .split(',')
                    .map(|kv| kv.split_once('=').unwrap().0.to_owned())
                    .collect(),
                None => BTreeSet::new(),
            };
            out.entry(line[..name_end].into()).or_default().1 = labels;
        }
    }
    out
}

async fn scrapes(naming: Naming) -> [(&'static str, String); 2] {
    [
        ("controller", controller_scrape(naming).await),
        ("speaker", speaker_scrape(naming).await),
    ]
}

#[tokio::test]
async fn metallb_names_and_labels_are_exported_with_the_flag() {
    let scrapes = scrapes(Naming::Metallb).await;
    for (name, kind, labels, component) in METALLB {
        let scrape = &scrapes.iter().find(|(c, _)| c == component).unwrap().1;
        let fams = families(scrape);
        let Some((got_kind, got_labels)) = fams.get(*name) else {
            panic!("{component} does not export {name}:\n{scrape}");
        };
        assert_eq!(got_kind, kind, "{component} {name}");
        let want: BTreeSet<String> = labels.iter().map(|l| l.to_string()).collect();
        assert_eq!(got_labels, &want, "{component} {name}");
    }
    // What MetalLB has no counterpart for keeps ferrolb's name; nothing else does.
    for (component, scrape) in &scrapes {
        for name in families(scrape).keys() {
            assert!(
                name.starts_with("metallb_")
                    || ferrolb::metrics::ALL
                        .iter()
                        .any(|f| f.metallb.is_none() && f.ferrolb == name),
                "{component} exports {name} under ferrolb's name with --metallb-metric-names"
            );
        }
    }
    assert!(scrapes[1].1.contains(
        "metallb_speaker_announced{ip=\"192.0.2.10\",node=\"node-a\",protocol=\"layer2\",service=\"default/web\"} 1"
    ));
}

#[tokio::test]
async fn no_metallb_name_without_the_flag_and_each_has_a_ferrolb_twin() {
    let scrapes = scrapes(Naming::Ferrolb).await;
    for (component, scrape) in &scrapes {
        assert!(!scrape.contains("metallb_"), "{component}:\n{scrape}");
    }
    for (name, _, _, component) in METALLB {
        let family = ferrolb::metrics::ALL
            .iter()
            .find(|f| f.metallb == Some(*name))
            .unwrap_or_else(|| panic!("no ferrolb family for {name}"));
        let scrape = &scrapes.iter().find(|(c, _)| c == component).unwrap().1;
        assert!(
            families(scrape).contains_key(family.ferrolb),
            "{component} does not export {}",
            family.ferrolb
        );
    }
}

/// Every family name the two components export under `naming`.
async fn exported(naming: Naming) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (_, scrape) in scrapes(naming).await {
        names.extend(families(&scrape).into_keys());
    }
    names
}

/// Metric names in PromQL: identifiers with our prefixes, plus any `_bucket`-style suffix
/// would show up as a name the code does not export.
fn promql_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            if word.starts_with("ferrolb_") || word.starts_with("metallb_") {
                names.insert(std::mem::take(&mut word));
            }
            word.clear();
        }
    }
    names
}

fn dashboard_exprs(dashboard: &Value, out: &mut Vec<String>) {
    match dashboard {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

/// The PromQL of the rendered dashboard ConfigMap and PrometheusRule.
fn rendered_exprs(helm: &Path, metallb: bool) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        format!(
            "metrics:\n  metallbNames: {metallb}\ngrafanaDashboard:\n  enabled: true\n\
             prometheus:\n  skipCRDCheck: true\n  prometheusRule:\n    enabled: true\n"
        ),
    )
    .unwrap();
    let m = render(helm, Some(&values));
    let mut exprs = Vec::new();
    let dashboards: Vec<&Value> = m
        .of_kind("ConfigMap")
        .filter(|cm| cm["metadata"]["labels"]["grafana_dashboard"] == "1")
        .collect();
    assert_eq!(dashboards.len(), 1, "one dashboard ConfigMap");
    for data in dashboards[0]["data"].as_object().unwrap().values() {
        let dashboard: Value = serde_json::from_str(data.as_str().unwrap()).unwrap();
        dashboard_exprs(&dashboard, &mut exprs);
    }
    let rules: Vec<&Value> = m.of_kind("PrometheusRule").collect();
    assert_eq!(rules.len(), 1);
    for group in rules[0]["spec"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            exprs.push(rule["expr"].as_str().unwrap().to_owned());
        }
    }
    exprs
}

#[tokio::test]
async fn dashboard_and_alerts_use_only_exported_metrics_under_either_naming() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    for naming in [Naming::Ferrolb, Naming::Metallb] {
        let exported = exported(naming).await;
        let exprs = rendered_exprs(&helm, naming == Naming::Metallb);
        let mut used = BTreeSet::new();
        for expr in &exprs {
            let names = promql_names(expr);
            assert!(!names.is_empty(), "{expr} reads no ferrolb metric");
            used.extend(names);
        }
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(unknown.is_empty(), "{naming:?}: not exported: {unknown:?}");
        // The dashboard covers what the issue asks of it: pools, announcements, ARP/NDP,
        // takeovers, gossip members and drops, config state, BGP sessions, prefixes, updates.
        for want in [
            ferrolb::metrics::ADDRESSES_IN_USE,
            ferrolb::metrics::SPEAKER_ANNOUNCED,
            ferrolb::metrics::LAYER2_REQUESTS,
            ferrolb::metrics::LAYER2_GRATUITOUS,
            ferrolb::metrics::SPEAKER_TAKEOVERS,
            ferrolb::metrics::GOSSIP_MEMBERS,
            ferrolb::metrics::GOSSIP_DROPPED,
            ferrolb::metrics::CONFIG_LOADED,
            ferrolb::metrics::CONFIG_STALE,
            ferrolb::metrics::SPEAKER_SERVICE_IPS,
            ferrolb::metrics::BGP_SESSION_UP,
            ferrolb::metrics::BGP_ANNOUNCED_PREFIXES,
            ferrolb::metrics::BGP_PENDING_PREFIXES,
            ferrolb::metrics::BGP_UPDATES,
        ] {
            assert!(
                used.contains(want.name(naming)),
                "{naming:?}: {want:?} unused"
            );
        }
    }
}

/// Guards the check above: a name the code does not export is caught.
#[test]
fn promql_names_finds_every_prefixed_identifier() {
    let names = promql_names(
        "100 * max by (pool) (ferrolb_allocator_addresses_in_use_total) / \
         sum(rate(metallb_layer2_requests_received[5m])) > ferrolb_made_up",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "ferrolb_allocator_addresses_in_use_total",
            "ferrolb_made_up",
            "metallb_layer2_requests_received"
        ]
    );
}
