//! Allocator behaviour tests: one per rule (`rules`, `sharing_reload`) and a proptest state
//! machine (`state_machine`).

mod pinning;
mod rules;
mod sharing_reload;
mod state_machine;

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{
    Allocator, Family, FamilyPolicy, PoolSpec, Port, Protocol, Request, ServiceKey, TrafficPolicy,
};

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(crate) fn svc(name: &str) -> ServiceKey {
    ServiceKey::new("default", name)
}

pub(crate) fn pool(name: &str, ranges: &[(&str, &str)]) -> PoolSpec {
    PoolSpec {
        name: name.into(),
        ranges: ranges.iter().map(|(a, b)| (ip(a), ip(b))).collect(),
        auto_assign: true,
        avoid_buggy_ips: false,
        allocation: None,
    }
}

pub(crate) fn manual(mut spec: PoolSpec) -> PoolSpec {
    spec.auto_assign = false;
    spec
}

pub(crate) fn allocator(pools: Vec<PoolSpec>) -> Allocator {
    let mut alloc = Allocator::new();
    alloc.set_pools(pools).unwrap();
    alloc
}

pub(crate) fn v4() -> Request {
    Request::single(Family::V4)
}

pub(crate) fn v6() -> Request {
    Request::single(Family::V6)
}

pub(crate) fn dual(require: bool) -> Request {
    let mut r = v4();
    r.families = if require {
        FamilyPolicy::RequireDualStack {
            primary: Family::V4,
        }
    } else {
        FamilyPolicy::PreferDualStack {
            primary: Family::V4,
        }
    };
    r
}

pub(crate) fn requesting(ips: &[&str]) -> Request {
    let mut r = v4();
    r.requested = ips.iter().map(|s| ip(s)).collect();
    r
}

pub(crate) fn shared(key: &str, ports: &[(Protocol, u16)]) -> Request {
    let mut r = v4();
    r.sharing_key = Some(key.into());
    r.ports = ports
        .iter()
        .map(|&(protocol, port)| Port { protocol, port })
        .collect();
    r
}

pub(crate) fn local(app: &str) -> TrafficPolicy {
    TrafficPolicy::Local {
        selector: BTreeMap::from([("app".to_owned(), app.to_owned())]),
    }
}

/// The addresses a service holds, as strings, for compact assertions.
pub(crate) fn ips_of(alloc: &Allocator, name: &str) -> Vec<String> {
    alloc
        .assignment(&svc(name))
        .map(|a| a.ips.iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}
