//! MetalLB's `serviceAllocation` rules, one case per row: pinned pools first, by priority (0
//! last, ties by name), fallback only to pools without a `serviceAllocation`, explicit requests
//! bound by `serviceAllocation` but not by auto-assign, namespace selectors re-evaluated.

use std::collections::BTreeMap;

use super::*;
use crate::config::{LabelSelector, Labels};
use crate::ipam::{AllocError, ServiceAllocation};

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn sel(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: labels(pairs),
        match_expressions: Vec::new(),
    }
}

fn one(name: &str, last_octet: u8) -> PoolSpec {
    let a = format!("192.0.2.{last_octet}");
    pool(name, &[(&a, &a)])
}

fn pin(mut p: PoolSpec, f: impl FnOnce(&mut ServiceAllocation)) -> PoolSpec {
    let mut sa = ServiceAllocation::default();
    f(&mut sa);
    p.allocation = Some(sa);
    p
}

fn in_ns(ns: &str, name: &str) -> ServiceKey {
    ServiceKey::new(ns, name)
}

fn labelled(pairs: &[(&str, &str)]) -> Request {
    let mut r = v4();
    r.labels = labels(pairs);
    r
}

fn pool_of(alloc: &mut Allocator, key: &ServiceKey, req: &Request) -> Result<String, AllocError> {
    alloc.allocate(key, req).map(|a| a.pool)
}

#[test]
fn pinned_pool_comes_before_fallback_pools() {
    let mut alloc = allocator(vec![
        one("aaa-fallback", 1),
        pin(one("zzz-team", 2), |sa| {
            sa.namespaces.insert("team".into());
        }),
    ]);
    assert_eq!(
        pool_of(&mut alloc, &in_ns("team", "web"), &v4()).unwrap(),
        "zzz-team"
    );
    // Another namespace is not pinned to it and falls back.
    assert_eq!(
        pool_of(&mut alloc, &in_ns("other", "web"), &v4()).unwrap(),
        "aaa-fallback"
    );
}

#[test]
fn lower_priority_first_and_zero_last_ties_by_name() {
    let everyone = |prio: i32| move |sa: &mut ServiceAllocation| sa.priority = prio;
    let mut alloc = allocator(vec![
        pin(one("a-unset", 1), everyone(0)),
        pin(one("b-ten", 2), everyone(10)),
        pin(one("c-two", 3), everyone(2)),
        pin(one("d-two", 4), everyone(2)),
    ]);
    let order: Vec<String> = (0..4)
        .map(|i| pool_of(&mut alloc, &svc(&format!("s{i}")), &v4()).unwrap())
        .collect();
    assert_eq!(order, ["c-two", "d-two", "b-ten", "a-unset"]);
}

#[test]
fn pools_with_service_allocation_are_never_a_fallback() {
    let mut alloc = allocator(vec![
        pin(one("gold", 1), |sa| {
            sa.service_selectors.push(sel(&[("tier", "gold")]))
        }),
        one("plain", 2),
    ]);
    let silver = labelled(&[("tier", "silver")]);
    assert_eq!(pool_of(&mut alloc, &svc("a"), &silver).unwrap(), "plain");
    // plain is full; gold still has an address but is not for silver services.
    assert_eq!(
        alloc.allocate(&svc("b"), &silver),
        Err(AllocError::NoFreeAddress {
            policy: FamilyPolicy::Single(Family::V4)
        })
    );
    let gold = labelled(&[("tier", "gold")]);
    assert_eq!(pool_of(&mut alloc, &svc("c"), &gold).unwrap(), "gold");
}

#[test]
fn exhausted_pinned_pools_fall_back_to_unpinned_ones() {
    let mut alloc = allocator(vec![
        pin(one("team", 1), |sa| {
            sa.namespaces.insert("team".into());
        }),
        one("shared", 2),
    ]);
    assert_eq!(
        pool_of(&mut alloc, &in_ns("team", "a"), &v4()).unwrap(),
        "team"
    );
    assert_eq!(
        pool_of(&mut alloc, &in_ns("team", "b"), &v4()).unwrap(),
        "shared"
    );
}

#[test]
fn auto_assign_off_keeps_a_pinned_pool_out_of_automatic_allocation() {
    let mut alloc = allocator(vec![
        manual(pin(one("team", 1), |sa| {
            sa.namespaces.insert("team".into());
        })),
        one("shared", 2),
    ]);
    assert_eq!(
        pool_of(&mut alloc, &in_ns("team", "a"), &v4()).unwrap(),
        "shared"
    );
    // The annotation ignores auto-assign.
    let mut ask = v4();
    ask.pool = Some("team".into());
    assert_eq!(
        pool_of(&mut alloc, &in_ns("team", "b"), &ask).unwrap(),
        "team"
    );
}

