use super::*;
use crate::config::Namespaces;
use crate::controller::plan::{Plan, parse_objects, plan_with_namespaces};
use crate::controller::reconcile::{Core, Outcome};
use crate::k8s::service::{has_ingress, is_handled, is_our_class, request_for, service_key};

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
            service_key(s),
            status_ips(s),
            allocated_pool(s)
        )
    });
    events.chain(services).collect()
}

/// What the core decides for `services` read as the watch decodes them (JSON into
/// [`CachedService`]), in [`outcome`]'s shape: the decisions applied to the Services as `plan`
/// applies them.
fn decoded_outcome(
    config: &crate::config::Config,
    namespaces: &Namespaces,
    services: &[Service],
) -> Vec<String> {
    let mut core = Core::new(None);
    core.set_namespaces(namespaces.clone());
    core.set_config(config).unwrap();
    let decoded: Vec<CachedService> = services.iter().map(cached).collect();
    core.rebuild(decoded.iter()).unwrap();
    let mut events = Vec::new();
    let mut shown = Vec::new();
    for (svc, view) in services.iter().zip(&decoded) {
        let decision = core.reconcile(view);
        let key = &decision.key;
        events.extend(
            decision
                .events
                .iter()
                .map(|e| format!("event {key} {:?} {}", e.reason, e.message)),
        );
        let mut svc = svc.clone();
        if let Outcome::Apply(desired) = &decision.outcome {
            desired.apply_to(&mut svc);
        }
        shown.push(format!(
            "service {key} {:?} {:?}",
            status_ips(&svc),
            allocated_pool(&svc)
        ));
    }
    events.into_iter().chain(shown).collect()
}

/// Every reading the core and the live edge make of a Service gives on the controller's form
/// what the `k8s::service` functions give on the full Service.
fn assert_same_reading(svc: &Service, view: &CachedService) {
    let key = service_key(svc);
    assert_eq!(view.key(), key);
    assert_eq!(
        view,
        &CachedService::from(svc.clone()),
        "{key}: decoded as converted"
    );
    assert_eq!(request_for(view), request_for(svc), "{key}: request");
    for class in [None, Some("ferrolb"), Some("other")] {
        assert_eq!(view.is_handled(class), is_handled(svc, class), "{key}");
        assert_eq!(view.is_our_class(class), is_our_class(svc, class), "{key}");
    }
    assert_eq!(view.is_load_balancer(), is_load_balancer(svc), "{key}");
    assert_eq!(view.status_ips(), status_ips(svc), "{key}");
    let entries = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map_or(0, Vec::len);
    assert_eq!(view.ingress_entries(), entries, "{key}");
    assert_eq!(view.ingress_entries() > 0, has_ingress(svc), "{key}");
    assert_eq!(view.allocated_pool(), allocated_pool(svc), "{key}");
    let meta = &svc.metadata;
    assert_eq!(view.name(), meta.name.as_deref(), "{key}");
    assert_eq!(view.namespace(), meta.namespace.as_deref(), "{key}");
    assert_eq!(view.uid(), meta.uid.as_deref(), "{key}");
    let version = meta.resource_version.as_deref();
    assert_eq!(view.resource_version(), version, "{key}");
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
fn the_controllers_form_reads_every_example_as_the_full_service_and_decides_as_plan() {
    for (config_file, services_file) in EXAMPLES {
        let (config, namespaces, services) = example(config_file, services_file);
        for svc in &services {
            assert_same_reading(svc, &cached(svc));
        }
        let plan = |services| plan_with_namespaces(&config, &namespaces, services, None).unwrap();
        let full = plan(services.clone());
        assert_eq!(
            outcome(&full),
            decoded_outcome(&config, &namespaces, &services),
            "{services_file}: fresh Services"
        );
        assert!(
            !full.events.is_empty(),
            "{services_file}: the example decides something"
        );

        // A restart: the planned Services (statuses filled in) rebuild the core.
        for svc in &full.services {
            assert_same_reading(svc, &cached(svc));
        }
        assert_eq!(
            outcome(&plan(full.services.clone())),
            decoded_outcome(&config, &namespaces, &full.services),
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
    let c = cached(&svc);
    assert_eq!(
        c.metadata,
        ObjectMeta {
            name: Some("web".into()),
            namespace: Some("shop".into()),
            uid: Some("u-1".into()),
            resource_version: Some("42".into()),
            ..ObjectMeta::default()
        }
    );
    // Every label: pools' serviceSelectors pick Services by them.
    let labels = BTreeMap::from([
        ("app".to_owned(), "web".to_owned()),
        ("tier".to_owned(), "gold".to_owned()),
    ]);
    assert_eq!(c.labels(), labels);
    assert_eq!(request_for(&c).unwrap().labels, labels);
    let annotations: Vec<&str> = c
        .annotations
        .as_deref()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_ref())
        .collect();
    assert_eq!(
        annotations,
        [
            "metallb.io/ip-allocated-from-pool",
            "metallb.universe.tf/allow-shared-ip"
        ]
    );
    assert!(c.is_load_balancer());
    // The families are known, so the cluster IPs (only a fallback for them) are not kept.
    assert_eq!(c.spec.cluster_ip, None);
    assert_eq!(c.spec.cluster_ips, None);
    let ports = c.spec.ports.as_deref().unwrap();
    assert_eq!(
        (ports[0].port, ports[0].protocol.as_deref()),
        (80, Some("TCP"))
    );
    // Both ingress entries count (a hostname entry makes the status differ from ours); only
    // the address is an address.
    assert_eq!(c.ingress_entries(), 2);
    assert_eq!(c.status_ips(), ["192.0.2.1".parse::<IpAddr>().unwrap()]);
    assert_same_reading(&svc, &c);
}

#[test]
fn cluster_ips_are_kept_when_they_are_the_only_clue_to_the_families() {
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"type": "LoadBalancer", "clusterIPs": ["2001:db8::1", "10.0.0.1"]},
    }))
    .unwrap();
    let c = cached(&svc);
    assert_eq!(c.cluster_ips(), ["2001:db8::1", "10.0.0.1"]);
    assert_same_reading(&svc, &c);
}

