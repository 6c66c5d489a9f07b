//! What a user switching from MetalLB is told when ferrolb reads MetalLB's custom resources
//! (`--config-source crds`, the default) and the cluster serves none: the common case is a
//! cluster that ran MetalLB v0.9–v0.12 with the legacy ConfigMap. Said once per process, naming
//! every ConfigMap of the namespace that holds a MetalLB config, with both fixes: read that
//! ConfigMap (`--config-source configmap`), or convert it into the custom resources.
//!
//! The check and the message are plain functions; [`tell_if_not_served`] is the edge both
//! components call, with the ConfigMap `Api` they already hold the grants for.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::ListParams;

use super::metallb::POOL;
use crate::config::crd::GROUP;

/// The names of the ConfigMaps whose `config` key holds a MetalLB config with at least one
/// pool or peer (what MetalLB v0.9–v0.12 read), sorted.
pub fn legacy_configs(configmaps: &[ConfigMap]) -> Vec<String> {
    let mut names: Vec<String> = configmaps
        .iter()
        .filter(|cm| {
            let Some(text) = cm.data.as_ref().and_then(|d| d.get("config")) else {
                return false;
            };
            // An invalid config is still the user's MetalLB config: `check-config` and the
            // controller report its errors once it is read. What is not a MetalLB config at
            // all does not parse as one.
            match crate::config::parse(text) {
                Ok(config) => !config.address_pools.is_empty() || !config.peers.is_empty(),
                Err(crate::config::ConfigError::Invalid(_)) => true,
                Err(_) => false,
            }
        })
        .filter_map(|cm| cm.metadata.name.clone())
        .collect();
    names.sort();
    names
}

/// What the component says when MetalLB's kinds are not served in the cluster: that, and for
/// each ConfigMap holding a MetalLB config in `namespace`, both fixes.
pub fn not_served_message(component: &str, namespace: &str, legacy: &[String]) -> String {
    let mut message = format!(
        "the {component} reads its config from MetalLB's custom resources (--config-source crds, \
         the default), but this cluster serves no {GROUP} kinds (IPAddressPool, L2Advertisement): \
         their CRDs are not installed"
    );
    match legacy {
        [] => message.push_str(
            "; install them (the chart's crds/ folder, `helm install` does it) and create an \
             IPAddressPool and an L2Advertisement, or run with --config-source configmap to read \
             a MetalLB ConfigMap",
        ),
        names => {
            let listed: Vec<String> = names.iter().map(|n| format!("{namespace}/{n}")).collect();
            message.push_str(&format!(
                ". The ConfigMap {} holds a MetalLB config; either read it as it is: run with \
                 --config-source configmap --config-name {first} (chart: --set \
                 configSource=configmap --set existingConfigMap={first}), or turn it into the \
                 custom resources once their CRDs are installed: kubectl get configmap -n \
                 {namespace} {first} -o yaml | ferrolb convert --namespace {namespace} - | \
                 kubectl apply -f -",
                listed.join(", "),
                first = names[0],
            ));
        }
    }
    message
}

/// Whether the API serves MetalLB's IPAddressPool kind at the version ferrolb reads.
pub async fn metallb_served(client: &kube::Client) -> Result<bool, kube::Error> {
    match client.list_api_group_resources(&POOL.api_version()).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == POOL.plural)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Logs [`not_served_message`] once when MetalLB's kinds are not served, naming the ConfigMaps
/// of `configmaps`' namespace that hold a MetalLB config. Returns whether it did. An API error
/// on the way is logged at debug and nothing is said: the watches report their own failures.
pub async fn tell_if_not_served(
    client: &kube::Client,
    configmaps: Api<ConfigMap>,
    component: &str,
    namespace: &str,
) -> bool {
    match metallb_served(client).await {
        Ok(true) => return false,
        Ok(false) => {}
        Err(e) => {
            tracing::debug!(error = %crate::telemetry::error_chain(&e),
                "cannot tell whether MetalLB's kinds are served");
            return false;
        }
    }
    let legacy = match configmaps.list(&ListParams::default()).await {
        Ok(list) => legacy_configs(&list.items),
        Err(e) => {
            tracing::debug!(error = %crate::telemetry::error_chain(&e),
                "cannot list the namespace's ConfigMaps");
            Vec::new()
        }
    };
    tracing::error!(
        configmaps = ?legacy,
        "{}",
        not_served_message(component, namespace, &legacy)
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn configmap(name: &str, config: Option<&str>) -> ConfigMap {
        let data = config.map(|c| json!({"config": c})).unwrap_or(json!({}));
        serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).unwrap()
    }

    #[test]
    fn only_configmaps_holding_a_metallb_config_are_named() {
        let pools =
            "address-pools:\n- name: lan\n  protocol: layer2\n  addresses:\n  - 192.0.2.0/28\n";
        let invalid =
            "address-pools:\n- name: lan\n  protocol: layer2\n  addresses:\n  - 192.0.2.300/28\n";
        let cms = [
            configmap("metallb", Some(pools)),
            configmap("kube-root-ca.crt", None),
            configmap("other-app", Some("log-level: debug\n")),
            configmap("empty", Some("")),
            configmap("broken", Some(invalid)),
        ];
        assert_eq!(legacy_configs(&cms), ["broken", "metallb"]);
    }

    #[test]
    fn the_message_names_the_configmap_and_both_fixes() {
        let text = not_served_message("controller", "metallb-system", &["config".into()]);
        assert!(text.contains("serves no metallb.io kinds"), "{text}");
        assert!(
            text.contains("metallb-system/config holds a MetalLB config"),
            "{text}"
        );
        assert!(
            text.contains("--config-source configmap --config-name config"),
            "{text}"
        );
        assert!(
            text.contains(
                "kubectl get configmap -n metallb-system config -o yaml | ferrolb convert \
                 --namespace metallb-system - | kubectl apply -f -"
            ),
            "{text}"
        );
        let none = not_served_message("speaker", "ferrolb-system", &[]);
        assert!(none.starts_with("the speaker reads"), "{none}");
        assert!(none.contains("install them"), "{none}");
        assert!(!none.contains("ferrolb convert"), "{none}");
    }
}
