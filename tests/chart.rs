//! The Helm chart and the image, checked without a cluster: `helm lint`, `helm template` with the
//! default values and every values file under tests/chart/, every rendered manifest validated
//! against the Kubernetes 1.33 schemas (the crate's k8s-openapi feature), bad values rejected by
//! the schema, safety properties of the pods, the exact RBAC rules, the flags the chart passes
//! accepted by the binary, `hadolint Dockerfile`, and the example configs in config/.
//!
//! helm, kubernetes-validate and hadolint come from `scripts/install-test-tools.sh`; without them
//! these tests print why they skip, and with `CI` set they fail instead.

#[path = "chart/cluster.rs"]
mod cluster;
#[path = "chart/docs.rs"]
mod docs;
#[path = "chart/examples.rs"]
mod examples;
#[path = "chart/image.rs"]
mod image;
#[path = "chart/rbac.rs"]
mod rbac;
#[path = "chart/release.rs"]
mod release;
#[path = "chart/rendering.rs"]
mod rendering;
#[path = "chart/secure_metrics.rs"]
mod secure_metrics;
#[path = "chart/support.rs"]
mod support;

use std::process::Command;

use serde_json::Value;
use support::*;

/// Kubernetes version of the crate's k8s-openapi feature (`v1_33`), for kubernetes-validate.
const KUBERNETES_VERSION: &str = "1.33.0";

#[test]
fn chart_version_and_app_version_track_the_crate() {
    let text = std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap();
    let chart: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(
        chart["appVersion"],
        env!("CARGO_PKG_VERSION"),
        "Chart.yaml appVersion"
    );
    assert_eq!(
        chart["version"],
        env!("CARGO_PKG_VERSION"),
        "Chart.yaml version"
    );
}

#[test]
fn helm_lint_passes_for_every_scenario() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    for values in scenarios() {
        let mut cmd = Command::new(&helm);
        cmd.args(["lint", "--strict", "--namespace", NAMESPACE])
            .arg(chart_dir());
        if let Some(v) = &values {
            cmd.arg("--values").arg(v);
        }
        run_ok(
            &mut cmd,
            format!("helm lint with {}", scenario_name(&values)),
        );
    }
}

#[test]
fn every_rendered_manifest_passes_kubernetes_schema_validation() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let Some(validate) = require_tool("kubernetes-validate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for values in scenarios() {
        let rendered = render(&helm, values.as_deref());
        // kubernetes-validate knows only built-in kinds; the Prometheus Operator objects are
        // checked field by field in `monitoring_objects_select_the_metrics_endpoints`.
        for doc in &rendered.docs {
            let api = doc["apiVersion"].as_str().unwrap_or_default();
            let group = api.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            assert!(
                [
                    "",
                    "apps",
                    "rbac.authorization.k8s.io",
                    "policy",
                    "monitoring.coreos.com"
                ]
                .contains(&group),
                "unexpected API group of {api} in {}",
                scenario_name(&values)
            );
        }
        let file = dir.path().join("rendered.yaml");
        std::fs::write(&file, &rendered.text).unwrap();
        run_ok(
            Command::new(&validate)
                .args([
                    "--strict",
                    "--quiet",
                    "--kubernetes-version",
                    KUBERNETES_VERSION,
                ])
                .arg(&file),
            format!(
                "validating the manifests rendered with {}",
                scenario_name(&values)
            ),
        );
    }
}

/// Guards the check above against a validator that passes everything.
#[test]
fn kubernetes_validate_rejects_a_broken_manifest() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let Some(validate) = require_tool("kubernetes-validate") else {
        return;
    };
    let rendered = render(&helm, None);
    let broken = rendered
        .text
        .replacen("hostNetwork: true", "hostNetwork: \"yes\"", 1);
    assert_ne!(broken, rendered.text, "the speaker sets hostNetwork");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, broken).unwrap();
    let out = run(Command::new(&validate)
        .args([
            "--strict",
            "--quiet",
            "--kubernetes-version",
            KUBERNETES_VERSION,
        ])
        .arg(&file));
    assert!(
        !out.status.success(),
        "a string hostNetwork must not validate"
    );
    assert!(stdout(&out).contains("hostNetwork") || stderr(&out).contains("hostNetwork"));
}

#[test]
fn values_schema_rejects_misspelled_and_mistyped_values() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let mut bad: Vec<_> = std::fs::read_dir(values_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("bad-"))
        .collect();
    bad.sort();
    assert!(
        bad.len() >= 10,
        "expected the set of bad values files, found {bad:?}"
    );
    for file in bad {
        let expected = expected_error(&file);
        match helm_template(&helm, Some(&file)) {
            Ok(_) => panic!("{} was accepted", file.display()),
            Err(e) => assert!(
                e.contains(&expected),
                "{}: error does not mention `{expected}`:\n{e}",
                file.display()
            ),
        }
    }
}

#[test]
fn speaker_is_not_privileged_and_adds_only_net_raw() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    for values in scenarios() {
        let m = render(&helm, values.as_deref());
        let speaker = m.workload("speaker").expect("speaker DaemonSet");
        let name = scenario_name(&values);
        assert_eq!(speaker["kind"], "DaemonSet");
        let pod = pod_spec(speaker);
        assert_eq!(pod["hostNetwork"], true, "{name}");
        for field in ["hostPID", "hostIPC"] {
            assert_ne!(pod[field], true, "{name}: {field}");
        }
        let sc = &container(speaker)["securityContext"];
        assert_eq!(sc["privileged"], false, "{name}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(
            sc["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{name}"
        );
        assert_eq!(
            sc["capabilities"]["add"],
            serde_json::json!(["NET_RAW"]),
            "{name}"
        );
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        // Only the memberlist key Secret may be mounted; no hostPath anywhere.
        for volume in pod["volumes"].as_array().into_iter().flatten() {
            assert!(
                volume.get("hostPath").is_none(),
                "{name}: hostPath volume {volume}"
            );
        }
    }
}

#[test]
fn controller_runs_as_non_root_with_read_only_root_filesystem() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    for values in scenarios() {
        let m = render(&helm, values.as_deref());
        let controller = m.workload("controller").expect("controller Deployment");
        let name = scenario_name(&values);
        assert_eq!(controller["kind"], "Deployment");
        let pod = pod_spec(controller);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        // 65534, or none for OpenShift's SCC to assign (runAsNonRoot still holds).
        let uid = &pod["securityContext"]["runAsUser"];
        assert!(uid == 65534 || uid.is_null(), "{name}: runAsUser {uid}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert_ne!(pod["hostNetwork"], true, "{name}");
        let sc = &container(controller)["securityContext"];
        assert_eq!(sc["runAsNonRoot"], true, "{name}");
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(sc["privileged"], false, "{name}");
        assert_eq!(
            sc["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{name}"
        );
        assert!(
            sc["capabilities"].get("add").is_none(),
            "{name}: controller adds no capability"
        );
        assert!(
            flag(controller, "--leader-elect").as_deref() == Some("true"),
            "{name}"
        );
        let replicas = controller["spec"]["replicas"].as_u64().unwrap();
        assert!(replicas >= 2, "{name}: a standby controller replica");
    }
}
