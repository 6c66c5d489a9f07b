//! The Kubernetes API as a user drives it: namespaces, the MetalLB ConfigMap, LoadBalancer
//! Services, their EXTERNAL-IPs and the events written about them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use super::wait::{PATIENCE, wait_for};

pub const CONFIG_NAME: &str = "config";

pub async fn create_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
}

/// Creates or replaces the MetalLB-format ConfigMap (`config` key) named [`CONFIG_NAME`].
pub async fn apply_config(client: &Client, namespace: &str, config: &str) {
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let manifest = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": CONFIG_NAME, "namespace": namespace },
        "data": { "config": config },
    });
    configmaps
        .patch(
            CONFIG_NAME,
            &PatchParams::apply("ferrolb-e2e").force(),
            &Patch::Apply(manifest),
        )
        .await
        .unwrap_or_else(|e| panic!("apply ConfigMap {namespace}/{CONFIG_NAME}: {e}"));
}

/// A `type: LoadBalancer` Service with one TCP port; `extra` is merged into it (JSON merge), to
/// add annotations, `spec.loadBalancerIP`, IP families and so on.
pub fn lb_service(name: &str, extra: serde_json::Value) -> Service {
    let mut manifest = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": name },
        "spec": {
            "type": "LoadBalancer",
            "selector": { "app": name },
            "ports": [{ "name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080 }],
        },
    });
    merge(&mut manifest, extra);
    serde_json::from_value(manifest).expect("valid Service")
}

fn merge(base: &mut serde_json::Value, extra: serde_json::Value) {
    match (base, extra) {
        (serde_json::Value::Object(base), serde_json::Value::Object(extra)) => {
            for (key, value) in extra {
                merge(base.entry(key).or_insert(serde_json::Value::Null), value);
            }
        }
        (base, extra) => *base = extra,
    }
}

pub async fn create_service(services: &Api<Service>, service: &Service) -> Service {
    services
        .create(&PostParams::default(), service)
        .await
        .unwrap_or_else(|e| panic!("create Service {:?}: {e}", service.metadata.name))
}

pub async fn delete_service(services: &Api<Service>, name: &str) {
    services
        .delete(name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete Service {name}: {e}"));
}

/// The EXTERNAL-IPs in `status.loadBalancer.ingress`, in order.
pub fn ingress_ips(service: &Service) -> Vec<String> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ingress| ingress.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default()
}

pub fn annotation<'a>(service: &'a Service, key: &str) -> Option<&'a str> {
    service
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// Waits until the Service has at least one EXTERNAL-IP, and returns it.
pub async fn wait_for_ips(services: &Api<Service>, name: &str) -> Vec<String> {
    wait_for(
        &format!("Service {name} to get an EXTERNAL-IP"),
        PATIENCE,
        || async move {
            let service = services.get(name).await.ok()?;
            let ips = ingress_ips(&service);
            (!ips.is_empty()).then_some(ips)
        },
    )
    .await
}

/// Every LoadBalancer Service in the namespace with its EXTERNAL-IPs (empty while pending).
pub async fn external_ips(services: &Api<Service>) -> BTreeMap<String, Vec<String>> {
    services
        .list(&ListParams::default())
        .await
        .expect("list Services")
        .items
        .iter()
        .filter(|s| s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer"))
        .map(|s| (s.metadata.name.clone().unwrap_or_default(), ingress_ips(s)))
        .collect()
}

/// One event as a user sees it in `kubectl events`.
#[derive(Clone, Debug)]
pub struct SeenEvent {
    pub type_: String,
    pub reason: String,
    pub note: String,
    pub kind: String,
    pub name: String,
    pub reporting_controller: String,
    pub reporting_instance: String,
}

/// Events about the object `kind`/`name` in `namespace` (events.k8s.io/v1, which also shows those
/// written through the core v1 API).
pub async fn events_about(
    client: &Client,
    namespace: &str,
    kind: &str,
    name: &str,
) -> Vec<SeenEvent> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    events
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter_map(|e| {
            let regarding = e.regarding.as_ref()?;
            (regarding.kind.as_deref() == Some(kind) && regarding.name.as_deref() == Some(name))
                .then(|| SeenEvent {
                    type_: e.type_.clone().unwrap_or_default(),
                    reason: e.reason.clone().unwrap_or_default(),
                    note: e.note.clone().unwrap_or_default(),
                    kind: kind.to_string(),
                    name: name.to_string(),
                    reporting_controller: e.reporting_controller.clone().unwrap_or_default(),
                    reporting_instance: e.reporting_instance.clone().unwrap_or_default(),
                })
        })
        .collect()
}
