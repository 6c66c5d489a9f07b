use std::sync::{Arc, Mutex};

use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::*;
use crate::k8s::metallb::Kind;

/// Captures this thread's log lines.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

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
                     "spec": {"interfaces": ["eth0"], "preferredNodeSelectors": [
                         {"weight": 50, "preference": {"matchLabels": {"zone": "east"}}}]}}),
            ],
        ),
    }
}

#[test]
fn an_unknown_field_is_logged_once_per_config_and_the_config_applies() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let configmaps = Writer::<ConfigMap>::default().as_reader();
    let text = || String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    let logged = || text().matches("spec.preferredNodeSelectors").count();

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
