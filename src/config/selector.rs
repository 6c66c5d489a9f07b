//! Kubernetes label selectors (`matchLabels` + `matchExpressions`): the pure type, its matching
//! rule, and the checks the API server would make. Legacy peer `node-selectors` and every CRD
//! selector (pool `serviceAllocation`, L2Advertisement pools/nodes/services) share them.

use std::collections::BTreeMap;

use super::error::{Rule, Subject, ValidationError};
use super::raw::RawNodeSelector;

/// Labels of an object (Service, Namespace, Node, pool).
pub type Labels = BTreeMap<String, String>;

/// A Kubernetes label selector. An empty selector matches everything, as in Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<SelectorRequirement>,
}

/// The legacy name of [`LabelSelector`], kept for peer `node-selectors`.
pub type NodeSelector = LabelSelector;

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    pub values: Vec<String>,
}

/// The operators Kubernetes label selectors allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl LabelSelector {
    /// Whether `labels` satisfy every `matchLabels` pair and every expression (Kubernetes rules:
    /// `NotIn` and `DoesNotExist` match objects without the key).
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|req| {
                let value = labels.get(&req.key);
                match req.operator {
                    SelectorOperator::In => value.is_some_and(|v| req.values.contains(v)),
                    SelectorOperator::NotIn => value.is_none_or(|v| !req.values.contains(v)),
                    SelectorOperator::Exists => value.is_some(),
                    SelectorOperator::DoesNotExist => value.is_none(),
                }
            })
    }

    /// The selector with expressions and their values sorted: two selectors meaning the same
    /// thing written in another order compare equal (MetalLB's duplicate rule).
    pub fn canonical(&self) -> LabelSelector {
        let mut exprs = self.match_expressions.clone();
        for e in &mut exprs {
            e.values.sort();
        }
        exprs.sort();
        LabelSelector {
            match_labels: self.match_labels.clone(),
            match_expressions: exprs,
        }
    }
}

/// What one label key must be for a node to match a set of selectors at once.
#[derive(Default)]
struct KeyNeed<'a> {
    /// Whether the key must be present (`Some(true)`) or absent (`Some(false)`).
    present: Option<bool>,
    /// Both present and absent were required.
    contradicts: bool,
    /// The values it may have (`None`: any).
    allowed: Option<std::collections::BTreeSet<&'a str>>,
    /// The values it may not have.
    excluded: std::collections::BTreeSet<&'a str>,
}

impl<'a> KeyNeed<'a> {
    fn present(&mut self, want: bool) {
        self.contradicts |= self.present.is_some_and(|p| p != want);
        self.present = Some(want);
    }

    fn allow(&mut self, values: impl IntoIterator<Item = &'a str>) {
        self.present(true);
        let values: std::collections::BTreeSet<&str> = values.into_iter().collect();
        self.allowed = Some(match self.allowed.take() {
            Some(before) => before.intersection(&values).copied().collect(),
            None => values,
        });
    }

    fn unsatisfiable(&self) -> bool {
        self.contradicts
            || self
                .allowed
                .as_ref()
                .is_some_and(|a| a.iter().all(|v| self.excluded.contains(v)))
    }
}

impl LabelSelector {
    /// Whether no set of labels can match both selectors, judged from the selectors alone: a
    /// key both require with no value in common (`rack=a` and `rack=b`, `In` lists that do not
    /// meet, `In` against a `NotIn` of all its values), or required by one and absent by the
    /// other. `false` means some labels could match both, not that a node has them.
    pub fn disjoint(&self, other: &LabelSelector) -> bool {
        let mut needs: BTreeMap<&str, KeyNeed<'_>> = BTreeMap::new();
        for sel in [self, other] {
            for (k, v) in &sel.match_labels {
                needs.entry(k).or_default().allow([v.as_str()]);
            }
            for e in &sel.match_expressions {
                let need = needs.entry(&e.key).or_default();
                let values = e.values.iter().map(String::as_str);
                match e.operator {
                    SelectorOperator::In => need.allow(values),
                    SelectorOperator::NotIn => need.excluded.extend(values),
                    SelectorOperator::Exists => need.present(true),
                    SelectorOperator::DoesNotExist => need.present(false),
                }
            }
        }
        needs.values().any(KeyNeed::unsatisfiable)
    }
}

/// Whether two selector lists (each matching what any of its selectors matches; empty means
/// everything) can match no common labels, judged as [`LabelSelector::disjoint`] does.
pub fn selector_lists_disjoint(a: &[LabelSelector], b: &[LabelSelector]) -> bool {
    !a.is_empty() && !b.is_empty() && a.iter().all(|x| b.iter().all(|y| x.disjoint(y)))
}

