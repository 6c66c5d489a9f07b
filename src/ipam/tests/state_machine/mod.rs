//! Property test: random sequences of allocate / assign / release / set_pools / restart / namespace
//! relabelling over small pools (with `.0`/`.255` edges, manual pools, renames, splits, pools
//! pinned by namespace, namespace selector, service selector and priority), checked against a
//! brute-force model that walks every address.
//!
//! After every step: no address is held by two services unless the sharing rules allow it, every
//! address is admitted by the pool it is attributed to, and the pool counters match a recount.
//! Fresh automatic allocations must equal the model's "first usable address" walk. A reload must
//! keep exactly the services whose addresses all stay in one pool. And an allocator rebuilt with
//! `assign` from the live one's assignments (a controller restart) must answer every later
//! operation exactly as the never-restarted one does.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::ipam::addr::{Addr, is_buggy};
use crate::ipam::{Assignment, PoolStats, Reload};

mod inputs;

use inputs::*;

/// The sharing rules, restated independently of `sharing.rs`.
fn may_share(a: &Request, b: &Request) -> bool {
    let key = |r: &Request| r.sharing_key.clone().filter(|k| !k.is_empty());
    key(a).is_some()
        && key(a) == key(b)
        && a.ports.iter().all(|p| !b.ports.contains(p))
        && a.traffic == b.traffic
}

/// The model's view of a pool: every address it can hand out, in walk order, per range.
fn usable(spec: &PoolSpec, family: Family) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for &(start, end) in &spec.ranges {
        let (s, e) = (Addr::from_ip(start), Addr::from_ip(end));
        if s.family != family {
            continue;
        }
        for value in s.value..=e.value {
            if !(spec.avoid_buggy_ips && is_buggy(family, value)) {
                out.push(Addr { family, value }.to_ip());
            }
        }
    }
    out
}

struct Model {
    config: Vec<PoolSpec>,
    /// Namespace labels, as told to the allocator.
    namespaces: crate::config::Namespaces,
    /// The request each holding service's current assignment was made (or kept) under.
    requests: BTreeMap<ServiceKey, Request>,
}

impl Model {
    fn first_usable(
        &self,
        live: &Allocator,
        spec: &PoolSpec,
        family: Family,
        req: &Request,
    ) -> Option<IpAddr> {
        usable(spec, family).into_iter().find(|&candidate| {
            live.holders(candidate)
                .iter()
                .all(|h| may_share(req, &self.requests[h]))
        })
    }

    /// The namespaces a pinned pool admits: named ones plus those its selectors match.
    fn resolved(&self, p: &PoolSpec) -> BTreeSet<String> {
        let Some(sa) = &p.allocation else {
            return BTreeSet::new();
        };
        let mut set = sa.namespaces.clone();
        for (ns, labels) in &self.namespaces {
            if sa.namespace_selectors.iter().any(|s| s.matches(labels)) {
                set.insert(ns.clone());
            }
        }
        set
    }

    /// MetalLB's compatibility rule, restated.
    fn compatible(&self, p: &PoolSpec, service: &ServiceKey, req: &Request) -> bool {
        let Some(sa) = &p.allocation else {
            return true;
        };
        let ns = self.resolved(p);
        (ns.is_empty() || ns.contains(service.namespace()))
            && (sa.service_selectors.is_empty()
                || sa.service_selectors.iter().any(|s| s.matches(&req.labels)))
    }

    /// Pools offered to `service` for automatic allocation, in order: pinned by priority (0
    /// last, ties by name), then unpinned auto-assign pools in config order.
    fn offer(&self, service: &ServiceKey, req: &Request) -> (Vec<&PoolSpec>, Vec<&PoolSpec>) {
        let mut pinned: Vec<&PoolSpec> = self
            .config
            .iter()
            .filter(|p| p.auto_assign && self.compatible(p, service, req))
            .filter(|p| {
                p.allocation.as_ref().is_some_and(|sa| {
                    self.resolved(p).contains(service.namespace())
                        || !sa.service_selectors.is_empty()
                        || (sa.namespaces.is_empty() && sa.namespace_selectors.is_empty())
                })
            })
            .collect();
        pinned.sort_by_key(|p| {
            let prio = p.allocation.as_ref().map_or(0, |a| a.priority);
            (prio <= 0, if prio > 0 { prio } else { 0 }, p.name.clone())
        });
        let fallback = self
            .config
            .iter()
            .filter(|p| p.auto_assign && p.allocation.is_none())
            .collect();
        (pinned, fallback)
    }

