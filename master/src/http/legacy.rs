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

use super::state::{self, Snapshot};
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

/// Legacy `slaves[]` with what tasks use and offers hold on each agent.
fn slaves(snapshot: &Snapshot) -> Vec<Json> {
    let agents: Vec<_> = snapshot.registry.agents().cloned().collect();
    views::registered_agents(&agents)
        .map(|a| {
            let mut v = views::agent_legacy(a);
            v["used_resources"] = snapshot.used(|t| t.agent_id == a.id).to_legacy_json();
            v["offered_resources"] = snapshot.offered(|_, agent| agent == a.id).to_legacy_json();
            v
        })
        .collect()
}

pub async fn state(State(master): State<Arc<Master>>, Query(params): Params) -> Response {
    let snapshot = Snapshot::take(&master);
    let (frameworks, completed_frameworks) = state::frameworks_legacy(&snapshot);
    let agents: Vec<_> = snapshot.registry.agents().cloned().collect();
    let count = |s: AgentState| agents.iter().filter(|a| a.state == s).count();
    let config = master.config();
    let cluster = master.cluster();
    let leader = super::leader::leader_addr(&cluster);
    let leader_info = if master.is_leader() {
        views::master_info(&master)
    } else {
        match leader.as_deref().and_then(|l| l.rsplit_once(':')) {
            Some((host, port)) => {
                json!({ "hostname": host, "port": port.parse::<u16>().unwrap_or(0) })
            }
            None => json!({}),
        }
    };
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
        "leader": leader.as_ref().map(|l| format!("master@{l}")),
        "leader_info": leader_info,
        "keel_cluster": super::leader::cluster_json(&cluster),
        "flags": views::flags_object(&master),
        "slaves": slaves(&snapshot),
        "recovered_slaves": [],
        "frameworks": frameworks,
        "completed_frameworks": completed_frameworks,
        "orphan_tasks": [],
        "unregistered_frameworks": [],
    });
    respond(&params, &body)
}

pub async fn slaves_endpoint(State(master): State<Arc<Master>>, Query(params): Params) -> Response {
    let snapshot = Snapshot::take(&master);
    let body = json!({
        "slaves": slaves(&snapshot),
        "recovered_slaves": [],
    });
    respond(&params, &body)
}

pub async fn frameworks(State(master): State<Arc<Master>>, Query(params): Params) -> Response {
    let snapshot = Snapshot::take(&master);
    let (frameworks, completed) = state::frameworks_legacy(&snapshot);
    respond(
        &params,
        &json!({ "frameworks": frameworks, "completed_frameworks": completed, "unregistered_frameworks": [] }),
    )
}

pub async fn tasks(State(master): State<Arc<Master>>, Query(params): Params) -> Response {
    let snapshot = Snapshot::take(&master);
    let tasks: Vec<Json> = snapshot
        .live
        .iter()
        .chain(snapshot.completed.iter())
        .map(state::task_legacy)
        .collect();
    respond(&params, &json!({ "tasks": tasks }))
}

pub async fn flags(State(master): State<Arc<Master>>, Query(params): Params) -> Response {
    respond(&params, &json!({ "flags": views::flags_object(&master) }))
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
