use super::*;
use crate::config::Namespaces;
use crate::controller::plan::{Plan, parse_objects, plan_with_namespaces};
use crate::k8s::service::{allocated_pool, status_ips};

/// What the API would send: the Service as JSON, decoded the way the watch decodes it.
fn cached(svc: &Service) -> CachedService {
    serde_json::from_value(serde_json::to_value(svc).unwrap()).unwrap()
}

/// An example config (ConfigMap or custom resources) and its Services, with the Namespaces'
/// labels both files give.
fn example(config: &str, services: &str) -> (crate::config::Config, Namespaces, Vec<Service>) {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |f: &str| std::fs::read_to_string(format!("{root}/config/{f}")).unwrap();
    let file = crate::config::crd::parse_file(&read(config)).unwrap();
    let (services, listed) = parse_objects(&read(services), services).unwrap();
    let mut namespaces = file.namespaces;
    namespaces.extend(listed);
    (file.config, namespaces, services)
}

/// Everything a plan decides: its events, and per Service its status addresses and pool
/// annotation, one line each.
fn outcome(p: &Plan) -> Vec<String> {
    let events = p
        .events
        .iter()
        .map(|e| format!("event {} {:?} {}", e.key, e.reason, e.message));
    let services = p.services.iter().map(|s| {
        format!(
            "service {} {:?} {:?}",
            crate::k8s::service::service_key(s),
            status_ips(s),
            allocated_pool(s)
        )
    });
    events.chain(services).collect()
}

/// Every reading the core makes of a Service gives the same answer on its cached form.
fn assert_same_reading(svc: &Service, back: &Service) {
    use crate::k8s::service::{has_ingress, is_handled, request_for, service_key};
    let key = service_key(svc);
    assert_eq!(service_key(back), key);
    assert_eq!(cached(svc).key(), key);
    assert_eq!(request_for(back), request_for(svc), "{key}: request");
    for class in [None, Some("ferrolb"), Some("other")] {
        assert_eq!(is_handled(back, class), is_handled(svc, class), "{key}");
    }
    assert_eq!(status_ips(back), status_ips(svc), "{key}");
    assert_eq!(has_ingress(back), has_ingress(svc), "{key}");
    assert_eq!(allocated_pool(back), allocated_pool(svc), "{key}");
}

const EXAMPLES: [(&str, &str); 5] = [
    ("example-config.yaml", "example-services.yaml"),
    ("single-ipv4.yaml", "services-single-ipv4.yaml"),
    ("dual-stack.yaml", "services-dual-stack.yaml"),
    ("multi-pool.yaml", "services-multi-pool.yaml"),
    // Pools pinned by namespace, namespace labels and Service labels.
    ("crds-example.yaml", "crds-example-services.yaml"),
];

#[test]
fn the_core_decides_the_same_on_cached_services_for_every_example() {
    for (config_file, services_file) in EXAMPLES {
        let (config, namespaces, services) = example(config_file, services_file);
        let plan = |services| plan_with_namespaces(&config, &namespaces, services, None).unwrap();
        let full = plan(services.clone());
        let projected: Vec<Service> = services.iter().map(|s| cached(s).to_service()).collect();
        for (svc, back) in services.iter().zip(&projected) {
            assert_same_reading(svc, back);
        }
        let from_cache = plan(projected);
        assert_eq!(
            outcome(&full),
            outcome(&from_cache),
            "{services_file}: fresh Services"
        );
        assert!(
            !full.events.is_empty(),
            "{services_file}: the example decides something"
        );

        // A restart: the planned Services (statuses filled in) rebuild the core.
        let restarted = plan(full.services.clone());
        let restarted_cached: Vec<Service> = full
            .services
            .iter()
            .map(|s| cached(s).to_service())
            .collect();
        for (svc, back) in full.services.iter().zip(&restarted_cached) {
            assert_same_reading(svc, back);
        }
        let restarted_from_cache = plan(restarted_cached);
        assert_eq!(
            outcome(&restarted),
            outcome(&restarted_from_cache),
            "{services_file}: after a restart"
        );
    }
}

