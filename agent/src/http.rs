//! The agent's HTTP endpoint (default port 5051): health, a Mesos-style
//! `/state` (also `/slave(1)/state`) and the discovered inventory.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use keel_api::attributes::Attributes;
use keel_api::inventory::Inventory;
use keel_api::resources::Resources;
use serde_json::{Value as Json, json};
use tokio::sync::watch;

use crate::session::SessionStatus;

pub struct AgentView {
    pub hostname: String,
    pub pid: String,
    pub inventory: Inventory,
    pub resources: Resources,
    pub attributes: Attributes,
    pub status: watch::Receiver<SessionStatus>,
}

pub fn router(view: Arc<AgentView>) -> Router {
    Router::new()
        .route("/health", get(|| async { StatusCode::OK }))
        .route("/state", get(state))
        .route("/slave(1)/state", get(state))
        .route("/api/keel/v1/inventory", get(inventory))
        .with_state(view)
}

fn json(body: &Json) -> Response {
    let mut resp = (StatusCode::OK, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

async fn state(State(view): State<Arc<AgentView>>) -> Response {
    let status = view.status.borrow().clone();
    json(&json!({
        "id": status.agent_id,
        "pid": view.pid,
        "hostname": view.hostname,
        "version": keel_api::KEEL_VERSION,
        "resources": view.resources.to_legacy_json(),
        "attributes": view.attributes.to_legacy_json(),
        "master_hostname": status.master,
        "registered": status.registered,
        "frameworks": [],
        "completed_frameworks": [],
    }))
}

async fn inventory(State(view): State<Arc<AgentView>>) -> Response {
    json(&serde_json::to_value(&view.inventory).unwrap_or_default())
}
