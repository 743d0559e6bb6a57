//! `POST /api/v1/scheduler` (also `/master/api/v1/scheduler`): the Mesos v1
//! scheduler API over HTTP. The body is read within its limits
//! ([`super::body`]), checked against the call limits and parsed once into
//! a typed [`Call`] (a big body's framework and stream are checked before
//! it is typed); SUBSCRIBE answers with a chunked RecordIO event stream (an
//! [`HttpStream`] is the framework's connection); other calls go to
//! [`Master::call`] and answer `202 Accepted` (UPDATE_FRAMEWORK: `200 OK`)
//! with an empty body, or a 4xx/5xx with a plain-text reason. The typed
//! call is authorized first (`auth.rs`): a SUBSCRIBE refused for its roles
//! gets the stream with one ERROR event, as Mesos answers it.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use keel_api::recordio;
use keel_api::scheduler::{Call, CallKind, Event};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::body::Bodies;
use super::error::ApiError;
use super::operator::{accepts_json, check_content_type};
use crate::auth::Caller;
use crate::core::{CallReply, FrameworkConnection, Master, SendError};

const STREAM_ID: &str = "Mesos-Stream-Id";
/// Events queued for a slow framework before it is disconnected.
const STREAM_CAPACITY: usize = 4096;
/// A body larger than this is typed only for a subscribed framework on its
/// stream (SUBSCRIBE aside).
const CHECK_FRAMEWORK_FIRST: usize = 64 << 10;

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

    fn room(&self) -> usize {
        self.tx.capacity()
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
    Extension(bodies): Extension<Bodies>,
    Extension(caller): Extension<Caller>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match serve(&master, &bodies, &caller, &method, &headers, body).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn serve(
    master: &Arc<Master>,
    bodies: &Bodies,
    caller: &Caller,
    method: &Method,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if let Some(resp) = super::require_post(method) {
        return Ok(resp);
    }
    check_content_type(headers)?;
    let stream_id = headers.get(STREAM_ID).and_then(|v| v.to_str().ok());
    let body = bodies
        .read(headers, body, bodies.limits.scheduler, "scheduler calls")
        .await?;
    let text = Call::prepare(&body)?;
    if text.len() > CHECK_FRAMEWORK_FIRST {
        check_framework(master, &text, stream_id).await?;
    }
    let call = Call::from_prepared(&text)?;
    drop(text);
    // The call counts against the body budget until it is carried out.
    let _held = body.into_held();
    if let CallKind::Subscribe(mut sub) = call.kind {
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
        let authorized =
            super::auth::subscribe(&master.config().trust, caller, &mut sub.framework_info)?;
        let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
        let stream = uuid::Uuid::new_v4().to_string();
        let conn = Box::new(HttpStream { tx });
        let framework_id = match authorized {
            Ok(()) => {
                master
                    .subscribe(call.framework_id, sub, stream.clone(), conn)
                    .await
            }
            // As Mesos refuses it: the stream's one event is ERROR.
            Err(denied) => {
                tracing::info!(reason = %denied, "subscription refused");
                let _ = conn.send(&Event::Error(denied.to_string()));
                None
            }
        };
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
    let mut kind = call.kind;
    super::auth::scheduler(master, caller, &framework_id, &mut kind)?;
    match master.call(&framework_id, stream_id, kind).await? {
        CallReply::Accepted => Ok(StatusCode::ACCEPTED.into_response()),
        CallReply::Done => Ok(StatusCode::OK.into_response()),
    }
}

/// Before a big call is typed: its framework must be subscribed and the
/// request on its stream, as [`Master::call`] would then check (a call
/// with nothing to do passes those checks and does nothing else).
async fn check_framework(
    master: &Master,
    text: &[u8],
    stream_id: Option<&str>,
) -> Result<(), ApiError> {
    let head = Call::head(text)?;
    if head.kind.as_deref() == Some("SUBSCRIBE") {
        return Ok(());
    }
    let Some(framework_id) = head.framework_id else {
        return Ok(());
    };
    let probe = CallKind::NoOp {
        kind: "(framework check before parsing)".into(),
    };
    master.call(&framework_id, stream_id, probe).await?;
    Ok(())
}
