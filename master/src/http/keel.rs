//! Keel's own read API (`/api/keel/v1`): strict JSON, errors as
//! `{"error": "..."}`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{json, views};
use crate::core::Master;

pub async fn agents(State(master): State<Arc<Master>>) -> Response {
    let registry = master.registry();
    let agents: Vec<_> = registry.agents().map(views::agent_keel).collect();
    json(StatusCode::OK, &json!({ "agents": agents }))
}

fn unknown(id: &str) -> Response {
    json(
        StatusCode::NOT_FOUND,
        &json!({ "error": format!("unknown agent {id}") }),
    )
}

pub async fn agent(State(master): State<Arc<Master>>, Path(id): Path<String>) -> Response {
    let registry = master.registry();
    let Some(a) = registry.agent(&id) else {
        return unknown(&id);
    };
    let mut body = views::agent_keel(a);
    body["inventory"] = serde_json::to_value(&a.info.inventory).unwrap_or_default();
    json(StatusCode::OK, &body)
}

pub async fn inventory(State(master): State<Arc<Master>>, Path(id): Path<String>) -> Response {
    let registry = master.registry();
    match registry.agent(&id) {
        Some(a) => json(
            StatusCode::OK,
            &serde_json::to_value(&a.info.inventory).unwrap_or_default(),
        ),
        None => unknown(&id),
    }
}
