//! One test per allocation rule: order, requested IPs, pool choice, families, buggy IPs, stats.

use super::*;
use crate::ipam::{AllocError, Assignment, PoolStats};

#[test]
fn lowest_free_address_of_the_first_auto_assign_pool() {
    let mut alloc = allocator(vec![
        manual(pool("manual", &[("192.0.2.0", "192.0.2.255")])),
        pool("first", &[("198.51.100.10", "198.51.100.11")]),
        pool("second", &[("203.0.113.0", "203.0.113.255")]),
    ]);
    let got = alloc.allocate(&svc("a"), &v4()).unwrap();
    assert_eq!(
        got,
        Assignment {
            pool: "first".into(),
            ips: vec![ip("198.51.100.10")]
        }
    );
    assert_eq!(
        alloc.allocate(&svc("b"), &v4()).unwrap().ips,
        [ip("198.51.100.11")]
    );
    // First pool full: the next pool in config order, never the auto-assign: false one.
    assert_eq!(
        alloc.allocate(&svc("c"), &v4()).unwrap(),
        Assignment {
            pool: "second".into(),
            ips: vec![ip("203.0.113.0")]
        }
    );
    // A released address is the lowest free again.
    alloc.release(&svc("a"));
    assert_eq!(
        alloc.allocate(&svc("d"), &v4()).unwrap().ips,
        [ip("198.51.100.10")]
    );
}

#[test]
fn ranges_are_walked_in_config_order() {
    // MetalLB walks a pool's CIDRs in the order the config lists them, not numerically.
    let mut alloc = allocator(vec![pool(
        "p",
        &[
            ("198.51.100.7", "198.51.100.7"),
            ("198.51.100.1", "198.51.100.3"),
        ],
    )]);
    let order: Vec<String> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| alloc.allocate(&svc(n), &v4()).unwrap().ips[0].to_string())
        .collect();
    assert_eq!(
        order,
        [
            "198.51.100.7",
            "198.51.100.1",
            "198.51.100.2",
            "198.51.100.3"
        ]
    );
    assert_eq!(
        alloc.allocate(&svc("e"), &v4()),
        Err(AllocError::NoFreeAddress {
            policy: FamilyPolicy::Single(Family::V4)
        })
    );
}

#[test]
fn requested_ip_comes_from_any_pool_including_manual_ones() {
    let mut alloc = allocator(vec![
        pool("auto", &[("192.0.2.0", "192.0.2.255")]),
        manual(pool("reserved", &[("198.51.100.0", "198.51.100.255")])),
    ]);
    assert_eq!(
        alloc
            .allocate(&svc("a"), &requesting(&["198.51.100.42"]))
            .unwrap(),
        Assignment {
            pool: "reserved".into(),
            ips: vec![ip("198.51.100.42")]
        }
    );
    assert_eq!(
        alloc.allocate(&svc("b"), &requesting(&["203.0.113.1"])),
        Err(AllocError::NotInAnyPool {
            ip: ip("203.0.113.1")
        })
    );
    // Taken by a service that does not share: the error names the holder.
    let err = alloc
        .allocate(&svc("c"), &requesting(&["198.51.100.42"]))
        .unwrap_err();
    assert!(
        matches!(&err, AllocError::Conflict { ip: i, holder, .. }
            if *i == ip("198.51.100.42") && *holder == svc("a")),
        "{err}"
    );
    assert!(err.to_string().contains("default/a"), "{err}");
    // A requested address outside the requested pool.
    let mut both = requesting(&["198.51.100.43"]);
    both.pool = Some("auto".into());
    assert_eq!(
        alloc.allocate(&svc("d"), &both),
        Err(AllocError::NotInRequestedPool {
            ip: ip("198.51.100.43"),
            requested: "auto".into(),
            actual: "reserved".into()
        })
    );
}

