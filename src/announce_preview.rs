//! `ferrolb plan --nodes`: which node would announce each planned Service. The speakers' own
//! whole-cluster election ([`crate::speaker::kubernetes::cluster::announcements`]) run over the
//! Services as `plan` leaves them, the EndpointSlices given with them and the Nodes given with
//! `--nodes` (labels, conditions, the out-of-service taint), with every Ready Node alive, or the
//! nodes `--live` names as the gossip members. Nothing here is `plan`'s allocator: the
//! controller does not hold the election, so `main` hands this function to it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::Value;

use crate::config::Config;
use crate::controller::cli::Preview;
use crate::controller::plan::read_docs;
use crate::election::Liveness;
use crate::placement::Policy;
use crate::speaker::kubernetes::bgp_routes;
use crate::speaker::kubernetes::cache::{NodeView, ServiceView, SliceView};
use crate::speaker::kubernetes::cluster::{ViewOptions, announcements};
use crate::speaker::kubernetes::store::View;

/// Each Service with an address's cell: the announcing node, or `<none>` and why (the
/// speakers' own words); by `namespace/name`. `texts` are the input files (name, text), read
/// for their EndpointSlices and Nodes; `live`: the gossip members (default: Ready Nodes);
/// `placement`: the speakers' placement flags (a cluster placing from scratch: no claims).
pub fn preview(
    config: &Config,
    services: &[Service],
    texts: &[(String, String)],
    live: Option<&[String]>,
    placement: Policy,
) -> Result<Preview, String> {
    let mut nodes: Vec<Arc<NodeView>> = Vec::new();
    let mut slices: Vec<Arc<SliceView>> = Vec::new();
    for (name, text) in texts {
        for object in objects(text, name)? {
            match object.get("kind").and_then(Value::as_str) {
                Some("Node") => {
                    nodes.push(Arc::new(NodeView::project(decode::<Node>(object, name)?)))
                }
                Some("EndpointSlice") => {
                    slices.push(Arc::new(SliceView::project(decode::<EndpointSlice>(
                        object, name,
                    )?)))
                }
                _ => {}
            }
        }
    }
    let views: Vec<Arc<ServiceView>> = services
        .iter()
        .cloned()
        .map(|s| Arc::new(ServiceView::project(s)))
        .collect();
    let names: BTreeSet<String> = match live {
        Some(list) => list.iter().cloned().collect(),
        None => nodes
            .iter()
            .filter_map(|n| n.name().map(str::to_owned))
            .collect(),
    };
    // Named live members are gossip members; without a list, every Node counts while Ready.
    let liveness = match live {
        Some(_) => Liveness::Gossip(&names),
        None => Liveness::NodeReady(&names),
    };
    let (announced, unannounced) = announcements(
        config,
        &views,
        &slices,
        &nodes,
        liveness,
        &BTreeMap::new(),
        &ViewOptions {
            placement,
            ..ViewOptions::default()
        },
    );
    let mut out = BTreeMap::new();
    for a in announced {
        if let Some(node) = a.node {
            out.insert(a.service, node);
        }
    }
    for (service, (_, cause)) in unannounced.causes {
        let why = cause.to_string();
        let why = why
            .strip_prefix("not announced: ")
            .unwrap_or(&why)
            .to_owned();
        out.entry(service)
            .or_insert_with(|| format!("<none>: {why}"));
    }
    for service in unannounced.no_endpoints {
        out.entry(service)
            .or_insert_with(|| "<none>: no serving endpoint (give its EndpointSlices)".into());
    }
    for service in unannounced.bgp {
        out.entry(service)
            .or_insert_with(|| "<none>: BGP pool, no BGP peer".into());
    }
    for service in unannounced.outside_pools {
        out.entry(service)
            .or_insert_with(|| "<none>: address in no pool".into());
    }
    let bgp = bgp_preview(config, &views, &slices, &nodes, &names, &mut out);
    Ok(Preview { cells: out, bgp })
}