#[test]
fn a_service_without_spec_or_status_stays_without() {
    let svc: Service =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "bare"}})).unwrap();
    let c = cached(&svc);
    assert_eq!(c.spec, RequestSpec::default());
    assert!(!c.is_load_balancer());
    assert_eq!(c.class, None);
    assert_eq!((c.status_ips(), c.ingress_entries()), (&[][..], 0));
    assert_eq!(c.annotations, None);
    assert_eq!(c.labels, None);
    assert_same_reading(&svc, &c);
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
    let spec = &c.spec;
    let shared = |w: &Word| matches!(w, Cow::Borrowed(_));
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
    assert_same_reading(&svc, &c);
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
    let c = cached(&local);
    assert_eq!(
        c.selector(),
        BTreeMap::from([("app".to_owned(), "web".to_owned())])
    );
    assert_same_reading(&local, &c);

    let cluster = with_policy("Cluster");
    let c = cached(&cluster);
    assert_eq!(c.spec.selector, None);
    assert_same_reading(&cluster, &c);
}

#[test]
fn type_class_and_status_are_read_as_on_the_full_service() {
    let variants = [
        serde_json::json!({"type": "LoadBalancer", "loadBalancerClass": "ferrolb"}),
        serde_json::json!({"type": "LoadBalancer", "loadBalancerClass": "other"}),
        serde_json::json!({"type": "ClusterIP"}),
        serde_json::json!({}),
    ];
    let statuses = [
        serde_json::json!(null),
        serde_json::json!({"loadBalancer": {}}),
        serde_json::json!({"loadBalancer": {"ingress": []}}),
        serde_json::json!({"loadBalancer": {"ingress": [{"ip": "2001:db8::1"}, {"ip": "bogus"}]}}),
    ];
    for spec in &variants {
        for status in &statuses {
            let svc: Service = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": spec, "status": status,
            }))
            .unwrap();
            assert_same_reading(&svc, &cached(&svc));
        }
    }
}
