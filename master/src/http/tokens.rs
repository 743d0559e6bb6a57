//! Keel's tokens API, all of it under `manage_tokens`:
//! `POST /api/keel/v1/tokens` (create; the answer carries the token text,
//! shown this once), `GET /api/keel/v1/tokens` (without secrets),
//! `DELETE /api/keel/v1/tokens/{id}` (revoke).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use keel_api::keel::{self as api, CreateToken, CreatedToken, Tokens};

use super::json;
use super::keel::error;
use crate::auth::{Action, Caller};
use crate::core::{Master, NewToken, TokensError};
use crate::registry::{RegistryError, TokenKind, TokenRecord, TokenRefusal};

/// What a join token authenticates as unless told.
pub const JOIN_PRINCIPAL: &str = "keel-agent";
/// A token's lifetime unless told.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

fn view(t: &TokenRecord) -> api::Token {
    api::Token {
        id: t.id.clone(),
        kind: match t.kind {
            TokenKind::Bearer => api::TokenKind::Bearer,
            TokenKind::Join => api::TokenKind::Join,
        },
        principal: t.principal.clone(),
        created_at: t.created_at,
        expires_at: t.expires_at,
        uses_left: t.uses_left,
    }
}

fn list(master: &Master) -> Tokens {
    Tokens {
        tokens: master.token_list().iter().map(view).collect(),
    }
}

fn check(master: &Master, caller: &Caller) -> Option<Response> {
    let denied = master
        .config()
        .trust
        .check(caller, Action::ManageTokens, None)
        .err()?;
    Some(error(StatusCode::FORBIDDEN, denied.to_string()))
}

fn failed(e: TokensError) -> Response {
    let status = match &e {
        _ if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
        TokensError::Text(_) => StatusCode::INTERNAL_SERVER_ERROR,
        TokensError::Master(_) => StatusCode::BAD_REQUEST,
    };
    error(status, e.to_string())
}

/// The request as a [`NewToken`], or why not.
fn new_token(req: CreateToken) -> Result<NewToken, String> {
    let kind = match req.kind {
        api::TokenKind::Bearer => TokenKind::Bearer,
        api::TokenKind::Join => TokenKind::Join,
    };
    let principal = match (kind, req.principal) {
        (_, Some(p)) => p,
        (TokenKind::Join, None) => JOIN_PRINCIPAL.to_string(),
        (TokenKind::Bearer, None) => return Err("a bearer token needs a principal".into()),
    };
    let ttl = match req.ttl_seconds {
        Some(0) => return Err("ttl_seconds must be positive".into()),
        Some(s) => Duration::from_secs(s),
        None => DEFAULT_TTL,
    };
    if req.uses.is_some() && kind == TokenKind::Bearer {
        return Err("only join tokens have a use count".into());
    }
    Ok(NewToken {
        kind,
        principal,
        ttl: Some(ttl),
        uses: req.uses,
    })
}

pub async fn create(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refused) = check(&master, &caller) {
        return refused;
    }
    let new = serde_json::from_slice::<CreateToken>(&body)
        .map_err(|e| format!("expected {{\"kind\": \"bearer\"|\"join\", \"principal\", \"ttl_seconds\", \"uses\"}}: {e}"))
        .and_then(new_token);
    let new = match new {
        Ok(n) => n,
        Err(reason) => return error(StatusCode::BAD_REQUEST, reason),
    };
    match master.create_token(new).await {
        Ok((minted, record)) => json(
            StatusCode::OK,
            &CreatedToken {
                token: minted.text,
                info: view(&record),
            },
        ),
        Err(e) => failed(e),
    }
}

pub async fn tokens(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if let Some(refused) = check(&master, &caller) {
        return refused;
    }
    json(StatusCode::OK, &list(&master))
}

pub async fn revoke(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = check(&master, &caller) {
        return refused;
    }
    match master.revoke_token(&id).await {
        Ok(()) => json(StatusCode::OK, &list(&master)),
        Err(e) => match e.registry_error() {
            Some(RegistryError::Token(TokenRefusal::Unknown(_))) => {
                error(StatusCode::NOT_FOUND, e.to_string())
            }
            _ => failed(e.into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(
        kind: api::TokenKind,
        principal: Option<&str>,
        ttl: Option<u64>,
        uses: Option<u32>,
    ) -> CreateToken {
        CreateToken {
            kind,
            principal: principal.map(str::to_string),
            ttl_seconds: ttl,
            uses,
        }
    }

    #[test]
    fn requests_become_tokens() {
        let join = new_token(req(api::TokenKind::Join, None, None, Some(2))).unwrap();
        assert_eq!(join.principal, JOIN_PRINCIPAL);
        assert_eq!(join.ttl, Some(DEFAULT_TTL));
        assert_eq!(join.uses, Some(2));
        let bearer = new_token(req(api::TokenKind::Bearer, Some("ops"), Some(60), None)).unwrap();
        assert_eq!(bearer.ttl, Some(Duration::from_secs(60)));
        for (bad, needle) in [
            (
                req(api::TokenKind::Bearer, None, None, None),
                "needs a principal",
            ),
            (
                req(api::TokenKind::Join, None, Some(0), None),
                "must be positive",
            ),
            (
                req(api::TokenKind::Bearer, Some("p"), None, Some(1)),
                "only join tokens",
            ),
        ] {
            assert!(new_token(bad).unwrap_err().contains(needle));
        }
    }
}
