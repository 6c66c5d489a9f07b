//! Addresses shown by Services ferrolb does not serve.
//!
//! A Service of another load-balancer class, a classless one while ferrolb runs with
//! `--lb-class`, or one that is not a LoadBalancer at all can show one of our pools' addresses in
//! its status: assigned before the flag was set, or by another implementation. Handing that
//! address to one of ours would put two Services on one address, and the node answering it
//! would serve only one of them. So every such address is held in the allocator as in use, under
//! an exclusive reservation, and a Warning on the pool names the foreign holder.
//!
//! The holds are made before anyone of ours is placed: at the startup rebuild (after ours are
//! re-registered, so an address both show stays with ours), on every config load (new pools may
//! contain them), and on each foreign Service's own reconcile. An address one of ours already
//! holds cannot be held too: the Warning says both names, and the hold is taken as soon as ours
//! lets go of the address.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use super::{Core, reservation, show_ips};
use crate::controller::cached::CachedService;
use crate::controller::decision::{PlannedEvent, PoolEvent, Reason};
use crate::ipam::{AllocError, Assignment, Family, ServiceKey};

/// What one foreign Service shows and how it is held.
#[derive(Debug, Clone, Default)]
pub(super) struct ForeignHolder {
    /// Its status addresses.
    shown: Vec<IpAddr>,
    /// Why it is not ours, for the messages.
    why: String,
    /// The allocator keys holding its addresses: the Service's own key for the first group, a
    /// key no Service can have (`#` is not allowed in names) for each further one.
    holds: Vec<ServiceKey>,
    /// What the pools should say about it now, and what they were last told.
    notes: Vec<PoolEvent>,
    reported: Vec<PoolEvent>,
}

/// Why `svc` is not ours, in words.
fn why_not_ours(svc: &CachedService, lb_class: Option<&str>) -> String {
    if !svc.is_load_balancer() {
        return "not of type LoadBalancer".to_owned();
    }
    match (svc.class(), lb_class.filter(|c| !c.is_empty())) {
        (Some(class), _) => format!("load-balancer class {class:?}"),
        (None, Some(ours)) => format!("no load-balancer class, while ferrolb serves {ours:?}"),
        (None, None) => "not ours".to_owned(),
    }
}

/// Splits `ips` into groups the allocator can hold under one key: one pool each, at most one
/// address per family. Addresses outside every pool are left out (nobody hands them out).
fn groups(core: &Core, ips: &[IpAddr]) -> Vec<(String, Vec<IpAddr>)> {
    let mut out: Vec<(String, Vec<IpAddr>)> = Vec::new();
    for &ip in ips {
        let Some(pool) = core.allocator.pool_containing(ip) else {
            continue;
        };
        let fits = out.iter_mut().find(|(p, group)| {
            p == pool && !group.iter().any(|g| Family::of(g) == Family::of(&ip))
        });
        match fits {
            Some((_, group)) => group.push(ip),
            None => out.push((pool.to_owned(), vec![ip])),
        }
    }
    out
}

impl Core {
    /// Whether `svc` is a Service whose status we must respect but never write: not ours, and
    /// not one we served before it stopped being a LoadBalancer (that one is cleared).
    pub(super) fn is_foreign(&self, key: &ServiceKey, svc: &CachedService) -> bool {
        if svc.is_handled(self.lb_class.as_deref()) {
            return false;
        }
        if svc.is_load_balancer() {
            return true;
        }
        let served = self.allocator.assignment(key).is_some() && !self.foreign.contains_key(key);
        !served && svc.allocated_pool().is_none()
    }

    /// A Service the watch delivered: if it is not ours, what it shows is held at once, so a
    /// Service of ours decided before it (reconciles run in no fixed order) cannot take it.
    /// Its Warnings are reported by its own reconcile.
    pub fn observe(&mut self, svc: &CachedService) {
        let key = svc.key();
        if self.is_foreign(&key, svc) {
            self.update_foreign(&key, svc);
        }
    }

    /// Holds what a foreign Service shows (see the module documentation), and returns the pool
    /// Warnings not reported yet.
    pub(super) fn decide_foreign(
        &mut self,
        key: &ServiceKey,
        svc: &CachedService,
    ) -> Vec<PoolEvent> {
        self.evicted.remove(key);
        self.failed.remove(key);
        self.update_foreign(key, svc);
        let Some(holder) = self.foreign.get_mut(key) else {
            return Vec::new();
        };
        if holder.notes == holder.reported {
            return Vec::new();
        }
        holder.reported = holder.notes.clone();
        holder.notes.clone()
    }

