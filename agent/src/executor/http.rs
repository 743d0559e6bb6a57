//! `POST /api/v1/executor`: the v1 executor HTTP API for custom executors
//! (`docs/design/0014-custom-executors.md`). Calls are parsed once by
//! [`keel_api::executor`] and answered with Mesos' statuses and texts;
//! SUBSCRIBE answers with the executor's event stream (RecordIO of JSON
//! records, a HEARTBEAT every 30 s).
//!
//! The route is outside the port's certificate/grant check
//! ([`crate::access`]): executors have neither. A call names a live
//! executor of this agent, and carries the executor's token
//! (`MESOS_EXECUTOR_AUTHENTICATION_TOKEN`) as a bearer token when it has
//! one (always, with `--authenticate-http-executors`).

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use keel_api::executor::{self as api, CallKind, Event};
use keel_api::recordio;

use super::ExecutorHandle;
use super::runtime::custom_calls::{Caller, ExecutorApiError};

/// Mesos' `DEFAULT_EXECUTOR_HEARTBEAT_INTERVAL`.
const HEARTBEAT: Duration = Duration::from_secs(30);
/// The largest call body read (an UPDATE's `data`, a SUBSCRIBE's lists).
pub const MAX_BODY: usize = 4 << 20;

pub fn router(executor: ExecutorHandle) -> Router {
    Router::new()
        .route("/api/v1/executor", post(call))
        .with_state(executor)
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

fn refused(e: ExecutorApiError) -> Response {
    let status = match e {
        ExecutorApiError::UnknownFramework | ExecutorApiError::UnknownExecutor => {
            StatusCode::BAD_REQUEST
        }
        ExecutorApiError::NotSubscribed | ExecutorApiError::WrongToken => StatusCode::FORBIDDEN,
        ExecutorApiError::NoToken => StatusCode::UNAUTHORIZED,
        ExecutorApiError::Stopping => StatusCode::SERVICE_UNAVAILABLE,
    };
    text(status, e.to_string())
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

fn media(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(|v| {
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    })
}

async fn call(State(executor): State<ExecutorHandle>, headers: HeaderMap, body: Body) -> Response {
    match media(&headers, header::CONTENT_TYPE).as_deref() {
        None => {
            return text(
                StatusCode::BAD_REQUEST,
                "Expecting 'Content-Type' to be present",
            );
        }
        Some("application/json") => {}
        Some(_) => {
            return text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Expecting 'Content-Type' of application/json",
            );
        }
    }
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body is larger than {MAX_BODY} bytes"),
            );
        }
    };
    let call = match api::call::parse(&bytes) {
        Ok(c) => c,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let caller = Caller {
        framework_id: call.framework_id,
        executor_id: call.executor_id,
        token: bearer(&headers),
    };
    match call.kind {
        CallKind::Heartbeat => StatusCode::ACCEPTED.into_response(),
        CallKind::Subscribe {
            unacknowledged_tasks,
            unacknowledged_updates,
        } => {
            let accept = media(&headers, header::ACCEPT);
            if accept
                .as_deref()
                .is_some_and(|a| a != "application/json" && a != "*/*")
            {
                return text(
                    StatusCode::NOT_ACCEPTABLE,
                    "Expecting 'Accept' to allow 'application/json'",
                );
            }
            match executor
                .executor_subscribe(caller, unacknowledged_tasks, unacknowledged_updates)
                .await
            {
                Ok(events) => stream(events),
                Err(e) => refused(e),
            }
        }
        CallKind::Update { status, uuid } => {
            match executor.executor_update(caller, *status, uuid).await {
                Ok(()) => StatusCode::ACCEPTED.into_response(),
                Err(e) => refused(e),
            }
        }
        CallKind::Message { data } => match executor.executor_message(caller, data).await {
            Ok(()) => StatusCode::ACCEPTED.into_response(),
            Err(e) => refused(e),
        },
    }
}

/// The event stream: the runtime's events as RecordIO records, with a
/// HEARTBEAT whenever it has been quiet; it ends when the runtime drops
/// the executor's sender (a new subscription, the executor gone).
fn stream(events: tokio::sync::mpsc::UnboundedReceiver<Event>) -> Response {
    let events = tokio_stream::wrappers::UnboundedReceiverStream::new(events).map(Some);
    let heartbeats = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval_at(
        tokio::time::Instant::now() + HEARTBEAT,
        HEARTBEAT,
    ))
    .map(|_| Some(Event::Heartbeat));
    // The stream ends with the events; heartbeats alone do not keep it up.
    let merged = futures::stream::select(
        events.chain(futures::stream::once(async { None })),
        heartbeats,
    )
    .take_while(|e| std::future::ready(e.is_some()))
    .filter_map(std::future::ready)
    .map(|e| Ok::<_, Infallible>(Bytes::from(recordio::encode(&e.to_json()))));
    let mut resp = Response::new(Body::from_stream(merged));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
