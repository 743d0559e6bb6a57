//! The master's HTTP edge (port 5050): the Mesos v1 operator API, the legacy
//! JSON endpoints, and Keel's own API. Each handler parses, calls the core,
//! and renders; no state lives here.

mod auth;
mod body;
mod containers;
mod error;
mod events;
mod files;
mod forms;
mod grants;
mod keel;
pub mod leader;
mod legacy;
mod maintenance;
mod metrics;
mod operator;
mod operator_body;
mod operator_calls;
mod pending;
mod scheduler;
mod state;
mod summary;
mod tokens;
mod ui;
pub mod views;
mod visible;
mod volumes;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::Serialize;

use crate::core::Master;

pub use body::BodyLimits;
pub use operator::{OperatorCall, parse_operator_call};

/// Largest body of the other endpoints (413 beyond); the scheduler and
/// operator calls have their own ([`BodyLimits`]).
pub const MAX_BODY_BYTES: usize = 64 << 10;

pub fn router(master: Arc<Master>) -> Router {
    router_with(master, BodyLimits::default())
}

/// [`router`] with the v1 APIs' body limits. `/health`, `/version` and
/// `/redirect` are open; every other route authenticates first
/// ([`auth::authenticate`]).
pub fn router_with(master: Arc<Master>, bodies: BodyLimits) -> Router {
    let routes = routes(master.clone(), bodies);
    let retry = routes
        .clone()
        .fallback(not_found)
        .with_state(master.clone());
    routes
        .fallback(move |req: Request| trailing_slash(retry.clone(), req))
        .with_state(master)
}

