//! The container image recipe: hadolint-clean, a pinned builder cross-building with scripts/image.sh
//! for any TARGETPLATFORM, a minimal non-root final image, and a build context without the target
//! folder but with scripts/.

use std::process::Command;

use crate::support::{repo_root, require_tool, run_ok};

fn dockerfile() -> String {
    std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap()
}

#[test]
fn hadolint_finds_nothing_in_the_dockerfile() {
    let Some(hadolint) = require_tool("hadolint") else {
        return;
    };
    run_ok(
        Command::new(hadolint).arg(repo_root().join("Dockerfile")),
        "hadolint Dockerfile",
    );
}

/// `FROM` lines as (image, tag) pairs.
fn stages(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("FROM "))
        .map(|rest| {
            let image = rest
                .split_whitespace()
                .find(|word| !word.starts_with("--"))
                .unwrap();
            let (name, tag) = image.rsplit_once(':').unwrap_or((image, ""));
            (name.to_string(), tag.to_string())
        })
        .collect()
}

#[test]
fn builder_is_pinned_and_not_older_than_the_crates_rust_version() {
    let text = dockerfile();
    let stages = stages(&text);
    assert_eq!(stages.len(), 2, "a builder and a runtime stage: {stages:?}");
    let (image, tag) = &stages[0];
    assert_eq!(image, "rust");
    // e.g. 1.95.0-bookworm: an exact release, not a moving `1` or `latest`.
    let version = tag.split('-').next().unwrap();
    let parts: Vec<u32> = version
        .split('.')
        .map(|p| p.parse().expect("numeric Rust version"))
        .collect();
    assert_eq!(parts.len(), 3, "builder tag {tag} pins major.minor.patch");
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let msrv = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("Cargo.toml rust-version");
    let msrv: Vec<u32> = msrv.split('.').map(|p| p.parse().unwrap()).collect();
    assert!(
        parts[..2] >= msrv[..2],
        "builder {tag} older than rust-version {msrv:?}"
    );
    // `scratch` is the empty image: nothing to pin.
    for (image, tag) in stages.iter().filter(|(image, _)| image != "scratch") {
        assert!(
            !tag.is_empty() && tag != "latest",
            "{image} must be pinned to a tag"
        );
    }
}

#[test]
fn final_image_is_static_minimal_and_non_root() {
    let text = dockerfile();
    // One recipe for every platform: the builder runs natively and cross-builds with the script
    // of the Docker-free image build, which refuses a binary that is not static.
    assert!(
        text.contains("FROM --platform=$BUILDPLATFORM rust:"),
        "builder on the build platform"
    );
    assert!(
        text.contains("scripts/image.sh --arch \"$TARGETPLATFORM\" --rootfs /rootfs"),
        "builds the TARGETPLATFORM's files with scripts/image.sh"
    );
    let final_stage = &text[text.rfind("\nFROM ").unwrap()..];
    let (image, _) = &stages(final_stage)[0];
    assert!(
        image == "scratch" || image.starts_with("gcr.io/distroless/static"),
        "final image {image} is neither scratch nor distroless static"
    );
    let user = final_stage
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .expect("final stage sets USER");
    assert!(user == "65534" || user == "65534:65534", "USER {user}");
    assert!(
        !final_stage.contains("\nRUN "),
        "nothing runs in the final stage (no shell there)"
    );
    for label in [
        "title",
        "description",
        "version",
        "revision",
        "source",
        "licenses",
    ] {
        assert!(
            text.contains(&format!("org.opencontainers.image.{label}=")),
            "OCI label {label}"
        );
    }
    let version_arg = format!("ARG VERSION={}", env!("CARGO_PKG_VERSION"));
    assert!(
        text.contains(&version_arg),
        "image version label follows Cargo.toml"
    );
}

#[test]
fn build_context_leaves_out_target_and_git() {
    let ignore = std::fs::read_to_string(repo_root().join(".dockerignore")).unwrap();
    let lines: Vec<&str> = ignore.lines().map(str::trim).collect();
    for needed in ["target/", ".git/"] {
        assert!(lines.contains(&needed), ".dockerignore lacks {needed}");
    }
    assert!(
        !lines.contains(&"scripts/") && !lines.contains(&"scripts"),
        "the builder runs scripts/image.sh"
    );
}
