//! `SUBSCRIBE` on `/api/v1`: the operator event stream. The answer is a
//! chunked RecordIO stream (as the scheduler API's): `SUBSCRIBED` with the
//! state the caller may see, then every change the engine reports
//! (`crate::core` queues them per subscriber; one that does not keep up is
//! dropped and its stream ends), filtered as GET_STATE is, with a
//! `HEARTBEAT` every framework heartbeat interval. Rendering happens here,
//! outside the master's lock.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use keel_api::mesos::Id;
use keel_api::operator::events::{
    AgentAdded, AgentRemoved, FrameworkEvent, FrameworkRemoved, Subscribed, TaskAdded, TaskUpdated,
};
use keel_api::operator::{Event, GetState};
use keel_api::recordio;
use keel_api::resources::Resources;

use super::plain;
use super::state::{self, Snapshot};
use super::views;
use super::visible::Viewer;
use crate::auth::Caller;
use crate::core::{EventReceiver, EventsError, Master};
use crate::engine::Observed;

/// `GET_STATE` as `viewer` may see `s`.
pub(super) fn get_state(viewer: Viewer<'_>, mut s: Snapshot) -> GetState {
    viewer.filter(&mut s);
    GetState {
        get_tasks: state::get_tasks(&s),
        get_executors: state::get_executors(&s),
        get_frameworks: state::get_frameworks(&s),
        get_agents: match viewer.agents() {
            true => super::operator::get_agents(&s),
            false => Default::default(),
        },
    }
}

/// One change as the event `viewer` may see; `None` if it may not.
fn render(viewer: Viewer<'_>, change: &Observed) -> Option<Event> {
    Some(match change {
        Observed::TaskAdded { task, user } => {
            if !viewer.task(task, user) {
                return None;
            }
            Event::TaskAdded(TaskAdded {
                task: state::task_v1(task),
            })
        }
        Observed::TaskUpdated { task, status, user } => {
            if !viewer.task(task, user) {
                return None;
            }
            Event::TaskUpdated(TaskUpdated {
                framework_id: Id::new(&task.framework_id),
                status: (**status).clone(),
                state: task.state,
            })
        }
        Observed::AgentAdded { agent, used } => {
            if !viewer.agents() {
                return None;
            }
            Event::AgentAdded(AgentAdded {
                agent: views::agent_v1(agent, &Default::default(), used, &Resources::default()),
            })
        }
        Observed::AgentRemoved { agent_id } => {
            if !viewer.agents() {
                return None;
            }
            Event::AgentRemoved(AgentRemoved {
                agent_id: Id::new(agent_id),
            })
        }
        Observed::FrameworkAdded(f) | Observed::FrameworkUpdated(f) => {
            if !viewer.framework(&f.info) {
                return None;
            }
            let framework = state::framework_v1(f);
            match change {
                Observed::FrameworkAdded(_) => Event::FrameworkAdded(FrameworkEvent { framework }),
                _ => Event::FrameworkUpdated(FrameworkEvent { framework }),
            }
        }
        Observed::FrameworkRemoved(info) => {
            if !viewer.framework(info) {
                return None;
            }
            Event::FrameworkRemoved(FrameworkRemoved {
                framework_info: (**info).clone(),
            })
        }
    })
}

fn record(event: &Event) -> Bytes {
    Bytes::from(recordio::encode(event))
}

/// What the response body reads from.
struct Feed {
    master: Arc<Master>,
    caller: Caller,
    changes: EventReceiver,
    heartbeat: tokio::time::Interval,
    first: Option<Bytes>,
}

impl Feed {
    /// The next record; `None` once the subscriber was dropped.
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        loop {
            tokio::select! {
                change = self.changes.recv() => {
                    let viewer = Viewer::of(&self.master, &self.caller);
                    let change = change?;
                    if let Some(event) = render(viewer, &change) {
                        return Some(record(&event));
                    }
                }
                _ = self.heartbeat.tick() => return Some(record(&Event::Heartbeat)),
            }
        }
    }
}

/// Answers SUBSCRIBE (already authorized: what the caller sees is
/// filtered).
pub async fn subscribe(master: &Arc<Master>, caller: &Caller) -> Response {
    if let Err(e) = master.read_barrier().await {
        return plain(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    }
    let (snapshot, changes) = match master.subscribe_events() {
        Ok(s) => s,
        Err(e @ (EventsError::NotLeading | EventsError::TooMany(_))) => {
            return plain(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        }
    };
    let period = master.config().framework_heartbeat_interval;
    let period = period.max(Duration::from_millis(100));
    let subscribed = Event::Subscribed(Subscribed {
        get_state: get_state(Viewer::of(master, caller), snapshot),
        heartbeat_interval_seconds: Some(period.as_secs_f64()),
    });
    let feed = Feed {
        master: Arc::clone(master),
        caller: caller.clone(),
        changes,
        heartbeat: tokio::time::interval_at(tokio::time::Instant::now() + period, period),
        first: Some(record(&subscribed)),
    };
    let body = futures::stream::unfold(feed, |mut feed| async move {
        let next = feed.next().await?;
        Some((Ok::<Bytes, Infallible>(next), feed))
    });
    let mut resp = Response::new(Body::from_stream(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
