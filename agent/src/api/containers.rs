//! The nested-container calls over HTTP: each typed call goes to
//! [`Containers`] and its answer or error becomes Mesos' response (status
//! and text); output streams are RecordIO `ProcessIO` records, one per
//! chunk, flushed as they come.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use keel_api::agent::containers::{
    AgentCall, ContainerCall, InputRecord, MAX_INPUT_RECORD, ProcessIo, TaskContainer, WaitAnswer,
    parse_call, parse_input_record, wait_response,
};
use keel_api::recordio;
use tokio::sync::broadcast;

use super::{
    APPLICATION_JSON, APPLICATION_RECORDIO, MESSAGE_CONTENT_TYPE, StreamType, bad_request, empty,
};
use crate::access::Access;
use crate::containers::output::Follow;
use crate::containers::process::{Chunk, ContainerProcess};
use crate::containers::{ContainerError, Containers, Launched, OutputSource};

/// The status and text of an error.
pub fn error_response(e: &ContainerError) -> Response {
    let status = match e {
        ContainerError::NotFound(_) => StatusCode::NOT_FOUND,
        ContainerError::BadRequest(_) => StatusCode::BAD_REQUEST,
        ContainerError::Conflict(_) => StatusCode::CONFLICT,
        ContainerError::Forbidden(_) => StatusCode::FORBIDDEN,
        ContainerError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ContainerError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, e.to_string()).into_response()
}

fn json(body: &serde_json::Value) -> Response {
    let mut r = (StatusCode::OK, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(APPLICATION_JSON),
    );
    r
}

/// One typed call, answered.
pub async fn call(
    ctx: &Containers,
    access: Access,
    call: ContainerCall,
    streaming: StreamType,
) -> Response {
    let result = match call {
        ContainerCall::LaunchSession(launch) => match ctx.launch(&access, &launch, true).await {
            Ok(Launched::New(process, output)) => {
                // The session ends its container when the caller goes.
                let guard = SessionGuard(process);
                let records = Records::Live {
                    rx: output,
                    _session: Some(guard),
                };
                return stream(streaming, records);
            }
            Ok(Launched::Exists) => Ok(empty(StatusCode::ACCEPTED)),
            Err(e) => Err(e),
        },
        ContainerCall::Launch(launch, _) => {
            ctx.launch(&access, &launch, false)
                .await
                .map(|launched| match launched {
                    Launched::New(..) => empty(StatusCode::OK),
                    Launched::Exists => empty(StatusCode::ACCEPTED),
                })
        }
        ContainerCall::Wait(id, form) => ctx.wait(&access, &id).await.map(|status| {
            let answer = WaitAnswer {
                exit_status: Some(status),
                ..Default::default()
            };
            json(&wait_response(form, &answer))
        }),
        ContainerCall::Kill(id, signal, _) => ctx
            .kill(&access, &id, signal)
            .await
            .map(|()| empty(StatusCode::OK)),
        ContainerCall::Remove(id, _) => ctx
            .remove(&access, &id)
            .await
            .map(|()| empty(StatusCode::OK)),
        ContainerCall::AttachOutput(id) => match ctx.output(&access, &id).await {
            Ok(OutputSource::Live(process)) => {
                let records = Records::Live {
                    rx: process.subscribe(),
                    _session: None,
                };
                return stream(streaming, records);
            }
            Ok(OutputSource::TaskFiles(follow)) => {
                return stream(streaming, Records::Files(follow));
            }
            Err(e) => Err(e),
        },
    };
    result.unwrap_or_else(|e| error_response(&e))
}

/// Kills a session's container when its response is dropped (the caller
/// closed the connection), as Mesos destroys it.
struct SessionGuard(Arc<ContainerProcess>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if self.0.running() {
            tracing::info!(pid = self.0.pgid, "session closed: killing its container");
            let _ = self.0.signal(9);
        }
    }
}

enum Records {
    Live {
        rx: broadcast::Receiver<Chunk>,
        /// Held until the stream is dropped.
        _session: Option<SessionGuard>,
    },
    Files(Follow),
}

impl Records {
    async fn next(&mut self) -> Option<Chunk> {
        match self {
            Records::Live { rx, .. } => loop {
                match rx.recv().await {
                    Ok(c) => return Some(c),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(records = n, "a slow reader lost container output");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            },
            Records::Files(f) => f.next().await,
        }
    }
}

/// A streaming answer of ProcessIO records, ended with the output.
fn stream(kind: StreamType, records: Records) -> Response {
    let body = futures::stream::unfold(records, |mut records| async move {
        match records.next().await? {
            Chunk::Data(stream, bytes) => {
                let record = recordio::encode(&ProcessIo::data(stream, &bytes));
                Some((Ok::<_, std::io::Error>(Bytes::from(record)), records))
            }
            Chunk::End => None,
        }
    });
    let mut r = Response::new(Body::from_stream(body));
    let headers = r.headers_mut();
    match kind {
        StreamType::Json => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(APPLICATION_JSON),
            );
        }
        StreamType::RecordIo => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(APPLICATION_RECORDIO),
            );
            headers.insert(
                MESSAGE_CONTENT_TYPE,
                HeaderValue::from_static(APPLICATION_JSON),
            );
        }
    }
    r
}

