//! Custom-resource input: one test per validation rule, plus the model each object becomes.

use super::*;
use crate::config::{Protocol, Rule, Source};

fn ok(text: &str) -> ConfigFile {
    parse_file(text).unwrap_or_else(|e| panic!("{e}"))
}

/// The errors of an invalid file, as (subject, field, rule).
fn errors(text: &str) -> Vec<(String, String, Rule)> {
    match parse_file(text) {
        Err(ConfigError::Invalid(errs)) => errs
            .into_iter()
            .map(|e| (e.subject.to_string(), e.field, e.rule))
            .collect(),
        other => panic!("expected validation errors, got {other:?}"),
    }
}

fn pool(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: {name}\n  \
         namespace: metallb-system\nspec:\n{spec}\n"
    )
}

fn ad(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata:\n  name: {name}\n\
         spec:\n{spec}\n"
    )
}

#[test]
fn pools_read_with_metallb_defaults_and_address_forms() {
    let text = pool(
        "b-pool",
        "  addresses:\n  - 192.0.2.7/24\n  - 198.51.100.1 - 198.51.100.9\n  - 2001:db8::/126",
    ) + &pool(
        "a-pool",
        "  addresses: [203.0.113.5/32]\n  autoAssign: false\n  avoidBuggyIPs: true",
    );
    let file = ok(&text);
    let c = &file.config;
    assert_eq!(c.source, Source::Crds);
    // Sorted by name: the fallback order.
    let names: Vec<&str> = c.address_pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["a-pool", "b-pool"]);
    let b = &c.address_pools[1];
    assert!(b.auto_assign && !b.avoid_buggy_ips && b.allocation.is_none());
    assert_eq!(b.addresses[0].to_string(), "192.0.2.0-192.0.2.255");
    assert_eq!(b.addresses[1].to_string(), "198.51.100.1-198.51.100.9");
    assert!(b.families().ipv4 && b.families().ipv6);
    let a = &c.address_pools[0];
    assert!(!a.auto_assign && a.avoid_buggy_ips);
    // No advertisement: allocated, not announced, and said so.
    assert_eq!(a.protocol, Protocol::Bgp);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.object == "IPAddressPool \"a-pool\"" && w.message.contains("not announced"))
    );
}

