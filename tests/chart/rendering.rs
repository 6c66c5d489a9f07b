//! What the values turn into: the flags the binary must accept, downward-API identity, probes,
//! config and key wiring, monitoring objects.

use std::net::SocketAddr;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::*;

const FERROLB: &str = env!("CARGO_BIN_EXE_ferrolb");

fn values_file(name: &str) -> std::path::PathBuf {
    values_dir().join(name)
}

/// `$(VAR)` references in args are expanded by the kubelet from the container's env; the test
/// gives them representative values so the binary parses what a node would pass it.
fn expand(arg: &str, env: &std::collections::BTreeMap<String, Value>) -> String {
    let mut out = arg.to_string();
    while let Some(start) = out.find("$(") {
        let end = start + out[start..].find(')').expect("closed $(VAR)");
        let var = out[start + 2..end].to_string();
        assert!(
            env.contains_key(&var),
            "arg {arg} uses $({var}), which the container lacks"
        );
        let value = match var.as_str() {
            "POD_NAMESPACE" => NAMESPACE,
            "NODE_NAME" => "node-a",
            "HOST_IP" => "192.0.2.10",
            other => panic!("no sample value for $({other})"),
        };
        out.replace_range(start..=end, value);
    }
    out
}

/// True when `help` lists `flag` as a whole word (not as a prefix of a longer flag).
fn help_lists(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(i, _)| {
        let next = help[i + flag.len()..].chars().next();
        !matches!(next, Some(c) if c.is_ascii_alphanumeric() || c == '-')
    })
}

#[test]
fn every_flag_the_chart_passes_is_accepted_by_the_binary() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    for values in scenarios() {
        let m = render(&helm, values.as_deref());
        let name = scenario_name(&values);
        for workload in m.of_kind("Deployment").chain(m.of_kind("DaemonSet")) {
            let args = args(workload);
            let subcommand = &args[0];
            let help = run(Command::new(FERROLB).args([subcommand, "--help"]));
            assert!(
                help.status.success(),
                "ferrolb {subcommand} --help: {}",
                stderr(&help)
            );
            let help = stdout(&help);
            for arg in args.iter().filter(|a| a.starts_with("--")) {
                let flag = arg.split('=').next().unwrap();
                assert!(
                    help_lists(&help, flag),
                    "{name}: `ferrolb {subcommand} --help` lacks {flag}"
                );
            }
            // Flags and values together: clap stops at --help only after parsing everything
            // before it, so an unknown flag or a value it cannot parse fails here.
            let env = env_map(workload);
            let expanded: Vec<String> = args.iter().map(|a| expand(a, &env)).collect();
            let out = run(Command::new(FERROLB).args(&expanded).arg("--help"));
            assert!(
                out.status.success(),
                "{name}: ferrolb rejects the chart's args {expanded:?}:\n{}",
                stderr(&out)
            );
        }
    }
}

#[test]
fn pods_take_identity_from_the_downward_api_and_probe_their_metrics_port() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let m = render(&helm, None);
    let field_ref =
        |w: &Value, var: &str| env_map(w)[var]["valueFrom"]["fieldRef"]["fieldPath"].clone();
    let controller = m.workload("controller").unwrap();
    let speaker = m.workload("speaker").unwrap();
    assert_eq!(field_ref(controller, "POD_NAMESPACE"), "metadata.namespace");
    assert_eq!(field_ref(speaker, "POD_NAMESPACE"), "metadata.namespace");
    assert_eq!(field_ref(speaker, "NODE_NAME"), "spec.nodeName");
    assert_eq!(field_ref(speaker, "HOST_IP"), "status.hostIP");
    assert_eq!(
        flag(speaker, "--node-name").as_deref(),
        Some("$(NODE_NAME)")
    );
    assert_eq!(flag(speaker, "--host-ip").as_deref(), Some("$(HOST_IP)"));
    for (workload, port) in [(controller, 7472), (speaker, 7473)] {
        let c = container(workload);
        assert_eq!(env_map(workload)["RUST_LOG"]["value"], "info");
        assert_eq!(flag(workload, "--log-format").as_deref(), Some("text"));
        let addr: SocketAddr = flag(workload, "--metrics-addr").unwrap().parse().unwrap();
        assert_eq!(addr.port(), port);
        let ports = c["ports"].as_array().unwrap();
        let monitoring = ports.iter().find(|p| p["name"] == "monitoring").unwrap();
        assert_eq!(monitoring["containerPort"], port);
        assert_eq!(
            c["livenessProbe"]["httpGet"],
            json!({"path": "/healthz", "port": "monitoring"})
        );
        assert_eq!(
            c["readinessProbe"]["httpGet"],
            json!({"path": "/readyz", "port": "monitoring"})
        );
        assert!(c["resources"]["requests"].is_object() && c["resources"]["limits"].is_object());
    }
    // A leaving speaker needs time to tell the others before it is killed.
    let grace = pod_spec(speaker)["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(grace >= 10, "speaker grace period {grace}s");
    let tolerations = pod_spec(speaker)["tolerations"].as_array().unwrap();
    for key in [
        "node-role.kubernetes.io/control-plane",
        "node-role.kubernetes.io/master",
    ] {
        assert!(
            tolerations
                .iter()
                .any(|t| t["key"] == key && t["effect"] == "NoSchedule")
        );
    }
    // No Prometheus Operator objects unless asked for: clusters without its CRDs must install.
    assert!(!m.text.contains("monitoring.coreos.com"));
    // Default: no ConfigMap rendered, both read the MetalLB-conventional "config".
    assert!(m.of_kind("ConfigMap").next().is_none());
    assert_eq!(flag(controller, "--config-name").as_deref(), Some("config"));
    assert_eq!(flag(speaker, "--config-name").as_deref(), Some("config"));
    assert_eq!(
        flag(controller, "--lb-class"),
        None,
        "no class: Services without one"
    );
}

