//! Leader election on a coordination.k8s.io/v1 Lease, as a pure state machine: fed what the
//! API shows and `now` (the monotonic clock), it says what to write, and whether this replica
//! may act as the leader right now. [`super::elector`] is its edge.
//!
//! The rules (client-go's, which make a stalled leader harmless):
//! - Nobody trusts anyone's wall clock. A candidate takes over another holder's Lease only once
//!   it has seen the same record, unchanged, for the record's full duration by its *own*
//!   monotonic clock.
//! - A leader leads only until [`Timing::renew_deadline`] after the *start* of its last
//!   successful renewal, by its own monotonic clock. The deadline is shorter than the lease
//!   duration, so a leader that cannot renew (API unreachable, process paused) steps down by its
//!   own clock before anyone else may take over.
//! - Every write carries the resourceVersion it was decided on, so two candidates never both
//!   succeed, and a renewal succeeds only if nobody else wrote the Lease in between.

use std::time::{Duration, Instant};

/// What the Lease shows (only what the decisions read).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseRecord {
    /// `spec.holderIdentity`; `None` or empty when released.
    pub holder: Option<String>,
    /// `spec.leaseDurationSeconds`.
    pub duration_secs: i32,
    /// `spec.leaseTransitions`.
    pub transitions: i32,
    /// `spec.renewTime` as the API shows it: only compared for change, never read as a time.
    pub renew_time: Option<String>,
    /// `metadata.resourceVersion`.
    pub resource_version: Option<String>,
}

impl LeaseRecord {
    fn holder(&self) -> Option<&str> {
        self.holder.as_deref().filter(|h| !h.is_empty())
    }
}

/// Election timing derived from `--lease-duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a record must stay unchanged before another replica takes over.
    pub lease: Duration,
    /// A leader whose last successful renewal started longer ago than this steps down.
    pub renew_deadline: Duration,
    /// Time between attempts (renewals while leading, checks while standing by).
    pub retry: Duration,
}

impl Timing {
    /// client-go's proportions (15 s lease, 10 s renew deadline, 2 s retry): the deadline is
    /// two thirds of the lease, so a third of it is the margin for clock-rate differences and
    /// request latency; a leader tries to renew about five times before it must step down.
    pub fn for_lease(secs: u64) -> Self {
        let lease = Duration::from_secs(secs.max(2));
        let renew_deadline = lease * 2 / 3;
        let retry = (renew_deadline / 5).max(Duration::from_millis(100));
        Self {
            lease,
            renew_deadline,
            retry,
        }
    }
}

/// What the edge should write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// No Lease exists: create it, held by us.
    Create { transitions: i32 },
    /// Replace the Lease held by us (`acquire`: newly, else a renewal), on condition that it
    /// still has `resource_version`.
    Update {
        resource_version: String,
        transitions: i32,
        acquire: bool,
    },
}

/// One replica's view of the election.
#[derive(Debug, Clone)]
pub struct Elector {
    identity: String,
    timing: Timing,
    /// The last record seen and when it was first seen in that state (local clock).
    observed: Option<(LeaseRecord, Instant)>,
    /// Leader until this instant (exclusive).
    leader_until: Option<Instant>,
    /// Set when a write was handed out: its start, which bounds the leadership it may grant.
    pending_since: Option<Instant>,
}

impl Elector {
    pub fn new(identity: String, timing: Timing) -> Self {
        Self {
            identity,
            timing,
            observed: None,
            leader_until: None,
            pending_since: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Whether this replica may act as the leader at `now`.
    pub fn is_leader(&self, now: Instant) -> bool {
        self.leader_until.is_some_and(|until| now < until)
    }

    /// The instant leadership runs out unless renewed (`None` while not leading).
    pub fn leader_until(&self) -> Option<Instant> {
        self.leader_until
    }

    /// When the next attempt is due after one made at `now`.
    pub fn next_attempt(&self, now: Instant) -> Instant {
        now + self.timing.retry
    }

    /// The API showed `record` (`None`: no Lease) at `now`: what to write, if anything.
    pub fn observe(&mut self, now: Instant, record: Option<LeaseRecord>) -> Option<Write> {
        let Some(record) = record else {
            self.observed = None;
            self.pending_since = Some(now);
            return Some(Write::Create { transitions: 0 });
        };
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|(seen, _)| *seen != record);
        if changed {
            self.observed = Some((record.clone(), now));
        }
        let since = self.observed.as_ref().map_or(now, |(_, at)| *at);
        let resource_version = record.resource_version.clone()?;
        let write = match record.holder() {
            Some(holder) if holder == self.identity => Write::Update {
                resource_version,
                transitions: record.transitions,
                acquire: false,
            },
            Some(_) => {
                // Someone else holds it: ours only once it sat unchanged for its full duration
                // (the holder's own figure; ours when the record has none).
                self.leader_until = None;
                let duration = match u64::try_from(record.duration_secs) {
                    Ok(secs) if secs > 0 => Duration::from_secs(secs),
                    _ => self.timing.lease,
                };
                if now.saturating_duration_since(since) < duration {
                    return None;
                }
                Write::Update {
                    resource_version,
                    transitions: record.transitions.saturating_add(1),
                    acquire: true,
                }
            }
            None => Write::Update {
                resource_version,
                transitions: record.transitions.saturating_add(1),
                acquire: true,
            },
        };
        self.pending_since = Some(now);
        Some(write)
    }

    /// The write handed out last succeeded; the API now shows `record`. Leadership runs until
    /// the renew deadline counted from when the write was decided (before it was sent), never
    /// from when the answer came back.
    pub fn written(&mut self, now: Instant, record: LeaseRecord) {
        let started = self.pending_since.take().unwrap_or(now);
        self.observed = Some((record, now));
        self.leader_until = Some(started + self.timing.renew_deadline);
    }

    /// The write handed out last was refused (a conflict: someone else wrote first) or failed.
    /// Leadership is not extended; it runs out at its deadline unless a later renewal succeeds.
    pub fn write_failed(&mut self) {
        self.pending_since = None;
    }

    /// Stepping down for good (shutdown): the update that releases the Lease, when we may
    /// still hold it.
    pub fn release(&mut self) -> Option<String> {
        self.leader_until = None;
        let (record, _) = self.observed.as_ref()?;
        if record.holder() != Some(self.identity.as_str()) {
            return None;
        }
        record.resource_version.clone()
    }
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
