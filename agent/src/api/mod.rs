//! The agent's v1 operator API, `POST /api/v1` on its port: the body is
//! parsed once into a [`keel_api::agent::Call`] (Mesos' agent messages
//! for bad input), then answered from the agent's view and its task
//! runtime's snapshot. One file per call family:
//!
//! - [`system`]: GET_HEALTH, GET_FLAGS, GET_VERSION, GET_METRICS,
//!   GET_LOGGING_LEVEL, SET_LOGGING_LEVEL, GET_AGENT (and `/flags`,
//!   `/version`);
//! - [`state`]: GET_STATE, GET_FRAMEWORKS, GET_EXECUTORS, GET_TASKS,
//!   GET_OPERATIONS (and the Mesos-shaped `/state`);
//! - [`statistics`]: GET_CONTAINERS with each container's
//!   `ResourceStatistics` from its cgroup (and `/monitor/statistics`);
//! - [`files`]: LIST_FILES, READ_FILE on the sandboxes;
//! - [`jsonp`]: `?jsonp=` on the port's GET endpoints.
//!
//! - [`containers`]: the nested-container calls (sessions, attach, wait,
//!   kill, remove) and standalone containers; ATTACH_CONTAINER_INPUT is a
//!   streamed request (`application/recordio`), routed before the body is
//!   read.

pub mod containers;
pub mod files;
pub mod jsonp;
pub mod state;
pub mod statistics;
pub mod system;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keel_api::agent::containers::{AgentCall, parse_call};
use keel_api::agent::state::{GetResourceProviders, Response as Answer};
use keel_api::agent::{Call, CallError};

use crate::access::{Access, AccessError};
use crate::http::AgentView;

/// Why a request gets no answer: the status and Mesos' plain-text reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let text = self.to_string();
        if text.is_empty() {
            return status.into_response();
        }
        (status, text).into_response()
    }
}

/// The headers' part of Mesos' checks: `Content-Type` JSON (protobuf is
/// refused as an unsupported media type: Keel speaks JSON only), and an
/// `Accept` that allows JSON (an absent one does).
pub fn check_headers(headers: &HeaderMap) -> Result<(), ApiError> {
    check_content_type(headers)?;
    check_accept(headers)
}

/// `Content-Type` JSON (protobuf is refused: Keel speaks JSON only).
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .ok_or_else(|| ApiError::BadRequest("Expecting 'Content-Type' to be present".into()))?
        .to_str()
        .unwrap_or("");
    if content_type != "application/json" {
        return Err(ApiError::UnsupportedMediaType(format!(
            "Expecting 'Content-Type' of application/json; this agent speaks the v1 API in \
             JSON only (got '{content_type}')"
        )));
    }
    Ok(())
}

/// An `Accept` that allows JSON (an absent one does); the container calls
/// that stream check theirs themselves ([`stream_type`]).
fn check_accept(headers: &HeaderMap) -> Result<(), ApiError> {
    let accepts = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>();
    let json = accepts.is_empty()
        || accepts.iter().flat_map(|v| v.split(',')).any(|m| {
            let m = m.split(';').next().unwrap_or("").trim();
            matches!(m, "application/json" | "application/*" | "*/*")
        });
    if !json {
        return Err(ApiError::NotAcceptable(
            "Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'".into(),
        ));
    }
    Ok(())
}

/// The largest body of a non-streaming call.
pub const MAX_CALL_BYTES: usize = 1 << 20;

pub const APPLICATION_JSON: &str = "application/json";
pub const APPLICATION_RECORDIO: &str = "application/recordio";
pub const MESSAGE_CONTENT_TYPE: &str = "Message-Content-Type";
pub const MESSAGE_ACCEPT: &str = "Message-Accept";

/// How a streaming answer is labelled: Mesos answers `application/json`
/// (records still RecordIO-framed) to callers that accept JSON or say
/// nothing, `application/recordio` with a `Message-Content-Type` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamType {
    Json,
    RecordIo,
}

pub fn bad_request(text: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, text.into()).into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether the `name` header allows `media` (an absent header allows all).
fn accepts(headers: &HeaderMap, name: &str, media: &str) -> bool {
    let Some(value) = header(headers, name) else {
        return true;
    };
    let (kind, _) = media.split_once('/').unwrap_or((media, ""));
    value.split(',').any(|part| {
        let m = part.split(';').next().unwrap_or("").trim();
        m == media || m == "*/*" || m == format!("{kind}/*")
    })
}

/// A caller that accepts no answer this API gives (Mesos' 406).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotAcceptable(String);

impl IntoResponse for NotAcceptable {
    fn into_response(self) -> Response {
        (StatusCode::NOT_ACCEPTABLE, self.0).into_response()
    }
}

