use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

use super::*;
use crate::election::{EXCLUDE_LB_LABEL, OUT_OF_SERVICE_TAINT};
use crate::k8s::endpoints::slice_endpoints;
use crate::k8s::node::node_status;
use crate::k8s::service::{is_handled, is_local_policy, service_key, status_ips};
use crate::speaker::kubernetes::l2status::L2;

/// A Service as the API sends it, with everything the speaker does not read filled in.
fn full_service(name: &str, patch: Value) -> Service {
    let mut v = json!({
        "metadata": {
            "name": name, "namespace": "shop", "uid": format!("uid-{name}"),
            "resourceVersion": "41",
            "labels": {"app": name, "tier": "front"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "x".repeat(2000),
                "metallb.io/address-pool": "l2",
            },
            "managedFields": [{"manager": "kubectl", "operation": "Apply",
                               "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {
            "type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 31000}],
            "selector": {"app": name}, "clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"],
            "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "RequireDualStack",
            "sessionAffinity": "None",
        },
        "status": {"loadBalancer": {"ingress": [
            {"ip": "192.0.2.7", "ipMode": "VIP"}, {"hostname": "lb.example"},
            {"ip": "2001:db8::7"}, {"ip": "not-an-ip"},
        ]}},
    });
    merge(&mut v, patch);
    serde_json::from_value(v).unwrap()
}

fn merge(into: &mut Value, patch: Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

fn full_node(name: &str, patch: Value) -> Node {
    let mut v = json!({
        "metadata": {"name": name, "resourceVersion": "7", "labels": {"zone": "a"},
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
        "spec": {"podCIDR": "10.244.1.0/24"},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-11-30T06:00:00Z"},
                {"type": "NetworkUnavailable", "status": "False"},
                {"type": "MemoryPressure", "status": "False"},
            ],
            "addresses": [{"type": "Hostname", "address": name},
                          {"type": "InternalIP", "address": "192.0.2.5"}],
            "images": [{"names": ["registry.example/app:1"], "sizeBytes": 1000}],
            "capacity": {"cpu": "2"},
        },
    });
    merge(&mut v, patch);
    serde_json::from_value(v).unwrap()
}

fn full_slice(name: &str, service: Option<&str>, ready: bool) -> EndpointSlice {
    let labels = match service {
        Some(s) => {
            json!({"kubernetes.io/service-name": s, "endpointslice.kubernetes.io/managed-by": "x"})
        }
        None => json!({}),
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "resourceVersion": "3", "labels": labels},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.0.0.7"], "nodeName": "node-a",
             "conditions": {"ready": ready, "serving": ready, "terminating": false},
             "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "shop"}},
            {"addresses": ["10.0.0.8"], "nodeName": "node-b", "conditions": {}},
        ],
        "ports": [{"port": 8080, "protocol": "TCP"}],
    }))
    .unwrap()
}

/// The projection keeps every field the election reads: the speaker decides the same from it
/// as from the full object.
#[test]
fn projections_read_the_same_as_the_full_objects() {
    let services = [
        full_service("web", json!({})),
        full_service(
            "cluster",
            json!({"spec": {"externalTrafficPolicy": "Cluster"}}),
        ),
        full_service(
            "classed",
            json!({"spec": {"loadBalancerClass": "example.com/x"}}),
        ),
        full_service("internal", json!({"spec": {"type": "ClusterIP"}})),
        full_service("fresh", json!({"status": {"loadBalancer": {}}})),
        full_service(
            "bare",
            json!({"metadata": {"namespace": null, "labels": null}}),
        ),
    ];
    for svc in services {
        let view = ServiceView::project(svc.clone());
        for class in [None, Some("example.com/x")] {
            assert_eq!(view.is_handled(class), is_handled(&svc, class), "{svc:?}");
        }
        assert_eq!(view.key(), service_key(&svc).to_string());
        assert_eq!(view.ips(), status_ips(&svc).as_slice());
        assert_eq!(view.is_local(), is_local_policy(&svc));
        assert_eq!(
            view.labels(),
            svc.metadata.labels.clone().unwrap_or_default()
        );
        assert_eq!(view.object_ref().uid, svc.metadata.uid);
        assert_eq!(view.object_ref().name, svc.metadata.name);
    }
    let node = full_node("node-a", json!({}));
    let view = NodeView::project(node.clone());
    assert_eq!(view.status(), node_status(&node).as_ref());
    assert_eq!(view.address(), Some("192.0.2.5".parse().unwrap()));
    assert_eq!(view.labels(), node.metadata.labels.as_ref());
    for slice in [
        full_slice("web-1", Some("web"), true),
        full_slice("web-2", None, false),
    ] {
        let view = SliceView::project(slice.clone());
        assert_eq!(view.endpoints(), slice_endpoints(&slice).as_slice());
        assert_eq!(
            view.service(),
            slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .map(|s| format!("shop/{s}"))
                .as_deref()
        );
    }
}

