//! The state machine's inputs: the services and namespaces, the pool configs it switches
//! between, and the generated operations and requests.

use std::collections::BTreeMap;
use std::net::IpAddr;

use proptest::prelude::*;

use super::super::*;

pub(super) const SERVICES: usize = 6;
pub(super) const NAMESPACES: [&str; 3] = ["blue", "red", "default"];

/// Service `n` lives in a namespace of its own choosing, so pinning by namespace matters.
pub(super) fn service(n: usize) -> ServiceKey {
    ServiceKey::new(NAMESPACES[n % NAMESPACES.len()], &format!("s{n}"))
}

pub(super) fn selector(key: &str, value: &str) -> crate::config::LabelSelector {
    crate::config::LabelSelector {
        match_labels: BTreeMap::from([(key.to_owned(), value.to_owned())]),
        match_expressions: Vec::new(),
    }
}

pub(super) fn pinned(
    mut p: PoolSpec,
    priority: i32,
    namespaces: &[&str],
    ns_sel: bool,
    svc_sel: bool,
) -> PoolSpec {
    p.allocation = Some(crate::ipam::ServiceAllocation {
        priority,
        namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
        namespace_selectors: if ns_sel {
            vec![selector("env", "prod")]
        } else {
            vec![]
        },
        service_selectors: if svc_sel {
            vec![selector("tier", "gold")]
        } else {
            vec![]
        },
    });
    p
}

pub(super) fn configs() -> Vec<Vec<PoolSpec>> {
    let avoid = |mut p: PoolSpec| {
        p.avoid_buggy_ips = true;
        p
    };
    let a = || {
        pool(
            "a",
            &[("10.0.0.253", "10.0.1.1"), ("2001:db8::1", "2001:db8::3")],
        )
    };
    let b = || manual(pool("b", &[("10.0.2.0", "10.0.2.2")]));
    let c = || {
        avoid(pool(
            "c",
            &[
                ("10.0.3.254", "10.0.4.1"),
                ("2001:db8:1::1", "2001:db8:1::2"),
            ],
        ))
    };
    vec![
        vec![a(), b(), c()],
        // a renamed to a2; c stops avoiding buggy IPs.
        vec![
            pool(
                "a2",
                &[("10.0.0.253", "10.0.1.1"), ("2001:db8::1", "2001:db8::3")],
            ),
            b(),
            pool(
                "c",
                &[
                    ("10.0.3.254", "10.0.4.1"),
                    ("2001:db8:1::1", "2001:db8:1::2"),
                ],
            ),
        ],
        // a shrinks and loses its IPv6 range to b (dual-stack holders of a get split); c first.
        vec![
            c(),
            pool("a", &[("10.0.0.254", "10.0.1.0")]),
            manual(pool(
                "b",
                &[("10.0.2.0", "10.0.2.2"), ("2001:db8::1", "2001:db8::3")],
            )),
        ],
        // Pinned: a to namespace blue (priority 2), c to tier=gold services (priority 1), b
        // (manual) to prod-labelled namespaces; d is the only fallback.
        vec![
            pinned(a(), 2, &["blue"], false, false),
            manual(pinned(b(), 0, &[], true, false)),
            pinned(c(), 1, &[], false, true),
            pool("d", &[("10.0.5.0", "10.0.5.1")]),
        ],
        // Pinned: a to everyone (empty serviceAllocation), c to prod namespaces or blue, and
        // gold services only; d and b unpinned.
        vec![
            pinned(a(), 0, &[], false, false),
            b(),
            pinned(c(), 3, &["blue"], true, true),
            pool("d", &[("10.0.5.0", "10.0.5.1")]),
        ],
        // a's ranges listed in another order.
        vec![
            pool(
                "a",
                &[
                    ("2001:db8::1", "2001:db8::3"),
                    ("10.0.1.0", "10.0.1.1"),
                    ("10.0.0.253", "10.0.0.255"),
                ],
            ),
            b(),
            c(),
        ],
    ]
}

pub(super) const CANDIDATES: &[&str] = &[
    "10.0.0.253",
    "10.0.0.255",
    "10.0.1.0",
    "10.0.2.1",
    "10.0.3.255",
    "10.0.4.1",
    "10.9.9.9",
    "2001:db8::1",
    "2001:db8::3",
    "2001:db8:1::2",
    "2001:db8:9::1",
];

#[derive(Debug, Clone)]
pub(super) enum Op {
    Allocate(usize, Request),
    Assign(usize, Request, Vec<IpAddr>),
    Release(usize),
    SetPools(usize),
    Restart,
    /// Namespace `NAMESPACES[i]` gets `env=prod` or loses its labels.
    Label(usize, bool),
}

pub(super) fn family() -> impl Strategy<Value = Family> {
    prop_oneof![Just(Family::V4), Just(Family::V6)]
}

pub(super) fn request() -> impl Strategy<Value = Request> {
    let policy = prop_oneof![
        3 => family().prop_map(FamilyPolicy::Single),
        1 => family().prop_map(|primary| FamilyPolicy::PreferDualStack { primary }),
        1 => family().prop_map(|primary| FamilyPolicy::RequireDualStack { primary }),
    ];
    let requested = prop_oneof![
        4 => Just(Vec::new()),
        1 => proptest::sample::subsequence(CANDIDATES.to_vec(), 1..=2)
            .prop_map(|v| v.iter().map(|s| ip(s)).collect()),
    ];
    let pool_name = prop_oneof![
        4 => Just(None),
        1 => proptest::sample::select(vec!["a", "a2", "b", "c", "d", "gone"]).prop_map(|s| Some(s.to_owned())),
    ];
    let key = prop_oneof![
        1 => Just(None),
        3 => Just(Some("k".to_owned())),
        1 => Just(Some("j".to_owned())),
        1 => Just(Some(String::new())),
    ];
    let ports = proptest::sample::subsequence(
        vec![
            (Protocol::Tcp, 80),
            (Protocol::Tcp, 443),
            (Protocol::Udp, 53),
        ],
        0..=2,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(protocol, port)| Port { protocol, port })
            .collect()
    });
    let traffic = prop_oneof![
        3 => Just(TrafficPolicy::Cluster),
        1 => Just(local("x")),
        1 => Just(local("y")),
    ];
    let labels = prop_oneof![
        Just(BTreeMap::new()),
        Just(BTreeMap::from([("tier".to_owned(), "gold".to_owned())])),
        Just(BTreeMap::from([("tier".to_owned(), "silver".to_owned())])),
    ];
    (policy, requested, pool_name, key, ports, (traffic, labels)).prop_map(
        |(families, requested, pool, sharing_key, ports, (traffic, labels))| Request {
            families,
            requested,
            pool,
            sharing_key,
            ports,
            traffic,
            labels,
        },
    )
}

pub(super) fn op() -> impl Strategy<Value = Op> {
    let service = 0..SERVICES;
    prop_oneof![
        8 => (service.clone(), request()).prop_map(|(s, r)| Op::Allocate(s, r)),
        2 => (service.clone(), request(), proptest::sample::subsequence(CANDIDATES.to_vec(), 1..=2))
            .prop_map(|(s, r, ips)| Op::Assign(s, r, ips.iter().map(|i| ip(i)).collect())),
        3 => service.prop_map(Op::Release),
        2 => (0..6usize).prop_map(Op::SetPools),
        1 => Just(Op::Restart),
        1 => (0..NAMESPACES.len(), any::<bool>()).prop_map(|(i, prod)| Op::Label(i, prod)),
    ]
}
