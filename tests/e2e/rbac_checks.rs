//! What `tests/e2e_rbac.rs` checks in the audit log: every call of the components' ServiceAccounts
//! allowed and listed in `ferrolb::k8s::access::API_ACCESS`, every grant the scenario reaches
//! used, and calls outside the grants refused. Included with `#[path]` next to `mod e2e;`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use ferrolb::k8s::access::{API_ACCESS, ApiAccess, Scope};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};
use serde_json::json;

use crate::chart_release::Source;
use crate::e2e::audit::{self, Call};
use crate::e2e::wait::PATIENCE;
use crate::e2e::{APPS, NAMESPACE};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Controller,
    Speaker,
}

impl Component {
    /// Its name in `API_ACCESS` and its subcommand.
    pub fn name(self) -> &'static str {
        match self {
            Component::Controller => "controller",
            Component::Speaker => "speaker",
        }
    }
}

/// MetalLB's config kinds, read (and a pool's status written) with `--config-source crds` only.
const CONFIG_KINDS: &[&str] = &[
    "ipaddresspools",
    "ipaddresspools/status",
    "l2advertisements",
    "bgppeers",
    "bgpadvertisements",
    "bfdprofiles",
    "communities",
];

/// Why the scenario does not use a grant with `source`, or `None` when it must.
fn not_reached(a: &ApiAccess, verb: &str, source: Source) -> Option<&'static str> {
    let controller = a.component == "controller";
    match (source, a.resource) {
        (Source::Crds, "configmaps") => Some("the ConfigMap source only"),
        (Source::ConfigMap, r) if CONFIG_KINDS.contains(&r) => {
            Some("the custom-resource source only")
        }
        (Source::ConfigMap, "namespaces") => Some("pools' namespaceSelectors (custom resources)"),
        (Source::ConfigMap, "secrets") if !controller => {
            Some("BGPPeers' passwordSecret (custom resources)")
        }
        (Source::ConfigMap, "servicebgpstatuses" | "servicebgpstatuses/status") => {
            Some("the ConfigMap scenario's pool is layer 2 only")
        }
        (Source::ConfigMap, "configurationstates" | "configurationstates/status") if controller => {
            Some("the controller writes its ConfigurationState with custom resources only")
        }
        (_, "services") if controller && verb == "get" => {
            Some("a Service is re-read only after a write conflict")
        }
        (_, "events") if controller && verb == "patch" => {
            Some("a repeated event within one batch only")
        }
        (_, "tokenreviews" | "subjectaccessreviews") => {
            Some("--metrics-secure only (tests/e2e_metrics_secure.rs); the chart's default is off")
        }
        _ => None,
    }
}

/// The authorizer let the call through (whatever became of it: a get of an object not created
/// yet answers 404, a write decided on an old version 409).
fn authorized(call: &Call) -> bool {
    call.decision == "allow"
}

fn fits(call: &Call, a: &ApiAccess) -> bool {
    call.group == a.group
        && call.resource == a.resource
        && a.verbs.contains(&call.verb.as_str())
        && (a.scope == Scope::Cluster || call.namespace == NAMESPACE)
}

/// Distinct calls, for messages.
fn summary<'a>(calls: impl Iterator<Item = &'a Call>) -> String {
    let lines: BTreeSet<String> = calls
        .map(|c| {
            format!(
                "  {} {}/{} in {:?} -> {} (authorizer: {})",
                c.verb, c.group, c.resource, c.namespace, c.code, c.decision
            )
        })
        .collect();
    lines.into_iter().collect::<Vec<_>>().join("\n")
}

