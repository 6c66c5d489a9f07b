//! Assigning, sharing, releasing and freeing addresses through the API.

use super::*;

#[tokio::test]
async fn assign_records_event_then_patches_status_and_annotation() {
    let web = service("web", json!({}));
    let mut h = Harness::leader(std::slice::from_ref(&web));
    let task = h.spawn(&web);
    let event = h.expect_event("IPAllocated").await;
    assert_eq!(event["type"], "Normal");
    assert_eq!(event["regarding"]["name"], "web");
    assert_eq!(
        event["note"],
        "Assigned IP 192.0.2.1 from pool \"default\" to Service shop/web"
    );
    h.expect_status("web", json!([{"ip": "192.0.2.1"}])).await;
    h.expect_pool("web", json!("default")).await;
    assert_eq!(done(task).await.unwrap(), Action::await_change());
    assert_eq!(h.in_use("default"), 1);

    // The watch then shows our write: nothing more to do, no request.
    let task = h.spawn(&shown(&web, &["192.0.2.1"], "default"));
    done(task).await.unwrap();
}

#[tokio::test]
async fn requested_ip_and_pool_annotation() {
    let asks_ip = service(
        "asks-ip",
        json!({"spec": {"loadBalancerIP": "198.51.100.11"}}),
    );
    let asks_pool = service(
        "asks-pool",
        json!({"metadata": {"annotations": {"metallb.universe.tf/address-pool": "reserved"}}}),
    );
    let mut h = Harness::leader(&[asks_ip.clone(), asks_pool.clone()]);

    let task = h.spawn(&asks_ip);
    h.expect_event("IPAllocated").await;
    h.expect_status("asks-ip", json!([{"ip": "198.51.100.11"}]))
        .await;
    h.expect_pool("asks-ip", json!("reserved")).await;
    done(task).await.unwrap();

    // Lowest free of "reserved" (auto-assign off, but asked for by name).
    let task = h.spawn(&asks_pool);
    h.expect_event("IPAllocated").await;
    h.expect_status("asks-pool", json!([{"ip": "198.51.100.10"}]))
        .await;
    h.expect_pool("asks-pool", json!("reserved")).await;
    done(task).await.unwrap();
    assert_eq!(h.in_use("reserved"), 2);
}

#[tokio::test]
async fn sharing_services_get_the_same_address() {
    let shared = |name: &str, port: u16| {
        service(
            name,
            json!({"metadata": {"annotations": {"metallb.io/allow-shared-ip": "web"}},
                   "spec": {"ports": [{"port": port, "protocol": "TCP"}]}}),
        )
    };
    let (http, https) = (shared("http", 80), shared("https", 443));
    let mut h = Harness::leader(&[http.clone(), https.clone()]);
    for svc in [&http, &https] {
        let name = svc.metadata.name.clone().unwrap();
        let task = h.spawn(svc);
        h.expect_event("IPAllocated").await;
        h.expect_status(&name, json!([{"ip": "192.0.2.1"}])).await;
        h.expect_pool(&name, json!("default")).await;
        done(task).await.unwrap();
    }
    // One address in use, held by two Services.
    assert_eq!(h.in_use("default"), 1);
}

#[tokio::test]
async fn startup_gate_reregisters_cached_statuses_before_allocating() {
    // Restarted controller: "old" shows 192.0.2.1 in the cache but is not reconciled yet.
    let old = shown(&service("old", json!({})), &["192.0.2.1"], "default");
    let new = service("new", json!({}));
    let mut h = Harness::leader(&[old.clone(), new.clone()]);
    let task = h.spawn(&new);
    h.expect_event("IPAllocated").await;
    h.expect_status("new", json!([{"ip": "192.0.2.2"}])).await;
    h.expect_pool("new", json!("default")).await;
    done(task).await.unwrap();
    // "old" keeps its address without a single write.
    done(h.spawn(&old)).await.unwrap();
    assert_eq!(h.in_use("default"), 2);
}

#[tokio::test]
async fn type_change_releases_and_clears_status_and_annotation() {
    let web = shown(&service("web", json!({})), &["192.0.2.1"], "default");
    let mut h = Harness::leader(std::slice::from_ref(&web));
    done(h.spawn(&web)).await.unwrap();
    assert_eq!(h.in_use("default"), 1);

    let mut cluster_ip = web.clone();
    cluster_ip.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    let task = h.spawn(&cluster_ip);
    let event = h.expect_event("ClearAssignment").await;
    assert!(
        event["note"].as_str().unwrap().contains("192.0.2.1"),
        "{event}"
    );
    h.expect_status("web", Value::Null).await;
    h.expect_pool("web", Value::Null).await;
    done(task).await.unwrap();
    assert_eq!(h.in_use("default"), 0);
}

#[tokio::test]
async fn deletion_frees_the_address_and_retries_waiting_services() {
    // Pool of three, all taken; a fourth Service waits.
    let names = ["a", "b", "c"];
    let ips = ["192.0.2.1", "192.0.2.2", "192.0.2.3"];
    let holders: Vec<Service> = names
        .iter()
        .zip(ips)
        .map(|(n, ip)| shown(&service(n, json!({})), &[ip], "default"))
        .collect();
    let waiting = service("d", json!({}));
    let mut all = holders.clone();
    all.push(waiting.clone());
    let mut h = Harness::leader(&all);
    while h.reconcile_all.try_recv().is_ok() {}

    let task = h.spawn(&waiting);
    let event = h.expect_event("AllocationFailed").await;
    assert_eq!(event["type"], "Warning");
    assert_eq!(
        event["note"],
        "Failed to allocate IP for Service shop/d: no auto-assign pool has a free IPv4 address"
    );
    done(task).await.unwrap();

    h.store
        .apply_watcher_event(&watcher::Event::Delete(holders[1].clone().into()));
    h.ctx.service_deleted(&holders[1].clone().into());
    assert_eq!(h.in_use("default"), 2);
    assert_eq!(
        h.reconcile_all.next().await,
        Some(()),
        "waiting Services are retried"
    );

    let task = h.spawn(&waiting);
    h.expect_event("IPAllocated").await;
    h.expect_status("d", json!([{"ip": "192.0.2.2"}])).await;
    h.expect_pool("d", json!("default")).await;
    done(task).await.unwrap();
}
