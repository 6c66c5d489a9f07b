//! The layering docs/architecture.md promises, checked over the source text: pure cores import
//! no edge, the controller and the speaker never import each other, the speaker's static mode
//! never imports its Kubernetes mode and the core they share imports neither, no two files
//! import each other, and no file grows past [`MAX_LINES`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `.rs` file under src/, as a path relative to src/ with its text (comments dropped).
fn files() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    sources(&root, &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&p).unwrap();
            let code: Vec<&str> = text
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .collect();
            (rel, code.join("\n"))
        })
        .collect()
}

const CORES: &[&str] = &[
    "advertise.rs",
    "advertise_tests.rs",
    "advertise_bgp.rs",
    "advertise_bgp_tests.rs",
    "bfd/",
    "bgp/",
    "config/",
    "ipam/",
    "election.rs",
    "placement.rs",
    "placement_tests.rs",
    "layer2/wire.rs",
    "layer2/arp.rs",
    "layer2/ndp.rs",
    "layer2/responder.rs",
    "layer2/schedule.rs",
    "layer2/pacing.rs",
    "gossip/core.rs",
    "gossip/core_state.rs",
    "gossip/node_state.rs",
    "gossip/address_set.rs",
    "speaker/link_state.rs",
    "speaker/answer_check.rs",
    "speaker/answer_check_tests.rs",
    "speaker/withdrawals.rs",
    "speaker/handover.rs",
    "speaker/handover_tests.rs",
    "gossip/envelope.rs",
    "gossip/key.rs",
    "gossip/identity.rs",
    "gossip/config.rs",
];

const EDGES: &[&str] = &[
    "kube::",
    "tokio::",
    "crate::controller",
    "crate::speaker",
    "crate::k8s",
    "crate::telemetry",
    "crate::runtime",
    "std::net::UdpSocket",
];