/// What a streaming answer may be.
pub fn stream_type(headers: &HeaderMap) -> Result<StreamType, NotAcceptable> {
    let refuse = |text: String| Err(NotAcceptable(text));
    if accepts(headers, "accept", APPLICATION_JSON) {
        Ok(StreamType::Json)
    } else if accepts(headers, "accept", APPLICATION_RECORDIO) {
        if !accepts(headers, MESSAGE_ACCEPT, APPLICATION_JSON) {
            return refuse(format!(
                "Expecting '{MESSAGE_ACCEPT}' to allow {APPLICATION_JSON}"
            ));
        }
        Ok(StreamType::RecordIo)
    } else {
        refuse(format!(
            "Expecting 'Accept' to allow {APPLICATION_JSON} or {APPLICATION_RECORDIO}"
        ))
    }
}

/// `POST /api/v1`.
pub async fn handle(
    State(view): State<Arc<AgentView>>,
    access: Option<Extension<Access>>,
    req: Request,
) -> Response {
    let method = req.method().clone();
    let headers = req.headers().clone();
    if method != Method::POST {
        let mut resp = (
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Expecting 'POST', received '{method}'"),
        )
            .into_response();
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return resp;
    }
    let access = match access_of(access) {
        Ok(a) => a,
        Err(e) => return crate::access::refusal(&e),
    };
    let body = req.into_body();
    if header(&headers, "content-type") == Some(APPLICATION_RECORDIO) {
        return attach_input(&view, access, &headers, body).await;
    }
    if let Err(e) = check_content_type(&headers) {
        return e.into_response();
    }
    if headers.contains_key(MESSAGE_CONTENT_TYPE) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Expecting '{MESSAGE_CONTENT_TYPE}' to be not set for non-streaming requests"),
        )
            .into_response();
    }
    let body = match axum::body::to_bytes(body, MAX_CALL_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body exceeds {MAX_CALL_BYTES} bytes: {e}"),
            )
                .into_response();
        }
    };
    let call = match Call::parse(&body).map_err(ApiError::from) {
        Ok(call) => call,
        Err(e) => {
            tracing::debug!(error = %e, "agent call rejected");
            return e.into_response();
        }
    };
    tracing::debug!(call = call.kind(), "processing agent call");
    if let Call::Container(_) = call {
        return container_call(&view, access, &headers, &body).await;
    }
    if let Err(e) = check_accept(&headers) {
        return e.into_response();
    }
    match answer(&view, &access, call).await {
        Ok(Some(a)) => json(&a),
        Ok(None) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

/// ATTACH_CONTAINER_INPUT: a streamed request of RecordIO records.
async fn attach_input(
    view: &AgentView,
    access: Access,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    match header(headers, MESSAGE_CONTENT_TYPE) {
        None => bad_request(format!(
            "Expecting '{MESSAGE_CONTENT_TYPE}' to be set for streaming requests"
        )),
        Some(APPLICATION_JSON) => containers::attach_input(&view.containers, access, body).await,
        Some(_) => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Expecting '{MESSAGE_CONTENT_TYPE}' of {APPLICATION_JSON}"),
        )
            .into_response(),
    }
}

/// A nested-container call, typed by [`parse_call`].
async fn container_call(
    view: &AgentView,
    access: Access,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    match parse_call(body) {
        Err(e) => bad_request(e.to_string()),
        Ok(AgentCall::Container(call)) => match stream_type(headers) {
            Ok(streaming) => containers::call(&view.containers, access, *call, streaming).await,
            Err(refused) => refused.into_response(),
        },
        Ok(AgentCall::AttachInput(_)) => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Expecting 'Content-Type' to be {APPLICATION_RECORDIO} for ATTACH_CONTAINER_INPUT call"
            ),
        )
            .into_response(),
        Ok(AgentCall::Other(kind)) => (
            StatusCode::NOT_IMPLEMENTED,
            format!("{kind} is not implemented by this agent"),
        )
            .into_response(),
    }
}