#[test]
fn custom_values_reach_the_manifests() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let m = render(&helm, Some(&values_file("custom-class.yaml")));
    let controller = m.one("Deployment", "lb-controller");
    let speaker = m.one("DaemonSet", "lb-speaker");
    for w in [controller, speaker] {
        assert_eq!(flag(w, "--lb-class").as_deref(), Some("ferrolb.io/layer2"));
        assert_eq!(flag(w, "--log-format").as_deref(), Some("json"));
        let c = container(w);
        assert_eq!(
            c["image"],
            "registry.example.com/platform/ferrolb:0.1.0-rc1"
        );
        assert_eq!(c["imagePullPolicy"], "Always");
        let pod = pod_spec(w);
        assert_eq!(pod["imagePullSecrets"], json!([{"name": "regcred"}]));
        assert_eq!(pod["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    }
    assert_eq!(env_map(controller)["RUST_LOG"]["value"], "debug");
    assert_eq!(env_map(speaker)["RUST_LOG"]["value"], "info,ferrolb=debug");
    assert_eq!(controller["spec"]["replicas"], 3);
    assert_eq!(flag(controller, "--lease-duration").as_deref(), Some("10"));
    let cpod = pod_spec(controller);
    assert_eq!(cpod["priorityClassName"], "system-cluster-critical");
    assert_eq!(
        controller["spec"]["template"]["metadata"]["annotations"]["example.com/team"],
        "network"
    );
    assert!(cpod["affinity"]["podAntiAffinity"].is_object());
    assert_eq!(cpod["tolerations"][0]["key"], "dedicated");
    let spod = pod_spec(speaker);
    assert_eq!(spod["priorityClassName"], "system-node-critical");
    assert_eq!(spod["terminationGracePeriodSeconds"], 20);
    // Extra tolerations come on top of the control-plane ones.
    let keys: Vec<_> = spod["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].clone())
        .collect();
    assert!(keys.contains(&json!("node-role.kubernetes.io/control-plane")));
    assert!(keys.contains(&json!("dedicated")));
    assert_eq!(
        flag(speaker, "--exclude-interfaces").as_deref(),
        Some("cali*,flannel*,docker0")
    );
    assert_eq!(flag(speaker, "--garp-interval").as_deref(), Some("30"));
    assert!(args(speaker).contains(&"--ignore-exclude-lb".to_string()));
}

#[test]
fn inline_config_renders_the_metallb_configmap_the_binary_accepts() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let file = values_file("inline-config.yaml");
    let m = render(&helm, Some(&file));
    let cm = m.one("ConfigMap", "config");
    assert_eq!(cm["metadata"]["namespace"], NAMESPACE);
    let config: Value = serde_saphyr::from_str(cm["data"]["config"].as_str().unwrap()).unwrap();
    let values: Value = serde_saphyr::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        config, values["configInline"],
        "the ConfigMap holds configInline verbatim"
    );
    for w in [
        m.workload("controller").unwrap(),
        m.workload("speaker").unwrap(),
    ] {
        assert_eq!(flag(w, "--config-name").as_deref(), Some("config"));
    }
    // The rendered ConfigMap manifest, as `kubectl apply` would get it, passes check-config.
    let manifest = m
        .text
        .split("\n---")
        .find(|doc| doc.contains("\nkind: ConfigMap\n"))
        .expect("ConfigMap document in helm output");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("configmap.yaml");
    std::fs::write(&path, manifest).unwrap();
    let out = run(Command::new(FERROLB).arg("check-config").arg(&path));
    assert!(
        out.status.success(),
        "check-config rejects the rendered ConfigMap:\n{}",
        stderr(&out)
    );
}

#[test]
fn existing_configmap_and_key_secret_are_referenced_not_rendered() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let m = render(&helm, Some(&values_file("existing-configmap.yaml")));
    assert!(m.of_kind("ConfigMap").next().is_none());
    assert!(m.of_kind("Secret").next().is_none());
    let speaker = m.workload("speaker").unwrap();
    assert_eq!(
        flag(speaker, "--config-name").as_deref(),
        Some("my-lb-config")
    );
    assert_eq!(
        flag(m.workload("controller").unwrap(), "--config-name").as_deref(),
        Some("my-lb-config")
    );
    let volumes = pod_spec(speaker)["volumes"].as_array().unwrap();
    assert_eq!(volumes[0]["secret"]["secretName"], "my-memberlist-key");
    // A Secret of the user's own is never created or read by the controller.
    assert_eq!(
        flag(
            m.workload("controller").unwrap(),
            "--memberlist-secret-name"
        ),
        None
    );
}

