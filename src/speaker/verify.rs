//! Answer verification as both speaker modes run it: the checker task
//! (`speaker::checker`, fed the addresses this node is next in line for), the owner's
//! withdrawals (`speaker::withdrawals`, fed the reports about this node that gossip carries),
//! and what goes back into gossip (this node's reports and withdrawals). See
//! `speaker::answer_check` for the rules.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Instant;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::gossip::GossipHandle;
use crate::gossip::node_state::{MAX_WITHDRAWN, NodeState, SilentReport};
use crate::layer2::iface::ExcludePatterns;

use super::answer_check::{Findings, Target};
use super::checker::{self, Checker, Work};
use super::metrics::VerifyMetrics;
use super::ownership::Withdrawn;
use super::withdrawals::{Reported, Withdrawals};

pub struct Verification {
    me: String,
    checker: Option<Checker>,
    withdrawals: Withdrawals,
    /// Bumped to make the announcer reopen its sockets and announce again.
    heal: watch::Sender<u64>,
    metrics: Option<VerifyMetrics>,
    /// The findings already reported (events are due for what is new).
    reported: Findings,
    /// Whether this node left the gossip elections for its withdrawal from everything.
    left: bool,
    /// The targets' version and the controls last handed to the checker.
    handed: Option<(u64, Vec<IpAddr>)>,
    /// A withdrawal began: the announcer reopens its sockets once the owned set without the
    /// withdrawn addresses went to it ([`Self::heal`]).
    heal_due: bool,
}

impl Verification {
    /// `rate`: `--answer-checks-per-second` (0: this node checks nothing; it still withdraws
    /// when another node reports it).
    pub fn new(
        me: String,
        rate: u32,
        excludes: ExcludePatterns,
        heal: watch::Sender<u64>,
        metrics: Option<VerifyMetrics>,
    ) -> Self {
        Self {
            me,
            checker: (rate > 0).then(|| checker::spawn(rate, excludes)),
            withdrawals: Withdrawals::default(),
            heal,
            metrics,
            reported: Findings::default(),
            left: false,
            heal_due: false,
            handed: None,
        }
    }

    /// Reads what gossip carries (the reports naming this node, the others' withdrawals),
    /// withdraws where it must, and returns the withdrawals the election reads (this node's
    /// own included, with those just taken back).
    pub fn withdrawn(
        &mut self,
        states: &BTreeMap<String, NodeState>,
        owned: &BTreeSet<IpAddr>,
        now: Instant,
    ) -> Withdrawn {
        let mut about_me = Reported::default();
        let mut withdrawn = Withdrawn::new();
        for (node, state) in states {
            if *node == self.me {
                continue;
            }
            for report in state.silent.iter().filter(|r| r.node == self.me) {
                about_me.addresses.extend(report.addresses.iter().copied());
                about_me.more |= report.more;
            }
            if !state.withdrawn.is_empty() {
                withdrawn.insert(node.clone(), state.withdrawn.iter().copied().collect());
            }
        }
        let before = self.withdrawals.published();
        if self
            .withdrawals
            .observe(&about_me, owned, now, MAX_WITHDRAWN)
        {
            warn!(
                addresses = ?self.withdrawals.published(),
                everything = self.withdrawals.all_published(),
                "the next node in line does not hear this node's answers: withdrawing, \
                 reopening the packet sockets and announcing again"
            );
            self.heal_due = true;
        } else if before != self.withdrawals.published() {
            info!(addresses = ?self.withdrawals.published(), "withdrawals taken back");
        }
        let mine = self.withdrawals.excluded();
        if !mine.is_empty() {
            withdrawn.insert(self.me.clone(), mine);
        }
        self.set_metrics();
        withdrawn
    }

    /// Makes the announcer reopen its sockets and announce again, when a withdrawal began.
    /// Called after the owned set went to the announcer, so the addresses withdrawn from are
    /// not announced again.
    pub fn heal(&mut self) {
        if std::mem::take(&mut self.heal_due) {
            self.heal.send_modify(|g| *g = g.wrapping_add(1));
        }
    }

