//! A speaker without a config it can announce with takes part in no election, end to end: the
//! cluster of `tests/e2e_speaker.rs` (real kube-apiserver + etcd, the real controller, real
//! speakers on the test LAN; see `tests/e2e/speaker_lan.rs`). One speaker is restarted under a
//! config it cannot use (emptied while Services hold addresses, or refused for a rule across
//! objects): it must withdraw, so every address stays answered by exactly one other node. And a
//! speaker restarted to read MetalLB's custom resources in a cluster that has none tells the
//! user what to do.
//!
//! Skipped, with a message, when `KUBEBUILDER_ASSETS` is unset (even in CI). With it set, missing
//! root or tools fail the test when `CI` is set, and skip it otherwise.

mod e2e;
mod netns;
#[path = "e2e/speaker_lan.rs"]
mod speaker_lan;

use k8s_openapi::api::core::v1::Service;
use kube::Api;
use serde_json::json;

use e2e::api::{self, create_service, events_about, lb_service, wait_for_ips};
use e2e::wait::wait_for as wait_until;
use e2e::{APPS, NAMESPACE};
use netns::wait_for;
use speaker_lan::{
    SETTLE, Setup, assert_only_answerer, ranked, set_endpoints, setup, setup_with,
    speaker_pod_name, start_kube_speaker_with,
};

/// The speaker restarted under the unusable config.
const RESTARTED: usize = 2;

/// Two pools whose ranges overlap: refused as a whole (a rule across objects).
const OVERLAPPING: &str = "address-pools:
- name: lan
  protocol: layer2
  addresses:
  - 192.0.2.200-192.0.2.207
- name: again
  protocol: layer2
  addresses:
  - 192.0.2.204-192.0.2.210
";

/// SIGKILLs speaker [`RESTARTED`] and starts it again as the DaemonSet runs it (its Pod's name
/// from the downward API) with `extra` flags; returns the Pod's name.
fn restart(cluster: &mut speaker_lan::Cluster, extra: &[&str]) -> String {
    cluster.lan.signal(RESTARTED, "KILL");
    let kubeconfig = cluster
        .plane
        .lan_kubeconfig()
        .expect("namespaced control plane")
        .to_path_buf();
    let pod = speaker_pod_name(&cluster.lan.nodes[RESTARTED].name);
    start_kube_speaker_with(
        &mut cluster.lan,
        RESTARTED,
        &kubeconfig,
        &[("POD_NAME", &pod)],
        extra,
    );
    pod
}

