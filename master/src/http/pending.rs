//! Agents that wait with an attested TPM (`--agent-admission tpm`):
//! `GET /api/keel/v1/agents/pending` (`view_agents`; `?all=true`: the
//! approved and denied EKs too), `POST
//! /api/keel/v1/agents/pending/{id}/approve` and `.../deny`
//! (`approve_agents`). `{id}` is a pending agent's id (the first 16 hex
//! digits of its EK fingerprint), or a whole fingerprint (`sha256:<hex>`
//! or the bare hex), which may be approved before its agent shows up.

use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keel_api::keel::{self as api, PendingAgents};

use super::json;
use super::keel::error;
use crate::auth::{Action, Caller};
use crate::core::Master;
use crate::registry::eks::valid_fingerprint;
use crate::registry::{EkRecord, EkState, RegistryError};

/// The fewest digits that name an EK.
const MIN_ID: usize = 8;

fn view(r: &EkRecord) -> api::PendingAgent {
    api::PendingAgent {
        id: r.id().to_string(),
        ek_sha256: r.fingerprint.clone(),
        state: match r.state {
            EkState::Pending => api::EkState::Pending,
            EkState::Approved => api::EkState::Approved,
            EkState::Denied => api::EkState::Denied,
        },
        hostname: r.hostname.clone(),
        ip: r.ip.clone(),
        first_seen: r.first_seen,
        last_seen: r.last_seen,
        decided_at: r.decided_at,
    }
}

fn list(master: &Master, all: bool) -> PendingAgents {
    let mut agents: Vec<api::PendingAgent> = master
        .endorsement_keys()
        .iter()
        .filter(|r| all || r.state == EkState::Pending)
        .map(view)
        .collect();
    agents.sort_by(|a, b| a.first_seen.total_cmp(&b.first_seen));
    PendingAgents { agents }
}

fn check(master: &Master, caller: &Caller, action: Action) -> Option<Response> {
    let denied = master.config().trust.check(caller, action, None).err()?;
    Some(error(StatusCode::FORBIDDEN, denied.to_string()))
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    all: bool,
}

pub async fn pending(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<ListQuery>,
) -> Response {
    if let Some(refused) = check(&master, &caller, Action::ViewAgent) {
        return refused;
    }
    json(StatusCode::OK, &list(&master, query.all))
}

/// The fingerprint `id` names: a whole one as it is, a short id when
/// exactly one known EK has it.
fn resolve(known: &[EkRecord], id: &str) -> Result<String, (StatusCode, String)> {
    if let Some(f) = keel_attest::parse_fingerprint(id) {
        return Ok(f);
    }
    let id = id.to_ascii_lowercase();
    if id.len() < MIN_ID || id.len() > 64 {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("{id:?}: expected an agent's id from `keelctl agents pending` or sha256:<hex>"),
        ));
    }
    let mut matching = known.iter().filter(|r| r.fingerprint.starts_with(&id));
    match (matching.next(), matching.next()) {
        (Some(r), None) => Ok(r.fingerprint.clone()),
        (Some(_), Some(_)) => Err((
            StatusCode::BAD_REQUEST,
            format!("{id} names several endorsement keys: give more digits"),
        )),
        (None, _) => Err((StatusCode::NOT_FOUND, format!("no pending agent {id}"))),
    }
}

async fn decide(master: &Master, caller: &Caller, id: &str, approve: bool) -> Response {
    if let Some(refused) = check(master, caller, Action::ApproveAgent) {
        return refused;
    }
    let fingerprint = match resolve(&master.endorsement_keys(), id) {
        Ok(f) if valid_fingerprint(&f) => f,
        Ok(f) => return error(StatusCode::BAD_REQUEST, format!("invalid fingerprint {f}")),
        Err((status, reason)) => return error(status, reason),
    };
    match master.decide_ek(&fingerprint, approve).await {
        Ok(()) => json(StatusCode::OK, &list(master, false)),
        Err(e) if e.is_unavailable() => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(e) => match e.registry_error() {
            Some(RegistryError::Ek(_)) => error(StatusCode::BAD_REQUEST, e.to_string()),
            _ => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
    }
}

pub async fn approve(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    decide(&master, &caller, &id, true).await
}

pub async fn deny(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    decide(&master, &caller, &id, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(f: &str) -> EkRecord {
        EkRecord {
            fingerprint: f.into(),
            state: EkState::Pending,
            hostname: "n".into(),
            ip: String::new(),
            first_seen: 1.0,
            last_seen: 1.0,
            decided_at: None,
        }
    }

    #[test]
    fn ids_name_one_endorsement_key() {
        let a = format!("{}{}", "ab".repeat(8), "00".repeat(24));
        let b = format!("{}{}", "ab".repeat(8), "11".repeat(24));
        let c = "cd".repeat(32);
        let known = [record(&a), record(&c)];
        assert_eq!(resolve(&known, &a[..16]).unwrap(), a);
        assert_eq!(resolve(&known, &c[..16].to_uppercase()).unwrap(), c);
        // A whole fingerprint needs no record.
        assert_eq!(resolve(&known, &format!("sha256:{b}")).unwrap(), b);
        let both = [record(&a), record(&b)];
        assert_eq!(
            resolve(&both, &a[..16]).unwrap_err().0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            resolve(&known, "eeeeeeeeeeeeeeee").unwrap_err().0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            resolve(&known, "ab").unwrap_err().0,
            StatusCode::BAD_REQUEST
        );
    }
}
