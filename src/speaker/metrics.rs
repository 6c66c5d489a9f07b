//! The speaker's Prometheus metrics (names mirror MetalLB's under `ferrolb_`).
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
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::telemetry::{TextFamilies, TextRegistry};

/// (name, help) of each family; names and labels mirror MetalLB's with the `ferrolb_` prefix
/// (docs/user-guide.md, "Metrics and alerts").
const REQUESTS: (&str, &str) = (
    "ferrolb_layer2_requests_received",
    "ARP requests and neighbor solicitations received for an IP this node announces",
);
const RESPONSES: (&str, &str) = (
    "ferrolb_layer2_responses_sent",
    "ARP replies and solicited neighbor advertisements sent for an IP",
);
const GRATUITOUS: (&str, &str) = (
    "ferrolb_layer2_gratuitous_sent",
    "Gratuitous ARP packets and unsolicited neighbor advertisements sent for an IP",
);
const ANNOUNCED: (&str, &str) = (
    "ferrolb_speaker_announced",
    "1 for each service IP this node announces",
);

/// A lock that a panicking holder cannot wedge: the data are plain counters and sets, valid
/// after any partial update, and metrics must never take the speaker down.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `# HELP` and `# TYPE` lines. Help texts here contain no backslash or newline, the only
/// characters the format escapes in them.
pub(super) fn header(out: &mut String, (name, help): (&str, &str), kind: &str) {
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
    ips: Mutex<HashMap<IpAddr, Arc<IpCounters>>>,
}

/// `ferrolb_layer2_{requests_received,responses_sent,gratuitous_sent}{ip}`. A series appears
/// with the first packet it counts, so an owned IP nobody asks about has no request or response
/// series, and all of an IP's series go when the node stops announcing it. Cloning shares the
/// counters.
#[derive(Clone, Debug)]
pub struct Layer2Metrics(Arc<Layer2Families>);

impl Layer2Metrics {
    /// Creates the counters and adds them to what `/metrics` serves.
    pub fn new(text: &TextRegistry) -> Self {
        let metrics = Self(Arc::default());
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
        for (family, i) in [(GRATUITOUS, 2), (REQUESTS, 0), (RESPONSES, 1)] {
            let mut series = snapshot
                .iter()
                .filter(|(_, values)| values[i] > 0)
                .peekable();
            if series.peek().is_none() {
                continue;
            }
            header(out, family, "counter");
            for (ip, values) in series {
                let _ = writeln!(out, "{}{{ip=\"{ip}\"}} {}", family.0, values[i]);
            }
        }
    }
}

/// (ip, service) pairs announced by one node.
type AnnouncedIps = BTreeSet<(IpAddr, Box<str>)>;

/// Keyed by node: in practice always this speaker, so its name is stored once rather than once
/// per IP.
#[derive(Debug, Default)]
struct AnnouncedFamily {
    announced: Mutex<BTreeMap<Arc<str>, AnnouncedIps>>,
}

/// `ferrolb_speaker_announced{service,node,ip}`: 1 for each IP this node announces.
#[derive(Clone, Debug)]
pub struct AnnouncedMetric(Arc<AnnouncedFamily>);

impl AnnouncedMetric {
    /// Creates the gauge and adds it to what `/metrics` serves.
    pub fn new(text: &TextRegistry) -> Self {
        let metric = Self(Arc::default());
        text.register(metric.0.clone());
        metric
    }

    pub fn set(&self, service: &str, node: &str, ip: IpAddr, announced: bool) {
        let mut all = lock(&self.0.announced);
        if announced {
            if let Some(ips) = all.get_mut(node) {
                ips.insert((ip, service.into()));
            } else {
                all.insert(node.into(), BTreeSet::from([(ip, service.into())]));
            }
        } else if let Some(ips) = all.get_mut(node) {
            ips.remove(&(ip, Box::from(service)));
            if ips.is_empty() {
                all.remove(node);
            }
        }
    }
}

impl TextFamilies for AnnouncedFamily {
    fn write_text(&self, out: &mut String) {
        let all = lock(&self.announced);
        if all.is_empty() {
            return;
        }
        header(out, ANNOUNCED, "gauge");
        for (node, ips) in all.iter() {
            for (ip, service) in ips {
                // Labels in name order, as the prometheus crate writes them.
                let _ = write!(out, "{}{{ip=\"{ip}\",node=\"", ANNOUNCED.0);
                label_value(out, node);
                out.push_str("\",service=\"");
                label_value(out, service);
                out.push_str("\"} 1\n");
            }
        }
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
