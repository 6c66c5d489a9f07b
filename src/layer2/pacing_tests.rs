use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;
use crate::layer2::AnnounceSchedule;
use proptest::prelude::*;

fn v4(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(
        u32::from(Ipv4Addr::new(198, 51, 100, 0)) + n,
    ))
}

fn v6(n: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, n))
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

#[test]
fn bucket_allows_the_burst_then_one_token_per_period() {
    let t0 = Instant::now();
    let mut bucket = TokenBucket::new(1000, 4, t0);
    for _ in 0..4 {
        assert!(bucket.try_take(1, t0));
    }
    assert!(!bucket.try_take(1, t0), "the burst is spent");
    assert_eq!(bucket.ready_at(1), t0 + ms(1));
    assert!(!bucket.try_take(1, t0 + Duration::from_micros(999)));
    assert!(bucket.try_take(1, t0 + ms(1)));
    assert!(!bucket.try_take(1, t0 + ms(1)));
}

#[test]
fn bucket_refills_only_up_to_the_burst() {
    let t0 = Instant::now();
    let mut bucket = TokenBucket::new(1000, 4, t0);
    assert!(bucket.try_take(4, t0));
    let later = t0 + Duration::from_secs(60);
    for _ in 0..4 {
        assert!(bucket.try_take(1, later));
    }
    assert!(
        !bucket.try_take(1, later),
        "an idle minute is worth one burst, not 60000 frames"
    );
}

#[test]
fn bucket_ignores_a_clock_going_back_and_clamps_oversized_costs() {
    let t0 = Instant::now() + Duration::from_secs(1);
    let mut bucket = TokenBucket::new(1000, 2, t0);
    assert!(bucket.try_take(2, t0));
    assert!(
        !bucket.try_take(1, t0 - ms(500)),
        "an earlier now adds no credit"
    );
    let mut small = TokenBucket::new(10, 1, t0);
    assert!(
        small.try_take(5, t0),
        "a cost above the burst goes once the bucket is full"
    );
    assert!(!small.try_take(1, t0));
    assert_eq!(small.ready_at(5), t0 + ms(100));
}

#[test]
fn pacer_sends_the_burst_then_paces_in_queue_order() {
    let t0 = Instant::now();
    let mut pacer = AnnouncePacer::new(1000, 4);
    for n in 0..10 {
        pacer.enqueue(1, v4(n), t0);
    }
    // IPv4 costs two frames: a burst of 4 frames is two announcements.
    assert_eq!(pacer.take(t0), vec![(1, v4(0)), (1, v4(1))]);
    assert_eq!(pacer.next_ready(), Some(t0 + ms(2)));
    assert!(pacer.take(t0 + ms(1)).is_empty());
    assert_eq!(pacer.take(t0 + ms(2)), vec![(1, v4(2))]);
    assert_eq!(pacer.take(t0 + ms(6)), vec![(1, v4(3)), (1, v4(4))]);
    assert_eq!(pacer.waiting(), 5);
}

#[test]
fn interfaces_have_their_own_buckets() {
    let t0 = Instant::now();
    let mut pacer = AnnouncePacer::new(1000, 2);
    for n in 0..3 {
        pacer.enqueue(1, v6(n as u16), t0);
        pacer.enqueue(2, v6(n as u16), t0);
    }
    let sent = pacer.take(t0);
    assert_eq!(
        sent,
        vec![(1, v6(0)), (1, v6(1)), (2, v6(0)), (2, v6(1))],
        "a busy interface does not use another's tokens"
    );
}

