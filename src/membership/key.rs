//! The shared gossip secret.

use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Environment variable holding the key itself (not a path), for `--memberlist-key-file` absent.
pub const KEY_ENV: &str = "FERROLB_MEMBERLIST_KEY";

/// Fewer bytes than this is refused: a short shared secret can be brute-forced offline from one
/// captured packet. 16 bytes is 128 bits when random; MetalLB's chart generates 128 random bytes.
pub const MIN_KEY_LEN: usize = 16;

/// Why no key could be loaded.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("cannot read memberlist key file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no memberlist key: pass --memberlist-key-file or set {KEY_ENV} (gossip packets are \
         authenticated with it)"
    )]
    Missing,
    #[error(
        "memberlist key from {origin} is {len} bytes after trimming whitespace; at least \
         {MIN_KEY_LEN} are required"
    )]
    TooShort { origin: String, len: usize },
}

/// A secret shared by all speakers. Its bytes never appear in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct MemberlistKey(Vec<u8>);

impl MemberlistKey {
    /// Takes the key bytes as given, surrounding ASCII whitespace removed (files and Secrets
    /// usually end with a newline that is not meant to be part of the key).
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Self, KeyError> {
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort {
                origin: origin.to_string(),
                len: trimmed.len(),
            });
        }
        Ok(Self(trimmed.to_vec()))
    }

    /// Reads the key from `file` if given, otherwise from [`KEY_ENV`].
    pub fn load(file: Option<&Path>) -> Result<Self, KeyError> {
        match file {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                Self::from_bytes(&bytes, &path.display().to_string())
            }
            None => {
                let value = std::env::var_os(KEY_ENV).ok_or(KeyError::Missing)?;
                Self::from_bytes(value.as_encoded_bytes(), KEY_ENV)
            }
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for MemberlistKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemberlistKey({} bytes, redacted)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn file_key_is_trimmed_and_length_checked() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"0123456789abcdef0123\n").unwrap();
        let key = MemberlistKey::load(Some(file.path())).unwrap();
        assert_eq!(key.as_bytes(), b"0123456789abcdef0123");

        let mut short = tempfile::NamedTempFile::new().unwrap();
        short.write_all(b"  short \n").unwrap();
        let err = MemberlistKey::load(Some(short.path())).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, KeyError::TooShort { len: 5, .. }), "{text}");
        assert!(text.contains(&short.path().display().to_string()), "{text}");
    }

    #[test]
    fn empty_and_missing_keys_are_clear_errors() {
        let err = MemberlistKey::from_bytes(b"\n", KEY_ENV).unwrap_err();
        assert!(err.to_string().contains(KEY_ENV), "{err}");
        assert!(matches!(err, KeyError::TooShort { len: 0, .. }));

        let missing = std::path::Path::new("/nonexistent/ferrolb-key");
        let err = MemberlistKey::load(Some(missing)).unwrap_err();
        assert!(matches!(err, KeyError::Read { .. }));
        assert!(
            err.to_string().contains("/nonexistent/ferrolb-key"),
            "{err}"
        );
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let key = MemberlistKey::from_bytes(b"super-secret-value-123", "test").unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
