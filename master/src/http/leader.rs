//! Leader-only routes: on a follower the scheduler and operator APIs answer
//! `307 Temporary Redirect` with `Location: //<leader>/<path+query>`
//! (protocol-relative, as Mesos), or `503` when no leader is known. Read-only
//! endpoints answer locally and say who leads. Also Keel's masters API.

use std::sync::Arc;

use axum::extract::{Extension, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keel_api::keel::{AddMaster, Cluster, LogPosition, Member};

use super::keel::error;
use super::{json, plain};
use crate::auth::{Action, Caller};
use crate::core::Master;
use crate::replication::{ClusterView, Leadership};

fn redirect(location: &str) -> Response {
    let mut resp = StatusCode::TEMPORARY_REDIRECT.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn no_leader() -> Response {
    plain(StatusCode::SERVICE_UNAVAILABLE, "No leader elected")
}

/// Middleware for the routes only the leader serves.
pub async fn leader_only(State(master): State<Arc<Master>>, req: Request, next: Next) -> Response {
    match master.cluster().leadership {
        Leadership::Leader if master.serving() => next.run(req).await,
        Leadership::Leader => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "Master is still recovering",
        ),
        Leadership::Follower { leader: Some(addr) } => {
            let path = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            redirect(&format!("//{addr}{path}"))
        }
        Leadership::Follower { leader: None } => no_leader(),
    }
}

/// The leader's `host:port`, when known.
pub fn leader_addr(view: &ClusterView) -> Option<String> {
    match &view.leadership {
        Leadership::Leader => view
            .members
            .iter()
            .find(|m| m.id == view.me)
            .map(|m| m.addr.clone()),
        Leadership::Follower { leader } => leader.clone(),
    }
}

/// `/master/redirect`: always 307 to the leader (even on the leader).
pub async fn master_redirect(State(master): State<Arc<Master>>) -> Response {
    match leader_addr(&master.cluster()) {
        Some(addr) => redirect(&format!("//{addr}")),
        None => no_leader(),
    }
}

/// Keel's own description of the cluster.
pub fn cluster(view: &ClusterView) -> Cluster {
    let leader = leader_addr(view);
    Cluster {
        term: view.term,
        me: view.me,
        members: view
            .members
            .iter()
            .map(|m| Member {
                id: m.id,
                address: m.addr.clone(),
                voter: m.voter,
                leader: leader.as_deref() == Some(m.addr.as_str()),
            })
            .collect(),
        log: view.log.map(|l| LogPosition {
            last_index: l.last,
            applied_index: l.applied,
            snapshot_index: l.snapshot,
        }),
        problem: view.problem.clone(),
        leader,
    }
}

pub async fn masters(State(master): State<Arc<Master>>) -> Response {
    json(StatusCode::OK, &cluster(&master.cluster()))
}

/// `403` unless the caller may add and remove masters.
fn check_manage(master: &Master, caller: &Caller) -> Option<Response> {
    let trust = &master.config().trust;
    let denied = trust.check(caller, Action::ManageMasters, None).err()?;
    Some(error(StatusCode::FORBIDDEN, denied.to_string()))
}

/// `POST /api/keel/v1/masters` `{"add": "host:port"}`.
pub async fn add_master(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refused) = check_manage(&master, &caller) {
        return refused;
    }
    let add = match serde_json::from_slice::<AddMaster>(&body) {
        Ok(a) => a.add,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"add\": \"host:port\"}}: {e}"),
            );
        }
    };
    if add.parse::<std::net::SocketAddr>().is_err() {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{add:?} is not an ip:port address"),
        );
    }
    match master.add_master(add).await {
        Ok(()) => json(StatusCode::OK, &cluster(&master.cluster())),
        Err(e) => error(StatusCode::CONFLICT, e.to_string()),
    }
}

/// `DELETE /api/keel/v1/masters/{id}`.
pub async fn remove_master(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
) -> Response {
    if let Some(refused) = check_manage(&master, &caller) {
        return refused;
    }
    match master.remove_master(id).await {
        Ok(()) => json(StatusCode::OK, &cluster(&master.cluster())),
        Err(e) => error(StatusCode::CONFLICT, e.to_string()),
    }
}
