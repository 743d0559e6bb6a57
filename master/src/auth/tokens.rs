//! Token text: `keel1.<id>.<secret>`, the id 16 hex digits (8 random
//! bytes), the secret 32 random bytes in unpadded base64url. The master
//! hands the text out once; the registry keeps the id and a SHA-256 of
//! the secret ([`crate::registry::tokens`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// The version prefix of Keel's token text.
pub const PREFIX: &str = "keel1";
/// Longest token text read from a request.
pub const MAX_TOKEN_BYTES: usize = 256;
const SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    #[error("malformed token: expected keel1.<id>.<secret>")]
    Malformed,
    #[error("no randomness for a token: {0}")]
    Random(String),
}

/// A token as presented: its id and the SHA-256 of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    pub id: String,
    pub secret_sha256: String,
}

/// A new token: the text to hand out once, and what the registry keeps.
#[derive(Clone, PartialEq, Eq)]
pub struct Minted {
    pub text: String,
    pub id: String,
    pub secret_sha256: String,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted").field("id", &self.id).finish()
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `secret` in lowercase hex.
pub fn secret_sha256(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// A new random token.
pub fn mint() -> Result<Minted, TokenError> {
    let mut id = [0u8; 8];
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::fill(&mut id).map_err(|e| TokenError::Random(e.to_string()))?;
    getrandom::fill(&mut secret).map_err(|e| TokenError::Random(e.to_string()))?;
    let id = hex(&id);
    let secret = URL_SAFE_NO_PAD.encode(secret);
    Ok(Minted {
        text: format!("{PREFIX}.{id}.{secret}"),
        secret_sha256: secret_sha256(&secret),
        id,
    })
}

/// Reads a presented token's text.
pub fn parse(text: &str) -> Result<Presented, TokenError> {
    if text.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLong);
    }
    let mut parts = text.split('.');
    let (Some(PREFIX), Some(id), Some(secret), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let secret_ok = URL_SAFE_NO_PAD
        .decode(secret)
        .is_ok_and(|s| s.len() == SECRET_BYTES);
    if !crate::registry::tokens::valid_token_id(id) || !secret_ok {
        return Err(TokenError::Malformed);
    }
    Ok(Presented {
        id: id.to_string(),
        secret_sha256: secret_sha256(secret),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_parse_back() {
        let m = mint().unwrap();
        assert!(m.text.starts_with("keel1."));
        assert_eq!(m.text.len(), 6 + 16 + 1 + 43);
        let p = parse(&m.text).unwrap();
        assert_eq!(p.id, m.id);
        assert_eq!(p.secret_sha256, m.secret_sha256);
        assert_ne!(mint().unwrap().text, m.text);
        assert!(!format!("{m:?}").contains(&m.text));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let m = mint().unwrap();
        let secret = m.text.rsplit('.').next().unwrap();
        for bad in [
            String::new(),
            "keel1".into(),
            format!("keel2.{}.{secret}", m.id),
            format!("keel1.{}.{secret}.x", m.id),
            format!("keel1.XYZ.{secret}"),
            format!("keel1.{}.short", m.id),
            format!("keel1.{}.{}", m.id, "=".repeat(43)),
        ] {
            assert_eq!(parse(&bad), Err(TokenError::Malformed), "{bad}");
        }
        assert_eq!(
            parse(&"a".repeat(MAX_TOKEN_BYTES + 1)),
            Err(TokenError::TooLong)
        );
    }
}
