//! `keelctl exec` and `keelctl attach` through the master: the nested
//! container calls of the agent running a task, relayed so that an
//! operator needs no route to agents (`docs/design/0013-nested-containers.md`).
//!
//! - `GET /api/keel/v1/tasks/{task}/container[?framework_id=]`: the task's
//!   container id, asked of its agent;
//! - `POST /api/keel/v1/tasks/{task}/api/v1[?framework_id=]`: an agent v1
//!   call (LAUNCH_NESTED_CONTAINER_SESSION, ATTACH_CONTAINER_INPUT, WAIT,
//!   ...), its body and answer streamed both ways.
//!
//! The caller is authorized as for the task's sandbox (`access_sandboxes`
//! for its framework's user). The master reaches the agent's port as for
//! LIST_FILES (`files.rs`): over TLS with its certificate and a grant it
//! signs for that framework when the cluster has TLS, plain HTTP otherwise;
//! the agent confines the calls to the containers of that framework.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use keel_api::agent::containers::TaskContainer;
use keel_client::{ClientError, ContainerApi};
use keel_pki::Grant;

use super::error::ApiError;
use super::{json, plain};
use crate::auth::{Action, Caller};
use crate::core::{Master, unix_now};

/// How long the grant for one relayed call lasts (a session may run
/// longer: the agent checks the grant when the call starts).
const GRANT_SECS: i64 = 60;

/// Headers of a call passed on to the agent, and of its answer back.
const PASSED: [&str; 4] = [
    "content-type",
    "message-content-type",
    "accept",
    "message-accept",
];

#[derive(Debug, Default, serde::Deserialize)]
pub struct TaskQuery {
    framework_id: Option<String>,
}

/// The agent of a task the caller may reach into, ready to be called.
struct Target {
    framework_id: String,
    api: ContainerApi,
}

async fn target(
    master: &Master,
    caller: &Caller,
    task_id: &str,
    framework_id: Option<&str>,
) -> Result<Target, ApiError> {
    let (live, _) = master.tasks();
    let found: Vec<_> = live
        .iter()
        .filter(|t| t.task_id == task_id)
        .filter(|t| framework_id.is_none_or(|f| f == t.framework_id))
        .collect();
    let task = match found.as_slice() {
        [] => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("Task '{task_id}' is not running"),
            ));
        }
        [one] => *one,
        _ => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("several frameworks have a task '{task_id}': name one with ?framework_id="),
            ));
        }
    };
    let user = master.framework_info(&task.framework_id).map(|f| f.user);
    master
        .config()
        .trust
        .check(caller, Action::AccessSandbox, user.as_deref())
        .map_err(|denied| ApiError::new(StatusCode::FORBIDDEN, denied.to_string()))?;
    let agent_id = &task.agent_id;
    let address = master.agent_address(agent_id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Agent '{agent_id}' not found"),
        )
    })?;
    let config = master.config();
    let grant = match &config.grants {
        Some(signer) => Some(
            signer
                .sign(&Grant {
                    agent_id: agent_id.clone(),
                    frameworks: vec![task.framework_id.clone()],
                    principal: caller.name().map(str::to_string),
                    expires_at: unix_now() as i64 + GRANT_SECS,
                })
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
        ),
        None => None,
    };
    let api = ContainerApi::agent(config.agent_tls.as_deref(), agent_id, &address)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .with_grant(grant);
    Ok(Target {
        framework_id: task.framework_id.clone(),
        api,
    })
}

/// The agent's refusal as the caller's (4xx as they are), the agent
/// unreachable as 502.
fn agent_error(e: ClientError) -> ApiError {
    match e {
        ClientError::Status { status, reason, .. } if (400..500).contains(&status) => {
            ApiError::new(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                reason,
            )
        }
        other => ApiError::new(StatusCode::BAD_GATEWAY, other.to_string()),
    }
}

/// `GET /api/keel/v1/tasks/{task}/container`.
pub async fn container(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    Path(task_id): Path<String>,
    Query(q): Query<TaskQuery>,
) -> Response {
    let answer = async {
        let t = target(&master, &caller, &task_id, q.framework_id.as_deref()).await?;
        let container_id = t
            .api
            .task_container_of(&t.framework_id, &task_id)
            .await
            .map_err(agent_error)?;
        Ok::<_, ApiError>(TaskContainer { container_id })
    };
    match answer.await {
        Ok(found) => json(StatusCode::OK, &found),
        Err(e) => plain(e.status, e.reason),
    }
}

/// `POST /api/keel/v1/tasks/{task}/api/v1`.
pub async fn relay(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    Path(task_id): Path<String>,
    Query(q): Query<TaskQuery>,
    req: Request,
) -> Response {
    let t = match target(&master, &caller, &task_id, q.framework_id.as_deref()).await {
        Ok(t) => t,
        Err(e) => return plain(e.status, e.reason),
    };
    let headers: Vec<(String, String)> = PASSED
        .iter()
        .filter_map(|name| {
            let v = req.headers().get(*name)?.to_str().ok()?;
            Some((name.to_string(), v.to_string()))
        })
        .collect();
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let body = req.into_body().into_data_stream();
    let relayed = match t.api.relay(&pairs, body).await {
        Ok(r) => r,
        Err(e) => {
            let e = agent_error(e);
            return plain(e.status, e.reason);
        }
    };
    let mut response = Response::new(Body::from_stream(relayed.body.map(|chunk| chunk)));
    *response.status_mut() =
        StatusCode::from_u16(relayed.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (k, v) in &relayed.headers {
        if PASSED.contains(&k.as_str())
            && let (Ok(name), Ok(value)) = (
                axum::http::HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            )
        {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
