//! Release automation, checked as far as it runs without a registry: the tag workflow calls only
//! scripts that exist, the version and image-name check agrees for this commit and refuses a
//! mismatch, `helm package` makes the chart archive the workflow pushes, and LICENSE is the
//! license Cargo.toml names.

use std::process::Command;

use serde_json::Value;

use crate::support::{chart_dir, repo_root, require_tool, run, run_ok, stderr};

fn workflow() -> Value {
    let text = std::fs::read_to_string(repo_root().join(".github/workflows/release.yml")).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

/// Every `run:` of the release job, in order.
fn run_steps(workflow: &Value) -> Vec<String> {
    workflow["jobs"]["release"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn release_workflow_runs_on_version_tags_and_only_calls_scripts_that_exist() {
    let wf = workflow();
    assert_eq!(wf["on"]["push"]["tags"], serde_json::json!(["v*"]));
    assert_eq!(wf["permissions"]["id-token"], "write", "cosign keyless");
    assert_eq!(wf["permissions"]["packages"], "write", "ghcr.io push");
    let steps = run_steps(&wf);
    let all = steps.join("\n");
    let mut scripts = Vec::new();
    for word in all.split(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
        if let Some(path) = word.strip_prefix("scripts/") {
            scripts.push(format!("scripts/{path}"));
        }
    }
    for script in &scripts {
        let file = repo_root().join(script);
        assert!(
            file.is_file(),
            "the workflow calls {script}, which does not exist"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = file.metadata().unwrap().permissions().mode();
            assert!(mode & 0o111 != 0, "{script} is not executable");
        }
    }
    // The steps in the order that matters: nothing is pushed before the checks pass, and what is
    // signed is what was pushed.
    let order = [
        "scripts/release-check.sh",
        "scripts/image.sh out/image",
        "scripts/check_image.py out/image",
        "skopeo copy --all --preserve-digests \"oci:out/image:$VERSION\" \"docker://$IMAGE:$VERSION\"",
        "cosign sign --yes \"$IMAGE@$DIGEST\"",
        "scripts/sbom.sh out/sbom",
        "cosign attest --yes --type cyclonedx",
        "helm package charts/ferrolb --version \"$VERSION\" --app-version \"$VERSION\"",
        "helm push",
    ];
    let mut at = 0;
    for needle in order {
        let found = all[at..]
            .find(needle)
            .unwrap_or_else(|| panic!("`{needle}` missing or out of order in the release steps"));
        at += found + needle.len();
    }
    assert!(
        all.contains("IMAGE=$REGISTRY/$owner/ferrolb")
            && wf["jobs"]["release"]["env"]["REGISTRY"] == "ghcr.io",
        "pushes to ghcr.io/<owner>/ferrolb"
    );
}

#[test]
fn release_check_agrees_for_this_commit_and_refuses_mismatches() {
    let script = repo_root().join("scripts/release-check.sh");
    let tag = format!("v{}", env!("CARGO_PKG_VERSION"));
    run_ok(
        Command::new("bash")
            .arg(&script)
            .args([tag.as_str(), "ferrolb"]),
        "release-check for this version",
    );
    let out = run(Command::new("bash")
        .arg(&script)
        .args(["v999.0.0", "ferrolb"]));
    assert!(
        !out.status.success(),
        "a tag that is not the crate version is refused"
    );
    assert!(
        stderr(&out).contains("tag v999.0.0 is not"),
        "{}",
        stderr(&out)
    );
    // A fork pushing to its own registry would publish a chart pointing at someone else's image.
    let out = run(Command::new("bash")
        .arg(&script)
        .args([tag.as_str(), "SomeFork"]));
    assert!(!out.status.success(), "another owner's registry is refused");
    assert!(
        stderr(&out).contains("ghcr.io/somefork/ferrolb"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn chart_default_image_is_what_the_release_pushes() {
    let text = std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap();
    let values: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(values["image"]["repository"], "ghcr.io/ferrolb/ferrolb");
    assert_eq!(values["image"]["tag"], "", "empty: the chart's appVersion");
}

#[test]
fn helm_package_makes_the_archive_the_release_pushes() {
    let Some(helm) = require_tool("helm") else {
        return;
    };
    let version = env!("CARGO_PKG_VERSION");
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        Command::new(&helm)
            .arg("package")
            .arg(chart_dir())
            .args(["--version", version, "--app-version", version, "-d"])
            .arg(dir.path()),
        "helm package",
    );
    let archive = dir.path().join(format!("ferrolb-{version}.tgz"));
    assert!(
        archive.is_file(),
        "helm package wrote {}",
        archive.display()
    );
    run_ok(
        Command::new("tar")
            .arg("-xzf")
            .arg(&archive)
            .arg("-C")
            .arg(dir.path()),
        "unpacking the chart",
    );
    let text = std::fs::read_to_string(dir.path().join("ferrolb/Chart.yaml")).unwrap();
    let chart: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(chart["version"], version);
    assert_eq!(chart["appVersion"], version);
    assert!(dir.path().join("ferrolb/values.schema.json").is_file());
}

/// The SBOM the release attaches: CycloneDX JSON naming ferrolb at the crate's version and every
/// locked dependency with a package URL.
#[test]
fn sbom_names_ferrolb_and_its_locked_dependencies() {
    if require_tool("cargo-cyclonedx").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("bash")
            .arg(repo_root().join("scripts/sbom.sh"))
            .arg(dir.path()),
        "scripts/sbom.sh",
    );
    let text = std::fs::read_to_string(dir.path().join("ferrolb.cdx.json")).unwrap();
    let bom: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(bom["specVersion"], "1.5");
    let me = &bom["metadata"]["component"];
    assert_eq!(me["name"], "ferrolb");
    assert_eq!(me["version"], env!("CARGO_PKG_VERSION"));
    let components = bom["components"].as_array().unwrap();
    let names: Vec<&str> = components
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for dependency in ["kube", "tokio", "foca", "rustls"] {
        assert!(names.contains(&dependency), "{dependency} in the SBOM");
    }
    assert!(
        components.iter().all(|c| c["purl"]
            .as_str()
            .is_some_and(|p| p.starts_with("pkg:cargo/"))),
        "every component has a cargo package URL"
    );
}

#[test]
fn license_is_the_apache_2_text_cargo_toml_names() {
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    assert!(manifest.contains("\nlicense = \"Apache-2.0\"\n"));
    let license = std::fs::read_to_string(repo_root().join("LICENSE")).unwrap();
    let words: Vec<&str> = license.split_whitespace().collect();
    assert_eq!(
        &words[..5],
        ["Apache", "License", "Version", "2.0,", "January"]
    );
    for section in [
        "1. Definitions.",
        "2. Grant of Copyright License.",
        "3. Grant of Patent License.",
        "4. Redistribution.",
        "5. Submission of Contributions.",
        "6. Trademarks.",
        "7. Disclaimer of Warranty.",
        "8. Limitation of Liability.",
        "9. Accepting Warranty or Additional Liability.",
        "END OF TERMS AND CONDITIONS",
        "APPENDIX: How to apply the Apache License to your work.",
    ] {
        assert!(license.contains(section), "LICENSE lacks `{section}`");
    }
}