/// The LOCAL_PREF an iBGP peer receives when no advertisement sets one (FRR's default; the
/// speaker's BGP sessions send the same).
const DEFAULT_LOCAL_PREF: u32 = 100;

/// The BGP routes of every node (all of them announce: no election), as the speakers' own
/// [`bgp_routes::routes`] works them out, and each BGP Service's cell: the nodes announcing it
/// (the routers spread flows over them), or why none does.
fn bgp_preview(
    config: &Config,
    views: &[Arc<ServiceView>],
    slices: &[Arc<SliceView>],
    nodes: &[Arc<NodeView>],
    live: &BTreeSet<String>,
    cells: &mut BTreeMap<String, String>,
) -> Vec<[String; 6]> {
    let mut rows = Vec::new();
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut why: BTreeMap<String, String> = BTreeMap::new();
    let ips: Vec<(&str, &[std::net::IpAddr])> = views.iter().map(|v| (v.key(), v.ips())).collect();
    for node in nodes {
        let Some(name) = node.name().filter(|n| live.contains(*n)) else {
            continue;
        };
        let Some(routes) = bgp_routes::routes(config, name, Some(node), views, slices, None, false)
        else {
            return rows;
        };
        for (service, _) in routes.services.iter() {
            by.entry(service.clone()).or_default().push(name.to_owned());
        }
        for (service, withheld) in routes.withheld {
            why.entry(service).or_insert_with(|| withheld.to_string());
        }
        for (peer, prefixes) in &routes.peers {
            for (prefix, route) in prefixes {
                let services: Vec<&str> = ips
                    .iter()
                    .filter(|(key, ips)| {
                        routes
                            .services
                            .get(*key)
                            .is_some_and(|peers| peers.contains(peer))
                            && ips.iter().any(|ip| prefix.contains(ip))
                    })
                    .map(|(key, _)| *key)
                    .collect();
                // What the peer receives: LOCAL_PREF goes to iBGP peers only, 100 when unset.
                let internal = config
                    .peers
                    .iter()
                    .any(|p| p.name == *peer && p.is_internal());
                let local_pref = match (internal, route.local_pref) {
                    (false, _) => "-".to_owned(),
                    (true, pref) => pref.unwrap_or(DEFAULT_LOCAL_PREF).to_string(),
                };
                let communities: Vec<String> =
                    route.communities.iter().map(ToString::to_string).collect();
                rows.push([
                    name.to_owned(),
                    peer.clone(),
                    prefix.to_string(),
                    local_pref,
                    if communities.is_empty() {
                        "-".to_owned()
                    } else {
                        communities.join(",")
                    },
                    services.join(","),
                ]);
            }
        }
    }
    for (service, nodes) in by {
        let bgp = format!("bgp: {}", nodes.join(", "));
        match cells.get_mut(&service) {
            // A pool announced by both modes: the layer-2 node, then the BGP ones.
            Some(cell) if !cell.starts_with("<none>") => *cell = format!("{cell}; {bgp}"),
            _ => {
                cells.insert(service, bgp);
            }
        }
    }
    for (service, reason) in why {
        cells
            .entry(service)
            .or_insert_with(|| format!("<none>: {reason}"));
    }
    rows
}

/// The objects of a YAML text: its documents, and the items of its Lists.
fn objects(text: &str, name: &str) -> Result<Vec<Value>, String> {
    let docs: Vec<Option<Value>> = read_docs(text, name).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for doc in docs.into_iter().flatten() {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
        if let Some(list_kind) = kind.strip_suffix("List") {
            let items = doc.get("items").and_then(Value::as_array).cloned();
            for mut item in items.unwrap_or_default() {
                // API lists omit each item's kind.
                if item.get("kind").is_none()
                    && !list_kind.is_empty()
                    && let Some(map) = item.as_object_mut()
                {
                    map.insert("kind".into(), Value::String(list_kind.to_owned()));
                }
                out.push(item);
            }
        } else {
            out.push(doc);
        }
    }
    Ok(out)
}

