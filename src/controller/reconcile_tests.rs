use super::*;
use k8s_openapi::api::core::v1::Service;
use serde_json::json;

use crate::k8s::service::status_ips;

/// default: 192.0.2.0-192.0.2.3 (auto); reserved: 198.51.100.10-12 (by request only);
/// dual: 203.0.113.0-1 and 2001:db8::-2001:db8::1 (by request only).
pub(super) const CONFIG: &str = r#"
address-pools:
- name: default
  protocol: layer2
  addresses: [192.0.2.0/30]
- name: reserved
  protocol: layer2
  auto-assign: false
  addresses: [198.51.100.10-198.51.100.12]
- name: dual
  protocol: layer2
  auto-assign: false
  addresses: [203.0.113.0/31, "2001:db8::/127"]
"#;

pub(super) fn config(text: &str) -> Config {
    crate::config::parse(text).unwrap()
}

pub(super) fn ready_core() -> Core {
    let mut core = Core::new(None);
    core.set_config(&config(CONFIG)).unwrap();
    core.rebuild(std::iter::empty::<CachedService>()).unwrap();
    core
}

/// The tests write Services as the API shows them; the core reads each as the controller holds
/// it.
pub(super) fn view(svc: &Service) -> CachedService {
    svc.clone().into()
}

