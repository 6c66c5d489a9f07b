//! Allocator benchmarks, ferrolb side by side with a reference implementation of MetalLB's
//! algorithm (walk each CIDR from its first address, skipping addresses found in a hash set of
//! in-use addresses). Run with `cargo bench --bench allocator`; figures go in BENCHMARKS.md.
//!
//! Sample sizes and measurement times are kept small: the machine is shared. On a loaded machine
//! wall-clock time mostly measures the scheduler, so `FERROLB_BENCH_CPU=1` switches every
//! benchmark to on-CPU time of the benchmarking thread (`/proc/thread-self/schedstat`).

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use criterion::measurement::Measurement;
use criterion::{BatchSize, Criterion};
use ferrolb::ipam::{Allocator, Family, PoolSpec, Request, ServiceKey};

#[path = "support/on_cpu.rs"]
mod on_cpu;
#[path = "support/pin_model.rs"]
mod pin_model;

/// MetalLB's layer-2 allocation, restated: every allocation walks the pool's CIDRs from their
/// first address and takes the first one not in the in-use set. (Given `u128` arithmetic for the
/// walk, which is kinder to it than MetalLB's `big.Int` stepping.)
struct Reference {
    cidrs: Vec<(Family, u128, u128)>,
    in_use: HashSet<IpAddr>,
    by_service: HashMap<ServiceKey, IpAddr>,
}

impl Reference {
    fn new(cidrs: &[(IpAddr, IpAddr)]) -> Reference {
        let cidrs = cidrs
            .iter()
            .map(|&(start, end)| {
                let (family, s) = number(start);
                (family, s, number(end).1)
            })
            .collect();
        Reference {
            cidrs,
            in_use: HashSet::new(),
            by_service: HashMap::new(),
        }
    }

    fn allocate(&mut self, service: &ServiceKey) -> Option<IpAddr> {
        if let Some(ip) = self.by_service.get(service) {
            return Some(*ip);
        }
        for &(family, start, end) in &self.cidrs {
            let mut value = start;
            loop {
                let ip = address(family, value);
                if !self.in_use.contains(&ip) {
                    self.in_use.insert(ip);
                    self.by_service.insert(service.clone(), ip);
                    return Some(ip);
                }
                if value == end {
                    break;
                }
                value += 1;
            }
        }
        None
    }

    fn assign(&mut self, service: &ServiceKey, ip: IpAddr) {
        self.in_use.insert(ip);
        self.by_service.insert(service.clone(), ip);
    }

    fn release(&mut self, service: &ServiceKey) {
        if let Some(ip) = self.by_service.remove(service) {
            self.in_use.remove(&ip);
        }
    }
}

