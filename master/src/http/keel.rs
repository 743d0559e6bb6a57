//! Keel's own read API (`/api/keel/v1`): strict JSON, errors as
//! `{"error": "..."}`.

use std::sync::Arc;

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use keel_api::keel::{AgentDetail, Agents, Error};

use super::{json, views};
use crate::auth::{Action, Caller};
use crate::core::Master;
use crate::registry::AgentRecord;

/// `403` unless the caller may see the agents.
fn check_view(master: &Master, caller: &Caller) -> Option<Response> {
    let trust = &master.config().trust;
    let denied = trust.check(caller, Action::ViewAgent, None).err()?;
    Some(error(StatusCode::FORBIDDEN, denied.to_string()))
}

pub async fn agents(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if let Some(refused) = check_view(&master, &caller) {
        return refused;
    }
    let registry = master.registry();
    let body = Agents {
        agents: registry.agents().map(views::agent_keel).collect(),
    };
    json(StatusCode::OK, &body)
}

/// Keel's error answer.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    json(
        status,
        &Error {
            error: message.into(),
        },
    )
}

fn unknown(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("unknown agent {id}"))
}

/// The answer `f` makes of agent `id`; 403 when the caller may not see
/// agents, 404 when there is no such agent.
fn one_agent(
    master: &Master,
    caller: &Caller,
    id: &str,
    f: impl FnOnce(&AgentRecord) -> Response,
) -> Response {
    if let Some(refused) = check_view(master, caller) {
        return refused;
    }
    match master.registry().agent(id) {
        Some(a) => f(a),
        None => unknown(id),
    }
}

pub async fn agent(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    one_agent(&master, &caller, &id, |a| {
        let body = AgentDetail {
            summary: views::agent_keel(a),
            inventory: a.info.inventory.clone(),
        };
        json(StatusCode::OK, &body)
    })
}

pub async fn inventory(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    one_agent(&master, &caller, &id, |a| {
        json(StatusCode::OK, &a.info.inventory)
    })
}
