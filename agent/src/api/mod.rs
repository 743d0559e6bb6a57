//! The agent's v1 operator API, `POST /api/v1` on the agent's port.
//!
//! This dispatcher knows the nested-container calls only ([`containers`]);
//! every other call type answers `501 Not Implemented`. The handlers are
//! functions ([`containers::call`], [`containers::attach_input`]) so that a
//! fuller dispatcher can route to them. Requests are checked as Mesos does
//! (`src/slave/http.cpp`, `Http::api`): the `Content-Type`, the
//! `Message-Content-Type` of a streaming request, and what the caller
//! `Accept`s.

pub mod containers;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keel_api::agent::containers::{AgentCall, parse_call};

use crate::access::Access;
use crate::containers::Containers;

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
pub async fn api_v1(State(ctx): State<Containers>, req: Request) -> Response {
    let access = req
        .extensions()
        .get::<Access>()
        .cloned()
        .unwrap_or(Access::NoSandboxes("unauthenticated"));
    let headers = req.headers().clone();
    let Some(content_type) = header(&headers, "content-type") else {
        return bad_request("Expecting 'Content-Type' to be present");
    };
    let body = req.into_body();
    match content_type {
        APPLICATION_RECORDIO => {
            match header(&headers, MESSAGE_CONTENT_TYPE) {
                None => {
                    return bad_request(format!(
                        "Expecting '{MESSAGE_CONTENT_TYPE}' to be set for streaming requests"
                    ));
                }
                Some(APPLICATION_JSON) => {}
                Some(_) => {
                    return (
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        format!("Expecting '{MESSAGE_CONTENT_TYPE}' of {APPLICATION_JSON}"),
                    )
                        .into_response();
                }
            }
            containers::attach_input(&ctx, access, body).await
        }
        APPLICATION_JSON => {
            if headers.contains_key(MESSAGE_CONTENT_TYPE) {
                return (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!(
                        "Expecting '{MESSAGE_CONTENT_TYPE}' to be not set for non-streaming requests"
                    ),
                )
                    .into_response();
            }
            let bytes = match axum::body::to_bytes(body, MAX_CALL_BYTES).await {
                Ok(b) => b,
                Err(e) => {
                    return (
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("Request body exceeds {MAX_CALL_BYTES} bytes: {e}"),
                    )
                        .into_response();
                }
            };
            match parse_call(&bytes) {
                Err(e) => bad_request(e.to_string()),
                Ok(AgentCall::Container(call)) => {
                    let streaming = match stream_type(&headers) {
                        Ok(t) => t,
                        Err(refused) => return refused.into_response(),
                    };
                    containers::call(&ctx, access, *call, streaming).await
                }
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
        _ => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Expecting 'Content-Type' of {APPLICATION_JSON} or application/x-protobuf or {APPLICATION_RECORDIO}"
            ),
        )
            .into_response(),
    }
}

/// The answer to a call with no data (Mesos sends no `Content-Type`).
pub fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r.headers_mut().remove(header::CONTENT_TYPE);
    r
}
