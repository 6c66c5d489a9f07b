//! `metrics.secure`: the flags, probes, certificate mount, ServiceMonitors and RBAC it renders,
//! and none of it without.

use serde_json::{Value, json};

use crate::support::*;

const COMPONENTS: [&str; 2] = ["controller", "speaker"];

fn probes(workload: &Value) -> [&Value; 2] {
    let c = container(workload);
    [
        &c["livenessProbe"]["httpGet"],
        &c["readinessProbe"]["httpGet"],
    ]
}

fn has_review_rules(role: &Value) -> [bool; 2] {
    let rules = role["rules"].as_array().unwrap();
    let has = |group: &str, resource: &str| {
        rules.iter().any(|r| {
            r["apiGroups"] == json!([group])
                && r["resources"] == json!([resource])
                && r["verbs"] == json!(["create"])
        })
    };
    [
        has("authentication.k8s.io", "tokenreviews"),
        has("authorization.k8s.io", "subjectaccessreviews"),
    ]
}

fn monitoring(helm: &std::path::Path, set: &str) -> Manifests {
    let mut extra = vec!["--set", "prometheus.serviceMonitor.enabled=true"];
    extra.extend(MONITORING_API_VERSIONS);
    if !set.is_empty() {
        extra.extend(["--set", set]);
    }
    render_with(helm, None, &extra)
}

#[test]
fn without_metrics_secure_nothing_of_it_is_rendered() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let m = monitoring(&helm, "");
    assert!(!m.text.contains("--metrics-secure"));
    assert!(!m.text.contains("--metrics-cert-file"));
    assert!(!m.text.contains("metrics-tls"));
    assert!(!m.text.contains("nonResourceURLs"));
    for comp in COMPONENTS {
        let workload = m.workload(comp).unwrap();
        for probe in probes(workload) {
            assert!(probe.get("scheme").is_none(), "{comp}: {probe}");
        }
        let role = m.one("ClusterRole", &format!("lb-ferrolb-{comp}"));
        assert_eq!(has_review_rules(role), [false, false], "{comp}");
        let endpoint =
            &m.one("ServiceMonitor", &format!("lb-ferrolb-{comp}"))["spec"]["endpoints"][0];
        for key in ["scheme", "bearerTokenFile", "tlsConfig", "authorization"] {
            assert!(endpoint.get(key).is_none(), "{comp}: {endpoint}");
        }
    }
    assert!(m.find("ClusterRole", "lb-ferrolb-metrics-reader").is_none());
}

#[test]
fn metrics_secure_with_a_self_signed_certificate() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let m = monitoring(&helm, "metrics.secure=true");
    for comp in COMPONENTS {
        let workload = m.workload(comp).unwrap();
        let args = args(workload);
        assert!(
            args.contains(&"--metrics-secure".to_string()),
            "{comp}: {args:?}"
        );
        assert!(
            !args.iter().any(|a| a.starts_with("--metrics-cert-file")),
            "{args:?}"
        );
        assert!(
            !args.iter().any(|a| a.starts_with("--metrics-key-file")),
            "{args:?}"
        );
        // The kubelet probes over HTTPS, without a token (the endpoints need none).
        for probe in probes(workload) {
            assert_eq!(probe["scheme"], "HTTPS", "{comp}: {probe}");
            assert!(probe.get("httpHeaders").is_none(), "{comp}: {probe}");
        }
        assert!(!m.text.contains("metrics-tls"));
        let role = m.one("ClusterRole", &format!("lb-ferrolb-{comp}"));
        assert_eq!(has_review_rules(role), [true, true], "{comp}");
        let endpoint =
            &m.one("ServiceMonitor", &format!("lb-ferrolb-{comp}"))["spec"]["endpoints"][0];
        assert_eq!(endpoint["scheme"], "https", "{comp}");
        assert_eq!(
            endpoint["bearerTokenFile"],
            "/var/run/secrets/kubernetes.io/serviceaccount/token"
        );
        assert_eq!(endpoint["tlsConfig"], json!({ "insecureSkipVerify": true }));
    }
    let reader = m.one("ClusterRole", "lb-ferrolb-metrics-reader");
    assert_eq!(
        reader["rules"],
        json!([{ "nonResourceURLs": ["/metrics"], "verbs": ["get"] }])
    );
    // Users bind it to their Prometheus: the chart binds it to nobody.
    for binding in m.of_kind("ClusterRoleBinding") {
        assert_ne!(binding["roleRef"]["name"], "lb-ferrolb-metrics-reader");
    }
}

#[test]
fn metrics_secure_with_a_secret_mounts_it_and_monitors_check_its_ca() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let m = render_with(
        &helm,
        Some(&values_dir().join("metrics-secure.yaml")),
        &MONITORING_API_VERSIONS,
    );
    for comp in COMPONENTS {
        let workload = m.workload(comp).unwrap();
        let volume = pod_spec(workload)["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["secret"]["secretName"] == "ferrolb-metrics-tls")
            .unwrap_or_else(|| panic!("{comp}: no volume of the Secret"));
        let mount = container(workload)["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == volume["name"])
            .unwrap_or_else(|| panic!("{comp}: the Secret is not mounted"));
        assert_eq!(mount["readOnly"], true);
        let dir = mount["mountPath"].as_str().unwrap();
        assert_eq!(
            flag(workload, "--metrics-cert-file").as_deref(),
            Some(format!("{dir}/tls.crt").as_str()),
            "{comp}"
        );
        assert_eq!(
            flag(workload, "--metrics-key-file").as_deref(),
            Some(format!("{dir}/tls.key").as_str()),
            "{comp}"
        );
        assert!(args(workload).contains(&"--metrics-secure".to_string()));
        let endpoint =
            &m.one("ServiceMonitor", &format!("lb-ferrolb-{comp}"))["spec"]["endpoints"][0];
        assert_eq!(endpoint["scheme"], "https");
        let service = format!("lb-ferrolb-{comp}-metrics");
        assert!(m.find("Service", &service).is_some());
        assert_eq!(
            endpoint["tlsConfig"],
            json!({
                "ca": { "secret": { "name": "ferrolb-metrics-tls", "key": "ca.crt" } },
                "serverName": format!("{service}.{NAMESPACE}.svc"),
            }),
            "{comp}"
        );
    }
    // The notes say how to let Prometheus in; without metrics.secure they do not.
    let notes = crate::docs::notes(&helm, Some("metrics-secure.yaml"));
    assert!(
        notes.contains("--clusterrole=lb-ferrolb-metrics-reader"),
        "{notes}"
    );
    assert!(!crate::docs::notes(&helm, None).contains("metrics-reader"));
    // The speaker keeps its gossip key mount beside the certificate's.
    let speaker = m.workload("speaker").unwrap();
    assert!(flag(speaker, "--memberlist-key-file").is_some());
}
