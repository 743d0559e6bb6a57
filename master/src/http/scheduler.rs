//! `POST /api/v1/scheduler` (also `/master/api/v1/scheduler`): the Mesos v1
//! scheduler API. SUBSCRIBE answers with a chunked RecordIO event stream;
//! other calls with `202 Accepted` (UPDATE_FRAMEWORK: `200 OK`) and an empty
//! body without Content-Type, or a 4xx with a plain-text reason.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::operator::{accepts_json, check_content_type};
use super::plain;
use crate::core::Master;
use crate::scheduler::call::{CallError, SchedulerCall, parse_call};

const STREAM_ID: &str = "Mesos-Stream-Id";

fn rejected(e: CallError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    plain(status, e.reason)
}

pub async fn handle(
    State(master): State<Arc<Master>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(resp) = super::require_post(&method) {
        return resp;
    }
    if let Err(r) = check_content_type(&headers) {
        return plain(r.status, r.reason);
    }
    let json: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(j) => j,
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse body into JSON: {e}"),
            );
        }
    };
    let parsed = match parse_call(json) {
        Ok(p) => p,
        Err(e) => return rejected(e),
    };
    let stream_id = headers.get(STREAM_ID).and_then(|v| v.to_str().ok());

    if let SchedulerCall::Subscribe {
        info,
        info_json,
        suppressed_roles,
    } = parsed.call
    {
        if stream_id.is_some() {
            return plain(
                StatusCode::BAD_REQUEST,
                "Subscribe calls should not include the 'Mesos-Stream-Id' header",
            );
        }
        if !accepts_json(&headers) {
            return plain(
                StatusCode::NOT_ACCEPTABLE,
                "Expecting 'Accept' to allow application/json",
            );
        }
        let sub = master
            .subscribe(parsed.framework_id, info, info_json, suppressed_roles)
            .await;
        let events = ReceiverStream::new(sub.events).map(Ok::<Bytes, Infallible>);
        let mut resp = Response::new(Body::from_stream(events));
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(v) = HeaderValue::from_str(&sub.stream_id) {
            h.insert(STREAM_ID, v);
        }
        return resp;
    }

    let framework_id = parsed.framework_id.unwrap_or_default();
    if let Err(e) = master.check_stream(&framework_id, stream_id) {
        return rejected(e);
    }
    let fid = framework_id.as_str();
    match parsed.call {
        SchedulerCall::Subscribe { .. } => unreachable!("handled above"),
        SchedulerCall::Teardown => {
            if let Err(e) = master.teardown(fid).await {
                return rejected(e);
            }
        }
        SchedulerCall::Accept {
            offer_ids,
            operations,
            filters,
        } => master.accept(fid, &offer_ids, operations, filters).await,
        SchedulerCall::Decline { offer_ids, filters } => master.decline(fid, &offer_ids, filters),
        SchedulerCall::Revive { roles } => master.suppress(fid, &roles, true),
        SchedulerCall::Suppress { roles } => master.suppress(fid, &roles, false),
        SchedulerCall::Kill {
            task_id,
            kill_policy,
            ..
        } => master.kill(fid, &task_id, kill_policy),
        SchedulerCall::Shutdown { executor_id, .. } => master.shutdown_executor(fid, &executor_id),
        SchedulerCall::Acknowledge {
            agent_id,
            task_id,
            uuid,
        } => master.acknowledge(fid, &agent_id, &task_id, uuid),
        SchedulerCall::Reconcile { tasks } => master.reconcile(fid, &tasks),
        SchedulerCall::Message {
            agent_id,
            executor_id,
        } => {
            tracing::debug!(%fid, %agent_id, %executor_id, "framework message dropped: command executors take none");
        }
        SchedulerCall::Request => {}
        SchedulerCall::NoOp { kind } => {
            tracing::debug!(%fid, %kind, "call accepted with nothing to do")
        }
        SchedulerCall::UpdateFramework {
            info,
            info_json,
            suppressed_roles,
        } => {
            return match master
                .update_framework(fid, info, info_json, suppressed_roles)
                .await
            {
                Ok(()) => StatusCode::OK.into_response(),
                Err(e) => rejected(e),
            };
        }
    }
    StatusCode::ACCEPTED.into_response()
}
