//! Answer verification (pure, time passed in): the node ranked right after an address's owner
//! asks for that address on the wire now and then, and notices when nobody answers.
//!
//! Gossip says whether a speaker process is alive, not whether its answers reach the LAN: a
//! wedged responder, a firewall or ebtables rule, a bond sending from the wrong slave or a
//! hypervisor's anti-spoofing filter leave an owner alive in gossip and silent on the wire. So
//! the next node in line (the one that would take over) sends an ARP probe for each address it
//! stands behind, at most once a [`INTERVAL`], within a budget of probes per second for the
//! whole node, and counts the probes nobody answered within [`REPLY_WAIT`]. [`MISSES`] in a
//! row make the address *silent*: the speaker reports it (a Warning on the Service, a gauge) and
//! tells the owner through gossip, which withdraws from it (`speaker::withdrawals`).
//!
//! A checker whose own receive path is broken would find every owner silent, so a miss only
//! counts while the checker is known to hear: it also probes the other nodes' own addresses
//! (their kernels answer), one per [`CONTROL_EVERY`], and an unanswered probe counts as a miss
//! only once a reply to another probe is heard after it went out (within [`PROOF_WINDOW`]). A
//! checker that has heard nothing for that long while probing is *deaf*: it reports itself and
//! finds nobody silent, so it moves nothing.
//! With no other node to hear (two nodes, the owner silent toward everyone) the checker cannot
//! tell its own deafness from the owner's silence, and moves nothing either.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The default of `--answer-checks-per-second`: the probes one node sends at most per second.
pub const DEFAULT_RATE: u32 = 100;

/// The shortest time between two probes of one address.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// How long a probe waits for its reply.
pub const REPLY_WAIT: Duration = Duration::from_millis(500);

/// Probes unanswered in a row that make an address silent.
pub const MISSES: u32 = 3;

/// How often a control probe (another node's own address) is sent while anything is checked.
pub const CONTROL_EVERY: Duration = Duration::from_millis(500);

/// A miss counts only if the checker heard some reply within this long; a checker that heard
/// none for this long while probing is deaf.
pub const PROOF_WINDOW: Duration = Duration::from_secs(3);

/// An address this node checks: who owns it, the Service it belongs to, and where to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub owner: Arc<str>,
    pub service: Arc<str>,
    /// This node's interfaces to probe on (`None`: every usable one).
    pub interfaces: Option<BTreeSet<String>>,
}

/// One probe to send now: ask for `ip` (on the interfaces of its target, or, for a control,
/// on any interface sharing its subnet: the edge decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub ip: IpAddr,
    pub control: bool,
}

/// What the checker found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// Addresses nobody answered [`MISSES`] times in a row while this node could hear, by
    /// owner, each with its Service.
    pub silent: BTreeMap<Arc<str>, BTreeMap<IpAddr, Arc<str>>>,
    /// This node heard no reply to any probe for [`PROOF_WINDOW`] while probing.
    pub deaf: bool,
}

#[derive(Debug, Clone)]
struct Checked {
    target: Target,
    /// When the next probe is due.
    due: Instant,
    /// The outstanding probe, when sent.
    sent: Option<Instant>,
    /// An unanswered probe (when sent) not yet counted: it counts as a miss once a reply to
    /// another probe is heard after it went out, and as nothing after [`PROOF_WINDOW`].
    unjudged: Option<Instant>,
    misses: u32,
}

/// The checker's state: its targets and their misses, the control addresses, the budget.
#[derive(Debug, Clone)]
pub struct AnswerCheck {
    rate: u32,
    targets: BTreeMap<IpAddr, Checked>,
    controls: Vec<IpAddr>,
    next_control: usize,
    control_due: Option<Instant>,
    /// Probe tokens left, refilled at `rate` per second up to one second's worth.
    tokens: f64,
    refilled: Option<Instant>,
    /// When a reply to any probe was last heard.
    heard: Option<Instant>,
    /// Since when this node has been probing without hearing (reset by any reply).
    probing_since: Option<Instant>,
}

impl AnswerCheck {
    /// A checker sending at most `rate` probes per second (0: none, the checker is off).
    pub fn new(rate: u32) -> Self {
        Self {
            rate,
            targets: BTreeMap::new(),
            controls: Vec::new(),
            next_control: 0,
            control_due: None,
            tokens: f64::from(rate.min(10)),
            refilled: None,
            heard: None,
            probing_since: None,
        }
    }

    /// The addresses to check now. A target whose owner changed starts over; a new one is due
    /// at once, spread over the first interval so a takeover's thousands do not go out at once.
    pub fn set_targets(&mut self, targets: BTreeMap<IpAddr, Target>, now: Instant) {
        if self.rate == 0 {
            return;
        }
        let count = targets.len().max(1) as u32;
        let old = std::mem::take(&mut self.targets);
        for (i, (ip, target)) in targets.into_iter().enumerate() {
            let kept = old.get(&ip).filter(|c| {
                c.target.owner == target.owner && c.target.interfaces == target.interfaces
            });
            let checked = match kept {
                Some(c) => Checked {
                    target,
                    ..c.clone()
                },
                None => Checked {
                    target,
                    due: now + INTERVAL * (i as u32 % count) / count,
                    sent: None,
                    unjudged: None,
                    misses: 0,
                },
            };
            self.targets.insert(ip, checked);
        }
        if self.targets.is_empty() {
            self.probing_since = None;
            self.control_due = None;
        } else if self.control_due.is_none() {
            self.control_due = Some(now);
        }
    }

