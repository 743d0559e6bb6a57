//! `POST /api/v1/scheduler` (also `/master/api/v1/scheduler`): the Mesos v1
//! scheduler API over HTTP. The body is parsed once into a typed
//! [`Call`]; SUBSCRIBE answers with a chunked RecordIO event stream (an
//! [`HttpStream`] is the framework's connection); other calls go to
//! [`Master::call`] and answer `202 Accepted` (UPDATE_FRAMEWORK: `200 OK`)
//! with an empty body, or a 4xx/5xx with a plain-text reason.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use keel_api::recordio;
use keel_api::scheduler::{Call, CallKind, Event};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::error::ApiError;
use super::operator::{accepts_json, check_content_type};
use crate::core::{CallReply, FrameworkConnection, Master, SendError};

const STREAM_ID: &str = "Mesos-Stream-Id";
/// Events queued for a slow framework before it is disconnected.
const STREAM_CAPACITY: usize = 4096;

/// A framework's event stream as an HTTP response body.
struct HttpStream {
    tx: mpsc::Sender<Bytes>,
}

impl FrameworkConnection for HttpStream {
    fn send(&self, event: &Event) -> Result<(), SendError> {
        let record = Bytes::from(recordio::encode(event));
        self.tx.try_send(record).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Full,
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })
    }
}

/// Tells the master when the response body is dropped: the client went
/// away (or the master ended the stream, which it then ignores).
struct Gone {
    master: Arc<Master>,
    framework_id: String,
    stream: String,
}

impl Drop for Gone {
    fn drop(&mut self) {
        self.master.stream_gone(&self.framework_id, &self.stream);
    }
}

pub async fn handle(
    State(master): State<Arc<Master>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match serve(&master, &method, &headers, &body).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn serve(
    master: &Arc<Master>,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    if let Some(resp) = super::require_post(method) {
        return Ok(resp);
    }
    check_content_type(headers)?;
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Failed to parse body into JSON: {e}")))?;
    let call = Call::from_json(json).map_err(ApiError::from)?;
    let stream_id = headers.get(STREAM_ID).and_then(|v| v.to_str().ok());
    if let CallKind::Subscribe(sub) = call.kind {
        if stream_id.is_some() {
            return Err(ApiError::bad_request(
                "Subscribe calls should not include the 'Mesos-Stream-Id' header",
            ));
        }
        if !accepts_json(headers) {
            return Err(ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                "Expecting 'Accept' to allow application/json",
            ));
        }
        let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
        let stream = uuid::Uuid::new_v4().to_string();
        let framework_id = master
            .subscribe(
                call.framework_id,
                sub,
                stream.clone(),
                Box::new(HttpStream { tx }),
            )
            .await;
        let gone = framework_id.map(|framework_id| Gone {
            master: Arc::clone(master),
            framework_id,
            stream: stream.clone(),
        });
        let events = ReceiverStream::new(rx).map(move |record| {
            // Owned by the body: dropped when the client goes away.
            let _held = &gone;
            Ok::<Bytes, Infallible>(record)
        });
        let mut resp = Response::new(Body::from_stream(events));
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(v) = HeaderValue::from_str(&stream) {
            h.insert(STREAM_ID, v);
        }
        return Ok(resp);
    }
    let framework_id = call.framework_id.unwrap_or_default();
    match master.call(&framework_id, stream_id, call.kind).await? {
        CallReply::Accepted => Ok(StatusCode::ACCEPTED.into_response()),
        CallReply::Done => Ok(StatusCode::OK.into_response()),
    }
}
