//! What is owned: config states, BGP pools, the election gate, readiness.

use super::*;

#[tokio::test]
async fn invalid_configmap_keeps_the_last_good_config() {
    let (logs, _guard) = Logs::capture();
    let ip = "192.0.2.50";
    let mut h = Harness::new(ranked(ip)[0]);
    put(&mut h.services, service("web", ip, "Cluster"));
    let pass = h.pass(&NODES);
    assert_eq!(h.owned(), [ip]);
    assert_eq!(h.record(&pass.assigned, StatusCode::CREATED).await.len(), 1);

    // A typo in a range, the `config` key missing, the ConfigMap deleted: each keeps the IP.
    let broken = "address-pools:\n- name: l2\n  protocol: layer2\n  addresses: [192.0.2.0/33]\n";
    put(&mut h.configmaps, configmap(json!({"config": broken})));
    let pass = h.pass(&NODES);
    assert_eq!(pass.changed_from, None);
    assert!(pass.assigned.is_empty());
    assert_eq!(h.owned(), [ip]);
    assert!(logs.text().contains("config rejected"), "{}", logs.text());

    put(&mut h.configmaps, configmap(json!({"other": CONFIG})));
    assert_eq!(h.pass(&NODES).changed_from, None);
    assert!(logs.text().contains("no data.config"), "{}", logs.text());
    remove(&mut h.configmaps, configmap(json!({})));
    assert_eq!(h.pass(&NODES).changed_from, None);
    assert_eq!(h.owned(), [ip]);

    // A valid change applies: the pool moves away from the Service's IP.
    let moved = "address-pools:\n- name: l2\n  protocol: layer2\n  addresses: [203.0.113.0/24]\n";
    put(&mut h.configmaps, configmap(json!({"config": moved})));
    let pass = h.pass(&NODES);
    assert!(pass.changed_from.is_some());
    assert!(h.owned().is_empty());

    // And back: announced again, with a new event.
    put(&mut h.configmaps, configmap(json!({"config": CONFIG})));
    let pass = h.pass(&NODES);
    assert_eq!(h.owned(), [ip]);
    let sent = h.record(&pass.assigned, StatusCode::CREATED).await;
    h.assert_one_event(&sent, "web");
}

#[tokio::test]
async fn no_config_yet_announces_nothing() {
    let ip = "192.0.2.60";
    let mut h = Harness::new(ranked(ip)[0]);
    remove(&mut h.configmaps, configmap(json!({})));
    // A fresh reconciler that never saw a config.
    h.rec = Reconciler::new(h.me.into(), ViewOptions::default(), h.rec.stores().clone());
    put(&mut h.services, service("web", ip, "Cluster"));
    let pass = h.pass(&NODES);
    assert!(h.owned().is_empty());
    assert!(pass.assigned.is_empty());
    put(&mut h.configmaps, configmap(json!({"config": CONFIG})));
    h.pass(&NODES);
    assert_eq!(h.owned(), [ip]);
}

#[tokio::test]
async fn service_in_a_bgp_pool_is_not_announced() {
    let (logs, _guard) = Logs::capture();
    let bgp_ip = "198.51.100.7";
    for me in NODES {
        let mut h = Harness::new(me);
        put(&mut h.services, service("peered", bgp_ip, "Cluster"));
        put(&mut h.services, service("web", "192.0.2.70", "Cluster"));
        for _ in 0..2 {
            let pass = h.pass(&NODES);
            assert!(
                !h.owned().contains(&bgp_ip.to_string()),
                "{me} announces a BGP IP"
            );
            // No nodeAssigned for it (the reporter's notAnnounced Warning is tested apart).
            assert!(
                pass.assigned
                    .iter()
                    .all(|a| a.service != "shop/peered" || a.warning.is_some())
            );
        }
    }
    // Somebody announces the layer-2 one, so the BGP one was not dropped for lack of a node.
    let mut web = Harness::new(ranked("192.0.2.70")[0]);
    put(&mut web.services, service("web", "192.0.2.70", "Cluster"));
    web.pass(&NODES);
    assert_eq!(web.owned(), ["192.0.2.70"]);
    let warnings = logs.text().matches("BGP pool").count();
    assert_eq!(
        warnings,
        NODES.len(),
        "one warning per speaker, not per pass"
    );
}

#[tokio::test]
async fn closed_election_gate_owns_and_records_nothing() {
    let ip = "192.0.2.80";
    let order = ranked(ip);
    // A starting speaker that has not joined sees only itself; on paper it wins everything.
    let mut h = Harness::new(order[2]);
    put(&mut h.services, service("web", ip, "Cluster"));
    let pass = h.rec.pass(Some(&live(&[order[2]])), false);
    assert!(h.owned().is_empty());
    assert!(
        pass.assigned.is_empty(),
        "no event for what it does not announce"
    );
    // Joined: the real owner is another node, so still nothing here, and never an event.
    let pass = h.pass(&NODES);
    assert!(h.owned().is_empty());
    assert!(pass.assigned.is_empty());
}

#[test]
fn ready_needs_sockets_and_a_joined_gossip_in_a_cluster() {
    assert!(!ready(false, false, false, 1), "no sockets yet");
    assert!(ready(true, false, false, 3), "gossip off: sockets suffice");
    assert!(!ready(true, true, false, 3), "gossip on, not joined");
    assert!(ready(true, true, true, 3));
    assert!(
        ready(true, true, false, 1),
        "a cluster of one has nobody to join"
    );
}
