//! What the chart tells people: the README lists every value, and NOTES.txt says what to apply
//! next, with an example the binary accepts.

use std::process::Command;

use serde_json::Value;

use crate::support::*;

/// Values that are Kubernetes objects or maps of the user's keys, documented as a whole.
const FREE_FORM: &[&str] = &[
    "resources",
    "labels",
    "nodeSelector",
    "podSecurityContext",
    "securityContext",
    "strategy",
    "updateStrategy",
];

/// Leaf paths of values.yaml. Maps are walked into, except free-form ones whose keys are the
/// user's (resources, alert labels), which the README documents as a whole.
fn value_paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    for (key, child) in value.as_object().unwrap() {
        let path = format!("{prefix}{key}");
        match child.as_object() {
            Some(map) if !map.is_empty() && !FREE_FORM.contains(&key.as_str()) => {
                value_paths(child, &format!("{path}."), out)
            }
            _ => out.push(path),
        }
    }
}

#[test]
fn chart_readme_lists_every_value() {
    let values: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap())
            .unwrap();
    let readme = std::fs::read_to_string(chart_dir().join("README.md")).unwrap();
    let mut paths = Vec::new();
    value_paths(&values, "", &mut paths);
    assert!(paths.len() > 50, "values.yaml walked: {paths:?}");
    let missing: Vec<_> = paths
        .iter()
        .filter(|p| !readme.contains(&format!("| `{p}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "charts/ferrolb/README.md lacks rows for {missing:?}"
    );
}

pub fn notes(helm: &std::path::Path, values: Option<&str>) -> String {
    let mut cmd = Command::new(helm);
    cmd.args(["install", RELEASE]).arg(chart_dir()).args([
        "--dry-run=client",
        "--namespace",
        NAMESPACE,
    ]);
    if let Some(v) = values {
        cmd.arg("--values").arg(values_dir().join(v));
    }
    let out = run(&mut cmd);
    assert!(
        out.status.success(),
        "helm install --dry-run=client: {}",
        stderr(&out)
    );
    let text = stdout(&out);
    text.split_once("NOTES:")
        .expect("helm prints NOTES")
        .1
        .to_string()
}

/// The text between `<<'YAML'` and `YAML` in the notes, unindented.
fn pasted_example(notes: &str) -> String {
    notes
        .lines()
        .skip_while(|l| !l.contains("<<'YAML'"))
        .skip(1)
        .take_while(|l| l.trim() != "YAML")
        .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
        .collect()
}

#[test]
fn notes_tell_what_to_apply_next_with_an_example_the_binary_accepts() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let default = notes(&helm, None);
    assert!(default.contains("NEXT STEP"), "{default}");
    assert!(default.contains("strictARP"), "{default}");
    // The example objects in the notes (the default source is the custom resources), as the
    // user would paste them.
    let example = pasted_example(&default);
    assert!(example.contains("kind: IPAddressPool"), "{example}");
    assert!(example.contains("kind: L2Advertisement"), "{example}");
    assert!(
        example.contains(&format!("namespace: {NAMESPACE}")),
        "{example}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes-example.yaml");
    std::fs::write(&file, &example).unwrap();
    let out = run(Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .arg("check-config")
        .arg(&file));
    assert!(
        out.status.success(),
        "check-config rejects the NOTES example:\n{}",
        stderr(&out)
    );

    let existing = notes(&helm, Some("existing-configmap.yaml"));
    assert!(!existing.contains("IPAddressPool"), "{existing}");
    assert!(existing.contains("\"my-lb-config\""), "{existing}");
    let inline = notes(&helm, Some("inline-config.yaml"));
    assert!(
        !inline.contains("NEXT STEP"),
        "configInline needs no further step:\n{inline}"
    );
    let class = notes(&helm, Some("custom-class.yaml"));
    assert!(
        class.contains("spec.loadBalancerClass: ferrolb.io/layer2"),
        "{class}"
    );
}

/// Relative links in the user guide, the chart README and the top README point at real files.
#[test]
fn documentation_links_resolve() {
    for doc in [
        "README.md",
        "docs/user-guide.md",
        "charts/ferrolb/README.md",
    ] {
        let path = repo_root().join(doc);
        let text = std::fs::read_to_string(&path).unwrap();
        let base = path.parent().unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let target = &rest[..rest.find(')').unwrap()];
            if target.starts_with("http") || target.starts_with('#') {
                continue;
            }
            let file = target.split('#').next().unwrap();
            assert!(
                base.join(file).exists(),
                "{doc}: link to {target} is broken"
            );
        }
    }
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    assert!(
        readme.contains("(docs/user-guide.md)"),
        "README.md links the user guide"
    );
}

/// Every flag of `ferrolb controller` and `ferrolb speaker` is in the user guide's flag table, and
/// every value the chart adds for real clusters is explained in the user guide too.
#[test]
fn user_guide_documents_every_flag_and_the_cluster_values() {
    let guide = std::fs::read_to_string(repo_root().join("docs/user-guide.md")).unwrap();
    let table = guide
        .split("## Command-line flags")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a Command-line flags section");
    for component in ["controller", "speaker"] {
        let out = run_ok(
            Command::new(env!("CARGO_BIN_EXE_ferrolb")).args([component, "--help"]),
            format!("ferrolb {component} --help"),
        );
        let help = stdout(&out);
        let flags: Vec<&str> = help
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("--"))
            .map(|l| l.split([' ', '=', '<']).next().unwrap_or(""))
            .filter(|f| !f.is_empty() && *f != "help")
            .collect();
        assert!(flags.len() >= 8, "{component}: {flags:?}");
        for flag in flags {
            assert!(
                table.contains(&format!("`--{flag}")) || table.contains(&format!(", `--{flag}`")),
                "docs/user-guide.md's flag table lacks {component} --{flag}"
            );
        }
    }
    for value in [
        "namespace.podSecurityLabels",
        "metrics.metallbNames",
        "grafanaDashboard.enabled",
        "speaker.metrics.bindHostIP",
        "speaker.priorityClassName",
        "prometheus.skipCRDCheck",
        "FerrolbConfigNotLoaded",
        "FerrolbGossipSplit",
        "FerrolbServiceIPNotAnnounced",
        "FerrolbSpeakerNotCandidate",
        "FerrolbAnswersNotHeard",
        "FerrolbBGPSessionDown",
        "servicebgpstatuses",
        "privileged",
    ] {
        assert!(
            guide.contains(value),
            "docs/user-guide.md never mentions {value}"
        );
    }
}