#[test]
fn annotation_and_requested_ips_still_obey_service_allocation() {
    let mut alloc = allocator(vec![
        pin(one("team", 1), |sa| {
            sa.namespaces.insert("team".into());
        }),
        one("shared", 2),
    ]);
    let mut ask = v4();
    ask.pool = Some("team".into());
    let refused = alloc.allocate(&in_ns("other", "a"), &ask).unwrap_err();
    assert_eq!(
        refused,
        AllocError::PoolNotAllowed {
            pool: "team".into(),
            admits: "namespaces team".into()
        }
    );
    assert!(refused.to_string().contains("serviceAllocation"));
    let refused = alloc
        .allocate(&in_ns("other", "b"), &requesting(&["192.0.2.1"]))
        .unwrap_err();
    assert!(matches!(refused, AllocError::PoolNotAllowed { ref pool, .. } if pool == "team"));
    assert_eq!(
        alloc
            .allocate(&in_ns("team", "c"), &requesting(&["192.0.2.1"]))
            .unwrap()
            .pool,
        "team"
    );
}

#[test]
fn namespaces_and_service_selectors_must_both_hold() {
    let mut alloc = allocator(vec![
        pin(one("both", 1), |sa| {
            sa.namespaces.insert("team".into());
            sa.service_selectors.push(sel(&[("tier", "gold")]));
        }),
        one("shared", 2),
    ]);
    let gold = labelled(&[("tier", "gold")]);
    assert_eq!(
        pool_of(&mut alloc, &in_ns("other", "a"), &gold).unwrap(),
        "shared"
    );
    assert_eq!(
        pool_of(&mut alloc, &in_ns("team", "b"), &gold).unwrap(),
        "both"
    );
}

#[test]
fn namespace_selectors_follow_namespace_labels() {
    let mut alloc = allocator(vec![
        pin(one("prod", 1), |sa| {
            sa.namespace_selectors.push(sel(&[("env", "prod")]))
        }),
        one("shared", 2),
    ]);
    alloc.set_namespaces(BTreeMap::from([
        ("shop".to_owned(), labels(&[("env", "prod")])),
        ("billing".to_owned(), labels(&[("env", "prod")])),
    ]));
    let web = in_ns("shop", "web");
    assert_eq!(pool_of(&mut alloc, &web, &v4()).unwrap(), "prod");
    // The label goes: the pool no longer admits the Service, so its next allocate moves it.
    alloc.set_namespace("shop", Labels::new());
    assert_eq!(pool_of(&mut alloc, &web, &v4()).unwrap(), "shared");
    // It comes back; the held address still fits (shared has no serviceAllocation).
    alloc.set_namespace("shop", labels(&[("env", "prod")]));
    assert_eq!(pool_of(&mut alloc, &web, &v4()).unwrap(), "shared");
    // A restart rebuild keeps the namespace labels across set_pools.
    alloc
        .set_pools(vec![
            pin(one("prod", 1), |sa| {
                sa.namespace_selectors.push(sel(&[("env", "prod")]))
            }),
            one("shared", 2),
        ])
        .unwrap();
    assert_eq!(
        pool_of(&mut alloc, &in_ns("shop", "api"), &v4()).unwrap(),
        "prod"
    );
}

#[test]
fn empty_service_allocation_pins_every_service() {
    let mut alloc = allocator(vec![one("aaa", 1), pin(one("zzz", 2), |_| {})]);
    assert_eq!(pool_of(&mut alloc, &in_ns("x", "a"), &v4()).unwrap(), "zzz");
    assert_eq!(pool_of(&mut alloc, &in_ns("y", "b"), &v4()).unwrap(), "aaa");
}

#[test]
fn selector_matching_no_namespace_pins_nobody_but_admits_requests() {
    // MetalLB: the resolved namespace set is empty, so nothing restricts the pool, but no
    // Service is pinned to it and it is not a fallback either.
    let mut alloc = allocator(vec![pin(one("lonely", 1), |sa| {
        sa.namespace_selectors.push(sel(&[("env", "nowhere")]))
    })]);
    assert!(matches!(
        alloc.allocate(&svc("a"), &v4()),
        Err(AllocError::NoFreeAddress { .. })
    ));
    let mut ask = v4();
    ask.pool = Some("lonely".into());
    assert_eq!(pool_of(&mut alloc, &svc("a"), &ask).unwrap(), "lonely");
}

#[test]
fn pinned_dual_stack_prefers_a_pinned_pool_with_both_families() {
    let both = pin(
        pool(
            "both",
            &[("192.0.2.1", "192.0.2.1"), ("2001:db8::1", "2001:db8::1")],
        ),
        |sa| sa.priority = 5,
    );
    let v4_only = pin(one("v4only", 9), |sa| sa.priority = 1);
    let mut alloc = allocator(vec![v4_only, both]);
    let got = alloc.allocate(&svc("a"), &dual(false)).unwrap();
    assert_eq!(got.pool, "both");
    assert_eq!(got.ips.len(), 2);
}
