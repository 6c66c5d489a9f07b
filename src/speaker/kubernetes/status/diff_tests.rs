//! The diff every per-Service status kind shares, shown with ServiceL2Status objects (the kind
//! only decides the labels' and status's names: bgp_tests.rs shows the BGP ones).

use super::*;
use crate::speaker::kubernetes::l2status::{Desired, L2};

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

fn want(pairs: &[(&str, &[&str])]) -> Desired {
    pairs
        .iter()
        .map(|(s, i)| ((*s).into(), i.iter().map(|n| (*n).to_owned()).collect()))
        .collect()
}

fn obj(name: &str, node: &str, service: &str, names: Option<&[&str]>) -> Observed {
    Observed {
        name: name.into(),
        node: node.into(),
        service: service.into(),
        names: names.map(|i| i.iter().map(|n| (*n).to_owned()).collect()),
    }
}

const ALL: &[&str] = &["node-a", "node-b", "node-c"];

#[test]
fn a_newly_announced_service_gets_one_object_created() {
    let actions = diff("node-a", &want(&[("shop/web", &[])]), &[], &set(ALL));
    assert_eq!(
        actions,
        [Action::Create {
            service: "shop/web".into(),
            names: vec![]
        }]
    );
    // Already there with the right status: nothing to do.
    let seen = [obj("l2-x", "node-a", "shop/web", Some(&[]))];
    assert!(diff("node-a", &want(&[("shop/web", &[])]), &seen, &set(ALL)).is_empty());
}

#[test]
fn a_service_no_longer_announced_has_its_object_deleted() {
    let seen = [obj("l2-x", "node-a", "shop/web", Some(&[]))];
    assert_eq!(
        diff("node-a", &Desired::new(), &seen, &set(ALL)),
        [Action::Delete {
            name: "l2-x".into()
        }]
    );
}

#[test]
fn interfaces_changing_or_a_missing_status_patch_the_object() {
    let seen = [
        obj("l2-x", "node-a", "shop/web", Some(&["eth0"])),
        obj("l2-y", "node-a", "shop/api", None),
    ];
    let actions = diff(
        "node-a",
        &want(&[("shop/web", &["eth1"]), ("shop/api", &[])]),
        &seen,
        &set(ALL),
    );
    assert_eq!(
        actions,
        [
            Action::Patch {
                name: "l2-x".into(),
                service: "shop/web".into(),
                names: vec!["eth1".into()]
            },
            Action::Patch {
                name: "l2-y".into(),
                service: "shop/api".into(),
                names: vec![]
            },
        ]
    );
}

#[test]
fn another_nodes_object_is_deleted_only_when_that_node_is_dead_and_we_announce() {
    let stale = [obj("l2-old", "node-b", "shop/web", Some(&[]))];
    let mine = want(&[("shop/web", &[])]);
    let created = Action::Create {
        service: "shop/web".into(),
        names: vec![],
    };
    // node-b is alive: its object is its own business (it deletes it when it lets go).
    assert_eq!(
        diff("node-a", &mine, &stale, &set(ALL)),
        std::slice::from_ref(&created)
    );
    // node-b is dead but we do not announce the Service: not ours to touch either.
    assert!(
        diff(
            "node-a",
            &Desired::new(),
            &stale,
            &set(&["node-a", "node-c"])
        )
        .is_empty()
    );
    // node-b is dead and we announce: delete its object and create ours.
    assert_eq!(
        diff("node-a", &mine, &stale, &set(&["node-a", "node-c"])),
        [
            Action::Delete {
                name: "l2-old".into()
            },
            created
        ]
    );
}

#[test]
fn a_speaker_never_patches_another_nodes_object() {
    // Two live speakers that both believe they announce (a split view) each keep their own
    // object and leave the other's alone: no fight over one object.
    let seen = [
        obj("l2-a", "node-a", "shop/web", Some(&[])),
        obj("l2-b", "node-b", "shop/web", Some(&["eth9"])),
    ];
    let mine = want(&[("shop/web", &["eth1"])]);
    for me in ["node-a", "node-b"] {
        let own = if me == "node-a" { "l2-a" } else { "l2-b" };
        assert_eq!(
            diff(me, &mine, &seen, &set(ALL)),
            [Action::Patch {
                name: own.into(),
                service: "shop/web".into(),
                names: vec!["eth1".into()]
            }]
        );
    }
}

#[test]
fn a_duplicate_of_our_own_object_is_deleted() {
    let seen = [
        obj("l2-b", "node-a", "shop/web", Some(&[])),
        obj("l2-a", "node-a", "shop/web", Some(&[])),
    ];
    assert_eq!(
        diff("node-a", &want(&[("shop/web", &[])]), &seen, &set(ALL)),
        [Action::Delete {
            name: "l2-b".into()
        }]
    );
}

