//! MetalLB's custom resources as both components read them: which kinds, at which version,
//! and [`Objects`], the set of objects seen so far in the release namespace, turned into the
//! config model by the pure translator (`config::crd::from_objects`).
//!
//! Pools and layer-2 advertisements must be readable for a config to exist; the BGP kinds
//! (announced by the speakers over BGP) are optional, so a BGP kind that cannot be read at all
//! (its CRD absent, or its conversion webhook gone with MetalLB) is reported once and counts as
//! empty: it never holds layer 2 back.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::Value;

use crate::config::crd::{GROUP, Namespaces, from_objects};
use crate::config::{ConfigError, ConfigFile};

/// Where the components read their config from (`--config-source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConfigSource {
    /// MetalLB v0.13+ custom resources (IPAddressPool, L2Advertisement...) in the namespace.
    Crds,
    /// The legacy MetalLB ConfigMap (`--config-name`, key `config`).
    Configmap,
}

/// One MetalLB kind this source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Kind {
    pub kind: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    /// Needed for any config (pools, L2 advertisements); the BGP kinds are not.
    pub required: bool,
}

pub const POOL: Kind = Kind {
    kind: "IPAddressPool",
    version: "v1beta1",
    plural: "ipaddresspools",
    required: true,
};
pub const L2: Kind = Kind {
    kind: "L2Advertisement",
    version: "v1beta1",
    plural: "l2advertisements",
    required: true,
};
/// Every kind the controller reads: layer 2 first, then the BGP kinds.
pub const KINDS: [Kind; 6] = [
    POOL,
    L2,
    Kind {
        kind: "BGPPeer",
        version: "v1beta2",
        plural: "bgppeers",
        required: false,
    },
    Kind {
        kind: "BGPAdvertisement",
        version: "v1beta1",
        plural: "bgpadvertisements",
        required: false,
    },
    Kind {
        kind: "BFDProfile",
        version: "v1beta1",
        plural: "bfdprofiles",
        required: false,
    },
    Kind {
        kind: "Community",
        version: "v1beta1",
        plural: "communities",
        required: false,
    },
];

impl Kind {
    pub fn api_version(&self) -> String {
        format!("{GROUP}/{}", self.version)
    }

    pub fn api_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(GROUP, self.version, self.kind),
            self.plural,
        )
    }
}

/// The objects of every kind seen so far, and which kinds have been listed.
#[derive(Debug, Default)]
pub struct Objects {
    by_kind: BTreeMap<Kind, BTreeMap<String, Value>>,
    listed: BTreeSet<Kind>,
    /// Optional kinds that could not be read; reported once each.
    unreadable: BTreeSet<Kind>,
}

