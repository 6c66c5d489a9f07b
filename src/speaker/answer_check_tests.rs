use super::*;

const MS: Duration = Duration::from_millis(1);

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn target(owner: &str) -> Target {
    Target {
        owner: owner.into(),
        service: "apps/web".into(),
        interfaces: None,
    }
}

fn targets(list: &[(&str, &str)]) -> BTreeMap<IpAddr, Target> {
    list.iter().map(|(i, o)| (ip(i), target(o))).collect()
}

/// Runs the checker from `t0` for `span`, 10 ms at a time; `answers(ip)` says whether a probe
/// for `ip` gets a reply (heard 1 ms after it went out). Returns every probe sent.
fn run(
    check: &mut AnswerCheck,
    t0: Instant,
    span: Duration,
    answers: impl Fn(IpAddr) -> bool,
) -> Vec<(Instant, Probe)> {
    let mut sent = Vec::new();
    let mut now = t0;
    while now < t0 + span {
        for probe in check.poll(now) {
            sent.push((now, probe));
            if answers(probe.ip) {
                check.heard(probe.ip, now + MS);
            }
        }
        now += 10 * MS;
    }
    sent
}

#[test]
fn an_owner_that_answers_is_never_silent() {
    let t0 = Instant::now();
    let mut check = AnswerCheck::new(DEFAULT_RATE);
    check.set_targets(targets(&[("192.0.2.10", "node-a")]), t0);
    check.set_controls(vec![ip("192.0.2.2")]);
    let sent = run(&mut check, t0, 10 * INTERVAL, |_| true);
    assert_eq!(check.findings(t0 + 10 * INTERVAL), Findings::default());
    let probes = sent.iter().filter(|(_, p)| !p.control).count();
    // One probe per interval.
    assert!((9..=11).contains(&probes), "{probes}");
}

#[test]
fn a_silent_owner_is_found_after_the_misses_in_a_row_while_the_checker_hears() {
    let t0 = Instant::now();
    let mut check = AnswerCheck::new(DEFAULT_RATE);
    let silent = ip("192.0.2.10");
    check.set_targets(
        targets(&[("192.0.2.10", "node-a"), ("192.0.2.11", "node-c")]),
        t0,
    );
    check.set_controls(vec![ip("192.0.2.3")]);
    let mut found_at = None;
    let mut now = t0;
    while found_at.is_none() && now < t0 + 10 * INTERVAL {
        for p in check.poll(now) {
            if p.ip != silent {
                check.heard(p.ip, now + MS);
            }
        }
        if !check.findings(now).silent.is_empty() {
            found_at = Some(now);
        }
        now += 10 * MS;
    }
    let found_at = found_at.expect("the silent owner is found");
    // Three probes one interval apart, the last one's wait: about 2.5 s, never before.
    let took = found_at - t0;
    assert!(took >= 2 * INTERVAL + REPLY_WAIT, "{took:?}");
    assert!(took <= 3 * INTERVAL + REPLY_WAIT, "{took:?}");
    let findings = check.findings(now);
    assert!(!findings.deaf);
    assert_eq!(
        findings.silent,
        BTreeMap::from([(
            Arc::from("node-a"),
            BTreeMap::from([(silent, Arc::from("apps/web"))])
        )])
    );
    // It answers again: no longer silent after its next probe.
    run(&mut check, now, 2 * INTERVAL, |_| true);
    assert!(check.findings(now + 2 * INTERVAL).silent.is_empty());
}

#[test]
fn a_checker_that_hears_nothing_is_deaf_and_finds_nobody_silent() {
    let t0 = Instant::now();
    let mut check = AnswerCheck::new(DEFAULT_RATE);
    check.set_targets(targets(&[("192.0.2.10", "node-a")]), t0);
    check.set_controls(vec![ip("192.0.2.2"), ip("192.0.2.3")]);
    // It heard well for a while, then its receive path breaks.
    run(&mut check, t0, 3 * INTERVAL, |_| true);
    let broke = t0 + 3 * INTERVAL;
    let mut now = broke;
    while now < broke + 20 * INTERVAL {
        check.poll(now);
        let findings = check.findings(now);
        assert!(findings.silent.is_empty(), "moved at {:?}", now - broke);
        now += 10 * MS;
    }
    assert!(check.findings(now).deaf);
    // Hearing again ends it.
    run(&mut check, now, 2 * INTERVAL, |_| true);
    assert!(!check.findings(now + 2 * INTERVAL).deaf);
}

#[test]
fn a_checker_that_never_heard_counts_no_miss() {
    let t0 = Instant::now();
    let mut check = AnswerCheck::new(DEFAULT_RATE);
    check.set_targets(targets(&[("192.0.2.10", "node-a")]), t0);
    run(&mut check, t0, 10 * INTERVAL, |_| false);
    let findings = check.findings(t0 + 10 * INTERVAL);
    assert!(findings.silent.is_empty());
    assert!(findings.deaf);
}

#[test]
fn probes_stay_within_the_budget_and_every_address_is_reached() {
    let t0 = Instant::now();
    let rate = 50;
    let mut check = AnswerCheck::new(rate);
    let list: BTreeMap<IpAddr, Target> = (0..500u32)
        .map(|i| (IpAddr::from([198, 51, 100, (i % 250) as u8]), i))
        .map(|(ip, i)| (ip, target(if i % 2 == 0 { "node-a" } else { "node-b" })))
        .collect();
    let count = list.len();
    check.set_targets(list, t0);
    check.set_controls(vec![ip("192.0.2.2")]);
    let span = 20 * INTERVAL;
    let sent = run(&mut check, t0, span, |_| true);
    // No second holds more than the budget (plus the first second's burst of ten).
    for start in 0..19u32 {
        let from = t0 + INTERVAL * start;
        let within = sent
            .iter()
            .filter(|(at, _)| *at >= from && *at < from + INTERVAL)
            .count();
        assert!(
            within <= rate as usize + 10,
            "{within} probes in second {start}"
        );
    }
    let reached: BTreeSet<IpAddr> = sent
        .iter()
        .filter(|(_, p)| !p.control)
        .map(|(_, p)| p.ip)
        .collect();
    assert_eq!(reached.len(), count);
    assert!(check.next_deadline().is_some());
}

#[test]
fn a_target_whose_owner_changed_starts_over_and_off_means_no_probe() {
    let t0 = Instant::now();
    let mut check = AnswerCheck::new(DEFAULT_RATE);
    check.set_targets(targets(&[("192.0.2.10", "node-a")]), t0);
    check.set_controls(vec![ip("192.0.2.2")]);
    let silent = ip("192.0.2.10");
    run(&mut check, t0, 4 * INTERVAL, |p| p != silent);
    assert_eq!(check.findings(t0 + 4 * INTERVAL).silent.len(), 1);
    check.set_targets(targets(&[("192.0.2.10", "node-c")]), t0 + 4 * INTERVAL);
    assert!(check.findings(t0 + 4 * INTERVAL).silent.is_empty());

    let mut off = AnswerCheck::new(0);
    off.set_targets(targets(&[("192.0.2.10", "node-a")]), t0);
    assert!(off.poll(t0 + INTERVAL).is_empty());
    assert_eq!(off.next_deadline(), None);
}
