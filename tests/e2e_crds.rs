//! End-to-end: `ferrolb controller --config-source crds` against a real kube-apiserver with the
//! chart's CRDs installed, the config written with kubectl as a user would (skipped, with a
//! message, when `KUBEBUILDER_ASSETS` is unset).

mod e2e;

use std::path::Path;

use k8s_openapi::api::core::v1::Service;
use kube::Api;
use serde_json::json;

use e2e::api::{self, create_service, events_about, lb_service, wait_for_ips};
use e2e::wait::{PATIENCE, wait_for};
use e2e::{APPS, ControlPlane, Controller, ControllerOptions, NAMESPACE};

/// A namespace whose Services are not pinned to any pool.
const OTHER: &str = "other";

fn objects() -> String {
    format!(
        "apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: general, namespace: {NAMESPACE}}}
spec:
  addresses: [192.0.2.0/28]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: apps-only, namespace: {NAMESPACE}}}
spec:
  addresses: [198.51.100.0/29]
  serviceAllocation:
    priority: 10
    namespaces: [{APPS}]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: everywhere, namespace: {NAMESPACE}}}
"
    )
}

fn kubectl_apply(plane: &ControlPlane, yaml: &str) -> Result<(), String> {
    let path = plane.dir().join(format!("apply-{}.yaml", rand_suffix()));
    std::fs::write(&path, yaml).unwrap();
    let output = std::process::Command::new("kubectl")
        .arg(format!("--kubeconfig={}", plane.kubeconfig().display()))
        .args(["apply", "-f"])
        .arg(&path)
        .output()
        .expect("kubectl is installed");
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

async fn setup(test: &str) -> Option<(ControlPlane, kube::Client)> {
    let plane = ControlPlane::start(test).await?;
    let client = plane.client().await;
    for ns in [NAMESPACE, APPS, OTHER] {
        api::create_namespace(&client, ns).await;
    }
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/ferrolb/crds");
    plane.kubectl(&["apply", "-f", &crds.display().to_string()]);
    plane.wait_crds_established();
    kubectl_apply(&plane, &objects()).expect("the objects are valid");
    Some((plane, client))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_pin_services_refuse_overlaps_and_survive_a_restart() {
    let test = "custom_resources_pin_services_refuse_overlaps_and_survive_a_restart";
    let Some((plane, client)) = setup(test).await else {
        return;
    };
    let options = ControllerOptions::new(NAMESPACE, "ctrl-crd").crds();
    let mut controller = Controller::start_ready(&plane, &options).await;
    let apps: Api<Service> = Api::namespaced(client.clone(), APPS);
    let other: Api<Service> = Api::namespaced(client.clone(), OTHER);
    create_service(&apps, &lb_service("web", json!({}))).await;
    create_service(&other, &lb_service("web", json!({}))).await;
    let pinned = wait_for_ips(&apps, "web").await;
    let general = wait_for_ips(&other, "web").await;
    assert!(
        pinned[0].starts_with("198.51.100."),
        "apps/web got {pinned:?}"
    );
    assert!(
        general[0].starts_with("192.0.2."),
        "other/web got {general:?}"
    );
    assert_eq!(controller.metric("ferrolb_config_stale").await, Some(0.0));

    // The API server refuses a malformed pool itself (the CRD's rules).
    let malformed = format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: typo, \
         namespace: {NAMESPACE}}}\nspec:\n  addresses: [not-an-address]\n"
    );
    let refused = kubectl_apply(&plane, &malformed).expect_err("a malformed pool is refused");
    assert!(refused.contains("typo"), "{refused}");

    // An overlap is a rule across objects: accepted by the API server, refused by the
    // controller with a Warning on the pool, the last good config kept.
    let overlap = format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: overlap, \
         namespace: {NAMESPACE}}}\nspec:\n  addresses: [192.0.2.0/24]\n"
    );
    kubectl_apply(&plane, &overlap).expect("the API server cannot see overlaps");
    let warning = wait_for("a Warning event on an IPAddressPool", PATIENCE, || {
        let client = client.clone();
        async move {
            for pool in ["overlap", "general"] {
                let events = events_about(&client, NAMESPACE, "IPAddressPool", pool).await;
                if let Some(e) = events.into_iter().find(|e| e.type_ == "Warning") {
                    return Some(e);
                }
            }
            None
        }
    })
    .await;
    assert!(warning.note.contains("overlap"), "{warning:?}");
    wait_for("ferrolb_config_stale to be 1", PATIENCE, || async {
        (controller.metric("ferrolb_config_stale").await == Some(1.0)).then_some(())
    })
    .await;
    assert_eq!(wait_for_ips(&apps, "web").await, pinned);
    assert_eq!(wait_for_ips(&other, "web").await, general);

    // Removing the overlap makes the set valid again.
    plane.kubectl(&["-n", NAMESPACE, "delete", "ipaddresspool", "overlap"]);
    wait_for("ferrolb_config_stale to be 0", PATIENCE, || async {
        (controller.metric("ferrolb_config_stale").await == Some(0.0)).then_some(())
    })
    .await;

    // A restart reads the same objects and changes nothing.
    controller.terminate();
    drop(controller);
    let controller = Controller::start_ready(&plane, &options).await;
    create_service(&other, &lb_service("after", json!({}))).await;
    let after = wait_for_ips(&other, "after").await;
    assert!(after[0].starts_with("192.0.2."), "{after:?}");
    assert_ne!(after, general);
    assert_eq!(wait_for_ips(&apps, "web").await, pinned);
    assert_eq!(wait_for_ips(&other, "web").await, general);
    assert_eq!(controller.metric("ferrolb_config_stale").await, Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_configmap_converted_to_custom_resources_keeps_every_ip() {
    let test = "a_legacy_configmap_converted_to_custom_resources_keeps_every_ip";
    let Some((plane, client)) = setup(test).await else {
        return;
    };
    let legacy = "address-pools:
- name: default
  protocol: layer2
  addresses: [203.0.113.0/28]
";
    api::apply_config(&client, NAMESPACE, legacy).await;
    // The pools from setup() are replaced by what `convert` makes of the ConfigMap.
    plane.kubectl(&["-n", NAMESPACE, "delete", "ipaddresspool", "--all"]);
    let legacy_options = ControllerOptions::new(NAMESPACE, "ctrl-legacy");
    let mut controller = Controller::start_ready(&plane, &legacy_options).await;
    let apps: Api<Service> = Api::namespaced(client.clone(), APPS);
    let mut before = std::collections::BTreeMap::new();
    for name in ["a", "b", "c"] {
        create_service(&apps, &lb_service(name, json!({}))).await;
        before.insert(name, wait_for_ips(&apps, name).await);
    }
    controller.terminate();
    drop(controller);

    // The fix a controller without the CRDs names (k8s::source_hint), on what kubectl prints.
    let cm = plane.kubectl(&["get", "configmap", "-n", NAMESPACE, "config", "-o", "yaml"]);
    let mut convert = std::process::Command::new(e2e::ferrolb::binary())
        .args(["convert", "--namespace", NAMESPACE, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut convert.stdin.take().unwrap(), cm.as_bytes()).unwrap();
    let converted = convert.wait_with_output().unwrap();
    assert!(
        converted.status.success(),
        "{}",
        String::from_utf8_lossy(&converted.stderr)
    );
    kubectl_apply(&plane, &String::from_utf8_lossy(&converted.stdout)).expect("converted");
    let controller = Controller::start_ready(
        &plane,
        &ControllerOptions::new(NAMESPACE, "ctrl-crd").crds(),
    )
    .await;
    create_service(&apps, &lb_service("d", json!({}))).await;
    let d = wait_for_ips(&apps, "d").await;
    assert!(d[0].starts_with("203.0.113."), "{d:?}");
    for (name, ips) in &before {
        assert_eq!(&wait_for_ips(&apps, name).await, ips, "{name} moved");
        assert_ne!(&d, ips);
    }
    assert_eq!(controller.metric("ferrolb_config_stale").await, Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_metallb_webhook_leftovers_and_its_fix_works() {
    let test = "doctor_reports_metallb_webhook_leftovers_and_its_fix_works";
    let Some((plane, _client)) = setup(test).await else {
        return;
    };
    // What `helm uninstall metallb` leaves: the webhook configuration, its Service gone.
    let leftover = "apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: metallb-webhook-configuration}
webhooks:
- name: ipaddresspoolvalidationwebhook.metallb.io
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  clientConfig:
    service: {namespace: metallb-system, name: metallb-webhook-service, path: /validate-metallb-io-v1beta1-ipaddresspool}
  rules:
  - apiGroups: [metallb.io]
    apiVersions: [v1beta1]
    operations: [CREATE, UPDATE]
    resources: [ipaddresspools]
";
    kubectl_apply(&plane, leftover).expect("webhook configuration");
    let pool = format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: more, \
         namespace: {NAMESPACE}}}\nspec:\n  addresses: [203.0.113.0/28]\n"
    );
    // The leftover refuses every change to a pool.
    kubectl_apply(&plane, &pool).expect_err("the leftover webhook blocks pools");

    let (code, report) = e2e::ferrolb::doctor(&plane, NAMESPACE);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains(
            "ERROR [metallb-leftovers] ValidatingWebhookConfiguration metallb-webhook-configuration"
        ) && report.contains("metallb-system/metallb-webhook-service"),
        "{report}"
    );
    assert!(
        report.contains(
            "fix: kubectl delete validatingwebhookconfiguration metallb-webhook-configuration"
        ),
        "{report}"
    );
    assert!(
        !report.contains("[crds]"),
        "the chart's CRDs are installed: {report}"
    );

    // The fix it prints works, and then the doctor is satisfied.
    plane.kubectl(&[
        "delete",
        "validatingwebhookconfiguration",
        "metallb-webhook-configuration",
    ]);
    kubectl_apply(&plane, &pool).expect("pools can be changed again");
    let (code, report) = e2e::ferrolb::doctor(&plane, NAMESPACE);
    assert_eq!(code, Some(0), "{report}");
    assert!(!report.contains("ERROR"), "{report}");
}

