//! The chart's RBAC against the API calls the code makes: the rendered (Cluster)Roles grant
//! exactly `ferrolb::k8s::access::API_ACCESS`, and that table follows the calls in the source.

use std::collections::BTreeSet;

use ferrolb::k8s::access::{API_ACCESS, Scope};

use super::support::*;

type Grant = (String, String, String, String, String);

fn component_of(name: &str) -> String {
    name.rsplit('-').next().unwrap().to_string()
}

fn rendered_grants(m: &Manifests, secure: bool) -> BTreeSet<Grant> {
    let mut grants = BTreeSet::new();
    let mut readers = 0;
    for kind in ["ClusterRole", "Role"] {
        for role in m.of_kind(kind) {
            if is_metrics_reader(role, secure) {
                readers += 1;
                continue;
            }
            let name = role["metadata"]["name"].as_str().unwrap();
            if kind == "Role" {
                assert_eq!(role["metadata"]["namespace"], NAMESPACE, "Role {name}");
            }
            for rule in role["rules"].as_array().unwrap() {
                for key in rule.as_object().unwrap().keys() {
                    assert!(
                        ["apiGroups", "resources", "verbs", "resourceNames"]
                            .contains(&key.as_str()),
                        "{kind} {name}: unexpected rule field {key} in {rule}"
                    );
                }
                // Names narrow only a read of the one Secret the controller manages.
                if let Some(names) = rule.get("resourceNames") {
                    assert_eq!(rule["resources"], serde_json::json!(["secrets"]), "{rule}");
                    assert_eq!(rule["verbs"], serde_json::json!(["get"]), "{rule}");
                    assert_eq!(names.as_array().unwrap().len(), 1, "{rule}");
                    assert!(
                        names[0].as_str().unwrap().ends_with("-memberlist"),
                        "{rule}"
                    );
                }
                let list = |k: &str| -> Vec<String> {
                    rule[k]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap().into())
                        .collect()
                };
                for group in list("apiGroups") {
                    for resource in list("resources") {
                        for verb in list("verbs") {
                            let c = component_of(name);
                            grants.insert((kind.into(), c, group.clone(), resource.clone(), verb));
                        }
                    }
                }
            }
        }
    }
    assert_eq!(readers, usize::from(secure), "metrics reader ClusterRoles");
    grants
}

#[test]
fn rbac_grants_exactly_the_expected_rules() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let mut managed_secret_seen = [false, false];
    let mut secure_seen = [false, false];
    for values in scenarios() {
        let m = render(&helm, values.as_deref());
        let name = scenario_name(&values);
        // The controller manages the gossip key Secret (and only then may touch Secrets) when it
        // is told the Secret's name.
        let manages_secret = m.text.contains("--memberlist-secret-name=");
        managed_secret_seen[usize::from(manages_secret)] = true;
        // The reviews of --metrics-secure are granted only with metrics.secure.
        let secure = m.text.contains("--metrics-secure");
        secure_seen[usize::from(secure)] = true;
        let expected: BTreeSet<Grant> = table_grants()
            .into_iter()
            .filter(|g| manages_secret || g.3 != "secrets" || g.1 == "speaker")
            .filter(|g| secure || !REVIEWS.contains(&g.3.as_str()))
            .collect();
        let grants = rendered_grants(&m, secure);
        let extra: Vec<_> = grants.difference(&expected).collect();
        let missing: Vec<_> = expected.difference(&grants).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{name}: extra {extra:?}, missing {missing:?}"
        );
        // BGPPeers' passwordSecret: the speaker lists and watches its own namespace's Secrets
        // (a Role), and never gets, writes or deletes one.
        assert!(
            grants
                .iter()
                .filter(|g| g.1 == "speaker" && g.3 == "secrets")
                .all(|g| g.0 == "Role" && ["list", "watch"].contains(&g.4.as_str())),
            "{name}: the speaker only lists and watches its namespace's Secrets"
        );

        // Each binding ties its role to the matching component's ServiceAccount in the release
        // namespace, and that is the account the component's pods run as.
        for kind in ["ClusterRoleBinding", "RoleBinding"] {
            let bindings: Vec<_> = m.of_kind(kind).collect();
            assert_eq!(bindings.len(), 2, "{name}: {kind}s");
            for b in bindings {
                let comp = component_of(b["metadata"]["name"].as_str().unwrap());
                assert_eq!(b["roleRef"]["kind"], kind.trim_end_matches("Binding"));
                assert_eq!(comp, component_of(b["roleRef"]["name"].as_str().unwrap()));
                let subjects = b["subjects"].as_array().unwrap();
                assert_eq!(subjects.len(), 1, "{name}: {kind} subjects");
                assert_eq!(subjects[0]["kind"], "ServiceAccount");
                assert_eq!(subjects[0]["namespace"], NAMESPACE);
                let workload = m.workload(&comp).unwrap();
                assert_eq!(
                    subjects[0]["name"],
                    pod_spec(workload)["serviceAccountName"]
                );
                assert!(
                    m.find("ServiceAccount", subjects[0]["name"].as_str().unwrap())
                        .is_some()
                );
            }
        }
    }
    assert_eq!(
        managed_secret_seen,
        [true, true],
        "scenarios both with and without a chart-managed gossip key Secret"
    );
    assert_eq!(
        secure_seen,
        [true, true],
        "scenarios both with and without metrics.secure"
    );
}