#[test]
fn a_kubectl_list_is_read_item_by_item() {
    let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: metallb.io/v1beta1\n  kind: \
                IPAddressPool\n  metadata: {name: lan, namespace: metallb-system, resourceVersion: \
                \"5\", uid: x}\n  spec: {addresses: [192.0.2.0/28]}\n  status: {assignedIPv4: 0}\n\
                - apiVersion: metallb.io/v1beta1\n  kind: L2Advertisement\n  metadata: {name: l2}\n\
                metadata: {resourceVersion: \"\"}\n";
    let c = ok(text).config;
    assert_eq!(c.address_pools.len(), 1);
    assert_eq!(c.l2_advertisements.len(), 1);
    assert_eq!(c.address_pools[0].protocol, Protocol::Layer2);
}

#[test]
fn service_allocation_is_read() {
    let text = pool(
        "p",
        "  addresses: [192.0.2.0/28]\n  serviceAllocation:\n    priority: 5\n    namespaces: [a, \
         b]\n    namespaceSelectors:\n    - matchLabels: {env: prod}\n    serviceSelectors:\n    - \
         matchExpressions:\n      - {key: tier, operator: In, values: [gold]}",
    );
    let c = ok(&text).config;
    let sa = c.address_pools[0].allocation.as_ref().unwrap();
    assert_eq!(sa.priority, 5);
    assert_eq!(sa.namespaces.len(), 2);
    assert_eq!(sa.namespace_selectors[0].match_labels["env"], "prod");
    assert_eq!(
        sa.service_selectors[0].match_expressions[0].values,
        ["gold"]
    );
}

/// The warnings about unknown fields, as (object, field); each names its object as the
/// subject the controller records it on.
fn unknown_fields(c: &Config) -> Vec<(String, String)> {
    c.warnings
        .iter()
        .filter(|w| w.kind == WarningKind::UnknownField)
        .map(|w| {
            let Some(Subject::Object { kind, name }) = &w.subject else {
                panic!("no object named: {w:?}");
            };
            assert_eq!(w.object, format!("{kind} {name:?}"));
            assert!(w.message.contains("unknown field"), "{w}");
            (w.object.clone(), w.field.clone())
        })
        .collect()
}

#[test]
fn an_unknown_advertisement_field_is_a_warning_and_the_known_ones_apply() {
    // A field a newer MetalLB might add (shaped like preferredNodeSelectors).
    let text = pool("lan", "  addresses: [192.0.2.0/28]")
        + &ad(
            "l2",
            "  ipAddressPools: [lan]\n  interfaces: [eth0]\n  nodeSelectors:\n  - matchLabels: \
             {rack: a}\n  nodeFailoverSelectors:\n  - weight: 50\n    preference:\n      \
             matchLabels: {zone: east}",
        );
    let c = ok(&text).config;
    let l2 = &c.l2_advertisements[0];
    assert_eq!(l2.pools, ["lan"]);
    assert_eq!(l2.interfaces, ["eth0"]);
    assert_eq!(l2.node_selectors[0].match_labels["rack"], "a");
    assert_eq!(c.address_pools[0].protocol, Protocol::Layer2);
    // Reported once, at the field itself: not once per key inside it.
    assert_eq!(
        unknown_fields(&c),
        [(
            "L2Advertisement \"l2\"".to_owned(),
            "spec.nodeFailoverSelectors".to_owned()
        )]
    );
    let shown = c.warnings[0].to_string();
    assert!(
        shown.contains("ignored") && shown.contains("ferrolb does not know it"),
        "{shown}"
    );
}

#[test]
fn an_unknown_pool_field_is_a_warning_naming_object_and_field() {
    // A misspelt key is reported too, and the spelling ferrolb knows keeps its default.
    let c = ok(&pool(
        "p",
        "  addresses: [192.0.2.0/28]\n  autoAsign: false\n  avoidBuggyIPs: true",
    ))
    .config;
    let p = &c.address_pools[0];
    assert!(p.auto_assign && p.avoid_buggy_ips);
    assert_eq!(p.addresses[0].to_string(), "192.0.2.0-192.0.2.15");
    assert_eq!(
        unknown_fields(&c),
        [(
            "IPAddressPool \"p\"".to_owned(),
            "spec.autoAsign".to_owned()
        )]
    );
}

#[test]
fn an_unknown_field_inside_a_selector_is_named_with_its_path() {
    let text = pool(
        "p",
        "  addresses: [192.0.2.0/28]\n  serviceAllocation:\n    serviceSelectors:\n    - \
         matchLabels: {tier: gold}\n    - matchExpressions:\n      - {key: app, operator: \
         Exists, valuez: [x]}\n      matchFields: {a: b}",
    );
    let c = ok(&text).config;
    let sa = c.address_pools[0].allocation.as_ref().unwrap();
    assert_eq!(sa.service_selectors.len(), 2);
    assert_eq!(sa.service_selectors[0].match_labels["tier"], "gold");
    assert_eq!(sa.service_selectors[1].match_expressions[0].key, "app");
    assert_eq!(
        unknown_fields(&c),
        [
            (
                "IPAddressPool \"p\"".to_owned(),
                "spec.serviceAllocation.serviceSelectors[1].matchExpressions[0].valuez".to_owned()
            ),
            (
                "IPAddressPool \"p\"".to_owned(),
                "spec.serviceAllocation.serviceSelectors[1].matchFields".to_owned()
            ),
        ]
    );
}

#[test]
fn what_the_api_server_writes_is_not_an_unknown_field() {
    // metadata and status are read for what a config needs only; the rest is not a finding.
    let text = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p, \
                uid: x, resourceVersion: \"7\", generation: 2, managedFields: [{manager: \
                kubectl}]}\nspec: {addresses: [192.0.2.0/28]}\nstatus: {assignedIPv4: 3}\n";
    assert_eq!(unknown_fields(&ok(text).config), []);
}

#[test]
fn a_wrong_type_of_a_known_field_still_refuses_the_object() {
    for (text, field) in [
        (
            pool("p", "  addresses: [192.0.2.0/28]\n  autoAssign: maybe"),
            "spec.autoAssign",
        ),
        (
            pool("p", "  addresses: [192.0.2.0/28]")
                + &ad(
                    "l2",
                    "  nodeSelectors:\n  - matchLabels: [a, b]\n  unknownToo: 1",
                ),
            "spec.nodeSelectors[0].matchLabels",
        ),
    ] {
        let err = parse_file(&text).unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains(field), "{shown}");
        assert_eq!(err.validation_errors()[0].rule, Rule::MalformedObject);
        assert_eq!(err.validation_errors()[0].field, field);
    }
}