/// Pools pinned by Service labels in the running controller, as `plan` decides them: a Service
/// picked by `serviceSelectors` (`matchExpressions`) gets the label's pool, in a namespace that
/// is not pinned and in one that is (the label's pool has the better priority there); a Service
/// labelled after it got an address keeps it (as MetalLB does), and the next labelled one is
/// pinned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_labels_pin_pools_by_priority_in_the_live_controller() {
    let test = "service_labels_pin_pools_by_priority_in_the_live_controller";
    let Some((plane, client)) = setup(test).await else {
        return;
    };
    // Priority 1 is tried before apps-only's 10.
    let gold = format!(
        "apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: gold, namespace: {NAMESPACE}}}
spec:
  addresses: [203.0.113.1-203.0.113.6]
  serviceAllocation:
    priority: 1
    serviceSelectors:
    - matchExpressions:
      - {{key: tier, operator: In, values: [gold, platinum]}}
"
    );
    kubectl_apply(&plane, &gold).expect("the gold pool is valid");
    let mut options = ControllerOptions::new(NAMESPACE, "ctrl-labels").crds();
    options.log = Some("info,ferrolb::controller::live=debug".into());
    let controller = Controller::start_ready(&plane, &options).await;
    let apps: Api<Service> = Api::namespaced(client.clone(), APPS);
    let other: Api<Service> = Api::namespaced(client.clone(), OTHER);
    let labelled =
        |name: &str, tier: &str| lb_service(name, json!({"metadata": {"labels": {"tier": tier}}}));

    create_service(&other, &labelled("gold-other", "gold")).await;
    assert_eq!(wait_for_ips(&other, "gold-other").await, ["203.0.113.1"]);
    create_service(&apps, &labelled("gold-apps", "platinum")).await;
    assert_eq!(wait_for_ips(&apps, "gold-apps").await, ["203.0.113.2"]);
    // Not picked by the selector: the namespace's pool, or the unpinned one.
    create_service(&apps, &labelled("silver-apps", "silver")).await;
    assert_eq!(wait_for_ips(&apps, "silver-apps").await, ["198.51.100.0"]);
    create_service(&other, &lb_service("plain", json!({}))).await;
    assert_eq!(wait_for_ips(&other, "plain").await, ["192.0.2.0"]);
    for (services, name, pool) in [
        (&other, "gold-other", "gold"),
        (&apps, "gold-apps", "gold"),
        (&apps, "silver-apps", "apps-only"),
        (&other, "plain", "general"),
    ] {
        let svc = services.get(name).await.unwrap();
        assert_eq!(
            api::annotation(&svc, "metallb.io/ip-allocated-from-pool"),
            Some(pool),
            "{name}"
        );
    }

    // Labelled later: the controller decides on the labelled version and keeps the address.
    let relabelled = other
        .patch(
            "plain",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"labels": {"tier": "gold"}}})),
        )
        .await
        .unwrap();
    let version = format!("version={} ", relabelled.metadata.resource_version.unwrap());
    wait_for(
        "the controller's decision on the labelled plain",
        PATIENCE,
        || {
            let log = controller.log_tail(100_000);
            let decided = log.lines().any(|l| {
                l.contains("decided") && l.contains("other/plain") && l.contains(&version)
            });
            async move { decided.then_some(()) }
        },
    )
    .await;
    assert_eq!(wait_for_ips(&other, "plain").await, ["192.0.2.0"]);
    create_service(&other, &labelled("gold-later", "gold")).await;
    assert_eq!(wait_for_ips(&other, "gold-later").await, ["203.0.113.3"]);
    let plain = other.get("plain").await.unwrap();
    assert_eq!(api::ingress_ips(&plain), ["192.0.2.0"]);
    assert_eq!(
        api::annotation(&plain, "metallb.io/ip-allocated-from-pool"),
        Some("general")
    );
}