pub(super) fn service(name: &str, extra: serde_json::Value) -> Service {
    let mut v = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

pub(super) fn with_status(name: &str, ips: &[&str], extra: serde_json::Value) -> Service {
    let ingress: Vec<_> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    let mut extra = extra;
    merge(
        &mut extra,
        json!({"status": {"loadBalancer": {"ingress": ingress}}}),
    );
    service(name, extra)
}

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(super) fn desired(d: &Decision) -> &Desired {
    match &d.outcome {
        Outcome::Apply(d) => d,
        other => panic!("expected Apply, got {other:?} for {}", d.key),
    }
}

pub(super) fn reasons(d: &Decision) -> Vec<Reason> {
    d.events.iter().map(|e| e.reason).collect()
}

#[test]
fn assigns_lowest_free_address_and_says_so() {
    let mut core = ready_core();
    let a = core.reconcile(&view(&service("a", json!({}))));
    assert_eq!(desired(&a).ips, vec![ip("192.0.2.0")]);
    assert_eq!(desired(&a).pool.as_deref(), Some("default"));
    assert_eq!(reasons(&a), vec![Reason::IpAllocated]);
    let msg = &a.events[0].message;
    assert!(
        msg.contains("192.0.2.0") && msg.contains("\"default\"") && msg.contains("ns/a"),
        "{msg}"
    );
    let b = core.reconcile(&view(&service("b", json!({}))));
    assert_eq!(desired(&b).ips, vec![ip("192.0.2.1")]);
}

#[test]
fn reconciling_again_is_quiet_and_shown_status_matches() {
    let mut core = ready_core();
    let mut svc = service("a", json!({}));
    let first = core.reconcile(&view(&svc));
    let want = desired(&first).clone();
    assert!(!want.is_shown_by(&view(&svc)));
    want.apply_to(&mut svc);
    assert!(want.is_shown_by(&view(&svc)));
    let again = core.reconcile(&view(&svc));
    assert_eq!(desired(&again), &want);
    assert!(again.events.is_empty(), "{:?}", again.events);
}

#[test]
fn requested_address_comes_from_a_manual_pool() {
    let mut core = ready_core();
    let d = core.reconcile(&view(&service(
        "a",
        json!({"spec": {"loadBalancerIP": "198.51.100.11"}}),
    )));
    assert_eq!(desired(&d).ips, vec![ip("198.51.100.11")]);
    assert_eq!(desired(&d).pool.as_deref(), Some("reserved"));
}

#[test]
fn pool_annotation_picks_the_pool_and_changing_it_reassigns_with_a_reason() {
    let mut core = ready_core();
    let mut svc = service(
        "a",
        json!({"metadata": {"annotations": {"metallb.universe.tf/address-pool": "reserved"}}}),
    );
    let d = core.reconcile(&view(&svc));
    assert_eq!(desired(&d).ips, vec![ip("198.51.100.10")]);
    desired(&d).apply_to(&mut svc);

    let moved = service(
        "a",
        json!({"metadata": {"annotations": {
            "metallb.io/address-pool": "default",
            "metallb.io/ip-allocated-from-pool": "reserved"}},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.10"}]}}}),
    );
    let d = core.reconcile(&view(&moved));
    assert_eq!(desired(&d).ips, vec![ip("192.0.2.0")]);
    assert_eq!(
        reasons(&d),
        vec![Reason::ClearAssignment, Reason::IpAllocated]
    );
    assert!(
        d.events[0].message.contains("198.51.100.10")
            && d.events[0].message.contains("pool \"default\""),
        "{}",
        d.events[0].message
    );
    // The old address is free again.
    let other = core.reconcile(&view(&service(
        "b",
        json!({"spec": {"loadBalancerIP": "198.51.100.10"}}),
    )));
    assert_eq!(desired(&other).ips, vec![ip("198.51.100.10")]);
}

#[test]
fn dual_stack_require_gets_both_families_from_one_pool() {
    let mut core = ready_core();
    let d = core.reconcile(&view(&service(
        "a",
        json!({"metadata": {"annotations": {"metallb.io/address-pool": "dual"}},
               "spec": {"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv6", "IPv4"]}}),
    )));
    assert_eq!(desired(&d).ips, vec![ip("2001:db8::"), ip("203.0.113.0")]);
}

#[test]
fn compatible_sharing_key_shares_and_port_clash_does_not() {
    let mut core = ready_core();
    let shared = |name: &str, port: u16| {
        service(
            name,
            json!({"metadata": {"annotations": {"metallb.universe.tf/allow-shared-ip": "k"}},
                   "spec": {"loadBalancerIP": "192.0.2.2", "ports": [{"port": port}]}}),
        )
    };
    let a = core.reconcile(&view(&shared("a", 80)));
    let b = core.reconcile(&view(&shared("b", 443)));
    assert_eq!(desired(&a).ips, vec![ip("192.0.2.2")]);
    assert_eq!(desired(&b).ips, vec![ip("192.0.2.2")]);
    let c = core.reconcile(&view(&shared("c", 80)));
    assert_eq!(c.outcome, Outcome::Apply(Desired::default()));
    assert_eq!(reasons(&c), vec![Reason::AllocationFailed]);
    assert!(
        c.events[0].message.contains("ns/c") && c.events[0].message.contains("80"),
        "{}",
        c.events[0].message
    );
    assert!(core.failed().contains(&ServiceKey::new("ns", "c")));
}

#[test]
fn exhausted_pool_fails_then_succeeds_after_a_delete() {
    let mut core = ready_core();
    for name in ["a", "b", "c", "d"] {
        core.reconcile(&view(&service(name, json!({}))));
    }
    let e = core.reconcile(&view(&service("e", json!({}))));
    assert_eq!(reasons(&e), vec![Reason::AllocationFailed]);
    assert_eq!(e.outcome, Outcome::Apply(Desired::default()));
    assert_eq!(
        core.delete(&ServiceKey::new("ns", "b")).map(|a| a.ips),
        Some(vec![ip("192.0.2.1")])
    );
    assert!(core.failed().contains(&ServiceKey::new("ns", "e")));
    let e = core.reconcile(&view(&service("e", json!({}))));
    assert_eq!(desired(&e).ips, vec![ip("192.0.2.1")]);
    assert!(core.failed().is_empty());
}

#[test]
fn leaving_load_balancer_type_frees_and_clears() {
    let mut core = ready_core();
    let mut svc = service("a", json!({}));
    let d = core.reconcile(&view(&svc));
    desired(&d).apply_to(&mut svc);
    let mut cluster_ip = svc.clone();
    cluster_ip.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    let d = core.reconcile(&view(&cluster_ip));
    assert_eq!(d.outcome, Outcome::Apply(Desired::default()));
    assert_eq!(reasons(&d), vec![Reason::ClearAssignment]);
    assert!(d.events[0].message.contains("192.0.2.0"));
    desired(&d).apply_to(&mut cluster_ip);
    assert!(Desired::default().is_shown_by(&view(&cluster_ip)));
    // Once cleared, nothing more to do.
    assert_eq!(core.reconcile(&view(&cluster_ip)).outcome, Outcome::NotOurs);
    // The address is free for the next one.
    let b = core.reconcile(&view(&service("b", json!({}))));
    assert_eq!(desired(&b).ips, vec![ip("192.0.2.0")]);
}

#[test]
fn non_load_balancer_service_is_cleared_only_when_we_held_it() {
    let mut core = ready_core();
    // Status written by someone else, no pool annotation of ours: not ours to clear.
    let theirs = with_status("t", &["203.0.113.9"], json!({"spec": {"type": "NodePort"}}));
    let d = core.reconcile(&view(&theirs));
    assert_eq!(d.outcome, Outcome::NotOurs);
    assert!(d.events.is_empty());
    // Our pool annotation says we gave it (before a restart, say): cleared.
    let ours = with_status(
        "o",
        &["192.0.2.2"],
        json!({"spec": {"type": "ClusterIP"},
               "metadata": {"annotations": {"metallb.io/ip-allocated-from-pool": "default"}}}),
    );
    let d = core.reconcile(&view(&ours));
    assert_eq!(d.outcome, Outcome::Apply(Desired::default()));
    assert_eq!(reasons(&d), vec![Reason::ClearAssignment]);
}

#[test]
fn nothing_is_allocated_without_config_or_before_the_gate_opens() {
    let mut core = Core::new(None);
    assert_eq!(
        core.reconcile(&view(&service("a", json!({})))).outcome,
        Outcome::Waiting(WaitReason::NoConfig)
    );
    assert_eq!(
        core.rebuild(std::iter::empty::<CachedService>()),
        Err(WaitReason::NoConfig)
    );
    core.set_config(&config(CONFIG)).unwrap();
    assert_eq!(
        core.reconcile(&view(&service("a", json!({})))).outcome,
        Outcome::Waiting(WaitReason::NotSynced)
    );
    // A Service showing an address is confirmed even before the gate opens.
    let held = with_status("held", &["192.0.2.0"], json!({}));
    let d = core.reconcile(&view(&held));
    assert_eq!(desired(&d).ips, vec![ip("192.0.2.0")]);
    assert!(d.events.is_empty());
}

#[test]
fn restart_rebuild_keeps_every_address_and_new_services_avoid_them() {
    let existing = [
        with_status("x", &["192.0.2.0"], json!({})),
        with_status("y", &["192.0.2.2"], json!({})),
    ];
    let mut core = Core::new(None);
    core.set_config(&config(CONFIG)).unwrap();
    assert!(core.rebuild(existing.iter().map(view)).unwrap().is_empty());
    let fresh = core.reconcile(&view(&service("new", json!({}))));
    assert_eq!(desired(&fresh).ips, vec![ip("192.0.2.1")]);
    for svc in &existing {
        let d = core.reconcile(&view(svc));
        assert!(desired(&d).is_shown_by(&view(svc)) || desired(&d).ips == status_ips(svc));
        assert!(d.events.is_empty(), "{:?}", d.events);
    }
}

#[test]
fn rebuild_registers_services_holding_more_addresses_first() {
    // "a-single" sorts first by name but shows an address the dual-stack Service also shows,
    // without a sharing key: the dual-stack one must keep it.
    let single = with_status(
        "a-single",
        &["203.0.113.0"],
        json!({"metadata": {"annotations": {"metallb.io/address-pool": "dual"}}}),
    );
    let dual = with_status(
        "b-dual",
        &["203.0.113.0", "2001:db8::"],
        json!({"metadata": {"annotations": {"metallb.io/address-pool": "dual"}},
               "spec": {"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]}}),
    );
    let mut core = Core::new(None);
    core.set_config(&config(CONFIG)).unwrap();
    let issues = core.rebuild([view(&single), view(&dual)]).unwrap();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].key, ServiceKey::new("ns", "a-single"));
    assert_eq!(
        core.assignment(&ServiceKey::new("ns", "b-dual"))
            .map(|a| a.ips.clone()),
        Some(vec![ip("203.0.113.0"), ip("2001:db8::")])
    );
    // The loser is reassigned on its reconcile, with the reason.
    let d = core.reconcile(&view(&single));
    assert_eq!(desired(&d).ips, vec![ip("203.0.113.1")]);
    assert_eq!(
        reasons(&d),
        vec![Reason::ClearAssignment, Reason::IpAllocated]
    );
    assert!(
        d.events[0].message.contains("ns/b-dual"),
        "{}",
        d.events[0].message
    );
}

#[test]
fn config_change_reassigns_services_whose_address_left_every_pool() {
    let mut core = ready_core();
    let mut svc = service("a", json!({}));
    let d = core.reconcile(&view(&svc));
    desired(&d).apply_to(&mut svc);
    assert_eq!(desired(&d).ips, vec![ip("192.0.2.0")]);

    let shrunk = CONFIG.replace("192.0.2.0/30", "192.0.2.2-192.0.2.3");
    let change = core.set_config(&config(&shrunk)).unwrap();
    assert_eq!(change.reload.evicted.len(), 1);
    let d = core.reconcile(&view(&svc));
    assert_eq!(desired(&d).ips, vec![ip("192.0.2.2")]);
    assert_eq!(
        reasons(&d),
        vec![Reason::ClearAssignment, Reason::IpAllocated]
    );
    assert!(
        d.events[0].message.contains("192.0.2.0") && d.events[0].message.contains("config"),
        "{}",
        d.events[0].message
    );
}

#[test]
fn config_change_keeps_addresses_still_in_a_pool() {
    let mut core = ready_core();
    let mut svc = service("a", json!({}));
    let d = core.reconcile(&view(&svc));
    desired(&d).apply_to(&mut svc);
    let renamed = CONFIG.replace("name: default", "name: main");
    core.set_config(&config(&renamed)).unwrap();
    let d = core.reconcile(&view(&svc));
    assert_eq!(desired(&d).ips, vec![ip("192.0.2.0")]);
    assert_eq!(desired(&d).pool.as_deref(), Some("main"));
    assert!(d.events.is_empty(), "{:?}", d.events);
}

#[test]
fn invalid_service_is_reported_and_keeps_what_it_holds() {
    let mut core = ready_core();
    let both = json!({"metadata": {"annotations": {"metallb.io/loadBalancerIPs": "192.0.2.3"}},
                      "spec": {"loadBalancerIP": "192.0.2.2"}});
    let d = core.reconcile(&view(&service("new", both.clone())));
    assert_eq!(d.outcome, Outcome::Invalid);
    assert_eq!(reasons(&d), vec![Reason::LoadBalancerFailed]);
    assert!(d.events[0].message.contains("ns/new"));

    // A Service that shows an address and then becomes invalid keeps it, exclusively.
    let held = with_status("held", &["192.0.2.1"], both);
    let d = core.reconcile(&view(&held));
    assert_eq!(desired(&d).ips, vec![ip("192.0.2.1")]);
    assert_eq!(reasons(&d), vec![Reason::LoadBalancerFailed]);
    let other = core.reconcile(&view(&service(
        "other",
        json!({"spec": {"loadBalancerIP": "192.0.2.1"}}),
    )));
    assert_eq!(reasons(&other), vec![Reason::AllocationFailed]);
}

#[test]
fn requested_address_taken_keeps_the_old_one() {
    let mut core = ready_core();
    let mut a = service("a", json!({}));
    let d = core.reconcile(&view(&a));
    desired(&d).apply_to(&mut a);
    core.reconcile(&view(&service("b", json!({}))));
    // "a" now asks for b's address: refused, and it keeps 192.0.2.0.
    a.spec.as_mut().unwrap().load_balancer_ip = Some("192.0.2.1".into());
    let d = core.reconcile(&view(&a));
    assert_eq!(desired(&d).ips, vec![ip("192.0.2.0")]);
    assert_eq!(reasons(&d), vec![Reason::AllocationFailed]);
    assert!(
        d.events[0].message.contains("ns/b"),
        "{}",
        d.events[0].message
    );
}
