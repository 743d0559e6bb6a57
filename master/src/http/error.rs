//! The one error type of the HTTP edge: a status and a plain-text reason,
//! as Mesos answers. Every refusal from below (parsing, the engine, the
//! store) is mapped to its status here and nowhere else.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keel_api::scheduler::CallError as ParseError;

use crate::core::{CallError, MasterError, Refusal};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub reason: String,
}

impl ApiError {
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        ApiError {
            status,
            reason: reason.into(),
        }
    }

    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        tracing::debug!(status = %self.status, reason = %self.reason, "request refused");
        super::plain(self.status, self.reason)
    }
}

impl From<ParseError> for ApiError {
    fn from(e: ParseError) -> Self {
        let status = match e {
            ParseError::Unknown => StatusCode::NOT_IMPLEMENTED,
            ParseError::Malformed(_) | ParseError::Invalid(_) => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let status = match r {
            Refusal::NotSubscribed => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, r.to_string())
    }
}

impl From<MasterError> for ApiError {
    fn from(e: MasterError) -> Self {
        let status = if e.is_unavailable() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Refused(r) => r.into(),
            CallError::Failed(m) => m.into(),
        }
    }
}