/// The review resources of `--metrics-secure`.
const REVIEWS: &[&str] = &["tokenreviews", "subjectaccessreviews"];

/// The ClusterRole the chart renders, with metrics.secure only, for users to bind to their
/// Prometheus: `get` on the non-resource URL /metrics and nothing else. Not a component's.
fn is_metrics_reader(role: &serde_json::Value, secure: bool) -> bool {
    let name = role["metadata"]["name"].as_str().unwrap();
    if !name.ends_with("-metrics-reader") {
        return false;
    }
    assert!(secure, "{name} rendered without metrics.secure");
    assert_eq!(role["kind"], "ClusterRole", "{name}");
    assert_eq!(
        role["rules"],
        serde_json::json!([{ "nonResourceURLs": ["/metrics"], "verbs": ["get"] }]),
        "{name}"
    );
    true
}

fn kind_of(scope: Scope) -> &'static str {
    match scope {
        Scope::Cluster => "ClusterRole",
        Scope::ReleaseNamespace => "Role",
    }
}

fn table_grants() -> BTreeSet<Grant> {
    API_ACCESS
        .iter()
        .flat_map(|a| {
            a.verbs.iter().map(move |v| {
                (
                    kind_of(a.scope).to_string(),
                    a.component.to_string(),
                    a.group.to_string(),
                    a.resource.to_string(),
                    v.to_string(),
                )
            })
        })
        .collect()
}

