//! `plan` and the live controller decide alike: for generated pools (pinned by namespace,
//! namespace labels and Service labels, with priorities), Namespaces and Services (requested
//! IPs, pool annotations, sharing, families), the live path — each Service arriving as the watch
//! decodes it, through the Service cache, into [`reconcile`] against an API that answers every
//! write and feeds it back to the cache, in a generated order, with controller restarts
//! (leadership lost and regained: the core rebuilt from the cache) — leaves every Service with
//! the addresses and pool annotation `ferrolb plan` gives for the same Services in that order.
//! Generated nodes' InternalIPs fall in the pools: both skip them alike.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;

use super::*;
use crate::config::Namespaces;
use crate::config::overlap::{ClusterNetworks, NodeAddress, NodeAddressKind, NodeNetworks};
use crate::controller::plan::plan_with_networks;
use crate::k8s::service::{allocated_pool, status_ips};

const NAMESPACES: [&str; 4] = ["shop", "payments", "staging", "default"];

#[derive(Debug, Clone)]
struct PoolGen {
    size: u8,
    auto_assign: bool,
    /// `None`: no `serviceAllocation`.
    allocation: Option<AllocGen>,
}

#[derive(Debug, Clone)]
struct AllocGen {
    priority: Option<u8>,
    namespaces: Vec<bool>,
    /// `namespaceSelectors: [{matchLabels: {env: prod}}]`.
    prod_namespaces: bool,
    /// 0: none; 1: `tier In [gold]`; 2: `matchLabels tier: silver`; 3: `tier NotIn [gold]`.
    service_selector: u8,
}

#[derive(Debug, Clone)]
struct ServiceGen {
    namespace: usize,
    /// 0: no label; 1: tier=gold; 2: tier=silver.
    tier: u8,
    /// A pool by index (one past the last names a pool that does not exist).
    pool: Option<usize>,
    /// The last octet of a requested 192.0.2.x address.
    requested: Option<u8>,
    sharing: Option<u8>,
    port: u16,
    /// 0: IPv4, 1: IPv6, 2: RequireDualStack, 3: PreferDualStack.
    families: u8,
}

fn pool_gen() -> impl Strategy<Value = PoolGen> {
    let alloc = (
        proptest::option::of(0u8..3),
        proptest::collection::vec(prop::bool::weighted(0.3), NAMESPACES.len()),
        prop::bool::weighted(0.3),
        0u8..4,
    )
        .prop_map(
            |(priority, namespaces, prod_namespaces, service_selector)| AllocGen {
                priority,
                namespaces,
                prod_namespaces,
                service_selector,
            },
        );
    (
        1u8..4,
        prop::bool::weighted(0.85),
        proptest::option::weighted(0.6, alloc),
    )
        .prop_map(|(size, auto_assign, allocation)| PoolGen {
            size,
            auto_assign,
            allocation,
        })
}

fn service_gen(pools: usize) -> impl Strategy<Value = ServiceGen> {
    (
        0..NAMESPACES.len(),
        0u8..3,
        proptest::option::weighted(0.15, 0..=pools),
        proptest::option::weighted(0.15, 1u8..45),
        proptest::option::weighted(0.3, 0u8..2),
        prop_oneof![Just(80u16), Just(443u16)],
        prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 2 => Just(3u8)],
    )
        .prop_map(
            |(namespace, tier, pool, requested, sharing, port, families)| ServiceGen {
                namespace,
                tier,
                pool,
                requested,
                sharing,
                port,
                families,
            },
        )
}

/// A node's InternalIP: the last octet of 192.0.2.x (where the pools are) and, when set, its
/// IPv6 twin 2001:db8:(x/10)::(x%10) (an address of a pool for small x%10).
fn node_gen() -> impl Strategy<Value = (u8, bool)> {
    (1u8..45, prop::bool::weighted(0.5))
}

