//! What real clusters need from the chart: Linux-only scheduling, Pod Security, spread and
//! disruption budget, speaker metrics on the host IP, release-scoped Lease, Prometheus Operator
//! objects only where their CRDs exist, the dashboard, MetalLB names and log levels.

use serde_json::{Value, json};

use super::support::*;

fn values_file(name: &str) -> std::path::PathBuf {
    values_dir().join(name)
}

#[test]
fn defaults_schedule_on_linux_spread_the_controller_and_keep_speaker_metrics_on_the_host_ip() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let m = render(&helm, None);
    for comp in ["controller", "speaker"] {
        let pod = pod_spec(m.workload(comp).unwrap());
        assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "linux", "{comp}");
    }
    let controller = m.workload("controller").unwrap();
    let anti = &pod_spec(controller)["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        [0]["podAffinityTerm"];
    assert_eq!(anti["topologyKey"], "kubernetes.io/hostname");
    let pod_labels = &controller["spec"]["template"]["metadata"]["labels"];
    for (k, v) in anti["labelSelector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &pod_labels[k], v,
            "anti-affinity selects the controller's own pods"
        );
    }
    let pdb = m.one("PodDisruptionBudget", "lb-ferrolb-controller");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"],
        "controller"
    );
    assert_eq!(
        flag(controller, "--lease-name").as_deref(),
        Some("lb-ferrolb-controller"),
        "a release-scoped Lease"
    );
    let speaker = m.workload("speaker").unwrap();
    assert!(args(speaker).contains(&"--metrics-on-host-ip".to_string()));
    assert_eq!(
        env_map(speaker)["HOST_IP"]["valueFrom"]["fieldRef"]["fieldPath"],
        "status.hostIP"
    );
    for comp in ["controller", "speaker"] {
        assert!(!args(m.workload(comp).unwrap()).contains(&"--metallb-metric-names".to_string()));
    }
    assert!(m.find("Namespace", NAMESPACE).is_none(), "opt-in only");
    assert_eq!(
        m.of_kind("ConfigMap")
            .filter(|c| c["metadata"]["name"] == "lb-ferrolb-dashboard")
            .count(),
        0
    );
}

#[test]
fn single_controller_replica_gets_no_disruption_budget() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let m = render_with(&helm, None, &["--set", "controller.replicas=1"]);
    assert!(
        m.find("PodDisruptionBudget", "lb-ferrolb-controller")
            .is_none()
    );
}

#[test]
fn two_releases_use_two_leases() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let lease = |release: &str| {
        let out = run_ok(
            std::process::Command::new(&helm)
                .args(["template", release])
                .arg(chart_dir())
                .args(["--namespace", NAMESPACE]),
            format!("helm template {release}"),
        );
        let docs: Vec<Value> = serde_saphyr::from_multiple(&stdout(&out)).unwrap();
        let m = Manifests {
            text: String::new(),
            docs: docs.into_iter().filter(|d| d.is_object()).collect(),
        };
        flag(m.workload("controller").unwrap(), "--lease-name").unwrap()
    };
    assert_ne!(lease("blue"), lease("green"));
}

#[test]
fn monitoring_objects_render_only_where_their_crds_are_served() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let kinds = ["ServiceMonitor", "PodMonitor", "PrometheusRule"];
    let file = values_file("monitoring.yaml");
    let without = render(&helm, Some(&file));
    for kind in kinds {
        assert_eq!(without.of_kind(kind).count(), 0, "{kind} without its CRD");
    }
    let with = render_with(&helm, Some(&file), &MONITORING_API_VERSIONS);
    for kind in kinds {
        assert!(with.of_kind(kind).count() > 0, "{kind} with its CRD");
    }
    let skipped = render_with(
        &helm,
        Some(&file),
        &["--set", "prometheus.skipCRDCheck=true"],
    );
    for kind in kinds {
        assert!(
            skipped.of_kind(kind).count() > 0,
            "{kind} with the check skipped"
        );
    }
}

