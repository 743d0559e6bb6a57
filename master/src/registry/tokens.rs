//! Tokens: bearer tokens for the scheduler and operator APIs, join tokens
//! that admit agents. The registry keeps a SHA-256 of each secret, never
//! the secret; a token has an id, the principal it authenticates as, an
//! expiry and (join tokens) how many uses are left.
//!
//! Token commands are one family, [`TokenCommand`], inside
//! [`Command::Token`](super::Command::Token). Creating a token drops the
//! ones that expired or were used up by then.

use serde::{Deserialize, Serialize};

use super::{Applied, Registry, RegistryError};

/// Most tokens kept at once.
pub const MAX_TOKENS: usize = 10_000;
/// Longest principal of a token.
pub const MAX_PRINCIPAL_BYTES: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// `Authorization: Bearer` on the scheduler and operator APIs.
    Bearer,
    /// Admits an agent.
    Join,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Bearer => "bearer",
            TokenKind::Join => "join",
        }
    }
}

/// A token as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// 16 lowercase hex digits.
    pub id: String,
    pub kind: TokenKind,
    /// Who the token authenticates as.
    pub principal: String,
    /// SHA-256 of the secret, 64 lowercase hex digits.
    pub secret_sha256: String,
    /// Seconds since the epoch.
    pub created_at: f64,
    pub expires_at: Option<f64>,
    /// Join tokens: uses left (`None`: unlimited until expiry).
    pub uses_left: Option<u32>,
}

/// A change to the tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum TokenCommand {
    Create {
        token: TokenRecord,
    },
    Revoke {
        id: String,
    },
    /// An agent presents a join token at `at`: valid, unexpired and with
    /// uses left, it counts one use down.
    ConsumeJoin {
        id: String,
        secret_sha256: String,
        at: f64,
    },
}

/// Why a token command, or a token presented, is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum TokenRefusal {
    #[error("unknown token {0}")]
    Unknown(String),
    #[error("token {id} is a {kind} token")]
    WrongKind { id: String, kind: String },
    #[error("token {0} has expired")]
    Expired(String),
    #[error("token {0} has no uses left")]
    UsedUp(String),
    #[error("wrong secret for token {0}")]
    WrongSecret(String),
    #[error("token {0} exists already")]
    Exists(String),
    #[error("invalid token: {0}")]
    Invalid(String),
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A token id: 16 lowercase hex digits.
pub fn valid_token_id(id: &str) -> bool {
    is_hex(id, 16)
}

impl TokenRecord {
    /// Whether the token is spent at `now` (expired or no uses left).
    pub fn spent(&self, now: f64) -> bool {
        self.expires_at.is_some_and(|e| e <= now) || self.uses_left == Some(0)
    }

    /// Checks a presented token of `kind` whose secret hashes to
    /// `secret_sha256`, at `now`.
    pub fn verify(
        &self,
        kind: TokenKind,
        secret_sha256: &str,
        now: f64,
    ) -> Result<(), TokenRefusal> {
        let same = self.secret_sha256.len() == secret_sha256.len()
            && self
                .secret_sha256
                .bytes()
                .zip(secret_sha256.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return Err(TokenRefusal::WrongSecret(self.id.clone()));
        }
        if self.kind != kind {
            return Err(TokenRefusal::WrongKind {
                id: self.id.clone(),
                kind: self.kind.as_str().into(),
            });
        }
        if self.expires_at.is_some_and(|e| e <= now) {
            return Err(TokenRefusal::Expired(self.id.clone()));
        }
        if self.uses_left == Some(0) {
            return Err(TokenRefusal::UsedUp(self.id.clone()));
        }
        Ok(())
    }

