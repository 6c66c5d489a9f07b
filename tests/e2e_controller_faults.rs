//! Faults the controller must survive, against a real kube-apiserver + etcd (found through
//! `KUBEBUILDER_ASSETS`; every test is skipped, with a message, when it is unset): a leader
//! paused past its lease, the API server killed and restarted, an emptied config, Services of
//! other load balancers.

mod e2e;

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use e2e::api::{
    self, annotation, create_service, events_about, ingress_ips, lb_service, wait_for_ips,
};
use e2e::wait::{PATIENCE, wait_for};
use e2e::{APPS, ControlPlane, Controller, ControllerOptions, NAMESPACE};

const CONFIG: &str = "address-pools:
- name: default
  protocol: layer2
  addresses:
  - 192.0.2.0/28
";

async fn setup(test: &str) -> Option<(ControlPlane, kube::Client)> {
    let plane = ControlPlane::start(test).await?;
    let client = plane.client().await;
    api::create_namespace(&client, NAMESPACE).await;
    api::create_namespace(&client, APPS).await;
    api::apply_config(&client, NAMESPACE, CONFIG).await;
    Some((plane, client))
}

async fn lease_holder(client: &kube::Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    leases
        .get_opt("ferrolb-controller")
        .await
        .ok()??
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_writes_nothing_when_it_resumes() {
    let test = "a_leader_paused_past_its_lease_writes_nothing_when_it_resumes";
    let Some((plane, client)) = setup(test).await else {
        return;
    };
    let services: Api<Service> = Api::namespaced(client.clone(), APPS);
    let a_opts = ControllerOptions::new(NAMESPACE, "ctrl-a").leader_elect(true);
    let b_opts = ControllerOptions::new(NAMESPACE, "ctrl-b").leader_elect(true);
    let mut a = Controller::start_ready(&plane, &a_opts).await;
    wait_for("ctrl-a to hold the Lease", PATIENCE, || async {
        lease_holder(&client).await.filter(|h| h.contains("ctrl-a"))
    })
    .await;
    let mut b = Controller::start_ready(&plane, &b_opts).await;
    create_service(&services, &lb_service("before", json!({}))).await;
    assert_eq!(wait_for_ips(&services, "before").await, ["192.0.2.0"]);
    // Its whole write done (the status shows first; the pool annotation follows, then the log
    // line), so a request still in flight when the pause hits cannot be taken for one sent
    // after the resume.
    wait_for("ctrl-a to finish writing before", PATIENCE, || async {
        a.log_tail(10_000)
            .contains("Service updated service=apps/before")
            .then_some(())
    })
    .await;

    // Pause the leader (SIGSTOP: a stalled node, a long GC pause) past its lease; the standby
    // takes over and serves Services created meanwhile.
    signal(a.pid(), "-STOP");
    wait_for("ctrl-b to take the Lease over", PATIENCE, || async {
        lease_holder(&client).await.filter(|h| h.contains("ctrl-b"))
    })
    .await;
    for name in ["during-1", "during-2"] {
        create_service(&services, &lb_service(name, json!({}))).await;
        wait_for_ips(&services, name).await;
    }
    // Taken away from the Service the paused leader gave it to, behind its back: a stale
    // leader that writes would put it back, or hand it out again.
    services
        .patch(
            "before",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
        )
        .await
        .unwrap();
    wait_for("before's EXTERNAL-IP to be cleared", PATIENCE, || async {
        ingress_ips(&services.get("before").await.unwrap())
            .is_empty()
            .then_some(())
    })
    .await;
    let resumed_at = Instant::now();
    let log_before = a.log_tail(10_000).lines().count();
    signal(a.pid(), "-CONT");
    // New work at once: the resumed replica sees it as soon as its watch catches up, before
    // any renewal attempt of its own could tell it that the Lease moved.
    for name in ["after-1", "after-2", "after-3"] {
        create_service(&services, &lb_service(name, json!({}))).await;
    }
    for name in ["after-1", "after-2", "after-3"] {
        wait_for_ips(&services, name).await;
    }
    // The resumed replica has decided by the time it says it stepped down (its first look at the
    // Lease since the pause), rather than after a pause of ours: until then only the lease
    // deadline kept it from writing, from then on it does not lead.
    let stepped_down = "not leading: writes stopped";
    wait_for("ctrl-a to step down after it resumed", PATIENCE, || async {
        let log = a.log_tail(10_000);
        let after: Vec<&str> = log.lines().skip(log_before).collect();
        after.iter().any(|l| l.contains(stepped_down)).then_some(())
    })
    .await;
    a.assert_running();
    let log = a.log_tail(10_000);
    let after: Vec<&str> = log.lines().skip(log_before).collect();
    let updates: Vec<&&str> = after
        .iter()
        .filter(|l| l.contains("Service updated"))
        .collect();
    assert!(
        updates.is_empty(),
        "ctrl-a wrote after it resumed: {updates:#?}"
    );
    for name in ["during-1", "during-2", "after-1", "after-2", "after-3"] {
        for event in events_about(&client, APPS, "Service", name).await {
            assert!(
                !event.reporting_instance.contains("ctrl-a"),
                "ctrl-a recorded {event:?}"
            );
        }
    }
    assert!(
        lease_holder(&client).await.unwrap().contains("ctrl-b"),
        "the Lease moved back"
    );
    let ips = api::external_ips(&services).await;
    let mut all: Vec<&String> = ips.values().flatten().collect();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "an address is held twice: {ips:?}");
    eprintln!("checked {:?} after the resume", resumed_at.elapsed());
    b.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_api_server_restart_a_new_service_gets_its_ip_within_seconds() {
    let test = "after_an_api_server_restart_a_new_service_gets_its_ip_within_seconds";
    let Some((mut plane, client)) = setup(test).await else {
        return;
    };
    let mut controller = Controller::start_ready(
        &plane,
        &ControllerOptions::new(NAMESPACE, "ctrl-a").leader_elect(true),
    )
    .await;
    let services: Api<Service> = Api::namespaced(client.clone(), APPS);
    create_service(&services, &lb_service("before", json!({}))).await;
    assert_eq!(wait_for_ips(&services, "before").await, ["192.0.2.0"]);

    plane.kill_apiserver();
    tokio::time::sleep(Duration::from_secs(20)).await;
    plane.restart_apiserver().await;
    let client = plane.client().await;
    let services: Api<Service> = Api::namespaced(client.clone(), APPS);
    create_service(&services, &lb_service("after", json!({}))).await;
    // The promise: an address within 5 s of the server's return (kube-runtime's default watch
    // backoff had grown to 30 s by then).
    let ips = wait_for(
        "after to get an EXTERNAL-IP",
        Duration::from_secs(5),
        || async {
            let ips = ingress_ips(&services.get("after").await.ok()?);
            (!ips.is_empty()).then_some(ips)
        },
    )
    .await;
    assert_eq!(ips, ["192.0.2.1"]);
    assert_eq!(wait_for_ips(&services, "before").await, ["192.0.2.0"]);
    controller.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_config_is_refused_and_every_ip_stays() {
    let test = "an_emptied_config_is_refused_and_every_ip_stays";
    let Some((plane, client)) = setup(test).await else {
        return;
    };
    let controller =
        Controller::start_ready(&plane, &ControllerOptions::new(NAMESPACE, "ctrl-a")).await;
    let services: Api<Service> = Api::namespaced(client.clone(), APPS);
    for name in ["alpha", "beta"] {
        create_service(&services, &lb_service(name, json!({}))).await;
        wait_for_ips(&services, name).await;
    }
    let mut before = api::external_ips(&services).await;
    let refusals = "ferrolb_config_update_errors_total";
    for (n, empty) in ["", "address-pools: []\n"].into_iter().enumerate() {
        let refused = controller.metric(refusals).await.unwrap_or(0.0);
        api::apply_config(&client, NAMESPACE, empty).await;
        // This config's own refusal (the stale flag is already 1 for the second one).
        wait_for("the config to be refused", PATIENCE, || async {
            (controller.metric(refusals).await? > refused).then_some(())
        })
        .await;
        assert_eq!(controller.metric("ferrolb_config_stale").await, Some(1.0));
        // Decided after the refusal, rather than after a pause: a new Service still gets an
        // address from the last good pool, and every address stays.
        let late = format!("late-{n}");
        create_service(&services, &lb_service(&late, json!({}))).await;
        let got = wait_for_ips(&services, &late).await;
        assert!(got[0].starts_with("192.0.2."), "{late} got {got:?}");
        let now = api::external_ips(&services).await;
        let mut expected = before.clone();
        expected.insert(late, got);
        assert_eq!(now, expected, "config {empty:?}");
        before = now;
    }
    let warning = wait_for("a Warning event on the ConfigMap", PATIENCE, || {
        let client = client.clone();
        async move {
            let events = events_about(&client, NAMESPACE, "ConfigMap", api::CONFIG_NAME).await;
            events.into_iter().find(|e| e.type_ == "Warning")
        }
    })
    .await;
    assert!(warning.note.contains("no address pools"), "{warning:?}");
}

/// Writes `ip` into a Service's status, as its own load balancer would.
async fn set_status(services: &Api<Service>, name: &str, ip: &str) {
    services
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}})),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lb_class_serves_only_its_class_and_never_hands_out_what_others_show() {
    let test = "lb_class_serves_only_its_class_and_never_hands_out_what_others_show";
    let Some((plane, client)) = setup(test).await else {
        return;
    };
    let services: Api<Service> = Api::namespaced(client.clone(), APPS);
    // A classless Service that got 192.0.2.0 before the flag was set (written here as its load
    // balancer would have): with the flag, it is not ours, and its address stays taken.
    create_service(&services, &lb_service("plain", json!({}))).await;
    set_status(&services, "plain", "192.0.2.0").await;
    let mut options = ControllerOptions::new(NAMESPACE, "ctrl-a");
    options.extra_args = vec!["--lb-class=example.com/ferrolb".into()];
    let _controller = Controller::start_ready(&plane, &options).await;
    // Another implementation's Service, given 192.0.2.1 by its owner while we run.
    let theirs = json!({"spec": {"loadBalancerClass": "example.com/other"}});
    create_service(&services, &lb_service("theirs", theirs)).await;
    set_status(&services, "theirs", "192.0.2.1").await;
    // Not a LoadBalancer, annotated by nobody we know: nothing to do with us either.
    create_service(
        &services,
        &lb_service("internal", json!({"spec": {"type": "ClusterIP"}})),
    )
    .await;
    let ours = json!({"spec": {"loadBalancerClass": "example.com/ferrolb"}});
    create_service(&services, &lb_service("ours", ours)).await;
    assert_eq!(wait_for_ips(&services, "ours").await, ["192.0.2.2"]);
    // One more of ours, asking for the other implementation's address: refused, naming it.
    let asks = json!({"spec": {"loadBalancerClass": "example.com/ferrolb",
                               "loadBalancerIP": "192.0.2.1"}});
    create_service(&services, &lb_service("asks", asks)).await;
    let refused = wait_for("the request for 192.0.2.1 refused", PATIENCE, || async {
        events_about(&client, APPS, "Service", "asks")
            .await
            .into_iter()
            .find(|e| e.reason == "AllocationFailed")
    })
    .await;
    assert!(refused.note.contains("apps/theirs"), "{refused:?}");
    // The pool's Warnings (on the ConfigMap that defines it) name both holders.
    for holder in ["apps/plain", "apps/theirs"] {
        let warning = wait_for("a Warning on the pool", PATIENCE, || async {
            events_about(&client, NAMESPACE, "ConfigMap", api::CONFIG_NAME)
                .await
                .into_iter()
                .find(|e| e.reason == "AddressHeldElsewhere" && e.note.contains(holder))
        })
        .await;
        assert_eq!(warning.type_, "Warning");
    }
    let plain = services.get("plain").await.unwrap();
    assert_eq!(ingress_ips(&plain), ["192.0.2.0"]);
    let theirs = services.get("theirs").await.unwrap();
    assert_eq!(ingress_ips(&theirs), ["192.0.2.1"]);
    // Nothing of theirs is touched: no event of ours, no annotation, the status their owner
    // wrote. (The API server records events of its own about Services.)
    for name in ["plain", "theirs", "internal"] {
        let events: Vec<_> = events_about(&client, APPS, "Service", name)
            .await
            .into_iter()
            .filter(|e| e.reporting_controller == "ferrolb-controller")
            .collect();
        assert!(events.is_empty(), "{name}: {events:#?}");
        let svc = services.get(name).await.unwrap();
        assert_eq!(annotation(&svc, "metallb.io/ip-allocated-from-pool"), None);
    }
}
