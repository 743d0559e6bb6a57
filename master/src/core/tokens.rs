//! Tokens: minted here (the randomness is I/O), committed as registry
//! commands, looked up when a request presents one. The token text is
//! returned once, by [`Master::create_token`]; the registry keeps its
//! SHA-256.

use std::time::Duration;

use super::{Master, MasterError, unix_now};
use crate::auth::tokens::{self, Minted, TokenError};
use crate::registry::{Command, RegistryError, TokenCommand, TokenKind, TokenRecord, TokenRefusal};

#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error(transparent)]
    Text(#[from] TokenError),
    #[error(transparent)]
    Master(#[from] MasterError),
}

impl TokensError {
    /// Whether the same request may succeed later or on another master.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, TokensError::Master(m) if m.is_unavailable())
    }
}

/// What to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewToken {
    pub kind: TokenKind,
    pub principal: String,
    /// `None`: the token does not expire.
    pub ttl: Option<Duration>,
    /// Join tokens: how many agents it admits.
    pub uses: Option<u32>,
}

impl Master {
    /// The token `id`, for authenticating a request (the leader's copy, or
    /// the committed registry on a follower).
    pub fn token(&self, id: &str) -> Option<TokenRecord> {
        if self.serving() {
            self.lock().engine.registry().token(id).cloned()
        } else {
            self.replicator.shared_registry().token(id).cloned()
        }
    }

    /// Every token kept (spent ones until the next creation drops them).
    pub fn token_list(&self) -> Vec<TokenRecord> {
        self.registry().tokens().cloned().collect()
    }

    async fn commit_token(&self, cmd: TokenCommand) -> Result<(), MasterError> {
        let w = self.write().await;
        let cmd = Command::Token(cmd);
        self.with(|e, _| e.registry().validate(&cmd))?;
        self.commit(&w, cmd).await?;
        Ok(())
    }

    /// Mints and records a token; its text is in the answer and nowhere
    /// else.
    pub async fn create_token(&self, new: NewToken) -> Result<(Minted, TokenRecord), TokensError> {
        let minted = tokens::mint()?;
        let now = unix_now();
        let record = TokenRecord {
            id: minted.id.clone(),
            kind: new.kind,
            principal: new.principal,
            secret_sha256: minted.secret_sha256.clone(),
            created_at: now,
            expires_at: new.ttl.map(|ttl| now + ttl.as_secs_f64()),
            uses_left: new.uses,
        };
        self.commit_token(TokenCommand::Create {
            token: record.clone(),
        })
        .await?;
        tracing::info!(id = %record.id, kind = record.kind.as_str(), principal = %record.principal, "token created");
        Ok((minted, record))
    }

    pub async fn revoke_token(&self, id: &str) -> Result<(), MasterError> {
        self.commit_token(TokenCommand::Revoke { id: id.to_string() })
            .await?;
        tracing::info!(%id, "token revoked");
        Ok(())
    }

    /// An agent presents join token `text`: valid, unexpired and with uses
    /// left, one use is recorded; the token as it is then (its principal,
    /// the uses left). A refusal is a [`RegistryError::Token`] inside the
    /// [`MasterError`].
    pub async fn consume_join_token(&self, text: &str) -> Result<TokenRecord, TokensError> {
        let presented = tokens::parse(text)?;
        self.commit_token(TokenCommand::ConsumeJoin {
            id: presented.id.clone(),
            secret_sha256: presented.secret_sha256,
            at: unix_now(),
        })
        .await?;
        self.token(&presented.id).ok_or_else(|| {
            MasterError::from(RegistryError::Token(TokenRefusal::Unknown(presented.id))).into()
        })
    }
}