/// How each kind of API call appears in the source, and the grants it needs: (marker in the
/// component's code, scope, group, resource, verbs).
const CALL_MARKERS: &[(&str, Scope, &str, &str, &[&str])] = &[
    (
        "Api::<CachedService>::all",
        Scope::Cluster,
        "",
        "services",
        &["list", "watch"],
    ),
    (
        "Api::<Service>::all",
        Scope::Cluster,
        "",
        "services",
        &["list", "watch"],
    ),
    (
        "Api::<Decoded<ServiceView>>::all",
        Scope::Cluster,
        "",
        "services",
        &["list", "watch"],
    ),
    (
        "Api::<Decoded<NodeView>>::all",
        Scope::Cluster,
        "",
        "nodes",
        &["list", "watch"],
    ),
    (
        "Api::<Decoded<SliceView>>::all",
        Scope::Cluster,
        "discovery.k8s.io",
        "endpointslices",
        &["list", "watch"],
    ),
    (
        "Api::<Node>::all",
        Scope::Cluster,
        "",
        "nodes",
        &["list", "watch"],
    ),
    (
        "Api::<ServiceCIDR>::all",
        Scope::Cluster,
        "networking.k8s.io",
        "servicecidrs",
        &["list", "watch"],
    ),
    (
        "Api::<EndpointSlice>::all",
        Scope::Cluster,
        "discovery.k8s.io",
        "endpointslices",
        &["list", "watch"],
    ),
    (
        "KubeReviewer::new",
        Scope::Cluster,
        "authentication.k8s.io",
        "tokenreviews",
        &["create"],
    ),
    (
        "KubeReviewer::new",
        Scope::Cluster,
        "authorization.k8s.io",
        "subjectaccessreviews",
        &["create"],
    ),
    (
        "Api::<ConfigMap>::namespaced",
        Scope::ReleaseNamespace,
        "",
        "configmaps",
        &["list", "watch"],
    ),
    (
        "Api<ConfigMap> = Api::namespaced",
        Scope::ReleaseNamespace,
        "",
        "configmaps",
        &["list", "watch"],
    ),
    (
        ".patch_status(",
        Scope::Cluster,
        "",
        "services/status",
        &["patch"],
    ),
    ("api.patch(", Scope::Cluster, "", "services", &["patch"]),
    (
        "Recorder::new",
        Scope::Cluster,
        "events.k8s.io",
        "events",
        &["create"],
    ),
    (
        "Api<Lease>",
        Scope::ReleaseNamespace,
        "coordination.k8s.io",
        "leases",
        &["get", "create", "patch"],
    ),
    (
        "pub async fn fetch_service(",
        Scope::Cluster,
        "",
        "services",
        &["get"],
    ),
    (
        "let api: Api<Secret>",
        Scope::ReleaseNamespace,
        "",
        "secrets",
        &["create", "get"],
    ),
    (
        "pub async fn watch_crds(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "ipaddresspools",
        &["list", "watch"],
    ),
    (
        "pub async fn watch_crds(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "l2advertisements",
        &["list", "watch"],
    ),
    (
        "pub async fn watch_crds(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "bgppeers",
        &["list", "watch"],
    ),
    (
        "pub async fn watch_crds(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "bgpadvertisements",
        &["list", "watch"],
    ),
    (
        "pub async fn watch_crds(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "bfdprofiles",
        &["list", "watch"],
    ),
    (
        "pub async fn watch_crds(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "communities",
        &["list", "watch"],
    ),
    (
        "fn watch_secrets(",
        Scope::ReleaseNamespace,
        "",
        "secrets",
        &["list", "watch"],
    ),
    (
        "fn watch_metallb(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "ipaddresspools",
        &["list", "watch"],
    ),
    (
        "fn watch_metallb(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "l2advertisements",
        &["list", "watch"],
    ),
    (
        "KINDS.into_iter().filter(|k| !k.required)",
        Scope::ReleaseNamespace,
        "metallb.io",
        "bgppeers",
        &["list", "watch"],
    ),
    (
        "KINDS.into_iter().filter(|k| !k.required)",
        Scope::ReleaseNamespace,
        "metallb.io",
        "bgpadvertisements",
        &["list", "watch"],
    ),
    (
        "KINDS.into_iter().filter(|k| !k.required)",
        Scope::ReleaseNamespace,
        "metallb.io",
        "communities",
        &["list", "watch"],
    ),
    (
        "KINDS.into_iter().filter(|k| !k.required)",
        Scope::ReleaseNamespace,
        "metallb.io",
        "bfdprofiles",
        &["list", "watch"],
    ),
    (
        "Api::<Namespace>::all",
        Scope::Cluster,
        "",
        "namespaces",
        &["list", "watch"],
    ),
    (
        "pub async fn write_pool_status(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "ipaddresspools/status",
        &["patch"],
    ),
    (
        "pub async fn write_configuration_state(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "configurationstates",
        &["create"],
    ),
    (
        "pub async fn write_configuration_state(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "configurationstates/status",
        &["patch"],
    ),
    (
        "Api::<Pod>::namespaced",
        Scope::ReleaseNamespace,
        "",
        "pods",
        &["list", "watch"],
    ),
    (
        "pub async fn own_pod(",
        Scope::ReleaseNamespace,
        "",
        "pods",
        &["get"],
    ),
    (
        "fn watch_statuses<K: StatusKind>(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "servicel2statuses",
        &["list", "watch"],
    ),
    (
        "fn watch_statuses<K: StatusKind>(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "servicebgpstatuses",
        &["list", "watch"],
    ),
    (
        "pub async fn list_others_statuses<K: StatusKind>(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "servicel2statuses",
        &["list"],
    ),
    (
        "pub async fn list_others_statuses<K: StatusKind>(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "servicebgpstatuses",
        &["list"],
    ),
    (
        "pub async fn create_status<K: StatusKind>(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "servicel2statuses",
        &["create"],
    ),
    (
        "pub async fn create_status<K: StatusKind>(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "servicebgpstatuses",
        &["create"],
    ),
    (
        "pub async fn delete_status(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "servicel2statuses",
        &["delete"],
    ),
    (
        "pub async fn delete_status(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "servicebgpstatuses",
        &["delete"],
    ),
    (
        "pub async fn patch_status_of(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "servicel2statuses/status",
        &["patch"],
    ),
    (
        "pub async fn patch_status_of(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "servicebgpstatuses/status",
        &["patch"],
    ),
    (
        "pub async fn write_speaker_state(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "configurationstates",
        &["create"],
    ),
    (
        "pub async fn write_speaker_state(",
        Scope::ReleaseNamespace,
        "metallb.io",
        "configurationstates/status",
        &["patch"],
    ),
];

