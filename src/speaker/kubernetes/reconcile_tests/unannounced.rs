use super::*;

/// A Service in a BGP pool is announced by nobody: exactly one speaker (the node ranked first
/// for its IP) records one Warning event naming the pool, once, not on every pass; every
/// speaker shows the cause for the gauge.
#[tokio::test]
async fn one_speaker_records_the_cause_once() {
    let bgp_ip = "198.51.100.9";
    let reporter = ranked(bgp_ip)[0];
    for me in NODES {
        let mut h = Harness::new(me);
        put(&mut h.services, service("peered", bgp_ip, "Cluster"));
        let pass = h.pass(&NODES);
        assert_eq!(
            h.rec.unannounced().get("shop/peered").map(|c| c.label()),
            Some("bgp_pool"),
            "{me}"
        );
        if me != reporter {
            assert!(
                pass.assigned.is_empty(),
                "{me} must not record: {:?}",
                pass.assigned
            );
            continue;
        }
        let sent = h.record(&pass.assigned, StatusCode::CREATED).await;
        assert_eq!(sent.len(), 1, "{sent:#?}");
        assert_eq!(sent[0].method, Method::POST);
        assert_eq!(sent[0].body["type"], "Warning");
        assert_eq!(sent[0].body["reason"], "notAnnounced");
        let note = sent[0].body["note"].as_str().unwrap();
        assert!(note.contains("pool transit"), "{note}");
        // Nothing changed: no second event.
        assert!(h.pass(&NODES).assigned.is_empty());
        // Out of the live set, this node is no longer the recorder.
        let rest: Vec<&str> = NODES.iter().copied().filter(|n| *n != me).collect();
        assert!(h.pass(&rest).assigned.is_empty());
    }
}

/// A cause that goes away and comes back is reported again; the gauge set empties when fixed.
#[tokio::test]
async fn a_cause_is_reported_again_after_it_cleared() {
    let bgp_ip = "198.51.100.9";
    let mut h = Harness::new(ranked(bgp_ip)[0]);
    let svc = service("peered", bgp_ip, "Cluster");
    put(&mut h.services, svc.clone());
    assert_eq!(h.pass(&NODES).assigned.len(), 1);
    remove(&mut h.services, svc.clone());
    assert!(h.pass(&NODES).assigned.is_empty());
    assert!(h.rec.unannounced().is_empty());
    put(&mut h.services, svc);
    let again = h.pass(&NODES).assigned;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].warning.as_ref().map(|w| w.0), Some("notAnnounced"));
}

/// When every node has published that it lacks the advertised interface, the elected node
/// announces nothing and, alone, records `announceFailed`; with the interface it announces,
/// restricted to it. (A node lacking it while another has it is passed over: see
/// `cluster::tests::a_node_without_the_advertised_interface_is_passed_over_when_another_has_it`.)
#[tokio::test]
async fn elected_node_without_the_interface_announces_nothing_and_says_so() {
    let ip = "192.0.2.90";
    let order = ranked(ip);
    let crds = crate::config::parse_file(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: front, namespace: f}\n\
         spec: {addresses: [192.0.2.0/24]}\n---\n\
         apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: a, namespace: f}\n\
         spec: {ipAddressPools: [front], interfaces: [eth1]}\n",
    )
    .unwrap()
    .config;
    for me in NODES {
        let mut h = Harness::new(me);
        h.add(service("web", ip, "Cluster"));
        h.pass(&NODES);
        // The ConfigMap is loaded and unchanged from here on; stand in the CRD config.
        h.rec.stand_in_config(crds.clone());
        h.rec
            .set_own_interfaces(BTreeSet::from(["eth0".to_string()]));
        // What every other node's speaker said through gossip.
        h.rec.set_other_interfaces(
            NODES
                .iter()
                .map(|n| (n.to_string(), BTreeSet::from(["eth0".to_string()])))
                .collect(),
        );
        let pass = h.pass(&NODES);
        assert!(h.owned().is_empty(), "{me} has no eth1");
        if me != order[0] {
            assert!(pass.assigned.is_empty(), "{me}: {:?}", pass.assigned);
            continue;
        }
        let sent = h.record(&pass.assigned, StatusCode::CREATED).await;
        assert_eq!(sent.len(), 1, "{sent:#?}");
        assert_eq!(sent[0].body["type"], "Warning");
        assert_eq!(sent[0].body["reason"], "announceFailed");
        assert!(h.pass(&NODES).assigned.is_empty(), "once, not every pass");
        // eth1 appears: announced, on eth1 only.
        h.rec
            .set_own_interfaces(BTreeSet::from(["eth0".to_string(), "eth1".to_string()]));
        h.pass(&NODES);
        assert_eq!(h.owned(), [ip]);
        assert_eq!(
            h.rec.only_on().values().next(),
            Some(&BTreeSet::from(["eth1".to_string()]))
        );
        assert!(h.rec.unannounced().is_empty());
    }
}
