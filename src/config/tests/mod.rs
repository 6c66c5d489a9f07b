//! Unit and property tests of config parsing and validation: one test per MetalLB rule, each
//! asserting the rule, the subject (pool/peer/...) and the field the error names.

mod parsing;
mod peers;
mod pools;
mod props;

use super::{ConfigError, Rule, Subject, ValidationError, parse};

/// The validation errors of a config expected to be invalid.
fn errors(yaml: &str) -> Vec<ValidationError> {
    match parse(yaml) {
        Err(ConfigError::Invalid(errors)) => {
            assert!(!errors.is_empty());
            errors
        }
        other => panic!("expected validation errors, got {other:?}"),
    }
}

/// The single validation error of a config expected to break exactly one rule.
fn only_error(yaml: &str) -> ValidationError {
    let mut errors = errors(yaml);
    assert_eq!(errors.len(), 1, "expected exactly one error: {errors:#?}");
    errors.remove(0)
}

/// Asserts rule, subject and field, and that the rendered message names the subject and field.
fn assert_error(e: &ValidationError, rule: Rule, subject: &Subject, field: &str, text: &str) {
    assert_eq!(e.rule, rule, "{e}");
    assert_eq!(&e.subject, subject, "{e}");
    assert_eq!(e.field, field, "{e}");
    let shown = e.to_string();
    assert!(
        shown.contains(&subject.to_string()),
        "{shown:?} lacks subject"
    );
    assert!(shown.contains(field), "{shown:?} lacks field {field}");
    assert!(shown.contains(text), "{shown:?} lacks {text:?}");
}

fn pool(index: usize, name: &str) -> Subject {
    Subject::Pool {
        index,
        name: Some(name.to_owned()),
    }
}

fn peer(index: usize, address: &str) -> Subject {
    Subject::Peer {
        index,
        address: address.to_owned(),
    }
}
