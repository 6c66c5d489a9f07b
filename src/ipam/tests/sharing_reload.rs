//! Sharing rules and config reload semantics.

use super::*;
use crate::ipam::{
    AllocError, Assignment, ConflictReason, Eviction, EvictionReason, PoolMove, PoolSpecError,
    Reload,
};

#[test]
fn services_with_the_same_key_and_disjoint_ports_share_the_lowest_address() {
    let mut alloc = allocator(vec![pool("p", &[("192.0.2.1", "192.0.2.9")])]);
    let dns_udp = shared("dns", &[(Protocol::Udp, 53)]);
    let dns_tcp = shared("dns", &[(Protocol::Tcp, 53)]);
    assert_eq!(
        alloc.allocate(&svc("udp"), &dns_udp).unwrap().ips,
        [ip("192.0.2.1")]
    );
    assert_eq!(
        alloc.allocate(&svc("tcp"), &dns_tcp).unwrap().ips,
        [ip("192.0.2.1")],
        "auto allocation joins the compatible sharer, as MetalLB does"
    );
    assert_eq!(
        alloc.holders(ip("192.0.2.1")),
        [svc("tcp"), svc("udp")],
        "sorted"
    );
    // Same key but an overlapping port: the next free address.
    assert_eq!(
        alloc.allocate(&svc("udp2"), &dns_udp).unwrap().ips,
        [ip("192.0.2.2")]
    );
    // No key: never joins a shared address.
    assert_eq!(
        alloc.allocate(&svc("plain"), &v4()).unwrap().ips,
        [ip("192.0.2.3")]
    );
    // The shared address is freed only when its last holder goes.
    alloc.release(&svc("udp"));
    assert_eq!(alloc.pool_stats()[0].in_use, 3);
    assert_eq!(
        alloc.allocate(&svc("n1"), &v4()).unwrap().ips,
        [ip("192.0.2.4")]
    );
    alloc.release(&svc("tcp"));
    assert_eq!(
        alloc.allocate(&svc("n2"), &v4()).unwrap().ips,
        [ip("192.0.2.1")]
    );
}

#[test]
fn a_shareable_address_wins_only_when_lower_than_the_lowest_free_one() {
    let mut alloc = allocator(vec![pool("p", &[("192.0.2.1", "192.0.2.9")])]);
    alloc.allocate(&svc("plain"), &v4()).unwrap(); // .1
    alloc
        .allocate(&svc("k80"), &shared("k", &[(Protocol::Tcp, 80)]))
        .unwrap(); // .2
    alloc.release(&svc("plain")); // .1 free again, lower than the shareable .2
    assert_eq!(
        alloc
            .allocate(&svc("k443"), &shared("k", &[(Protocol::Tcp, 443)]))
            .unwrap()
            .ips,
        [ip("192.0.2.1")]
    );
}

#[test]
fn requested_shared_address_checks_every_rule() {
    let mut alloc = allocator(vec![pool("p", &[("192.0.2.1", "192.0.2.9")])]);
    let mut web = shared("web", &[(Protocol::Tcp, 80)]);
    web.requested = vec![ip("192.0.2.5")];
    web.traffic = local("web");
    alloc.allocate(&svc("http"), &web).unwrap();

    let conflict =
        |alloc: &mut Allocator, request: &Request| match alloc.allocate(&svc("other"), request) {
            Err(AllocError::Conflict {
                ip: i,
                holder,
                reason,
            }) => {
                assert_eq!((i, holder), (ip("192.0.2.5"), svc("http")));
                reason
            }
            other => panic!("expected a conflict, got {other:?}"),
        };
    let mut same_port = web.clone();
    same_port.ports = vec![Port {
        protocol: Protocol::Tcp,
        port: 80,
    }];
    assert!(matches!(
        conflict(&mut alloc, &same_port),
        ConflictReason::PortOverlap { .. }
    ));
    let mut https = web.clone();
    https.ports[0].port = 443;
    let mut cluster = https.clone();
    cluster.traffic = TrafficPolicy::Cluster;
    assert_eq!(
        conflict(&mut alloc, &cluster),
        ConflictReason::TrafficPolicyMismatch
    );
    let mut other_pods = https.clone();
    other_pods.traffic = local("api");
    assert_eq!(
        conflict(&mut alloc, &other_pods),
        ConflictReason::SelectorMismatch
    );
    let mut other_key = https.clone();
    other_key.sharing_key = Some("api".into());
    assert!(matches!(
        conflict(&mut alloc, &other_key),
        ConflictReason::SharingKeyMismatch { .. }
    ));
    assert_eq!(
        alloc.allocate(&svc("other"), &https).unwrap().ips,
        [ip("192.0.2.5")]
    );
}

#[test]
fn changing_ports_to_overlap_a_sharer_moves_the_service() {
    let mut alloc = allocator(vec![pool("p", &[("192.0.2.1", "192.0.2.9")])]);
    alloc
        .allocate(&svc("a"), &shared("k", &[(Protocol::Tcp, 80)]))
        .unwrap();
    alloc
        .allocate(&svc("b"), &shared("k", &[(Protocol::Tcp, 81)]))
        .unwrap();
    assert_eq!(ips_of(&alloc, "b"), ["192.0.2.1"]);
    // Compatible change: stays.
    alloc
        .allocate(&svc("b"), &shared("k", &[(Protocol::Tcp, 82)]))
        .unwrap();
    assert_eq!(ips_of(&alloc, "b"), ["192.0.2.1"]);
    // Now overlapping a's port: b can no longer share and gets its own address.
    alloc
        .allocate(&svc("b"), &shared("k", &[(Protocol::Tcp, 80)]))
        .unwrap();
    assert_eq!(ips_of(&alloc, "b"), ["192.0.2.2"]);
    assert_eq!(alloc.holders(ip("192.0.2.1")), [svc("a")]);
}

