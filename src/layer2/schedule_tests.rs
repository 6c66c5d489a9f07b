use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;
use proptest::prelude::*;

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
const B: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10));

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Follows `next_deadline` from `start` until `until`, polling exactly at each deadline, and
/// returns when (relative to `start`) each announcement of `ip` happened.
fn announcements(
    schedule: &mut AnnounceSchedule,
    start: Instant,
    until: Duration,
    ip: IpAddr,
) -> Vec<Duration> {
    let mut seen = Vec::new();
    while let Some(at) = schedule.next_deadline() {
        if at > start + until {
            break;
        }
        if schedule.poll(at).contains(&ip) {
            seen.push(at - start);
        }
    }
    seen
}

#[test]
fn announces_at_once_then_on_the_backoff_then_stops() {
    let t0 = Instant::now();
    let mut schedule = AnnounceSchedule::new(None);
    schedule.on_owned(A, t0);
    assert_eq!(schedule.next_deadline(), Some(t0));
    assert_eq!(schedule.poll(t0), vec![A]);
    assert_eq!(schedule.poll(t0 + ms(99)), Vec::<IpAddr>::new());
    assert_eq!(schedule.next_deadline(), Some(t0 + ms(100)));
    let rest = announcements(&mut schedule, t0, Duration::from_secs(3600), A);
    assert_eq!(rest, vec![ms(100), ms(300), ms(1000), ms(2000), ms(4000)]);
    assert_eq!(schedule.next_deadline(), None);
    assert!(
        schedule.is_owned(A),
        "done announcing is not losing ownership"
    );
}

#[test]
fn garp_interval_repeats_forever_after_the_backoff() {
    let t0 = Instant::now();
    let mut schedule = AnnounceSchedule::new(Some(Duration::from_secs(30)));
    schedule.on_owned(A, t0);
    let seen = announcements(&mut schedule, t0, Duration::from_secs(100), A);
    let expected: Vec<Duration> = [0, 100, 300, 1000, 2000, 4000, 34_000, 64_000, 94_000]
        .into_iter()
        .map(ms)
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(schedule.next_deadline(), Some(t0 + ms(124_000)));
}

#[test]
fn zero_interval_means_no_repeats() {
    let t0 = Instant::now();
    let mut schedule = AnnounceSchedule::new(Some(Duration::ZERO));
    schedule.on_owned(A, t0);
    assert_eq!(
        announcements(&mut schedule, t0, Duration::from_secs(60), A).len(),
        BACKOFF.len()
    );
    assert_eq!(schedule.next_deadline(), None);
}

#[test]
fn losing_cancels_pending_announcements_at_once() {
    let t0 = Instant::now();
    let mut schedule = AnnounceSchedule::new(Some(Duration::from_secs(10)));
    schedule.on_owned(A, t0);
    schedule.on_owned(B, t0);
    assert_eq!(schedule.poll(t0).len(), 2);
    schedule.on_lost(A);
    assert!(!schedule.is_owned(A));
    let later = announcements(&mut schedule, t0, Duration::from_secs(60), A);
    assert!(later.is_empty(), "lost IP announced at {later:?}");
    // B is unaffected.
    assert!(schedule.is_owned(B));
    assert!(schedule.next_deadline().is_some());
    // Losing an IP never owned is harmless.
    schedule.on_lost(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99)));
}

#[test]
fn losing_after_backoff_finished_forgets_the_ip() {
    let t0 = Instant::now();
    let mut schedule = AnnounceSchedule::new(None);
    schedule.on_owned(A, t0);
    announcements(&mut schedule, t0, Duration::from_secs(60), A);
    schedule.on_lost(A);
    assert_eq!(schedule.owned().count(), 0);
}

#[test]
fn regaining_restarts_the_backoff() {
    let t0 = Instant::now();
    let mut schedule = AnnounceSchedule::new(None);
    schedule.on_owned(A, t0);
    announcements(&mut schedule, t0, Duration::from_secs(60), A);
    assert_eq!(schedule.next_deadline(), None);
    let t1 = t0 + Duration::from_secs(120);
    schedule.on_lost(A);
    schedule.on_owned(A, t1);
    assert_eq!(schedule.next_deadline(), Some(t1));
    let seen = announcements(&mut schedule, t1, Duration::from_secs(60), A);
    assert_eq!(seen, BACKOFF.to_vec());
}