#[test]
fn pool_annotation_uses_only_that_pool() {
    let mut alloc = allocator(vec![
        pool("auto", &[("192.0.2.0", "192.0.2.255")]),
        manual(pool("gold", &[("198.51.100.5", "198.51.100.5")])),
    ]);
    let mut gold = v4();
    gold.pool = Some("gold".into());
    assert_eq!(
        alloc.allocate(&svc("a"), &gold).unwrap().ips,
        [ip("198.51.100.5")]
    );
    assert_eq!(
        alloc.allocate(&svc("b"), &gold),
        Err(AllocError::PoolExhausted {
            pool: "gold".into(),
            family: Family::V4
        }),
        "never falls back to another pool"
    );
    let mut gold6 = v6();
    gold6.pool = Some("gold".into());
    assert_eq!(
        alloc.allocate(&svc("c"), &gold6),
        Err(AllocError::PoolLacksFamily {
            pool: "gold".into(),
            family: Family::V6
        })
    );
    let mut missing = v4();
    missing.pool = Some("silver".into());
    assert_eq!(
        alloc.allocate(&svc("d"), &missing),
        Err(AllocError::UnknownPool {
            pool: "silver".into()
        })
    );
}

#[test]
fn avoid_buggy_ips_never_hands_out_dot_zero_or_dot_255() {
    let mut spec = pool(
        "p",
        &[
            ("192.0.2.254", "192.0.3.1"),
            ("2001:db8::ff", "2001:db8::100"),
        ],
    );
    spec.avoid_buggy_ips = true;
    let mut alloc = allocator(vec![spec]);
    assert_eq!(
        alloc.allocate(&svc("a"), &v4()).unwrap().ips,
        [ip("192.0.2.254")]
    );
    assert_eq!(
        alloc.allocate(&svc("b"), &v4()).unwrap().ips,
        [ip("192.0.3.1")],
        "192.0.2.255 and 192.0.3.0 skipped"
    );
    assert!(alloc.allocate(&svc("d"), &v4()).is_err());
    assert_eq!(
        alloc.allocate(&svc("e"), &requesting(&["192.0.3.0"])),
        Err(AllocError::BuggyIp {
            ip: ip("192.0.3.0"),
            pool: "p".into()
        })
    );
    // IPv6 addresses ending in ff/00 are fine.
    assert_eq!(
        alloc.allocate(&svc("f"), &v6()).unwrap().ips,
        [ip("2001:db8::ff")]
    );
    // Totals honour the rule: 192.0.2.254, 192.0.3.1 and the two IPv6 addresses.
    assert_eq!(alloc.pool_stats()[0].total, 4);
}

#[test]
fn require_dual_stack_takes_both_families_from_one_pool() {
    let mut alloc = allocator(vec![
        pool("v4only", &[("192.0.2.1", "192.0.2.9")]),
        pool(
            "dual",
            &[
                ("2001:db8::1", "2001:db8::9"),
                ("198.51.100.1", "198.51.100.9"),
            ],
        ),
    ]);
    assert_eq!(
        alloc.allocate(&svc("a"), &dual(true)).unwrap(),
        Assignment {
            pool: "dual".into(),
            ips: vec![ip("198.51.100.1"), ip("2001:db8::1")]
        },
        "skips the IPv4-only pool; primary family first"
    );
    let mut v6_first = dual(true);
    v6_first.families = FamilyPolicy::RequireDualStack {
        primary: Family::V6,
    };
    assert_eq!(
        alloc.allocate(&svc("b"), &v6_first).unwrap().ips,
        [ip("2001:db8::2"), ip("198.51.100.2")]
    );
    let mut in_v4only = dual(true);
    in_v4only.pool = Some("v4only".into());
    assert_eq!(
        alloc.allocate(&svc("c"), &in_v4only),
        Err(AllocError::PoolLacksFamily {
            pool: "v4only".into(),
            family: Family::V6
        })
    );
    // Requested addresses must be one of each family, from one pool.
    assert_eq!(
        alloc.allocate(&svc("d"), &{
            let mut r = dual(true);
            r.requested = vec![ip("198.51.100.5")];
            r
        }),
        Err(AllocError::MissingFamily {
            missing: Family::V6
        })
    );
    assert_eq!(
        alloc.allocate(&svc("e"), &{
            let mut r = dual(true);
            r.requested = vec![ip("2001:db8::5"), ip("192.0.2.5")];
            r
        }),
        Err(AllocError::DifferentPools {
            first: ip("192.0.2.5"),
            first_pool: "v4only".into(),
            second: ip("2001:db8::5"),
            second_pool: "dual".into()
        })
    );
}

