use super::*;
use crate::metrics::{self as names, Family, Naming};
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

fn scrape(registry: &TextRegistry) -> String {
    let mut out = String::new();
    registry.write_text(&mut out);
    out
}

/// The sample lines (no `# HELP`/`# TYPE`) that mention `needle`.
fn samples(text: &str, needle: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(needle))
        .map(str::to_owned)
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn layer2_series_appear_with_the_first_packet_and_go_with_ownership() {
    let registry = TextRegistry::default();
    let metrics = Layer2Metrics::new(&registry);
    let (asked, quiet) = (ip("192.0.2.10"), ip("2001:db8::10"));

    // Handles exist for both (the announcer and the receive path create them), but nothing
    // has been counted yet: no series at all.
    let asked_counters = metrics.counters(asked);
    let quiet_counters = metrics.counters(quiet);
    assert!(samples(&scrape(&registry), "ferrolb_layer2").is_empty());

    quiet_counters.gratuitous();
    asked_counters.gratuitous();
    asked_counters.gratuitous();
    asked_counters.request();
    asked_counters.request();
    asked_counters.response();
    // A second handle to the same IP shares its counters.
    metrics.counters(asked).request();
    let text = scrape(&registry);
    assert_eq!(
        samples(&text, "192.0.2.10"),
        [
            "ferrolb_layer2_gratuitous_sent{ip=\"192.0.2.10\"} 2",
            "ferrolb_layer2_requests_received{ip=\"192.0.2.10\"} 3",
            "ferrolb_layer2_responses_sent{ip=\"192.0.2.10\"} 1",
        ],
        "{text}"
    );
    // Announced but never asked about: only the gratuitous series.
    assert_eq!(
        samples(&text, "2001:db8::10"),
        ["ferrolb_layer2_gratuitous_sent{ip=\"2001:db8::10\"} 1"],
        "{text}"
    );

    metrics.forget(asked);
    let text = scrape(&registry);
    assert!(samples(&text, "192.0.2.10").is_empty(), "{text}");
    assert_eq!(samples(&text, "2001:db8::10").len(), 1, "{text}");

    // A handle kept across the loss counts nowhere; owning the IP again starts afresh.
    asked_counters.request();
    assert!(samples(&scrape(&registry), "192.0.2.10").is_empty());
    metrics.counters(asked).request();
    assert_eq!(
        samples(&scrape(&registry), "192.0.2.10"),
        ["ferrolb_layer2_requests_received{ip=\"192.0.2.10\"} 1"]
    );
}

#[test]
fn announced_gauge_follows_set_and_clear() {
    let registry = TextRegistry::default();
    let announced = AnnouncedMetric::new(&registry);
    announced.set("default/web", "node-a", ip("192.0.2.10"), true);
    announced.set("default/web", "node-a", ip("2001:db8::10"), true);
    announced.set("default/dns", "node-a", ip("192.0.2.10"), true);
    // Setting twice keeps one series.
    announced.set("default/dns", "node-a", ip("192.0.2.10"), true);
    let text = scrape(&registry);
    assert_eq!(
        samples(&text, "ferrolb_speaker_announced").len(),
        3,
        "{text}"
    );

    announced.set("default/web", "node-a", ip("192.0.2.10"), false);
    // Clearing what was never set changes nothing.
    announced.set("default/web", "node-b", ip("192.0.2.10"), false);
    let text = scrape(&registry);
    assert_eq!(
        samples(&text, "ferrolb_speaker_announced"),
        [
            "ferrolb_speaker_announced{ip=\"192.0.2.10\",node=\"node-a\",service=\"default/dns\"} 1",
            "ferrolb_speaker_announced{ip=\"2001:db8::10\",node=\"node-a\",service=\"default/web\"} 1",
        ],
        "{text}"
    );
    announced.set("default/dns", "node-a", ip("192.0.2.10"), false);
    announced.set("default/web", "node-a", ip("2001:db8::10"), false);
    assert!(samples(&scrape(&registry), "ferrolb_speaker_announced").is_empty());
}

/// BGP announcements appear under MetalLB's names with `protocol="bgp"` beside layer 2's, and
/// not at all in ferrolb's layer-2 family.
#[test]
fn bgp_announcements_are_metallb_s_protocol_bgp_series_only() {
    let pairs = |list: &[(&str, &str)]| -> AnnouncedIps {
        list.iter()
            .map(|(i, s)| (ip(i), std::sync::Arc::from(*s)))
            .collect()
    };
    for naming in [Naming::Metallb, Naming::Ferrolb] {
        let registry = TextRegistry::default();
        let announced = AnnouncedMetric::with_names(&registry, naming);
        announced.set("default/web", "node-a", ip("192.0.2.10"), true);
        announced.set_bgp("node-a", pairs(&[("198.51.100.7", "shop/api")]));
        let text = scrape(&registry);
        let name = crate::metrics::SPEAKER_ANNOUNCED.name(naming);
        let got = samples(&text, name);
        if naming == Naming::Metallb {
            assert_eq!(
                got,
                [
                    "metallb_speaker_announced{ip=\"192.0.2.10\",node=\"node-a\",protocol=\"layer2\",service=\"default/web\"} 1",
                    "metallb_speaker_announced{ip=\"198.51.100.7\",node=\"node-a\",protocol=\"bgp\",service=\"shop/api\"} 1",
                ],
                "{text}"
            );
        } else {
            assert_eq!(got.len(), 1, "{text}");
        }
        announced.set_bgp("node-a", AnnouncedIps::new());
        assert!(!scrape(&registry).contains("198.51.100.7"));
    }
}