#[test]
fn missing_addresses() {
    assert_eq!(
        errors(&pool("p", "  autoAssign: true")),
        [(
            "IPAddressPool \"p\"".into(),
            "spec.addresses".into(),
            Rule::MissingAddresses
        )]
    );
}

#[test]
fn invalid_addresses_each_name_their_entry() {
    let errs = errors(&pool(
        "p",
        "  addresses: [192.0.2.1, 192.0.2.9-192.0.2.1, 192.0.2.1-2001:db8::1, x-y]",
    ));
    let got: Vec<(&str, Rule)> = errs.iter().map(|e| (e.1.as_str(), e.2)).collect();
    assert_eq!(
        got,
        [
            ("spec.addresses[0]", Rule::InvalidCidr),
            ("spec.addresses[1]", Rule::RangeStartAfterEnd),
            ("spec.addresses[2]", Rule::MixedFamilyRange),
            ("spec.addresses[3]", Rule::InvalidRange),
        ]
    );
}

#[test]
fn overlap_within_a_pool() {
    let errs = errors(&pool(
        "p",
        "  addresses: [192.0.2.0/24, 192.0.2.10-192.0.2.20]",
    ));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].2, Rule::OverlappingAddresses);
}

#[test]
fn overlap_across_pools_names_both() {
    let text =
        pool("a", "  addresses: [192.0.2.0/24]") + &pool("b", "  addresses: [192.0.2.128/25]");
    let err = parse_file(&text).unwrap_err().to_string();
    assert!(
        err.contains("IPAddressPool \"b\"") && err.contains("IPAddressPool \"a\""),
        "{err}"
    );
}

#[test]
fn duplicate_namespaces_in_service_allocation() {
    let errs = errors(&pool(
        "p",
        "  addresses: [192.0.2.0/28]\n  serviceAllocation:\n    namespaces: [a, a]",
    ));
    assert_eq!(errs[0].1, "spec.serviceAllocation.namespaces[1]");
    assert_eq!(errs[0].2, Rule::DuplicateEntry);
}

#[test]
fn duplicate_selectors_in_service_allocation() {
    for field in ["namespaceSelectors", "serviceSelectors"] {
        let errs = errors(&pool(
            "p",
            &format!(
                "  addresses: [192.0.2.0/28]\n  serviceAllocation:\n    {field}:\n    - \
                 matchExpressions: [{{key: a, operator: In, values: [x, z]}}]\n    - \
                 matchExpressions: [{{key: a, operator: In, values: [z, x]}}]"
            ),
        ));
        assert_eq!(errs[0].1, format!("spec.serviceAllocation.{field}[1]"));
        assert_eq!(errs[0].2, Rule::DuplicateSelector);
    }
}

#[test]
fn invalid_selectors() {
    let errs = errors(&pool(
        "p",
        "  addresses: [192.0.2.0/28]\n  serviceAllocation:\n    serviceSelectors:\n    - \
         matchLabels: {\"bad key!\": x}\n    - matchExpressions: [{key: a, operator: In}]\n    - \
         matchExpressions: [{key: a, operator: Maybe}]\n    - matchExpressions: [{key: a, \
         operator: In, values: [x, x]}]",
    ));
    assert_eq!(errs.len(), 4, "{errs:?}");
    assert!(errs.iter().all(|e| e.2 == Rule::InvalidNodeSelector));
    assert_eq!(
        errs[1].1,
        "spec.serviceAllocation.serviceSelectors[1].matchExpressions[0].values"
    );
}