/// Answers one call: `Ok(None)` is an empty 200.
async fn answer(view: &AgentView, access: &Access, call: Call) -> Result<Option<Answer>, ApiError> {
    let answer = match call {
        Call::Unknown => return Err(ApiError::NotImplemented(String::new())),
        // Answered by [`containers`] before this (see [`handle`]).
        Call::Container(kind) => {
            return Err(ApiError::Internal(format!(
                "{kind} reached the wrong handler"
            )));
        }
        Call::Unsupported(kind) => {
            return Err(ApiError::NotImplemented(format!(
                "{kind} is not supported by this agent"
            )));
        }
        Call::GetHealth => system::health(),
        Call::GetFlags => system::get_flags(view),
        Call::GetVersion => system::get_version(),
        Call::GetMetrics(_) => system::get_metrics(view),
        Call::GetLoggingLevel => system::get_logging_level(),
        Call::SetLoggingLevel(s) => {
            system::set_logging_level(access, &s)?;
            return Ok(None);
        }
        Call::GetAgent => system::get_agent(view),
        Call::ListFiles(l) => files::list(view, access, &l.path).await?,
        Call::ReadFile(r) => files::read(view, access, &r).await?,
        Call::GetState => Answer::GetState(state::get_state(view, access).await),
        Call::GetFrameworks => {
            Answer::GetFrameworks(state::get_frameworks(&snapshot(view, access).await))
        }
        Call::GetExecutors => {
            Answer::GetExecutors(state::get_executors(&snapshot(view, access).await))
        }
        Call::GetTasks => Answer::GetTasks(state::get_tasks(&snapshot(view, access).await)),
        Call::GetOperations => Answer::GetOperations(Default::default()),
        Call::GetResourceProviders => Answer::GetResourceProviders(GetResourceProviders::default()),
        Call::GetContainers(c) => Answer::GetContainers(
            statistics::get_containers(&snapshot(view, access).await, c).await,
        ),
    };
    Ok(Some(answer))
}

/// The runtime's snapshot as `access` may see it: a sandbox grant shows
/// only the frameworks it names.
pub(crate) async fn snapshot(
    view: &AgentView,
    access: &Access,
) -> crate::executor::runtime::RuntimeSnapshot {
    visible_to(view.runtime.snapshot().await, access)
}

/// What of `s` a request with `access` may see.
pub fn visible_to(
    mut s: crate::executor::runtime::RuntimeSnapshot,
    access: &Access,
) -> crate::executor::runtime::RuntimeSnapshot {
    if let Access::Frameworks(granted) = access {
        s.frameworks.retain(|f| granted.contains(&f.framework_id));
        s.completed_frameworks
            .retain(|f| granted.contains(&f.framework_id));
    }
    s
}

/// The request's [`Access`], which the port's middleware decided (a
/// router without it serves nothing).
pub(crate) fn access_of(access: Option<Extension<Access>>) -> Result<Access, AccessError> {
    access
        .map(|Extension(a)| a)
        .ok_or(AccessError::Unauthenticated)
}

/// `200` with `body` as JSON (`Content-Type: application/json`, exactly).
pub fn json<T: serde::Serialize>(body: &T) -> Response {
    match serde_json::to_string(body) {
        Ok(text) => {
            let mut resp = (StatusCode::OK, text).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(e) => ApiError::Internal(e.to_string()).into_response(),
    }
}

/// The answer to a call with no data (Mesos sends no `Content-Type`).
pub fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r.headers_mut().remove(header::CONTENT_TYPE);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::runtime::{FrameworkSnapshot, RuntimeSnapshot};

    fn fw(id: &str) -> FrameworkSnapshot {
        FrameworkSnapshot {
            framework_id: id.into(),
            info: None,
            executors: Vec::new(),
            completed_executors: Vec::new(),
        }
    }

    #[test]
    fn a_grant_sees_its_frameworks_only() {
        let s = RuntimeSnapshot {
            agent_id: Some("a".into()),
            frameworks: vec![fw("f1"), fw("f2")],
            completed_frameworks: vec![fw("f3"), fw("f1-old")],
        };
        let grant = Access::Frameworks(["f1".to_string(), "f3".to_string()].into());
        let seen = visible_to(s.clone(), &grant);
        let ids = |l: &[FrameworkSnapshot]| -> Vec<String> {
            l.iter().map(|f| f.framework_id.clone()).collect()
        };
        assert_eq!(ids(&seen.frameworks), ["f1"]);
        assert_eq!(ids(&seen.completed_frameworks), ["f3"]);
        assert_eq!(visible_to(s.clone(), &Access::All), s);
        assert_eq!(visible_to(s.clone(), &Access::NoSandboxes("reader")), s);
    }

    #[test]
    fn headers_are_checked_as_mesos_does() {
        let mut h = HeaderMap::new();
        assert_eq!(
            check_headers(&h),
            Err(ApiError::BadRequest(
                "Expecting 'Content-Type' to be present".into()
            ))
        );
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert_eq!(check_headers(&h), Ok(()));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html, */*;q=0.1"),
        );
        assert_eq!(check_headers(&h), Ok(()));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/x-protobuf"),
        );
        assert!(matches!(check_headers(&h), Err(ApiError::NotAcceptable(_))));
    }
}
