//! Peer `node-selectors`: Kubernetes label selectors, checked as the API server would check them.

use std::collections::BTreeMap;

use super::error::{Rule, Subject, ValidationError};
use super::raw::RawNodeSelector;
use super::schema::{NodeSelector, SelectorOperator, SelectorRequirement};

/// A label name segment: at most 63 characters, alphanumeric at both ends, `-_.` inside.
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A DNS subdomain (label key prefix): lowercase, at most 253 characters, dot-separated labels.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// A label key: `[prefix/]name`.
fn is_label_key(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
        None => is_label_name(s),
    }
}

/// A label value: empty, or a label name.
fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_label_name(s)
}

pub(crate) fn node_selectors(
    raw: Vec<RawNodeSelector>,
    subject: &Subject,
    errors: &mut Vec<ValidationError>,
) -> Vec<NodeSelector> {
    let mut push = |field: String, msg: String| {
        errors.push(ValidationError::new(
            subject.clone(),
            field,
            Rule::InvalidNodeSelector,
            msg,
        ));
    };
    let mut selectors = Vec::with_capacity(raw.len());
    for (i, sel) in raw.into_iter().enumerate() {
        let labels: BTreeMap<String, String> = sel.match_labels.unwrap_or_default();
        for (key, value) in &labels {
            let field = format!("node-selectors[{i}].match-labels");
            if !is_label_key(key) {
                push(field, format!("invalid label key {key:?}"));
            } else if !is_label_value(value) {
                push(
                    field,
                    format!("invalid label value {value:?} for key {key:?}"),
                );
            }
        }
        let mut exprs = Vec::new();
        for (j, req) in sel
            .match_expressions
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let field = |name: &str| format!("node-selectors[{i}].match-expressions[{j}].{name}");
            let key = req.key.unwrap_or_default();
            if !is_label_key(&key) {
                push(field("key"), format!("invalid label key {key:?}"));
            }
            let values = req.values.unwrap_or_default();
            if let Some(bad) = values.iter().find(|v| !is_label_value(v)) {
                push(field("values"), format!("invalid label value {bad:?}"));
            }
            let operator = match req.operator.as_deref().unwrap_or_default() {
                "In" => SelectorOperator::In,
                "NotIn" => SelectorOperator::NotIn,
                "Exists" => SelectorOperator::Exists,
                "DoesNotExist" => SelectorOperator::DoesNotExist,
                other => {
                    push(
                        field("operator"),
                        format!(
                            "invalid operator {other:?}: must be In, NotIn, Exists or DoesNotExist"
                        ),
                    );
                    continue;
                }
            };
            match operator {
                SelectorOperator::In | SelectorOperator::NotIn if values.is_empty() => push(
                    field("values"),
                    "values set can't be empty for the In and NotIn operators".into(),
                ),
                SelectorOperator::Exists | SelectorOperator::DoesNotExist if !values.is_empty() => {
                    push(
                        field("values"),
                        "values set must be empty for the Exists and DoesNotExist operators".into(),
                    )
                }
                _ => {}
            }
            exprs.push(SelectorRequirement {
                key,
                operator,
                values,
            });
        }
        selectors.push(NodeSelector {
            match_labels: labels,
            match_expressions: exprs,
        });
    }
    selectors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys_follow_kubernetes_rules() {
        assert!(is_label_key("kubernetes.io/hostname"));
        assert!(is_label_key("rack"));
        assert!(!is_label_key("Bad.Prefix/x"));
        assert!(!is_label_key("-leading"));
        assert!(!is_label_key(""));
        assert!(!is_label_key(&"a".repeat(64)));
        assert!(is_label_value(""));
        assert!(!is_label_value("trailing-"));
    }
}