#[test]
fn advertisement_fields_are_read() {
    let text = pool("lan", "  addresses: [192.0.2.0/28]")
        + &pool("dmz", "  addresses: [198.51.100.0/28]")
        + &ad(
            "l2",
            "  ipAddressPools: [lan]\n  nodeSelectors:\n  - matchLabels: {rack: r1}\n  \
             interfaces: [eth0, eth0, eth1]\n  serviceSelectors:\n  - matchLabels: {expose: lan}",
        );
    let c = ok(&text).config;
    let ad = &c.l2_advertisements[0];
    assert_eq!(ad.interfaces, ["eth0", "eth1"]);
    let lan = c.pool("lan").unwrap();
    let dmz = c.pool("dmz").unwrap();
    assert_eq!(c.l2_advertisements_for(lan).len(), 1);
    assert!(c.l2_advertisements_for(dmz).is_empty());
    let rack = |r: &str| BTreeMap::from([("rack".to_owned(), r.to_owned())]);
    assert!(ad.selects_node(&rack("r1")) && !ad.selects_node(&rack("r2")));
    assert!(!ad.selects_service(&Labels::new()));
}

#[test]
fn advertisement_pool_selectors_and_the_empty_advertisement() {
    let text = "---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: \
                lan\n  labels: {zone: a}\nspec:\n  addresses: [192.0.2.0/28]\n"
        .to_owned()
        + &pool("dmz", "  addresses: [198.51.100.0/28]")
        + &ad(
            "by-label",
            "  ipAddressPoolSelectors:\n  - matchLabels: {zone: a}",
        )
        + "---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata:\n  name: all\n";
    let c = ok(&text).config;
    let names = |p: &str| -> Vec<String> {
        c.l2_advertisements_for(c.pool(p).unwrap())
            .iter()
            .map(|a| a.name.clone())
            .collect()
    };
    assert_eq!(names("lan"), ["all", "by-label"]);
    assert_eq!(names("dmz"), ["all"]);
}

#[test]
fn duplicates_in_advertisement_lists() {
    let errs = errors(&ad(
        "l2",
        "  ipAddressPools: [a, a]\n  nodeSelectors:\n  - matchLabels: {x: one}\n  - matchLabels: \
         {x: one}",
    ));
    let got: Vec<(&str, Rule)> = errs.iter().map(|e| (e.1.as_str(), e.2)).collect();
    assert_eq!(
        got,
        [
            ("spec.ipAddressPools[1]", Rule::DuplicateEntry),
            ("spec.nodeSelectors[1]", Rule::DuplicateSelector),
        ]
    );
}

#[test]
fn advertisement_naming_a_missing_pool_is_only_a_warning() {
    let text =
        pool("lan", "  addresses: [192.0.2.0/28]") + &ad("l2", "  ipAddressPools: [lan, gone]");
    let c = ok(&text).config;
    let w: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        [
            "L2Advertisement \"l2\", field spec.ipAddressPools[1]: pool \"gone\" does not exist; \
          nothing is announced for it"
        ]
    );
}

#[test]
fn unsupported_kinds_and_versions_are_errors() {
    let errs = errors(
        "apiVersion: metallb.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: p}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n",
    );
    assert_eq!(errs.len(), 2);
    assert!(errs.iter().all(|e| e.2 == Rule::UnsupportedKind));
}

#[test]
fn object_names_must_be_valid_and_unique() {
    let text = pool("p", "  addresses: [192.0.2.0/28]")
        + &pool("p", "  addresses: [198.51.100.0/28]")
        + &pool("Bad_Name", "  addresses: [203.0.113.0/28]");
    let got: Vec<Rule> = errors(&text).into_iter().map(|e| e.2).collect();
    assert_eq!(got, [Rule::DuplicateObject, Rule::InvalidObjectName]);
}

#[test]
fn namespace_objects_feed_namespace_labels() {
    let text = pool("p", "  addresses: [192.0.2.0/28]")
        + "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {env: prod}\n";
    let file = ok(&text);
    assert_eq!(file.namespaces["shop"]["env"], "prod");
}

