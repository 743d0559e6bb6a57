//! `keelctl tokens`: create (the token alone on stdout, so that
//! `TOKEN=$(keelctl tokens create)` works), list, revoke.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use clap::Subcommand;
use keel_api::keel::{CreateToken, TokenKind, Tokens};
use keel_client::Client;

use crate::output;

#[derive(Debug, Subcommand)]
pub enum TokensAction {
    /// Create a token and print it: a join token (admits agents) unless
    /// --bearer (authenticates API clients as --principal).
    Create {
        /// How long the token is valid.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Join tokens: how many agents it admits (default: any number).
        #[arg(long)]
        uses: Option<u32>,
        /// Who the token authenticates as (required with --bearer; join
        /// tokens default to keel-agent).
        #[arg(long)]
        principal: Option<String>,
        /// A bearer token for the scheduler and operator APIs.
        #[arg(long)]
        bearer: bool,
    },
    /// List the tokens (never their secrets).
    List,
    /// Revoke the token with ID.
    Revoke { id: String },
}

/// The request for `tokens create`.
pub fn request(
    ttl: Duration,
    uses: Option<u32>,
    principal: Option<String>,
    bearer: bool,
) -> Result<CreateToken> {
    anyhow::ensure!(!bearer || principal.is_some(), "--bearer needs --principal");
    anyhow::ensure!(
        !bearer || uses.is_none(),
        "--uses applies to join tokens only"
    );
    anyhow::ensure!(ttl.as_secs() > 0, "--ttl must be at least a second");
    Ok(CreateToken {
        kind: if bearer {
            TokenKind::Bearer
        } else {
            TokenKind::Join
        },
        principal,
        ttl_seconds: Some(ttl.as_secs()),
        uses,
    })
}

fn when(t: Option<f64>, now: f64) -> String {
    match t {
        None => "never".into(),
        Some(t) if t <= now => "expired".into(),
        Some(t) => format!(
            "in {}",
            humantime::format_duration(Duration::from_secs((t - now) as u64))
        ),
    }
}

pub fn table(body: &Tokens, now: f64) -> String {
    let rows: Vec<Vec<String>> = body
        .tokens
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                match t.kind {
                    TokenKind::Bearer => "bearer".into(),
                    TokenKind::Join => "join".into(),
                },
                t.principal.clone(),
                when(t.expires_at, now),
                t.uses_left.map_or_else(|| "-".into(), |u| u.to_string()),
            ]
        })
        .collect();
    output::table(&["ID", "KIND", "PRINCIPAL", "EXPIRES", "USES LEFT"], &rows)
}

pub async fn run(client: &Client, action: TokensAction, json: bool) -> Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let tokens = match action {
        TokensAction::Create {
            ttl,
            uses,
            principal,
            bearer,
        } => {
            let created = client
                .create_token(&request(ttl, uses, principal, bearer)?)
                .await?;
            return match json {
                true => output::print_json(&created),
                false => Ok(output::print(&format!("{}\n", created.token))?),
            };
        }
        TokensAction::List => client.tokens().await?,
        TokensAction::Revoke { id } => client.revoke_token(&id).await?,
    };
    match json {
        true => output::print_json(&tokens),
        false => Ok(output::print(&table(&tokens, now))?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_api::keel::Token;

    #[test]
    fn create_requests() {
        let join = request(Duration::from_secs(3600), Some(2), None, false).unwrap();
        assert_eq!(join.kind, TokenKind::Join);
        assert_eq!(join.ttl_seconds, Some(3600));
        assert!(request(Duration::from_secs(60), None, None, true).is_err());
        assert!(request(Duration::from_secs(60), Some(1), Some("p".into()), true).is_err());
        let bearer = request(Duration::from_secs(60), None, Some("p".into()), true).unwrap();
        assert_eq!(bearer.kind, TokenKind::Bearer);
    }

    #[test]
    fn tables_say_when_tokens_expire() {
        let body = Tokens {
            tokens: vec![Token {
                id: "00000000000000aa".into(),
                kind: TokenKind::Join,
                principal: "keel-agent".into(),
                created_at: 0.0,
                expires_at: Some(3600.0),
                uses_left: Some(2),
            }],
        };
        let text = table(&body, 0.0);
        assert!(
            text.contains("00000000000000aa") && text.contains("in 1h") && text.contains('2'),
            "{text}"
        );
        assert!(table(&body, 4000.0).contains("expired"));
    }
}
