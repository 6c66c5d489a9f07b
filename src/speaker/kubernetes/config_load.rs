//! The speaker's config in force: loaded from the ConfigMap or MetalLB's objects, refused
//! ones kept out (the last good config stays), and the pools of earlier configs kept behind
//! the current ones so an address that left the pools stays announced until the controller has
//! moved its Service.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::DynamicObject;
use kube::runtime::reflector::Store;
use tracing::{error, info, warn};

use crate::config::{self, Config, L2Advertisement, LabelSelector, Protocol, WarningKind};
use crate::k8s::metallb::{KINDS, Kind, L2, Objects, POOL};
use crate::metrics::ConfigMetrics;

/// Pools of earlier configs kept to go on announcing addresses that left the pools (see
/// [`ConfigLoader::adopt`]).
const MAX_RETIRED_POOLS: usize = 64;

/// The label a retired pool carries (only inside this speaker), which its carried-over
/// advertisements select.
const RETIRED_LABEL: &str = "ferrolb.internal/retired-pool";

/// MetalLB's objects a speaker reads (`--config-source crds`): pools, layer-2 advertisements
/// and the BGP kinds (peers, advertisements, communities, BFD profiles).
#[derive(Clone)]
pub struct MetallbStores {
    pub namespace: String,
    pub pools: Store<DynamicObject>,
    pub l2: Store<DynamicObject>,
    /// The BGP kinds' caches; a kind whose CRD is not served stays empty.
    pub bgp: Vec<(Kind, Store<DynamicObject>)>,
    /// The namespace's basic-auth Secrets, for BGPPeers' `passwordSecret`.
    pub secrets: Store<Secret>,
}

impl MetallbStores {
    /// The TCP MD5 key in the basic-auth Secret `name`, if it exists.
    pub fn secret_password(&self, name: &str) -> Option<String> {
        let secrets = self.secrets.state();
        let found = secrets
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))?;
        super::bgp_side::secret_password(found)
    }
}

impl MetallbStores {
    fn config(&self) -> Result<Config, String> {
        let mut objects = Objects::default();
        for kind in KINDS {
            objects.listed(kind);
        }
        let bgp = self.bgp.iter().map(|(k, s)| (*k, s));
        for (kind, store) in [(POOL, &self.pools), (L2, &self.l2)].into_iter().chain(bgp) {
            for o in store.state() {
                objects.apply(kind, &o);
            }
        }
        objects
            .build(&self.namespace, &config::Namespaces::new())
            .map(|f| f.config)
            .map_err(|e| e.to_string())
    }
}

/// What the ConfigMap store showed last, so each state is acted on (and logged) once.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ConfigSource {
    /// `--config-source crds`: the config the objects make, or why they were refused.
    Objects(Result<Config, String>),
    Absent,
    NoConfigKey,
    Text(String),
}

/// The config in force and what the last load saw.
#[derive(Default)]
pub struct ConfigLoader {
    /// The last good config, with the layer-2 pools of earlier configs appended after its own
    /// (see [`ConfigLoader::adopt`]); `None` until one has loaded (then nothing is announced).
    config: Option<Config>,
    seen: Option<ConfigSource>,
    /// The last config load: valid (`None`) or refused with why; `None` until one was seen.
    config_state: Option<Option<String>>,
    metrics: Option<ConfigMetrics>,
}

impl ConfigLoader {
    /// Counts config updates (applied or refused) in `metrics`.
    pub fn with_metrics(metrics: ConfigMetrics) -> Self {
        Self {
            metrics: Some(metrics),
            ..Self::default()
        }
    }

    #[cfg(test)]
    pub fn stand_in(&mut self, config: Config) {
        self.config = Some(config);
    }

    /// The config in force, once one loaded.
    pub fn config(&self) -> Option<&Config> {
        self.config.as_ref()
    }

    /// The last config load for the ConfigurationState: `Some(None)` valid, `Some(Some(why))`
    /// refused, `None` before any config was seen.
    pub fn state(&self) -> Option<Option<String>> {
        self.config_state.clone()
    }

