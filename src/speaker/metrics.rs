//! The speaker's Prometheus metrics, under ferrolb's or MetalLB's names ([`crate::metrics`]).
//!
//! The per-IP families are kept compactly and written straight to the exposition text at
//! scrape time ([`TextFamilies`]). The `prometheus` crate's labelled vectors keep, in every
//! child, a full copy of the metric descriptor (name, help text, label names) plus its label
//! strings: about a kilobyte per series, which with 10 000 owned IPs (a gratuitous counter and
//! an announced gauge each) was most of the speaker's memory; and every scrape rebuilt all of
//! it as per-series structures, megabytes that the allocator kept afterwards. Here an IP costs
//! its address, three atomics and, while announced, its service name, and a scrape allocates
//! only the response text.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::{IntGauge, Registry};

use crate::metrics::{self as names, Family, Naming};
use crate::telemetry::{TextFamilies, TextRegistry};

// Locks through `runtime::lock`, which a panicking holder cannot wedge: the data are plain
// counters and sets, valid after any partial update, and metrics must never take the speaker
// down.
pub(super) use crate::runtime::lock;

/// `# HELP` and `# TYPE` lines. Help texts here contain no backslash or newline, the only
/// characters the format escapes in them.
pub(super) fn header(out: &mut String, name: &str, family: Family, kind: &str) {
    let help = family.help;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value, escaped as the text format requires (service and node names come from
/// files and the API, so may hold anything).
pub(super) fn label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// The layer-2 counters of one IP. Handles are shared, so the receive path increments them
/// without a lock or a label lookup.
#[derive(Debug, Default)]
pub struct IpCounters {
    requests: AtomicU64,
    responses: AtomicU64,
    gratuitous: AtomicU64,
}

impl IpCounters {
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn response(&self) {
        self.responses.fetch_add(1, Ordering::Relaxed);
    }

    pub fn gratuitous(&self) {
        self.gratuitous.fetch_add(1, Ordering::Relaxed);
    }

    fn values(&self) -> [u64; 3] {
        [
            self.requests.load(Ordering::Relaxed),
            self.responses.load(Ordering::Relaxed),
            self.gratuitous.load(Ordering::Relaxed),
        ]
    }
}

#[derive(Debug, Default)]
struct Layer2Families {
    naming: Naming,
    ips: Mutex<HashMap<IpAddr, Arc<IpCounters>>>,
}

/// `ferrolb_layer2_{requests_received,responses_sent,gratuitous_sent}{ip}`. A series appears
/// with the first packet it counts, so an owned IP nobody asks about has no request or response
/// series, and all of an IP's series go when the node stops announcing it. Cloning shares the
/// counters.
#[derive(Clone, Debug)]
pub struct Layer2Metrics(Arc<Layer2Families>);

impl Layer2Metrics {
    /// Creates the counters under ferrolb's names and adds them to what `/metrics` serves.
    pub fn new(text: &TextRegistry) -> Self {
        Self::with_names(text, Naming::Ferrolb)
    }

    /// Creates the counters under `naming` and adds them to what `/metrics` serves.
    pub fn with_names(text: &TextRegistry, naming: Naming) -> Self {
        let metrics = Self(Arc::new(Layer2Families {
            naming,
            ips: Mutex::default(),
        }));
        text.register(metrics.0.clone());
        metrics
    }

    /// The counters of `ip`, created (at zero, so not yet exported) on first use.
    pub fn counters(&self, ip: IpAddr) -> Arc<IpCounters> {
        lock(&self.0.ips).entry(ip).or_default().clone()
    }

    /// Drops the series of an IP this node no longer announces, so /metrics does not grow with
    /// every IP that ever passed through. Handles still held count into the void; the receive
    /// path drops its handles when ownership changes.
    pub fn forget(&self, ip: IpAddr) {
        lock(&self.0.ips).remove(&ip);
    }
}

impl TextFamilies for Layer2Families {
    fn write_text(&self, out: &mut String) {
        // Copy the values out first, so the receive path never waits for the text.
        let mut snapshot: Vec<(IpAddr, [u64; 3])> = lock(&self.ips)
            .iter()
            .map(|(ip, counters)| (*ip, counters.values()))
            .collect();
        snapshot.sort_unstable_by_key(|(ip, _)| *ip);
        // Families in name order, as a registry writes them; `i` indexes `IpCounters::values`.
        for (family, i) in [
            (names::LAYER2_GRATUITOUS, 2),
            (names::LAYER2_REQUESTS, 0),
            (names::LAYER2_RESPONSES, 1),
        ] {
            let name = family.name(self.naming);
            let mut series = snapshot
                .iter()
                .filter(|(_, values)| values[i] > 0)
                .peekable();
            if series.peek().is_none() {
                continue;
            }
            header(out, name, family, "counter");
            for (ip, values) in series {
                let _ = writeln!(out, "{name}{{ip=\"{ip}\"}} {}", values[i]);
            }
        }
    }
}

/// (ip, service) pairs announced by one node; the Service's name is the speaker's own (shared
/// with its cache in Kubernetes mode).
pub type AnnouncedIps = BTreeSet<(IpAddr, Arc<str>)>;

/// Keyed by node: in practice always this speaker, so its name is stored once rather than once
/// per IP.
#[derive(Debug, Default)]
struct AnnouncedFamily {
    naming: Naming,
    announced: Mutex<BTreeMap<Arc<str>, AnnouncedIps>>,
    /// Per node: how many times it started announcing an IP.
    takeovers: Mutex<BTreeMap<Arc<str>, u64>>,
    /// Per node: the (ip, service) pairs it announces over BGP, exported under MetalLB's names
    /// only (`protocol="bgp"`): ferrolb's family is layer 2's, BGP has ServiceBGPStatus and the
    /// per-peer `ferrolb_bgp_*` families.
    bgp: Mutex<BTreeMap<Arc<str>, AnnouncedIps>>,
}

/// `ferrolb_speaker_announced{service,node,ip}`: 1 for each IP this node announces (MetalLB's
/// `metallb_speaker_announced` adds `protocol="layer2"`), and
/// `ferrolb_speaker_takeovers_total{node}`: how many times it started announcing one.
#[derive(Clone, Debug)]
pub struct AnnouncedMetric(Arc<AnnouncedFamily>);

impl AnnouncedMetric {
    /// Creates the families under ferrolb's names and adds them to what `/metrics` serves.
    pub fn new(text: &TextRegistry) -> Self {
        Self::with_names(text, Naming::Ferrolb)
    }

    /// Creates the families under `naming` and adds them to what `/metrics` serves.
    pub fn with_names(text: &TextRegistry, naming: Naming) -> Self {
        let metric = Self(Arc::new(AnnouncedFamily {
            naming,
            ..AnnouncedFamily::default()
        }));
        text.register(metric.0.clone());
        metric
    }

    pub fn set(&self, service: impl Into<Arc<str>>, node: &str, ip: IpAddr, announced: bool) {
        let service = service.into();
        let mut all = lock(&self.0.announced);
        if announced {
            let started = match all.get_mut(node) {
                Some(ips) => ips.insert((ip, service)),
                None => {
                    all.insert(node.into(), BTreeSet::from([(ip, service)]));
                    true
                }
            };
            if started {
                let mut takeovers = lock(&self.0.takeovers);
                match takeovers.get_mut(node) {
                    Some(n) => *n += 1,
                    None => {
                        takeovers.insert(node.into(), 1);
                    }
                }
            }
        } else if let Some(ips) = all.get_mut(node) {
            ips.remove(&(ip, service));
            if ips.is_empty() {
                all.remove(node);
            }
        }
    }
}

impl AnnouncedMetric {
    /// The (ip, service) pairs `node` now announces over BGP (MetalLB's
    /// `metallb_speaker_announced{protocol="bgp"}`; nothing under ferrolb's names).
    pub fn set_bgp(&self, node: &str, announced: AnnouncedIps) {
        let mut all = lock(&self.0.bgp);
        if announced.is_empty() {
            all.remove(node);
        } else {
            all.insert(node.into(), announced);
        }
    }
}

impl TextFamilies for AnnouncedFamily {
    fn write_text(&self, out: &mut String) {
        let all = lock(&self.announced);
        let bgp = lock(&self.bgp);
        let name = names::SPEAKER_ANNOUNCED.name(self.naming);
        // MetalLB's family says which protocol announces; ferrolb's has only layer 2.
        let families: &[(&str, &BTreeMap<Arc<str>, AnnouncedIps>)] = match self.naming {
            Naming::Metallb => &[("\",protocol=\"layer2", &all), ("\",protocol=\"bgp", &bgp)],
            Naming::Ferrolb => &[("", &all)],
        };
        if families.iter().any(|(_, f)| !f.is_empty()) {
            header(out, name, names::SPEAKER_ANNOUNCED, "gauge");
        }
        for (protocol, family) in families {
            for (node, ips) in family.iter() {
                for (ip, service) in ips {
                    // Labels in name order, as the prometheus crate writes them.
                    let _ = write!(out, "{name}{{ip=\"{ip}\",node=\"");
                    label_value(out, node);
                    out.push_str(protocol);
                    out.push_str("\",service=\"");
                    label_value(out, service);
                    out.push_str("\"} 1\n");
                }
            }
        }
        drop(bgp);
        drop(all);
        let takeovers = lock(&self.takeovers);
        if takeovers.is_empty() {
            return;
        }
        let family = names::SPEAKER_TAKEOVERS;
        let name = family.name(self.naming);
        header(out, name, family, "counter");
        for (node, n) in takeovers.iter() {
            let _ = write!(out, "{name}{{node=\"");
            label_value(out, node);
            let _ = writeln!(out, "\"}} {n}");
        }
    }
}

/// `ferrolb_speaker_service_ips`: the layer-2 Service IPs this speaker's view says some node
/// should announce. Every speaker exports it; an alert compares it with how many IPs the
/// speakers together announce.
#[derive(Clone, Debug)]
pub struct ServiceIpsMetric(IntGauge);

/// A gauge of one of the speaker's families, registered under `naming`.
fn gauge(
    registry: &Registry,
    family: Family,
    naming: Naming,
) -> Result<IntGauge, prometheus::Error> {
    let gauge = IntGauge::new(family.name(naming), family.help)?;
    registry.register(Box::new(gauge.clone()))?;
    Ok(gauge)
}

impl ServiceIpsMetric {
    pub fn register(registry: &Registry, naming: Naming) -> Result<Self, prometheus::Error> {
        gauge(registry, names::SPEAKER_SERVICE_IPS, naming).map(Self)
    }

    pub fn set(&self, ips: usize) {
        self.0.set(i64::try_from(ips).unwrap_or(i64::MAX));
    }
}

/// `ferrolb_speaker_election_candidate`: whether this speaker takes part in the elections.
pub struct CandidateMetric(IntGauge);

impl CandidateMetric {
    pub fn register(registry: &Registry, naming: Naming) -> Result<Self, prometheus::Error> {
        gauge(registry, names::SPEAKER_CANDIDATE, naming).map(Self)
    }

    pub fn set(&self, candidate: bool) {
        self.0.set(i64::from(candidate));
    }
}

/// Answer verification: the silent owners' addresses this node found, whether it is deaf, and
/// the addresses it withdrew from.
pub struct VerifyMetrics {
    silent: IntGauge,
    deaf: IntGauge,
    withdrawn: IntGauge,
}

impl VerifyMetrics {
    pub fn register(registry: &Registry, naming: Naming) -> Result<Self, prometheus::Error> {
        Ok(Self {
            silent: gauge(registry, names::SPEAKER_SILENT_OWNER, naming)?,
            deaf: gauge(registry, names::SPEAKER_CHECKS_DEAF, naming)?,
            withdrawn: gauge(registry, names::SPEAKER_WITHDRAWN, naming)?,
        })
    }

    /// `withdrawn`: the addresses withdrawn from, `None` while withdrawn from every election.
    pub fn set(&self, silent: usize, deaf: bool, withdrawn: Option<usize>) {
        self.silent.set(i64::try_from(silent).unwrap_or(i64::MAX));
        self.deaf.set(i64::from(deaf));
        self.withdrawn
            .set(withdrawn.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)));
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
