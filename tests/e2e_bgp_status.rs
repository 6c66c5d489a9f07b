//! The ServiceBGPStatus writer against a real kube-apiserver (found through
//! `KUBEBUILDER_ASSETS`; skipped, with a message, when it is unset), with the chart's CRDs: the
//! writer task a speaker spawns creates one object per Service it hands to peers, patches it
//! when the peers change, deletes it when none is left, deletes a dead node's object for a
//! Service it has, and leaves a live node's alone. The CRD's CEL rules take its writes.

// Only the control plane is needed here, not the ferrolb processes.
#[allow(unused_imports)]
mod e2e;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use e2e::ControlPlane;
use e2e::wait::{PATIENCE, wait_for};
use ferrolb::speaker::kubernetes::status::bgp::{BgpInputs, Desired, inputs};
use ferrolb::speaker::kubernetes::status::edge::StatusWriter;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;
use tokio::sync::watch;

const NS: &str = "metallb-system";

fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", "v1beta1", "ServiceBGPStatus"),
        "servicebgpstatuses",
    )
}

/// Each object as (node label, service, status.node, peers), sorted.
type Row = (String, String, String, Vec<String>);

async fn rows(api: &Api<DynamicObject>) -> Option<Vec<Row>> {
    let list = api.list(&ListParams::default()).await.ok()?;
    let mut rows: Vec<Row> = list
        .items
        .into_iter()
        .map(|o| {
            let labels = o.metadata.labels.unwrap_or_default();
            let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
            let status = &o.data["status"];
            let peers = status["peers"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            (
                label("metallb.io/node"),
                format!(
                    "{}/{}",
                    label("metallb.io/service-namespace"),
                    label("metallb.io/service-name")
                ),
                status["node"].as_str().unwrap_or("").to_owned(),
                peers,
            )
        })
        .collect();
    rows.sort();
    Some(rows)
}

fn row(node: &str, service: &str, peers: &[&str]) -> Row {
    (
        node.to_owned(),
        service.to_owned(),
        node.to_owned(),
        peers.iter().map(|p| (*p).to_owned()).collect(),
    )
}

async fn wait_rows(api: &Api<DynamicObject>, what: &str, want: Vec<Row>) {
    wait_for(what, PATIENCE, || {
        let want = want.clone();
        async move { rows(api).await.filter(|r| *r == want) }
    })
    .await;
}

fn send(tx: &watch::Sender<BgpInputs>, services: &[(&str, &[&str])], alive: &[&str]) {
    let desired: Desired = services
        .iter()
        .map(|(s, p)| ((*s).to_owned(), p.iter().map(|n| (*n).to_owned()).collect()))
        .collect();
    let alive: BTreeSet<String> = alive.iter().map(|n| (*n).to_owned()).collect();
    tx.send_replace(inputs(&Arc::new(desired), alive));
}

/// Another node's object, as that node's speaker writes it.
async fn other_nodes_object(api: &Api<DynamicObject>, node: &str, service: &str) {
    let (ns, name) = service.split_once('/').unwrap();
    let mut object = DynamicObject::new("", &resource());
    object.metadata.name = None;
    object.metadata.generate_name = Some("bgp-".to_owned());
    object.metadata.labels = Some(BTreeMap::from([
        ("metallb.io/node".to_owned(), node.to_owned()),
        ("metallb.io/service-name".to_owned(), name.to_owned()),
        ("metallb.io/service-namespace".to_owned(), ns.to_owned()),
    ]));
    object.data = json!({"spec": {}});
    let made = api.create(&PostParams::default(), &object).await.unwrap();
    let status = json!({"status": {"node": node, "serviceName": name, "serviceNamespace": ns,
                                   "peers": ["tor-z"]}});
    api.patch_status(
        made.metadata.name.as_deref().unwrap(),
        &PatchParams::default(),
        &Patch::Merge(&status),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_bgp_status_writer_keeps_this_nodes_objects_in_line_on_a_real_api_server() {
    let Some(plane) = ControlPlane::start("e2e_bgp_status").await else {
        return;
    };
    let crds = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/ferrolb/crds");
    eprintln!(
        "{}",
        plane.kubectl(&["apply", "--server-side", "-f", &crds.display().to_string()])
    );
    plane.wait_crds_established();
    plane.kubectl(&["create", "namespace", NS]);
    let client = plane.client().await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &resource());

    // node-b (alive) and node-c (about to die) announce shop/web too, each with its own object.
    other_nodes_object(&api, "node-b", "shop/web").await;
    other_nodes_object(&api, "node-c", "shop/web").await;
    other_nodes_object(&api, "node-c", "shop/db").await;

    let (tx, rx) = watch::channel(BgpInputs::default());
    let task = StatusWriter {
        client: client.clone(),
        namespace: NS.to_owned(),
        me: "node-a".to_owned(),
        pod_name: None,
    }
    .spawn(rx);
    let everyone = ["node-a", "node-b", "node-c"];
    send(
        &tx,
        &[("shop/web", &["tor-b", "tor-a"]), ("shop/api", &["tor-a"])],
        &everyone,
    );
    let others = vec![
        row("node-b", "shop/web", &["tor-z"]),
        row("node-c", "shop/db", &["tor-z"]),
        row("node-c", "shop/web", &["tor-z"]),
    ];
    let mut want = others.clone();
    want.extend([
        row("node-a", "shop/api", &["tor-a"]),
        row("node-a", "shop/web", &["tor-a", "tor-b"]),
    ]);
    want.sort();
    wait_rows(&api, "node-a's two objects beside the others'", want).await;
    let names: Vec<String> = api
        .list(&ListParams::default().labels("metallb.io/node=node-a"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect();
    assert!(names.iter().all(|n| n.starts_with("bgp-")), "{names:?}");

    // A peer added to shop/web, shop/api no longer handed to any peer.
    send(
        &tx,
        &[
            ("shop/web", &["tor-a", "tor-b", "tor-c"]),
            ("shop/api", &[]),
        ],
        &everyone,
    );
    let mut want = others.clone();
    want.push(row("node-a", "shop/web", &["tor-a", "tor-b", "tor-c"]));
    want.sort();
    wait_rows(&api, "shop/web patched, shop/api deleted", want).await;
    let after: Vec<String> = api
        .list(&ListParams::default().labels("metallb.io/node=node-a"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect();
    assert_eq!(after.len(), 1);
    assert!(
        names.contains(&after[0]),
        "patched in place, not made again"
    );

    // node-c dies: its object for shop/web (which node-a has) goes; its shop/db stays (not
    // node-a's Service), and so does live node-b's.
    send(
        &tx,
        &[("shop/web", &["tor-a", "tor-b", "tor-c"])],
        &["node-a", "node-b"],
    );
    let mut want = vec![
        row("node-a", "shop/web", &["tor-a", "tor-b", "tor-c"]),
        row("node-b", "shop/web", &["tor-z"]),
        row("node-c", "shop/db", &["tor-z"]),
    ];
    want.sort();
    wait_rows(&api, "the dead node's shop/web object deleted", want).await;

    // Deleted behind its back: made again.
    plane.kubectl(&[
        "delete",
        "servicebgpstatuses",
        "-n",
        NS,
        "-l",
        "metallb.io/node=node-a",
    ]);
    let mut want = vec![
        row("node-a", "shop/web", &["tor-a", "tor-b", "tor-c"]),
        row("node-b", "shop/web", &["tor-z"]),
        row("node-c", "shop/db", &["tor-z"]),
    ];
    want.sort();
    wait_rows(&api, "node-a's object made again", want).await;
    let table = plane.kubectl(&["get", "servicebgpstatuses", "-n", NS]);
    eprintln!("{table}");
    assert!(
        table.lines().any(|l| l
            .split_whitespace()
            .skip(1)
            .take(3)
            .eq(["node-a", "web", "shop"])),
        "{table}"
    );

    drop(tx);
    tokio::time::timeout(PATIENCE, task)
        .await
        .expect("the writer stops with its inputs")
        .unwrap();
}