/// The per-Service status kinds (`impl StatusKind for ...`): their writer's calls are generic over
/// the kind, so its markers above name every kind's resource.
const STATUS_PLURALS: &[&str] = &["servicel2statuses", "servicebgpstatuses"];

/// Calls that reach the API without naming their resource: get, replace, delete, create on an
/// `Api`, or a `Client::request` of our own. A source file that makes one must also hold a marker
/// above (the resource it calls), so a new kind of call cannot slip past the table.
const UNMARKED_CALLS: &[&str] = &[
    ".replace_status(",
    "api.replace(",
    "api.delete(",
    "api.get(",
    "api.create(",
    ".get_opt(",
    ".get_status(",
    ".get_metadata_opt(",
    "client.request",
    "Api::<DynamicObject>",
    "Api<DynamicObject>",
    "Api::<Secret>",
    "Api::<Lease>",
];

/// The component's source files (unit tests cut off), one string per file.
fn source_of(component: &str) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut dirs = vec![repo_root().join("src").join(component)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.ends_with("tests") {
                    dirs.push(path);
                }
            } else if name.ends_with(".rs") && !name.ends_with("_tests.rs") {
                let code = std::fs::read_to_string(&path).unwrap();
                // Unit tests at the end of a file are not calls the component makes.
                let code = code.split("#[cfg(test)]").next().unwrap_or("").to_owned();
                files.push((path.display().to_string(), code));
            }
        }
    }
    files
}

#[test]
fn access_table_follows_the_api_calls_in_the_source() {
    let mut from_source = BTreeSet::new();
    for component in ["controller", "speaker"] {
        let files = source_of(component);
        let total: usize = files.iter().map(|(_, code)| code.len()).sum();
        assert!(total > 10_000, "read the {component} source");
        for (path, code) in &files {
            let marked: Vec<_> = CALL_MARKERS
                .iter()
                .filter(|(marker, ..)| code.contains(marker))
                .collect();
            for call in UNMARKED_CALLS {
                assert!(
                    !code.contains(call) || !marked.is_empty(),
                    "{path} calls {call} but names no resource: add its marker and grant to tests/chart/rbac.rs and src/k8s/access.rs"
                );
            }
            for (_, scope, group, resource, verbs) in marked {
                for verb in *verbs {
                    from_source.insert((
                        kind_of(*scope).to_string(),
                        component.to_string(),
                        group.to_string(),
                        resource.to_string(),
                        verb.to_string(),
                    ));
                }
            }
        }
    }
    // Within one batch the controller's Recorder folds a repeated reason into a series, which
    // it patches; the speaker's batches name distinct Services, so it only ever creates.
    from_source.insert((
        "ClusterRole".into(),
        "controller".into(),
        "events.k8s.io".into(),
        "events".into(),
        "patch".into(),
    ));
    let table = table_grants();
    let extra: Vec<_> = table.difference(&from_source).collect();
    let missing: Vec<_> = from_source.difference(&table).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "granted but not called: {extra:?}; called but not granted: {missing:?}"
    );
}

/// The status writer's markers grant each per-Service status kind: the kinds the source
/// implements (`const PLURAL` of each `impl StatusKind`) are exactly [`STATUS_PLURALS`], and
/// each generic call's marker names every one of them.
#[test]
fn the_status_writers_markers_cover_every_status_kind() {
    let mut implemented = BTreeSet::new();
    for (path, code) in source_of("speaker") {
        for (at, _) in code.match_indices("impl StatusKind for ") {
            let rest = &code[at..];
            let plural = rest
                .split("const PLURAL: &'static str = \"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or_else(|| panic!("{path}: an impl StatusKind without its PLURAL"));
            implemented.insert(plural.to_owned());
        }
    }
    let expected: BTreeSet<String> = STATUS_PLURALS.iter().map(|p| (*p).to_owned()).collect();
    assert_eq!(implemented, expected);
    for marker in [
        "fn watch_statuses<K: StatusKind>(",
        "pub async fn list_others_statuses<K: StatusKind>(",
        "pub async fn create_status<K: StatusKind>(",
        "pub async fn delete_status(",
        "pub async fn patch_status_of(",
    ] {
        let named: BTreeSet<String> = CALL_MARKERS
            .iter()
            .filter(|m| m.0 == marker)
            .map(|m| m.3.trim_end_matches("/status").to_owned())
            .collect();
        assert_eq!(named, expected, "{marker}");
    }
}
