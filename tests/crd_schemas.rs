//! The chart's CustomResourceDefinitions (charts/ferrolb/crds/), checked without a cluster: every
//! kind ferrolb reads or writes is there with MetalLB's names, every served version has a schema,
//! the example objects in config/ validate against those schemas (types, required fields, enums,
//! bounds, no unknown fields), and every spec field a schema declares is one the config parser
//! reads. The CEL rules need an API server: tests/e2e_crd_schemas.rs applies them to a real one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// Every CRD in the chart, by kind.
fn crds() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(repo().join("charts/ferrolb/crds")).unwrap() {
        let path = entry.unwrap().path();
        for doc in documents(&path) {
            assert_eq!(doc["kind"], "CustomResourceDefinition", "{path:?}");
            let kind = doc["spec"]["names"]["kind"].as_str().unwrap().to_owned();
            assert!(out.insert(kind.clone(), doc).is_none(), "{kind} twice");
        }
    }
    out
}

fn schema_for<'a>(crds: &'a BTreeMap<String, Value>, kind: &str, version: &str) -> &'a Value {
    let crd = crds
        .get(kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"));
    let v = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == version)
        .unwrap_or_else(|| panic!("{kind} has no version {version}"));
    assert_eq!(v["served"], true, "{kind} {version} is not served");
    &v["schema"]["openAPIV3Schema"]
}

/// Structural validation as the API server does it before CEL: type, required, enum, bounds,
/// list uniqueness, and unknown fields (which `kubectl apply` refuses by default).
fn validate(value: &Value, schema: &Value, path: &str, errors: &mut Vec<String>) {
    let mut err = |m: String| errors.push(format!("{path}: {m}"));
    let ty = schema["type"].as_str().unwrap_or("");
    let type_ok = match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        "" => true,
        other => panic!("{path}: schema type {other} not handled"),
    };
    if !type_ok {
        return err(format!("{value} is not of type {ty}"));
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        err(format!("{value} is not one of {allowed:?}"));
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if schema["maxLength"].as_u64().is_some_and(|m| len > m) {
            err(format!("longer than {}", schema["maxLength"]));
        }
        if schema["minLength"].as_u64().is_some_and(|m| len < m) {
            err(format!("shorter than {}", schema["minLength"]));
        }
    }
    if let Some(n) = value.as_i64() {
        if schema["minimum"].as_i64().is_some_and(|m| n < m) {
            err(format!("{n} is below {}", schema["minimum"]));
        }
        if schema["maximum"].as_i64().is_some_and(|m| n > m) {
            err(format!("{n} is above {}", schema["maximum"]));
        }
    }
    if let Some(items) = value.as_array() {
        let n = items.len() as u64;
        if schema["maxItems"].as_u64().is_some_and(|m| n > m) {
            err(format!("more than {} items", schema["maxItems"]));
        }
        if schema["minItems"].as_u64().is_some_and(|m| n < m) {
            err(format!("fewer than {} items", schema["minItems"]));
        }
        if schema["x-kubernetes-list-type"] == "set" {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    err(format!("duplicate value {item}"));
                }
            }
        }
        for (i, item) in items.iter().enumerate() {
            validate(item, &schema["items"], &format!("{path}[{i}]"), errors);
        }
        return;
    }
    let Some(fields) = value.as_object() else {
        return;
    };
    for required in schema["required"].as_array().into_iter().flatten() {
        if !fields.contains_key(required.as_str().unwrap()) {
            errors.push(format!("{path}: missing required field {required}"));
        }
    }
    for (name, field) in fields {
        let child = format!("{path}.{name}");
        if path.is_empty() && name == "metadata" {
            // ObjectMeta is the API server's own schema.
            continue;
        }
        if let Some(s) = schema["properties"].get(name) {
            validate(field, s, &child, errors);
        } else if let Some(s) = schema.get("additionalProperties") {
            validate(field, s, &child, errors);
        } else {
            errors.push(format!("{child}: unknown field"));
        }
    }
}

fn object_errors(crds: &BTreeMap<String, Value>, object: &Value) -> Vec<String> {
    let (group, version) = object["apiVersion"]
        .as_str()
        .unwrap()
        .split_once('/')
        .unwrap();
    assert_eq!(group, "metallb.io");
    let schema = schema_for(crds, object["kind"].as_str().unwrap(), version);
    let mut errors = Vec::new();
    validate(object, schema, "", &mut errors);
    errors
}