/// Dashboards and alerts written against the `prometheus` crate's own labelled vectors (what
/// the speaker used before, and what MetalLB's Go client writes) must keep working: same names,
/// help, types, labels and values, under either naming. Only the order of samples within a
/// family may differ, which the format allows.
#[test]
fn exposition_matches_the_prometheus_crates_vectors() {
    for naming in [Naming::Ferrolb, Naming::Metallb] {
        exposition_matches_for(naming);
    }
}

fn exposition_matches_for(naming: Naming) {
    let ours = TextRegistry::default();
    let l2 = Layer2Metrics::with_names(&ours, naming);
    let announced = AnnouncedMetric::with_names(&ours, naming);
    let theirs = Registry::new();
    let vec = |f: Family, labels: &[&str]| {
        let v = IntCounterVec::new(Opts::new(f.name(naming), f.help), labels).unwrap();
        theirs.register(Box::new(v.clone())).unwrap();
        v
    };
    let requests = vec(names::LAYER2_REQUESTS, &["ip"]);
    let responses = vec(names::LAYER2_RESPONSES, &["ip"]);
    let gratuitous = vec(names::LAYER2_GRATUITOUS, &["ip"]);
    let takeovers = vec(names::SPEAKER_TAKEOVERS, &["node"]);
    let metallb = naming == Naming::Metallb;
    let labels: &[&str] = if metallb {
        &["service", "protocol", "node", "ip"]
    } else {
        &["service", "node", "ip"]
    };
    let a = names::SPEAKER_ANNOUNCED;
    let gauge = IntGaugeVec::new(Opts::new(a.name(naming), a.help), labels).unwrap();
    theirs.register(Box::new(gauge.clone())).unwrap();

    let addrs = ["192.0.2.9", "192.0.2.10", "2001:db8::1"];
    for (i, addr) in addrs.iter().enumerate() {
        let counters = l2.counters(ip(addr));
        for _ in 0..=i {
            counters.request();
            counters.response();
        }
        counters.gratuitous();
        requests.with_label_values(&[*addr]).inc_by(i as u64 + 1);
        responses.with_label_values(&[*addr]).inc_by(i as u64 + 1);
        gratuitous.with_label_values(&[*addr]).inc();
    }
    // Names from a static file may hold anything; quotes, backslashes, newlines are escaped.
    for (service, addr) in [("ns/web", addrs[0]), ("odd\"na\\me\n", addrs[2])] {
        announced.set(service, "node-a", ip(addr), true);
        if metallb {
            gauge
                .with_label_values(&[service, "layer2", "node-a", addr])
                .set(1);
        } else {
            gauge.with_label_values(&[service, "node-a", addr]).set(1);
        }
        takeovers.with_label_values(&["node-a"]).inc();
    }

    // Families in the same order (the registry sorts them by name, as we register them).
    let mut expected = String::new();
    TextEncoder::new()
        .encode_utf8(&theirs.gather(), &mut expected)
        .unwrap();
    let families = [
        names::SPEAKER_ANNOUNCED,
        names::LAYER2_GRATUITOUS,
        names::LAYER2_REQUESTS,
        names::LAYER2_RESPONSES,
        names::SPEAKER_TAKEOVERS,
    ]
    .map(|f| f.name(naming));
    let mut ours_text = String::new();
    for name in families {
        ours_text.push_str(&family_text(&scrape(&ours), name));
    }
    let sorted = |text: &str| {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    assert_eq!(
        sorted(&ours_text),
        sorted(&expected),
        "ours:\n{ours_text}\ntheirs:\n{expected}"
    );
    // Headers precede their samples.
    for name in families {
        let text = family_text(&ours_text, name);
        assert!(text.starts_with(&format!("# HELP {name} ")), "{text}");
        assert!(
            text.lines().nth(1).unwrap().starts_with("# TYPE "),
            "{text}"
        );
    }
}

#[test]
fn takeovers_count_each_start_of_an_announcement_not_repeats() {
    let registry = TextRegistry::default();
    let announced = AnnouncedMetric::new(&registry);
    assert!(samples(&scrape(&registry), "takeovers").is_empty());
    announced.set("default/web", "node-a", ip("192.0.2.10"), true);
    announced.set("default/web", "node-a", ip("192.0.2.10"), true);
    announced.set("default/web", "node-a", ip("192.0.2.10"), false);
    announced.set("default/web", "node-a", ip("192.0.2.10"), true);
    assert_eq!(
        samples(&scrape(&registry), "takeovers"),
        ["ferrolb_speaker_takeovers_total{node=\"node-a\"} 2"]
    );
}

/// The lines of family `name` (headers and samples), in their original order.
fn family_text(text: &str, name: &str) -> String {
    text.lines()
        .filter(|l| {
            let sample = l
                .strip_prefix("# HELP ")
                .or(l.strip_prefix("# TYPE "))
                .unwrap_or(l);
            sample.starts_with(name) && sample[name.len()..].starts_with([' ', '{'])
        })
        .map(|l| format!("{l}\n"))
        .collect()
}