fn number(ip: IpAddr) -> (Family, u128) {
    match ip {
        IpAddr::V4(v4) => (Family::V4, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (Family::V6, u128::from(v6)),
    }
}

fn address(family: Family, value: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(value as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

fn range(start: &str, end: &str) -> (IpAddr, IpAddr) {
    (start.parse().unwrap(), end.parse().unwrap())
}

const SLASH_12: (&str, &str) = ("10.0.0.0", "10.15.255.255");
const SLASH_16: (&str, &str) = ("10.0.0.0", "10.0.255.255");
const SLASH_64: (&str, &str) = ("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff");

fn allocator_with(ranges: &[(IpAddr, IpAddr)]) -> Allocator {
    let mut alloc = Allocator::new();
    alloc
        .set_pools(vec![PoolSpec {
            name: "bench".into(),
            ranges: ranges.to_vec(),
            auto_assign: true,
            avoid_buggy_ips: false,
            allocation: None,
        }])
        .unwrap();
    alloc
}

fn keys(n: usize) -> Vec<ServiceKey> {
    (0..n)
        .map(|i| ServiceKey::new("bench", &format!("svc-{i}")))
        .collect()
}

/// `n` fresh single-address allocations into an empty pool.
fn sequential<M: Measurement>(
    c: &mut Criterion<M>,
    label: &str,
    pool: (&str, &str),
    family: Family,
    n: usize,
) {
    let ranges = [range(pool.0, pool.1)];
    let request = Request::single(family);
    let services = keys(n);
    let mut group = c.benchmark_group(format!("allocate {n} from {label}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("ferrolb", |b| {
        b.iter_batched(
            || allocator_with(&ranges),
            |mut alloc| {
                for s in &services {
                    black_box(alloc.allocate(s, &request).unwrap());
                }
                alloc
            },
            BatchSize::PerIteration,
        )
    });
    if n <= 10_000 {
        group.bench_function("metallb-reference", |b| {
            b.iter_batched(
                || Reference::new(&ranges),
                |mut reference| {
                    for s in &services {
                        black_box(reference.allocate(s).unwrap());
                    }
                    reference
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn allocations<M: Measurement>(c: &mut Criterion<M>) {
    sequential(c, "a /12", SLASH_12, Family::V4, 100_000);
    sequential(c, "a /64", SLASH_64, Family::V6, 100_000);
    // The reference is quadratic in the number of allocations (100k would take about a minute
    // per sample), so the side-by-side comparison runs at 10k.
    sequential(c, "a /12", SLASH_12, Family::V4, 10_000);
}

/// Re-registering 100k existing assignments (every other address of a /12, so ferrolb's free
/// set is as fragmented as it gets: 100k separate intervals).
fn rebuild<M: Measurement>(c: &mut Criterion<M>) {
    let ranges = [range(SLASH_12.0, SLASH_12.1)];
    let request = Request::single(Family::V4);
    let services = keys(100_000);
    let base = number(ranges[0].0).1;
    let existing: Vec<(ServiceKey, IpAddr)> = services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), address(Family::V4, base + 2 * i as u128)))
        .collect();
    let mut group = c.benchmark_group("rebuild 100000 assignments in a /12");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    // Batched, so dropping the 100k-entry state is not timed (for either side).
    group.bench_function("ferrolb", |b| {
        b.iter_batched(
            || allocator_with(&ranges),
            |mut alloc| {
                for (s, ip) in &existing {
                    black_box(alloc.assign(s, &request, &[*ip]).unwrap());
                }
                alloc
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("metallb-reference", |b| {
        b.iter_batched(
            || Reference::new(&ranges),
            |mut reference| {
                for (s, ip) in &existing {
                    reference.assign(s, *ip);
                }
                reference
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// One allocation (and its release) with `in_use` addresses already taken from the bottom of the
/// pool, the state MetalLB's lowest-first walking produces and then pays for on every call.
fn steady_state<M: Measurement>(
    c: &mut Criterion<M>,
    label: &str,
    pool: (&str, &str),
    family: Family,
    in_use: usize,
) {
    let ranges = [range(pool.0, pool.1)];
    let request = Request::single(family);
    let services = keys(in_use);
    let probe = ServiceKey::new("bench", "probe");
    let mut group = c.benchmark_group(format!("allocate+release with {in_use} in use in {label}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(2));
    // Built lazily so that benchmarks filtered out on the command line cost nothing; the
    // reference gets the same addresses by `assign` (filling it by walking would be quadratic).
    let mut alloc = None::<Allocator>;
    let mut reference = None::<Reference>;
    let fill = || {
        let mut alloc = allocator_with(&ranges);
        let mut reference = Reference::new(&ranges);
        for s in &services {
            let got = alloc.allocate(s, &request).unwrap();
            reference.assign(s, got.ips[0]);
        }
        (alloc, reference)
    };
    group.bench_function("ferrolb", |b| {
        let alloc = alloc.get_or_insert_with(|| fill().0);
        b.iter(|| {
            black_box(alloc.allocate(&probe, &request).unwrap());
            alloc.release(&probe)
        })
    });
    group.bench_function("metallb-reference", |b| {
        let reference = reference.get_or_insert_with(|| fill().1);
        b.iter(|| {
            black_box(reference.allocate(&probe).unwrap());
            reference.release(&probe)
        })
    });
    group.finish();
}

fn in_use<M: Measurement>(c: &mut Criterion<M>) {
    steady_state(c, "a /16", SLASH_16, Family::V4, 50_000);
    steady_state(c, "a /64", SLASH_64, Family::V6, 10_000);
    // Pool size does not matter to ferrolb: a /30, a /8 and a /64 with two addresses in use.
    steady_state(c, "a /30", ("10.0.0.0", "10.0.0.3"), Family::V4, 2);
    steady_state(c, "a /8", ("10.0.0.0", "10.255.255.255"), Family::V4, 2);
    steady_state(c, "a /64", SLASH_64, Family::V6, 2);
}

/// An allocator holding the pinning workload's 100 pools (50 of them pinned when `pinned`) and its
/// labelled Namespaces, built from the same custom resources `ferrolb plan` reads.
fn pin_workload_allocator(pinned: bool) -> Allocator {
    let file = ferrolb::config::parse_file(&pin_model::crd_yaml(&pin_model::pools(pinned)))
        .expect("generated custom resources parse");
    let mut alloc = Allocator::new();
    alloc
        .set_pools(ferrolb::controller::reconcile::pool_specs(&file.config))
        .expect("generated pools are valid");
    alloc.set_namespaces(file.namespaces);
    alloc
}

/// `n` Services spread over the workload's namespaces, allocated into 100 pools of which 50 are
/// pinned (by namespace, namespace selector and service selector, mixed priorities), side by
/// side with the same pools unpinned.
fn pinning<M: Measurement>(c: &mut Criterion<M>, n: usize) {
    let services: Vec<(ServiceKey, Request)> = (0..n)
        .map(|j| {
            let key = ServiceKey::new(
                &pin_model::namespace_name(pin_model::service_namespace(j)),
                &pin_model::service_name(j),
            );
            let mut request = Request::single(Family::V4);
            request.labels.insert("app".into(), pin_model::app_of(j));
            (key, request)
        })
        .collect();
    let mut group = c.benchmark_group(format!("allocate {n} into 100 pools"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    for (label, pinned) in [("50 pinned", true), ("unpinned", false)] {
        group.bench_function(label, |b| {
            b.iter_batched(
                || pin_workload_allocator(pinned),
                |mut alloc| {
                    for (key, request) in &services {
                        black_box(alloc.allocate(key, request).unwrap());
                    }
                    alloc
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn run<M: Measurement>(mut c: Criterion<M>) {
    allocations(&mut c);
    rebuild(&mut c);
    in_use(&mut c);
    pinning(&mut c, 20_000);
    c.final_summary();
}

fn main() {
    on_cpu::main(run, run);
}