/// The watch decodes the API's JSON straight into the projection.
#[test]
fn a_watch_event_decodes_into_the_projection() {
    let json = serde_json::to_value(full_service("web", json!({}))).unwrap();
    let decoded: Decoded<ServiceView> = serde_json::from_value(json).unwrap();
    assert_eq!(
        decoded.view,
        ServiceView::project(full_service("web", json!({})))
    );
    // The watch resumes from the version; nothing else of the metadata outlives the event.
    let meta = decoded.meta();
    assert_eq!(meta.resource_version.as_deref(), Some("41"));
    assert!(meta.annotations.is_none() && meta.labels.is_none() && meta.uid.is_none());
}

/// Decoding the API's JSON reads only what the projection needs, into the same projection
/// as the whole object gives: for every kind, and for every variant the projections tell apart.
#[test]
fn a_slim_decode_projects_as_the_whole_object() {
    fn check<V: View + Clone>(whole: V::Object)
    where
        V::Object: serde::Serialize + Clone + std::fmt::Debug,
    {
        let json = serde_json::to_value(&whole).unwrap();
        let decoded: Decoded<V> = serde_json::from_value(json).unwrap();
        assert_eq!(decoded.view, V::project(whole.clone()), "{whole:?}");
        assert_eq!(
            decoded.meta().resource_version,
            whole.meta().resource_version
        );
    }
    for patch in [
        json!({}),
        json!({"spec": {"externalTrafficPolicy": "Local"}}),
        json!({"spec": {"loadBalancerClass": "example.com/x"}}),
        json!({"spec": {"type": "ClusterIP"}}),
        json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"},
            {"hostname": "lb.example"}, {"ip": "2001:db8::9"}]}}}),
        json!({"metadata": {"namespace": null, "labels": null}}),
    ] {
        check::<ServiceView>(full_service("web", patch));
    }
    for slice in [
        full_slice("web-1", Some("web"), true),
        full_slice("web-2", Some("web"), false),
        full_slice("web-3", None, true),
    ] {
        check::<SliceView>(slice);
    }
    for patch in [
        json!({}),
        json!({"status": {"conditions": [{"type": "Ready", "status": "False"},
            {"type": "NetworkUnavailable", "status": "True"}]}}),
        json!({"metadata": {"labels": {EXCLUDE_LB_LABEL: ""}}}),
        json!({"status": {"addresses": [{"type": "ExternalIP", "address": "198.51.100.4"}]}}),
        json!({"spec": {"taints": [{"key": OUT_OF_SERVICE_TAINT, "effect": "NoExecute"}]}}),
        json!({"spec": {"taints": [{"key": "example.com/other", "effect": "NoSchedule"}]}}),
    ] {
        check::<NodeView>(full_node("node-a", patch));
    }
}

struct Feed<K: Watched> {
    writer: Writer<K>,
    changes: Changes,
}

impl<K: Watched> Feed<K> {
    fn new() -> Self {
        let changes = Changes::default();
        changes.take();
        Self {
            writer: Writer::default(),
            changes,
        }
    }

    fn event(&mut self, event: watcher::Event<Decoded<K>>) -> Pending {
        apply(&mut self.writer, &self.changes, &event);
        self.changes.take()
    }
}