    fn check(&self) -> Result<(), TokenRefusal> {
        let invalid = |m: &str| Err(TokenRefusal::Invalid(format!("{m} (token {:?})", self.id)));
        if !valid_token_id(&self.id) {
            return invalid("the id must be 16 lowercase hex digits");
        }
        if self.principal.is_empty()
            || self.principal.len() > MAX_PRINCIPAL_BYTES
            || self.principal.chars().any(|c| c.is_control() || c == ':')
        {
            return invalid(
                "the principal must be 1 to 256 bytes, without ':' or control characters",
            );
        }
        if !is_hex(&self.secret_sha256, 64) {
            return invalid("the secret's SHA-256 must be 64 lowercase hex digits");
        }
        if !self.created_at.is_finite() {
            return invalid("the creation time must be finite");
        }
        if let Some(e) = self.expires_at
            && !(e.is_finite() && e > self.created_at)
        {
            return invalid("the expiry must be finite and after the creation");
        }
        match (self.kind, self.uses_left) {
            (_, Some(0)) => invalid("a use count must be at least 1"),
            (TokenKind::Bearer, Some(_)) => invalid("only join tokens have a use count"),
            _ => Ok(()),
        }
    }
}

impl Registry {
    pub fn tokens(&self) -> impl Iterator<Item = &TokenRecord> {
        self.tokens.values()
    }

    pub fn token(&self, id: &str) -> Option<&TokenRecord> {
        self.tokens.get(id)
    }

    fn known_token(&self, id: &str) -> Result<&TokenRecord, TokenRefusal> {
        self.tokens
            .get(id)
            .ok_or_else(|| TokenRefusal::Unknown(id.to_string()))
    }

    pub(super) fn validate_token(&self, cmd: &TokenCommand) -> Result<(), RegistryError> {
        let checked = match cmd {
            TokenCommand::Create { token } => token.check().and_then(|()| {
                if self.tokens.contains_key(&token.id) {
                    return Err(TokenRefusal::Exists(token.id.clone()));
                }
                let live = self
                    .tokens
                    .values()
                    .filter(|t| !t.spent(token.created_at))
                    .count();
                if live >= MAX_TOKENS {
                    return Err(TokenRefusal::Invalid(format!(
                        "{MAX_TOKENS} tokens exist already; revoke some first"
                    )));
                }
                Ok(())
            }),
            TokenCommand::Revoke { id } => self.known_token(id).map(|_| ()),
            TokenCommand::ConsumeJoin {
                id,
                secret_sha256,
                at,
            } => self
                .known_token(id)
                .and_then(|t| t.verify(TokenKind::Join, secret_sha256, *at)),
        };
        checked.map_err(RegistryError::Token)
    }

