//! Measurements of `ferrolb controller` against a real kube-apiserver + etcd, run by hand (they are
//! `#[ignore]`d and print figures; nothing here asserts a timing). See BENCHMARKS.md for the command
//! and the figures. Needs `KUBEBUILDER_ASSETS` like the rest of the e2e suite.

mod e2e;

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use serde_json::json;

use e2e::api::{self, create_service, lb_service};
use e2e::ledger::IpLedger;
use e2e::process::memory;
use e2e::wait::wait_for;
use e2e::{ControlPlane, Controller, ControllerOptions};

use e2e::{APPS, NAMESPACE};

/// IPv6 Services, so that the pools can be large and still inside 2001:db8::/32 (documentation
/// space); no NodePorts, so that 10k Services fit the NodePort range.
fn bench_service(name: &str) -> Service {
    lb_service(
        name,
        json!({ "spec": {
            "ipFamilies": ["IPv6"],
            "ipFamilyPolicy": "SingleStack",
            "allocateLoadBalancerNodePorts": false,
        } }),
    )
}

async fn setup(test: &str, pool: &str) -> Option<(ControlPlane, kube::Client, Controller)> {
    let plane = ControlPlane::start(test).await?;
    let client = plane.client().await;
    api::create_namespace(&client, NAMESPACE).await;
    api::create_namespace(&client, APPS).await;
    let config =
        format!("address-pools:\n- name: bench\n  protocol: layer2\n  addresses:\n  - {pool}\n");
    api::apply_config(&client, NAMESPACE, &config).await;
    let controller =
        Controller::start_ready(&plane, &ControllerOptions::new(NAMESPACE, "ctrl-bench")).await;
    eprintln!("controller binary: {}", e2e::ferrolb::binary().display());
    Some((plane, client, controller))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, run by hand: see BENCHMARKS.md"]
async fn bench_1000_services_creation_to_external_ip() {
    const COUNT: usize = 1000;
    let test = "bench_1000_services_creation_to_external_ip";
    let Some((_plane, client, mut controller)) = setup(test, "2001:db8:1::/112").await else {
        return;
    };
    let services: Api<Service> = Api::namespaced(client.clone(), APPS);
    let ledger = IpLedger::start(&client, APPS).await;

    // One client, one request at a time, as fast as the API server accepts them.
    let mut created = Vec::with_capacity(COUNT);
    let start = Instant::now();
    for i in 0..COUNT {
        let name = format!("svc-{i}");
        let at = Instant::now();
        create_service(&services, &bench_service(&name)).await;
        created.push((name, at));
    }
    let last_created = Instant::now();
    let creation = last_created - start;

    wait_for(
        "every Service to get an EXTERNAL-IP",
        Duration::from_secs(600),
        || async { (ledger.assigned_count() >= COUNT).then_some(()) },
    )
    .await;
    controller.assert_running();

    let mut latencies: Vec<Duration> = created
        .iter()
        .map(|(name, at)| {
            ledger
                .first_ip_at(name)
                .expect("assigned")
                .saturating_duration_since(*at)
        })
        .collect();
    let all_assigned = created
        .iter()
        .filter_map(|(name, _)| ledger.first_ip_at(name))
        .max()
        .expect("some");
    latencies.sort();
    let violations = ledger.violations();
    assert!(violations.is_empty(), "{violations:#?}");
    let held = memory(controller.pid()).expect("controller RSS");

    println!("FIGURES {COUNT} Services created sequentially by one client in {creation:.2?}");
    println!(
        "FIGURES creation -> EXTERNAL-IP (seen by a watch): p50 {:.1?}  p90 {:.1?}  p99 {:.1?}  max {:.1?}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.90),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
    );
    println!(
        "FIGURES last creation -> all {COUNT} have an EXTERNAL-IP: {:.1?}",
        all_assigned.saturating_duration_since(last_created)
    );
    println!("FIGURES controller {held} holding {COUNT} Services");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, run by hand: see BENCHMARKS.md"]
async fn bench_controller_rss_holding_10k_services() {
    const COUNT: usize = 10_000;
    let test = "bench_controller_rss_holding_10k_services";
    let Some((plane, client, mut controller)) = setup(test, "2001:db8:2::/112").await else {
        return;
    };
    let services: Api<Service> = Api::namespaced(client.clone(), APPS);
    let ledger = IpLedger::start(&client, APPS).await;
    let idle = memory(controller.pid()).expect("controller RSS");
    println!("FIGURES controller {idle} holding no Service yet");

    let start = Instant::now();
    stream::iter(0..COUNT)
        .for_each_concurrent(64, |i| {
            let services = services.clone();
            async move {
                create_service(&services, &bench_service(&format!("svc-{i}"))).await;
            }
        })
        .await;
    eprintln!("created {COUNT} Services in {:.1?}", start.elapsed());
    wait_for(
        "every Service to get an EXTERNAL-IP",
        Duration::from_secs(1200),
        || async { (ledger.assigned_count() >= COUNT).then_some(()) },
    )
    .await;
    controller.assert_running();
    // Let the work queues drain before reading the resident set.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let held = memory(controller.pid()).expect("controller RSS");
    println!("FIGURES controller {held} holding {COUNT} Services, after allocating them");

    // A restart rebuilds the same state from the Services' status: the steady-state footprint.
    controller.kill();
    let restarted = Instant::now();
    let mut controller =
        Controller::start(&plane, &ControllerOptions::new(NAMESPACE, "ctrl-bench"));
    controller.wait_ready_within(Duration::from_secs(900)).await;
    eprintln!(
        "restarted controller ready after {:.1?}",
        restarted.elapsed()
    );
    create_service(&services, &bench_service("after-restart")).await;
    api::wait_for_ips(&services, "after-restart").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    controller.assert_running();
    let held = memory(controller.pid()).expect("controller RSS");
    println!(
        "FIGURES controller {held} holding {} Services, after a restart",
        COUNT + 1
    );
    let violations = ledger.violations();
    assert!(violations.is_empty(), "{violations:#?}");
    if let Some(api) = memory(plane.apiserver_pid()) {
        eprintln!("(kube-apiserver {api})");
    }
}
