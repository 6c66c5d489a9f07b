use super::*;

fn timing() -> Timing {
    Timing::for_lease(15)
}

fn record(holder: &str, rv: &str, renew: &str) -> LeaseRecord {
    LeaseRecord {
        holder: Some(holder.into()),
        duration_secs: 15,
        transitions: 3,
        renew_time: Some(renew.into()),
        resource_version: Some(rv.into()),
    }
}

fn secs(n: f64) -> Duration {
    Duration::from_secs_f64(n)
}

#[test]
fn timing_keeps_client_go_proportions() {
    let t = Timing::for_lease(15);
    assert_eq!(t.renew_deadline, Duration::from_secs(10));
    assert_eq!(t.retry, Duration::from_secs(2));
    assert!(Timing::for_lease(2).renew_deadline < Duration::from_secs(2));
}

#[test]
fn no_lease_is_created_and_a_success_leads_until_the_renew_deadline() {
    let t0 = Instant::now();
    let mut e = Elector::new("a".into(), timing());
    assert!(!e.is_leader(t0));
    assert_eq!(e.observe(t0, None), Some(Write::Create { transitions: 0 }));
    // The answer arrives late; leadership still counts from when the write was decided.
    e.written(t0 + secs(3.0), record("a", "1", "r1"));
    assert!(e.is_leader(t0 + secs(9.9)));
    assert!(!e.is_leader(t0 + secs(10.0)));
    assert_eq!(e.leader_until(), Some(t0 + secs(10.0)));
}

#[test]
fn a_standby_waits_a_full_unchanged_lease_by_its_own_clock() {
    let t0 = Instant::now();
    let mut b = Elector::new("b".into(), timing());
    assert_eq!(b.observe(t0, Some(record("a", "7", "r1"))), None);
    assert_eq!(
        b.observe(t0 + secs(14.9), Some(record("a", "7", "r1"))),
        None
    );
    // A renewal (any change of the record) starts the wait over.
    assert_eq!(
        b.observe(t0 + secs(10.0), Some(record("a", "8", "r2"))),
        None
    );
    assert_eq!(
        b.observe(t0 + secs(24.9), Some(record("a", "8", "r2"))),
        None
    );
    assert_eq!(
        b.observe(t0 + secs(25.0), Some(record("a", "8", "r2"))),
        Some(Write::Update {
            resource_version: "8".into(),
            transitions: 4,
            acquire: true
        })
    );
    assert!(
        !b.is_leader(t0 + secs(25.0)),
        "leads only once the write succeeded"
    );
    b.write_failed();
    assert!(!b.is_leader(t0 + secs(25.1)));
}

#[test]
fn a_released_lease_is_taken_at_once() {
    let t0 = Instant::now();
    let mut b = Elector::new("b".into(), timing());
    let mut released = record("a", "9", "r3");
    released.holder = Some(String::new());
    assert!(matches!(
        b.observe(t0, Some(released)),
        Some(Write::Update { acquire: true, .. })
    ));
}

#[test]
fn a_leader_whose_renewals_fail_steps_down_before_a_standby_can_take_over() {
    let t0 = Instant::now();
    let mut a = Elector::new("a".into(), timing());
    let mut b = Elector::new("b".into(), timing());
    assert!(a.observe(t0, None).is_some());
    a.written(t0, record("a", "1", "r1"));
    // Renewals every retry period succeed for a while; the standby sees each one.
    let mut now = t0;
    for rv in 2..5 {
        now += a.timing().retry;
        assert!(matches!(
            a.observe(now, Some(record("a", &(rv - 1).to_string(), "r"))),
            Some(Write::Update { acquire: false, .. })
        ));
        let shown = record("a", &rv.to_string(), &format!("r{rv}"));
        a.written(now, shown.clone());
        assert_eq!(b.observe(now, Some(shown)), None);
    }
    let last_renewal = now;
    // From here every renewal fails (the API is unreachable for a, or a is paused).
    let shown = record("a", "4", "r4");
    let mut first_takeover = None;
    let mut t = last_renewal;
    while t < last_renewal + secs(60.0) {
        t += secs(0.05);
        if a.observe(t, Some(shown.clone())).is_some() {
            a.write_failed();
        }
        if first_takeover.is_none() && b.observe(t, Some(shown.clone())).is_some() {
            first_takeover = Some(t);
        }
        if let Some(taken) = first_takeover {
            assert!(!a.is_leader(taken), "a still leads when b takes over");
        }
    }
    let taken = first_takeover.expect("b takes over");
    assert!(!a.is_leader(last_renewal + a.timing().renew_deadline));
    assert!(taken >= last_renewal + a.timing().lease);
}

#[test]
fn a_conflicting_renewal_does_not_extend_leadership() {
    let t0 = Instant::now();
    let mut a = Elector::new("a".into(), timing());
    a.observe(t0, None);
    a.written(t0, record("a", "1", "r1"));
    a.observe(t0 + secs(2.0), Some(record("a", "1", "r1")));
    a.write_failed();
    assert!(!a.is_leader(t0 + secs(10.0)));
    // Someone else holds it now: not the leader, even before the old deadline.
    assert_eq!(a.observe(t0 + secs(4.0), Some(record("b", "2", "x"))), None);
    assert!(!a.is_leader(t0 + secs(4.0)));
}

#[test]
fn release_only_what_we_hold() {
    let t0 = Instant::now();
    let mut a = Elector::new("a".into(), timing());
    assert_eq!(a.release(), None);
    a.observe(t0, None);
    a.written(t0, record("a", "5", "r"));
    assert_eq!(a.release(), Some("5".into()));
    assert!(!a.is_leader(t0));
    let mut b = Elector::new("b".into(), timing());
    b.observe(t0, Some(record("a", "5", "r")));
    assert_eq!(b.release(), None);
}