    /// What a fresh allocation without requested addresses must return.
    fn expect_auto(
        &self,
        live: &Allocator,
        service: &ServiceKey,
        req: &Request,
    ) -> Option<Assignment> {
        match &req.pool {
            Some(name) => {
                let pools: Vec<&PoolSpec> = self
                    .config
                    .iter()
                    .filter(|p| p.name == *name && self.compatible(p, service, req))
                    .collect();
                self.expect_from(live, &pools, req)
            }
            None => {
                let (pinned, fallback) = self.offer(service, req);
                self.expect_from(live, &pinned, req)
                    .or_else(|| self.expect_from(live, &fallback, req))
            }
        }
    }

    fn expect_from(
        &self,
        live: &Allocator,
        pools: &[&PoolSpec],
        req: &Request,
    ) -> Option<Assignment> {
        let primary = req.families.primary();
        let pair = |p: &PoolSpec| {
            Some(vec![
                self.first_usable(live, p, primary, req)?,
                self.first_usable(live, p, primary.other(), req)?,
            ])
        };
        let one = |p: &PoolSpec, f| self.first_usable(live, p, f, req).map(|ip| vec![ip]);
        let found = match req.families {
            FamilyPolicy::Single(f) => pools.iter().find_map(|p| Some((*p, one(p, f)?))),
            FamilyPolicy::RequireDualStack { .. } => {
                pools.iter().find_map(|p| Some((*p, pair(p)?)))
            }
            FamilyPolicy::PreferDualStack { .. } => pools
                .iter()
                .find_map(|p| Some((*p, pair(p)?)))
                .or_else(|| pools.iter().find_map(|p| Some((*p, one(p, primary)?))))
                .or_else(|| {
                    pools
                        .iter()
                        .find_map(|p| Some((*p, one(p, primary.other())?)))
                }),
        };
        found.map(|(p, ips)| Assignment {
            pool: p.name.clone(),
            ips,
        })
    }

    fn admitting_pool(&self, ip: IpAddr) -> Option<&PoolSpec> {
        self.config
            .iter()
            .find(|p| usable(p, Family::of(&ip)).contains(&ip))
    }

    fn check_invariants(&self, live: &Allocator) {
        let all: BTreeMap<ServiceKey, Assignment> = live
            .assignments()
            .map(|(k, a)| (k.clone(), a.clone()))
            .collect();
        assert_eq!(
            all.keys().collect::<BTreeSet<_>>(),
            self.requests.keys().collect::<BTreeSet<_>>()
        );
        let mut by_ip: BTreeMap<IpAddr, Vec<&ServiceKey>> = BTreeMap::new();
        for (service, assignment) in &all {
            for &addr in &assignment.ips {
                let pool = self
                    .admitting_pool(addr)
                    .unwrap_or_else(|| panic!("{addr} of {service} in no pool"));
                assert_eq!(pool.name, assignment.pool, "{addr} of {service}");
                by_ip.entry(addr).or_default().push(service);
            }
        }
        for (addr, holders) in &by_ip {
            let holders_sorted: Vec<ServiceKey> = holders.iter().map(|k| (*k).clone()).collect();
            assert_eq!(live.holders(*addr), holders_sorted.as_slice());
            for (i, a) in holders.iter().enumerate() {
                for b in &holders[i + 1..] {
                    assert!(
                        may_share(&self.requests[*a], &self.requests[*b]),
                        "{addr} held by {a} and {b} which may not share"
                    );
                }
            }
        }
        let stats: Vec<PoolStats> = self
            .config
            .iter()
            .map(|p| PoolStats {
                pool: p.name.clone(),
                total: (usable(p, Family::V4).len() + usable(p, Family::V6).len()) as u128,
                in_use: by_ip
                    .keys()
                    .filter(|ip| self.admitting_pool(**ip).map(|q| &q.name) == Some(&p.name))
                    .count() as u128,
                ipv6_total: usable(p, Family::V6).len() as u128,
                ipv6_in_use: by_ip
                    .keys()
                    .filter(|ip| ip.is_ipv6())
                    .filter(|ip| self.admitting_pool(**ip).map(|q| &q.name) == Some(&p.name))
                    .count() as u128,
            })
            .collect();
        assert_eq!(live.pool_stats(), stats);
    }