#[test]
fn an_ip_queued_twice_is_sent_once_and_a_lost_one_not_at_all() {
    let t0 = Instant::now();
    let mut pacer = AnnouncePacer::new(1000, 2);
    for n in 0..4 {
        pacer.enqueue(1, v6(n), t0);
    }
    pacer.enqueue(1, v6(3), t0);
    pacer.forget_ip(v6(2));
    let mut sent = Vec::new();
    let mut now = t0;
    while let Some(at) = pacer.next_ready() {
        now = now.max(at);
        sent.extend(pacer.take(now));
    }
    assert_eq!(sent, vec![(1, v6(0)), (1, v6(1)), (1, v6(3))]);
    // Forgetting every waiting IP leaves nothing to wake up for.
    pacer.enqueue(1, v6(7), now);
    pacer.enqueue(1, v6(8), now);
    pacer.forget_ip(v6(7));
    pacer.forget_ip(v6(8));
    assert_eq!(pacer.next_ready(), None);
    pacer.enqueue(2, v6(9), now);
    pacer.forget_link(2);
    assert_eq!(pacer.next_ready(), None);
    assert!(pacer.take(now + Duration::from_secs(1)).is_empty());
}

/// The schedule and the pacer together, as the announcer drives them: a takeover of 10k IPv4
/// addresses is spread at the bucket's rate, every IP is announced, and no window of time
/// carries more frames than the burst plus the rate over the window.
#[test]
fn a_takeover_of_ten_thousand_ips_is_paced_and_complete() {
    let t0 = Instant::now();
    let mut schedule = AnnounceSchedule::new(None);
    let mut pacer = AnnouncePacer::default();
    let ips: Vec<IpAddr> = (0..10_000).map(v4).collect();
    for ip in &ips {
        schedule.on_owned(*ip, t0);
    }
    let mut sends: Vec<(Instant, IpAddr)> = Vec::new();
    let mut now = t0;
    let end = t0 + Duration::from_secs(120);
    while now < end {
        for ip in schedule.poll(now) {
            pacer.enqueue(1, ip, now);
        }
        sends.extend(pacer.take(now).into_iter().map(|(_, ip)| (now, ip)));
        let Some(next) = [schedule.next_deadline(), pacer.next_ready()]
            .into_iter()
            .flatten()
            .min()
        else {
            break;
        };
        now = next.max(now);
    }
    let mut first_sent: HashMap<IpAddr, Instant> = HashMap::new();
    for (at, ip) in &sends {
        first_sent.entry(*ip).or_insert(*at);
    }
    assert_eq!(first_sent.len(), ips.len(), "every IP is announced");
    // 10k IPs × 2 frames at 1000 frames/s: the first round alone takes 20 s, not one instant.
    let first_round_done = first_sent.values().max().unwrap();
    assert!(*first_round_done - t0 >= Duration::from_secs(19));
    let window = ms(100);
    let bound = u64::from(BURST) + u64::from(RATE_PER_SECOND) * 100 / 1000;
    // Sends are in time order: slide a window over them.
    let mut in_window: u64 = 0;
    let mut head = 0;
    for (at, ip) in &sends {
        in_window += u64::from(frames(*ip));
        while sends[head].0 + window <= *at {
            in_window -= u64::from(frames(sends[head].1));
            head += 1;
        }
        assert!(
            in_window <= bound,
            "{in_window} frames in 100 ms (bound {bound})"
        );
    }
}

proptest! {
    /// Whatever the arrivals and poll times, the frames sent up to any instant never exceed the
    /// burst plus the rate times the elapsed time.
    #[test]
    fn never_exceeds_burst_plus_rate(steps in proptest::collection::vec((0u64..5_000, 0usize..50), 1..60)) {
        let t0 = Instant::now();
        let mut pacer = AnnouncePacer::new(1000, 16);
        let mut now = t0;
        let mut sent: u64 = 0;
        let mut next_ip: u32 = 0;
        for (advance_us, arrivals) in steps {
            now += Duration::from_micros(advance_us);
            for _ in 0..arrivals {
                pacer.enqueue(1, v4(next_ip), now);
                next_ip += 1;
            }
            sent += pacer.take(now).iter().map(|(_, ip)| u64::from(frames(*ip))).sum::<u64>();
            let elapsed_ms = (now - t0).as_micros() as u64 / 1000;
            prop_assert!(sent <= 16 + elapsed_ms);
        }
    }
}
