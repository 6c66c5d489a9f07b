//! The speaker's Prometheus metrics (names mirror MetalLB's under `ferrolb_`).

use std::net::IpAddr;

use prometheus::{IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

/// Per-IP layer-2 counters. Cloning shares the underlying counters.
#[derive(Clone, Debug)]
pub struct Layer2Metrics {
    requests: IntCounterVec,
    responses: IntCounterVec,
    gratuitous: IntCounterVec,
}

impl Layer2Metrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let vec = |name: &str, help: &str| -> prometheus::Result<IntCounterVec> {
            let c = IntCounterVec::new(Opts::new(name, help), &["ip"])?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        Ok(Self {
            requests: vec(
                "ferrolb_layer2_requests_received",
                "ARP requests and neighbor solicitations received for an IP this node announces",
            )?,
            responses: vec(
                "ferrolb_layer2_responses_sent",
                "ARP replies and solicited neighbor advertisements sent for an IP",
            )?,
            gratuitous: vec(
                "ferrolb_layer2_gratuitous_sent",
                "Gratuitous ARP packets and unsolicited neighbor advertisements sent for an IP",
            )?,
        })
    }

    pub fn request(&self, ip: IpAddr) -> IntCounter {
        self.requests.with_label_values(&[&ip.to_string()])
    }

    pub fn response(&self, ip: IpAddr) -> IntCounter {
        self.responses.with_label_values(&[&ip.to_string()])
    }

    pub fn gratuitous(&self, ip: IpAddr) -> IntCounter {
        self.gratuitous.with_label_values(&[&ip.to_string()])
    }

    /// Drops the series of an IP this node no longer announces, so /metrics does not grow with
    /// every IP that ever passed through.
    pub fn forget(&self, ip: IpAddr) {
        let label = ip.to_string();
        for vec in [&self.requests, &self.responses, &self.gratuitous] {
            let _ = vec.remove_label_values(&[&label]);
        }
    }
}

/// `ferrolb_speaker_announced{service,node,ip}`: 1 for each IP this node announces.
#[derive(Clone, Debug)]
pub struct AnnouncedMetric(IntGaugeVec);

impl AnnouncedMetric {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let g = IntGaugeVec::new(
            Opts::new(
                "ferrolb_speaker_announced",
                "1 for each service IP this node announces",
            ),
            &["service", "node", "ip"],
        )?;
        registry.register(Box::new(g.clone()))?;
        Ok(Self(g))
    }

    pub fn set(&self, service: &str, node: &str, ip: IpAddr, announced: bool) {
        let ip = ip.to_string();
        if announced {
            self.0.with_label_values(&[service, node, &ip]).set(1);
        } else {
            let _ = self.0.remove_label_values(&[service, node, &ip]);
        }
    }
}