#[test]
fn objects_read_back_from_labels_and_status() {
    let labels = labels("node-a", "shop/web");
    let body = status::<L2>("node-a", "shop/web", &["eth1".to_owned()]);
    assert_eq!(body["status"]["serviceName"], "web");
    assert_eq!(body["status"]["serviceNamespace"], "shop");
    assert_eq!(body["status"]["node"], "node-a");
    let o = Observed::from_parts::<L2>(&"l2-x".into(), &labels, Some(&body["status"])).unwrap();
    assert_eq!(o, obj("l2-x", "node-a", "shop/web", Some(&["eth1"])));
    // Without a written status the object still counts, waiting for its patch.
    let o = Observed::from_parts::<L2>(&"l2-x".into(), &labels, None).unwrap();
    assert_eq!(o.names, None);
    // An object without the labels is not a speaker's and is ignored.
    assert!(Observed::from_parts::<L2>(&"other".into(), &BTreeMap::new(), None).is_none());
}

/// A node name as long as Kubernetes allows (253 characters, a DNS subdomain) and another
/// that differs from it only past the 63rd character.
fn long_names() -> (String, String) {
    let stem = "rack-17.row-4.hall-b.datacenter-frankfurt-2.compute.example.internal.";
    let a = format!("{}node-a", stem.repeat(3));
    let b = format!("{}node-b", stem.repeat(3));
    assert!(a.len() > 63 && a.len() <= 253 && a[..63] == b[..63]);
    (a, b)
}

/// What the API server accepts as a label value: at most 63 characters, alphanumerics, `-`, `_`
/// and `.`, starting and ending alphanumeric.
fn is_label_value(v: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    v.is_empty()
        || (v.len() <= 63
            && edge(v.chars().next())
            && edge(v.chars().last())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
}

/// Node names up to 63 characters label the objects exactly as MetalLB does; longer ones (a
/// label value cannot hold them, and the API server would refuse the object) get a label made of
/// their start and a hash of the whole name: valid, the same on every speaker, and different
/// for names that share their first 63 characters.
#[test]
fn a_long_node_name_labels_its_objects_with_a_valid_value_of_its_own() {
    let (a, b) = long_names();
    let of = |node: &str| labels(node, "shop/web")[NODE_LABEL].clone();
    assert_eq!(of("node-a"), "node-a");
    let exactly = "n".repeat(63);
    assert_eq!(of(&exactly), exactly);
    for long in [&a, &b] {
        assert!(is_label_value(&of(long)), "{:?}", of(long));
        assert_eq!(of(long), of(long));
        assert!(of(long).starts_with(&long[..20]), "{:?}", of(long));
    }
    assert_ne!(of(&a), of(&b));
    // A name that would end the cut on a dot or a dash still gives a valid value.
    let dotted = format!("{}.{}", "x".repeat(45), "y".repeat(40));
    assert!(is_label_value(&of(&dotted)), "{:?}", of(&dotted));
}

/// The objects of a long-named node are told apart by the exact name in their status: its own
/// are its own (patched, never created twice), and those of another long-named node whose
/// label might read the same are that node's.
#[test]
fn objects_of_long_named_nodes_are_matched_by_their_exact_name() {
    let (a, b) = long_names();
    let mine = want(&[("shop/web", &[])]);
    let read = |node: &str, name: &str, written: bool| {
        let body = status::<L2>(node, "shop/web", &[]);
        let labels = labels(node, "shop/web");
        Observed::from_parts::<L2>(&name.into(), &labels, written.then_some(&body["status"]))
            .unwrap()
    };
    let own = read(&a, "l2-a", true);
    assert_eq!(*own.node, *a);
    assert!(diff(&a, &mine, [&own], &set(&[a.as_str(), b.as_str()])).is_empty());
    // Its own object whose status is not written yet is still its own: patched, not doubled.
    let unwritten = read(&a, "l2-a", false);
    assert_eq!(
        diff(&a, &mine, [&unwritten], &set(&[a.as_str(), b.as_str()])),
        [Action::Patch {
            name: "l2-a".into(),
            service: "shop/web".into(),
            names: vec![]
        }]
    );
    // Another long-named node's object, even under our label: not ours while that node lives.
    let mut theirs = read(&b, "l2-b", true);
    assert_eq!(*theirs.node, *b);
    let alive = set(&[a.as_str(), b.as_str()]);
    assert_eq!(
        diff(&a, &mine, [&theirs], &alive),
        [Action::Create {
            service: "shop/web".into(),
            names: vec![]
        }]
    );
    // A live long-named node's object whose status is not written yet is left alone too.
    theirs = read(&b, "l2-b", false);
    assert!(
        !diff(&a, &mine, [&theirs], &alive)
            .iter()
            .any(|x| matches!(x, Action::Delete { .. }))
    );
}