#[test]
fn prefer_dual_stack_takes_both_when_a_pool_has_both() {
    let mut alloc = allocator(vec![
        pool("v4only", &[("192.0.2.1", "192.0.2.1")]),
        pool(
            "dual",
            &[
                ("198.51.100.1", "198.51.100.1"),
                ("2001:db8::1", "2001:db8::2"),
            ],
        ),
    ]);
    assert_eq!(
        alloc.allocate(&svc("a"), &dual(false)).unwrap(),
        Assignment {
            pool: "dual".into(),
            ips: vec![ip("198.51.100.1"), ip("2001:db8::1")]
        }
    );
    // No pool has both any more: the primary family alone, from the first pool with it.
    assert_eq!(
        alloc.allocate(&svc("b"), &dual(false)).unwrap(),
        Assignment {
            pool: "v4only".into(),
            ips: vec![ip("192.0.2.1")]
        }
    );
    // No IPv4 left at all: the secondary family.
    assert_eq!(
        alloc.allocate(&svc("c"), &dual(false)).unwrap().ips,
        [ip("2001:db8::2")]
    );
    assert_eq!(
        alloc.allocate(&svc("d"), &dual(false)),
        Err(AllocError::NoFreeAddress {
            policy: FamilyPolicy::PreferDualStack {
                primary: Family::V4
            }
        })
    );
    // The single-family result is kept on the next reconcile (stable addresses).
    assert_eq!(ips_of(&alloc, "b"), ["192.0.2.1"]);
    assert_eq!(
        alloc.allocate(&svc("b"), &dual(false)).unwrap().ips,
        [ip("192.0.2.1")]
    );
}

#[test]
fn requested_families_must_match_the_policy() {
    let mut alloc = allocator(vec![pool(
        "p",
        &[("192.0.2.0", "192.0.2.255"), ("2001:db8::", "2001:db8::ff")],
    )]);
    assert_eq!(
        alloc.allocate(&svc("a"), &requesting(&["2001:db8::1"])),
        Err(AllocError::FamilyNotAllowed {
            ip: ip("2001:db8::1"),
            family: Family::V6,
            policy: FamilyPolicy::Single(Family::V4)
        })
    );
    assert_eq!(
        alloc.allocate(&svc("a"), &requesting(&["192.0.2.1", "192.0.2.2"])),
        Err(AllocError::DuplicateFamily {
            family: Family::V4,
            first: ip("192.0.2.1"),
            second: ip("192.0.2.2")
        })
    );
    let mut both = dual(false);
    both.requested = vec![ip("2001:db8::7"), ip("192.0.2.7")];
    assert_eq!(
        alloc.allocate(&svc("a"), &both).unwrap().ips,
        [ip("192.0.2.7"), ip("2001:db8::7")]
    );
    assert!(
        alloc.assignments().all(|(k, _)| *k == svc("a")),
        "failures hold nothing"
    );
}

#[test]
fn allocate_keeps_a_valid_assignment_and_replaces_an_invalid_one() {
    let mut alloc = allocator(vec![
        pool("a", &[("192.0.2.1", "192.0.2.9")]),
        manual(pool("b", &[("198.51.100.1", "198.51.100.9")])),
    ]);
    let first = alloc.allocate(&svc("x"), &v4()).unwrap();
    alloc.allocate(&svc("y"), &v4()).unwrap();
    alloc.release(&svc("x"));
    alloc.allocate(&svc("x"), &v4()).unwrap();
    // Idempotent: the same request keeps the same address even though lower ones appear.
    alloc.release(&svc("y"));
    let again = alloc.allocate(&svc("x"), &v4()).unwrap();
    assert_eq!(again, first);
    // The request now names another pool: the service moves there.
    let mut to_b = v4();
    to_b.pool = Some("b".into());
    assert_eq!(
        alloc.allocate(&svc("x"), &to_b).unwrap().ips,
        [ip("198.51.100.1")]
    );
    assert_eq!(alloc.pool_stats()[0].in_use, 0, "the old address was freed");
    // A requested address that cannot be had: error, and the old assignment stays.
    alloc
        .allocate(&svc("z"), &requesting(&["192.0.2.5"]))
        .unwrap();
    let err = alloc
        .allocate(&svc("x"), &requesting(&["192.0.2.5"]))
        .unwrap_err();
    assert!(matches!(err, AllocError::Conflict { ref holder, .. } if *holder == svc("z")));
    assert_eq!(ips_of(&alloc, "x"), ["198.51.100.1"]);
    // Requesting exactly what it holds is kept.
    assert_eq!(
        alloc
            .allocate(&svc("x"), &requesting(&["198.51.100.1"]))
            .unwrap()
            .ips,
        [ip("198.51.100.1")]
    );
}

