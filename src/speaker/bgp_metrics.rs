//! The BGP sessions' metrics, one series per peer labelled `peer="address:port"` as MetalLB's
//! native speaker labels them (so its dashboards and its `MetalLBBGPSessionDown` alert keep
//! working under `--metallb-metric-names`). Written at scrape time from the last samples the
//! speaker loop handed over; a peer that left the config leaves no series behind. A peer with
//! BFD also has the `bfd_*` families (MetalLB's FRR-mode names), labelled `peer="address"` as
//! FRR's are.

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
    /// The BFD session's figures, for a peer with one.
    pub bfd: Option<BfdSample>,
}

/// One BFD session's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BfdSample {
    pub up: bool,
    pub up_events: u64,
    pub down_events: u64,
    pub packets_in: u64,
    pub packets_out: u64,
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
        write_bfd(out, self.naming, &peers);
    }
}

/// A BFD family, its type and its value from a sample.
type BfdFamily = (names::Family, &'static str, fn(&BfdSample) -> u64);

fn write_bfd(out: &mut String, naming: Naming, peers: &BTreeMap<String, PeerSample>) {
    let bfd: Vec<(String, BfdSample)> = peers
        .iter()
        .filter_map(|(peer, s)| {
            let address = peer
                .parse::<std::net::SocketAddr>()
                .map_or_else(|_| peer.clone(), |a| a.ip().to_string());
            Some((address, s.bfd?))
        })
        .collect();
    if bfd.is_empty() {
        return;
    }
    let families: [BfdFamily; 5] = [
        (names::BFD_CONTROL_PACKET_INPUT, "counter", |s| s.packets_in),
        (names::BFD_CONTROL_PACKET_OUTPUT, "counter", |s| {
            s.packets_out
        }),
        (names::BFD_SESSION_DOWN_EVENTS, "counter", |s| s.down_events),
        (names::BFD_SESSION_UP, "gauge", |s| u64::from(s.up)),
        (names::BFD_SESSION_UP_EVENTS, "counter", |s| s.up_events),
    ];
    for (family, kind, value) in families {
        let name = family.name(naming);
        header(out, name, family, kind);
        for (peer, s) in &bfd {
            let _ = write!(out, "{name}{{peer=\"");
            label_value(out, peer);
            let _ = writeln!(out, "\"}} {}", value(s));
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
            bfd: None,
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
        assert!(!ours.contains("bfd"), "no BFD family without a BFD session");
    }

    #[test]
    fn a_peer_with_bfd_has_the_bfd_families_labelled_by_address() {
        let bfd = BfdSample {
            up: true,
            up_events: 2,
            down_events: 1,
            packets_in: 40,
            packets_out: 41,
        };
        let with = PeerSample {
            bfd: Some(bfd),
            ..PeerSample::default()
        };
        let out = scrape(Naming::Metallb, &[("[2001:db8::1]:179", with)]);
        for line in [
            "metallb_bfd_session_up{peer=\"2001:db8::1\"} 1\n",
            "metallb_bfd_session_up_events{peer=\"2001:db8::1\"} 2\n",
            "metallb_bfd_session_down_events{peer=\"2001:db8::1\"} 1\n",
            "metallb_bfd_control_packet_input{peer=\"2001:db8::1\"} 40\n",
            "metallb_bfd_control_packet_output{peer=\"2001:db8::1\"} 41\n",
            "# TYPE metallb_bfd_control_packet_input counter",
        ] {
            assert!(out.contains(line), "{line}: {out}");
        }
        let ours = scrape(Naming::Ferrolb, &[("192.0.2.1:179", with)]);
        assert!(
            ours.contains("ferrolb_bfd_session_up{peer=\"192.0.2.1\"} 1\n"),
            "{ours}"
        );
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