/// ATTACH_CONTAINER_INPUT: `body` is a RecordIO stream of calls, the first
/// naming the container, the others its input, written as they arrive.
/// Answers once the stream ends (200), or at the first bad record (400).
pub async fn attach_input(ctx: &Containers, access: Access, body: Body) -> Response {
    let mut chunks = body.into_data_stream();
    let mut decoder = recordio::Decoder::with_limit(MAX_INPUT_RECORD);
    let mut pending: std::collections::VecDeque<Vec<u8>> = Default::default();
    // The records are read as they come; the first opens the stream.
    let mut next = async || -> Result<Option<Vec<u8>>, String> {
        loop {
            if let Some(r) = pending.pop_front() {
                return Ok(Some(r));
            }
            match chunks.next().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(format!("Failed to read the request body: {e}")),
                Some(Ok(bytes)) => pending.extend(
                    decoder
                        .push(&bytes)
                        .map_err(|e| format!("Failed to decode the request body: {e}"))?,
                ),
            }
        }
    };
    let id = match next().await {
        Err(e) => return bad_request(e),
        Ok(None) => return bad_request("Received EOF while reading request body"),
        Ok(Some(first)) => match parse_call(&first) {
            Ok(AgentCall::AttachInput(id)) => id,
            Ok(AgentCall::Container(c)) => {
                return (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!(
                        "Streaming 'Content-Type' {APPLICATION_RECORDIO} is not supported for {} call",
                        c.type_name()
                    ),
                )
                    .into_response();
            }
            Ok(AgentCall::Other(kind)) => {
                return (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!(
                        "Streaming 'Content-Type' {APPLICATION_RECORDIO} is not supported for {kind} call"
                    ),
                )
                    .into_response();
            }
            Err(e) => return bad_request(e.to_string()),
        },
    };
    let process = match ctx.input(&access, &id).await {
        Ok(p) => p,
        Err(e) => return error_response(&e),
    };
    // The stream ends with the input, or with the container.
    let mut exit = process.exit();
    let answer = loop {
        let record = tokio::select! {
            r = next() => r,
            () = ended(&mut exit) => Ok(None),
        };
        let record = match record {
            Ok(Some(r)) => r,
            Ok(None) => break empty(StatusCode::OK),
            Err(e) => break bad_request(e),
        };
        let written = match parse_input_record(&record) {
            Err(e) => break bad_request(e),
            Ok(InputRecord::Heartbeat) => Ok(()),
            Ok(InputRecord::Window(size)) => process.resize(size),
            Ok(InputRecord::Stdin(bytes)) => process.write_stdin(&bytes).await,
        };
        if let Err(e) = written {
            let status = match e {
                crate::containers::process::ProcessError::Window(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            break (status, e.to_string()).into_response();
        }
    };
    process.release_input();
    answer
}

/// Resolves once the container has ended.
async fn ended(exit: &mut tokio::sync::watch::Receiver<Option<i32>>) {
    while exit.borrow().is_none() {
        if exit.changed().await.is_err() {
            return;
        }
    }
}

/// `GET /api/keel/v1/tasks/{framework_id}/{task_id}/container`: the
/// container id of a running task.
pub async fn task_container(
    State(ctx): State<Containers>,
    Path((framework_id, task_id)): Path<(String, String)>,
    req: Request,
) -> Response {
    let access = req.extensions().get::<Access>().cloned();
    let allowed = match &access {
        Some(Access::All) => true,
        Some(Access::Frameworks(set)) => set.contains(&framework_id),
        _ => false,
    };
    if !allowed {
        return error_response(&ContainerError::Forbidden(format!(
            "no access to the containers of framework {framework_id}"
        )));
    }
    match ctx.of_task(&framework_id, &task_id).await {
        Some(container_id) => {
            json(&serde_json::to_value(TaskContainer { container_id }).unwrap_or_default())
        }
        None => error_response(&ContainerError::NotFound(format!(
            "Task {task_id} of framework {framework_id} is not running on this agent"
        ))),
    }
}

/// The task container lookup (`POST /api/v1` is [`super::handle`]'s).
pub fn router(ctx: Containers) -> axum::Router {
    axum::Router::new()
        .route(
            "/api/keel/v1/tasks/{framework_id}/{task_id}/container",
            axum::routing::get(task_container),
        )
        .with_state(ctx)
}
