use super::*;
use serde_json::json;
use std::collections::BTreeMap;

fn svc(value: serde_json::Value) -> Service {
    let mut value = value;
    value["apiVersion"] = json!("v1");
    value["kind"] = json!("Service");
    if value.get("metadata").is_none() {
        value["metadata"] = json!({"name": "web", "namespace": "shop"});
    }
    serde_json::from_value(value).unwrap()
}

fn lb(spec: serde_json::Value) -> Service {
    let mut spec = spec;
    spec["type"] = json!("LoadBalancer");
    svc(json!({ "spec": spec }))
}

fn annotated(annotations: serde_json::Value, spec: serde_json::Value) -> Service {
    let mut spec = spec;
    spec["type"] = json!("LoadBalancer");
    svc(json!({
        "metadata": {"name": "web", "namespace": "shop", "annotations": annotations},
        "spec": spec,
    }))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn key_defaults_namespace() {
    let s = svc(json!({"metadata": {"name": "a"}, "spec": {}}));
    assert_eq!(service_key(&s).as_str(), "default/a");
    assert_eq!(service_key(&lb(json!({}))).as_str(), "shop/web");
}

#[test]
fn handled_only_for_load_balancers_of_our_class() {
    assert!(is_handled(&lb(json!({})), None));
    // With a class of our own, classless Services belong to the cluster's default load
    // balancer (MetalLB's rule): only our class is ours.
    assert!(!is_handled(&lb(json!({})), Some("ferrolb")));
    let cluster_ip = svc(json!({"spec": {"type": "ClusterIP"}}));
    assert!(!is_handled(&cluster_ip, None));
    let untyped = svc(json!({"spec": {}}));
    assert!(!is_handled(&untyped, None));
    let classed = lb(json!({"loadBalancerClass": "example.com/other"}));
    assert!(!is_handled(&classed, None));
    assert!(!is_handled(&classed, Some("ferrolb")));
    assert!(is_handled(&classed, Some("example.com/other")));
    // `--lb-class=` (empty) is no class at all, as MetalLB's flag defaults to "".
    assert!(is_handled(&lb(json!({})), Some("")));
    assert!(!is_handled(&classed, Some("")));
}

#[test]
fn plain_service_requests_one_ipv4_from_any_pool() {
    let req = request_for(&lb(json!({"ports": [{"port": 80}]}))).unwrap();
    assert_eq!(req.families, FamilyPolicy::Single(Family::V4));
    assert!(req.requested.is_empty());
    assert_eq!(req.pool, None);
    assert_eq!(req.sharing_key, None);
    // Protocol defaults to TCP as the API server does.
    assert_eq!(
        req.ports,
        vec![Port {
            protocol: Protocol::Tcp,
            port: 80
        }]
    );
    assert_eq!(req.traffic, TrafficPolicy::Cluster);
}

#[test]
fn spec_load_balancer_ip_is_requested() {
    let req = request_for(&lb(json!({"loadBalancerIP": "192.0.2.10"}))).unwrap();
    assert_eq!(req.requested, vec![ip("192.0.2.10")]);
    // Without families, the requested address's family is the primary.
    let req = request_for(&lb(json!({"loadBalancerIP": "2001:db8::5"}))).unwrap();
    assert_eq!(req.families, FamilyPolicy::Single(Family::V6));
}

#[test]
fn load_balancer_ips_annotation_under_either_prefix() {
    for prefix in ANNOTATION_PREFIXES {
        let s = annotated(
            json!({ format!("{prefix}loadBalancerIPs"): "192.0.2.7, 2001:db8::7" }),
            json!({"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]}),
        );
        let req = request_for(&s).unwrap();
        assert_eq!(req.requested, vec![ip("192.0.2.7"), ip("2001:db8::7")]);
        assert_eq!(
            req.families,
            FamilyPolicy::RequireDualStack {
                primary: Family::V4
            }
        );
    }
}

#[test]
fn spec_ip_and_annotation_together_is_an_error_naming_both() {
    let s = annotated(
        json!({"metallb.universe.tf/loadBalancerIPs": "192.0.2.8"}),
        json!({"loadBalancerIP": "192.0.2.9"}),
    );
    let err = request_for(&s).unwrap_err();
    assert!(matches!(err, ServiceError::RequestedTwice { .. }));
    let msg = err.to_string();
    assert!(msg.contains("192.0.2.9") && msg.contains("metallb.universe.tf/loadBalancerIPs"));
}

#[test]
fn invalid_requested_ip_names_the_field() {
    let err = request_for(&lb(json!({"loadBalancerIP": "192.0.2.300"}))).unwrap_err();
    assert_eq!(
        err,
        ServiceError::InvalidIp {
            field: "spec.loadBalancerIP".into(),
            value: "192.0.2.300".into()
        }
    );
    let s = annotated(
        json!({"metallb.io/loadBalancerIPs": "192.0.2.1,nope"}),
        json!({}),
    );
    let msg = request_for(&s).unwrap_err().to_string();
    assert!(
        msg.contains("metallb.io/loadBalancerIPs") && msg.contains("nope"),
        "{msg}"
    );
}

#[test]
fn pool_and_sharing_annotations_under_both_prefixes() {
    let s = annotated(
        json!({
            "metallb.universe.tf/address-pool": "gold",
            "metallb.io/address-pool": "gold",
            "metallb.io/allow-shared-ip": "team-a",
        }),
        json!({}),
    );
    let req = request_for(&s).unwrap();
    assert_eq!(req.pool.as_deref(), Some("gold"));
    assert_eq!(req.sharing_key.as_deref(), Some("team-a"));

    let s = annotated(
        json!({"metallb.universe.tf/allow-shared-ip": "k"}),
        json!({}),
    );
    assert_eq!(request_for(&s).unwrap().sharing_key.as_deref(), Some("k"));
    // An empty annotation is no annotation.
    let s = annotated(json!({"metallb.io/address-pool": ""}), json!({}));
    assert_eq!(request_for(&s).unwrap().pool, None);
}

#[test]
fn disagreeing_prefixes_are_an_error() {
    let s = annotated(
        json!({
            "metallb.universe.tf/address-pool": "gold",
            "metallb.io/address-pool": "silver",
        }),
        json!({}),
    );
    let msg = request_for(&s).unwrap_err().to_string();
    assert!(
        msg.contains("metallb.universe.tf/address-pool")
            && msg.contains("metallb.io/address-pool")
            && msg.contains("gold")
            && msg.contains("silver"),
        "{msg}"
    );
}

#[test]
fn families_from_spec_or_cluster_ips() {
    let cases = [
        (
            json!({"ipFamilies": ["IPv6"]}),
            FamilyPolicy::Single(Family::V6),
        ),
        (
            json!({"ipFamilies": ["IPv6", "IPv4"], "ipFamilyPolicy": "PreferDualStack"}),
            FamilyPolicy::PreferDualStack {
                primary: Family::V6,
            },
        ),
        // The API server defaults a two-family Service without a policy to RequireDualStack.
        (
            json!({"ipFamilies": ["IPv4", "IPv6"]}),
            FamilyPolicy::RequireDualStack {
                primary: Family::V4,
            },
        ),
        // PreferDualStack on a single-stack cluster gets one family: single-stack.
        (
            json!({"ipFamilies": ["IPv4"], "ipFamilyPolicy": "PreferDualStack"}),
            FamilyPolicy::Single(Family::V4),
        ),
        (
            json!({"clusterIPs": ["2001:db8::1", "10.96.0.5"], "ipFamilyPolicy": "PreferDualStack"}),
            FamilyPolicy::PreferDualStack {
                primary: Family::V6,
            },
        ),
        (
            json!({"clusterIP": "2001:db8::1"}),
            FamilyPolicy::Single(Family::V6),
        ),
        (
            json!({"ipFamilyPolicy": "RequireDualStack"}),
            FamilyPolicy::RequireDualStack {
                primary: Family::V4,
            },
        ),
        // Nothing known: a hand-written PreferDualStack Service may get both.
        (
            json!({"ipFamilyPolicy": "PreferDualStack"}),
            FamilyPolicy::PreferDualStack {
                primary: Family::V4,
            },
        ),
    ];
    for (spec, expected) in cases {
        let req = request_for(&lb(spec.clone())).unwrap();
        assert_eq!(req.families, expected, "spec {spec}");
    }
}

#[test]
fn bad_families_and_policies_are_named() {
    let err = request_for(&lb(json!({"ipFamilies": ["IPv5"]}))).unwrap_err();
    assert_eq!(
        err,
        ServiceError::UnknownFamily {
            value: "IPv5".into()
        }
    );
    let err = request_for(&lb(json!({"ipFamilyPolicy": "Whatever"}))).unwrap_err();
    assert!(err.to_string().contains("Whatever"));
}

#[test]
fn ports_and_traffic_policy() {
    let s = lb(json!({
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
        "externalTrafficPolicy": "Local",
        "selector": {"app": "dns"},
    }));
    let req = request_for(&s).unwrap();
    assert_eq!(
        req.ports,
        vec![
            Port {
                protocol: Protocol::Udp,
                port: 53
            },
            Port {
                protocol: Protocol::Tcp,
                port: 53
            }
        ]
    );
    let selector: BTreeMap<String, String> = [("app".into(), "dns".into())].into();
    assert_eq!(req.traffic, TrafficPolicy::Local { selector });

    let err = request_for(&lb(
        json!({"ports": [{"port": 1}, {"port": 2, "protocol": "ICMP"}]}),
    ))
    .unwrap_err();
    assert_eq!(
        err,
        ServiceError::UnknownProtocol {
            index: 1,
            value: "ICMP".into()
        }
    );
    let err = request_for(&lb(json!({"ports": [{"port": 70000}]}))).unwrap_err();
    assert_eq!(
        err,
        ServiceError::InvalidPort {
            index: 0,
            value: 70000
        }
    );
}

#[test]
fn status_ips_and_pool_annotation_are_read() {
    let s = svc(json!({
        "metadata": {"name": "a", "namespace": "b",
                     "annotations": {"metallb.io/ip-allocated-from-pool": "gold"}},
        "spec": {"type": "LoadBalancer"},
        "status": {"loadBalancer": {"ingress": [
            {"ip": "192.0.2.1"}, {"hostname": "lb.example"}, {"ip": "2001:db8::1"}
        ]}},
    }));
    assert_eq!(status_ips(&s), vec![ip("192.0.2.1"), ip("2001:db8::1")]);
    assert!(has_ingress(&s));
    assert_eq!(allocated_pool(&s), Some("gold"));
    assert!(status_ips(&lb(json!({}))).is_empty());
    assert!(!has_ingress(&lb(json!({}))));
}
