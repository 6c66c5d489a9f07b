//! Measures how long three gossip members on loopback take to declare a crashed member down, and
//! to drop a member that leaves gracefully (default `SwimTiming`). Figures, not assertions.
//!
//! `cargo run --release --example gossip_failover -- [trials] [idle-seconds]`

use std::time::{Duration, Instant};

use ferrolb::gossip::{Gossip, GossipConfig, GossipHandle, GossipKey, SwimTiming};

async fn start(name: &str, seeds: Vec<std::net::SocketAddr>) -> GossipHandle {
    let config = GossipConfig {
        node_name: name.to_string(),
        bind_addr: "127.0.0.1:0".parse().expect("literal address"),
        advertise_addr: None,
        seeds,
        keys: GossipKey::from_bytes(b"failover-measurement-key", "example")
            .expect("long key")
            .into(),
        reload: None,
        timing: SwimTiming::default(),
        withdrawn: false,
    };
    Gossip::start(config).await.expect("loopback bind")
}

/// Starts members "a", "b" and "c" (b and c seeded with a) and waits until all three see all three.
async fn converged_trio() -> [GossipHandle; 3] {
    let a = start("a", vec![]).await;
    let b = start("b", vec![a.local_addr()]).await;
    let c = start("c", vec![a.local_addr()]).await;
    for member in [&a, &b, &c] {
        let mut watch = member.members();
        watch
            .wait_for(|live| live.len() == 3)
            .await
            .expect("member task alive");
    }
    [a, b, c]
}

/// Time from stopping member "c" (crash or leave) until both others no longer list it.
async fn trial(graceful: bool) -> Duration {
    let [a, b, c] = converged_trio().await;
    // Let the cluster settle into steady probing, as in production.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    if graceful {
        c.leave().await;
    } else {
        c.abort();
    }
    for member in [&a, &b] {
        let mut watch = member.members();
        watch
            .wait_for(|live| !live.contains("c"))
            .await
            .expect("member task alive");
    }
    start.elapsed()
}

/// Runs an idle three-member cluster for `duration` and counts how often anyone was suspected or
/// declared down (false positives: nobody failed).
async fn idle(duration: Duration) -> (u64, u64) {
    let [a, b, c] = converged_trio().await;
    let (mut suspected, mut downs) = (0, 0);
    let end = Instant::now() + duration;
    while Instant::now() < end {
        for member in [&a, &b, &c] {
            let stats = member.stats().members;
            suspected += stats.suspect;
            downs += stats.down;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (suspected, downs)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{label}: n={} min={:?} p50={:?} p90={:?} p99={:?} max={:?}",
        samples.len(),
        samples[0],
        percentile(&samples, 0.5),
        percentile(&samples, 0.9),
        percentile(&samples, 0.99),
        samples[samples.len() - 1]
    );
}

#[tokio::main]
async fn main() {
    let trials: usize = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(20);
    let mut crash = Vec::new();
    let mut leave = Vec::new();
    for _ in 0..trials {
        crash.push(trial(false).await);
        leave.push(trial(true).await);
    }
    report("crash (abort) -> declared down by both others", crash);
    report("graceful leave -> dropped by both others", leave);
    let idle_secs: u64 = std::env::args()
        .nth(2)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(30);
    let (suspected, downs) = idle(Duration::from_secs(idle_secs)).await;
    println!(
        "idle {idle_secs}s, 3 members, sampled every 10 ms: suspect samples={suspected} \
         down samples={downs}"
    );
}
