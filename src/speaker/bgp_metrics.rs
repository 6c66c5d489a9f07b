//! The BGP sessions' metrics, one series per peer labelled `peer="address:port"` as MetalLB's
//! native speaker labels them (so its dashboards and its `MetalLBBGPSessionDown` alert keep
//! working under `--metallb-metric-names`). Written at scrape time from the last samples the
//! speaker loop handed over; a peer that left the config leaves no series behind.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use crate::metrics::{self as names, Naming};
use crate::telemetry::{TextFamilies, TextRegistry};

use super::metrics::{header, label_value, lock};

/// One session's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerSample {
    pub up: bool,
    pub updates_sent: u64,
    pub announced: usize,
    pub pending: usize,
}

/// The four per-peer families.
pub struct BgpMetrics {
    naming: Naming,
    peers: Mutex<BTreeMap<String, PeerSample>>,
}

impl BgpMetrics {
    /// Registers the families with `text`.
    pub fn with_names(text: &TextRegistry, naming: Naming) -> Arc<BgpMetrics> {
        let metrics = Arc::new(BgpMetrics {
            naming,
            peers: Mutex::new(BTreeMap::new()),
        });
        text.register(metrics.clone());
        metrics
    }

    /// Every configured peer's figures now, by `address:port`.
    pub fn set(&self, peers: BTreeMap<String, PeerSample>) {
        *lock(&self.peers) = peers;
    }
}

impl TextFamilies for BgpMetrics {
    fn write_text(&self, out: &mut String) {
        let peers = lock(&self.peers).clone();
        if peers.is_empty() {
            return;
        }
        let families = [
            (names::BGP_ANNOUNCED_PREFIXES, "gauge"),
            (names::BGP_PENDING_PREFIXES, "gauge"),
            (names::BGP_SESSION_UP, "gauge"),
            (names::BGP_UPDATES, "counter"),
        ];
        for (family, kind) in families {
            let name = family.name(self.naming);
            header(out, name, family, kind);
            for (peer, s) in &peers {
                let value = match family.ferrolb {
                    f if f == names::BGP_ANNOUNCED_PREFIXES.ferrolb => s.announced as u64,
                    f if f == names::BGP_PENDING_PREFIXES.ferrolb => s.pending as u64,
                    f if f == names::BGP_SESSION_UP.ferrolb => u64::from(s.up),
                    _ => s.updates_sent,
                };
                let _ = write!(out, "{name}{{peer=\"");
                label_value(out, peer);
                let _ = writeln!(out, "\"}} {value}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(naming: Naming, peers: &[(&str, PeerSample)]) -> String {
        let text = TextRegistry::default();
        let m = BgpMetrics::with_names(&text, naming);
        m.set(peers.iter().map(|(p, s)| ((*p).to_owned(), *s)).collect());
        let mut out = String::new();
        text.write_text(&mut out);
        out
    }

    #[test]
    fn metallb_names_and_peer_labels_for_its_dashboards_and_alert() {
        let up = PeerSample {
            up: true,
            updates_sent: 7,
            announced: 3,
            pending: 3,
        };
        let out = scrape(
            Naming::Metallb,
            &[
                ("192.0.2.1:179", up),
                ("[2001:db8::1]:179", PeerSample::default()),
            ],
        );
        assert!(
            out.contains("metallb_bgp_session_up{peer=\"192.0.2.1:179\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("metallb_bgp_session_up{peer=\"[2001:db8::1]:179\"} 0\n"));
        assert!(out.contains("metallb_bgp_updates_total{peer=\"192.0.2.1:179\"} 7\n"));
        assert!(out.contains("# TYPE metallb_bgp_updates_total counter"));
        assert!(out.contains("metallb_bgp_announced_prefixes_total{peer=\"192.0.2.1:179\"} 3\n"));
        assert!(out.contains("metallb_bgp_pending_prefixes_total{peer=\"192.0.2.1:179\"} 3\n"));
        let ours = scrape(Naming::Ferrolb, &[("192.0.2.1:179", up)]);
        assert!(
            ours.contains("ferrolb_bgp_session_up{peer=\"192.0.2.1:179\"} 1\n"),
            "{ours}"
        );
        assert!(!ours.contains("metallb_"));
    }

    #[test]
    fn no_peer_no_family_and_a_removed_peer_leaves_no_series() {
        assert_eq!(scrape(Naming::Metallb, &[]), "");
        let text = TextRegistry::default();
        let m = BgpMetrics::with_names(&text, Naming::Metallb);
        m.set([("192.0.2.1:179".to_owned(), PeerSample::default())].into());
        m.set([("192.0.2.2:179".to_owned(), PeerSample::default())].into());
        let mut out = String::new();
        text.write_text(&mut out);
        assert!(
            !out.contains("192.0.2.1:179") && out.contains("192.0.2.2:179"),
            "{out}"
        );
    }
}
