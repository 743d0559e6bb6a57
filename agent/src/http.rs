//! The agent's HTTP endpoint (default port 5051): health, the v1 operator
//! API (`POST /api/v1`, [`crate::api`]), Mesos' `/state`, `/flags`,
//! `/version` and `/monitor/statistics` (each also under `/slave(1)/`),
//! the discovered inventory, the metrics ([`crate::metrics`]:
//! `/metrics/snapshot`, `/metrics`) and the sandboxes ([`crate::files`]:
//! `/files/browse`, `/files/read`, `/files/download`); `?jsonp=` on the
//! GET endpoints ([`crate::api::jsonp`]). Served by [`keel_serve`] within
//! connection limits and timeouts ([`serve`]), over TLS when the agent
//! has the cluster CA, every route but `/health` behind [`crate::access`].
//! The nested-container calls of `/api/v1` are [`crate::api::containers`]'s.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use keel_api::attributes::Attributes;
use keel_api::inventory::Inventory;
use keel_api::resources::Resources;
use keel_pki::GrantVerifier;
use serde_json::Value as Json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::access::PortAuth;
use crate::files::Sandboxes;
use crate::files::http::FilesView;
use crate::session::SessionStatus;

pub struct AgentView {
    pub hostname: String,
    pub pid: String,
    pub inventory: Inventory,
    pub resources: Resources,
    pub attributes: Attributes,
    pub status: watch::Receiver<SessionStatus>,
    pub sandboxes: Sandboxes,
    /// Checks sandbox grants; `None`: no TLS, the port is open.
    pub grants: Option<GrantVerifier>,
    pub metrics: Arc<crate::metrics::AgentMetrics>,
    /// The containers of the v1 operator API (`POST /api/v1`).
    pub containers: crate::containers::Containers,
    /// Where `proc/` is read for `system/*` (`/` on a real machine).
    pub sys_root: std::path::PathBuf,
    /// The task runtime (frameworks, executors, tasks, containers).
    pub runtime: crate::executor::ExecutorHandle,
    /// The agent's flags, under Mesos' names ([`crate::api::system::flags_of`]).
    pub flags: std::collections::BTreeMap<String, String>,
    /// When the agent started (seconds since the epoch).
    pub start_time: f64,
}

impl AgentView {
    /// The port in `pid` (`slave(1)@ip:port`).
    pub fn port(&self) -> Option<u16> {
        self.pid.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
    }
}

pub fn router(view: Arc<AgentView>) -> Router {
    let status = view.status.clone();
    let agent_id: Arc<dyn Fn() -> Option<String> + Send + Sync> =
        Arc::new(move || status.borrow().agent_id.clone());
    let files = FilesView {
        sandboxes: view.sandboxes.clone(),
        agent_id: agent_id.clone(),
    };
    let auth = PortAuth {
        grants: view.grants.clone(),
        agent_id,
    };
    let view_containers = view.containers.clone();
    Router::new()
        .route("/health", get(|| async { StatusCode::OK }))
        .route("/api/v1", any(crate::api::handle))
        .route("/slave(1)/api/v1", any(crate::api::handle))
        .route("/state", get(crate::api::state::state_endpoint))
        .route("/slave(1)/state", get(crate::api::state::state_endpoint))
        .route("/flags", get(crate::api::system::flags_endpoint))
        .route("/slave(1)/flags", get(crate::api::system::flags_endpoint))
        .route("/version", get(crate::api::system::version_endpoint))
        .route(
            "/slave(1)/version",
            get(crate::api::system::version_endpoint),
        )
        .route(
            "/monitor/statistics",
            get(crate::api::statistics::monitor_endpoint),
        )
        .route(
            "/slave(1)/monitor/statistics",
            get(crate::api::statistics::monitor_endpoint),
        )
        .route("/api/keel/v1/inventory", get(inventory))
        .route("/metrics/snapshot", get(metrics_snapshot))
        .route("/metrics", get(metrics_text))
        .with_state(view)
        .merge(crate::files::http::router(files))
        .merge(crate::api::containers::router(view_containers))
        .layer(axum::middleware::from_fn(crate::api::jsonp::layer))
        .layer(axum::middleware::from_fn_with_state(
            auth,
            crate::access::authenticate,
        ))
}

/// `/health` stays reachable when the connections run out.
pub const ROUTES: keel_serve::Routes = keel_serve::Routes {
    priority: &["/health"],
    streams: &["/api/v1"],
};

/// Serves `app` on `listener` within `limits`, over `tls` when given,
/// until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: keel_serve::Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    keel_serve::serve(listener, app, limits, ROUTES, tls, shutdown).await
}

fn json(body: &Json) -> Response {
    let mut resp = (StatusCode::OK, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

async fn inventory(State(view): State<Arc<AgentView>>) -> Response {
    json(&serde_json::to_value(&view.inventory).unwrap_or_default())
}

pub(crate) fn metrics_frame(view: &AgentView) -> crate::metrics::AgentFrame {
    let status = view.status.borrow().clone();
    let system = crate::metrics::read_system(&view.sys_root)
        .inspect_err(|e| tracing::debug!(error = %e, "system metrics unavailable"))
        .ok();
    crate::metrics::AgentFrame {
        registered: status.registered,
        registrations: status.registrations,
        system,
    }
}

#[derive(serde::Deserialize)]
struct SnapshotQuery {
    jsonp: Option<String>,
}

async fn metrics_snapshot(
    State(view): State<Arc<AgentView>>,
    axum::extract::Query(q): axum::extract::Query<SnapshotQuery>,
) -> Response {
    let snapshot = view.metrics.snapshot(&metrics_frame(&view));
    match keel_telemetry::metrics::render_snapshot(&snapshot, q.jsonp.as_deref()) {
        Ok(r) => typed(r.body, r.content_type),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn metrics_text(State(view): State<Arc<AgentView>>) -> Response {
    match view.metrics.prometheus(&metrics_frame(&view)) {
        Ok(text) => typed(text, keel_telemetry::metrics::OPENMETRICS_CONTENT_TYPE),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn typed(body: String, content_type: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
