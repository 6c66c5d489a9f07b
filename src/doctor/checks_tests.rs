use serde_json::json;

use super::*;

fn leftover_webhook() -> Value {
    json!({"metadata": {"name": "metallb-webhook-configuration"},
           "webhooks": [{"name": "ipaddresspoolvalidationwebhook.metallb.io",
                         "clientConfig": {"service": {"namespace": "metallb-system",
                                                       "name": "metallb-webhook-service"}},
                         "rules": [{"apiGroups": ["metallb.io"], "resources": ["ipaddresspools"]}]}]})
}

fn crd(name: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {"conversion": {"strategy": "None"}}})
}

fn healthy() -> Snapshot {
    Snapshot {
        namespace: "ferrolb-system".into(),
        crds: vec![
            crd("ipaddresspools.metallb.io"),
            crd("l2advertisements.metallb.io"),
        ],
        config_objects: vec![
            json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "a", "namespace": "ferrolb-system"},
            "spec": {"addresses": ["192.0.2.0/28"]}}),
        ],
        ..Snapshot::default()
    }
}

#[test]
fn a_healthy_cluster_has_no_findings() {
    assert_eq!(run_all(&healthy()), []);
    assert_eq!(render(&[]), "no problems found\n");
}

#[test]
fn metallb_webhook_leftovers_are_reported_with_the_delete_command() {
    let mut s = healthy();
    s.webhook_configurations.push(leftover_webhook());
    let found = metallb_webhooks(&s);
    assert_eq!(found.len(), 1);
    assert!(
        found[0]
            .problem
            .contains("metallb-system/metallb-webhook-service"),
        "{found:?}"
    );
    assert_eq!(
        found[0].fix,
        "kubectl delete validatingwebhookconfiguration metallb-webhook-configuration"
    );
    // An unrelated webhook whose Service exists is left alone.
    let mut other = leftover_webhook();
    other["metadata"]["name"] = json!("someone-else");
    s.webhook_configurations = vec![other.clone()];
    s.services
        .insert("metallb-system/metallb-webhook-service".into());
    assert_eq!(metallb_webhooks(&s), []);
    // Renamed, but still aiming metallb.io objects at a missing Service: reported.
    s.services.clear();
    assert_eq!(metallb_webhooks(&s).len(), 1);
}

#[test]
fn a_conversion_webhook_to_a_missing_service_is_reported() {
    let mut s = healthy();
    s.crds.push(json!({"metadata": {"name": "bgppeers.metallb.io"},
        "spec": {"conversion": {"strategy": "Webhook", "webhook": {"clientConfig": {"service":
            {"namespace": "metallb-system", "name": "metallb-webhook-service", "path": "/convert"}}}}}}));
    let found = conversion_webhooks(&s);
    assert_eq!(found.len(), 1);
    assert!(found[0].problem.contains("bgppeers.metallb.io"));
    s.services
        .insert("metallb-system/metallb-webhook-service".into());
    assert_eq!(conversion_webhooks(&s), []);
}

#[test]
fn missing_crds_are_named() {
    let mut s = healthy();
    s.crds
        .retain(|c| c["metadata"]["name"] != "l2advertisements.metallb.io");
    let found = crds_missing(&s);
    assert_eq!(found.len(), 1);
    assert!(found[0].problem.contains("l2advertisements.metallb.io"));
}

#[test]
fn metallb_workloads_still_running_are_reported() {
    let mut s = healthy();
    s.workloads.push(json!({"kind": "DaemonSet",
        "metadata": {"name": "metallb-speaker", "namespace": "metallb-system"},
        "spec": {"template": {"spec": {"containers": [{"image": "quay.io/metallb/speaker:v0.14.9"}]}}}}));
    s.workloads.push(json!({"kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"template": {"spec": {"containers": [{"image": "nginx"}]}}}}));
    let found = metallb_running(&s);
    assert_eq!(found.len(), 1);
    assert!(found[0].problem.contains("metallb-system/metallb-speaker"));
}

#[test]
fn an_invalid_config_is_reported_with_the_validation_errors() {
    let mut s = healthy();
    s.config_objects.push(
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "b", "namespace": "ferrolb-system"},
        "spec": {"addresses": ["192.0.2.0/24"]}}),
    );
    let found = config_invalid(&s);
    assert_eq!(found.len(), 1);
    assert!(found[0].problem.contains("overlap"), "{found:?}");
    s.config_objects.clear();
    assert_eq!(config_invalid(&s)[0].severity, Severity::Warning);
}