/// Sent (and counted in `series`) Events with `reason` about the object `kind`/`name`.
async fn events_with_reason(
    client: &kube::Client,
    kind: &str,
    name: &str,
    reason: &str,
) -> Vec<(u32, String)> {
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), NAMESPACE);
    events
        .list(&kube::api::ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().is_some_and(|r| {
                    r.kind.as_deref() == Some(kind) && r.name.as_deref() == Some(name)
                })
        })
        .map(|e| {
            let sent = e.series.as_ref().map_or(1, |s| s.count.max(1)) as u32;
            (sent, e.note.unwrap_or_default())
        })
        .collect()
}

/// A field a future MetalLB might add to L2Advertisement (`nodeFailoverSelectors`, shaped like
/// `preferredNodeSelectors`: a weight of 1–100 and a `preference` label selector), added to the
/// installed CRD so that the API server keeps the field instead of pruning it.
const NODE_FAILOVER_SELECTORS: &str = r#"[{"op": "add",
 "path": "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/nodeFailoverSelectors",
 "value": {"type": "array", "items": {"type": "object", "required": ["weight", "preference"],
   "properties": {
     "weight": {"type": "integer", "minimum": 1, "maximum": 100},
     "preference": {"type": "object", "properties": {
       "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
       "matchExpressions": {"type": "array", "items": {"type": "object",
         "required": ["key", "operator"], "properties": {
           "key": {"type": "string"}, "operator": {"type": "string"},
           "values": {"type": "array", "items": {"type": "string"}}}}}}}}}}}]"#;

