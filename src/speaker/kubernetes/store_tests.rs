use super::*;
use crate::speaker::kubernetes::cache::ServiceView;
use k8s_openapi::api::core::v1::Service;
use serde_json::json;

fn service(name: &str, ip: &str, version: &str) -> Decoded<ServiceView> {
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
                     "resourceVersion": version,
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"type": "LoadBalancer"},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
    }))
    .expect("a valid Service");
    Decoded::new(svc)
}

#[test]
fn the_watch_reads_the_version_and_the_cache_keeps_only_the_projection() {
    let wire = json!({"metadata": {"name": "web", "namespace": "shop", "resourceVersion": "41",
                                   "managedFields": [{"manager": "kubectl"}]},
                      "spec": {"type": "LoadBalancer"}});
    let decoded: Decoded<ServiceView> = serde_json::from_value(wire).expect("decodes");
    // What kube-runtime's watcher resumes from, and nothing else of the metadata.
    assert_eq!(decoded.meta().resource_version.as_deref(), Some("41"));
    assert_eq!(decoded.meta().name.as_deref(), Some("web"));
    assert!(decoded.meta().managed_fields.is_none());
    assert_eq!(decoded.view.key(), "shop/web");
    assert_eq!(Decoded::<ServiceView>::plural(&()), "services");
}

#[test]
fn applies_and_deletes_by_namespace_and_name() {
    let mut writer = Writer::<ServiceView>::default();
    let store = writer.as_reader();
    writer.apply(&watcher::Event::Apply(service("web", "192.0.2.1", "1")));
    writer.apply(&watcher::Event::Apply(service("db", "192.0.2.2", "2")));
    writer.apply(&watcher::Event::Apply(service("web", "192.0.2.3", "3")));
    assert_eq!(store.len(), 2);
    let web = store.get("shop/web").expect("cached");
    assert_eq!(
        web.ips(),
        ["192.0.2.3".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(web.object_ref().uid.as_deref(), Some("uid-web"));
    writer.apply(&watcher::Event::Delete(service("web", "192.0.2.3", "4")));
    assert!(store.get("shop/web").is_none());
    assert!(store.get("shop/db").is_some());
}

#[test]
fn a_relist_replaces_the_cache_when_complete_sharing_what_did_not_change() {
    let mut writer = Writer::<ServiceView>::default();
    let store = writer.as_reader();
    writer.apply(&watcher::Event::Init);
    writer.apply(&watcher::Event::InitApply(service("web", "192.0.2.1", "1")));
    writer.apply(&watcher::Event::InitApply(service("db", "192.0.2.2", "2")));
    assert!(store.is_empty(), "nothing shows before the list completes");
    assert!(!store.is_ready());
    writer.apply(&watcher::Event::InitDone);
    assert!(store.is_ready());
    let web = store.get("shop/web").expect("listed");

    // The watch expired; the re-list no longer has `db` and changed nothing else.
    writer.apply(&watcher::Event::Init);
    writer.apply(&watcher::Event::InitApply(service("web", "192.0.2.1", "9")));
    assert!(
        store.get("shop/db").is_some(),
        "the old cache stays until the re-list completes"
    );
    writer.apply(&watcher::Event::InitDone);
    assert!(
        store.get("shop/db").is_none(),
        "what the re-list lacks is gone"
    );
    let again = store.get("shop/web").expect("listed again");
    assert!(
        Arc::ptr_eq(&web, &again),
        "an unchanged projection is not held twice"
    );
}

#[tokio::test]
async fn ready_after_the_first_list_and_an_error_if_the_watch_ends_before() {
    let mut writer = Writer::<ServiceView>::default();
    let store = writer.as_reader();
    let waiting = tokio::spawn({
        let store = store.clone();
        async move { store.wait_until_ready().await.is_ok() }
    });
    writer.apply(&watcher::Event::Init);
    writer.apply(&watcher::Event::InitDone);
    assert!(waiting.await.expect("joins"));

    let writer = Writer::<ServiceView>::default();
    let store = writer.as_reader();
    drop(writer);
    assert!(store.wait_until_ready().await.is_err());
}