fn reload_world() -> Allocator {
    let mut alloc = allocator(vec![
        pool("blue", &[("192.0.2.1", "192.0.2.9")]),
        pool(
            "green",
            &[
                ("198.51.100.1", "198.51.100.9"),
                ("2001:db8::1", "2001:db8::9"),
            ],
        ),
    ]);
    alloc.allocate(&svc("b1"), &v4()).unwrap(); // blue 192.0.2.1
    alloc.allocate(&svc("b2"), &v4()).unwrap(); // blue 192.0.2.2
    let mut green = dual(true);
    green.pool = Some("green".into());
    alloc.allocate(&svc("g1"), &green).unwrap(); // green .1 + ::1
    alloc
}

#[test]
fn reload_keeps_moves_and_evicts() {
    let mut alloc = reload_world();
    let report = alloc
        .set_pools(vec![
            // blue renamed to navy and shrunk so that 192.0.2.1 leaves every pool.
            pool("navy", &[("192.0.2.2", "192.0.2.9")]),
            pool(
                "green",
                &[
                    ("198.51.100.1", "198.51.100.9"),
                    ("2001:db8::1", "2001:db8::9"),
                ],
            ),
        ])
        .unwrap();
    assert_eq!(
        report,
        Reload {
            kept: vec![svc("g1")],
            moved: vec![PoolMove {
                service: svc("b2"),
                from: "blue".into(),
                to: "navy".into()
            }],
            evicted: vec![Eviction {
                service: svc("b1"),
                previous: Assignment {
                    pool: "blue".into(),
                    ips: vec![ip("192.0.2.1")]
                },
                reason: EvictionReason::LeftAllPools {
                    ip: ip("192.0.2.1")
                }
            }],
        }
    );
    assert_eq!(alloc.assignment(&svc("b2")).unwrap().pool, "navy");
    assert_eq!(alloc.assignment(&svc("b1")), None);
    // The kept addresses stay taken; the evicted service is reallocated to the next free one.
    assert_eq!(
        alloc.allocate(&svc("b1"), &v4()).unwrap().ips,
        [ip("192.0.2.3")]
    );
    assert_eq!(alloc.pool_stats()[0].in_use, 2);
    assert_eq!(alloc.pool_stats()[1].in_use, 2);
}

#[test]
fn reload_evicts_addresses_that_became_buggy_or_split_across_pools() {
    let mut alloc = allocator(vec![pool(
        "p",
        &[("192.0.2.0", "192.0.2.3"), ("2001:db8::1", "2001:db8::2")],
    )]);
    alloc.allocate(&svc("zero"), &v4()).unwrap(); // 192.0.2.0
    alloc.allocate(&svc("both"), &dual(true)).unwrap(); // 192.0.2.1 + 2001:db8::1
    let mut p = pool("p", &[("192.0.2.0", "192.0.2.3")]);
    p.avoid_buggy_ips = true;
    let report = alloc
        .set_pools(vec![p, pool("q", &[("2001:db8::1", "2001:db8::2")])])
        .unwrap();
    assert_eq!(report.kept, Vec::<ServiceKey>::new());
    let reasons: Vec<(ServiceKey, EvictionReason)> = report
        .evicted
        .into_iter()
        .map(|e| (e.service, e.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            (
                svc("both"),
                EvictionReason::SplitAcrossPools {
                    first: ip("192.0.2.1"),
                    first_pool: "p".into(),
                    second: ip("2001:db8::1"),
                    second_pool: "q".into()
                }
            ),
            (
                svc("zero"),
                EvictionReason::NowBuggy {
                    ip: ip("192.0.2.0"),
                    pool: "p".into()
                }
            ),
        ]
    );
    assert_eq!(alloc.pool_stats()[0].in_use, 0);
}

#[test]
fn a_bad_pool_set_changes_nothing() {
    let mut alloc = reload_world();
    let before: Vec<(ServiceKey, Assignment)> = {
        let mut v: Vec<_> = alloc
            .assignments()
            .map(|(k, a)| (k.clone(), a.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let err = alloc
        .set_pools(vec![
            pool("blue", &[("192.0.2.1", "192.0.2.9")]),
            pool("red", &[("192.0.2.9", "192.0.2.20")]),
        ])
        .unwrap_err();
    assert!(matches!(err, PoolSpecError::Overlap { ref pool, .. } if pool == "red"));
    let mut after: Vec<_> = alloc
        .assignments()
        .map(|(k, a)| (k.clone(), a.clone()))
        .collect();
    after.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(before, after);
    assert_eq!(alloc.pool_stats().len(), 2, "old pools still in force");
    assert_eq!(
        alloc.allocate(&svc("n"), &v4()).unwrap().ips,
        [ip("192.0.2.3")]
    );
}