#[test]
fn reporting_an_owned_ip_again_does_not_restart() {
    let t0 = Instant::now();
    let mut schedule = AnnounceSchedule::new(None);
    schedule.on_owned(A, t0);
    schedule.poll(t0);
    schedule.on_owned(A, t0 + ms(50));
    assert_eq!(schedule.next_deadline(), Some(t0 + ms(100)));
    assert_eq!(schedule.poll(t0 + ms(50)), Vec::<IpAddr>::new());
}

#[test]
fn late_poll_announces_once_and_skips_missed_steps() {
    let t0 = Instant::now();
    let mut schedule = AnnounceSchedule::new(None);
    schedule.on_owned(A, t0);
    assert_eq!(schedule.poll(t0), vec![A]);
    // Steps at 100 ms, 300 ms and 1 s were all missed: one announcement, next at 2 s.
    assert_eq!(schedule.poll(t0 + ms(1500)), vec![A]);
    assert_eq!(schedule.next_deadline(), Some(t0 + ms(2000)));
}

#[test]
fn late_poll_with_interval_restarts_the_interval_from_now() {
    let t0 = Instant::now();
    let mut schedule = AnnounceSchedule::new(Some(Duration::from_secs(10)));
    schedule.on_owned(A, t0);
    announcements(&mut schedule, t0, ms(4000), A);
    assert_eq!(schedule.next_deadline(), Some(t0 + ms(14_000)));
    assert_eq!(schedule.poll(t0 + ms(50_000)), vec![A]);
    assert_eq!(schedule.next_deadline(), Some(t0 + ms(60_000)));
}

#[test]
fn due_ips_come_in_deadline_order() {
    let t0 = Instant::now();
    let mut schedule = AnnounceSchedule::new(None);
    schedule.on_owned(B, t0);
    schedule.poll(t0);
    schedule.on_owned(A, t0 + ms(50));
    // A is due at once (50 ms), B's second announcement at 100 ms.
    assert_eq!(schedule.poll(t0 + ms(200)), vec![A, B]);
}

#[derive(Debug, Clone)]
enum Event {
    Owned(u8),
    Lost(u8),
    Advance(u16),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (0u8..6).prop_map(Event::Owned),
        (0u8..6).prop_map(Event::Lost),
        (0u16..5000).prop_map(Event::Advance),
    ]
}

fn ip(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, n))
}

proptest! {
    /// Whatever happens, a poll only names currently owned IPs, each once, never schedules in
    /// the past, and a newly owned IP is announced by the first poll at or after it was taken.
    #[test]
    fn only_owned_ips_are_announced(events in proptest::collection::vec(event(), 1..80), interval in proptest::option::of(1u64..3000)) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut schedule = AnnounceSchedule::new(interval.map(Duration::from_millis));
        let mut owned = HashSet::new();
        let mut fresh = HashSet::new();
        for event in events {
            match event {
                Event::Owned(n) => {
                    if owned.insert(ip(n)) {
                        fresh.insert(ip(n));
                    }
                    schedule.on_owned(ip(n), now);
                }
                Event::Lost(n) => {
                    owned.remove(&ip(n));
                    fresh.remove(&ip(n));
                    schedule.on_lost(ip(n));
                }
                Event::Advance(millis) => {
                    now += Duration::from_millis(u64::from(millis));
                    let due = schedule.poll(now);
                    let unique: HashSet<_> = due.iter().copied().collect();
                    prop_assert_eq!(unique.len(), due.len(), "an IP twice in one poll");
                    prop_assert!(unique.is_subset(&owned), "announced unowned: {:?}", due);
                    prop_assert!(fresh.is_subset(&unique), "newly owned not announced");
                    fresh.clear();
                    if let Some(next) = schedule.next_deadline() {
                        prop_assert!(next > now);
                    }
                }
            }
            let mut in_schedule: Vec<_> = schedule.owned().collect();
            in_schedule.sort();
            let mut expected: Vec<_> = owned.iter().copied().collect();
            expected.sort();
            prop_assert_eq!(in_schedule, expected);
        }
    }
}