impl std::fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for e in &self.match_expressions {
            parts.push(match e.operator {
                SelectorOperator::In => format!("{} in ({})", e.key, e.values.join(",")),
                SelectorOperator::NotIn => format!("{} notin ({})", e.key, e.values.join(",")),
                SelectorOperator::Exists => e.key.clone(),
                SelectorOperator::DoesNotExist => format!("!{}", e.key),
            });
        }
        if parts.is_empty() {
            f.write_str("<all>")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

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

/// A DNS subdomain (label key prefix, object names): lowercase, at most 253 characters,
/// dot-separated labels.
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
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

/// A selector as written, before checking: the same shape for the legacy kebab-case keys and the
/// CRDs' camelCase ones.
pub(crate) struct SelectorInput {
    pub match_labels: Option<BTreeMap<String, String>>,
    pub match_expressions: Option<Vec<RequirementInput>>,
}

pub(crate) struct RequirementInput {
    pub key: Option<String>,
    pub operator: Option<String>,
    pub values: Option<Vec<String>>,
}

/// The spelling of a selector's keys in error messages.
#[derive(Clone, Copy)]
pub(crate) struct KeyNames {
    pub labels: &'static str,
    pub expressions: &'static str,
}

pub(crate) const LEGACY_KEYS: KeyNames = KeyNames {
    labels: "match-labels",
    expressions: "match-expressions",
};

pub(crate) const CRD_KEYS: KeyNames = KeyNames {
    labels: "matchLabels",
    expressions: "matchExpressions",
};

/// Checks one selector at `field` (e.g. `spec.nodeSelectors[0]`); every problem goes to `push`
/// as (field, rule, message). Returns the selector when it is usable.
pub(crate) fn check_selector(
    sel: SelectorInput,
    field: &str,
    keys: KeyNames,
    push: &mut dyn FnMut(String, Rule, String),
) -> Option<LabelSelector> {
    let before_ok = std::cell::Cell::new(true);
    let mut bad = |f: String, m: String| {
        before_ok.set(false);
        push(f, Rule::InvalidNodeSelector, m);
    };
    let labels: BTreeMap<String, String> = sel.match_labels.unwrap_or_default();
    for (key, value) in &labels {
        let f = format!("{field}.{}", keys.labels);
        if !is_label_key(key) {
            bad(f, format!("invalid label key {key:?}"));
        } else if !is_label_value(value) {
            bad(f, format!("invalid label value {value:?} for key {key:?}"));
        }
    }
    let mut exprs: Vec<SelectorRequirement> = Vec::new();
    for (j, req) in sel
        .match_expressions
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let f = |name: &str| format!("{field}.{}[{j}].{name}", keys.expressions);
        let key = req.key.unwrap_or_default();
        if !is_label_key(&key) {
            bad(f("key"), format!("invalid label key {key:?}"));
        }
        let values = req.values.unwrap_or_default();
        if let Some(v) = values.iter().find(|v| !is_label_value(v)) {
            bad(f("values"), format!("invalid label value {v:?}"));
        }
        if let Some((i, v)) = values
            .iter()
            .enumerate()
            .find(|(i, v)| values[..*i].contains(v))
        {
            bad(
                f("values"),
                format!("duplicate value {v:?} (entry {i}) in match expression"),
            );
        }
        let operator = match req.operator.as_deref().unwrap_or_default() {
            "In" => SelectorOperator::In,
            "NotIn" => SelectorOperator::NotIn,
            "Exists" => SelectorOperator::Exists,
            "DoesNotExist" => SelectorOperator::DoesNotExist,
            other => {
                bad(
                    f("operator"),
                    format!(
                        "invalid operator {other:?}: must be In, NotIn, Exists or DoesNotExist"
                    ),
                );
                continue;
            }
        };
        match operator {
            SelectorOperator::In | SelectorOperator::NotIn if values.is_empty() => bad(
                f("values"),
                "values set can't be empty for the In and NotIn operators".into(),
            ),
            SelectorOperator::Exists | SelectorOperator::DoesNotExist if !values.is_empty() => bad(
                f("values"),
                "values set must be empty for the Exists and DoesNotExist operators".into(),
            ),
            _ => {}
        }
        let req = SelectorRequirement {
            key,
            operator,
            values,
        };
        let canonical = |r: &SelectorRequirement| {
            let mut r = r.clone();
            r.values.sort();
            r
        };
        if exprs.iter().any(|e| canonical(e) == canonical(&req)) {
            bad(
                f("key"),
                format!("duplicate match expression on key {:?}", req.key),
            );
        }
        exprs.push(req);
    }
    before_ok.get().then_some(LabelSelector {
        match_labels: labels,
        match_expressions: exprs,
    })
}

/// Checks a list of selectors at `field` (e.g. `spec.nodeSelectors`), also refusing two that
/// mean the same (MetalLB: "duplicate definition of <field>").
pub(crate) fn check_selectors(
    raw: Vec<SelectorInput>,
    field: &str,
    keys: KeyNames,
    push: &mut dyn FnMut(String, Rule, String),
) -> Vec<LabelSelector> {
    let mut out: Vec<LabelSelector> = Vec::with_capacity(raw.len());
    for (i, sel) in raw.into_iter().enumerate() {
        let at = format!("{field}[{i}]");
        if let Some(sel) = check_selector(sel, &at, keys, push) {
            if out.iter().any(|o| o.canonical() == sel.canonical()) {
                push(
                    at,
                    Rule::DuplicateSelector,
                    format!("duplicate definition of selector {sel} in {field}"),
                );
            }
            out.push(sel);
        }
    }
    out
}