    fn check_reload(
        &self,
        before: &BTreeMap<ServiceKey, Assignment>,
        report: &Reload,
        live: &Allocator,
    ) {
        for (service, old) in before {
            let homes: BTreeSet<Option<&str>> = old
                .ips
                .iter()
                .map(|ip| self.admitting_pool(*ip).map(|p| p.name.as_str()))
                .collect();
            let stays = homes.len() == 1 && !homes.contains(&None);
            let now = live.assignment(service);
            let evicted = report
                .evicted
                .iter()
                .any(|e| e.service == *service && e.previous == *old);
            let kept = report.kept.contains(service);
            let moved = report
                .moved
                .iter()
                .any(|m| m.service == *service && m.from == old.pool);
            if stays {
                let now = now.unwrap_or_else(|| panic!("{service} lost {old:?}"));
                assert_eq!(now.ips, old.ips);
                assert_eq!(kept, now.pool == old.pool);
                assert_eq!(moved, now.pool != old.pool);
                assert!(!evicted);
            } else {
                assert_eq!(now, None);
                assert!(
                    evicted && !kept && !moved,
                    "{service} must be reported evicted"
                );
            }
        }
    }
}

fn rebuild(live: &Allocator, model: &Model) -> Allocator {
    let mut fresh = Allocator::new();
    fresh.set_namespaces(model.namespaces.clone());
    fresh.set_pools(model.config.clone()).unwrap();
    let mut all: Vec<(ServiceKey, Assignment)> = live
        .assignments()
        .map(|(k, a)| (k.clone(), a.clone()))
        .collect();
    // The controller re-registers services holding more addresses first.
    all.sort_by(|a, b| b.1.ips.len().cmp(&a.1.ips.len()).then(a.0.cmp(&b.0)));
    for (service, assignment) in all {
        let got = fresh.assign(&service, &model.requests[&service], &assignment.ips);
        assert_eq!(got, Ok(assignment), "re-registering {service}");
    }
    fresh
}

fn run(ops: Vec<Op>) {
    let configs = configs();
    let mut model = Model {
        config: configs[0].clone(),
        namespaces: BTreeMap::new(),
        requests: BTreeMap::new(),
    };
    let mut live = allocator(model.config.clone());
    let mut restarted = live.clone();
    for op in ops {
        match op {
            Op::Allocate(n, req) => {
                let service = service(n);
                let expected = (live.assignment(&service).is_none() && req.requested.is_empty())
                    .then(|| model.expect_auto(&live, &service, &req));
                let got = live.allocate(&service, &req);
                assert_eq!(
                    restarted.allocate(&service, &req),
                    got,
                    "restarted allocator differs"
                );
                if let Some(expected) = expected {
                    assert_eq!(
                        got.as_ref().ok(),
                        expected.as_ref(),
                        "first usable address for {req:?}"
                    );
                }
                if let Ok(a) = &got {
                    let pool = model.config.iter().find(|p| p.name == a.pool).unwrap();
                    assert!(
                        model.compatible(pool, &service, &req),
                        "{service} got {a:?} from a pool not admitting it"
                    );
                    model.requests.insert(service, req);
                }
            }
            Op::Assign(n, req, ips) => {
                let service = service(n);
                let got = live.assign(&service, &req, &ips);
                assert_eq!(restarted.assign(&service, &req, &ips), got);
                if got.is_ok() {
                    model.requests.insert(service, req);
                }
            }
            Op::Release(n) => {
                let service = service(n);
                assert_eq!(live.release(&service), restarted.release(&service));
                model.requests.remove(&service);
            }
            Op::SetPools(i) => {
                let before: BTreeMap<ServiceKey, Assignment> = live
                    .assignments()
                    .map(|(k, a)| (k.clone(), a.clone()))
                    .collect();
                model.config = configs[i].clone();
                let report = live.set_pools(model.config.clone()).unwrap();
                assert_eq!(restarted.set_pools(model.config.clone()).unwrap(), report);
                for eviction in &report.evicted {
                    model.requests.remove(&eviction.service);
                }
                model.check_reload(&before, &report, &live);
            }
            Op::Restart => restarted = rebuild(&live, &model),
            Op::Label(i, prod) => {
                let labels = if prod {
                    BTreeMap::from([("env".to_owned(), "prod".to_owned())])
                } else {
                    BTreeMap::new()
                };
                model
                    .namespaces
                    .insert(NAMESPACES[i].to_owned(), labels.clone());
                live.set_namespace(NAMESPACES[i], labels.clone());
                restarted.set_namespace(NAMESPACES[i], labels);
            }
        }
        model.check_invariants(&live);
        let sorted = |a: &Allocator| -> BTreeMap<ServiceKey, Assignment> {
            a.assignments()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        assert_eq!(sorted(&live), sorted(&restarted));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn allocator_state_machine(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops);
    }
}
