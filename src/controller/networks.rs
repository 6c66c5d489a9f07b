//! Watches the cluster's own networks for the overlap warnings and the node holds: every Node
//! (its InternalIP/ExternalIP addresses and `spec.podCIDRs`) and every `networking.k8s.io/v1`
//! ServiceCIDR (`spec.cidrs`), read-only. Where the API server does not serve ServiceCIDRs
//! (before Kubernetes 1.33: 404), the `--service-cluster-ip-range` given to the controller
//! stands in for them, said once in the log. What the watches show is handed to
//! [`Context::set_networks`] once the Nodes are listed, and again on every change.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::Client;
use kube::api::Api;
use kube::runtime::watcher;
use tokio::sync::watch;

use super::live::Context;
use crate::config::overlap::{ClusterNetworks, NodeNetworks, ServiceCidr};
use crate::k8s::backoff::{WatchTrouble, watch_trouble, with_backoff};
use crate::k8s::networks::{node_networks, service_cidrs};

type Events<K> = BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>;

/// One watched kind's objects, projected, with the re-list in progress.
struct View<V> {
    listed: bool,
    current: BTreeMap<String, V>,
    relisting: Option<BTreeMap<String, V>>,
}

impl<V> Default for View<V> {
    fn default() -> Self {
        Self {
            listed: false,
            current: BTreeMap::new(),
            relisting: None,
        }
    }
}

impl<V: PartialEq> View<V> {
    /// Applies one event; returns whether what is in force may have changed (a Node's heartbeat
    /// changes nothing projected).
    fn apply<K: kube::Resource>(
        &mut self,
        event: watcher::Event<K>,
        project: impl Fn(&K) -> V,
    ) -> bool {
        let name = |o: &K| o.meta().name.clone().unwrap_or_default();
        match event {
            watcher::Event::Init => {
                self.relisting = Some(BTreeMap::new());
                false
            }
            watcher::Event::InitApply(o) => {
                let list = self.relisting.get_or_insert_with(BTreeMap::new);
                list.insert(name(&o), project(&o));
                false
            }
            watcher::Event::InitDone => {
                self.current = self.relisting.take().unwrap_or_default();
                self.listed = true;
                true
            }
            watcher::Event::Apply(o) => {
                let projected = project(&o);
                let changed = self.current.get(&name(&o)) != Some(&projected);
                self.current.insert(name(&o), projected);
                changed
            }
            watcher::Event::Delete(o) => {
                self.current.remove(&name(&o));
                true
            }
        }
    }
}

/// Projects a Node, logging what was skipped as malformed.
fn project_node(node: &Node) -> NodeNetworks {
    let (networks, skipped) = node_networks(node);
    for s in skipped {
        tracing::warn!("{s}");
    }
    networks
}

/// Projects a ServiceCIDR, logging what was skipped as malformed.
fn project_cidr(object: &ServiceCIDR) -> Vec<ServiceCidr> {
    let (cidrs, skipped) = service_cidrs(object);
    for s in skipped {
        tracing::warn!("{s}");
    }
    cidrs
}

