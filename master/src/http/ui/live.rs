//! `/ui/events`: the operator event stream as server-sent events for the
//! UI's script. Each change the engine reports (see `crate::core::events`)
//! becomes one compact notice, `{"kind": "task", "id": ..., "state": ...}`,
//! filtered as the operator stream is; the page then fetches its own live
//! region again. A comment every 15 s keeps proxies from closing the
//! stream. No state is read beyond what the engine sends.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use keel_api::ui::{Notice, NoticeKind};

use super::super::visible::Viewer;
use super::error_page;
use crate::auth::Caller;
use crate::core::{EventReceiver, Master};
use crate::engine::Observed;

const KEEPALIVE: Duration = Duration::from_secs(15);

/// `change` as the notice `viewer` may see; `None` if it may not.
pub fn notice(viewer: Viewer<'_>, change: &Observed) -> Option<Notice> {
    let (kind, id, state) = match change {
        Observed::TaskAdded { task, user } | Observed::TaskUpdated { task, user, .. } => {
            if !viewer.task(task, user) {
                return None;
            }
            (
                NoticeKind::Task,
                task.task_id.clone(),
                Some(task.state.name().to_string()),
            )
        }
        Observed::AgentAdded { agent, .. } => {
            if !viewer.agents() {
                return None;
            }
            (
                NoticeKind::Agent,
                agent.id.clone(),
                Some(agent.state.as_str().to_string()),
            )
        }
        Observed::AgentRemoved { agent_id } => {
            if !viewer.agents() {
                return None;
            }
            (NoticeKind::Agent, agent_id.clone(), None)
        }
        Observed::FrameworkAdded(f) | Observed::FrameworkUpdated(f) => {
            if !viewer.framework(&f.info) {
                return None;
            }
            (NoticeKind::Framework, f.id.clone(), None)
        }
        Observed::FrameworkRemoved(info) => {
            if !viewer.framework(info) {
                return None;
            }
            let id = info
                .id
                .as_ref()
                .map(|i| i.value.clone())
                .unwrap_or_default();
            (NoticeKind::Framework, id, None)
        }
    };
    Some(Notice { kind, id, state })
}

/// One notice as an SSE `data:` line.
fn frame(notice: &Notice) -> Bytes {
    let json = serde_json::to_string(notice).unwrap_or_default();
    Bytes::from(format!("data: {json}\n\n"))
}

struct Feed {
    master: Arc<Master>,
    caller: Caller,
    changes: EventReceiver,
    keepalive: tokio::time::Interval,
}

impl Feed {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            tokio::select! {
                change = self.changes.recv() => {
                    let change = change?;
                    let viewer = Viewer::of(&self.master, &self.caller);
                    if let Some(n) = notice(viewer, &change) {
                        return Some(frame(&n));
                    }
                }
                _ = self.keepalive.tick() => return Some(Bytes::from_static(b": keepalive\n\n")),
            }
        }
    }
}

pub async fn events(master: Arc<Master>, caller: Caller) -> Response {
    let changes = match master.subscribe_events() {
        Ok((_, changes)) => changes,
        Err(e) => {
            return error_page(
                Some(&master),
                StatusCode::SERVICE_UNAVAILABLE,
                &e.to_string(),
            );
        }
    };
    let feed = Feed {
        master,
        caller,
        changes,
        keepalive: tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE),
    };
    // The first frame opens the stream at once (the browser's `open`).
    let opening =
        futures::stream::once(async { Ok::<Bytes, Infallible>(Bytes::from_static(b": open\n\n")) });
    let body = futures::stream::unfold(feed, |mut feed| async move {
        let next = feed.next().await?;
        Some((Ok::<Bytes, Infallible>(next), feed))
    });
    use futures::StreamExt;
    let mut resp = Response::new(Body::from_stream(opening.chain(body)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