#[test]
fn assign_rebuilds_state_and_refuses_double_assignment() {
    let mut alloc = allocator(vec![
        pool("a", &[("192.0.2.1", "192.0.2.9")]),
        manual(pool("b", &[("198.51.100.1", "198.51.100.9")])),
    ]);
    assert_eq!(
        alloc.assign(&svc("x"), &v4(), &[ip("192.0.2.3")]).unwrap(),
        Assignment {
            pool: "a".into(),
            ips: vec![ip("192.0.2.3")]
        }
    );
    let err = alloc
        .assign(&svc("y"), &v4(), &[ip("192.0.2.3")])
        .unwrap_err();
    assert!(
        matches!(&err, AllocError::Conflict { holder, .. } if *holder == svc("x")),
        "{err}"
    );
    assert!(
        err.to_string().contains("default/x"),
        "names the holder: {err}"
    );
    assert_eq!(
        alloc.assign(&svc("y"), &v4(), &[]),
        Err(AllocError::NoAddresses)
    );
    assert_eq!(
        alloc.assign(&svc("y"), &v4(), &[ip("203.0.113.1")]),
        Err(AllocError::NotInAnyPool {
            ip: ip("203.0.113.1")
        })
    );
    // Re-registered addresses are not handed out again.
    assert_eq!(
        alloc.allocate(&svc("z"), &v4()).unwrap().ips,
        [ip("192.0.2.1")]
    );
    // A status address from a non-auto pool is re-registered even without a request for it;
    // the next allocate decides whether it still fits (here it does: no pool/IP requested).
    alloc
        .assign(&svc("m"), &v4(), &[ip("198.51.100.4")])
        .unwrap();
    assert_eq!(
        alloc.allocate(&svc("m"), &v4()).unwrap().ips,
        [ip("198.51.100.4")]
    );
    // Re-assigning a service replaces what it held.
    alloc.assign(&svc("x"), &v4(), &[ip("192.0.2.9")]).unwrap();
    assert_eq!(alloc.holders(ip("192.0.2.3")), &[] as &[ServiceKey]);
    assert_eq!(
        alloc.allocate(&svc("w"), &v4()).unwrap().ips,
        [ip("192.0.2.2")]
    );
}

#[test]
fn pool_stats_count_usable_and_distinct_in_use_addresses() {
    let mut big = pool("big", &[("10.0.0.0", "10.255.255.255")]);
    big.avoid_buggy_ips = true;
    let mut alloc = allocator(vec![
        big,
        pool("v6", &[("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff")]),
    ]);
    alloc
        .allocate(&svc("a"), &shared("k", &[(Protocol::Tcp, 80)]))
        .unwrap();
    alloc
        .allocate(&svc("b"), &shared("k", &[(Protocol::Tcp, 443)]))
        .unwrap();
    alloc.allocate(&svc("c"), &v6()).unwrap();
    assert_eq!(
        alloc.pool_stats(),
        [
            PoolStats {
                pool: "big".into(),
                total: (1 << 24) - 2 * (1 << 16),
                in_use: 1,
                total_v6: 0,
                in_use_v6: 0,
            },
            PoolStats {
                pool: "v6".into(),
                total: 1 << 64,
                in_use: 1,
                total_v6: 1 << 64,
                in_use_v6: 1,
            }
        ]
    );
}

#[test]
fn huge_pools_stay_a_handful_of_intervals() {
    let mut alloc = allocator(vec![
        pool("v4", &[("10.0.0.0", "10.255.255.255")]),
        pool("v6", &[("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff")]),
    ]);
    for n in 0..2000 {
        alloc.allocate(&svc(&format!("s{n}")), &v4()).unwrap();
        alloc.allocate(&svc(&format!("t{n}")), &v6()).unwrap();
    }
    assert_eq!(ips_of(&alloc, "s1999"), ["10.0.7.207"]);
    assert_eq!(ips_of(&alloc, "t1999"), ["2001:db8::7cf"]);
    for p in &alloc.pools.pools {
        assert_eq!(
            p.ranges[0].free.interval_count(),
            1,
            "sequential use leaves one interval"
        );
    }
    alloc.release(&svc("s7"));
    assert_eq!(alloc.pools.pools[0].ranges[0].free.interval_count(), 2);
    assert_eq!(
        alloc.allocate(&svc("again"), &v4()).unwrap().ips,
        [ip("10.0.0.7")]
    );
}