fn services(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

#[test]
fn only_changes_the_election_reads_are_marked() {
    let mut nodes = Feed::<NodeView>::new();
    let node = |patch| Decoded::<NodeView>::new(full_node("node-a", patch));
    assert!(nodes.event(watcher::Event::Apply(node(json!({})))).all);
    // A heartbeat: new resourceVersion, new timestamps, same decision inputs.
    let beat = json!({"metadata": {"resourceVersion": "8"}, "status": {"conditions": [
        {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-11-30T06:00:10Z"},
        {"type": "NetworkUnavailable", "status": "False"}]}});
    assert_eq!(
        nodes.event(watcher::Event::Apply(node(beat))),
        Pending::default()
    );
    let down = json!({"metadata": {"resourceVersion": "9"}, "status": {"conditions": [
        {"type": "Ready", "status": "False"}]}});
    assert!(nodes.event(watcher::Event::Apply(node(down))).all);
    let relabelled = json!({"metadata": {"resourceVersion": "10", "labels": {"zone": "b"}}});
    assert!(nodes.event(watcher::Event::Apply(node(relabelled))).all);
    // An operator declares the node gone: the election reads it.
    let gone = json!({"metadata": {"resourceVersion": "11", "labels": {"zone": "b"}},
        "spec": {"taints": [{"key": OUT_OF_SERVICE_TAINT, "value": "nodeshutdown",
            "effect": "NoExecute"}]}});
    let marked = nodes.event(watcher::Event::Apply(node(gone)));
    assert!(marked.all);

    let mut svcs = Feed::<ServiceView>::new();
    let svc = |patch| Decoded::<ServiceView>::new(full_service("web", patch));
    let first = svcs.event(watcher::Event::Apply(svc(json!({}))));
    assert_eq!(first.services, services(&["shop/web"]));
    assert!(!first.all);
    let annotated = json!({"metadata": {"resourceVersion": "42",
        "annotations": {"example.com/owner": "team-a"}}});
    assert_eq!(
        svcs.event(watcher::Event::Apply(svc(annotated))),
        Pending::default()
    );
    let moved = json!({"metadata": {"resourceVersion": "43"},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.8"}]}}});
    assert_eq!(
        svcs.event(watcher::Event::Apply(svc(moved))).services,
        services(&["shop/web"])
    );
    assert_eq!(
        svcs.event(watcher::Event::Delete(svc(json!({})))).services,
        services(&["shop/web"])
    );
}

#[test]
fn a_slice_marks_its_service_and_the_one_it_left() {
    let mut slices = Feed::<SliceView>::new();
    let web = Decoded::<SliceView>::new(full_slice("s-1", Some("web"), true));
    let marked = slices.event(watcher::Event::Apply(web.clone()));
    assert_eq!(marked.services, services(&["shop/web"]));
    assert_eq!(marked.slices, vec![web.view.key().clone()]);
    let unready = Decoded::<SliceView>::new(full_slice("s-1", Some("web"), false));
    assert_eq!(
        slices.event(watcher::Event::Apply(unready)).services,
        services(&["shop/web"])
    );
    let api = Decoded::<SliceView>::new(full_slice("s-1", Some("api"), false));
    assert_eq!(
        slices.event(watcher::Event::Apply(api)).services,
        services(&["shop/api", "shop/web"])
    );
    let unlabelled = Decoded::<SliceView>::new(full_slice("s-2", None, true));
    let marked = slices.event(watcher::Event::Apply(unlabelled));
    assert!(marked.services.is_empty() && !marked.all);
}

/// A re-list may have missed deletes: once it completes, everything is decided again; the
/// objects it lists before that are not marked one by one.
#[test]
fn a_completed_relist_marks_everything() {
    let mut svcs = Feed::<ServiceView>::new();
    svcs.event(watcher::Event::Apply(Decoded::<ServiceView>::new(
        full_service("gone", json!({})),
    )));
    assert_eq!(svcs.event(watcher::Event::Init), Pending::default());
    let web = Decoded::<ServiceView>::new(full_service("web", json!({})));
    assert_eq!(
        svcs.event(watcher::Event::InitApply(web)),
        Pending::default()
    );
    assert!(svcs.event(watcher::Event::InitDone).all);
    let keys: Vec<String> = svcs
        .writer
        .as_reader()
        .state()
        .iter()
        .map(|s| s.key().to_owned())
        .collect();
    assert_eq!(keys, ["shop/web"], "the re-list replaced the cache");
}

/// A `ServiceL2Status` as the API sends it after a speaker created it and wrote its status.
fn full_l2_status(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status",
        "metadata": {
            "name": name, "namespace": "ferrolb-system", "uid": format!("uid-{name}"),
            "resourceVersion": "90", "generateName": "l2-", "labels": labels,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "speaker-x",
                                 "uid": "pod-uid", "controller": true}],
            "managedFields": [
                {"manager": "ferrolb-speaker", "operation": "Update", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:labels": {"f:metallb.io/node": {}}}}},
                {"manager": "ferrolb-speaker", "operation": "Update", "subresource": "status",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:interfaces": {}}}},
            ],
        },
        "spec": {},
        "status": {"node": "node-b", "serviceName": "web", "serviceNamespace": "shop",
                   "interfaces": [{"name": "eth0"}, {"name": "eth1"}]},
    })
}

#[test]
fn an_l2_status_is_cached_as_what_the_writer_reads() {
    let labels = json!({"metallb.io/node": "node-b", "metallb.io/service-name": "web",
                        "metallb.io/service-namespace": "shop"});
    let decoded: Decoded<StatusView<L2>> =
        serde_json::from_value(full_l2_status("l2-abc", labels)).unwrap();
    let view = &decoded.view;
    assert_eq!(
        view.observed(),
        Some(&Observed {
            name: "l2-abc".into(),
            node: "node-b".into(),
            service: "shop/web".into(),
            names: Some(vec!["eth0".into(), "eth1".into()]),
        })
    );
    // Name and version for the watch, only while the event lasts.
    let meta = decoded.meta();
    assert_eq!(
        (meta.name.as_deref(), meta.namespace.as_deref()),
        (Some("l2-abc"), Some("ferrolb-system"))
    );
    assert_eq!(meta.resource_version.as_deref(), Some("90"));
    assert!(meta.managed_fields.is_none() && meta.owner_references.is_none());
    assert!(meta.labels.is_none() && meta.generate_name.is_none());

    // Not a speaker's object (a label missing): cached, never read as one.
    let other: Decoded<StatusView<L2>> =
        serde_json::from_value(full_l2_status("l2-x", json!({"metallb.io/node": "node-b"})))
            .unwrap();
    assert_eq!(other.view.observed(), None);
}

#[test]
fn packed_labels_give_back_what_they_were_given() {
    let cases: Vec<Labels> = vec![
        Labels::new(),
        [("app".into(), "web".into())].into(),
        [
            ("app.kubernetes.io/name".into(), "web".into()),
            ("empty".into(), String::new()),
            ("tier".into(), "front-end_1.2".into()),
        ]
        .into(),
    ];
    for labels in cases {
        let packed = PackedLabels::new(Some(&labels));
        assert_eq!(packed.unpack(), labels);
        assert_eq!(packed == PackedLabels::new(None), labels.is_empty());
    }
    // A label change is a change of the projection (the selector may now match).
    let a = PackedLabels::new(Some(&[("app".into(), "web".into())].into()));
    let b = PackedLabels::new(Some(&[("app".into(), "db".into())].into()));
    assert_ne!(a, b);
}

/// The API server's UIDs are kept as 16 bytes and come back as the same text; any other text
/// (upper case, no hyphens, not a UUID) is kept as it is. Events carry it back to the Service.
#[test]
fn a_uid_comes_back_exactly_as_the_api_server_wrote_it() {
    let canonical = "0b5c8e4e-91a7-4f3d-a6c2-7d1e9f00ab34";
    assert!(matches!(Uid::new(canonical), Uid::Uuid(_)));
    for text in [
        canonical,
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "0B5C8E4E-91A7-4F3D-A6C2-7D1E9F00AB34",
        "0b5c8e4e91a74f3da6c27d1e9f00ab34",
        "0b5c8e4e-91a7-4f3d-a6c2-7d1e9f00ab3g",
        "0b5c8e4e-91a7-4f3d-a6c2+7d1e9f00ab34",
        "uid-web",
        "",
    ] {
        assert_eq!(Uid::new(text).to_string(), text);
    }
    assert!(matches!(
        Uid::new("0B5C8E4E-91A7-4F3D-A6C2-7D1E9F00AB34"),
        Uid::Other(_)
    ));

    let mut svc = full_service("web", json!({}));
    svc.metadata.uid = Some(canonical.into());
    let view = ServiceView::project(svc);
    assert_eq!(view.object_ref().uid.as_deref(), Some(canonical));
}