    /// Applies a changed, valid config; returns whether the config in force changed. An invalid one, a ConfigMap without the `config`
    /// key, or none at all is logged once and the last good config stays in force (as in the
    /// controller), so a slip in the ConfigMap never takes every IP off the LAN.
    ///
    /// `holders` lists the Services of ours showing an address: a config with no pools is
    /// refused while there is one ([`config::refuse_emptied`], the controller's rule).
    pub fn reload(
        &mut self,
        metallb: Option<&MetallbStores>,
        configmaps: &Store<ConfigMap>,
        holders: &dyn Fn() -> Vec<String>,
    ) -> bool {
        let source = match (metallb, configmaps.state().first()) {
            (Some(m), _) => ConfigSource::Objects(m.config()),
            (None, None) => ConfigSource::Absent,
            (None, Some(cm)) => match cm.data.as_ref().and_then(|d| d.get("config")) {
                None => ConfigSource::NoConfigKey,
                Some(text) => ConfigSource::Text(text.clone()),
            },
        };
        if self.seen.as_ref() == Some(&source) {
            return false;
        }
        self.seen = Some(source.clone());
        let source = match source {
            ConfigSource::Objects(Ok(c)) => match config::refuse_emptied(&c, holders()) {
                Some(why) => ConfigSource::Objects(Err(why)),
                None => ConfigSource::Objects(Ok(c)),
            },
            other => other,
        };
        let applied = match source {
            ConfigSource::Objects(Ok(c)) => {
                info!(
                    pools = c.address_pools.len(),
                    "config loaded from the custom resources"
                );
                // Once per config: the controller records them as events on the objects.
                for w in c
                    .warnings
                    .iter()
                    .filter(|w| w.kind == WarningKind::UnknownField)
                {
                    warn!(object = %w.object, field = %w.field, "{}", w.message);
                }
                self.adopt(c);
                true
            }
            ConfigSource::Objects(Err(e)) => {
                error!(error = %e, "custom resources refused; keeping the last good config");
                self.config_state = Some(Some(e));
                false
            }
            ConfigSource::Absent => {
                warn!("the config ConfigMap is absent; keeping the last good config");
                return false;
            }
            ConfigSource::NoConfigKey => {
                error!(
                    "the config ConfigMap has no data.config (the config is read from the key \"config\"); keeping the last good config"
                );
                self.config_state =
                    Some(Some("the config ConfigMap has no data.config".to_owned()));
                false
            }
            ConfigSource::Text(text) => match config::parse(&text) {
                Ok(c) if let Some(why) = config::refuse_emptied(&c, holders()) => {
                    error!(error = %why, "config rejected; keeping the last good one");
                    self.config_state = Some(Some(why));
                    false
                }
                Ok(c) => {
                    info!(pools = c.address_pools.len(), "config loaded");
                    self.adopt(c);
                    true
                }
                Err(e) => {
                    error!(error = %e, "config rejected; keeping the last good one");
                    self.config_state = Some(Some(crate::telemetry::error_chain(&e)));
                    false
                }
            },
        };
        match (&self.metrics, applied) {
            (Some(m), true) => m.applied(),
            (Some(m), false) => m.refused(),
            (None, _) => {}
        }
        applied
    }

    /// Puts a valid config in force. An address whose pool left the config is still in some
    /// Service's status until the controller moves that Service, and its clients still use it:
    /// it stays announced until then. So the layer-2 pools of earlier configs are kept behind
    /// the current ones; an address in a current pool follows that pool, one in none of the
    /// current pools falls back to its old pool.
    fn adopt(&mut self, mut c: Config) {
        self.config_state = Some(None);
        let current = c.address_pools.len();
        let (old_pools, old_ads) = self
            .config
            .take()
            .map(|o| (o.address_pools, o.l2_advertisements))
            .unwrap_or_default();
        let mut retired = 0;
        for mut pool in old_pools {
            if retired == MAX_RETIRED_POOLS {
                // Newest first; a speaker edited many times keeps only the recent past.
                break;
            }
            if pool.protocol != Protocol::Layer2 || c.address_pools.contains(&pool) {
                continue;
            }
            // The advertisements that announced it go on doing so, for it alone: each is
            // narrowed to a label only the retired pool carries, so a current pool of the same
            // name keeps only its current advertisements.
            let ads: Vec<L2Advertisement> = old_ads
                .iter()
                .filter(|ad| ad.selects_pool(&pool))
                .cloned()
                .collect();
            let tag = format!("{}#{retired}", pool.name);
            pool.labels = [(RETIRED_LABEL.to_owned(), tag.clone())].into();
            for mut ad in ads {
                ad.pools.clear();
                ad.pool_selectors = vec![LabelSelector {
                    match_labels: [(RETIRED_LABEL.to_owned(), tag.clone())].into(),
                    match_expressions: Vec::new(),
                }];
                c.l2_advertisements.push(ad);
            }
            c.address_pools.push(pool);
            retired += 1;
        }
        debug_assert!(c.address_pools.len() <= current + MAX_RETIRED_POOLS);
        self.config = Some(c);
    }
}

#[cfg(test)]
#[path = "config_load_tests.rs"]
mod tests;