#[test]
fn every_kind_ferrolb_reads_or_writes_has_a_crd_with_metallbs_names_and_a_schema_per_version() {
    let crds = crds();
    let expected = [
        (
            "IPAddressPool",
            "ipaddresspools",
            &["v1beta1"][..],
            "v1beta1",
        ),
        (
            "L2Advertisement",
            "l2advertisements",
            &["v1beta1"],
            "v1beta1",
        ),
        ("BGPPeer", "bgppeers", &["v1beta1", "v1beta2"], "v1beta2"),
        (
            "BGPAdvertisement",
            "bgpadvertisements",
            &["v1beta1"],
            "v1beta1",
        ),
        ("BFDProfile", "bfdprofiles", &["v1beta1"], "v1beta1"),
        ("Community", "communities", &["v1beta1"], "v1beta1"),
        (
            "ServiceL2Status",
            "servicel2statuses",
            &["v1beta1"],
            "v1beta1",
        ),
        (
            "ServiceBGPStatus",
            "servicebgpstatuses",
            &["v1beta1"],
            "v1beta1",
        ),
        (
            "ConfigurationState",
            "configurationstates",
            &["v1beta1"],
            "v1beta1",
        ),
    ];
    assert_eq!(
        crds.keys().collect::<Vec<_>>(),
        expected
            .iter()
            .map(|e| e.0)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    for (kind, plural, versions, storage) in expected {
        let crd = &crds[kind];
        assert_eq!(crd["metadata"]["name"], format!("{plural}.metallb.io"));
        assert_eq!(crd["spec"]["group"], "metallb.io");
        assert_eq!(crd["spec"]["names"]["plural"], plural);
        assert_eq!(crd["spec"]["scope"], "Namespaced", "{kind}");
        let listed: Vec<&str> = crd["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(listed, versions, "{kind}");
        let storages: Vec<&str> = crd["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["storage"] == true)
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(storages, [storage], "{kind}: one storage version");
        for v in versions {
            let schema = schema_for(&crds, kind, v);
            assert_eq!(schema["type"], "object", "{kind} {v}");
            assert_eq!(schema["properties"]["spec"]["type"], "object", "{kind} {v}");
            let has_columns = crd["spec"]["versions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["name"] == *v && x["additionalPrinterColumns"].is_array());
            assert!(has_columns, "{kind} {v} has printer columns");
        }
        // A status the controller writes is a subresource, so spec writers cannot clobber it.
        let status_props = schema_for(&crds, kind, storage)["properties"]["status"]["properties"]
            .as_object()
            .is_some_and(|p| !p.is_empty());
        let subresource = crd["spec"]["versions"][0]["subresources"]["status"].is_object();
        assert_eq!(status_props, subresource, "{kind}: status subresource");
    }
    // MetalLB's conversion webhook goes away with MetalLB; both versions have the same fields.
    assert_eq!(
        crds["BGPPeer"]["spec"]["conversion"],
        json!({"strategy": "None"})
    );
    assert_eq!(
        schema_for(&crds, "BGPPeer", "v1beta1")["properties"]["spec"],
        schema_for(&crds, "BGPPeer", "v1beta2")["properties"]["spec"]
    );
}

#[test]
fn the_example_objects_validate_against_the_schemas() {
    let crds = crds();
    let mut checked = 0;
    for doc in documents(&repo().join("config/crds-example.yaml")) {
        if doc["kind"] == "Namespace" {
            continue;
        }
        let errors = object_errors(&crds, &doc);
        assert!(errors.is_empty(), "{}: {errors:?}", doc["metadata"]["name"]);
        checked += 1;
    }
    assert_eq!(checked, 6, "four pools and two advertisements");
}

#[test]
fn the_validator_refuses_what_the_api_server_refuses() {
    let crds = crds();
    let docs = documents(&repo().join("config/crds-example.yaml"));
    let gold = docs
        .iter()
        .find(|d| d["metadata"]["name"] == "gold")
        .unwrap();
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut pool = gold.clone();
        edit(&mut pool);
        object_errors(&crds, &pool)
    };
    assert_eq!(
        broken(&|p| p["spec"]["autoAsign"] = json!(false)),
        [".spec.autoAsign: unknown field"]
    );
    assert_eq!(
        broken(&|p| p["spec"]["autoAssign"] = json!("yes")),
        [".spec.autoAssign: \"yes\" is not of type boolean"]
    );
    assert_eq!(
        broken(&|p| {
            p["spec"].as_object_mut().unwrap().remove("addresses");
        }),
        [".spec: missing required field \"addresses\""]
    );
    assert_eq!(
        broken(&|p| p["spec"]["serviceAllocation"]["namespaces"] = json!(["a", "a"])),
        [".spec.serviceAllocation.namespaces: duplicate value \"a\""]
    );
    assert_eq!(
        broken(
            &|p| p["spec"]["serviceAllocation"]["serviceSelectors"][0]["matchExpressions"][0]["operator"] =
                json!("Within")
        ),
        [
            ".spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].operator: \"Within\" \
             is not one of [String(\"In\"), String(\"NotIn\"), String(\"Exists\"), \
             String(\"DoesNotExist\")]"
        ]
    );
}

/// A value of the schema's type, for probing the parser with each declared field.
fn sample(schema: &Value) -> Value {
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    match schema["type"].as_str().unwrap() {
        "string" => json!("x"),
        "integer" => json!(1),
        "boolean" => json!(true),
        "array" => json!([]),
        _ => json!({}),
    }
}

fn parser_report(object: &Value) -> String {
    match ferrolb::config::parse_file(&serde_json::to_string(object).unwrap()) {
        Ok(file) => format!("{:?}", file.config.warnings),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_spec_field_a_schema_declares_is_read_by_the_config_parser() {
    let crds = crds();
    // The probe can fail: a field the parser does not know is reported as such.
    let made_up = json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
        "metadata": {"name": "probe", "namespace": "metallb-system"},
        "spec": {"notAField": true},
    });
    assert!(
        parser_report(&made_up).contains("unknown field"),
        "{}",
        parser_report(&made_up)
    );
    for kind in [
        "IPAddressPool",
        "L2Advertisement",
        "BGPPeer",
        "BGPAdvertisement",
        "BFDProfile",
        "Community",
    ] {
        let version = if kind == "BGPPeer" {
            "v1beta2"
        } else {
            "v1beta1"
        };
        let spec = &schema_for(&crds, kind, version)["properties"]["spec"]["properties"];
        for (field, schema) in spec.as_object().unwrap() {
            // A valid object without the field: one the parser did not know would leave it
            // valid, with an unknown-field warning, so a refusal below is about the value.
            let mut object = json!({
                "apiVersion": format!("metallb.io/{version}"),
                "kind": kind,
                "metadata": {"name": "probe", "namespace": "metallb-system"},
                "spec": match kind {
                    "IPAddressPool" => json!({"addresses": ["192.0.2.0/24"]}),
                    "BGPPeer" => json!({"myASN": 64500, "peerASN": 64501, "peerAddress": "192.0.2.1"}),
                    _ => json!({}),
                },
            });
            assert!(
                ferrolb::config::parse_file(&object.to_string()).is_ok(),
                "{kind}: the probe's base is valid"
            );
            object["spec"][field] = sample(schema);
            // Only unknown fields matter here: other findings (an empty list, a field ferrolb
            // does not implement) are about the probe's sample value.
            let report = parser_report(&object);
            assert!(
                !report.contains("unknown field"),
                "{kind}.spec.{field} is in the schema but the parser refuses it: {report}"
            );
        }
    }
}

/// The two per-Service status kinds speakers write: the node and Service fields MetalLB's
/// tooling reads, each immutable once written, the printer columns `kubectl get` shows, and the
/// list each kind holds (`interfaces` of objects, `peers` of names).
#[test]
fn the_status_kinds_keep_metallbs_fields_rules_and_columns() {
    let crds = crds();
    for (kind, list, item_type, node_column) in [
        ("ServiceL2Status", "interfaces", "object", "Allocated Node"),
        ("ServiceBGPStatus", "peers", "string", "Node"),
    ] {
        let status = &schema_for(&crds, kind, "v1beta1")["properties"]["status"];
        let fields: std::collections::BTreeSet<&str> = status["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            fields,
            [list, "node", "serviceName", "serviceNamespace"].into(),
            "{kind}"
        );
        for field in ["node", "serviceName", "serviceNamespace"] {
            assert_eq!(
                status["properties"][field]["x-kubernetes-validations"],
                json!([{"rule": "self == oldSelf", "message": "Value is immutable"}]),
                "{kind}.status.{field}"
            );
        }
        assert_eq!(status["properties"][list]["type"], "array", "{kind}");
        assert_eq!(
            status["properties"][list]["items"]["type"], item_type,
            "{kind}"
        );
        let columns: Vec<(&str, &str)> =
            crds[kind]["spec"]["versions"][0]["additionalPrinterColumns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (c["name"].as_str().unwrap(), c["jsonPath"].as_str().unwrap()))
                .collect();
        assert_eq!(
            columns[..3],
            [
                (node_column, ".status.node"),
                ("Service Name", ".status.serviceName"),
                ("Service Namespace", ".status.serviceNamespace"),
            ],
            "{kind}"
        );
        let written = json!({
            "apiVersion": "metallb.io/v1beta1", "kind": kind,
            "metadata": {"name": "x", "namespace": "metallb-system"},
            "spec": {},
            "status": {"node": "n1", "serviceName": "web", "serviceNamespace": "apps",
                       list: if item_type == "string" { json!(["tor-a"]) }
                             else { json!([{"name": "eth0"}]) }},
        });
        assert_eq!(
            object_errors(&crds, &written),
            Vec::<String>::new(),
            "{kind}"
        );
        // A dump of the namespace (`kubectl get -o yaml`) may hold them: not config.
        let report = parser_report(&written);
        assert!(
            !report.contains(kind) && !report.contains("unknown"),
            "{kind}: {report}"
        );
    }
}
