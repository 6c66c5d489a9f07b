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
pub struct GossipKey(Vec<u8>);

impl GossipKey {
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

/// The keys in force: one to send with, and during a rotation one more that is also accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRing {
    pub send: GossipKey,
    pub accept: Option<GossipKey>,
}

impl From<GossipKey> for KeyRing {
    fn from(send: GossipKey) -> Self {
        Self { send, accept: None }
    }
}

impl KeyRing {
    /// Every key a packet may be authenticated with, the send key first.
    pub fn all(&self) -> impl Iterator<Item = &GossipKey> {
        std::iter::once(&self.send).chain(self.accept.iter().filter(|k| **k != self.send))
    }
}

/// Where the keys are read from, again whenever they may have changed (a mounted Secret is
/// replaced in place by the kubelet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFiles {
    /// `--memberlist-key-file`; `None`: the key is in [`KEY_ENV`] and never changes.
    pub key: Option<PathBuf>,
    /// `--memberlist-accept-key-file`: a second key accepted but not sent with. A missing or
    /// empty file means none (the Secret has no such entry outside a rotation).
    pub accept: Option<PathBuf>,
}

impl KeyFiles {
    pub fn load(&self) -> Result<KeyRing, KeyError> {
        let send = GossipKey::load(self.key.as_deref())?;
        let accept = match &self.accept {
            None => None,
            Some(path) => match std::fs::read(path) {
                Ok(bytes) if bytes.trim_ascii().is_empty() => None,
                Ok(bytes) => Some(GossipKey::from_bytes(&bytes, &path.display().to_string())?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(source) => {
                    return Err(KeyError::Read {
                        path: path.clone(),
                        source,
                    });
                }
            },
        };
        Ok(KeyRing { send, accept })
    }

    /// Whether the key file itself is missing (the Secret may not exist yet).
    pub fn key_file_missing(&self) -> bool {
        self.key.as_deref().is_some_and(|p| !p.exists())
    }

    /// Whether the keys can change while running.
    pub fn reloadable(&self) -> bool {
        self.key.is_some() || self.accept.is_some()
    }
}

impl fmt::Debug for GossipKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GossipKey({} bytes, redacted)", self.0.len())
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
        let key = GossipKey::load(Some(file.path())).unwrap();
        assert_eq!(key.as_bytes(), b"0123456789abcdef0123");

        let mut short = tempfile::NamedTempFile::new().unwrap();
        short.write_all(b"  short \n").unwrap();
        let err = GossipKey::load(Some(short.path())).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, KeyError::TooShort { len: 5, .. }), "{text}");
        assert!(text.contains(&short.path().display().to_string()), "{text}");
    }

    #[test]
    fn empty_and_missing_keys_are_clear_errors() {
        let err = GossipKey::from_bytes(b"\n", KEY_ENV).unwrap_err();
        assert!(err.to_string().contains(KEY_ENV), "{err}");
        assert!(matches!(err, KeyError::TooShort { len: 0, .. }));

        let missing = std::path::Path::new("/nonexistent/ferrolb-key");
        let err = GossipKey::load(Some(missing)).unwrap_err();
        assert!(matches!(err, KeyError::Read { .. }));
        assert!(
            err.to_string().contains("/nonexistent/ferrolb-key"),
            "{err}"
        );
    }

    #[test]
    fn accept_key_is_optional_and_checked_when_present() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("secretkey");
        let accept = dir.path().join("acceptkey");
        std::fs::write(&key, "0123456789abcdef-send\n").unwrap();
        let files = KeyFiles {
            key: Some(key.clone()),
            accept: Some(accept.clone()),
        };
        let ring = files.load().unwrap();
        assert_eq!(ring.send.as_bytes(), b"0123456789abcdef-send");
        assert_eq!(ring.accept, None, "missing accept file: no second key");
        std::fs::write(&accept, "\n").unwrap();
        assert_eq!(files.load().unwrap().accept, None, "empty: no second key");
        std::fs::write(&accept, "0123456789abcdef-next").unwrap();
        let ring = files.load().unwrap();
        assert_eq!(ring.all().count(), 2);
        assert_eq!(ring.all().next(), Some(&ring.send), "send key first");
        std::fs::write(&accept, "short").unwrap();
        let err = files.load().unwrap_err();
        assert!(err.to_string().contains("acceptkey"), "{err}");
        std::fs::remove_file(&key).unwrap();
        assert!(files.key_file_missing());
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let key = GossipKey::from_bytes(b"super-secret-value-123", "test").unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