/// Services on every address of the pool, the speakers settled; then `config` is applied and
/// speaker [`RESTARTED`] killed and started again. It reports that it cannot announce (gauge,
/// readiness, Warning on its Pod) and every address it owned before is answered by the next
/// node in its ranking, and only by it.
async fn restart_under(test: &str, config: &str) {
    let Some(mut cluster) = setup(test).await else {
        return;
    };
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), APPS);
    let ips: Vec<String> = (200..=207).map(|n| format!("192.0.2.{n}")).collect();
    let somewhere = cluster.lan.nodes[0].name.clone();
    for (i, ip) in ips.iter().enumerate() {
        // A ready endpoint: MetalLB's rule announces no Service without one.
        set_endpoints(&cluster.client, &format!("svc-{i}"), &[(&somewhere, true)]).await;
        let svc = json!({"metadata": {"annotations": {"metallb.io/loadBalancerIPs": ip}}});
        create_service(&services, &lb_service(&format!("svc-{i}"), svc)).await;
    }
    for (i, ip) in ips.iter().enumerate() {
        assert_eq!(
            wait_for_ips(&services, &format!("svc-{i}")).await,
            [ip.as_str()]
        );
    }
    let all = [0, 1, 2];
    let its_own: Vec<&String> = ips
        .iter()
        .filter(|ip| ranked(&cluster.lan, ip, &all)[0] == RESTARTED)
        .collect();
    assert!(
        !its_own.is_empty(),
        "the pool ranks node {RESTARTED} first for some address"
    );
    for ip in &its_own {
        assert_only_answerer(&cluster.lan, ip, RESTARTED);
    }

    api::apply_config(&cluster.client, NAMESPACE, config).await;
    let pod = restart(&mut cluster, &[]);
    let lan = &cluster.lan;
    // It has read the config and withdrawn: its gauge says so, and it is not ready.
    let withdrawn = wait_for(SETTLE, || {
        (lan.metric(RESTARTED, "ferrolb_speaker_election_candidate") == Some(0.0)).then_some(())
    });
    assert!(withdrawn.is_some(), "the restarted speaker never withdrew");
    assert_eq!(lan.http_get(RESTARTED, "/readyz").0, 503);
    // The others count two live members: it never joined them.
    for node in [0, 1] {
        let members = wait_for(SETTLE, || {
            (lan.metric(node, "ferrolb_members{state=\"alive\"}") == Some(2.0)).then_some(())
        });
        assert!(
            members.is_some(),
            "node {node} still counts the restarted speaker"
        );
    }
    // Every address it owned is answered, by the next node in its ranking alone.
    for ip in &its_own {
        let next = ranked(lan, ip, &[0, 1])[0];
        assert_only_answerer(lan, ip, next);
    }
    let warning = wait_until("the NoUsableConfig Warning", SETTLE, || async {
        events_about(&cluster.client, NAMESPACE, "Pod", &pod)
            .await
            .into_iter()
            .find(|e| e.reason == "NoUsableConfig")
    })
    .await;
    assert_eq!(warning.type_, "Warning");
    assert!(
        warning.note.contains("no config with address pools"),
        "{warning:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speaker_restarted_under_an_emptied_config_is_elected_for_nothing() {
    // Refused by the controller and every speaker while Services hold addresses; the restarted
    // one never had a config to keep.
    restart_under(
        "a_speaker_restarted_under_an_emptied_config_is_elected_for_nothing",
        "",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speaker_restarted_under_a_refused_config_is_elected_for_nothing() {
    restart_under(
        "a_speaker_restarted_under_a_refused_config_is_elected_for_nothing",
        OVERLAPPING,
    )
    .await;
}

/// A speaker restarted with `--config-source crds` in a cluster that has only the legacy
/// ConfigMap (MetalLB's CRDs not installed) says so once, naming the ConfigMap and both fixes,
/// however often its watches retry; it is not ready, and the others go on answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speaker_without_metallb_crds_names_the_configmap_and_both_fixes_once() {
    let test = "a_speaker_without_metallb_crds_names_the_configmap_and_both_fixes_once";
    // Never served (rather than deleted mid-test: the API server's CRD finalizer can take
    // over a minute on a loaded machine).
    let without = Setup {
        without_crds: &["ipaddresspools.yaml", "l2advertisements.yaml"],
        ..Setup::default()
    };
    let Some(mut cluster) = setup_with(test, without).await else {
        return;
    };
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), APPS);
    let somewhere = cluster.lan.nodes[0].name.clone();
    set_endpoints(&cluster.client, "web", &[(&somewhere, true)]).await;
    create_service(&services, &lb_service("web", json!({}))).await;
    let ip = wait_for_ips(&services, "web").await.remove(0);
    restart(&mut cluster, &["--config-source=crds"]);
    let lan = &cluster.lan;
    let said = wait_for(SETTLE, || {
        e2e::hint_then_retries(&lan.log(RESTARTED), "this kind is not served").then_some(())
    });
    let log = lan.log(RESTARTED);
    assert!(said.is_some(), "no hint, or no retry after it:\n{log}");
    e2e::assert_switching_hint_once(&log, "speaker");
    assert_eq!(lan.http_get(RESTARTED, "/readyz").0, 503);
    let others = [0, 1, 2]
        .into_iter()
        .filter(|&n| n != RESTARTED)
        .collect::<Vec<_>>();
    assert_only_answerer(lan, &ip, ranked(lan, &ip, &others)[0]);
}