    /// Whether this node stays out of every election (told of more silent addresses than it
    /// can withdraw from one by one).
    pub fn withdrawn_from_all(&self) -> bool {
        self.withdrawals.all()
    }

    /// Whether this node tells the others so (by leaving the gossip elections).
    pub fn left_all(&self) -> bool {
        self.withdrawals.all_published()
    }

    /// Leaves the gossip elections while this node withdrew from everything, and comes back
    /// when that hold ends (only while `can_announce`: a speaker without a usable config stays
    /// out for that reason alone).
    pub async fn take_part(&mut self, membership: Option<&GossipHandle>, can_announce: bool) {
        let out = self.withdrawals.all_published();
        if out == self.left || !can_announce {
            return;
        }
        self.left = out;
        if let Some(m) = membership {
            m.set_candidate(!out).await;
        }
    }

    /// Hands the checker the addresses this node is next in line for (`version` changes
    /// whenever they do: an unchanged set is not copied again) and the other nodes' own
    /// addresses.
    pub fn check(
        &mut self,
        version: u64,
        targets: &BTreeMap<IpAddr, Target>,
        states: &BTreeMap<String, NodeState>,
    ) {
        let Some(checker) = &self.checker else {
            return;
        };
        let controls: Vec<IpAddr> = states
            .iter()
            .filter(|(node, _)| **node != self.me)
            .flat_map(|(_, s)| s.interfaces.iter().filter(|i| i.up))
            .flat_map(|i| i.addresses.iter().copied())
            .collect();
        if self.handed.as_ref() == Some(&(version, controls.clone())) {
            return;
        }
        let work = Work {
            targets: targets.clone(),
            controls: controls.clone(),
        };
        checker
            .work
            .send_if_modified(|w| (*w != work).then(|| *w = work).is_some());
        self.handed = Some((version, controls));
    }

    /// What this node gossips: its silence reports and the addresses it withdrew from.
    pub fn gossiped(&self) -> (Vec<SilentReport>, Vec<IpAddr>) {
        let reports = self
            .findings()
            .silent
            .into_iter()
            .map(|(node, addresses)| SilentReport {
                node: node.to_string(),
                addresses: addresses.into_keys().collect(),
                more: false,
            })
            .collect();
        (reports, self.withdrawals.published().into_iter().collect())
    }

    /// The checker's latest findings.
    pub fn findings(&self) -> Findings {
        self.checker
            .as_ref()
            .map(|c| c.findings.borrow().clone())
            .unwrap_or_default()
    }

    /// What is new since the last call: addresses found silent (owner, address, Service), and
    /// whether this node just became deaf.
    pub fn news(&mut self) -> (Vec<(String, IpAddr, String)>, bool) {
        let now = self.findings();
        let mut silent = Vec::new();
        for (owner, addresses) in &now.silent {
            for (ip, service) in addresses {
                let known = self
                    .reported
                    .silent
                    .get(owner)
                    .is_some_and(|a| a.contains_key(ip));
                if !known {
                    silent.push((owner.to_string(), *ip, service.to_string()));
                }
            }
        }
        let deafened = now.deaf && !self.reported.deaf;
        if deafened {
            warn!(
                "answer checks: no reply to any probe (not even the other nodes' own \
                   addresses); this node's receive path looks broken, so it moves nothing"
            );
        }
        for (owner, ip, service) in &silent {
            warn!(%owner, %ip, %service, "answer checks: the owner does not answer; telling it");
        }
        self.reported = now;
        self.set_metrics();
        (silent, deafened)
    }

    /// When a withdrawal's hold ends.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.withdrawals.next_deadline()
    }

    /// Resolves when the checker's findings change.
    pub async fn changed(&mut self) {
        match &mut self.checker {
            Some(c) => {
                if c.findings.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    }

    fn set_metrics(&self) {
        if let Some(m) = &self.metrics {
            let findings = self.findings();
            let silent = findings.silent.values().map(BTreeMap::len).sum();
            let withdrawn =
                (!self.withdrawals.all_published()).then(|| self.withdrawals.published().len());
            m.set(silent, findings.deaf, withdrawn);
        }
    }
}
