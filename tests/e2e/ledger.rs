//! A witness that watches every Service in a namespace and remembers, in the order the API server
//! committed them, each Service's EXTERNAL-IPs. It catches what a point-in-time check could miss:
//! an IP that changed and changed back, or two Services holding one IP for a moment.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};

use super::api::ingress_ips;

#[derive(Default)]
struct State {
    /// uid -> (name, current IPs); only Services that exist.
    live: HashMap<String, (String, Vec<String>)>,
    /// uid -> the first non-empty IP set seen for that Service.
    first: HashMap<String, Vec<String>>,
    /// name -> when the watch first delivered the Service with an EXTERNAL-IP.
    first_ip_at: HashMap<String, Instant>,
    /// During a re-list: the uids seen so far, to drop those deleted while the watch was down.
    relisting: Option<Vec<String>>,
    violations: Vec<String>,
}

impl State {
    fn upsert(&mut self, service: &Service) {
        let (Some(uid), Some(name)) = (service.metadata.uid.clone(), service.metadata.name.clone())
        else {
            return;
        };
        if let Some(seen) = self.relisting.as_mut() {
            seen.push(uid.clone());
        }
        let ips = ingress_ips(service);
        if !ips.is_empty() {
            self.first_ip_at
                .entry(name.clone())
                .or_insert_with(Instant::now);
            match self.first.get(&uid) {
                None => {
                    self.first.insert(uid.clone(), ips.clone());
                }
                Some(first) if *first != ips => self.violations.push(format!(
                    "Service {name} changed EXTERNAL-IP from {first:?} to {ips:?}"
                )),
                Some(_) => {}
            }
            for ip in &ips {
                for (other_uid, (other, other_ips)) in &self.live {
                    if *other_uid != uid && other_ips.contains(ip) {
                        self.violations
                            .push(format!("{ip} held by both {other} and {name} at once"));
                    }
                }
            }
        }
        self.live.insert(uid, (name, ips));
    }
}

/// Watches Services in one namespace until dropped.
pub struct IpLedger {
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl IpLedger {
    /// Starts watching; returns once the initial list has been taken in.
    pub async fn start(client: &Client, namespace: &str) -> IpLedger {
        let services: Api<Service> = Api::namespaced(client.clone(), namespace);
        let state = Arc::new(Mutex::new(State::default()));
        let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
        let task_state = state.clone();
        let task = tokio::spawn(async move {
            let mut synced = Some(synced_tx);
            let mut stream = watcher::watcher(services, watcher::Config::default()).boxed();
            while let Some(event) = stream.next().await {
                let Ok(event) = event else { continue };
                let mut state = task_state.lock().unwrap();
                match event {
                    Event::Apply(s) | Event::InitApply(s) => state.upsert(&s),
                    Event::Delete(s) => {
                        if let Some(uid) = s.metadata.uid.as_ref() {
                            state.live.remove(uid);
                        }
                    }
                    Event::Init => state.relisting = Some(Vec::new()),
                    Event::InitDone => {
                        if let Some(seen) = state.relisting.take() {
                            state.live.retain(|uid, _| seen.contains(uid));
                        }
                        if let Some(tx) = synced.take() {
                            let _ = tx.send(());
                        }
                    }
                }
            }
        });
        let _ = synced_rx.await;
        IpLedger { state, task }
    }

    /// Every breach of "an IP never changes, and is never held by two Services" seen so far.
    pub fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }

    /// name -> current EXTERNAL-IPs of the Services that exist, as the watch last saw them.
    pub fn current(&self) -> BTreeMap<String, Vec<String>> {
        let state = self.state.lock().unwrap();
        state.live.values().cloned().collect()
    }

    /// When the watch first saw Service `name` with an EXTERNAL-IP.
    pub fn first_ip_at(&self, name: &str) -> Option<Instant> {
        self.state.lock().unwrap().first_ip_at.get(name).copied()
    }

    /// How many Services the watch has seen with an EXTERNAL-IP, ever.
    pub fn assigned_count(&self) -> usize {
        self.state.lock().unwrap().first_ip_at.len()
    }
}

impl Drop for IpLedger {
    fn drop(&mut self) {
        self.task.abort();
    }
}
