use super::*;
use crate::k8s::service::service_key;

const CONFIG: &str = r#"
address-pools:
- name: default
  protocol: layer2
  addresses: [192.0.2.10-192.0.2.11]
"#;

fn config() -> Config {
    crate::config::parse(CONFIG).unwrap()
}

#[test]
fn reads_documents_and_lists_with_or_without_item_kinds() {
    let text = r#"
apiVersion: v1
kind: Service
metadata: {name: a, namespace: x}
spec: {type: LoadBalancer}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: b}
  spec: {type: ClusterIP}
---
apiVersion: v1
kind: ServiceList
items:
- metadata: {name: c, namespace: y}
  spec: {type: LoadBalancer}
"#;
    let services = parse_services(text, "in.yaml").unwrap();
    let keys: Vec<String> = services
        .iter()
        .map(|s| service_key(s).to_string())
        .collect();
    assert_eq!(keys, ["x/a", "default/b", "y/c"]);
}

#[test]
fn bad_documents_are_named() {
    let err = parse_services("kind: ConfigMap\nmetadata: {name: a}\n", "f.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "f.yaml: document 1: kind \"ConfigMap\" is not a Service, a Namespace or a List"
    );
    let text = "kind: Service\nmetadata: {name: a}\n---\nkind: List\nitems:\n- kind: Pod\n";
    let err = parse_services(text, "f.yaml").unwrap_err().to_string();
    assert!(
        err.contains("document 2") && err.contains("items[0] is a Pod"),
        "{err}"
    );
    let err = parse_services("kind: Service\nspec: {}\n", "f.yaml").unwrap_err();
    assert!(
        err.to_string().contains("metadata.name is missing"),
        "{err}"
    );
    let err = parse_services("kind: [unclosed\n", "f.yaml").unwrap_err();
    assert!(matches!(err, PlanError::Yaml { .. }), "{err}");
    // A port must be a number: the k8s schema is enforced.
    let err = parse_services(
        "kind: Service\nmetadata: {name: a}\nspec: {ports: [{port: http}]}\n",
        "f.yaml",
    )
    .unwrap_err();
    assert!(matches!(err, PlanError::Yaml { .. }), "{err}");
    let err = parse_services(
        "kind: Service\napiVersion: v2\nmetadata: {name: a}\n",
        "f.yaml",
    )
    .unwrap_err();
    assert!(err.to_string().contains("apiVersion \"v2\""), "{err}");
}

#[test]
fn duplicate_services_are_refused() {
    let text = "kind: Service\nmetadata: {name: a}\n---\nkind: Service\nmetadata: {name: a, namespace: default}\n";
    let services = parse_services(text, "f").unwrap();
    let err = plan(&config(), services, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Service default/a appears more than once in the input"
    );
}

