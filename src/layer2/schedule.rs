//! When to send gratuitous ARP / unsolicited neighbor advertisements. Pure: the edge reports
//! ownership changes, asks for the next deadline to sleep until, and polls with the current time.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Offsets from taking an IP over at which it is announced.
///
/// - 0: at once, so clients that still point at the dead owner move without asking again.
/// - 100 ms: a second copy soon after covers a single lost frame (a busy switch queue, the
///   receiver's socket backlog) within the sub-second failover budget.
/// - 300 ms: catches a client whose own probe to the old owner crossed our first announcement.
/// - 1 s and 2 s: Linux ignores a neighbor update within `locktime` (1 s by default) of the
///   previous one; an announcement that raced the old owner's last reply is repeated past it.
/// - 4 s: a last repeat for clients that were briefly unreachable (link flap, STP listening).
///
/// Six frames per IP per interface over four seconds: cheap even when a node takes over
/// thousands of IPs at once, and over well before a stale entry would expire by itself.
pub const BACKOFF: [Duration; 6] = [
    Duration::ZERO,
    Duration::from_millis(100),
    Duration::from_millis(300),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// When ownership was taken; the backoff offsets count from here.
    since: Instant,
    /// Index into [`BACKOFF`] of the announcement queued (past its end: interval repeats).
    step: usize,
    /// The queued deadline, or none when the backoff is done and there is no interval.
    due: Option<Instant>,
}

/// Announcement deadlines of every owned IP.
#[derive(Debug, Clone, Default)]
pub struct AnnounceSchedule {
    interval: Option<Duration>,
    owned: HashMap<IpAddr, Entry>,
    /// Deadlines in order, so the next one and all due ones are found without a scan.
    queue: BTreeSet<(Instant, IpAddr)>,
}

impl AnnounceSchedule {
    /// `garp_interval`: after the backoff, keep announcing every interval for as long as the IP
    /// is owned (`--garp-interval`). A zero interval is taken as none, since it would announce
    /// on every poll.
    pub fn new(garp_interval: Option<Duration>) -> AnnounceSchedule {
        AnnounceSchedule {
            interval: garp_interval.filter(|interval| !interval.is_zero()),
            ..AnnounceSchedule::default()
        }
    }

    /// `ip` is now owned: announce it at once and then on the backoff. Reporting an IP that is
    /// already owned changes nothing, so the edge may report its whole owned set on every
    /// recomputation.
    pub fn on_owned(&mut self, ip: IpAddr, now: Instant) {
        if self.owned.contains_key(&ip) {
            return;
        }
        let due = now + BACKOFF[0];
        self.owned.insert(
            ip,
            Entry {
                since: now,
                step: 0,
                due: Some(due),
            },
        );
        self.queue.insert((due, ip));
    }

    /// `ip` is no longer owned: nothing more is announced for it. Owning it again later starts
    /// the backoff from the beginning.
    pub fn on_lost(&mut self, ip: IpAddr) {
        if let Some(Entry { due: Some(due), .. }) = self.owned.remove(&ip) {
            self.queue.remove(&(due, ip));
        }
    }

    /// The IPs to announce now, each once, in deadline order; their next deadlines are queued.
    /// A poll that comes late announces once and skips the deadlines it missed, rather than
    /// sending a burst.
    pub fn poll(&mut self, now: Instant) -> Vec<IpAddr> {
        let mut due_ips = Vec::new();
        while let Some(&(due, ip)) = self.queue.first() {
            if due > now {
                break;
            }
            self.queue.pop_first();
            due_ips.push(ip);
            if let Some(entry) = self.owned.get_mut(&ip) {
                let next = next_deadline(entry, due, now, self.interval);
                entry.due = next.map(|(_, at)| at);
                if let Some((step, at)) = next {
                    entry.step = step;
                    self.queue.insert((at, ip));
                }
            }
        }
        due_ips
    }

    /// The earliest deadline, to sleep until; none when nothing is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue.first().map(|&(due, _)| due)
    }

    pub fn is_owned(&self, ip: IpAddr) -> bool {
        self.owned.contains_key(&ip)
    }

    /// Every IP currently owned, in no particular order.
    pub fn owned(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.owned.keys().copied()
    }
}

/// The step and instant after the announcement due at `fired`, strictly later than `now`.
fn next_deadline(
    entry: &Entry,
    fired: Instant,
    now: Instant,
    interval: Option<Duration>,
) -> Option<(usize, Instant)> {
    let backoff = (entry.step + 1..BACKOFF.len())
        .map(|step| (step, entry.since + BACKOFF[step]))
        .find(|&(_, at)| at > now);
    if backoff.is_some() {
        return backoff;
    }
    let interval = interval?;
    // Anchored on the deadline, not on when the poll happened, so repeats do not drift.
    let anchored = fired + interval;
    let at = if anchored > now {
        anchored
    } else {
        now + interval
    };
    Some((BACKOFF.len(), at))
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