    /// Records what foreign `svc` shows and holds it, unless that is what is held already.
    pub(super) fn update_foreign(&mut self, key: &ServiceKey, svc: &CachedService) {
        let shown = svc.status_ips();
        let why = why_not_ours(svc, self.lb_class.as_deref());
        let unchanged = self
            .foreign
            .get(key)
            .is_some_and(|f| f.shown == shown && f.why == why);
        if unchanged {
            return;
        }
        self.drop_foreign(key);
        if shown.is_empty() {
            return;
        }
        self.foreign.insert(
            key.clone(),
            ForeignHolder {
                shown: shown.to_vec(),
                why,
                ..ForeignHolder::default()
            },
        );
        self.hold_foreign(key);
    }

    /// Takes the allocator holds for `key`'s addresses, replacing any it had.
    fn hold_foreign(&mut self, key: &ServiceKey) {
        let Some(mut holder) = self.foreign.remove(key) else {
            return;
        };
        for hold in holder.holds.drain(..) {
            self.allocator.release(&hold);
            self.foreign_holds.remove(&hold);
        }
        holder.notes.clear();
        let mut blocked = false;
        for (i, (pool, ips)) in groups(self, &holder.shown).into_iter().enumerate() {
            let hold = if i == 0 {
                key.clone()
            } else {
                ServiceKey::from(format!("{key}#{i}"))
            };
            let message = match self.allocator.assign(&hold, &reservation(&ips), &ips) {
                Ok(_) => {
                    holder.holds.push(hold.clone());
                    self.foreign_holds.insert(hold, key.clone());
                    format!(
                        "{} in pool {pool:?} is shown in the status of Service {key}, which \
                         ferrolb does not serve ({}): held as in use and never handed out",
                        show_ips(&ips),
                        holder.why
                    )
                }
                Err(AllocError::Conflict {
                    ip, holder: ours, ..
                }) if !self.foreign_holds.contains_key(&ours) => {
                    blocked = true;
                    format!(
                        "{ip} in pool {pool:?} is shown in the status of Service {key}, which \
                         ferrolb does not serve ({}), and is held by Service {ours}, which it \
                         serves: two Services show one address; give one of them another",
                        holder.why
                    )
                }
                // Held by another foreign Service already, or an address no pool hands out.
                Err(_) => continue,
            };
            holder.notes.push(PoolEvent {
                pool,
                event: PlannedEvent::new(Reason::AddressHeldElsewhere, message),
            });
        }
        if blocked {
            self.foreign_blocked.insert(key.clone());
        } else {
            self.foreign_blocked.remove(key);
        }
        self.foreign.insert(key.clone(), holder);
    }

    /// Forgets `key` as a foreign Service, freeing what was held for it. Returns the first
    /// hold's assignment.
    pub(super) fn drop_foreign(&mut self, key: &ServiceKey) -> Option<Assignment> {
        let holder = self.foreign.remove(key)?;
        self.foreign_blocked.remove(key);
        let mut first = None;
        for hold in &holder.holds {
            self.foreign_holds.remove(hold);
            let released = self.allocator.release(hold);
            first = first.or(released);
        }
        first
    }

    /// Takes again the holds of every foreign Service (pools changed), or only of those one
    /// of ours blocked (`blocked_only`: an address of ours may have been freed).
    pub(super) fn rehold_foreign(&mut self, blocked_only: bool) {
        let keys: BTreeSet<ServiceKey> = if blocked_only {
            self.foreign_blocked.clone()
        } else {
            self.foreign.keys().cloned().collect()
        };
        for key in keys {
            self.hold_foreign(&key);
        }
    }

    /// Whether `key` is an allocator key holding a foreign Service's addresses.
    pub(super) fn is_foreign_hold(&self, key: &ServiceKey) -> bool {
        self.foreign_holds.contains_key(key)
    }

    /// The foreign Services with addresses of ours in their status.
    pub(super) fn foreign_services(&self) -> impl Iterator<Item = &ServiceKey> {
        self.foreign.keys()
    }

    /// An allocation error, with a foreign holder or a node's address named as such.
    pub(super) fn describe(&self, error: &AllocError) -> String {
        let AllocError::Conflict { ip, holder, .. } = error else {
            return error.to_string();
        };
        if let Some(node) = self.node_hold(holder) {
            return format!(
                "{ip} is the {} of node {}: a node's own address is never handed out",
                node.kind, node.node
            );
        }
        let Some(owner) = self.foreign_holds.get(holder) else {
            return error.to_string();
        };
        let mut s = format!("{ip} is shown in the status of Service {owner}");
        if let Some(f) = self.foreign.get(owner) {
            let _ = write!(s, ", which ferrolb does not serve ({})", f.why);
        }
        s.push_str(", so it is never handed out");
        s
    }
}

#[cfg(test)]
#[path = "foreign_tests.rs"]
mod tests;