#[test]
fn table_and_yaml_show_the_allocation() {
    let text = r#"
kind: Service
apiVersion: v1
metadata: {name: web, namespace: shop}
spec:
  type: LoadBalancer
  ports: [{port: 80, nodePort: 30080}, {port: 53, protocol: UDP}]
---
kind: Service
apiVersion: v1
metadata: {name: internal, namespace: shop}
spec: {type: ClusterIP, ports: [{port: 8080}]}
---
kind: Service
apiVersion: v1
metadata: {name: a, namespace: shop}
spec: {type: LoadBalancer}
---
kind: Service
apiVersion: v1
metadata: {name: b, namespace: shop}
spec: {type: LoadBalancer}
"#;
    let p = plan(&config(), parse_services(text, "f").unwrap(), None).unwrap();
    let table = p.table();
    let lines: Vec<&str> = table.lines().collect();
    // Column widths: NAMESPACE(9), NAME(8 "internal"), TYPE(12), EXTERNAL-IP(11), POOL(7).
    assert_eq!(
        lines[0],
        "NAMESPACE   NAME       TYPE           EXTERNAL-IP   POOL      PORT(S)"
    );
    assert_eq!(
        lines[1],
        "shop        web        LoadBalancer   192.0.2.10    default   80:30080/TCP,53/UDP"
    );
    assert_eq!(
        lines[2],
        "shop        internal   ClusterIP      <none>        <none>    8080/TCP"
    );
    assert_eq!(
        lines[4],
        "shop        b          LoadBalancer   <pending>     <none>    <none>"
    );
    assert!(table.contains("\nEVENTS\n"), "{table}");
    assert!(
        table.contains(
            "\nshop/b     Warning   AllocationFailed   Failed to allocate IP for Service shop/b: "
        ),
        "{table}"
    );

    let yaml = p.to_yaml().unwrap();
    let back = parse_services(&yaml, "plan output").unwrap();
    assert_eq!(back.len(), 4);
    assert_eq!(
        status_ips(&back[0]),
        vec!["192.0.2.10".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(allocated_pool(&back[0]), Some("default"));
    assert_eq!(
        status_ips(&back[2]),
        vec!["192.0.2.11".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(status_ips(&back[3]).is_empty());
}

/// Two Services (namespace `old`) show addresses of a pool whose `serviceAllocation` now admits
/// only namespace `shop`: a restarted controller frees them before it places the new `shop`
/// Service, which gets the pool's first address, as a controller running through the change
/// would have given it (and MetalLB gives it).
#[test]
fn a_restart_frees_addresses_the_pool_no_longer_admits_before_placing_anyone() {
    let config = crate::config::crd::parse_file(
        r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: shop, namespace: metallb-system}
spec:
  addresses: [192.0.2.1-192.0.2.4]
  serviceAllocation: {namespaces: [shop]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: rest, namespace: metallb-system}
spec:
  addresses: [198.51.100.1-198.51.100.4]
"#,
    )
    .unwrap()
    .config;
    let services = parse_services(
        r#"
apiVersion: v1
kind: Service
metadata: {name: new, namespace: shop}
spec: {type: LoadBalancer, ipFamilies: [IPv4]}
---
apiVersion: v1
kind: Service
metadata:
  name: first
  namespace: old
  annotations: {metallb.io/ip-allocated-from-pool: shop}
spec: {type: LoadBalancer, ipFamilies: [IPv4]}
status: {loadBalancer: {ingress: [{ip: 192.0.2.1}]}}
---
apiVersion: v1
kind: Service
metadata:
  name: second
  namespace: old
  annotations: {metallb.io/ip-allocated-from-pool: shop}
spec: {type: LoadBalancer, ipFamilies: [IPv4]}
status: {loadBalancer: {ingress: [{ip: 192.0.2.2}]}}
"#,
        "in.yaml",
    )
    .unwrap();
    let p = plan(&config, services, None).unwrap();
    let shown: Vec<(String, Vec<std::net::IpAddr>, Option<&str>)> = p
        .services
        .iter()
        .map(|s| (service_key(s).to_string(), status_ips(s), allocated_pool(s)))
        .collect();
    let ip = |s: &str| -> std::net::IpAddr { s.parse().unwrap() };
    assert_eq!(
        shown,
        [
            ("shop/new".into(), vec![ip("192.0.2.1")], Some("shop")),
            ("old/first".into(), vec![ip("198.51.100.1")], Some("rest")),
            ("old/second".into(), vec![ip("198.51.100.2")], Some("rest")),
        ]
    );
    // Each moved Service is told why.
    let cleared: Vec<(&str, &str)> = p
        .events
        .iter()
        .filter(|e| e.reason == Reason::ClearAssignment)
        .map(|e| (e.key.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(cleared.len(), 2, "{cleared:?}");
    for (name, message) in cleared {
        assert!(
            message.contains("pool \"shop\" is not for this service")
                && message.contains("admits only namespaces shop"),
            "{name}: {message}"
        );
    }
}
