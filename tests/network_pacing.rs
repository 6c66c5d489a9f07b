//! Network test of announcement pacing: a node taking over 10k IPs at once sends its gratuitous
//! announcements through a per-interface token bucket, never in one burst, and every IP is
//! announced. Root only; with `CI` set a missing prerequisite fails the test instead of
//! skipping it.

mod netns;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use ferrolb::layer2::pacing::{BURST, RATE_PER_SECOND};
use netns::{Lan, Vip, environment_ready, wait_for};

const IPS: usize = 10_000;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrolb"))
}

#[test]
fn a_takeover_of_10k_ips_is_announced_paced_and_completely() {
    if !environment_ready("a_takeover_of_10k_ips_is_announced_paced_and_completely") {
        return;
    }
    let mut lan = Lan::new(1, binary());
    // IPv6 only: the documentation ranges hold far fewer than 10k IPv4 addresses.
    let vips: Vec<Vip> = (1..=IPS)
        .map(|n| Vip {
            service: format!("svc{n}"),
            ips: vec![format!("2001:db8:1::{n:x}")],
        })
        .collect();
    let capture = lan.start_capture(0, IPS, 120);
    lan.start_all(&vips);
    let frames = wait_for(Duration::from_secs(150), || Lan::captured(&capture))
        .unwrap_or_else(|| panic!("the capture never finished\n{}", lan.log(0)));

    let announced: BTreeSet<&str> = frames.iter().map(|f| f.ip.as_str()).collect();
    assert_eq!(
        announced.len(),
        IPS,
        "every owned IP is announced ({} frames seen)\n{}",
        frames.len(),
        lan.log(0)
    );

    // No 100 ms window carries more than the bucket's burst plus its rate over the window.
    // The timestamps are taken on the client, after the bridge, which may hold a frame back a
    // few milliseconds and deliver it with the next: the bound allows 5 ms of that. An unpaced
    // takeover puts thousands of frames in one window.
    let window = 0.1;
    let jitter_ms = 5;
    let bound = u64::from(BURST) + u64::from(RATE_PER_SECOND) * (100 + jitter_ms) / 1000;
    let mut times: Vec<f64> = frames.iter().map(|f| f.at).collect();
    times.sort_by(f64::total_cmp);
    let (mut head, mut peak) = (0, 0u64);
    for (i, at) in times.iter().enumerate() {
        while times[head] + window <= *at {
            head += 1;
        }
        peak = peak.max((i - head + 1) as u64);
    }
    assert!(
        peak <= bound,
        "{peak} announcement frames within 100 ms (bound {bound}: burst {BURST} + {RATE_PER_SECOND}/s over 105 ms)"
    );
    let first = times[0];
    let mut first_seen = std::collections::HashMap::new();
    for f in &frames {
        first_seen.entry(f.ip.as_str()).or_insert(f.at);
    }
    let all_announced = first_seen.values().copied().fold(f64::MIN, f64::max) - first;
    // The figure for BENCHMARKS.md; not asserted.
    eprintln!(
        "pacing: {IPS} IPs first announced within {all_announced:.2} s of the first frame; \
         peak {peak} frames per 100 ms; {} frames captured",
        frames.len()
    );
}