/// Legacy peer `node-selectors`.
pub(crate) fn node_selectors(
    raw: Vec<RawNodeSelector>,
    subject: &Subject,
    errors: &mut Vec<ValidationError>,
) -> Vec<NodeSelector> {
    let mut push = |field: String, rule: Rule, msg: String| {
        errors.push(ValidationError::new(subject.clone(), field, rule, msg));
    };
    raw.into_iter()
        .enumerate()
        .filter_map(|(i, sel)| {
            let input = SelectorInput {
                match_labels: sel.match_labels,
                match_expressions: sel.match_expressions.map(|exprs| {
                    exprs
                        .into_iter()
                        .map(|r| RequirementInput {
                            key: r.key,
                            operator: r.operator,
                            values: r.values,
                        })
                        .collect()
                }),
            };
            check_selector(
                input,
                &format!("node-selectors[{i}]"),
                LEGACY_KEYS,
                &mut push,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expr(key: &str, operator: SelectorOperator, values: &[&str]) -> SelectorRequirement {
        SelectorRequirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

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

    #[test]
    fn empty_selector_matches_everything() {
        assert!(LabelSelector::default().matches(&Labels::new()));
        assert!(LabelSelector::default().matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_need_every_pair() {
        let sel = LabelSelector {
            match_labels: labels(&[("team", "a"), ("tier", "web")]),
            match_expressions: vec![],
        };
        assert!(sel.matches(&labels(&[("team", "a"), ("tier", "web"), ("x", "y")])));
        assert!(!sel.matches(&labels(&[("team", "a")])));
        assert!(!sel.matches(&labels(&[("team", "b"), ("tier", "web")])));
    }

    #[test]
    fn operators_follow_kubernetes_semantics() {
        use SelectorOperator::*;
        let one = |e| LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![e],
        };
        let has_a = labels(&[("env", "a")]);
        let has_b = labels(&[("env", "b")]);
        let none = Labels::new();
        let in_a = one(expr("env", In, &["a", "c"]));
        assert!(in_a.matches(&has_a) && !in_a.matches(&has_b) && !in_a.matches(&none));
        let notin_a = one(expr("env", NotIn, &["a"]));
        assert!(!notin_a.matches(&has_a) && notin_a.matches(&has_b) && notin_a.matches(&none));
        let exists = one(expr("env", Exists, &[]));
        assert!(exists.matches(&has_a) && !exists.matches(&none));
        let absent = one(expr("env", DoesNotExist, &[]));
        assert!(!absent.matches(&has_a) && absent.matches(&none));
    }

    #[test]
    fn disjointness_is_judged_from_the_selectors_alone() {
        use SelectorOperator::*;
        let sel = |pairs: &[(&str, &str)], exprs: Vec<SelectorRequirement>| LabelSelector {
            match_labels: labels(pairs),
            match_expressions: exprs,
        };
        let rack_a = sel(&[("rack", "a")], vec![]);
        let rack_b = sel(&[("rack", "b")], vec![]);
        let zone = sel(&[("zone", "x")], vec![]);
        assert!(rack_a.disjoint(&rack_b));
        assert!(!rack_a.disjoint(&zone), "different keys can both hold");
        assert!(!rack_a.disjoint(&rack_a));
        let in_ab = sel(&[], vec![expr("rack", In, &["a", "b"])]);
        let in_c = sel(&[], vec![expr("rack", In, &["c"])]);
        let not_ab = sel(&[], vec![expr("rack", NotIn, &["a", "b"])]);
        let absent = sel(&[], vec![expr("rack", DoesNotExist, &[])]);
        assert!(in_ab.disjoint(&in_c) && in_ab.disjoint(&not_ab) && rack_a.disjoint(&absent));
        assert!(!in_ab.disjoint(&rack_b) && !not_ab.disjoint(&absent));
        let only_a = std::slice::from_ref(&rack_a);
        assert!(selector_lists_disjoint(only_a, &[rack_b.clone(), in_c]));
        assert!(!selector_lists_disjoint(only_a, &[rack_b, zone]));
        assert!(
            !selector_lists_disjoint(&[], &[rack_a]),
            "empty means every node"
        );
    }

    #[test]
    fn canonical_form_ignores_order() {
        use SelectorOperator::*;
        let a = LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![expr("x", In, &["1", "2"]), expr("y", Exists, &[])],
        };
        let b = LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![expr("y", Exists, &[]), expr("x", In, &["2", "1"])],
        };
        assert_ne!(a, b);
        assert_eq!(a.canonical(), b.canonical());
    }
}