#[test]
fn objects_of_another_namespace_are_left_out_when_asked() {
    let docs: Vec<Value> = decode_documents::<Value>(&pool("p", "  addresses: [192.0.2.0/28]"))
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    let file = from_objects(docs, Some("ferrolb")).unwrap();
    assert!(file.config.address_pools.is_empty());
    assert_eq!(file.config.warnings[0].field, "metadata.namespace");
}

#[test]
fn legacy_config_map_is_detected_and_gives_the_same_model() {
    let legacy = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config}\ndata:\n  config: |\n    \
                  address-pools:\n    - name: lan\n      protocol: layer2\n      addresses: \
                  [192.0.2.0/28]\n    - name: up\n      protocol: bgp\n      addresses: \
                  [198.51.100.0/28]\n";
    let file = ok(legacy);
    assert_eq!(file.config, crate::config::parse(legacy).unwrap());
    let c = file.config;
    assert_eq!(c.source, Source::ConfigMap);
    // layer2 pool = pool + an advertisement of it everywhere; bgp pool = no layer-2 advertisement.
    assert_eq!(c.l2_advertisements.len(), 1);
    let ad = &c.l2_advertisements[0];
    assert_eq!(ad.pools, ["lan"]);
    assert!(ad.node_selectors.is_empty() && ad.all_interfaces());
    assert!(c.l2_advertisements_for(c.pool("up").unwrap()).is_empty());
    // A bare config still works, with its line-numbered errors.
    assert!(
        parse_file("address-pools:\n- name: x\n  protocol: layer2\n  addresses: [bad]\n").is_err()
    );
}

#[test]
fn mixing_sources_is_refused() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config}\ndata: {config: \"\"}\n"
        .to_owned()
        + &pool("p", "  addresses: [192.0.2.0/28]");
    assert!(matches!(parse_file(&text), Err(ConfigError::Manifest(m)) if m.contains("one source")));
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let big = "#".repeat(crate::config::MAX_INPUT_BYTES + 1);
    assert!(matches!(
        parse_file(&big),
        Err(ConfigError::TooLarge { .. })
    ));
}

#[test]
fn preferred_node_selectors_are_read_with_metallbs_bounds() {
    let text = pool("lan", "  addresses: [192.0.2.0/28]")
        + &ad(
            "l2",
            "  preferredNodeSelectors:\n  - weight: 50\n    preference:\n      matchLabels: \
             {zone: east}\n  - weight: 100\n    preference: {matchExpressions: [{key: ssd, \
             operator: Exists}]}",
        );
    let c = ok(&text).config;
    assert!(unknown_fields(&c).is_empty());
    let preferred = &c.l2_advertisements[0].preferred;
    assert_eq!(preferred.len(), 2);
    assert_eq!(preferred[0].weight, 50);
    assert_eq!(preferred[0].preference.match_labels["zone"], "east");
    let east: Labels = [("zone".to_owned(), "east".to_owned())].into();
    let both: Labels = [
        ("zone".to_owned(), "east".to_owned()),
        ("ssd".to_owned(), String::new()),
    ]
    .into();
    assert_eq!(c.l2_advertisements[0].preference_score(&east), 50);
    assert_eq!(c.l2_advertisements[0].preference_score(&both), 150);
    assert_eq!(c.l2_advertisements[0].preference_score(&Labels::new()), 0);

    let bad = pool("lan", "  addresses: [192.0.2.0/28]")
        + &ad(
            "l2",
            "  preferredNodeSelectors:\n  - weight: 0\n    preference: {}\n  - weight: 101\n    \
             preference: {}\n  - preference: {}\n  - weight: 5",
        );
    let found = errors(&bad);
    let fields: Vec<&str> = found.iter().map(|(_, f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.preferredNodeSelectors[0].weight",
            "spec.preferredNodeSelectors[1].weight",
            "spec.preferredNodeSelectors[2].weight",
            "spec.preferredNodeSelectors[3].preference",
        ]
    );
    assert!(found.iter().all(|(_, _, r)| *r == Rule::InvalidPreference));
}