impl Objects {
    /// A listed or watched object (added or changed).
    pub fn apply(&mut self, kind: Kind, obj: &DynamicObject) {
        let Some(name) = obj.metadata.name.clone() else {
            return;
        };
        // List items may come without apiVersion/kind; the translator needs both.
        let mut value = serde_json::to_value(obj).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.insert("apiVersion".into(), Value::String(kind.api_version()));
            map.insert("kind".into(), Value::String(kind.kind.into()));
        }
        self.by_kind.entry(kind).or_default().insert(name, value);
    }

    pub fn delete(&mut self, kind: Kind, obj: &DynamicObject) {
        if let (Some(map), Some(name)) = (self.by_kind.get_mut(&kind), &obj.metadata.name) {
            map.remove(name);
        }
    }

    /// A re-list starts: objects not listed again are gone.
    pub fn relist(&mut self, kind: Kind) {
        self.by_kind.remove(&kind);
    }

    pub fn listed(&mut self, kind: Kind) {
        self.listed.insert(kind);
        self.unreadable.remove(&kind);
    }

    /// `kind` cannot be read. Returns whether this is news worth reporting (an optional kind,
    /// first time); an optional kind then counts as listed and empty.
    pub fn unreadable(&mut self, kind: Kind) -> bool {
        if kind.required || self.listed.contains(&kind) {
            return false;
        }
        self.by_kind.remove(&kind);
        self.listed.insert(kind);
        self.unreadable.insert(kind)
    }

    /// Every kind has been listed (or given up on, for optional kinds).
    pub fn is_complete(&self, kinds: &[Kind]) -> bool {
        kinds.iter().all(|k| self.listed.contains(k))
    }

    /// Whether some pool selects namespaces by label (then Namespaces must be watched).
    pub fn uses_namespace_selectors(&self) -> bool {
        self.by_kind.get(&POOL).is_some_and(|pools| {
            pools.values().any(|p| {
                p.pointer("/spec/serviceAllocation/namespaceSelectors")
                    .and_then(Value::as_array)
                    .is_some_and(|s| !s.is_empty())
            })
        })
    }

    /// The config these objects make, with `namespaces` for `namespaceSelectors`.
    pub fn build(
        &self,
        namespace: &str,
        namespaces: &Namespaces,
    ) -> Result<ConfigFile, ConfigError> {
        let objects: Vec<Value> = self
            .by_kind
            .values()
            .flat_map(|m| m.values().cloned())
            .collect();
        let mut file = from_objects(objects, Some(namespace))?;
        file.namespaces = namespaces.clone();
        Ok(file)
    }

    /// A reference to the object named by an error's subject (`kind`, `name`), for events.
    pub fn reference(&self, kind: &str, name: &str) -> Option<ObjectReference> {
        let (k, obj) = self
            .by_kind
            .iter()
            .find(|(k, _)| k.kind == kind)
            .and_then(|(k, m)| m.get(name).map(|o| (k, o)))?;
        let meta = |f: &str| {
            obj.pointer(&format!("/metadata/{f}"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Some(ObjectReference {
            api_version: Some(k.api_version()),
            kind: Some(k.kind.into()),
            name: Some(name.into()),
            namespace: meta("namespace"),
            uid: meta("uid"),
            resource_version: meta("resourceVersion"),
            ..ObjectReference::default()
        })
    }

    /// The object's `metadata.generation`: its spec's version, which a status write leaves
    /// unchanged (unlike its `resourceVersion`).
    pub fn generation(&self, kind: &str, name: &str) -> Option<i64> {
        self.by_kind
            .iter()
            .find(|(k, _)| k.kind == kind)
            .and_then(|(_, m)| m.get(name))?
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
    }

    /// Names of the pools seen (for status writes).
    pub fn pool(&self, name: &str) -> Option<&Value> {
        self.by_kind.get(&POOL).and_then(|m| m.get(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pool(name: &str, addresses: &[&str], extra: Value) -> DynamicObject {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "ferrolb-system", "uid": format!("u-{name}")},
            "spec": {"addresses": addresses},
        });
        if let (Value::Object(a), Value::Object(b)) = (&mut v, extra) {
            a.extend(b);
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn list_items_without_type_meta_still_build_a_config() {
        let mut objects = Objects::default();
        objects.apply(POOL, &pool("prod", &["192.0.2.0/28"], json!({})));
        let file = objects.build("ferrolb-system", &Namespaces::new()).unwrap();
        assert_eq!(file.config.address_pools.len(), 1);
        assert_eq!(file.config.address_pools[0].name, "prod");
    }

    #[test]
    fn an_unreadable_bgp_kind_is_reported_once_and_never_blocks_layer2() {
        let mut objects = Objects::default();
        let bgp = KINDS[2];
        assert!(objects.unreadable(bgp));
        assert!(!objects.unreadable(bgp), "reported once");
        assert!(
            !objects.unreadable(POOL),
            "a required kind is never given up on"
        );
        objects.listed(POOL);
        objects.listed(L2);
        for k in &KINDS[3..] {
            objects.listed(*k);
        }
        assert!(objects.is_complete(&KINDS));
        assert!(!Objects::default().is_complete(&KINDS));
    }

    #[test]
    fn references_name_the_offending_object_with_its_uid() {
        let mut objects = Objects::default();
        objects.apply(POOL, &pool("prod", &["192.0.2.0/28"], json!({})));
        let r = objects.reference("IPAddressPool", "prod").unwrap();
        assert_eq!(r.uid.as_deref(), Some("u-prod"));
        assert_eq!(r.api_version.as_deref(), Some("metallb.io/v1beta1"));
        assert_eq!(r.namespace.as_deref(), Some("ferrolb-system"));
        assert!(objects.reference("IPAddressPool", "other").is_none());
    }

    #[test]
    fn namespace_selectors_are_noticed() {
        let mut objects = Objects::default();
        objects.apply(POOL, &pool("a", &["192.0.2.0/28"], json!({})));
        assert!(!objects.uses_namespace_selectors());
        objects.apply(
            POOL,
            &pool(
                "b",
                &["198.51.100.0/28"],
                json!({"spec": {"addresses": ["198.51.100.0/28"],
                    "serviceAllocation": {"namespaceSelectors": [{"matchLabels": {"team": "x"}}]}}}),
            ),
        );
        assert!(objects.uses_namespace_selectors());
    }
}
