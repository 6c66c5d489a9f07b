//! Helpers for the chart tests: finding the external tools, rendering the chart with helm, and
//! walking the rendered manifests.

use std::collections::BTreeMap;
use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Namespace every test renders into, so namespaced objects can be checked against it.
pub const NAMESPACE: &str = "ferrolb-system";
/// Release name every test renders with.
pub const RELEASE: &str = "lb";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn chart_dir() -> PathBuf {
    repo_root().join("charts/ferrolb")
}

pub fn values_dir() -> PathBuf {
    repo_root().join("tests/chart")
}

/// Finds `name` on PATH or in the folder `scripts/install-test-tools.sh` installs into. Missing:
/// a failure when `CI` is set (CI must run every check), otherwise `None` and a printed reason.
pub fn require_tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(tools) = env::var_os("FERROLB_TOOLS") {
        dirs.push(PathBuf::from(tools).join("bin"));
    }
    if let Some(home) = env::var_os("HOME") {
        dirs.push(PathBuf::from(&home).join(".cache/ferrolb-tools/bin"));
        dirs.push(PathBuf::from(&home).join(".local/bin"));
    }
    if let Some(found) = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
        return Some(found);
    }
    let msg = format!("`{name}` not found; install it with `bash scripts/install-test-tools.sh`");
    if env::var_os("CI").is_some() {
        panic!("{msg} (CI is set, so this check may not be skipped)");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"))
}

/// Runs `cmd` and fails the test, showing both output streams, unless it exits 0.
pub fn run_ok(cmd: &mut Command, what: impl std::fmt::Display) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The values files the chart must render and validate with: `None` is the chart's defaults.
pub fn scenarios() -> Vec<Option<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(values_dir())
        .expect("tests/chart exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".yaml") && !name.starts_with("bad-")
        })
        .collect();
    files.sort();
    let mut all = vec![None];
    all.extend(files.into_iter().map(Some));
    all
}

pub fn scenario_name(values: &Option<PathBuf>) -> String {
    match values {
        None => "default values".to_string(),
        Some(p) => p.file_name().unwrap().to_string_lossy().into_owned(),
    }
}

/// `--api-versions` arguments of a cluster serving the Prometheus Operator's CRDs.
pub const MONITORING_API_VERSIONS: [&str; 6] = [
    "--api-versions",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "--api-versions",
    "monitoring.coreos.com/v1/PodMonitor",
    "--api-versions",
    "monitoring.coreos.com/v1/PrometheusRule",
];

/// `helm template` for the chart with an optional values file; the raw output or helm's stderr.
pub fn helm_template(helm: &Path, values: Option<&Path>) -> Result<String, String> {
    helm_template_with(helm, values, &[])
}

/// [`helm_template`] with extra arguments (`--api-versions`, `--set`).
pub fn helm_template_with(
    helm: &Path,
    values: Option<&Path>,
    extra: &[&str],
) -> Result<String, String> {
    let mut cmd = Command::new(helm);
    cmd.arg("template")
        .arg(RELEASE)
        .arg(chart_dir())
        .args(["--namespace", NAMESPACE])
        .args(extra);
    if let Some(v) = values {
        cmd.arg("--values").arg(v);
    }
    let out = run(&mut cmd);
    if out.status.success() {
        Ok(stdout(&out))
    } else {
        Err(stderr(&out))
    }
}

/// Renders and parses into one JSON value per manifest (empty documents dropped).
pub fn render(helm: &Path, values: Option<&Path>) -> Manifests {
    render_with(helm, values, &[])
}

/// [`render`] with extra `helm template` arguments.
pub fn render_with(helm: &Path, values: Option<&Path>, extra: &[&str]) -> Manifests {
    let text = helm_template_with(helm, values, extra)
        .unwrap_or_else(|e| panic!("helm template with {values:?} failed:\n{e}"));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("helm output is not YAML: {e}\n{text}"));
    Manifests {
        text,
        docs: docs.into_iter().filter(|d| d.is_object()).collect(),
    }
}

pub struct Manifests {
    pub text: String,
    pub docs: Vec<Value>,
}

impl Manifests {
    pub fn of_kind<'a, 'k>(
        &'a self,
        kind: &'k str,
    ) -> impl Iterator<Item = &'a Value> + use<'a, 'k> {
        self.docs.iter().filter(move |d| d["kind"] == kind)
    }

    pub fn one(&self, kind: &str, name: &str) -> &Value {
        self.of_kind(kind)
            .find(|d| d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} named {name} rendered"))
    }

    pub fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.of_kind(kind).find(|d| d["metadata"]["name"] == name)
    }

    /// The single workload (Deployment or DaemonSet) whose first container runs `subcommand`.
    pub fn workload(&self, subcommand: &str) -> Option<&Value> {
        self.docs.iter().find(|d| {
            (d["kind"] == "Deployment" || d["kind"] == "DaemonSet")
                && container(d)["args"][0] == subcommand
        })
    }
}

pub fn container(workload: &Value) -> &Value {
    let containers = workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("workload has containers");
    assert_eq!(containers.len(), 1, "one container per ferrolb pod");
    &containers[0]
}

pub fn pod_spec(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]
}

pub fn args(workload: &Value) -> Vec<String> {
    container(workload)["args"]
        .as_array()
        .expect("container has args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect()
}

/// The value of `--flag=value` in a workload's args, if present.
pub fn flag(workload: &Value, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    args(workload)
        .into_iter()
        .find_map(|a| a.strip_prefix(&prefix).map(str::to_string))
}

/// Container env as name -> JSON value of the entry (to check `value` or `valueFrom`).
pub fn env_map(workload: &Value) -> BTreeMap<String, Value> {
    container(workload)["env"]
        .as_array()
        .map(|env| {
            env.iter()
                .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The first line of a bad-values file says which text helm's error must contain.
pub fn expected_error(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("# expect: "))
        .unwrap_or_else(|| {
            panic!(
                "{} must start with `# expect: <error text>`",
                file.display()
            )
        })
        .trim()
        .to_string()
}
