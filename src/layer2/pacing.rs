//! Paces gratuitous ARP / unsolicited NA per interface with a token bucket. Pure: the edge
//! queues what the [`AnnounceSchedule`](super::AnnounceSchedule) says is due, asks when the next
//! frame may go, and takes what the buckets allow at the current time.
//!
//! Why pace at all: every host and switch on the segment must process every broadcast frame,
//! and a node taking over thousands of IPs would otherwise emit them in one burst, which storm
//! control may drop (losing exactly the announcements that matter) and which competes with the
//! ARP/NDP replies clients are waiting for. The responder answers requests directly and
//! unpaced, so pacing only delays the unsolicited copies.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Frames per second per interface. 1000 frames/s is one frame per millisecond: about
/// 0.5 Mbit/s of 60-byte frames, far below any storm-control threshold in common use, yet
/// 10k IPv4 addresses (two frames each) are all announced within 20 s and a typical takeover
/// of a few hundred within a fraction of a second.
pub const RATE_PER_SECOND: u32 = 1000;

/// Frames an interface may send at once after being idle: a takeover of a few dozen IPs goes
/// out without delay, while a larger one is spread over time.
pub const BURST: u32 = 64;

/// Frames one announcement of `ip` sends: a gratuitous ARP request and reply for IPv4, one
/// unsolicited neighbor advertisement for IPv6.
pub fn frames(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(_) => 2,
        IpAddr::V6(_) => 1,
    }
}

/// A token bucket counted in time: `credit` is how long the bucket has been refilling, capped
/// at the time to refill `burst` tokens. Integer arithmetic only, so no rounding drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    per_token: Duration,
    capacity: Duration,
    credit: Duration,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`. `rate` and `burst` are at least 1 (a zero would never send).
    pub fn new(rate: u32, burst: u32, now: Instant) -> TokenBucket {
        let per_token = Duration::from_secs(1) / rate.max(1);
        let capacity = per_token * burst.max(1);
        TokenBucket {
            per_token,
            capacity,
            credit: capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        // A `now` earlier than the last refill (callers mixing clocks) adds nothing.
        let elapsed = now.saturating_duration_since(self.last);
        self.credit = (self.credit + elapsed).min(self.capacity);
        self.last = self.last.max(now);
    }

    /// Spends `cost` tokens if the bucket holds them at `now`. A cost above the burst is
    /// clamped to it, so an oversized request still goes once the bucket is full.
    pub fn try_take(&mut self, cost: u32, now: Instant) -> bool {
        self.refill(now);
        let need = (self.per_token * cost).min(self.capacity);
        if self.credit >= need {
            self.credit -= need;
            true
        } else {
            false
        }
    }

    /// When `cost` tokens will be available (`now` or earlier if they are already).
    pub fn ready_at(&self, cost: u32) -> Instant {
        let need = (self.per_token * cost).min(self.capacity);
        self.last + need.saturating_sub(self.credit)
    }
}

#[derive(Debug, Clone)]
struct LinkQueue {
    bucket: TokenBucket,
    /// FIFO of IPs waiting; may hold IPs forgotten since (skipped when popped).
    order: VecDeque<IpAddr>,
    /// The IPs really waiting: an IP due again while still queued is not queued twice.
    waiting: HashSet<IpAddr>,
}

impl LinkQueue {
    /// Drops forgotten IPs at the head, so the head is always one that will be sent.
    fn skip_forgotten(&mut self) {
        while let Some(ip) = self.order.front() {
            if self.waiting.contains(ip) {
                break;
            }
            self.order.pop_front();
        }
    }
}

/// The announcements waiting for their interface's bucket, per interface index.
#[derive(Debug, Clone)]
pub struct AnnouncePacer {
    rate: u32,
    burst: u32,
    links: BTreeMap<u32, LinkQueue>,
}

impl Default for AnnouncePacer {
    fn default() -> Self {
        AnnouncePacer::new(RATE_PER_SECOND, BURST)
    }
}

impl AnnouncePacer {
    pub fn new(rate: u32, burst: u32) -> AnnouncePacer {
        AnnouncePacer {
            rate,
            burst,
            links: BTreeMap::new(),
        }
    }

    /// Queues an announcement of `ip` on interface `link`; one already waiting there is kept
    /// in its place rather than queued again, so the queue never exceeds the owned IPs.
    pub fn enqueue(&mut self, link: u32, ip: IpAddr, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        let queue = self.links.entry(link).or_insert_with(|| LinkQueue {
            bucket: TokenBucket::new(rate, burst, now),
            order: VecDeque::new(),
            waiting: HashSet::new(),
        });
        if queue.waiting.insert(ip) {
            queue.order.push_back(ip);
        }
    }

    /// The announcements the buckets allow at `now`, per interface in queue order.
    pub fn take(&mut self, now: Instant) -> Vec<(u32, IpAddr)> {
        let mut out = Vec::new();
        for (&link, queue) in &mut self.links {
            loop {
                queue.skip_forgotten();
                let Some(&ip) = queue.order.front() else {
                    break;
                };
                if !queue.bucket.try_take(frames(ip), now) {
                    break;
                }
                queue.order.pop_front();
                queue.waiting.remove(&ip);
                out.push((link, ip));
            }
        }
        out
    }

    /// When the next queued announcement may go; none when nothing waits.
    pub fn next_ready(&self) -> Option<Instant> {
        self.links
            .values()
            .filter_map(|queue| {
                let ip = queue.order.iter().find(|ip| queue.waiting.contains(ip))?;
                Some(queue.bucket.ready_at(frames(*ip)))
            })
            .min()
    }

    /// `ip` is no longer owned: drop its waiting announcements on every interface.
    pub fn forget_ip(&mut self, ip: IpAddr) {
        for queue in self.links.values_mut() {
            if queue.waiting.remove(&ip) {
                queue.skip_forgotten();
                if queue.waiting.is_empty() {
                    queue.order.clear();
                }
            }
        }
    }

    /// Interface `link` is gone: drop its queue (a re-created interface starts full).
    pub fn forget_link(&mut self, link: u32) {
        self.links.remove(&link);
    }

    /// How many announcements wait, over all interfaces.
    pub fn waiting(&self) -> usize {
        self.links.values().map(|q| q.waiting.len()).sum()
    }
}

#[cfg(test)]
#[path = "pacing_tests.rs"]
mod tests;
