use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::*;
use crate::k8s::metallb::Kind;

use crate::speaker::kubernetes::test_logs::Logs;

fn store(kind: Kind, objects: &[Value]) -> Store<DynamicObject> {
    let mut writer = Writer::new(kind.api_resource());
    for o in objects {
        let o: DynamicObject = serde_json::from_value(o.clone()).unwrap();
        writer.apply_watcher_event(&watcher::Event::Apply(o));
    }
    writer.as_reader()
}

fn stores(addresses: &str) -> MetallbStores {
    let meta = |name: &str| json!({"name": name, "namespace": "metallb-system"});
    MetallbStores {
        namespace: "metallb-system".into(),
        bgp: Vec::new(),
        secrets: kube::runtime::reflector::store().0,
        pools: store(
            POOL,
            &[
                json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                     "metadata": meta("lan"), "spec": {"addresses": [addresses]}}),
            ],
        ),
        l2: store(
            L2,
            &[
                json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
                     "metadata": meta("l2"),
                     "spec": {"interfaces": ["eth0"], "nodeFailoverSelectors": [
                         {"weight": 50, "preference": {"matchLabels": {"zone": "east"}}}]}}),
            ],
        ),
    }
}

#[test]
fn an_unknown_field_is_logged_once_per_config_and_the_config_applies() {
    let (logs, _guard) = Logs::capture();
    let configmaps = Writer::<ConfigMap>::default().as_reader();
    let text = || logs.text();
    let logged = || text().matches("spec.nodeFailoverSelectors").count();

    let mut loader = ConfigLoader::default();
    assert!(loader.reload(Some(&stores("192.0.2.0/28")), &configmaps, &Vec::new));
    let config = loader.config().expect("the config applies");
    assert_eq!(config.l2_advertisements[0].interfaces, ["eth0"]);
    assert_eq!(loader.state(), Some(None));
    assert_eq!(logged(), 1, "{}", text());
    assert!(
        text().contains("L2Advertisement") && text().contains("unknown field"),
        "{}",
        text()
    );
    // The same objects again: nothing new, nothing logged.
    assert!(!loader.reload(Some(&stores("192.0.2.0/28")), &configmaps, &Vec::new));
    assert_eq!(logged(), 1, "{}", text());
    // A new config (another pool) still carrying the field: logged with it.
    assert!(loader.reload(Some(&stores("198.51.100.0/28")), &configmaps, &Vec::new));
    assert_eq!(logged(), 2, "{}", text());
}
