//! `ferrolb_speaker_unannounced{service,reason}`: 1 for each Service that holds an IP no node
//! announces, labelled with why. Every speaker computes the same causes, so each serves the
//! gauge (a scrape of any one speaker shows the whole picture).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use crate::advertise::Cause;
use crate::metrics::SPEAKER_UNANNOUNCED;
use crate::telemetry::{TextFamilies, TextRegistry};

use crate::speaker::metrics::{header, label_value, lock};

#[derive(Debug, Default)]
struct Family {
    causes: Mutex<BTreeMap<String, &'static str>>,
}

#[derive(Clone, Debug)]
pub struct UnannouncedMetric(Arc<Family>);

impl UnannouncedMetric {
    pub fn new(text: &TextRegistry) -> Self {
        let metric = Self(Arc::default());
        text.register(metric.0.clone());
        metric
    }

    /// Replaces the whole set with the current causes.
    pub fn set(&self, causes: &BTreeMap<String, Cause>) {
        let next = causes.iter().map(|(s, c)| (s.clone(), c.label())).collect();
        *lock(&self.0.causes) = next;
    }
}

impl TextFamilies for Family {
    fn write_text(&self, out: &mut String) {
        let causes = lock(&self.causes);
        if causes.is_empty() {
            return;
        }
        let name = SPEAKER_UNANNOUNCED.ferrolb;
        header(out, name, SPEAKER_UNANNOUNCED, "gauge");
        for (service, reason) in causes.iter() {
            let _ = write!(out, "{name}{{reason=\"{reason}\",service=\"");
            label_value(out, service);
            out.push_str("\"} 1\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_series_per_unannounced_service_and_cleared_when_fixed() {
        let text = TextRegistry::default();
        let metric = UnannouncedMetric::new(&text);
        metric.set(&BTreeMap::from([
            (
                "default/web".to_string(),
                Cause::NoAdvertisement {
                    pool: "lonely".into(),
                },
            ),
            ("default/db".to_string(), Cause::NoServingEndpoint),
        ]));
        let mut out = String::new();
        metric.0.write_text(&mut out);
        assert!(out.contains(
            "ferrolb_speaker_unannounced{reason=\"no_advertisement\",service=\"default/web\"} 1"
        ));
        assert!(out.contains(
            "ferrolb_speaker_unannounced{reason=\"no_serving_endpoint\",service=\"default/db\"} 1"
        ));
        metric.set(&BTreeMap::new());
        let mut out = String::new();
        metric.0.write_text(&mut out);
        assert!(out.is_empty());
    }
}
