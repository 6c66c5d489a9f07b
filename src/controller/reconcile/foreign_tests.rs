//! Addresses shown by Services that are not ours are never handed out (see `foreign.rs`).

use serde_json::json;

use super::super::tests::{
    CONFIG, config, desired, ip, ready_core, reasons, service, view, with_status,
};
use super::super::{Core, Outcome, Reason};
use crate::controller::cached::CachedService;
use crate::ipam::ServiceKey;

const OURS: &str = "example.com/ferrolb";

fn ours(name: &str) -> k8s_openapi::api::core::v1::Service {
    service(name, json!({"spec": {"loadBalancerClass": OURS}}))
}

fn classed_core() -> Core {
    let mut core = Core::new(Some(OURS.into()));
    core.set_config(&config(CONFIG)).unwrap();
    core
}

#[test]
fn a_restarted_controller_never_hands_out_what_other_services_show() {
    // A classless Service assigned before `--lb-class` was set, another implementation's
    // Service, and a ClusterIP Service whose status someone wrote: all show addresses of
    // "default" (192.0.2.0-3).
    let services = [
        with_status("plain", &["192.0.2.0"], json!({})),
        with_status(
            "theirs",
            &["192.0.2.1"],
            json!({"spec": {"loadBalancerClass": "example.com/other"}}),
        ),
        with_status(
            "internal",
            &["192.0.2.2"],
            json!({"spec": {"type": "ClusterIP"}}),
        ),
        ours("ours"),
    ]
    .map(|s| view(&s));
    let mut core = classed_core();
    core.rebuild(services.iter()).unwrap();
    let d = core.reconcile(&services[3]);
    assert_eq!(desired(&d).ips, [ip("192.0.2.3")]);
    // The pool's one address left is the last: the next of ours finds none.
    let d = core.reconcile(&view(&ours("next")));
    assert_eq!(reasons(&d), [Reason::AllocationFailed]);
    let stats = core.pool_stats();
    let default = stats.iter().find(|s| s.pool == "default").unwrap();
    assert_eq!(default.in_use, 4, "{default:?}");

    // The foreign Services are left alone; a Warning for the pool names each, once.
    for (svc, shown) in services[..3]
        .iter()
        .zip(["192.0.2.0", "192.0.2.1", "192.0.2.2"])
    {
        let d = core.reconcile(svc);
        assert_eq!(d.outcome, Outcome::NotOurs);
        assert!(d.events.is_empty(), "{:?}", d.events);
        assert_eq!(d.pool_events.len(), 1, "{:?}", d.pool_events);
        let e = &d.pool_events[0];
        assert_eq!(e.pool, "default");
        assert_eq!(e.event.reason, Reason::AddressHeldElsewhere);
        let key = svc.key();
        assert!(
            e.event.message.contains(shown) && e.event.message.contains(key.as_str()),
            "{}",
            e.event.message
        );
        assert!(core.reconcile(svc).pool_events.is_empty());
    }
}

#[test]
fn a_foreign_address_seen_while_running_is_held_and_a_request_for_it_fails_naming_the_holder() {
    let mut core = ready_core();
    let theirs = with_status(
        "theirs",
        &["192.0.2.0"],
        json!({"spec": {"loadBalancerClass": "example.com/other"}}),
    );
    let d = core.reconcile(&view(&theirs));
    assert_eq!(d.outcome, Outcome::NotOurs);
    assert_eq!(d.pool_events.len(), 1);
    let d = core.reconcile(&view(&service("b", json!({}))));
    assert_eq!(desired(&d).ips, [ip("192.0.2.1")]);
    let asks = service("c", json!({"spec": {"loadBalancerIP": "192.0.2.0"}}));
    let d = core.reconcile(&view(&asks));
    assert_eq!(reasons(&d), [Reason::AllocationFailed]);
    let message = &d.events[0].message;
    assert!(
        message.contains("ns/theirs") && message.contains("does not serve"),
        "{message}"
    );

    // Its owner clears the status: the address is free again.
    let cleared = service(
        "theirs",
        json!({"spec": {"loadBalancerClass": "example.com/other"}}),
    );
    let d = core.reconcile(&view(&cleared));
    assert!(d.pool_events.is_empty());
    let d = core.reconcile(&view(&asks));
    assert_eq!(desired(&d).ips, [ip("192.0.2.0")]);
}

