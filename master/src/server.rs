//! `run(listener, master, shutdown)`: serves the HTTP APIs and the agents'
//! gRPC service on one port (HTTP/1.1 and h2c side by side, as agents are
//! given the same `HOST:PORT` as operators), plus the heartbeat ticker.
//! The port is served by [`keel_serve`], within [`Options`]: connection
//! limits and timeouts, with health checks, agent sessions and Raft kept
//! reachable when the connections run out ([`ROUTES`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use keel_serve::{Limits, Routes};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::admission::Admission;
use crate::attestation::EkPolicy;
use crate::core::Master;
use crate::grpc::{AgentService, REGISTER_TIMEOUT};
use crate::http::{self, BodyLimits};

/// After shutdown starts, connections get this long to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Event-driven allocation waits this long for more events.
const ALLOCATION_DEBOUNCE: Duration = Duration::from_millis(5);
/// How often reconciliation answers waiting for room on their framework's
/// stream are sent on.
const RECONCILE_PACE: Duration = Duration::from_millis(20);

/// Served on the connections kept in reserve, and long-lived request
/// bodies (no body timeout).
pub const ROUTES: Routes = Routes {
    priority: &[
        "/health",
        "/master/health",
        "/keel.v1.AgentService/",
        "/keel.raft.v1.RaftService/",
    ],
    // Exec and attach relayed to agents (`http/containers.rs`).
    streams: &["/keel.v1.AgentService/Session", "/api/keel/v1/tasks/"],
};

/// How the port is served (`--max-connections`, `--http-*-timeout`,
/// `--max-*-call-size`, `--agent-register-timeout`).
#[derive(Debug, Clone)]
pub struct Options {
    pub limits: Limits,
    pub bodies: BodyLimits,
    /// How long a new agent session may take to send its `register`.
    pub register_timeout: Duration,
    /// TLS on the port (`--tls-*`); plaintext without.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Who may hold an agent session (`--agent-admission`).
    pub admission: Arc<Admission>,
    /// The endorsement keys TPM admission takes (`--tpm-ek-*`).
    pub ek_policy: Arc<EkPolicy>,
    /// The cluster CA (PEM), served at [`CA_ROUTE`] to anyone.
    pub ca_pem: Option<String>,
}

/// Where the cluster CA is served, unauthenticated: nodes that know only
/// its fingerprint fetch it there (`keel_pki::pinned`).
pub const CA_ROUTE: &str = "/api/keel/v1/ca";

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: Limits::MASTER,
            bodies: BodyLimits::default(),
            register_timeout: REGISTER_TIMEOUT,
            tls: None,
            admission: Arc::new(Admission::open()),
            ek_policy: Arc::new(EkPolicy::default()),
            ca_pem: None,
        }
    }
}

pub async fn run(
    listener: TcpListener,
    master: Arc<Master>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_with(listener, master, axum::Router::new(), shutdown).await
}

/// [`run`] with more routes on the same port (the Raft gRPC service).
pub async fn run_with(
    listener: TcpListener,
    master: Arc<Master>,
    extra: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve(listener, master, extra, Options::default(), shutdown).await
}

/// [`run_with`] within `options`.
pub async fn serve(
    listener: TcpListener,
    master: Arc<Master>,
    extra: axum::Router,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grpc = AgentService::new(master.clone())
        .with_register_timeout(options.register_timeout)
        .with_admission(options.admission.clone())
        .with_ek_policy(options.ek_policy.clone())
        .into_server();
    let mut app = http::router_with(master.clone(), options.bodies).merge(extra);
    if let Some(pem) = options.ca_pem.clone() {
        app = app.route(CA_ROUTE, axum::routing::get(move || async move { pem }));
    }
    let app = app.route_service("/keel.v1.AgentService/{*method}", grpc);

    let draining = Arc::new(Notify::new());
    let leadership = {
        let master = master.clone();
        tokio::spawn(async move { master.follow_leadership().await })
    };
    let ticker = {
        let master = master.clone();
        tokio::spawn(async move {
            let config = master.config().clone();
            let mut agents = tokio::time::interval(config.heartbeat_interval);
            let mut frameworks = tokio::time::interval(config.framework_heartbeat_interval);
            let mut batch = tokio::time::interval(config.allocation_interval);
            let mut pace = tokio::time::interval(RECONCILE_PACE);
            for i in [&mut agents, &mut frameworks, &mut batch, &mut pace] {
                i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            }
            loop {
                tokio::select! {
                    _ = agents.tick() => master.tick().await,
                    _ = frameworks.tick() => master.send_heartbeats(),
                    _ = batch.tick() => {
                        master.allocate();
                        master.settle_drains().await;
                    }
                    _ = pace.tick() => master.pace_reconciliations(),
                    _ = master.allocation_wanted() => {
                        // Let a burst of events settle into one cycle.
                        tokio::time::sleep(ALLOCATION_DEBOUNCE).await;
                        master.allocate();
                    }
                }
            }
        })
    };

    let signal = {
        let master = master.clone();
        let draining = draining.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down");
            master.close_sessions();
            draining.notify_one();
        }
    };
    // (keel-serve sets TCP_NODELAY: event streams and agent sessions carry
    // small messages that must not wait for Nagle's algorithm.)
    let serve = keel_serve::serve(listener, app, options.limits, ROUTES, options.tls, signal);
    let result = tokio::select! {
        r = serve => r,
        _ = async {
            draining.notified().await;
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } => {
            tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
            Ok(())
        }
    };
    ticker.abort();
    leadership.abort();
    result
}
