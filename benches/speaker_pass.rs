//! One speaker pass over a cluster of 10,000 LoadBalancer Services (each with a ready
//! EndpointSlice) on three nodes: `cargo bench --bench speaker_pass` (`FERROLB_BENCH_CPU=1` for
//! on-CPU time). Figures go in BENCHMARKS.md.
//!
//! - "a member leaves": the case a takeover waits on: every Service worked out again, the
//!   leaver's groups elected again;
//! - "a member returns": the same work the other way (measured apart, the leave pass being the
//!   one a takeover waits on);
//! - "one Service changes": a status IP moves; the pass decides that Service alone;
//! - "nothing changed": a wake-up with nothing to do (a socket or gate event).
//!
//! Each under MetalLB's ranking, `--sticky-ownership`, `--even-spread` and both (the other two
//! nodes claiming what the ranking gives them, as their gossip would say).

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;

use criterion::measurement::Measurement;
use criterion::{BatchSize, Criterion};
use ferrolb::placement::Policy;
use ferrolb::speaker::handover::Claimed;
use ferrolb::speaker::kubernetes::cache::{self, Changes, NodeView, ServiceView, SliceView};
use ferrolb::speaker::kubernetes::cluster::ViewOptions;
use ferrolb::speaker::kubernetes::reconcile::{Reconciler, Stores};
use ferrolb::speaker::kubernetes::store::{self, Decoded};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use serde_json::json;

#[path = "support/on_cpu.rs"]
mod on_cpu;

const SERVICES: usize = 10_000;
const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

fn ip(i: usize) -> String {
    format!("2001:db8::{:x}", i + 1)
}

fn service(i: usize, ip: &str) -> Decoded<ServiceView> {
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": format!("svc-{i}"), "namespace": "apps", "uid": format!("uid-{i}"),
                     "labels": {"app": format!("svc-{i}")}},
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Cluster"},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
    }))
    .expect("a valid Service");
    svc.into()
}

fn slice(i: usize) -> Decoded<SliceView> {
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": format!("svc-{i}-1"), "namespace": "apps",
                     "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.7"], "nodeName": NODES[i % 3],
                       "conditions": {"ready": true}}],
    }))
    .expect("a valid EndpointSlice");
    slice.into()
}

fn node(name: &str) -> Decoded<NodeView> {
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "InternalIP", "address": "192.0.2.10"}]},
    }))
    .expect("a valid Node");
    node.into()
}

struct Cluster {
    stores: Stores,
    services: store::Writer<ServiceView>,
}

fn cluster() -> Cluster {
    let changes = Changes::default();
    let mut services = store::Writer::default();
    let mut slices = store::Writer::default();
    let mut nodes = store::Writer::default();
    let mut configmaps = Writer::<ConfigMap>::default();
    let speakers = Writer::default();
    for i in 0..SERVICES {
        cache::apply(&mut services, &changes, &Event::Apply(service(i, &ip(i))));
        cache::apply(&mut slices, &changes, &Event::Apply(slice(i)));
    }
    for n in NODES {
        cache::apply(&mut nodes, &changes, &Event::Apply(node(n)));
    }
    let config: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "config", "namespace": "ferrolb-system"},
        "data": {"config": "address-pools:\n- name: v6\n  protocol: layer2\n  addresses: [2001:db8::/112]\n"},
    }))
    .expect("a valid ConfigMap");
    cache::apply_whole(&mut configmaps, &changes, &Event::Apply(config), true);
    let stores = Stores {
        services: services.as_reader(),
        slices: slices.as_reader(),
        nodes: nodes.as_reader(),
        configmaps: configmaps.as_reader(),
        speakers: speakers.as_reader(),
        metallb: None,
        changes,
    };
    Cluster { stores, services }
}

fn members(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// What node-b and node-c claim: the addresses the ranking gives them (`with_b`: node-b too).
fn claims(with_b: bool) -> BTreeMap<String, Claimed> {
    let mut out: BTreeMap<String, Claimed> = BTreeMap::new();
    for i in 0..SERVICES {
        let address = ip(i).parse().expect("an IPv6 address");
        if let Some(owner) = ferrolb::election::owner(address, NODES) {
            if owner == "node-a" || (owner == "node-b" && !with_b) {
                continue;
            }
            out.entry(owner.to_owned())
                .or_default()
                .answering
                .insert(address);
        }
    }
    out
}

fn passes<M: Measurement>(c: &mut Criterion<M>, policy: Policy) {
    let mut cl = cluster();
    let view = ViewOptions {
        placement: policy,
        ..ViewOptions::default()
    };
    let mut rec = Reconciler::new("node-a".into(), view, cl.stores.clone());
    let all = members(&NODES);
    let two = members(&["node-a", "node-c"]);
    let (claims_all, claims_two) = if policy.is_ranked() {
        (BTreeMap::new(), BTreeMap::new())
    } else {
        (claims(true), claims(false))
    };
    rec.set_claims(claims_all.clone());
    let first = rec.pass(Some(&all), true);
    assert_eq!(first.service_ips, SERVICES, "every Service is in the view");
    let mut group = c.benchmark_group(format!("speaker pass, 10000 Services, {}", policy.label()));
    group.sample_size(10);
    // A takeover: node-b leaves (every Service worked out again, node-b's third elected again
    // and moved); the pass that brings it back is the setup, not measured. Then the return
    // alone.
    let rec = std::cell::RefCell::new(rec);
    for (name, before, after) in [
        ("a member leaves", (&all, &claims_all), (&two, &claims_two)),
        ("a member returns", (&two, &claims_two), (&all, &claims_all)),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    rec.borrow_mut().set_claims(before.1.clone());
                    rec.borrow_mut().pass(Some(before.0), true);
                    rec.borrow_mut().set_claims(after.1.clone());
                },
                |()| {
                    let pass = rec.borrow_mut().pass(Some(after.0), true);
                    assert_eq!(pass.evaluated, SERVICES);
                    black_box(pass)
                },
                BatchSize::PerIteration,
            )
        });
    }
    let mut rec = rec.into_inner();
    rec.set_claims(claims_all.clone());
    rec.pass(Some(&all), true);
    let mut moved = false;
    group.bench_function("one Service changes", |b| {
        b.iter_batched(
            || {
                moved = !moved;
                let to = if moved { ip(SERVICES + 1) } else { ip(7) };
                let event = Event::Apply(service(7, &to));
                cache::apply(&mut cl.services, &cl.stores.changes, &event);
            },
            |()| {
                let pass = rec.pass(Some(&all), true);
                assert_eq!(pass.evaluated, 1);
                black_box(pass)
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("nothing changed", |b| {
        b.iter(|| black_box(rec.pass(Some(&all), true)))
    });
    group.finish();
}

fn run<M: Measurement>(mut c: Criterion<M>) {
    for (sticky, even) in [(false, false), (true, false), (false, true), (true, true)] {
        passes(&mut c, Policy { sticky, even });
    }
    c.final_summary();
}

fn main() {
    on_cpu::main(run, run);
}
