//! End-to-end tests of `ferrolb controller` against a real kube-apiserver + etcd (found through
//! `KUBEBUILDER_ASSETS`; every test is skipped, with a message, when it is unset). Each test gets
//! its own control plane and namespace, runs the real binary, and checks what a user would see.

mod e2e;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use e2e::api::{
    self, annotation, create_service, delete_service, events_about, ingress_ips, lb_service,
    wait_for_ips,
};
use e2e::ledger::IpLedger;
use e2e::wait::{PATIENCE, wait_for};
use e2e::{ControlPlane, Controller, ControllerOptions};

use e2e::{APPS, NAMESPACE};

const CONFIG: &str = "address-pools:
- name: default
  protocol: layer2
  addresses:
  - 192.0.2.0/28
- name: reserved
  protocol: layer2
  auto-assign: false
  addresses:
  - 198.51.100.10-198.51.100.19
";

async fn setup(test: &str, config: &str) -> Option<(ControlPlane, kube::Client)> {
    let plane = ControlPlane::start(test).await?;
    let client = plane.client().await;
    api::create_namespace(&client, NAMESPACE).await;
    api::create_namespace(&client, APPS).await;
    api::apply_config(&client, NAMESPACE, config).await;
    Some((plane, client))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_get_external_ips_that_kubectl_shows() {
    let Some((plane, client)) = setup("services_get_external_ips_that_kubectl_shows", CONFIG).await
    else {
        return;
    };
    let _controller =
        Controller::start_ready(&plane, &ControllerOptions::new(NAMESPACE, "ctrl-a")).await;
    let services: Api<Service> = Api::namespaced(client.clone(), APPS);

    // Created one after the other so "lowest free address" has one right answer for each.
    create_service(&services, &lb_service("web", json!({}))).await;
    assert_eq!(wait_for_ips(&services, "web").await, ["192.0.2.0"]);
    create_service(&services, &lb_service("shop", json!({}))).await;
    assert_eq!(wait_for_ips(&services, "shop").await, ["192.0.2.1"]);
    // A requested IP is granted even from an auto-assign: false pool...
    let pinned = json!({ "spec": { "loadBalancerIP": "198.51.100.15" } });
    create_service(&services, &lb_service("pinned", pinned)).await;
    assert_eq!(wait_for_ips(&services, "pinned").await, ["198.51.100.15"]);
    // ...and so is a pool asked for by (legacy-prefix) annotation: its lowest address.
    let picky = json!({ "metadata": { "annotations": {
        "metallb.universe.tf/address-pool": "reserved" } } });
    create_service(&services, &lb_service("picky", picky)).await;
    assert_eq!(wait_for_ips(&services, "picky").await, ["198.51.100.10"]);
    // Not a LoadBalancer: never touched.
    let internal = json!({ "spec": { "type": "ClusterIP" } });
    create_service(&services, &lb_service("internal", internal)).await;

    for (name, pool) in [
        ("web", "default"),
        ("shop", "default"),
        ("pinned", "reserved"),
        ("picky", "reserved"),
    ] {
        let service = services.get(name).await.unwrap();
        assert_eq!(
            annotation(&service, "metallb.io/ip-allocated-from-pool"),
            Some(pool),
            "pool annotation on {name}"
        );
    }
    let allocated = wait_for("an IPAllocated event on web", PATIENCE, || {
        let client = client.clone();
        async move {
            let events = events_about(&client, APPS, "Service", "web").await;
            events.into_iter().find(|e| e.reason == "IPAllocated")
        }
    })
    .await;
    assert_eq!(allocated.type_, "Normal");
    assert!(allocated.note.contains("192.0.2.0"), "{allocated:?}");

    // What the user actually looks at.
    let table = plane.kubectl(&["get", "svc", "-n", APPS, "--no-headers"]);
    let external: BTreeMap<&str, &str> = table
        .lines()
        .map(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            (columns[0], columns[3])
        })
        .collect();
    assert_eq!(
        external,
        BTreeMap::from([
            ("internal", "<none>"),
            ("picky", "198.51.100.10"),
            ("pinned", "198.51.100.15"),
            ("shop", "192.0.2.1"),
            ("web", "192.0.2.0"),
        ]),
        "kubectl get svc printed:\n{table}"
    );
    assert!(ingress_ips(&services.get("internal").await.unwrap()).is_empty());

    // Deleting a Service frees its IP: the next Service gets it (the lowest free address again).
    delete_service(&services, "web").await;
    wait_for("web to be gone", PATIENCE, || async {
        services
            .get_opt("web")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    create_service(&services, &lb_service("late", json!({}))).await;
    assert_eq!(wait_for_ips(&services, "late").await, ["192.0.2.0"]);

    // Leaving type LoadBalancer clears the status.
    let to_cluster_ip = json!({ "spec": { "type": "ClusterIP" } });
    services
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(to_cluster_ip),
        )
        .await
        .unwrap();
    wait_for("shop's EXTERNAL-IP to be cleared", PATIENCE, || async {
        ingress_ips(&services.get("shop").await.unwrap())
            .is_empty()
            .then_some(())
    })
    .await;

    // Nothing was handed out twice along the way.
    let all: Vec<String> = api::external_ips(&services)
        .await
        .into_values()
        .flatten()
        .collect();
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(all.len(), unique.len(), "duplicate EXTERNAL-IPs: {all:?}");
}

fn assert_unique(ips: &BTreeMap<String, Vec<String>>) {
    let mut holders: BTreeMap<&String, &String> = BTreeMap::new();
    for (name, service_ips) in ips {
        for ip in service_ips {
            if let Some(other) = holders.insert(ip, name) {
                panic!("{ip} is held by both {other} and {name}");
            }
        }
    }
}

async fn wait_all_assigned(services: &Api<Service>) -> BTreeMap<String, Vec<String>> {
    wait_for(
        "every LoadBalancer Service to have an EXTERNAL-IP",
        PATIENCE,
        || async {
            let ips = api::external_ips(services).await;
            ips.values().all(|v| !v.is_empty()).then_some(ips)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_restarts_during_churn_change_no_ip_and_duplicate_none() {
    let config = "address-pools:
- name: default
  protocol: layer2
  addresses:
  - 192.0.2.0/24
";
    let test = "three_restarts_during_churn_change_no_ip_and_duplicate_none";
    let Some((plane, client)) = setup(test, config).await else {
        return;
    };
    let options = ControllerOptions::new(NAMESPACE, "ctrl-a");
    let mut controller = Controller::start_ready(&plane, &options).await;
    let services: Api<Service> = Api::namespaced(client.clone(), APPS);
    let ledger = IpLedger::start(&client, APPS).await;

    for i in 0..20 {
        create_service(&services, &lb_service(&format!("steady-{i}"), json!({}))).await;
    }
    let before = wait_all_assigned(&services).await;
    assert_eq!(before.len(), 20);

    // Churn: a steady stream of creations and deletions, across all three restarts (and while
    // no controller runs at all). Bounded, so a stuck test still ends.
    let stop = Arc::new(AtomicBool::new(false));
    let churn = tokio::spawn({
        let services = services.clone();
        let stop = stop.clone();
        async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 400 {
                create_service(&services, &lb_service(&format!("churn-{i}"), json!({}))).await;
                if i % 3 == 2 {
                    delete_service(&services, &format!("churn-{}", i - 2)).await;
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            i
        }
    });

    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        controller.assert_running();
        // A crash twice, a graceful stop once: neither may lose or move an IP.
        if round == 1 {
            controller.terminate();
        } else {
            controller.kill();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        controller = Controller::start_ready(&plane, &options).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let churned = churn.await.expect("churn task");
    assert!(churned > 10, "churn made only {churned} Services");

    let after = wait_all_assigned(&services).await;
    assert_unique(&after);
    for (name, ips) in &before {
        assert_eq!(after.get(name), Some(ips), "{name} changed EXTERNAL-IP");
    }
    for ips in after.values() {
        for ip in ips {
            assert!(ip.starts_with("192.0.2."), "{ip} is outside the pool");
        }
    }
    // The watch saw every intermediate state: no IP ever moved or was held twice.
    let violations = ledger.violations();
    assert!(violations.is_empty(), "{violations:#?}");
    controller.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configmap_keeps_ips_and_records_a_warning() {
    let test = "invalid_configmap_keeps_ips_and_records_a_warning";
    let Some((plane, client)) = setup(test, CONFIG).await else {
        return;
    };
    let controller =
        Controller::start_ready(&plane, &ControllerOptions::new(NAMESPACE, "ctrl-a")).await;
    let services: Api<Service> = Api::namespaced(client.clone(), APPS);
    for name in ["alpha", "beta"] {
        create_service(&services, &lb_service(name, json!({}))).await;
    }
    let before = wait_all_assigned(&services).await;
    assert_eq!(controller.metric("ferrolb_config_stale").await, Some(0.0));

    // Valid on its own, the first pool would move every Service out of 192.0.2.0/28 if it were
    // applied; the second pool is broken (range start after end), so none of it may be.
    let broken = "address-pools:
- name: elsewhere
  protocol: layer2
  addresses:
  - 203.0.113.0/28
- name: backwards
  protocol: layer2
  addresses:
  - 198.51.100.20-198.51.100.10
";
    api::apply_config(&client, NAMESPACE, broken).await;
    let warning = wait_for("a Warning event on the ConfigMap", PATIENCE, || {
        let client = client.clone();
        async move {
            let events = events_about(&client, NAMESPACE, "ConfigMap", api::CONFIG_NAME).await;
            events.into_iter().find(|e| e.type_ == "Warning")
        }
    })
    .await;
    assert!(
        warning.note.contains("backwards"),
        "the warning should name the broken pool: {warning:?}"
    );
    wait_for("ferrolb_config_stale to be 1", PATIENCE, || async {
        (controller.metric("ferrolb_config_stale").await == Some(1.0)).then_some(())
    })
    .await;

    // The last good config stays in force: IPs untouched, and a new Service still gets an
    // address from the old pool, not from the rejected one.
    assert_eq!(api::external_ips(&services).await, before);
    create_service(&services, &lb_service("gamma", json!({}))).await;
    let gamma = wait_for_ips(&services, "gamma").await;
    assert!(gamma[0].starts_with("192.0.2."), "gamma got {gamma:?}");
    let now = api::external_ips(&services).await;
    assert_unique(&now);
    for (name, ips) in &before {
        assert_eq!(now.get(name), Some(ips), "{name} moved");
    }

    // A good config clears the stale flag.
    api::apply_config(&client, NAMESPACE, CONFIG).await;
    wait_for("ferrolb_config_stale to be 0", PATIENCE, || async {
        (controller.metric("ferrolb_config_stale").await == Some(0.0)).then_some(())
    })
    .await;
    assert_eq!(api::external_ips(&services).await, now);
}

/// The holder identity of the controller's Lease in the release namespace, if any.
async fn lease_holder(client: &kube::Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    leases
        .list(&Default::default())
        .await
        .ok()?
        .items
        .into_iter()
        .find_map(|l| l.spec?.holder_identity.filter(|h| !h.is_empty()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_only_the_lease_holder_writes_and_the_other_takes_over() {
    let test = "two_controllers_only_the_lease_holder_writes_and_the_other_takes_over";
    let Some((plane, client)) = setup(test, CONFIG).await else {
        return;
    };
    let services: Api<Service> = Api::namespaced(client.clone(), APPS);
    let first = ControllerOptions::new(NAMESPACE, "ctrl-a").leader_elect(true);
    let second = ControllerOptions::new(NAMESPACE, "ctrl-b").leader_elect(true);
    let mut a = Controller::start_ready(&plane, &first).await;
    let holder = wait_for("a Lease holder", PATIENCE, || lease_holder(&client)).await;
    assert!(holder.contains("ctrl-a"), "lease held by {holder}");
    let mut b = Controller::start_ready(&plane, &second).await;

    for name in ["one", "two", "three"] {
        create_service(&services, &lb_service(name, json!({}))).await;
    }
    let before = wait_all_assigned(&services).await;
    assert_unique(&before);
    // Every allocation was reported by the holder; the standby wrote nothing.
    for name in ["one", "two", "three"] {
        let events = events_about(&client, APPS, "Service", name).await;
        assert!(
            events.iter().any(|e| e.reason == "IPAllocated"),
            "no IPAllocated event for {name}: {events:?}"
        );
        for event in events {
            assert!(
                !event.reporting_instance.contains("ctrl-b"),
                "the standby wrote an event: {event:?}"
            );
        }
    }
    assert_eq!(
        lease_holder(&client).await.as_deref(),
        Some(holder.as_str())
    );

    // Crash the holder. Until the standby holds the Lease, nobody may write: a Service created
    // now stays pending while the Lease still names the dead holder.
    a.kill();
    create_service(&services, &lb_service("four", json!({}))).await;
    let new_holder = wait_for("the standby to take over and assign four", PATIENCE, || {
        let client = client.clone();
        let services = services.clone();
        async move {
            // Service first, Lease second: the dead holder cannot get the Lease back, so if the
            // Lease still names it after four was seen with an IP, someone wrote without it.
            let four = ingress_ips(&services.get("four").await.ok()?);
            if four.is_empty() {
                return None;
            }
            let holder = lease_holder(&client).await.unwrap_or_default();
            assert!(
                holder.contains("ctrl-b"),
                "four got {four:?} while the Lease was held by {holder:?}"
            );
            Some(holder)
        }
    })
    .await;
    assert!(new_holder.contains("ctrl-b"));
    b.assert_running();
    let after = wait_all_assigned(&services).await;
    assert_unique(&after);
    for (name, ips) in &before {
        assert_eq!(after.get(name), Some(ips), "{name} moved on failover");
    }

    // Graceful hand-over: the restarted replica is the standby now; SIGTERM on the holder
    // releases the Lease, and the standby takes over and keeps allocating.
    let mut a = Controller::start_ready(&plane, &first).await;
    b.terminate();
    wait_for("ctrl-a to hold the Lease again", PATIENCE, || async {
        lease_holder(&client).await.filter(|h| h.contains("ctrl-a"))
    })
    .await;
    create_service(&services, &lb_service("five", json!({}))).await;
    wait_for_ips(&services, "five").await;
    let last = wait_all_assigned(&services).await;
    assert_unique(&last);
    for (name, ips) in &after {
        assert_eq!(last.get(name), Some(ips), "{name} moved on hand-over");
    }
    a.assert_running();
}

/// A user switching from MetalLB v0.12 keeps its ConfigMap and starts the controller with the
/// default source, MetalLB's custom resources, whose CRDs this cluster does not have. The
/// controller says so once, naming the ConfigMap and both fixes (read it with
/// `--config-source configmap`, or convert it), however often its watches retry. (Before, it
/// said "this kind is not served (are the CRDs installed?)", once per kind, and no word of
/// either fix.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_metallb_crds_the_controller_names_the_configmap_and_both_fixes_once() {
    let test = "without_metallb_crds_the_controller_names_the_configmap_and_both_fixes_once";
    let Some((plane, _client)) = setup(test, CONFIG).await else {
        return;
    };
    let mut options = ControllerOptions::new(NAMESPACE, "ctrl").crds();
    options.log = Some("info,ferrolb::controller::crd_watch=debug".into());
    let controller = Controller::start(&plane, &options);
    // Wait until the watches have retried after the hint was said.
    wait_for("the hint, then two more watch retries", PATIENCE, || {
        let log = controller.log_tail(100_000);
        let seen = e2e::hint_then_retries(&log, "this kind is not served; retrying").then_some(());
        async move { seen }
    })
    .await;
    e2e::assert_switching_hint_once(&controller.log_tail(100_000), "controller");
}