    /// The other nodes' own addresses, answered by their kernels: proof that this node hears.
    pub fn set_controls(&mut self, controls: Vec<IpAddr>) {
        if controls != self.controls {
            self.controls = controls;
            self.next_control = 0;
        }
    }

    /// A reply for `ip` was heard (from anyone).
    pub fn heard(&mut self, ip: IpAddr, now: Instant) {
        let probed = self.controls.contains(&ip)
            || self
                .targets
                .get(&ip)
                .is_some_and(|c| c.sent.is_some() || c.unjudged.is_some());
        if let Some(c) = self.targets.get_mut(&ip)
            && (c.sent.take().is_some() | c.unjudged.take().is_some())
        {
            // Answered, even if late.
            c.misses = 0;
        }
        if probed {
            self.heard = Some(now);
            self.probing_since = None;
        }
    }

    /// Settles the probes whose wait ended and returns the probes to send now, within the
    /// budget.
    pub fn poll(&mut self, now: Instant) -> Vec<Probe> {
        if self.rate == 0 {
            return Vec::new();
        }
        self.refill(now);
        let heard = self.heard;
        for c in self.targets.values_mut() {
            if let Some(sent) = c.sent
                && now >= sent + REPLY_WAIT
            {
                c.sent = None;
                c.unjudged = Some(sent);
            }
            // Unanswered: a miss once this node heard another reply after it went out (so it
            // could hear), nothing if it heard none for the proof window.
            if let Some(sent) = c.unjudged {
                if heard.is_some_and(|h| h > sent) {
                    c.unjudged = None;
                    c.misses = c.misses.saturating_add(1);
                } else if now >= sent + PROOF_WINDOW {
                    c.unjudged = None;
                }
            }
        }
        let mut out = Vec::new();
        if let Some(due) = self.control_due
            && now >= due
            && !self.controls.is_empty()
            && self.tokens >= 1.0
        {
            let ip = self.controls[self.next_control % self.controls.len()];
            self.next_control = self.next_control.wrapping_add(1);
            self.tokens -= 1.0;
            self.control_due = Some(now + CONTROL_EVERY);
            out.push(Probe { ip, control: true });
        }
        let mut due: Vec<(Instant, IpAddr)> = self
            .targets
            .iter()
            .filter(|(_, c)| c.sent.is_none() && c.due <= now)
            .map(|(ip, c)| (c.due, *ip))
            .collect();
        due.sort_unstable();
        for (_, ip) in due {
            if self.tokens < 1.0 {
                break;
            }
            self.tokens -= 1.0;
            if let Some(c) = self.targets.get_mut(&ip) {
                c.sent = Some(now);
                c.unjudged = None;
                c.due = now + INTERVAL;
            }
            out.push(Probe { ip, control: false });
        }
        if !out.is_empty() && self.probing_since.is_none() {
            self.probing_since = Some(now);
        }
        out
    }

    /// When [`Self::poll`] has something to do next.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.rate == 0 || self.targets.is_empty() {
            return None;
        }
        let waits = self.targets.values().filter_map(|c| {
            c.sent
                .map(|s| s + REPLY_WAIT)
                .or(c.unjudged.map(|s| s + PROOF_WINDOW))
        });
        let due = self
            .targets
            .values()
            .filter(|c| c.sent.is_none())
            .map(|c| c.due);
        let earliest = waits.chain(due).chain(self.control_due).min()?;
        // Out of tokens: the next one comes 1/rate after the last refill.
        let token = self
            .refilled
            .filter(|_| self.tokens < 1.0)
            .map(|at| at + Duration::from_secs(1) / self.rate);
        Some(token.map_or(earliest, |t| earliest.max(t)))
    }

    /// What this node found, as of `now`.
    pub fn findings(&self, now: Instant) -> Findings {
        let deaf = self.deaf(now);
        let mut silent: BTreeMap<Arc<str>, BTreeMap<IpAddr, Arc<str>>> = BTreeMap::new();
        if !deaf {
            for (ip, c) in &self.targets {
                if c.misses >= MISSES {
                    silent
                        .entry(c.target.owner.clone())
                        .or_default()
                        .insert(*ip, c.target.service.clone());
                }
            }
        }
        Findings { silent, deaf }
    }

    /// Whether a reply was heard recently enough that an unanswered probe means something.
    fn hears(&self, now: Instant) -> bool {
        self.heard
            .is_some_and(|at| now.saturating_duration_since(at) <= PROOF_WINDOW)
    }

    fn deaf(&self, now: Instant) -> bool {
        !self.hears(now)
            && self
                .probing_since
                .is_some_and(|since| now.saturating_duration_since(since) >= PROOF_WINDOW)
    }

    fn refill(&mut self, now: Instant) {
        let cap = f64::from(self.rate);
        if let Some(at) = self.refilled {
            let elapsed = now.saturating_duration_since(at).as_secs_f64();
            self.tokens = (self.tokens + elapsed * cap).min(cap);
        }
        self.refilled = Some(now);
    }
}

#[cfg(test)]
#[path = "answer_check_tests.rs"]
mod tests;