#[test]
fn unready_speakers_are_counted() {
    let mut s = healthy();
    s.workloads.push(json!({"kind": "DaemonSet",
        "metadata": {"name": "ferrolb-speaker", "namespace": "ferrolb-system",
            "labels": {"app.kubernetes.io/name": "ferrolb", "app.kubernetes.io/component": "speaker"}},
        "status": {"desiredNumberScheduled": 3, "numberReady": 2}}));
    let found = speakers_not_ready(&s);
    assert_eq!(found.len(), 1);
    assert!(found[0].problem.starts_with("2 of 3"));
}

#[test]
fn ipvs_without_strict_arp_is_reported_and_with_it_is_not() {
    let mut s = healthy();
    s.kube_proxy =
        Some(json!({"data": {"config.conf": "mode: ipvs\nipvs:\n  strictARP: false\n"}}));
    assert_eq!(strict_arp(&s).len(), 1);
    s.kube_proxy = Some(json!({"data": {"config.conf": "mode: ipvs\nipvs:\n  strictARP: true\n"}}));
    assert_eq!(strict_arp(&s), []);
    s.kube_proxy = Some(json!({"data": {"config.conf": "mode: iptables\n"}}));
    assert_eq!(strict_arp(&s), []);
}

#[test]
fn a_namespace_too_strict_for_the_speaker_is_reported() {
    let mut s = healthy();
    s.namespace_labels = Some(json!({"pod-security.kubernetes.io/enforce": "baseline"}));
    let found = pod_security(&s);
    assert_eq!(found.len(), 1);
    assert!(found[0].fix.contains("enforce=privileged"));
    s.namespace_labels = Some(json!({"pod-security.kubernetes.io/enforce": "privileged"}));
    assert_eq!(pod_security(&s), []);
}

#[test]
fn every_overlap_with_the_cluster_networks_is_named_with_its_fix() {
    let mut s = healthy();
    s.nodes = vec![
        json!({"metadata": {"name": "n1"}, "spec": {"podCIDRs": ["10.244.0.0/24"]},
               "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.5"},
                                        {"type": "InternalIP", "address": "garbage"}]}}),
        json!({"metadata": {"name": "n2"}, "spec": {"podCIDRs": ["192.0.2.8/29"]},
               "status": {"addresses": [{"type": "ExternalIP", "address": "198.51.100.1"}]}}),
    ];
    s.service_cidrs =
        vec![json!({"metadata": {"name": "extra"}, "spec": {"cidrs": ["192.0.2.0/30"]}})];
    let found = run_all(&s);
    let problems: Vec<&str> = found.iter().map(|f| f.problem.as_str()).collect();
    assert_eq!(found.len(), 3, "{problems:#?}");
    assert!(
        found
            .iter()
            .all(|f| f.check == "overlap" && f.severity == Severity::Warning)
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("ServiceCIDR extra (192.0.2.0/30) at 192.0.2.0-192.0.2.3")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("192.0.2.5, the InternalIP of node n1")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("Pod CIDR 192.0.2.8/29 of node n2 at 192.0.2.8-192.0.2.15")),
        "{problems:#?}"
    );
    assert!(found.iter().all(|f| f.fix.contains("pool \"a\"") && f.fix.contains("kubectl edit ipaddresspool a")), "{found:?}");
    let report = render(&found);
    assert!(report.contains("WARNING [overlap]"), "{report}");
    // Where no ServiceCIDR is served, --service-cluster-ip-range stands in.
    s.service_cidrs.clear();
    s.service_range =
        crate::config::overlap::parse_service_range("192.0.2.12/30,fd00::/108").unwrap();
    let found = cluster_overlaps(&s);
    assert!(
        found.iter().any(|f| f.problem.contains(
            "the service cluster IP range 192.0.2.12/30 (--service-cluster-ip-range) at 192.0.2.12-192.0.2.15"
        )),
        "{found:?}"
    );
    // The pool moved clear of every network: nothing left to say.
    s.config_objects[0]["spec"]["addresses"] = json!(["203.0.113.0/28"]);
    assert_eq!(run_all(&s), []);
}