/// `helm template` (Argo CD, Flux) renders no key Secret, so no sync can replace the key; the
/// controller is told to create it at runtime, and the speaker mounts it as an optional volume
/// (whole, so a rotation's `acceptkey` shows up) and waits for it.
#[test]
fn gossip_key_secret_is_never_rendered_the_controller_creates_it() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let m = render(&helm, None);
    assert!(m.of_kind("Secret").next().is_none());
    assert!(
        !chart_dir()
            .join("templates/memberlist-secret.yaml")
            .exists()
    );
    assert_eq!(
        flag(
            m.workload("controller").unwrap(),
            "--memberlist-secret-name"
        )
        .as_deref(),
        Some("lb-ferrolb-memberlist")
    );
    let speaker = m.workload("speaker").unwrap();
    let mount = &container(speaker)["volumeMounts"][0];
    assert_eq!(mount["readOnly"], true);
    let volume = &pod_spec(speaker)["volumes"][0];
    assert_eq!(volume["name"], mount["name"]);
    assert_eq!(volume["secret"]["secretName"], "lb-ferrolb-memberlist");
    assert_eq!(volume["secret"]["optional"], true);
    assert!(volume["secret"].get("items").is_none());
    let dir = mount["mountPath"].as_str().unwrap();
    assert_eq!(
        flag(speaker, "--memberlist-key-file"),
        Some(format!("{dir}/secretkey"))
    );
    assert_eq!(
        flag(speaker, "--memberlist-accept-key-file"),
        Some(format!("{dir}/acceptkey"))
    );
    // Two renders are identical: nothing random is left in the chart.
    assert_eq!(render(&helm, None).text, m.text);
}

#[test]
fn gossip_off_drops_the_key_and_the_control_plane_tolerations_name_override_renames() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let m = render(&helm, Some(&values_file("gossip-off.yaml")));
    let speaker = m.workload("speaker").unwrap();
    // nameOverride renames every object and the name label (selectors included).
    assert_eq!(speaker["metadata"]["name"], "lb-balancer-speaker");
    assert_eq!(
        speaker["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        "balancer"
    );
    assert!(m.find("Deployment", "lb-balancer-controller").is_some());
    assert_eq!(flag(speaker, "--gossip").as_deref(), Some("false"));
    assert_eq!(flag(speaker, "--memberlist-key-file"), None);
    assert!(m.of_kind("Secret").next().is_none());
    assert!(pod_spec(speaker).get("volumes").is_none());
    assert!(pod_spec(speaker).get("tolerations").is_none());
    assert!(
        container(m.workload("controller").unwrap())
            .get("livenessProbe")
            .is_none()
    );
}

#[test]
fn ipv6_only_cluster_binds_metrics_on_ipv6() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let m = render(&helm, Some(&values_file("ipv6-only.yaml")));
    for (comp, port) in [("controller", 7472), ("speaker", 7473)] {
        let addr: SocketAddr = flag(m.workload(comp).unwrap(), "--metrics-addr")
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            addr.is_ipv6() && addr.ip().is_unspecified() && addr.port() == port,
            "{addr}"
        );
    }
    let cm = m.one("ConfigMap", "config");
    assert!(
        cm["data"]["config"]
            .as_str()
            .unwrap()
            .contains("2001:db8:100::/120")
    );
}