/// Watches Nodes and ServiceCIDRs until `stop`, handing the networks to `ctx`. `flag` is
/// `--service-cluster-ip-range`, used when ServiceCIDRs are not served.
pub async fn watch_networks(
    client: Client,
    ctx: Arc<Context>,
    flag: Vec<ServiceCidr>,
    mut stop: watch::Receiver<bool>,
) {
    let node_api = Api::<Node>::all(client.clone());
    let mut nodes_events: Events<Node> =
        with_backoff(watcher(node_api, watcher::Config::default())).boxed();
    let cidr_api = Api::<ServiceCIDR>::all(client);
    let mut cidr_events: Option<Events<ServiceCIDR>> =
        Some(with_backoff(watcher(cidr_api, watcher::Config::default())).boxed());
    let mut nodes: View<NodeNetworks> = View::default();
    let mut cidrs: View<Vec<ServiceCidr>> = View::default();
    // Until ServiceCIDRs are listed (or known not to be served), the flag stands in.
    let mut fallback = true;
    loop {
        let changed = tokio::select! {
            event = nodes_events.next() => match event {
                None => return,
                Some(Ok(event)) => nodes.apply(event, project_node),
                Some(Err(e)) => {
                    if watch_trouble(&e) != WatchTrouble::Expired {
                        tracing::error!(error = %crate::telemetry::error_chain(&e),
                            "cannot watch Nodes (the controller's ClusterRole needs list and watch \
                             on nodes); no address is allocated until they are listed; retrying");
                    }
                    false
                }
            },
            event = next_cidr(&mut cidr_events) => match event {
                None => {
                    cidr_events = None;
                    false
                }
                Some(Ok(event)) => {
                    let changed = cidrs.apply(event, project_cidr);
                    fallback = !cidrs.listed;
                    changed
                }
                Some(Err(e)) => match watch_trouble(&e) {
                    WatchTrouble::Expired => false,
                    WatchTrouble::NotServed => {
                        tracing::info!(flag = ?flag.iter().map(|c| c.cidr.to_string()).collect::<Vec<_>>(),
                            "the API server does not serve networking.k8s.io/v1 ServiceCIDR: \
                             overlaps with the service range are checked against \
                             --service-cluster-ip-range instead");
                        cidr_events = None;
                        fallback = true;
                        true
                    }
                    WatchTrouble::Other => {
                        tracing::warn!(error = %crate::telemetry::error_chain(&e),
                            "cannot watch ServiceCIDRs; retrying");
                        false
                    }
                },
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        if !changed || !nodes.listed {
            continue;
        }
        let service_cidrs = if fallback {
            flag.clone()
        } else {
            cidrs.current.values().flatten().cloned().collect()
        };
        ctx.set_networks(ClusterNetworks {
            service_cidrs,
            nodes: nodes.current.values().cloned().collect(),
        });
    }
}

/// The next ServiceCIDR event, or never once that watch is given up.
async fn next_cidr(
    events: &mut Option<Events<ServiceCIDR>>,
) -> Option<Result<watcher::Event<ServiceCIDR>, watcher::Error>> {
    match events {
        Some(events) => events.next().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, ip: &str, heartbeat: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "resourceVersion": heartbeat},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                       "conditions": [{"type": "Ready", "status": "True",
                                       "lastHeartbeatTime": "2026-12-05T00:00:00Z"}]},
        }))
        .unwrap()
    }

    #[test]
    fn a_heartbeat_changes_nothing_and_a_relist_replaces_what_was_known() {
        let mut view: View<NodeNetworks> = View::default();
        assert!(!view.apply(watcher::Event::Init, project_node));
        assert!(!view.apply(
            watcher::Event::InitApply(node("a", "192.0.2.1", "1")),
            project_node
        ));
        assert!(!view.listed, "not listed before InitDone");
        assert!(view.apply(watcher::Event::InitDone, project_node));
        assert!(view.listed);
        // The same addresses under a new resourceVersion: nothing to hand over.
        assert!(!view.apply(
            watcher::Event::Apply(node("a", "192.0.2.1", "2")),
            project_node
        ));
        assert!(view.apply(
            watcher::Event::Apply(node("a", "192.0.2.9", "3")),
            project_node
        ));
        assert_eq!(view.current["a"].addresses[0].ip.to_string(), "192.0.2.9");
        // A re-list without "a" (deleted while the watch was down) forgets it.
        view.apply(watcher::Event::Init, project_node);
        view.apply(
            watcher::Event::InitApply(node("b", "192.0.2.2", "4")),
            project_node,
        );
        assert!(
            view.current.contains_key("a"),
            "kept until the re-list completes"
        );
        assert!(view.apply(watcher::Event::InitDone, project_node));
        assert_eq!(view.current.keys().collect::<Vec<_>>(), ["b"]);
        assert!(view.apply(
            watcher::Event::Delete(node("b", "192.0.2.2", "5")),
            project_node
        ));
        assert!(view.current.is_empty());
    }
}
