//! The thin edge of `ferrolb doctor`: reads the objects the checks look at. A list that cannot
//! be read (RBAC, an API not served) leaves its part of the snapshot empty and is reported.

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Service};
use k8s_openapi::api::networking::v1::ServiceCIDR;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde_json::Value;

use super::checks::Snapshot;
use crate::config::crd::GROUP;
use crate::k8s::metallb::KINDS;

/// Why `ferrolb doctor` could not start.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Client(#[from] crate::k8s::ClientError),
    #[error(transparent)]
    ServiceRange(#[from] crate::config::overlap::ServiceRangeError),
}

fn json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

async fn list<K>(api: Api<K>, what: &str, unreadable: &mut Vec<String>) -> Vec<K>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) => {
            unreadable.push(format!("{what}: {e}"));
            Vec::new()
        }
    }
}

/// [`list`], each object as JSON.
async fn list_json<K>(api: Api<K>, what: &str, unreadable: &mut Vec<String>) -> Vec<Value>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Serialize,
{
    list(api, what, unreadable).await.iter().map(json).collect()
}

/// Everything the checks need, and what could not be read.
pub async fn snapshot(client: &Client, namespace: &str) -> (Snapshot, Vec<String>) {
    let mut unreadable = Vec::new();
    let u = &mut unreadable;
    let webhook_configurations = list_json(
        Api::<ValidatingWebhookConfiguration>::all(client.clone()),
        "ValidatingWebhookConfigurations",
        u,
    )
    .await;
    let crds: Vec<Value> = list(
        Api::<CustomResourceDefinition>::all(client.clone()),
        "CustomResourceDefinitions",
        u,
    )
    .await
    .iter()
    .filter(|c| c.spec.group == GROUP)
    .map(json)
    .collect();
    let services = list(Api::<Service>::all(client.clone()), "Services", u)
        .await
        .iter()
        .map(|s| {
            format!(
                "{}/{}",
                s.metadata.namespace.as_deref().unwrap_or(""),
                s.metadata.name.as_deref().unwrap_or("")
            )
        })
        .collect();
    let mut workloads: Vec<Value> = Vec::new();
    for d in list(Api::<Deployment>::all(client.clone()), "Deployments", u).await {
        let mut v = json(&d);
        v["kind"] = "Deployment".into();
        workloads.push(v);
    }
    for d in list(Api::<DaemonSet>::all(client.clone()), "DaemonSets", u).await {
        let mut v = json(&d);
        v["kind"] = "DaemonSet".into();
        workloads.push(v);
    }
    let mut config_objects = Vec::new();
    let installed: Vec<&str> = crds
        .iter()
        .filter_map(|c| c.pointer("/metadata/name").and_then(Value::as_str))
        .collect();
    for kind in KINDS {
        if !installed.contains(&format!("{}.{GROUP}", kind.plural).as_str()) {
            continue;
        }
        let api =
            Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &kind.api_resource());
        for o in list(api, kind.kind, u).await {
            let mut v = json(&o);
            v["apiVersion"] = kind.api_version().into();
            v["kind"] = kind.kind.into();
            config_objects.push(v);
        }
    }
    let nodes = list_json(Api::<Node>::all(client.clone()), "Nodes", u).await;
    let service_cidrs = list_json(
        Api::<ServiceCIDR>::all(client.clone()),
        "ServiceCIDRs (served from Kubernetes 1.33)",
        u,
    )
    .await;
    let kube_proxy = Api::<ConfigMap>::namespaced(client.clone(), "kube-system")
        .get_opt("kube-proxy")
        .await
        .ok()
        .flatten()
        .map(|c| json(&c));
    let namespace_labels = match Api::<Namespace>::all(client.clone())
        .get_opt(namespace)
        .await
    {
        Ok(ns) => ns.and_then(|n| n.metadata.labels).map(|l| json(&l)),
        Err(e) => {
            unreadable.push(format!("Namespace {namespace}: {e}"));
            None
        }
    };
    let snapshot = Snapshot {
        namespace: namespace.to_owned(),
        namespace_labels,
        webhook_configurations,
        crds,
        services,
        workloads,
        config_objects,
        kube_proxy,
        nodes,
        service_cidrs,
        service_range: Vec::new(),
    };
    (snapshot, unreadable)
}
