//! What is owned: config states, BGP pools, the election gate, readiness.

use super::*;

#[tokio::test]
async fn invalid_configmap_keeps_the_last_good_config() {
    let (logs, _guard) = Logs::capture();
    let ip = "192.0.2.50";
    let mut h = Harness::new(ranked(ip)[0]);
    h.add(service("web", ip, "Cluster"));
    let pass = h.pass(&NODES);
    assert_eq!(h.owned(), [ip]);
    assert_eq!(h.record(&pass.assigned, StatusCode::CREATED).await.len(), 1);
    // The ConfigurationState `speaker-<node>` says Valid.
    assert_eq!(h.rec.config_state(), Some(None));

    // A typo in a range, the `config` key missing, the ConfigMap deleted: each keeps the IP.
    let broken = "address-pools:\n- name: l2\n  protocol: layer2\n  addresses: [192.0.2.0/33]\n";
    put(&mut h.configmaps, configmap(json!({"config": broken})));
    let pass = h.pass(&NODES);
    assert_eq!(pass.changed_from, None);
    assert!(pass.assigned.is_empty());
    assert_eq!(h.owned(), [ip]);
    assert!(logs.text().contains("config rejected"), "{}", logs.text());
    // ...and the ConfigurationState says Invalid, naming what was refused.
    let refused = h.rec.config_state().flatten().unwrap_or_default();
    assert!(refused.contains("192.0.2.0/33"), "{refused}");

    put(&mut h.configmaps, configmap(json!({"other": CONFIG})));
    assert_eq!(h.pass(&NODES).changed_from, None);
    assert!(logs.text().contains("no data.config"), "{}", logs.text());
    remove(&mut h.configmaps, configmap(json!({})));
    assert_eq!(h.pass(&NODES).changed_from, None);
    assert_eq!(h.owned(), [ip]);

    // A valid change moves the pool away from the Service's IP: the IP is still answered while
    // the Service's status shows it (the controller moves the Service; until then its clients
    // still use the old IP)...
    let moved = "address-pools:\n- name: l2\n  protocol: layer2\n  addresses: [203.0.113.0/24]\n";
    put(&mut h.configmaps, configmap(json!({"config": moved})));
    let pass = h.pass(&NODES);
    assert_eq!(pass.changed_from, None);
    assert_eq!(h.owned(), [ip]);

    // ...and no longer once the status has moved to the new pool's address.
    let new_ip = "203.0.113.7";
    let mut moved_svc = service("web", new_ip, "Cluster");
    moved_svc.metadata.uid = Some("uid-web".into());
    put(&mut h.services, moved_svc);
    h.pass(&NODES);
    assert!(!h.owned().contains(&ip.to_string()), "{:?}", h.owned());

    // A status IP that was never in any pool this speaker loaded is not announced.
    h.add(service("stray", "198.18.0.1", "Cluster"));
    h.pass(&NODES);
    assert!(!h.owned().contains(&"198.18.0.1".to_string()));

    // And back: announced again, with a new event.
    h.add(service("web", ip, "Cluster"));
    put(&mut h.configmaps, configmap(json!({"config": CONFIG})));
    let pass = h.pass(&NODES);
    assert_eq!(h.owned(), [ip]);
    let sent = h.record(&pass.assigned, StatusCode::CREATED).await;
    h.assert_one_event(&sent, "web");
}

/// MetalLB's rule: a Service without a single ready or serving endpoint is not announced (it
/// could not be reached anyway, and announcing it hides the outage from health checks that
/// probe the address). It is announced again on the first pass after an endpoint turns ready.
#[tokio::test]
async fn a_service_without_a_serving_endpoint_is_not_announced() {
    let ip = "192.0.2.70";
    let mut h = Harness::new(ranked(ip)[0]);
    h.services_only(service("web", ip, "Cluster"));
    h.pass(&NODES);
    assert!(h.owned().is_empty(), "no EndpointSlice at all");

    put(
        &mut h.slices,
        slice_with("web", &[("node-b", Some(false), None)]),
    );
    h.pass(&NODES);
    assert!(h.owned().is_empty(), "only an unready endpoint");

    put(
        &mut h.slices,
        slice_with("web", &[("node-b", Some(true), None)]),
    );
    let pass = h.pass(&NODES);
    assert_eq!(h.owned(), [ip], "an endpoint turned ready");
    assert_eq!(pass.assigned.len(), 1);

    // Terminating but still serving (a rolling update) keeps it announced.
    put(
        &mut h.slices,
        slice_with("web", &[("node-c", Some(false), Some(true))]),
    );
    h.pass(&NODES);
    assert_eq!(h.owned(), [ip]);

    remove(&mut h.slices, slice_with("web", &[]));
    h.pass(&NODES);
    assert!(h.owned().is_empty(), "the last endpoint went away");
}