#[test]
fn every_real_cluster_value_reaches_the_manifests() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let m = render(&helm, Some(&values_file("real-cluster.yaml")));
    let ns = m.one("Namespace", NAMESPACE);
    for mode in ["enforce", "audit", "warn"] {
        assert_eq!(
            ns["metadata"]["labels"][format!("pod-security.kubernetes.io/{mode}")],
            "privileged"
        );
    }
    assert_eq!(
        ns["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );

    let controller = m.workload("controller").unwrap();
    let speaker = m.workload("speaker").unwrap();
    for w in [controller, speaker] {
        assert!(args(w).contains(&"--metallb-metric-names".to_string()));
    }
    assert_eq!(env_map(controller)["RUST_LOG"]["value"], "all");
    for (name, value) in [
        ("--gossip-probe-interval-ms", "1000"),
        ("--gossip-probe-timeout-ms", "300"),
        ("--gossip-suspect-timeout-ms", "4000"),
    ] {
        assert_eq!(flag(speaker, name).as_deref(), Some(value), "{name}");
        // Left unset, the binary's defaults hold: the chart passes nothing.
        let defaults = render(&helm, None);
        assert_eq!(flag(defaults.workload("speaker").unwrap(), name), None);
    }
    assert_eq!(env_map(speaker)["RUST_LOG"]["value"], "warn");
    assert_eq!(controller["spec"]["strategy"], json!({"type": "Recreate"}));
    assert_eq!(
        speaker["spec"]["updateStrategy"],
        json!({"type": "OnDelete"})
    );
    assert_eq!(
        pod_spec(controller)["priorityClassName"],
        "system-cluster-critical"
    );
    assert_eq!(
        pod_spec(speaker)["priorityClassName"],
        "system-node-critical"
    );
    assert!(pod_spec(controller)["securityContext"]["runAsUser"].is_null());
    assert!(container(controller)["securityContext"]["runAsUser"].is_null());
    // A user's affinity replaces the default anti-affinity; the spread is added.
    assert!(pod_spec(controller)["affinity"]["podAntiAffinity"].is_null());
    assert_eq!(
        pod_spec(controller)["topologySpreadConstraints"][0]["topologyKey"],
        "topology.kubernetes.io/zone"
    );
    assert_eq!(
        m.one("PodDisruptionBudget", "lb-ferrolb-controller")["spec"]["minAvailable"],
        2
    );
    assert!(!args(speaker).contains(&"--metrics-on-host-ip".to_string()));

    let dashboard = m.one("ConfigMap", "lb-ferrolb-dashboard");
    assert_eq!(dashboard["metadata"]["namespace"], "monitoring");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        dashboard["metadata"]["annotations"]["grafana_folder"],
        "Networking"
    );
    let json_text = dashboard["data"]["ferrolb.json"].as_str().unwrap();
    let parsed: Value = serde_json::from_str(json_text).unwrap();
    assert_eq!(parsed["uid"], "ferrolb");
    assert!(json_text.contains("metallb_allocator_addresses_in_use_total"));
    assert!(
        !json_text.contains("ferrolb_allocator_"),
        "renamed with metallbNames"
    );
    assert!(
        json_text.contains("ferrolb_members"),
        "gossip has no MetalLB name"
    );
    assert!(json_text.contains("metallb_bgp_session_up"));
    assert!(json_text.contains("metallb_bgp_pending_prefixes_total"));
    assert!(
        !json_text.contains("ferrolb_bgp_"),
        "renamed with metallbNames"
    );

    let rule = m.one("PrometheusRule", "lb-ferrolb");
    let rules = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    let custom = rules
        .iter()
        .find(|r| r["alert"] == "PoolAlmostFull")
        .unwrap();
    assert_eq!(custom["labels"]["severity"], "page");
    assert!(
        custom["expr"]
            .as_str()
            .unwrap()
            .contains("metallb_allocator_addresses_total")
    );
    // MetalLB's MetalLBBGPSessionDown reads the same series.
    let bgp_down = rules
        .iter()
        .find(|r| r["alert"] == "FerrolbBGPSessionDown")
        .unwrap();
    assert_eq!(
        bgp_down["expr"].as_str().unwrap().trim(),
        "metallb_bgp_session_up == 0"
    );
}