    pub(super) fn apply_token(&mut self, cmd: &TokenCommand) -> Applied {
        match cmd {
            TokenCommand::Create { token } => {
                self.tokens.retain(|_, t| !t.spent(token.created_at));
                self.tokens.insert(token.id.clone(), token.clone());
                Applied::TokenCreated {
                    id: token.id.clone(),
                }
            }
            TokenCommand::Revoke { id } => {
                self.tokens.remove(id);
                Applied::TokenRevoked { id: id.clone() }
            }
            TokenCommand::ConsumeJoin { id, .. } => {
                let uses_left = self.tokens.get_mut(id).and_then(|t| {
                    if let Some(n) = &mut t.uses_left {
                        *n = n.saturating_sub(1);
                    }
                    t.uses_left
                });
                Applied::JoinTokenConsumed {
                    id: id.clone(),
                    uses_left,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Command;
    use super::*;

    fn record(
        id: &str,
        kind: TokenKind,
        expires_at: Option<f64>,
        uses: Option<u32>,
    ) -> TokenRecord {
        TokenRecord {
            id: id.into(),
            kind,
            principal: "ops".into(),
            secret_sha256: "ab".repeat(32),
            created_at: 100.0,
            expires_at,
            uses_left: uses,
        }
    }

    fn registry() -> Registry {
        let mut r = Registry::default();
        r.apply(&Command::Bootstrap {
            master_id: "m".into(),
        })
        .unwrap();
        r
    }

    fn token(cmd: TokenCommand) -> Command {
        Command::Token(cmd)
    }

    #[test]
    fn join_tokens_count_down_and_expire() {
        let mut r = registry();
        let t = record("00000000000000aa", TokenKind::Join, Some(200.0), Some(2));
        r.apply(&token(TokenCommand::Create { token: t.clone() }))
            .unwrap();
        let consume = |at: f64, hash: &str| {
            token(TokenCommand::ConsumeJoin {
                id: t.id.clone(),
                secret_sha256: hash.into(),
                at,
            })
        };
        let good = "ab".repeat(32);
        assert_eq!(
            r.apply(&consume(150.0, &"cd".repeat(32))),
            Err(RegistryError::Token(TokenRefusal::WrongSecret(
                t.id.clone()
            )))
        );
        assert_eq!(
            r.apply(&consume(200.0, &good)),
            Err(RegistryError::Token(TokenRefusal::Expired(t.id.clone())))
        );
        assert_eq!(
            r.apply(&consume(150.0, &good)),
            Ok(Applied::JoinTokenConsumed {
                id: t.id.clone(),
                uses_left: Some(1)
            })
        );
        r.apply(&consume(151.0, &good)).unwrap();
        assert_eq!(
            r.apply(&consume(152.0, &good)),
            Err(RegistryError::Token(TokenRefusal::UsedUp(t.id.clone())))
        );
        // A later creation drops the spent token.
        let b = record("00000000000000bb", TokenKind::Bearer, None, None);
        r.apply(&token(TokenCommand::Create { token: b.clone() }))
            .unwrap();
        assert_eq!(r.tokens().map(|t| &t.id).collect::<Vec<_>>(), [&b.id]);
        assert_eq!(
            r.apply(&consume(150.0, &good)),
            Err(RegistryError::Token(TokenRefusal::Unknown(t.id.clone())))
        );
    }

    #[test]
    fn bearer_tokens_are_not_for_joining() {
        let mut r = registry();
        let b = record("00000000000000bb", TokenKind::Bearer, None, None);
        r.apply(&token(TokenCommand::Create { token: b.clone() }))
            .unwrap();
        let err = r.validate(&token(TokenCommand::ConsumeJoin {
            id: b.id.clone(),
            secret_sha256: b.secret_sha256.clone(),
            at: 1.0,
        }));
        assert!(matches!(
            err,
            Err(RegistryError::Token(TokenRefusal::WrongKind { .. }))
        ));
        assert!(b.verify(TokenKind::Bearer, &b.secret_sha256, 1e12).is_ok());
        r.apply(&token(TokenCommand::Revoke { id: b.id.clone() }))
            .unwrap();
        assert!(r.token(&b.id).is_none());
        assert!(
            r.validate(&token(TokenCommand::Revoke { id: b.id.clone() }))
                .is_err()
        );
    }

    #[test]
    fn invalid_tokens_are_refused_before_they_are_recorded() {
        let r = registry();
        let ok = record("00000000000000aa", TokenKind::Join, Some(200.0), Some(1));
        for bad in [
            TokenRecord {
                id: "XYZ".into(),
                ..ok.clone()
            },
            TokenRecord {
                principal: String::new(),
                ..ok.clone()
            },
            TokenRecord {
                principal: "a:b".into(),
                ..ok.clone()
            },
            TokenRecord {
                secret_sha256: "plain".into(),
                ..ok.clone()
            },
            TokenRecord {
                expires_at: Some(50.0),
                ..ok.clone()
            },
            TokenRecord {
                expires_at: Some(f64::INFINITY),
                ..ok.clone()
            },
            TokenRecord {
                uses_left: Some(0),
                ..ok.clone()
            },
            TokenRecord {
                kind: TokenKind::Bearer,
                ..ok.clone()
            },
        ] {
            let cmd = token(TokenCommand::Create { token: bad.clone() });
            assert!(
                matches!(
                    r.validate(&cmd),
                    Err(RegistryError::Token(TokenRefusal::Invalid(_)))
                ),
                "{bad:?}"
            );
        }
        assert!(
            r.validate(&token(TokenCommand::Create { token: ok }))
                .is_ok()
        );
    }

    #[test]
    fn commands_read_back_from_the_log() {
        let cmd = token(TokenCommand::ConsumeJoin {
            id: "00000000000000aa".into(),
            secret_sha256: "ab".repeat(32),
            at: 1.5,
        });
        let text = serde_json::to_string(&cmd).unwrap();
        assert!(text.contains(r#""command":"token""#), "{text}");
        assert!(text.contains(r#""op":"consume_join""#), "{text}");
        assert_eq!(serde_json::from_str::<Command>(&text).unwrap(), cmd);
    }
}
