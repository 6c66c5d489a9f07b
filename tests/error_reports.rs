//! What a person reads when something fails: every cause of an error printed once, and logs
//! without terminal escape codes when they do not go to a terminal (`kubectl logs`).

use std::error::Error as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ferrolb::controller::writes::WriteError;
use ferrolb::telemetry::{error_chain, log_colours};

fn occurrences(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// Every error in the chain of `error`, outermost first, as its own text.
fn causes(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![error.to_string()];
    let mut next = error.source();
    while let Some(cause) = next {
        out.push(cause.to_string());
        next = cause.source();
    }
    out
}

/// The error a controller logs when the API server refuses a status write: our layer, kube's and
/// the API server's Status, where kube's message embeds its source.
fn write_failure() -> WriteError {
    let status = kube::core::Status {
        code: 403,
        message: "services \"web\" is forbidden".into(),
        reason: "Forbidden".into(),
        ..Default::default()
    };
    WriteError::Status {
        namespace: "shop".into(),
        name: "web".into(),
        source: kube::Error::Api(Box::new(status)),
    }
}

#[test]
fn a_write_failure_prints_each_cause_exactly_once() {
    let error = write_failure();
    let printed = error_chain(&error);
    assert_eq!(
        printed,
        "Service shop/web: cannot write status: services \"web\" is forbidden (403 Forbidden)"
    );
    let causes = causes(&error);
    assert!(causes.len() >= 2, "{causes:#?}");
    // The API server's message, whichever layer carried it, is told once.
    assert_eq!(occurrences(&printed, "is forbidden"), 1, "{printed}");
    assert!(!printed.contains("Status {"), "{printed}");
    // Once more through anyhow, with a context on top, as the binary's edge sees it.
    let wrapped = anyhow::Error::new(write_failure()).context("controller");
    let printed = error_chain(wrapped.as_ref());
    assert!(
        printed.starts_with("controller: Service shop/web"),
        "{printed}"
    );
    assert_eq!(occurrences(&printed, "is forbidden"), 1, "{printed}");
}

/// kube's API error prints the Status twice (its message, then a debug dump); the watcher's
/// errors embed kube's. The chain tells the API server's answer once, as `message (code
/// reason)`, and a watch error by what failed; 410 and 404 are told apart from other failures.
#[test]
fn kube_and_watcher_errors_print_the_api_servers_answer_once() {
    use ferrolb::k8s::backoff::{WatchTrouble, watch_trouble};
    use kube::runtime::watcher;
    let status = |code: u16, reason: &str| kube::core::Status {
        code,
        message: format!("the answer {code}"),
        reason: reason.into(),
        ..Default::default()
    };
    let api = |code, reason| kube::Error::Api(Box::new(status(code, reason)));
    let printed = error_chain(&api(403, "Forbidden"));
    assert_eq!(printed, "the answer 403 (403 Forbidden)");

    let list = watcher::Error::InitialListFailed(api(404, "NotFound"));
    let printed = error_chain(&list);
    assert_eq!(printed, "cannot list: the answer 404 (404 NotFound)");
    assert!(!printed.contains("Status {"), "{printed}");
    assert_eq!(watch_trouble(&list), WatchTrouble::NotServed);

    let expired = watcher::Error::WatchError(Box::new(status(410, "Expired")));
    assert_eq!(
        error_chain(&expired),
        "the API server ended the watch: the answer 410 (410 Expired)"
    );
    assert_eq!(watch_trouble(&expired), WatchTrouble::Expired);
    let refused = watcher::Error::WatchFailed(api(403, "Forbidden"));
    assert_eq!(watch_trouble(&refused), WatchTrouble::Other);

    // Through our own layer and anyhow, as a log line shows it.
    let wrapped = anyhow::Error::new(write_failure()).context("controller");
    let printed = error_chain(wrapped.as_ref());
    assert_eq!(
        printed,
        "controller: Service shop/web: cannot write status: services \"web\" is forbidden (403 Forbidden)"
    );
}

#[test]
fn our_error_messages_leave_their_source_to_the_chain() {
    // The message says what this layer was doing; repeating the source's text in it makes every
    // chain printer show the cause twice.
    let error = write_failure();
    let source = error.source().expect("a source").to_string();
    assert!(!error.to_string().contains(&source), "{error}");
}

/// Every `#[error(...)]` in src/ whose variant has a source (`#[source]`, `#[from]` or a field
/// named `source`) must not format that source into its own message.
#[test]
fn no_error_type_in_src_embeds_its_source_in_its_message() {
    let mut offenders = Vec::new();
    let mut files = Vec::new();
    collect_rs(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() > 20, "found the sources: {files:?}");
    let mut variants_with_source = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let parts: Vec<&str> = text.split("#[error(").collect();
        for part in &parts[1..] {
            // The attribute, then the variant up to the next `#[error(` or the enum's end.
            let (attribute, rest) = part.split_once(")]").unwrap();
            let variant = rest.split("\n}").next().unwrap();
            let tuple_source = variant.contains("(#[source]") || variant.contains("(#[from]");
            let named_source = variant.contains("source:");
            if !(tuple_source || named_source) {
                continue;
            }
            variants_with_source += 1;
            let embeds = (named_source && attribute.contains("{source"))
                || (tuple_source && attribute.contains("{0"));
            if embeds {
                offenders.push(format!("{}: #[error({attribute})]", file.display()));
            }
        }
    }
    assert!(
        variants_with_source >= 15,
        "the scan finds the source-carrying variants ({variants_with_source})"
    );
    assert!(offenders.is_empty(), "{offenders:#?}");
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn check_config_on_a_missing_file_names_the_cause_once() {
    let path = "/nonexistent/ferrolb/config.yaml";
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .args(["check-config", path])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!("error: cannot read {path}: No such file or directory (os error 2)")
    );
}

#[test]
fn colours_only_on_a_terminal_and_never_with_no_color() {
    use std::ffi::OsStr;
    assert!(log_colours(true, None));
    assert!(
        log_colours(true, Some(OsStr::new(""))),
        "empty NO_COLOR is unset"
    );
    assert!(!log_colours(true, Some(OsStr::new("1"))));
    assert!(!log_colours(false, None));
    assert!(!log_colours(false, Some(OsStr::new("1"))));
}

/// The controller's logs as `kubectl logs` gets them (a pipe, not a terminal): no ESC byte, and
/// the reason it stopped said once.
#[test]
fn controller_logs_to_a_pipe_carry_no_escape_codes() {
    let kubeconfig = "/nonexistent/ferrolb/kubeconfig";
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .args(["controller", "--kubeconfig", kubeconfig])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        !out.stderr.contains(&0x1b) && !out.stdout.contains(&0x1b),
        "escape codes in logs written to a pipe:\n{stderr:?}"
    );
    let reason = format!("cannot read kubeconfig {kubeconfig}");
    assert_eq!(occurrences(&stderr, &reason), 1, "{stderr}");
    assert_eq!(
        occurrences(&stderr, "No such file or directory"),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("ERROR"),
        "logged as an error line: {stderr}"
    );
}