#[test]
fn an_address_ours_holds_stays_ours_and_is_held_for_the_other_once_ours_lets_go() {
    let mut core = ready_core();
    let a = view(&service("a", json!({})));
    assert_eq!(desired(&core.reconcile(&a)).ips, [ip("192.0.2.0")]);
    // Another implementation writes the same address into its Service's status.
    let theirs = view(&with_status(
        "theirs",
        &["192.0.2.0"],
        json!({"spec": {"loadBalancerClass": "example.com/other"}}),
    ));
    let d = core.reconcile(&theirs);
    let message = &d.pool_events[0].event.message;
    assert!(
        message.contains("ns/theirs") && message.contains("ns/a") && message.contains("two"),
        "{message}"
    );
    // Ours is not moved by what another wrote.
    assert_eq!(desired(&core.reconcile(&a)).ips, [ip("192.0.2.0")]);
    // Ours goes: the address is now held for the other, not handed to the next of ours.
    core.delete(&a.key());
    let d = core.reconcile(&view(&service("next", json!({}))));
    assert_eq!(desired(&d).ips, [ip("192.0.2.1")]);
    // Its Warning now says it is held.
    let d = core.reconcile(&theirs);
    assert!(
        d.pool_events[0].event.message.contains("held as in use"),
        "{:?}",
        d.pool_events
    );
}

#[test]
fn a_new_pool_holding_a_foreign_address_keeps_it_from_ours() {
    let narrow = r#"
address-pools:
- name: default
  protocol: layer2
  addresses: [192.0.2.0/31]
"#;
    let mut core = Core::new(None);
    core.set_config(&config(narrow)).unwrap();
    let theirs = view(&with_status(
        "theirs",
        &["192.0.2.2"],
        json!({"spec": {"loadBalancerClass": "example.com/other"}}),
    ));
    core.rebuild([&theirs]).unwrap();
    // Outside every pool: nothing to hold, nothing to say.
    assert!(core.reconcile(&theirs).pool_events.is_empty());
    for (name, want) in [("a", "192.0.2.0"), ("b", "192.0.2.1")] {
        let d = core.reconcile(&view(&service(name, json!({}))));
        assert_eq!(desired(&d).ips, [ip(want)]);
    }
    // The pool grows over the foreign address: held before anyone of ours is placed.
    core.set_config(&config(CONFIG)).unwrap();
    let d = core.reconcile(&view(&service("c", json!({}))));
    assert_eq!(desired(&d).ips, [ip("192.0.2.3")]);
    assert_eq!(core.reconcile(&theirs).pool_events.len(), 1);
}

#[test]
fn a_foreign_service_with_addresses_from_two_pools_is_held_whole_and_freed_whole() {
    let mut core = ready_core();
    // Two IPv4 addresses of one pool and one of another: three holds, one Service.
    let theirs = view(&with_status(
        "theirs",
        &["192.0.2.0", "192.0.2.1", "198.51.100.10"],
        json!({"spec": {"type": "NodePort"}}),
    ));
    let d = core.reconcile(&theirs);
    assert_eq!(d.pool_events.len(), 3, "{:?}", d.pool_events);
    let assigned: Vec<&ServiceKey> = core.assigned().collect();
    assert_eq!(
        assigned,
        [&theirs.key()],
        "only the Service, never its holds"
    );
    let d = core.reconcile(&view(&service("b", json!({}))));
    assert_eq!(desired(&d).ips, [ip("192.0.2.2")]);
    assert!(core.delete(&theirs.key()).is_some());
    let d = core.reconcile(&view(&service("c", json!({}))));
    assert_eq!(desired(&d).ips, [ip("192.0.2.0")]);
    assert_eq!(core.assigned().count(), 2);
}

#[test]
fn a_foreign_service_that_becomes_ours_keeps_what_it_shows() {
    let mut core = classed_core();
    core.rebuild(std::iter::empty::<CachedService>()).unwrap();
    let internal = with_status(
        "svc",
        &["192.0.2.1"],
        json!({"spec": {"type": "ClusterIP"}}),
    );
    assert_eq!(core.reconcile(&view(&internal)).outcome, Outcome::NotOurs);
    let now_ours = with_status(
        "svc",
        &["192.0.2.1"],
        json!({"spec": {"type": "LoadBalancer", "loadBalancerClass": OURS}}),
    );
    let d = core.reconcile(&view(&now_ours));
    assert_eq!(desired(&d).ips, [ip("192.0.2.1")]);
    assert!(d.pool_events.is_empty());
    assert_eq!(core.assigned().count(), 1);
}

#[test]
fn a_foreign_service_the_watch_delivers_is_held_before_its_own_reconcile() {
    // The live controller reconciles Services in no fixed order: one of ours created after
    // a foreign Service may be decided first.
    let mut core = ready_core();
    let theirs = view(&with_status(
        "theirs",
        &["192.0.2.0"],
        json!({"spec": {"loadBalancerClass": "example.com/other"}}),
    ));
    core.observe(&theirs);
    let d = core.reconcile(&view(&service("b", json!({}))));
    assert_eq!(desired(&d).ips, [ip("192.0.2.1")]);
    // Observing reports nothing; its reconcile does, once.
    assert_eq!(core.reconcile(&theirs).pool_events.len(), 1);
    core.observe(&theirs);
    assert!(core.reconcile(&theirs).pool_events.is_empty());
}
