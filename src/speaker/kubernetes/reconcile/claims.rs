//! The pass's claims under a placement policy that reads them (`--sticky-ownership`,
//! `--even-spread`): what the other nodes claim, what this one claims, and every live node's
//! claims as the placement reads them (see `speaker::handover`).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::placement::Claims;
use crate::speaker::handover::Claimed;

use super::Reconciler;

impl Reconciler {
    /// Records what the other live nodes claim (from gossip), for the next passes.
    pub fn set_claims(&mut self, others: BTreeMap<String, Claimed>) {
        if others != self.others_claim {
            self.others_claim = others;
            self.claims.0 += 1;
        }
    }

    /// What this node claims, to gossip (nothing under MetalLB's ranking).
    pub fn claimed(&self) -> Claimed {
        self.handover.claimed()
    }

    /// When a pending claim is due to be answered.
    pub fn handover_deadline(&self) -> Option<std::time::Instant> {
        self.handover.next_deadline()
    }

    /// Every live node's claims, this node's own as it holds them now (none under MetalLB's
    /// ranking); made again only after they changed, so a pass with nothing new compares one
    /// pointer.
    pub(super) fn claims(&mut self) -> Arc<Claims> {
        let (version, built) = &mut self.claims;
        if built.as_ref().is_none_or(|(at, _)| at != version) {
            let claims = if self.view.placement.is_ranked() {
                Claims::default()
            } else {
                let mine = self.handover.claimed();
                Claims::new(
                    self.others_claim
                        .iter()
                        .map(|(n, c)| (n.as_str(), c.all()))
                        .chain([(self.me.as_str(), mine.all())]),
                )
            };
            *built = Some((*version, Arc::new(claims)));
        }
        built.as_ref().map(|(_, c)| c.clone()).unwrap_or_default()
    }
}
