//! Legacy (v0-era) JSON endpoints: `/health`, `/version`, `/master/state`,
//! `/master/slaves`, `/master/flags`, `/master/redirect`. `?jsonp=cb` wraps
//! the JSON for the Mesos web UI.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keel_api::{KEEL_VERSION, MESOS_COMPAT_VERSION};
use serde_json::{Value as Json, json};

use super::{json, plain, views};
use crate::core::Master;
use crate::registry::AgentState;

type Params = Query<HashMap<String, String>>;

/// A JSONP callback name must be a plain JavaScript identifier path.
fn valid_callback(cb: &str) -> bool {
    !cb.is_empty()
        && cb.len() <= 128
        && cb
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '.'))
}

fn respond(params: &HashMap<String, String>, body: &Json) -> Response {
    match params.get("jsonp") {
        None => json(StatusCode::OK, body),
        Some(cb) if valid_callback(cb) => {
            let mut resp = (StatusCode::OK, format!("{cb}({body});")).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript"),
            );
            resp
        }
        Some(cb) => plain(
            StatusCode::BAD_REQUEST,
            format!("invalid jsonp callback name {cb:?}"),
        ),
    }
}

pub async fn health() -> StatusCode {
    StatusCode::OK
}

pub async fn version(Query(params): Params) -> Response {
    respond(
        &params,
        &json!({
            "version": MESOS_COMPAT_VERSION,
            "build_user": "keel",
            "git_tag": format!("keel-{KEEL_VERSION}"),
            "keel_version": KEEL_VERSION,
        }),
    )
}

pub async fn state(State(master): State<Arc<Master>>, Query(params): Params) -> Response {
    let registry = master.registry();
    let agents: Vec<_> = registry.agents().cloned().collect();
    let count = |s: AgentState| agents.iter().filter(|a| a.state == s).count();
    let config = master.config();
    let master_info = views::master_info(&master);
    let body = json!({
        "version": MESOS_COMPAT_VERSION,
        "keel_version": KEEL_VERSION,
        "build_user": "keel",
        "start_time": master.start_time(),
        "elected_time": master.start_time(),
        "id": master.master_id(),
        "pid": views::master_pid(&master),
        "hostname": config.hostname,
        "capabilities": [],
        "activated_slaves": count(AgentState::Active),
        "deactivated_slaves": count(AgentState::Disconnected),
        "unreachable_slaves": count(AgentState::Unreachable),
        "leader": views::master_pid(&master),
        "leader_info": master_info,
        "flags": views::flags_object(&master),
        "slaves": views::registered_agents(&agents).map(views::agent_legacy).collect::<Vec<_>>(),
        "recovered_slaves": [],
        "frameworks": [],
        "completed_frameworks": [],
        "orphan_tasks": [],
        "unregistered_frameworks": [],
    });
    respond(&params, &body)
}

pub async fn slaves(State(master): State<Arc<Master>>, Query(params): Params) -> Response {
    let registry = master.registry();
    let agents: Vec<_> = registry.agents().cloned().collect();
    let body = json!({
        "slaves": views::registered_agents(&agents).map(views::agent_legacy).collect::<Vec<_>>(),
        "recovered_slaves": [],
    });
    respond(&params, &body)
}

pub async fn flags(State(master): State<Arc<Master>>, Query(params): Params) -> Response {
    respond(&params, &json!({ "flags": views::flags_object(&master) }))
}

/// A single master always leads; the redirect points at itself.
pub async fn redirect(State(master): State<Arc<Master>>) -> Response {
    let c = master.config();
    let location = format!("//{}:{}", c.hostname, c.port);
    let mut resp = StatusCode::TEMPORARY_REDIRECT.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::valid_callback;

    #[test]
    fn jsonp_callbacks_are_identifiers() {
        assert!(valid_callback("JSON_CALLBACK"));
        assert!(valid_callback("angular.callbacks._0"));
        assert!(!valid_callback("alert(1)//"));
        assert!(!valid_callback(""));
    }
}