fn node_networks(nodes: &[(u8, bool)]) -> ClusterNetworks {
    let nodes = nodes
        .iter()
        .enumerate()
        .map(|(i, (last, v6))| {
            let name = format!("node{i}");
            let mut ips = vec![format!("192.0.2.{last}")];
            if *v6 {
                ips.push(format!("2001:db8:{}::{}", last / 10, last % 10));
            }
            NodeNetworks {
                addresses: ips
                    .iter()
                    .map(|ip| NodeAddress {
                        node: name.clone(),
                        kind: NodeAddressKind::InternalIP,
                        ip: ip.parse().unwrap(),
                    })
                    .collect(),
                name,
                pod_cidrs: Vec::new(),
            }
        })
        .collect();
    ClusterNetworks {
        service_cidrs: Vec::new(),
        nodes,
    }
}

/// Pool `i` holds `size` addresses from 192.0.2.(10i+1) and as many from 2001:db8:i::1.
fn config_yaml(pools: &[PoolGen]) -> String {
    let mut out = String::new();
    for (i, p) in pools.iter().enumerate() {
        let first = 10 * i + 1;
        let last = first + usize::from(p.size) - 1;
        out.push_str(&format!(
            "---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\n\
             metadata: {{name: p{i}, namespace: metallb-system}}\nspec:\n  \
             addresses: [192.0.2.{first}-192.0.2.{last}, 2001:db8:{i}::1-2001:db8:{i}::{}]\n  \
             autoAssign: {}\n",
            p.size, p.auto_assign
        ));
        let Some(a) = &p.allocation else { continue };
        out.push_str("  serviceAllocation:\n");
        if let Some(priority) = a.priority {
            out.push_str(&format!("    priority: {priority}\n"));
        }
        let names: Vec<&str> = NAMESPACES
            .iter()
            .zip(&a.namespaces)
            .filter(|(_, on)| **on)
            .map(|(n, _)| *n)
            .collect();
        if !names.is_empty() {
            out.push_str(&format!("    namespaces: [{}]\n", names.join(", ")));
        }
        if a.prod_namespaces {
            out.push_str("    namespaceSelectors: [{matchLabels: {env: prod}}]\n");
        }
        match a.service_selector {
            1 => out.push_str(
                "    serviceSelectors: [{matchExpressions: [{key: tier, operator: In, values: [gold]}]}]\n",
            ),
            2 => out.push_str("    serviceSelectors: [{matchLabels: {tier: silver}}]\n"),
            3 => out.push_str(
                "    serviceSelectors: [{matchExpressions: [{key: tier, operator: NotIn, values: [gold]}]}]\n",
            ),
            _ => {}
        }
    }
    out
}