fn decode<T: serde::de::DeserializeOwned>(object: Value, name: &str) -> Result<T, String> {
    let what = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
        .to_owned();
    serde_json::from_value(object).map_err(|e| format!("{name}: {what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: {name: node-a, labels: {rack: a}}
  status: {conditions: [{type: Ready, status: 'True'}]}
- apiVersion: v1
  kind: Node
  metadata: {name: node-b}
  status: {conditions: [{type: Ready, status: 'True'}]}
- apiVersion: v1
  kind: Node
  metadata: {name: node-c}
  status: {conditions: [{type: Ready, status: 'False'}]}
";

    fn service(name: &str, ip: &str) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}
        }))
        .unwrap()
    }

    fn slices(names: &[&str]) -> String {
        names
            .iter()
            .map(|n| {
                format!(
                    "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: \
                     {{name: {n}-1, namespace: shop, labels: {{kubernetes.io/service-name: \
                     {n}}}}}\naddressType: IPv4\nendpoints:\n- addresses: [10.0.0.1]\n  \
                     conditions: {{ready: true}}\n  nodeName: node-a\n"
                )
            })
            .collect()
    }

    /// The preview is the speakers' election: the hash ranking among the Ready Nodes (node-c
    /// is not), the preferred node first, the named live nodes only with `--live`, and a
    /// Service without EndpointSlices announced by nobody, saying so.
    #[test]
    fn the_preview_elects_as_the_speakers_do() {
        let config = crate::config::parse_file(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: front, \
             namespace: ferrolb}\nspec:\n  addresses: [192.0.2.0/28]\n---\napiVersion: \
             metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2, namespace: \
             ferrolb}\n",
        )
        .unwrap()
        .config;
        let services: Vec<Service> = (1..=6)
            .map(|i| service(&format!("s{i}"), &format!("192.0.2.{i}")))
            .collect();
        let with: Vec<&str> = ["s1", "s2", "s3", "s4", "s5"].to_vec();
        let texts = vec![
            ("objects".to_owned(), slices(&with)),
            ("nodes".to_owned(), NODES.to_owned()),
        ];
        let by = preview(&config, &services, &texts, None, Policy::default())
            .unwrap()
            .cells;
        for (i, svc) in with.iter().enumerate() {
            let ip: std::net::IpAddr = format!("192.0.2.{}", i + 1).parse().unwrap();
            let expected = crate::election::rank(ip, ["node-a", "node-b"])[0];
            assert_eq!(by[&format!("shop/{svc}")], expected);
        }
        assert!(
            by["shop/s6"].starts_with("<none>: no serving endpoint"),
            "{by:?}"
        );
        let live = ["node-c".to_owned()];
        let only_c = preview(&config, &services, &texts, Some(&live), Policy::default())
            .unwrap()
            .cells;
        assert!(
            with.iter()
                .all(|s| only_c[&format!("shop/{s}")] == "node-c")
        );
        // Placement flags: even spread over the two Ready nodes is 3 and 2; sticky ownership
        // with nothing claimed yet is the ranking.
        let even = Policy {
            sticky: false,
            even: true,
        };
        let spread = preview(&config, &services, &texts, None, even)
            .unwrap()
            .cells;
        let on_a = with
            .iter()
            .filter(|s| spread[&format!("shop/{s}")] == "node-a")
            .count();
        assert!(on_a == 2 || on_a == 3, "{spread:?}");
        let sticky = Policy {
            sticky: true,
            even: false,
        };
        assert_eq!(
            preview(&config, &services, &texts, None, sticky)
                .unwrap()
                .cells,
            by
        );
        assert!(objects("{not yaml: [", "bad").is_err());
    }
}