/// Waits until each component's account has made, authorized, a call for every verb of every
/// `API_ACCESS` grant the scenario reaches with `source`, so the other checks cannot pass on a
/// component that did nothing.
pub async fn wait_for_every_grant_used(log: &Path, users: &[(Component, String)], source: Source) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let calls = audit::read(log);
        let mut missing = Vec::new();
        for (component, user) in users {
            let mine = audit::by_user(&calls, user);
            for a in API_ACCESS
                .iter()
                .filter(|a| a.component == component.name())
            {
                for verb in a.verbs {
                    let used = mine
                        .iter()
                        .any(|c| authorized(c) && c.verb == *verb && fits(c, a));
                    if !used && not_reached(a, verb, source).is_none() {
                        missing.push(format!("{} {verb} {}/{}", a.component, a.group, a.resource));
                    }
                }
            }
        }
        if missing.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            let seen: Vec<String> = users
                .iter()
                .map(|(_, user)| {
                    let mine = audit::by_user(&calls, user);
                    format!("{user}:\n{}", summary(mine.iter()))
                })
                .collect();
            panic!(
                "{source:?}: after {PATIENCE:?} these grants were never used: {missing:#?}\ncalls seen:\n{}",
                seen.join("\n")
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// The calls refused, one line each.
fn refused_of(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.code == 401 || c.code == 403 || c.decision == "forbid")
        .map(ToString::to_string)
        .collect()
}

/// For a failing test's report: every refused call of the components' accounts so far.
pub fn refused_so_far(log: &Path, users: &[(Component, String)]) -> String {
    let calls = audit::read(log);
    let lines: Vec<String> = users
        .iter()
        .flat_map(|(_, user)| refused_of(&audit::by_user(&calls, user)))
        .collect();
    if lines.is_empty() {
        "none".to_string()
    } else {
        lines.join("\n")
    }
}

/// No call of the components' accounts was refused (401 or 403), and each call on a resource is
/// one `API_ACCESS` lists for its component (a call allowed only by some default role would be
/// missing from the table the chart is checked against).
pub fn assert_every_call_allowed(log: &Path, users: &[(Component, String)]) {
    let calls = audit::read(log);
    for (component, user) in users {
        let mine = audit::by_user(&calls, user);
        let refused = refused_of(&mine);
        assert!(
            refused.is_empty(),
            "calls of the {} refused under the chart's RBAC:\n{}",
            component.name(),
            refused.join("\n")
        );
        let unlisted: Vec<&Call> = mine
            .iter()
            .filter(|c| !c.resource.is_empty())
            .filter(|c| {
                !API_ACCESS
                    .iter()
                    .any(|a| a.component == component.name() && fits(c, a))
            })
            .collect();
        assert!(
            unlisted.is_empty(),
            "calls of the {} that src/k8s/access.rs does not list:\n{}",
            component.name(),
            summary(unlisted.into_iter())
        );
    }
}

/// A call that must be refused.
#[derive(Debug)]
pub struct Refusal {
    pub component: Component,
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
    pub namespace: &'static str,
}

fn expect_403<T: std::fmt::Debug>(
    component: Component,
    what: &str,
    result: Result<T, kube::Error>,
) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!(
            "the {}'s token: {what} should be refused (403), got {other:?}",
            component.name()
        ),
    }
}

