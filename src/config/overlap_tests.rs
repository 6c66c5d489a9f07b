use super::*;

fn config(pools: &str) -> Config {
    crate::config::crd::parse_file(pools).unwrap().config
}

fn pool(name: &str, addresses: &str) -> String {
    format!(
        "---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}, \
         namespace: metallb-system}}\nspec:\n  addresses: [{addresses}]\n"
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn node(name: &str, internal: &[&str], pod_cidrs: &[&str]) -> NodeNetworks {
    NodeNetworks {
        name: name.into(),
        addresses: internal
            .iter()
            .map(|a| NodeAddress {
                node: name.into(),
                kind: NodeAddressKind::InternalIP,
                ip: ip(a),
            })
            .collect(),
        pod_cidrs: pod_cidrs.iter().map(|c| c.parse().unwrap()).collect(),
    }
}

fn object_cidr(name: &str, cidr: &str) -> ServiceCidr {
    ServiceCidr {
        source: CidrSource::Object(name.into()),
        cidr: cidr.parse().unwrap(),
    }
}

#[test]
fn a_cidr_pool_partly_inside_a_service_cidr_reports_the_shared_part() {
    let config = config(&pool("a", "10.96.0.0/24"));
    let nets = ClusterNetworks {
        service_cidrs: vec![object_cidr("kubernetes", "10.96.0.128/25")],
        nodes: vec![],
    };
    let found = find_overlaps(&config, &nets);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].first, ip("10.96.0.128"));
    assert_eq!(found[0].last, ip("10.96.0.255"));
    let message = found[0].message();
    assert!(
        message.contains("ServiceCIDR kubernetes (10.96.0.128/25)")
            && message.contains("10.96.0.128-10.96.0.255")
            && message.contains("pool \"a\""),
        "{message}"
    );
}

#[test]
fn a_range_pool_overlapping_an_ipv6_pod_cidr_and_a_node_address_reports_both() {
    let config = config(&pool("v6", "fd00:10::f0-fd00:10::1:10"));
    let nets = ClusterNetworks {
        service_cidrs: vec![],
        nodes: vec![node("n1", &["fd00:10::1:5"], &["fd00:10::1:0/112"])],
    };
    let found = find_overlaps(&config, &nets);
    assert_eq!(found.len(), 2, "{found:?}");
    let node_address = found
        .iter()
        .find(|o| matches!(o.with, OverlapWith::NodeAddress(_)))
        .unwrap();
    assert_eq!(node_address.range(), "fd00:10::1:5");
    assert!(node_address.message().contains("the InternalIP of node n1"));
    let pods = found
        .iter()
        .find(|o| matches!(o.with, OverlapWith::PodCidr { .. }))
        .unwrap();
    assert_eq!(pods.range(), "fd00:10::1:0-fd00:10::1:10");
    assert!(
        pods.message()
            .contains("Pod CIDR fd00:10::1:0/112 of node n1"),
        "{}",
        pods.message()
    );
}

#[test]
fn pools_clear_of_every_network_overlap_nothing() {
    let config = config(&(pool("a", "192.0.2.0/28") + &pool("b", "2001:db8::/120")));
    let nets = ClusterNetworks {
        service_cidrs: vec![
            object_cidr("kubernetes", "10.96.0.0/12"),
            object_cidr("kubernetes", "fd00::/108"),
        ],
        // Right next to the pool, and an IPv4 Pod CIDR the IPv6 pool cannot overlap.
        nodes: vec![node(
            "n1",
            &["192.0.2.16", "2001:db8::1:0"],
            &["192.0.2.0/24"],
        )],
    };
    let found = find_overlaps(&config, &nets);
    // Only the IPv4 pool lies in the IPv4 Pod CIDR.
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].pool, "a");
    let nets = ClusterNetworks {
        service_cidrs: vec![object_cidr("kubernetes", "10.96.0.0/12")],
        nodes: vec![node("n1", &["192.0.2.16"], &["10.244.0.0/24"])],
    };
    assert_eq!(find_overlaps(&config, &nets), vec![]);
}

#[test]
fn several_overlaps_at_once_are_each_named() {
    let config =
        config(&(pool("a", "10.0.0.0/24, 10.1.0.10-10.1.0.20") + &pool("b", "10.2.0.0/30")));
    let nets = ClusterNetworks {
        service_cidrs: parse_service_range("10.0.0.0/25,fd00::/108").unwrap(),
        nodes: vec![
            node("n1", &["10.1.0.12"], &["10.2.0.0/24"]),
            node("n2", &["10.1.0.15", "10.0.0.200"], &[]),
        ],
    };
    let found = find_overlaps(&config, &nets);
    let messages: Vec<String> = found.iter().map(Overlap::message).collect();
    assert_eq!(found.len(), 5, "{messages:#?}");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("--service-cluster-ip-range") && m.contains("10.0.0.0-10.0.0.127")),
        "{messages:#?}"
    );
    for expected in [
        "10.1.0.12, the InternalIP of node n1",
        "10.1.0.15, the InternalIP of node n2",
        "10.0.0.200, the InternalIP of node n2",
    ] {
        assert!(
            messages.iter().any(|m| m.contains(expected)),
            "{expected}: {messages:#?}"
        );
    }
    assert!(
        messages.iter().any(|m| m.starts_with("pool \"b\"")
            && m.contains("Pod CIDR 10.2.0.0/24 of node n1")
            && m.contains("10.2.0.0-10.2.0.3")),
        "{messages:#?}"
    );
    assert!(found.iter().all(|o| o.fix().contains(&o.range())));
}

#[test]
fn the_service_range_flag_reads_as_kube_apiserver_spells_it() {
    let cidrs = parse_service_range("10.96.0.0/12, fd00:10::/108").unwrap();
    assert_eq!(cidrs.len(), 2);
    assert!(cidrs.iter().all(|c| c.source == CidrSource::Flag));
    assert_eq!(cidrs[1].cidr.to_string(), "fd00:10::/108");
    let err = parse_service_range("10.96.0.0/12,10.97.0.1").unwrap_err();
    assert_eq!(err.entry, "10.97.0.1");
    assert!(err.to_string().contains("\"10.97.0.1\" is not a CIDR"));
}

#[test]
fn node_addresses_are_listed_once_each() {
    let nets = ClusterNetworks {
        service_cidrs: vec![],
        nodes: vec![
            node("b", &["192.0.2.2"], &[]),
            node("a", &["192.0.2.1", "192.0.2.1"], &[]),
        ],
    };
    let ips: Vec<IpAddr> = nets.node_addresses().iter().map(|a| a.ip).collect();
    assert_eq!(ips, [ip("192.0.2.1"), ip("192.0.2.2")]);
}
