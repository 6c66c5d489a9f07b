//! A control plane's audit log ([`super::control_plane::PlaneOptions::audit`]), read back: who
//! made which call, on what, and what the API server answered.

use std::fmt;
use std::path::Path;

use serde_json::Value;

/// One audit event (level Metadata).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// `user.username`, e.g. `system:serviceaccount:<namespace>:<name>`.
    pub user: String,
    /// The RBAC verb: `get`, `list`, `watch`, `create`, `patch`, `update`, `delete`, ...
    pub verb: String,
    /// `objectRef.apiGroup`; empty for the core group.
    pub group: String,
    /// `objectRef.resource`, with `/subresource` when there is one (`services/status`); empty
    /// for a non-resource request (`/version`, `/api`).
    pub resource: String,
    /// `objectRef.namespace`; empty for a cluster-wide call.
    pub namespace: String,
    pub name: String,
    /// `responseStatus.code`.
    pub code: u16,
    /// `ResponseStarted` (a watch's answer began) or `ResponseComplete`.
    pub stage: String,
    /// The authorizer's `authorization.k8s.io/decision` annotation (`allow`, `forbid`).
    pub decision: String,
    pub uri: String,
}

impl Call {
    fn from_event(event: &Value) -> Call {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let object = &event["objectRef"];
        let mut resource = text(&object["resource"]);
        if let Some(sub) = object["subresource"].as_str() {
            resource = format!("{resource}/{sub}");
        }
        Call {
            user: text(&event["user"]["username"]),
            verb: text(&event["verb"]),
            group: text(&object["apiGroup"]),
            resource,
            namespace: text(&object["namespace"]),
            name: text(&object["name"]),
            code: event["responseStatus"]["code"]
                .as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(0),
            stage: text(&event["stage"]),
            decision: text(&event["annotations"]["authorization.k8s.io/decision"]),
            uri: text(&event["requestURI"]),
        }
    }

    /// Whether this call was on `group`/`resource` with `verb`.
    pub fn is(&self, verb: &str, group: &str, resource: &str) -> bool {
        self.verb == verb && self.group == group && self.resource == resource
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(
            f,
            "{} {} {}/{} {}/{} -> {} ({}, authorizer: {}) [{}]",
            self.user,
            self.verb,
            group,
            self.resource,
            self.namespace,
            self.name,
            self.code,
            self.stage,
            self.decision,
            self.uri
        )
    }
}

/// Every event in the log so far. The API server may be writing the last line: a last line
/// that does not parse is left for the next read; any other fails the test.
pub fn read(log: &Path) -> Vec<Call> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = lines.len().saturating_sub(1);
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| match serde_json::from_str::<Value>(line) {
            Ok(event) => Some(Call::from_event(&event)),
            Err(_) if i == last && !text.ends_with('\n') => None,
            Err(e) => panic!(
                "{}: line {} is not JSON ({e}): {line}",
                log.display(),
                i + 1
            ),
        })
        .collect()
}

/// The calls `user` made.
pub fn by_user(calls: &[Call], user: &str) -> Vec<Call> {
    calls.iter().filter(|c| c.user == user).cloned().collect()
}