/// An L2Advertisement with a field a newer MetalLB added (kept by MetalLB's CRDs after a
/// migration) does not refuse the config: the controller allocates from the pools, its
/// ConfigurationState says Valid, and the object gets one Warning `UnknownField` naming the
/// field, recorded again only when the object changes, not on every reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_field_of_a_newer_metallb_is_ignored_with_one_warning_event() {
    let test = "an_unknown_field_of_a_newer_metallb_is_ignored_with_one_warning_event";
    let Some((plane, client)) = setup(test).await else {
        return;
    };
    plane.kubectl(&[
        "patch",
        "crd",
        "l2advertisements.metallb.io",
        "--type=json",
        "-p",
        NODE_FAILOVER_SELECTORS,
    ]);
    let preferred = |interfaces: &str| {
        format!(
            "apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: preferred, namespace: {NAMESPACE}}}
spec:
  ipAddressPools: [general]
  interfaces: [{interfaces}]
  nodeFailoverSelectors:
  - weight: 50
    preference:
      matchLabels: {{zone: east}}
"
        )
    };
    // The CRD may take a moment to serve the new schema; until then the field is pruned.
    wait_for(
        "the API server to keep nodeFailoverSelectors",
        PATIENCE,
        || {
            kubectl_apply(&plane, &preferred("eth0")).expect("the advertisement is valid");
            let stored = plane.kubectl(&[
                "-n",
                NAMESPACE,
                "get",
                "l2advertisement",
                "preferred",
                "-o",
                "jsonpath={.spec.nodeFailoverSelectors[0].weight}",
            ]);
            async move { (stored.trim() == "50").then_some(()) }
        },
    )
    .await;

    let controller = Controller::start_ready(
        &plane,
        &ControllerOptions::new(NAMESPACE, "ctrl-unknown").crds(),
    )
    .await;
    let other: Api<Service> = Api::namespaced(client.clone(), OTHER);
    create_service(&other, &lb_service("web", json!({}))).await;
    let ips = wait_for_ips(&other, "web").await;
    assert!(ips[0].starts_with("192.0.2."), "other/web got {ips:?}");
    assert_eq!(controller.metric("ferrolb_config_stale").await, Some(0.0));
    let states: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        NAMESPACE,
        &kube::core::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("metallb.io", "v1beta1", "ConfigurationState"),
            "configurationstates",
        ),
    );
    wait_for(
        "the controller's ConfigurationState to say Valid",
        PATIENCE,
        || {
            let states = states.clone();
            async move {
                let state = states.get_opt("controller").await.ok()??;
                (state.data["status"]["result"] == "Valid").then_some(())
            }
        },
    )
    .await;
    let warned = wait_for(
        "a Warning UnknownField on the advertisement",
        PATIENCE,
        || {
            let client = client.clone();
            async move {
                let seen =
                    events_with_reason(&client, "L2Advertisement", "preferred", "UnknownField")
                        .await;
                (!seen.is_empty()).then_some(seen)
            }
        },
    )
    .await;
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert_eq!(warned[0].0, 1, "{warned:?}");
    assert!(
        warned[0].1.contains("spec.nodeFailoverSelectors") && warned[0].1.contains("ignored"),
        "{warned:?}"
    );
    let events = events_about(&client, NAMESPACE, "L2Advertisement", "preferred").await;
    assert!(
        events
            .iter()
            .all(|e| e.reason != "UnknownField" || e.type_ == "Warning"),
        "{events:?}"
    );

    // Another object changes: the config is loaded again, the warning is not recorded again.
    let tagged = format!(
        "apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: tagged, namespace: {NAMESPACE}}}
spec:
  addresses: [203.0.113.0/29]
  serviceAllocation:
    priority: 1
    serviceSelectors:
    - matchLabels: {{tier: tagged}}
"
    );
    kubectl_apply(&plane, &tagged).expect("the pool is valid");
    let labelled = lb_service(
        "tagged",
        json!({"metadata": {"labels": {"tier": "tagged"}}}),
    );
    create_service(&other, &labelled).await;
    assert_eq!(wait_for_ips(&other, "tagged").await, ["203.0.113.0"]);
    let seen = events_with_reason(&client, "L2Advertisement", "preferred", "UnknownField").await;
    let sent: u32 = seen.iter().map(|(n, _)| n).sum();
    assert_eq!(sent, 1, "recorded again on a reload: {seen:?}");

    // A new version of the object itself still holds the field: recorded once more.
    kubectl_apply(&plane, &preferred("eth1")).expect("the advertisement is valid");
    wait_for("the warning about the new version", PATIENCE, || {
        let client = client.clone();
        async move {
            let seen =
                events_with_reason(&client, "L2Advertisement", "preferred", "UnknownField").await;
            (seen.iter().map(|(n, _)| n).sum::<u32>() == 2).then_some(())
        }
    })
    .await;

    // A `bgpextras` ConfigMap (raw FRR configuration for MetalLB's FRR modes) is applied by
    // nothing: one Warning NotImplemented on it, and the ConfigurationState lists it while the
    // config stays Valid; deleted, the condition clears.
    let extras = format!(
        "apiVersion: v1
kind: ConfigMap
metadata: {{name: bgpextras, namespace: {NAMESPACE}}}
data:
  extras: |
    router bgp 64512
     bgp graceful-shutdown
"
    );
    kubectl_apply(&plane, &extras).expect("a ConfigMap");
    let note = wait_for("a Warning NotImplemented on bgpextras", PATIENCE, || {
        let client = client.clone();
        async move {
            let seen =
                events_with_reason(&client, "ConfigMap", "bgpextras", "NotImplemented").await;
            seen.first().map(|(_, note)| note.clone())
        }
    })
    .await;
    assert!(note.contains("not applied"), "{note}");
    let fields = |state: &kube::api::DynamicObject| {
        state.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "fieldsNotImplemented")
            .cloned()
    };
    let condition = wait_for("fieldsNotImplemented to name bgpextras", PATIENCE, || {
        let states = states.clone();
        async move {
            let state = states.get_opt("controller").await.ok()??;
            let condition = fields(&state)?;
            (condition["status"] == "True" && state.data["status"]["result"] == "Valid")
                .then_some(condition)
        }
    })
    .await;
    assert!(
        condition["message"]
            .as_str()
            .unwrap_or("")
            .contains("bgpextras"),
        "{condition}"
    );
    plane.kubectl(&["-n", NAMESPACE, "delete", "configmap", "bgpextras"]);
    wait_for("fieldsNotImplemented to clear", PATIENCE, || {
        let states = states.clone();
        async move {
            let state = states.get_opt("controller").await.ok()??;
            (fields(&state)?["status"] == "False").then_some(())
        }
    })
    .await;
}