#[test]
fn pure_cores_import_no_edge() {
    let mut found = Vec::new();
    for (file, code) in files() {
        if CORES.iter().any(|c| file.starts_with(c)) {
            for edge in EDGES {
                if code.contains(edge) {
                    found.push(format!("{file} uses {edge}"));
                }
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}

/// Gossip identity and replay protection must survive a clock stepped back across a restart, so
/// nothing in gossip may read the wall clock (docs/architecture.md, "Gossip incarnations").
#[test]
fn gossip_never_reads_the_wall_clock() {
    let offenders: Vec<String> = files()
        .into_iter()
        .filter(|(file, code)| file.starts_with("gossip/") && code.contains("SystemTime"))
        .map(|(file, _)| file)
        .collect();
    assert!(offenders.is_empty(), "wall clock read in {offenders:?}");
}

#[test]
fn controller_and_speaker_never_import_each_other() {
    let mut found = Vec::new();
    for (file, code) in files() {
        if file.starts_with("speaker/") && code.contains("crate::controller") {
            found.push(file.clone());
        }
        if file.starts_with("controller/") && code.contains("crate::speaker") {
            found.push(file);
        }
    }
    assert!(found.is_empty(), "{found:?}");
}

/// The file a module path names: `controller/live.rs` or `k8s/mod.rs`, for `controller::live`.
fn file_of(module: &[&str], all: &BTreeMap<String, String>) -> Option<String> {
    (1..=module.len()).rev().find_map(|n| {
        let base = module[..n].join("/");
        [format!("{base}.rs"), format!("{base}/mod.rs")]
            .into_iter()
            .find(|f| all.contains_key(f))
    })
}

/// The module path of a file: `controller/live.rs` → [controller, live].
fn module_of(file: &str) -> Vec<&str> {
    let mut parts: Vec<&str> = file.trim_end_matches(".rs").split('/').collect();
    if parts.last() == Some(&"mod") {
        parts.pop();
    }
    parts
}

/// Files each file names through `crate::` or `super::` paths (braced lists included).
fn imports(all: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges = BTreeMap::new();
    for (file, code) in all {
        let me = module_of(file);
        let mut targets = BTreeSet::new();
        for (anchor, base) in [
            ("crate::", Vec::new()),
            ("super::", me[..me.len().saturating_sub(1)].to_vec()),
        ] {
            for (at, _) in code.match_indices(anchor) {
                // Only where the path starts (not `foo::crate::`).
                if code[..at].ends_with("::") {
                    continue;
                }
                let rest = &code[at + anchor.len()..];
                let head: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let mut path = base.clone();
                path.extend(head.split("::").filter(|s| !s.is_empty()));
                let mut names = vec![path.clone()];
                if rest[head.len()..].starts_with('{') {
                    let list = &rest[head.len() + 1..rest.find('}').unwrap_or(rest.len())];
                    for item in list.split(',') {
                        let item = item.trim();
                        let mut p = path.clone();
                        p.extend(item.split("::").filter(|s| !s.is_empty() && *s != "self"));
                        names.push(p);
                    }
                }
                for name in names {
                    if let Some(target) = file_of(&name, all).filter(|t| t != file) {
                        targets.insert(target);
                    }
                }
            }
        }
        edges.insert(file.clone(), targets);
    }
    edges
}

#[test]
fn no_two_files_import_each_other() {
    let all = files();
    let edges = imports(&all);
    // The resolver must see real imports, or the check below proves nothing.
    assert!(edges["speaker/kubernetes/cache.rs"].contains("k8s/service.rs"));
    assert!(edges["controller/live.rs"].contains("controller/writes.rs"));
    let mut cycles = Vec::new();
    for (a, targets) in &edges {
        for b in targets {
            let is_parent = |f: &str| f.ends_with("mod.rs") || f == "lib.rs";
            if a < b && !is_parent(a) && !is_parent(b) && edges[b].contains(a) {
                cycles.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(cycles.is_empty(), "{cycles:#?}");
}

/// The speaker's rooms (docs/architecture.md, "speaker"): the files at the top of `speaker/`
/// are the core both modes share, each mode has a folder of its own.
const KUBERNETES_MODE: &str = "speaker/kubernetes/";
const STATIC_MODE: &str = "speaker/static_mode/";

/// Where `file` names one of `rooms`: through a `crate::` or `super::` path the resolver follows
/// to a file in it, or through a path starting with the room's module (`kubernetes::`, as
/// `speaker/mod.rs` could write it).
fn names_a_room(
    file: &str,
    rooms: &[&str],
    all: &BTreeMap<String, String>,
    edges: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut found = Vec::new();
    for room in rooms {
        for target in edges[file].iter().filter(|t| t.starts_with(room)) {
            found.push(format!("{file} imports {target}"));
        }
        let module = room
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(room);
        if all[file].contains(&format!("{module}::")) {
            found.push(format!("{file} names {module}::"));
        }
    }
    found
}

#[test]
fn the_static_mode_never_imports_the_kubernetes_mode() {
    let all = files();
    let edges = imports(&all);
    let room: Vec<&String> = all.keys().filter(|f| f.starts_with(STATIC_MODE)).collect();
    // The rule reads real files and real imports, or it proves nothing.
    assert!(room.len() >= 3, "{room:?}");
    assert!(edges["speaker/static_mode/mod.rs"].contains("speaker/publish.rs"));
    let found: Vec<String> = room
        .into_iter()
        .flat_map(|f| names_a_room(f, &[KUBERNETES_MODE], &all, &edges))
        .collect();
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_speakers_shared_core_imports_neither_mode() {
    let all = files();
    let edges = imports(&all);
    let shared: Vec<&String> = all
        .keys()
        .filter(|f| {
            f.strip_prefix("speaker/")
                .is_some_and(|rest| !rest.contains('/'))
        })
        .collect();
    assert!(shared.len() >= 8, "{shared:?}");
    assert!(edges["speaker/kubernetes/cluster.rs"].contains("speaker/ownership.rs"));
    let found: Vec<String> = shared
        .into_iter()
        .flat_map(|f| names_a_room(f, &[KUBERNETES_MODE, STATIC_MODE], &all, &edges))
        .collect();
    assert!(found.is_empty(), "{found:#?}");
}

/// No source file is longer: past it, a file is split along a seam a reader would name.
const MAX_LINES: usize = 600;

/// Files over [`MAX_LINES`] today, each waiting for its split. Remove an entry with the split
/// that brings it under: the test fails while a listed file is no longer over, so the list
/// cannot go stale, and no file may join it.
const OVER_MAX_LINES: &[&str] = &[];

#[test]
fn no_source_file_is_over_the_line_limit() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    sources(&root, &mut paths);
    let mut over = BTreeMap::new();
    for path in &paths {
        let lines = std::fs::read_to_string(path).unwrap().lines().count();
        if lines > MAX_LINES {
            let rel = path
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            over.insert(rel, lines);
        }
    }
    assert!(paths.len() > 100, "{} files under src/", paths.len());
    let unlisted: Vec<_> = over
        .iter()
        .filter(|(f, _)| !OVER_MAX_LINES.contains(&f.as_str()))
        .collect();
    assert!(unlisted.is_empty(), "over {MAX_LINES} lines: {unlisted:?}");
    let under: Vec<&&str> = OVER_MAX_LINES
        .iter()
        .filter(|f| !over.contains_key(**f))
        .collect();
    assert!(
        under.is_empty(),
        "no longer over {MAX_LINES} lines (or gone): take them out of OVER_MAX_LINES: {under:?}"
    );
}

/// The BGP cores (codecs, session) stand alone: they import nothing of ours outside `bgp`
/// (docs/architecture.md, module map), so the edge that drives them can change freely.
#[test]
fn bgp_imports_nothing_of_ours() {
    let mut found = Vec::new();
    for (file, code) in files() {
        if !file.starts_with("bgp/") {
            continue;
        }
        for (at, _) in code.match_indices("crate::") {
            if !code[at..].starts_with("crate::bgp") {
                found.push(file.clone());
            }
        }
    }
    assert!(found.is_empty(), "{found:?}");
}

/// The speaker's BGP edge (`speaker/bgp/`) belongs to the shared core and drives the BGP cores:
/// it names nothing of ours but `bgp`, `runtime`, `layer2::sys`, the BFD core and edge (a peer's
/// BFD session) and itself; the BFD edge (`speaker/bfd.rs`) nothing but `bfd`, `config` (the
/// profile it reads), `runtime` and `layer2::sys` (docs/architecture.md).
#[test]
fn the_bgp_edge_imports_only_the_bgp_cores_runtime_and_sys() {
    let all = files();
    let room: Vec<&String> = all
        .keys()
        .filter(|f| f.starts_with("speaker/bgp/"))
        .collect();
    assert!(room.len() >= 3, "{room:?}");
    let allowed = [
        "crate::bgp",
        "crate::runtime",
        "crate::layer2::sys",
        "crate::bfd",
        "crate::speaker::bfd",
    ];
    let bfd_allowed = [
        "crate::bfd",
        "crate::config",
        "crate::runtime",
        "crate::layer2::sys",
    ];
    let mut found = Vec::new();
    let bfd_edge = ["speaker/bfd.rs", "speaker/bfd_tests.rs"];
    let rooms = room.into_iter().map(|f| (f, &allowed[..])).chain(
        all.keys()
            .filter(|f| bfd_edge.contains(&f.as_str()))
            .map(|f| (f, &bfd_allowed[..])),
    );
    for (file, allowed) in rooms {
        let code = &all[file];
        for (at, _) in code.match_indices("crate::") {
            if !allowed.iter().any(|a| code[at..].starts_with(a)) {
                found.push(format!("{file}: {}", &code[at..(at + 30).min(code.len())]));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}
