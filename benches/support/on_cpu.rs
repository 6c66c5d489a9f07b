//! `FERROLB_BENCH_CPU=1`: measure the benchmark thread's on-CPU time instead of wall-clock
//! time, so that other processes on a shared machine do not count.

use criterion::Criterion;
use criterion::Throughput;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};

/// On-CPU time of the calling thread, so other processes on a shared machine do not count.
pub struct OnCpu;

fn on_cpu_nanos() -> u64 {
    // First field of schedstat: nanoseconds this thread has spent running.
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("FERROLB_BENCH_CPU needs Linux /proc/thread-self/schedstat")
}

impl Measurement for OnCpu {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        on_cpu_nanos()
    }
    fn end(&self, start: u64) -> u64 {
        on_cpu_nanos().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanos
    }
}

/// Nanoseconds scaled to ns/µs/ms/s like criterion's own wall-time output.
struct Nanos;

impl ValueFormatter for Nanos {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = match typical {
            t if t < 1e3 => (1.0, "ns (cpu)"),
            t if t < 1e6 => (1e-3, "µs (cpu)"),
            t if t < 1e9 => (1e-6, "ms (cpu)"),
            _ => (1e-9, "s (cpu)"),
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }
    fn scale_throughputs(
        &self,
        _typical: f64,
        _t: &Throughput,
        _values: &mut [f64],
    ) -> &'static str {
        "n/a"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

/// Runs `cpu` with on-CPU time when `FERROLB_BENCH_CPU` is set, else `wall` with wall time.
pub fn main(cpu: fn(Criterion<OnCpu>), wall: fn(Criterion<WallTime>)) {
    if std::env::var_os("FERROLB_BENCH_CPU").is_some() {
        cpu(Criterion::default()
            .with_measurement(OnCpu)
            .configure_from_args());
    } else {
        wall(
            Criterion::default()
                .with_measurement(WallTime)
                .configure_from_args(),
        );
    }
}