#[tokio::test]
async fn no_config_yet_announces_nothing() {
    let ip = "192.0.2.60";
    let mut h = Harness::new(ranked(ip)[0]);
    remove(&mut h.configmaps, configmap(json!({})));
    // A fresh reconciler that never saw a config.
    h.rec = Reconciler::new(h.me.into(), ViewOptions::default(), h.rec.stores().clone());
    h.add(service("web", ip, "Cluster"));
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
        h.add(service("peered", bgp_ip, "Cluster"));
        h.add(service("web", "192.0.2.70", "Cluster"));
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
    web.add(service("web", "192.0.2.70", "Cluster"));
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
    h.add(service("web", ip, "Cluster"));
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
fn ready_needs_sockets_and_a_joined_gossip_when_others_are_expected() {
    assert!(!ready(false, false, false, false), "no sockets yet");
    assert!(
        ready(true, false, false, true),
        "gossip off: sockets suffice"
    );
    assert!(
        !ready(true, true, false, true),
        "gossip on, others expected, not joined"
    );
    assert!(ready(true, true, true, true));
    assert!(
        ready(true, true, false, false),
        "a lone speaker has nobody to join"
    );
}

/// The speaker exports the config state as the controller does (MetalLB's
/// `metallb_k8s_client_config_*` come from both), and counts the layer-2 IPs it sees whether or
/// not this node announces them.
#[tokio::test]
async fn config_state_and_service_ips_follow_the_stores() {
    let ip = "192.0.2.70";
    let mut h = Harness::new(ranked(ip)[1]);
    let registry = prometheus::Registry::new();
    let metrics =
        crate::metrics::ConfigMetrics::register(&registry, crate::metrics::Naming::Metallb)
            .unwrap();
    h.rec = Reconciler::new(h.me.into(), ViewOptions::default(), h.rec.stores().clone())
        .with_config_metrics(metrics.clone());
    h.add(service("web", ip, "Cluster"));
    let pass = h.pass(&NODES);
    assert!(metrics.is_loaded() && !metrics.is_stale());
    assert!(h.owned().is_empty(), "another node is ranked first");
    assert_eq!(pass.service_ips, 1);

    let broken = "address-pools:\n- name: l2\n  protocol: layer2\n  addresses: [192.0.2.0/33]\n";
    put(&mut h.configmaps, configmap(json!({"config": broken})));
    assert_eq!(h.pass(&NODES).service_ips, 1, "the last good config counts");
    assert!(metrics.is_loaded() && metrics.is_stale());
    // Passes that see the same broken ConfigMap count no further update.
    h.pass(&NODES);
    put(&mut h.configmaps, configmap(json!({"config": CONFIG})));
    h.pass(&NODES);
    assert!(!metrics.is_stale());
    let mut text = String::new();
    prometheus::TextEncoder::new()
        .encode_utf8(&registry.gather(), &mut text)
        .unwrap();
    assert!(
        text.contains("metallb_k8s_client_updates_total 3\n"),
        "{text}"
    );
    assert!(
        text.contains("metallb_k8s_client_update_errors_total 1\n"),
        "{text}"
    );

    // An IP outside every pool is no layer-2 Service IP.
    put(
        &mut h.services,
        service("elsewhere", "198.51.100.9", "Cluster"),
    );
    assert_eq!(h.pass(&NODES).service_ips, 1);
}

/// A RequireDualStack Service and an IPv6-only Service sharing its IPv6 address, with addresses
/// whose own rankings differ: of the three speakers, exactly one owns the shared address, and it
/// owns the dual-stack Service's IPv4 address too.
#[tokio::test]
async fn services_sharing_an_address_are_owned_by_exactly_one_speaker() {
    let (v4, v6) = (1..=100)
        .flat_map(|i| (1..=100).map(move |j| (format!("192.0.2.{i}"), format!("2001:db8::{j:x}"))))
        .find(|(a, b)| ranked(a)[0] != ranked(b)[0])
        .unwrap();
    for order in [["dual", "v6-only"], ["v6-only", "dual"]] {
        let mut owners = Vec::new();
        for me in NODES {
            let mut h = Harness::new(me);
            for name in order {
                let svc = match name {
                    "dual" => service_ips(name, &[&v4, &v6], "Cluster"),
                    _ => service_ips(name, &[&v6], "Cluster"),
                };
                h.add(svc);
            }
            h.pass(&NODES);
            if !h.owned().is_empty() {
                owners.push((me, h.rec.owned().clone()));
            }
        }
        assert_eq!(owners.len(), 1, "one speaker owns the group: {owners:?}");
        let (owner, owned) = &owners[0];
        assert_eq!(
            *owner,
            ranked(&v4)[0],
            "ranked by the group's lowest first IP"
        );
        assert_eq!(
            owned.keys().map(IpAddr::to_string).collect::<Vec<_>>(),
            [v4.clone(), v6.clone()]
        );
    }
}

#[tokio::test]
async fn an_emptied_config_is_refused_while_services_hold_addresses_and_a_speaker_without_pools_is_no_candidate()
 {
    let ip = "192.0.2.50";
    let mut h = Harness::new(ranked(ip)[0]);
    h.add(service("web", ip, "Cluster"));
    h.pass(&NODES);
    assert!(h.rec.can_announce());
    assert_eq!(h.owned(), [ip]);
    // Emptied while a Service holds an address: refused, as by the controller.
    put(&mut h.configmaps, configmap(json!({"config": ""})));
    h.pass(&NODES);
    assert_eq!(h.owned(), [ip]);
    assert!(h.rec.can_announce());
    let refused = h.rec.config_state().flatten().unwrap_or_default();
    assert!(
        refused.contains("no address pools") && refused.contains("shop/web"),
        "{refused}"
    );

    // A speaker that never loaded a config with pools cannot announce: no candidate.
    let mut fresh = Harness::new(ranked(ip)[0]);
    put(&mut fresh.configmaps, configmap(json!({"config": ""})));
    fresh.add(service("web", ip, "Cluster"));
    fresh.pass(&NODES);
    assert!(!fresh.rec.can_announce());
    assert!(fresh.owned().is_empty());
}

/// A dual-stack Service drawn from a pool advertised on eth1 and eth2 shares its IPv6 address
/// with an IPv6-only Service whose pool is advertised on eth2 and eth3. The shared address is
/// answered only where every sharer may be reached (eth2), whichever Service sorts first; the
/// IPv4 address, the dual-stack Service's alone, keeps its own advertisement's interfaces.
#[tokio::test]
async fn a_shared_address_takes_the_interfaces_every_sharer_allows() {
    let (v4, v6) = ("192.0.2.90", "2001:db8::5a");
    let crds = crate::config::parse_file(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: four, namespace: f}\n\
         spec: {addresses: [192.0.2.0/24]}\n---\n\
         apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: six, namespace: f}\n\
         spec: {addresses: ['2001:db8::/120']}\n---\n\
         apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: a, namespace: f}\n\
         spec: {ipAddressPools: [four], interfaces: [eth1, eth2]}\n---\n\
         apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: b, namespace: f}\n\
         spec: {ipAddressPools: [six], interfaces: [eth2, eth3]}\n",
    )
    .unwrap()
    .config;
    let names =
        |list: &[&str]| -> BTreeSet<String> { list.iter().map(|n| n.to_string()).collect() };
    for (first, second) in [("alpha", "beta"), ("beta", "alpha")] {
        let mut owners = 0;
        for me in NODES {
            let mut h = Harness::new(me);
            // `first` sorts first: it is the dual-stack one in one round, the IPv6-only one in
            // the other.
            h.add(service_ips(first, &[v4, v6], "Cluster"));
            h.add(service_ips(second, &[v6], "Cluster"));
            h.pass(&NODES);
            h.rec.stand_in_config(crds.clone());
            h.pass(&NODES);
            if h.owned().is_empty() {
                continue;
            }
            owners += 1;
            let only_on = h.rec.only_on();
            assert_eq!(
                only_on.get(&v6.parse().unwrap()),
                Some(&names(&["eth2"])),
                "{first} first"
            );
            assert_eq!(
                only_on.get(&v4.parse().unwrap()),
                Some(&names(&["eth1", "eth2"])),
                "{first} first"
            );
        }
        assert_eq!(owners, 1);
    }
}
