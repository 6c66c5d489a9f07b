//! The diff for `ServiceBGPStatus`: every node that hands a Service to a peer holds one object
//! of its own for it, listing the peers, sorted.

use super::*;
use crate::speaker::kubernetes::status::{Action, Observed, diff, labels, status};

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

fn want(pairs: &[(&str, &[&str])]) -> Desired {
    pairs
        .iter()
        .map(|(s, p)| ((*s).to_owned(), set(p)))
        .collect()
}

fn obj(name: &str, node: &str, service: &str, peers: Option<&[&str]>) -> Observed {
    Observed {
        name: name.into(),
        node: node.into(),
        service: service.into(),
        names: peers.map(|p| p.iter().map(|n| (*n).to_owned()).collect()),
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|n| (*n).to_owned()).collect()
}

const ALL: &[&str] = &["node-a", "node-b", "node-c"];

#[test]
fn a_service_handed_to_peers_gets_one_object_listing_them_sorted() {
    let mine = want(&[("shop/web", &["tor-b", "tor-a"])]);
    assert_eq!(
        diff("node-a", &mine, &[], &set(ALL)),
        [Action::Create {
            service: "shop/web".into(),
            names: names(&["tor-a", "tor-b"]),
        }]
    );
    let seen = [obj(
        "bgp-x",
        "node-a",
        "shop/web",
        Some(&["tor-a", "tor-b"]),
    )];
    assert!(diff("node-a", &mine, &seen, &set(ALL)).is_empty());
}

#[test]
fn a_change_of_peers_patches_the_object() {
    let seen = [
        obj("bgp-x", "node-a", "shop/web", Some(&["tor-a"])),
        obj("bgp-y", "node-a", "shop/api", None),
    ];
    let mine = want(&[("shop/web", &["tor-a", "tor-b"]), ("shop/api", &["tor-a"])]);
    assert_eq!(
        diff("node-a", &mine, &seen, &set(ALL)),
        [
            Action::Patch {
                name: "bgp-x".into(),
                service: "shop/web".into(),
                names: names(&["tor-a", "tor-b"]),
            },
            Action::Patch {
                name: "bgp-y".into(),
                service: "shop/api".into(),
                names: names(&["tor-a"]),
            },
        ]
    );
    // A peer dropped is a change too.
    let fewer = want(&[("shop/web", &["tor-b"]), ("shop/api", &["tor-a"])]);
    let seen = [
        obj("bgp-x", "node-a", "shop/web", Some(&["tor-a", "tor-b"])),
        obj("bgp-y", "node-a", "shop/api", Some(&["tor-a"])),
    ];
    assert_eq!(
        diff("node-a", &fewer, &seen, &set(ALL)),
        [Action::Patch {
            name: "bgp-x".into(),
            service: "shop/web".into(),
            names: names(&["tor-b"]),
        }]
    );
}

/// The set of peers becoming empty (the Service is no longer handed to any peer, or no longer
/// announced at all) deletes the object; the writer's inputs leave an empty set out.
#[test]
fn no_peer_left_deletes_the_object() {
    let seen = [obj("bgp-x", "node-a", "shop/web", Some(&["tor-a"]))];
    let emptied = Arc::new(want(&[("shop/web", &[]), ("shop/api", &["tor-a"])]));
    let now = inputs(&emptied, set(ALL));
    assert_eq!(*now.desired, want(&[("shop/api", &["tor-a"])]));
    assert_eq!(
        now.config, None,
        "the BGP writer writes no ConfigurationState"
    );
    assert_eq!(
        diff("node-a", &*now.desired, &seen, &now.alive),
        [
            Action::Delete {
                name: "bgp-x".into()
            },
            Action::Create {
                service: "shop/api".into(),
                names: names(&["tor-a"]),
            },
        ]
    );
    assert_eq!(
        diff("node-a", &Desired::new(), &seen, &set(ALL)),
        [Action::Delete {
            name: "bgp-x".into()
        }]
    );
    // Nothing empty: the inputs share the loop's map.
    let full = Arc::new(want(&[("shop/api", &["tor-a"])]));
    assert!(Arc::ptr_eq(&inputs(&full, set(ALL)).desired, &full));
}

#[test]
fn duplicates_of_our_own_object_are_deleted() {
    let seen = [
        obj("bgp-c", "node-a", "shop/web", Some(&["tor-a"])),
        obj("bgp-a", "node-a", "shop/web", Some(&["tor-a"])),
        obj("bgp-b", "node-a", "shop/web", None),
    ];
    assert_eq!(
        diff(
            "node-a",
            &want(&[("shop/web", &["tor-a"])]),
            &seen,
            &set(ALL)
        ),
        [
            Action::Delete {
                name: "bgp-b".into()
            },
            Action::Delete {
                name: "bgp-c".into()
            },
        ]
    );
}

/// In BGP mode every node may hand the same Service to its peers: each holds its own object,
/// and never patches or deletes a live node's, whatever that one lists.
#[test]
fn another_live_nodes_object_is_never_touched() {
    let seen = [
        obj("bgp-a", "node-a", "shop/web", Some(&["tor-a"])),
        obj("bgp-b", "node-b", "shop/web", Some(&["tor-z"])),
        obj("bgp-c", "node-c", "shop/api", None),
    ];
    let mine = want(&[("shop/web", &["tor-a"]), ("shop/api", &["tor-a"])]);
    assert_eq!(
        diff("node-a", &mine, &seen, &set(ALL)),
        [Action::Create {
            service: "shop/api".into(),
            names: names(&["tor-a"]),
        }]
    );
    assert_eq!(
        diff("node-a", &Desired::new(), &seen, &set(ALL)),
        [Action::Delete {
            name: "bgp-a".into()
        }]
    );
    // node-c is dead: its object for a Service this node hands to peers is deleted; node-b's
    // (alive) stays.
    let alive = set(&["node-a", "node-b"]);
    assert_eq!(
        diff("node-a", &mine, &seen, &alive),
        [
            Action::Delete {
                name: "bgp-c".into()
            },
            Action::Create {
                service: "shop/api".into(),
                names: names(&["tor-a"]),
            },
        ]
    );
}

#[test]
fn objects_are_written_and_read_back_with_peers_as_plain_names() {
    let body = status::<Bgp>("node-a", "shop/web", &names(&["tor-a", "tor-b"]));
    assert_eq!(
        body,
        serde_json::json!({"status": {"node": "node-a", "serviceName": "web",
            "serviceNamespace": "shop", "peers": ["tor-a", "tor-b"]}})
    );
    let labels = labels("node-a", "shop/web");
    let o = Observed::from_parts::<Bgp>(&"bgp-x".into(), &labels, Some(&body["status"])).unwrap();
    assert_eq!(
        o,
        obj("bgp-x", "node-a", "shop/web", Some(&["tor-a", "tor-b"]))
    );
    // Read as the other kind, the list is not there: each kind reads its own field.
    let l2 = Observed::from_parts::<crate::speaker::kubernetes::l2status::L2>(
        &"bgp-x".into(),
        &labels,
        Some(&body["status"]),
    )
    .unwrap();
    assert_eq!(l2.names, Some(vec![]));
    // Written but without peers: an empty list, not "not written yet".
    let bare = serde_json::json!({"node": "node-a", "serviceName": "web",
                                  "serviceNamespace": "shop"});
    let o = Observed::from_parts::<Bgp>(&"bgp-x".into(), &labels, Some(&bare)).unwrap();
    assert_eq!(o.names, Some(vec![]));
}
