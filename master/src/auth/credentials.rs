//! The `--credentials` file, as Mesos reads it: JSON
//! (`{"credentials": [{"principal": "p", "secret": "s"}]}`) or text, one
//! `principal secret` pair a line. A `file://` prefix of the path is
//! dropped, as Mesos does. Secrets are kept only as SHA-256 digests and
//! compared without early exit.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Largest credentials file read.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Longest principal or secret.
pub const MAX_FIELD_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read credentials file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("credentials file {path} is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("credentials file {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The principals and (digests of) their secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    secrets: BTreeMap<String, [u8; 32]>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("principals", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    credentials: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    principal: String,
    secret: String,
}

/// `path` without a `file://` prefix (Mesos' flags take either).
pub(crate) fn without_file_scheme(path: &Path) -> PathBuf {
    path.to_str()
        .and_then(|p| p.strip_prefix("file://"))
        .map(PathBuf::from)
        .unwrap_or_else(|| path.to_path_buf())
}

pub(crate) fn digest(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// Equal without an early exit on the first differing byte.
pub(crate) fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Credentials {
    /// Reads `path` (within [`MAX_FILE_BYTES`]); errors name the file.
    /// Warns when others may read it, as Mesos does.
    pub fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        let path = without_file_scheme(path);
        let read = |source| CredentialsError::Read {
            path: path.clone(),
            source,
        };
        let file = std::fs::File::open(&path).map_err(read)?;
        if let Ok(meta) = file.metadata() {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o007 != 0 {
                tracing::warn!(path = %path.display(), "credentials file is readable by others");
            }
        }
        let mut text = String::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(read)?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(CredentialsError::TooLarge { path });
        }
        Credentials::parse(&path, &text)
    }

    /// Parses the text of the file at `path`: JSON when it starts with
    /// `{`, else lines.
    fn parse(path: &Path, text: &str) -> Result<Credentials, CredentialsError> {
        let invalid = |reason: String| CredentialsError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let pairs: Vec<(String, String)> = if text.trim_start().starts_with('{') {
            let file: File = serde_json::from_str(text)
                .map_err(|e| invalid(format!("not valid credentials JSON: {e}")))?;
            file.credentials
                .into_iter()
                .map(|e| (e.principal, e.secret))
                .collect()
        } else {
            let mut pairs = Vec::new();
            for (n, line) in text.lines().enumerate() {
                let words: Vec<&str> = line.split_whitespace().collect();
                match words[..] {
                    [] => {}
                    [p, s] => pairs.push((p.to_string(), s.to_string())),
                    _ => {
                        return Err(invalid(format!(
                            "line {}: expected 'principal secret', got {} words",
                            n + 1,
                            words.len()
                        )));
                    }
                }
            }
            pairs
        };
        let mut creds = Credentials::default();
        for (principal, secret) in pairs {
            if let Some(reason) = creds.insert(&principal, &secret) {
                return Err(invalid(reason));
            }
        }
        if creds.secrets.is_empty() {
            return Err(invalid("no credentials in it".into()));
        }
        Ok(creds)
    }

    /// Adds a pair; the reason it cannot be added otherwise.
    fn insert(&mut self, principal: &str, secret: &str) -> Option<String> {
        if principal.is_empty() || secret.is_empty() {
            return Some("a principal or a secret is empty".into());
        }
        if principal.len() > MAX_FIELD_BYTES || secret.len() > MAX_FIELD_BYTES {
            return Some(format!(
                "a principal or a secret is longer than {MAX_FIELD_BYTES} bytes"
            ));
        }
        if principal.contains(':') || principal.chars().any(char::is_control) {
            return Some(format!(
                "principal {principal:?} has a ':' or a control character (HTTP basic cannot carry it)"
            ));
        }
        if self
            .secrets
            .insert(principal.to_string(), digest(secret.as_bytes()))
            .is_some()
        {
            return Some(format!("principal '{principal}' is listed twice"));
        }
        None
    }

    /// Whether `secret` is `principal`'s.
    pub fn check(&self, principal: &str, secret: &[u8]) -> bool {
        let given = digest(secret);
        match self.secrets.get(principal) {
            Some(known) => same(known, &given),
            None => {
                // As long as a known principal's check.
                let _ = same(&given, &[0; 32]);
                false
            }
        }
    }

    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// For tests: credentials from pairs.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<Credentials, CredentialsError> {
        let mut creds = Credentials::default();
        for (p, s) in pairs {
            if let Some(reason) = creds.insert(p, s) {
                return Err(CredentialsError::Invalid {
                    path: PathBuf::new(),
                    reason,
                });
            }
        }
        Ok(creds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Credentials, String> {
        Credentials::parse(Path::new("f"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn json_and_text_files() {
        let json = parse(
            r#"{"credentials": [{"principal": "fw", "secret": "s1"}, {"principal": "ops", "secret": "s2"}]}"#,
        )
        .unwrap();
        assert!(json.check("fw", b"s1"));
        assert!(json.check("ops", b"s2"));
        assert!(!json.check("fw", b"s2"));
        assert!(!json.check("nobody", b"s1"));
        let text = parse("fw s1\n\n  ops\ts2  \n").unwrap();
        assert_eq!(text, json);
    }

    #[test]
    fn bad_files_say_why() {
        for (text, needle) in [
            ("", "no credentials"),
            ("{\"credentials\": []}", "no credentials"),
            (
                "{\"credentials\": [{\"principal\": \"a\"}]}",
                "missing field `secret`",
            ),
            ("{\"credential\": []}", "unknown field `credential`"),
            ("{not json", "not valid credentials JSON"),
            (
                "a b\nc\n",
                "line 2: expected 'principal secret', got 1 words",
            ),
            ("a b c", "got 3 words"),
            ("a b\na c", "principal 'a' is listed twice"),
            ("a:b c", "has a ':'"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn files_are_read_within_limits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds");
        std::fs::write(&path, "fw s1\n").unwrap();
        let url = format!("file://{}", path.display());
        assert!(
            Credentials::load(Path::new(&url))
                .unwrap()
                .check("fw", b"s1")
        );
        let missing = Credentials::load(&dir.path().join("nope")).unwrap_err();
        assert!(missing.to_string().contains("nope"), "{missing}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; MAX_FILE_BYTES as usize + 1]).unwrap();
        let err = Credentials::load(&big).unwrap_err().to_string();
        assert!(err.contains("big") && err.contains("larger than"), "{err}");
        std::fs::write(&big, "{\"credentials\": 7}").unwrap();
        let err = Credentials::load(&big).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("credentials file {}: ", big.display())),
            "{err}"
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let c = parse("fw topsecret").unwrap();
        let text = format!("{c:?}");
        assert!(text.contains("fw") && !text.contains("topsecret"), "{text}");
    }
}