#[test]
fn keeps_identity_labels_and_metallb_annotations_and_drops_the_rest() {
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "42",
            "labels": {"app": "web", "tier": "gold"},
            "creationTimestamp": "2026-11-21T10:00:00Z",
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"huge\": true}",
                "metallb.io/ip-allocated-from-pool": "default",
                "metallb.universe.tf/allow-shared-ip": "k",
                "example.com/other": "x",
            },
        },
        "spec": {
            "type": "LoadBalancer", "ipFamilies": ["IPv4"], "clusterIP": "10.0.0.1",
            "clusterIPs": ["10.0.0.1"], "sessionAffinity": "None",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080, "targetPort": 8080}],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "VIP"}, {"hostname": "lb.example"}]}},
    }))
    .unwrap();
    let back = cached(&svc).to_service();
    assert_eq!(back.metadata.name.as_deref(), Some("web"));
    assert_eq!(back.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(back.metadata.uid.as_deref(), Some("u-1"));
    assert_eq!(back.metadata.resource_version.as_deref(), Some("42"));
    // Every label: pools' serviceSelectors pick Services by them.
    assert_eq!(
        back.metadata.labels,
        Some(BTreeMap::from([
            ("app".to_owned(), "web".to_owned()),
            ("tier".to_owned(), "gold".to_owned())
        ]))
    );
    assert_eq!(back.metadata.managed_fields, None);
    let annotations: Vec<&str> = back
        .metadata
        .annotations
        .as_ref()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        annotations,
        [
            "metallb.io/ip-allocated-from-pool",
            "metallb.universe.tf/allow-shared-ip"
        ]
    );
    let spec = back.spec.as_ref().unwrap();
    // The families are known, so the cluster IPs (only a fallback for them) are not kept.
    assert_eq!(spec.cluster_ip, None);
    assert_eq!(spec.cluster_ips, None);
    assert_eq!(spec.session_affinity, None);
    let port = &spec.ports.as_ref().unwrap()[0];
    assert_eq!((port.port, port.protocol.as_deref()), (80, Some("TCP")));
    assert_eq!(port.node_port, None);
    // Both ingress entries stay (a hostname entry makes the status differ from ours).
    let ingress = back.status.unwrap().load_balancer.unwrap().ingress.unwrap();
    assert_eq!(ingress.len(), 2);
    assert_eq!(ingress[0].ip.as_deref(), Some("192.0.2.1"));
    assert_eq!(ingress[1].hostname.as_deref(), Some("lb.example"));
}

#[test]
fn cluster_ips_are_kept_when_they_are_the_only_clue_to_the_families() {
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"type": "LoadBalancer", "clusterIPs": ["2001:db8::1", "10.0.0.1"]},
    }))
    .unwrap();
    let back = cached(&svc).to_service();
    assert_eq!(
        back.spec.unwrap().cluster_ips,
        Some(vec!["2001:db8::1".to_owned(), "10.0.0.1".to_owned()])
    );
}

#[test]
fn a_service_without_spec_or_status_stays_without() {
    let svc: Service =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "bare"}})).unwrap();
    let back = cached(&svc).to_service();
    assert_eq!(back.spec, None);
    assert_eq!(back.status, None);
    assert_eq!(back.metadata.annotations, None);
    assert_eq!(back.metadata.labels, None);
}

#[test]
fn common_spellings_are_shared_and_others_kept_as_sent() {
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "shop", "annotations": {
            "metallb.io/ip-allocated-from-pool": "default",
            "metallb.universe.tf/address-pool": "default",
            "metallb.io/future-key": "v",
        }},
        "spec": {
            "type": "LoadBalancer", "externalTrafficPolicy": "Cluster",
            "ipFamilies": ["IPv6", "IPv4"], "ipFamilyPolicy": "PreferDualStack",
            "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "Odd"}],
        },
    }))
    .unwrap();
    let c = cached(&svc);
    let spec = c.spec.as_ref().unwrap();
    let shared = |w: &Word| matches!(w, Cow::Borrowed(_));
    assert!(shared(spec.type_.as_ref().unwrap()));
    assert!(shared(spec.external_traffic_policy.as_ref().unwrap()));
    assert!(shared(spec.ip_family_policy.as_ref().unwrap()));
    assert!(spec.ip_families.as_ref().unwrap().iter().all(shared));
    let ports = spec.ports.as_ref().unwrap();
    assert!(shared(ports[0].protocol.as_ref().unwrap()));
    // An unknown spelling is kept, so the core still reports it as invalid.
    assert_eq!(ports[1].protocol.as_deref(), Some("Odd"));
    assert!(!shared(ports[1].protocol.as_ref().unwrap()));
    let keys: Vec<(&str, bool)> = c
        .annotations
        .as_ref()
        .unwrap()
        .iter()
        .map(|(k, _)| (k.as_ref(), shared(k)))
        .collect();
    assert_eq!(
        keys,
        [
            ("metallb.io/future-key", false),
            ("metallb.io/ip-allocated-from-pool", true),
            ("metallb.universe.tf/address-pool", true),
        ]
    );
    assert_same_reading(&svc, &c.to_service());
}

#[test]
fn every_annotation_the_core_reads_is_a_shared_spelling() {
    use crate::k8s::service::{ADDRESS_POOL, ALLOW_SHARED_IP, LOAD_BALANCER_IPS};
    for prefix in ANNOTATION_PREFIXES {
        for name in [ADDRESS_POOL, LOAD_BALANCER_IPS, ALLOW_SHARED_IP] {
            let key = format!("{prefix}{name}");
            assert!(WORDS.contains(&key.as_str()), "{key} is not in WORDS");
        }
    }
    assert!(WORDS.contains(&ALLOCATED_FROM_POOL));
}

#[test]
fn the_selector_is_kept_only_where_the_core_reads_it() {
    let with_policy = |policy: &str| -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy,
                     "selector": {"app": "web"}, "ports": [{"port": 80}]},
        }))
        .unwrap()
    };
    let local = with_policy("Local");
    let back = cached(&local).to_service();
    assert_eq!(
        back.spec.as_ref().and_then(|s| s.selector.clone()),
        Some(BTreeMap::from([("app".to_owned(), "web".to_owned())]))
    );
    assert_same_reading(&local, &back);

    let cluster = with_policy("Cluster");
    let back = cached(&cluster).to_service();
    assert_eq!(back.spec.as_ref().and_then(|s| s.selector.clone()), None);
    assert_same_reading(&cluster, &back);
}