/// With each component's own token (`[controller, speaker]`), writes and reads it must never
/// make; each must answer 403. Returns what was tried.
pub async fn refused_calls(
    [controller, speaker]: [Client; 2],
    speaker_pod: &str,
    key_secret: &str,
    lease: &str,
) -> Vec<Refusal> {
    use Component::{Controller, Speaker};
    let refusal = |component, verb, group, resource, namespace| Refusal {
        component,
        verb,
        group,
        resource,
        namespace,
    };
    let delete = DeleteParams::default();
    let merge = Patch::Merge(json!({ "metadata": { "labels": { "e2e": "refused" } } }));
    let params = PatchParams::default();

    let services: Api<Service> = Api::namespaced(controller.clone(), APPS);
    expect_403(
        Controller,
        "delete a Service",
        services.delete("web", &delete).await,
    );
    let secrets: Api<Secret> = Api::namespaced(controller.clone(), APPS);
    let secret: Secret = serde_json::from_value(
        json!({ "metadata": { "name": "e2e" }, "stringData": { "k": "v" } }),
    )
    .unwrap();
    expect_403(
        Controller,
        "create a Secret outside the release namespace",
        secrets.create(&PostParams::default(), &secret).await,
    );
    let secrets: Api<Secret> = Api::namespaced(controller.clone(), NAMESPACE);
    expect_403(
        Controller,
        "read a Secret other than the gossip key's",
        secrets.get("not-the-gossip-key").await,
    );
    let leases: Api<Lease> = Api::namespaced(controller, NAMESPACE);
    expect_403(
        Controller,
        "delete its Lease",
        leases.delete(lease, &delete).await,
    );

    let services: Api<Service> = Api::namespaced(speaker.clone(), APPS);
    let status = Patch::Merge(
        json!({ "status": { "loadBalancer": { "ingress": [{ "ip": "192.0.2.250" }] } } }),
    );
    expect_403(
        Speaker,
        "write a Service's status",
        services.patch_status("web", &params, &status).await,
    );
    let pods: Api<Pod> = Api::namespaced(speaker.clone(), NAMESPACE);
    expect_403(
        Speaker,
        "delete a Pod",
        pods.delete(speaker_pod, &delete).await,
    );
    let pods: Api<Pod> = Api::namespaced(speaker.clone(), APPS);
    expect_403(
        Speaker,
        "patch a Pod outside the release namespace",
        pods.patch("app", &params, &merge).await,
    );
    // Not even its own: the interfaces travel in gossip, so root on one node cannot rewrite
    // the release's Pods (the controller's image among them).
    let pods: Api<Pod> = Api::namespaced(speaker.clone(), NAMESPACE);
    expect_403(
        Speaker,
        "patch its own Pod",
        pods.patch(speaker_pod, &params, &merge).await,
    );
    let secrets: Api<Secret> = Api::namespaced(speaker.clone(), NAMESPACE);
    expect_403(
        Speaker,
        "read the gossip key Secret",
        secrets.get(key_secret).await,
    );
    let gvk = GroupVersionKind::gvk("metallb.io", "v1beta1", "ServiceL2Status");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "servicel2statuses");
    let statuses: Api<DynamicObject> = Api::namespaced_with(speaker, NAMESPACE, &resource);
    expect_403(
        Speaker,
        "patch a ServiceL2Status itself (only its status)",
        statuses.patch("any", &params, &merge).await,
    );

    vec![
        refusal(Controller, "delete", "", "services", APPS),
        refusal(Controller, "create", "", "secrets", APPS),
        refusal(Controller, "get", "", "secrets", NAMESPACE),
        refusal(
            Controller,
            "delete",
            "coordination.k8s.io",
            "leases",
            NAMESPACE,
        ),
        refusal(Speaker, "patch", "", "services/status", APPS),
        refusal(Speaker, "delete", "", "pods", NAMESPACE),
        refusal(Speaker, "patch", "", "pods", APPS),
        refusal(Speaker, "patch", "", "pods", NAMESPACE),
        refusal(Speaker, "get", "", "secrets", NAMESPACE),
        refusal(
            Speaker,
            "patch",
            "metallb.io",
            "servicel2statuses",
            NAMESPACE,
        ),
    ]
}

/// Waits until the audit log shows each refusal as the authorizer's (403, decision `forbid`)
/// for the right account: the same log the "no call refused" check reads does record refusals.
pub async fn wait_for_refusals_audited(
    log: &Path,
    users: &[(Component, String)],
    refused: &[Refusal],
) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let calls = audit::read(log);
        let missing: Vec<&Refusal> = refused
            .iter()
            .filter(|r| {
                let user = &users.iter().find(|(c, _)| *c == r.component).unwrap().1;
                !calls.iter().any(|c| {
                    c.user == *user
                        && c.is(r.verb, r.group, r.resource)
                        && c.namespace == r.namespace
                        && c.code == 403
                        && c.decision == "forbid"
                })
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "refusals missing from the audit log: {missing:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}