fn service_json(i: usize, g: &ServiceGen) -> Value {
    let mut annotations = serde_json::Map::new();
    if let Some(pool) = g.pool {
        annotations.insert("metallb.io/address-pool".into(), json!(format!("p{pool}")));
    }
    if let Some(last) = g.requested {
        annotations.insert(
            "metallb.io/loadBalancerIPs".into(),
            json!(format!("192.0.2.{last}")),
        );
    }
    if let Some(key) = g.sharing {
        annotations.insert(
            "metallb.io/allow-shared-ip".into(),
            json!(format!("k{key}")),
        );
    }
    let (families, policy) = match g.families {
        0 => (json!(["IPv4"]), "SingleStack"),
        1 => (json!(["IPv6"]), "SingleStack"),
        2 => (json!(["IPv4", "IPv6"]), "RequireDualStack"),
        _ => (json!(["IPv4", "IPv6"]), "PreferDualStack"),
    };
    let mut labels = serde_json::Map::new();
    labels.insert("app".into(), json!(format!("s{i}")));
    match g.tier {
        1 => drop(labels.insert("tier".into(), json!("gold"))),
        2 => drop(labels.insert("tier".into(), json!("silver"))),
        _ => {}
    }
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": format!("s{i}"), "namespace": NAMESPACES[g.namespace],
            "uid": format!("uid-s{i}"), "labels": labels, "annotations": annotations,
        },
        "spec": {
            "type": "LoadBalancer", "ipFamilies": families, "ipFamilyPolicy": policy,
            "ports": [{"port": g.port, "protocol": "TCP"}],
        },
    })
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            let Value::Object(object) = target else {
                return;
            };
            for (k, v) in fields {
                if v.is_null() {
                    object.remove(k);
                } else {
                    merge_patch(object.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Services as the API server holds them; every change goes to the controller's cache as the
/// watch would deliver it (the JSON decoded into [`CachedService`]).
struct FakeApi {
    objects: BTreeMap<String, Value>,
    version: u64,
    store: Writer<CachedService>,
}

impl FakeApi {
    fn put(&mut self, key: String, mut object: Value) -> Value {
        self.version += 1;
        object["metadata"]["resourceVersion"] = json!(self.version.to_string());
        let cached: CachedService = serde_json::from_value(object.clone()).unwrap();
        self.store
            .apply_watcher_event(&watcher::Event::Apply(cached));
        self.objects.insert(key, object.clone());
        object
    }
}

/// Answers the controller's requests: Service patches (with their resourceVersion
/// precondition), events, reads.
async fn serve(mut api: Mock, fake: Arc<Mutex<FakeApi>>, writes: Arc<AtomicUsize>) {
    while let Some((req, send)) = api.next_request().await {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let bytes = req.into_body().collect_bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let reply = match (method.clone(), parts.as_slice()) {
            (Method::POST, ["apis", "events.k8s.io", "v1", "namespaces", _, "events"]) => {
                (StatusCode::CREATED, body)
            }
            (m, ["api", "v1", "namespaces", ns, "services", name, rest @ ..]) => {
                let key = format!("{ns}/{name}");
                let mut fake = fake.lock().unwrap();
                let current = fake.objects.get(&key).cloned();
                match (m, current) {
                    (Method::GET, Some(current)) => (StatusCode::OK, current),
                    (Method::PATCH, Some(mut current)) => {
                        let expected = body["metadata"]["resourceVersion"].as_str();
                        if expected.is_some_and(|rv| {
                            Some(rv) != current["metadata"]["resourceVersion"].as_str()
                        }) {
                            (
                                StatusCode::CONFLICT,
                                json!({"kind": "Status", "code": 409, "reason": "Conflict", "message": "conflict"}),
                            )
                        } else {
                            let mut patch = body.clone();
                            if let Some(meta) = patch["metadata"].as_object_mut() {
                                meta.remove("resourceVersion");
                            }
                            // The status subresource changes only the status, the object only
                            // the rest.
                            if rest == ["status"] {
                                patch = json!({"status": patch["status"]});
                            } else if let Some(p) = patch.as_object_mut() {
                                p.remove("status");
                            }
                            merge_patch(&mut current, &patch);
                            writes.fetch_add(1, Ordering::SeqCst);
                            (StatusCode::OK, fake.put(key, current))
                        }
                    }
                    (m, None) => panic!("{m} {path}: no such Service"),
                    (m, _) => panic!("unexpected {m} {path}"),
                }
            }
            _ => panic!("unexpected request {method} {path}"),
        };
        send.send_response(
            Response::builder()
                .status(reply.0)
                .body(Body::from(serde_json::to_vec(&reply.1).unwrap()))
                .unwrap(),
        );
    }
}

/// What a Service shows: its status addresses and pool annotation.
fn shows(svc: &Service) -> (Vec<std::net::IpAddr>, Option<String>) {
    (status_ips(svc), allocated_pool(svc).map(str::to_owned))
}

/// The live path: Services created in `order`, each reconciled as it arrives; where `restart`
/// says so after a step, leadership is lost and regained (the next reconcile rebuilds the core
/// from the cache) and every Service is reconciled, as the new leader does. Then every Service
/// is reconciled until nothing is written. Returns what the API shows per Service.
fn live(
    config: &crate::config::Config,
    namespaces: &Namespaces,
    networks: &ClusterNetworks,
    services: &[Value],
    restart: &[bool],
) -> BTreeMap<String, Service> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let Harness {
            ctx, api, store, ..
        } = harness();
        let fake = Arc::new(Mutex::new(FakeApi {
            objects: BTreeMap::new(),
            version: 0,
            store,
        }));
        let writes = Arc::new(AtomicUsize::new(0));
        let server = tokio::spawn(serve(api, fake.clone(), writes.clone()));
        ctx.set_namespaces(namespaces.clone());
        ctx.await_networks();
        ctx.set_networks(networks.clone());
        assert_eq!(ctx.load_parsed(Ok(config.clone())), ConfigOutcome::Loaded);
        ctx.set_leading(true);

        let cached = |key: &str| -> Arc<CachedService> {
            let object = fake.lock().unwrap().objects[key].clone();
            Arc::new(serde_json::from_value(object).unwrap())
        };
        let mut created: Vec<String> = Vec::new();
        for (svc, restart) in services.iter().zip(restart) {
            let key = format!(
                "{}/{}",
                svc["metadata"]["namespace"].as_str().unwrap(),
                svc["metadata"]["name"].as_str().unwrap()
            );
            fake.lock().unwrap().put(key.clone(), svc.clone());
            created.push(key.clone());
            reconcile(cached(&key), ctx.clone()).await.unwrap();
            if *restart {
                ctx.set_leading(false);
                ctx.set_leading(true);
                for key in &created {
                    reconcile(cached(key), ctx.clone()).await.unwrap();
                }
            }
        }
        for _ in 0..5 {
            let before = writes.load(Ordering::SeqCst);
            for key in &created {
                reconcile(cached(key), ctx.clone()).await.unwrap();
            }
            if writes.load(Ordering::SeqCst) == before {
                break;
            }
        }
        server.abort();
        let fake = fake.lock().unwrap();
        fake.objects
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::from_value(v.clone()).unwrap()))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn the_live_controller_gives_every_service_what_plan_gives(
        (pools, services, env, restart, nodes) in proptest::collection::vec(pool_gen(), 1..5)
            .prop_flat_map(|pools| {
                let n = pools.len();
                (
                    Just(pools),
                    proptest::collection::vec(service_gen(n), 1..10).prop_shuffle(),
                    proptest::collection::vec(0u8..3, NAMESPACES.len()),
                    proptest::collection::vec(prop::bool::weighted(0.2), 10),
                    proptest::collection::vec(node_gen(), 0..4),
                )
            })
    ) {
        let file = crate::config::crd::parse_file(&config_yaml(&pools));
        // Generated pools the translator refuses (a serviceAllocation it rejects) are not
        // what this property is about.
        prop_assume!(file.is_ok());
        let config = file.unwrap().config;
        let namespaces: Namespaces = NAMESPACES
            .iter()
            .zip(&env)
            .map(|(ns, env)| {
                let labels = match env {
                    1 => [("env".to_owned(), "prod".to_owned())].into_iter().collect(),
                    2 => [("env".to_owned(), "staging".to_owned())].into_iter().collect(),
                    _ => Default::default(),
                };
                (ns.to_string(), labels)
            })
            .collect();
        let objects: Vec<Value> = services
            .iter()
            .enumerate()
            .map(|(i, g)| service_json(i, g))
            .collect();

        let networks = node_networks(&nodes);
        let planned = plan_with_networks(
            &config,
            &namespaces,
            &networks,
            objects.iter().map(|o| serde_json::from_value(o.clone()).unwrap()).collect(),
            None,
        )
        .unwrap();
        let live = live(&config, &namespaces, &networks, &objects, &restart);
        prop_assert_eq!(live.len(), planned.services.len());
        for svc in &planned.services {
            let key = crate::k8s::service::service_key(svc).to_string();
            prop_assert_eq!(shows(&live[&key]), shows(svc), "Service {}", key);
        }

        // A controller started on what the live one left keeps every address: `plan` over the
        // assigned Services changes nothing.
        let again =
            plan_with_networks(&config, &namespaces, &networks, live.values().cloned().collect(), None)
                .unwrap();
        // No Service shows a node's own address (none shows one to start with).
        let node_ips: Vec<std::net::IpAddr> =
            networks.node_addresses().iter().map(|a| a.ip).collect();
        for svc in live.values() {
            prop_assert!(
                status_ips(svc).iter().all(|ip| !node_ips.contains(ip)),
                "{:?} shows a node's address ({:?})", shows(svc), node_ips
            );
        }
        for svc in &again.services {
            let key = crate::k8s::service::service_key(svc).to_string();
            prop_assert_eq!(shows(svc), shows(&live[&key]), "Service {} after a restart", key);
        }
    }
}