/// Every route, without the fallback.
fn routes(master: Arc<Master>, bodies: BodyLimits) -> Router<Arc<Master>> {
    Router::new()
        .route("/health", get(legacy::health))
        .route("/master/health", get(legacy::health))
        .route("/version", get(legacy::version))
        .route("/master/version", get(legacy::version))
        .route("/redirect", get(leader::master_redirect))
        .route("/master/redirect", get(leader::master_redirect))
        .route("/ui/login", get(ui::login))
        .route("/ui/assets/{name}", get(ui::asset))
        .merge(protected_routes(master.clone()))
        .layer(axum::Extension(body::Bodies::new(bodies)))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// A path with trailing slashes is served as the path without them
/// (libprocess does); anything else unknown is 404.
async fn trailing_slash(mut router: Router, mut req: Request) -> Response {
    let path = req.uri().path();
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() || trimmed.len() == path.len() {
        return not_found(req.uri().clone()).await;
    }
    let target = match req.uri().query() {
        Some(q) => format!("{trimmed}?{q}"),
        None => trimmed.to_string(),
    };
    match target.parse() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return not_found(req.uri().clone()).await,
    }
    use tower_service::Service;
    match router.call(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

/// Routes that need to know who is asking.
fn protected_routes(master: Arc<Master>) -> Router<Arc<Master>> {
    Router::new()
        .route("/state", get(legacy::state))
        .route("/master/state", get(legacy::state))
        .route("/master/slaves", get(legacy::slaves_endpoint))
        .route("/master/frameworks", get(legacy::frameworks))
        .route("/master/tasks", get(legacy::tasks))
        .route("/master/flags", get(legacy::flags))
        .route("/flags", get(legacy::flags))
        // libprocess hands paths it does not know to the master process:
        // `/slaves` is `/master/slaves`.
        .route("/slaves", get(legacy::slaves_endpoint))
        .route("/frameworks", get(legacy::frameworks))
        .route("/tasks", get(legacy::tasks))
        .route("/master/state-summary", get(summary::state_summary))
        .route("/state-summary", get(summary::state_summary))
        .route("/master/roles", get(summary::roles))
        .route("/roles", get(summary::roles))
        .route("/master/quota", get(summary::quota))
        .route("/quota", get(summary::quota))
        .route("/master/weights", get(summary::weights))
        .route("/weights", get(summary::weights))
        .route("/metrics/snapshot", get(metrics::snapshot))
        .route("/metrics", get(metrics::prometheus))
        .route("/api/keel/v1/masters", get(leader::masters))
        .route("/api/keel/v1/agents", get(keel::agents))
        .route("/api/keel/v1/agents/pending", get(pending::pending))
        .route("/api/keel/v1/agents/{id}", get(keel::agent))
        .route("/api/keel/v1/agents/{id}/inventory", get(keel::inventory))
        .route("/api/keel/v1/tokens", get(tokens::tokens))
        .route(
            "/api/keel/v1/agents/{id}/grant",
            axum::routing::post(grants::create),
        )
        .merge(leader_routes(master.clone()))
        .route_layer(axum::middleware::from_fn_with_state(
            master,
            auth::authenticate,
        ))
}

/// Routes only the leader serves; followers redirect (see [`leader`]).
fn leader_routes(master: Arc<Master>) -> Router<Arc<Master>> {
    Router::new()
        .route("/", get(ui::index))
        .route("/ui/{*path}", get(ui::dispatch))
        .route("/api/v1/scheduler", any(scheduler::handle))
        .route("/master/api/v1/scheduler", any(scheduler::handle))
        .route("/api/v1", any(operator::handle))
        .route("/api/v1/operator", any(operator::handle))
        .route("/master/api/v1", any(operator::handle))
        .route(
            "/api/keel/v1/masters",
            axum::routing::post(leader::add_master),
        )
        .route(
            "/api/keel/v1/masters/{id}",
            axum::routing::delete(leader::remove_master),
        )
        .route("/api/keel/v1/tokens", axum::routing::post(tokens::create))
        .route(
            "/api/keel/v1/tasks/{task_id}/container",
            get(containers::container),
        )
        .route(
            "/api/keel/v1/tasks/{task_id}/api/v1",
            axum::routing::post(containers::relay),
        )
        .route(
            "/master/maintenance/schedule",
            any(maintenance::legacy_schedule),
        )
        .route("/maintenance/schedule", any(maintenance::legacy_schedule))
        .route(
            "/master/maintenance/status",
            any(maintenance::legacy_status),
        )
        .route("/maintenance/status", any(maintenance::legacy_status))
        .route(
            "/master/machine/down",
            axum::routing::post(maintenance::machine_down),
        )
        .route(
            "/machine/down",
            axum::routing::post(maintenance::machine_down),
        )
        .route(
            "/master/machine/up",
            axum::routing::post(maintenance::machine_up),
        )
        .route("/machine/up", axum::routing::post(maintenance::machine_up))
        .route("/master/teardown", axum::routing::post(forms::teardown))
        .route("/teardown", axum::routing::post(forms::teardown))
        .route("/master/reserve", axum::routing::post(forms::reserve))
        .route("/reserve", axum::routing::post(forms::reserve))
        .route("/master/unreserve", axum::routing::post(forms::unreserve))
        .route("/unreserve", axum::routing::post(forms::unreserve))
        .route(
            "/master/create-volumes",
            axum::routing::post(forms::create_volumes),
        )
        .route(
            "/create-volumes",
            axum::routing::post(forms::create_volumes),
        )
        .route(
            "/master/destroy-volumes",
            axum::routing::post(forms::destroy_volumes),
        )
        .route(
            "/destroy-volumes",
            axum::routing::post(forms::destroy_volumes),
        )
        .route(
            "/api/keel/v1/agents/pending/{id}/approve",
            axum::routing::post(pending::approve),
        )
        .route(
            "/api/keel/v1/agents/pending/{id}/deny",
            axum::routing::post(pending::deny),
        )
        .route(
            "/api/keel/v1/tokens/{id}",
            axum::routing::delete(tokens::revoke),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            master,
            leader::leader_only,
        ))
}

async fn not_found(uri: axum::http::Uri) -> Response {
    plain(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {}", uri.path()),
    )
}

/// `405` with `Allow: POST` for anything but POST (the v1 API endpoints).
pub(crate) fn require_post(method: &axum::http::Method) -> Option<Response> {
    if method == axum::http::Method::POST {
        return None;
    }
    let mut resp = plain(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("Expecting POST, got {method}"),
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    Some(resp)
}

/// A plain-text response, as Mesos sends errors.
pub(crate) fn plain(status: StatusCode, message: impl Into<String>) -> Response {
    let mut resp = (status, message.into()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A JSON body (one of `keel-api`'s answer types) with exactly
/// `Content-Type: application/json`.
pub(crate) fn json(status: StatusCode, body: &impl Serialize) -> Response {
    let text = match serde_json::to_string(body) {
        Ok(text) => text,
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let mut resp = (status, text).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