#[test]
fn monitoring_objects_select_the_metrics_endpoints() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let m = render_with(
        &helm,
        Some(&values_file("monitoring.yaml")),
        &MONITORING_API_VERSIONS,
    );
    let labels_match = |selector: &Value, labels: &Value| {
        selector["matchLabels"]
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| &labels[k] == v)
    };
    for comp in ["controller", "speaker"] {
        let sm = m.one("ServiceMonitor", &format!("lb-ferrolb-{comp}"));
        assert_eq!(sm["metadata"]["labels"]["release"], "kube-prometheus-stack");
        let svc = m.one("Service", &format!("lb-ferrolb-{comp}-metrics"));
        assert!(
            labels_match(&sm["spec"]["selector"], &svc["metadata"]["labels"]),
            "{comp} ServiceMonitor"
        );
        assert_eq!(
            sm["spec"]["endpoints"][0]["port"],
            svc["spec"]["ports"][0]["name"]
        );
        assert_eq!(sm["spec"]["endpoints"][0]["interval"], "30s");
        let workload = m.workload(comp).unwrap();
        let pod_labels = &workload["spec"]["template"]["metadata"]["labels"];
        assert!(
            svc["spec"]["selector"]
                .as_object()
                .unwrap()
                .iter()
                .all(|(k, v)| &pod_labels[k] == v)
        );
        let pm = m.one("PodMonitor", &format!("lb-ferrolb-{comp}"));
        assert!(
            labels_match(&pm["spec"]["selector"], pod_labels),
            "{comp} PodMonitor"
        );
        assert_eq!(pm["spec"]["podMetricsEndpoints"][0]["port"], "monitoring");
    }
    let rule = m.one("PrometheusRule", "lb-ferrolb");
    let rules = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    let alert = |name: &str| {
        rules
            .iter()
            .find(|r| r["alert"] == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let stale = alert("FerrolbStaleConfig")["expr"].as_str().unwrap();
    assert_eq!(stale.trim(), "ferrolb_config_stale == 1");
    let exhausted = alert("FerrolbAddressPoolExhausted")["expr"]
        .as_str()
        .unwrap();
    assert!(exhausted.contains("ferrolb_allocator_addresses_in_use_total"));
    assert!(exhausted.contains("ferrolb_allocator_addresses_total"));
    assert!(exhausted.contains(">="));
    // One alert name per threshold: their labels differ, so routing must tell them apart.
    let usage = alert("FerrolbAddressPoolUsage75")["expr"].as_str().unwrap();
    assert!(usage.trim_end().ends_with(">= 75"), "{usage}");
    assert_eq!(
        alert("FerrolbAddressPoolUsage90")["labels"]["severity"],
        "warning"
    );
    assert!(
        alert("FerrolbConfigNotLoaded")["expr"]
            .as_str()
            .unwrap()
            .contains("ferrolb_config_loaded == 0")
    );
    let split = alert("FerrolbGossipSplit")["expr"].as_str().unwrap();
    assert!(split.contains("ferrolb_members{state=\"alive\"}") && split.contains("count"));
    let unannounced = alert("FerrolbServiceIPNotAnnounced")["expr"]
        .as_str()
        .unwrap();
    assert!(unannounced.contains("ferrolb_speaker_service_ips"));
    assert!(unannounced.contains("ferrolb_speaker_announced"));
    let not_candidate = alert("FerrolbSpeakerNotCandidate")["expr"]
        .as_str()
        .unwrap();
    assert!(
        not_candidate.contains("ferrolb_speaker_election_candidate == 0"),
        "{not_candidate}"
    );
    let not_heard = alert("FerrolbAnswersNotHeard")["expr"].as_str().unwrap();
    assert!(
        not_heard.contains("ferrolb_speaker_withdrawn_addresses")
            && not_heard.contains("ferrolb_speaker_answer_checks_deaf == 1"),
        "{not_heard}"
    );
    let bgp_down = alert("FerrolbBGPSessionDown");
    assert_eq!(
        bgp_down["expr"].as_str().unwrap().trim(),
        "ferrolb_bgp_session_up == 0"
    );
    assert_eq!(bgp_down["for"], "1m");
    assert_eq!(bgp_down["labels"]["severity"], "critical");
    alert("FerrolbSpeakerDown");
}

/// The speaker's `--ml-labels` selects exactly its own pods: every label it names is on the
/// DaemonSet's pod template with that value, in every scenario (else a speaker would count no
/// other speaker and elect alone, or count another release's).
#[test]
fn speaker_pod_selector_matches_the_speaker_pods() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    for values in scenarios() {
        let m = render(&helm, values.as_deref());
        let name = scenario_name(&values);
        for speaker in m.of_kind("DaemonSet") {
            let selector = flag(speaker, "--ml-labels").expect("--ml-labels is passed");
            let labels = &speaker["spec"]["template"]["metadata"]["labels"];
            let pairs: Vec<(&str, &str)> = selector
                .split(',')
                .map(|kv| kv.split_once('=').expect("key=value"))
                .collect();
            assert!(
                pairs
                    .iter()
                    .any(|(k, _)| *k == "app.kubernetes.io/instance"),
                "{name}: {selector} does not name the release"
            );
            for (k, v) in pairs {
                assert_eq!(labels[k], v, "{name}: pod label {k} for {selector}");
            }
        }
    }
}
