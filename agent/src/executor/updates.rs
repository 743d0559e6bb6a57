//! The status update manager: a pure state machine, one stream per task.
//!
//! ```text
//!  enqueue --> [queued] --head, connected--> [outstanding] --ack(uuid of head)--> next head
//!                  ^                            |  resend at base, 2*base, ... cap     |
//!                  +-- reconnect: resend now <--+                   terminal acked --> forgotten
//! ```
//!
//! Per task exactly one update is outstanding (sent, not acknowledged), in
//! order. An acknowledgement whose uuid is not the outstanding one (a
//! duplicate, a stale one) is ignored. While disconnected nothing is sent and
//! no timer runs; [`UpdateManager::connected`] sends every head at once.
//! Time is passed in, so the whole thing is tested without a clock.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use keel_api::mesos::TaskState;
use keel_api::pb;
use tokio::time::Instant;

/// Mesos' status update retry: 10 s doubling to 10 min.
pub const RESEND_BASE: Duration = Duration::from_secs(10);
pub const RESEND_CAP: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskKey {
    pub framework_id: String,
    pub task_id: String,
}

impl TaskKey {
    pub fn new(framework_id: impl Into<String>, task_id: impl Into<String>) -> Self {
        TaskKey {
            framework_id: framework_id.into(),
            task_id: task_id.into(),
        }
    }
}

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Put this update on the stream to the master.
    Send(Box<pb::StatusUpdate>),
    /// The task's terminal update was acknowledged: drop the task.
    Forget(TaskKey),
}

#[derive(Debug, Default)]
struct Stream {
    queue: VecDeque<pb::StatusUpdate>,
    /// Set once the head was sent: when to resend it and the current interval.
    resend: Option<(Instant, Duration)>,
}

#[derive(Debug)]
pub struct UpdateManager {
    streams: BTreeMap<TaskKey, Stream>,
    base: Duration,
    cap: Duration,
    connected: bool,
}

fn key_of(u: &pb::StatusUpdate) -> TaskKey {
    let task_id = u.status.as_ref().map(|s| s.task_id.as_str()).unwrap_or("");
    TaskKey::new(&u.framework_id, task_id)
}

fn uuid_of(u: &pb::StatusUpdate) -> &[u8] {
    u.status.as_ref().map(|s| s.uuid.as_slice()).unwrap_or(&[])
}

fn is_terminal(u: &pb::StatusUpdate) -> bool {
    u.status
        .as_ref()
        .and_then(|s| TaskState::from_name(&s.state))
        .is_some_and(TaskState::is_terminal)
}

impl UpdateManager {
    /// Starts disconnected; resends after `base`, doubling up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        UpdateManager {
            streams: BTreeMap::new(),
            base,
            cap: cap.max(base),
            connected: false,
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Queues `update`; sends it now if it is its task's only one.
    pub fn enqueue(&mut self, update: pb::StatusUpdate, now: Instant) -> Vec<Output> {
        let key = key_of(&update);
        let stream = self.streams.entry(key).or_default();
        if stream.queue.iter().any(|u| uuid_of(u) == uuid_of(&update)) {
            return Vec::new();
        }
        stream.queue.push_back(update);
        if stream.queue.len() == 1 && self.connected {
            Self::send_head(stream, now, self.base)
                .into_iter()
                .collect()
        } else {
            Vec::new()
        }
    }

    fn send_head(stream: &mut Stream, now: Instant, interval: Duration) -> Option<Output> {
        let head = stream.queue.front()?;
        stream.resend = Some((now + interval, interval));
        Some(Output::Send(Box::new(head.clone())))
    }

    /// Handles an acknowledgement; `None` when it does not match the
    /// outstanding update (duplicate, stale or unknown: ignored).
    pub fn acknowledge(&mut self, key: &TaskKey, uuid: &[u8], now: Instant) -> Option<Vec<Output>> {
        let stream = self.streams.get_mut(key)?;
        let head = stream.queue.front()?;
        if stream.resend.is_none() || uuid_of(head) != uuid {
            return None;
        }
        let acked = stream.queue.pop_front()?;
        stream.resend = None;
        if stream.queue.is_empty() && is_terminal(&acked) {
            self.streams.remove(key);
            return Some(vec![Output::Forget(key.clone())]);
        }
        if self.connected {
            return Some(
                Self::send_head(stream, now, self.base)
                    .into_iter()
                    .collect(),
            );
        }
        Some(Vec::new())
    }

    /// Resends every outstanding update whose time has come.
    pub fn tick(&mut self, now: Instant) -> Vec<Output> {
        if !self.connected {
            return Vec::new();
        }
        let cap = self.cap;
        self.streams
            .values_mut()
            .filter(|s| s.resend.is_some_and(|(at, _)| at <= now))
            .filter_map(|s| {
                let next = s.resend.map(|(_, i)| (i * 2).min(cap))?;
                Self::send_head(s, now, next)
            })
            .collect()
    }

    /// When [`Self::tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        if !self.connected {
            return None;
        }
        self.streams
            .values()
            .filter_map(|s| s.resend.map(|(at, _)| at))
            .min()
    }

    /// The stream to the master is up (again): send every task's head now.
    pub fn connected(&mut self, now: Instant) -> Vec<Output> {
        self.connected = true;
        let base = self.base;
        self.streams
            .values_mut()
            .filter_map(|s| {
                let interval = s.resend.map_or(base, |(_, i)| i);
                Self::send_head(s, now, interval)
            })
            .collect()
    }

    /// The stream is down: keep everything, send nothing.
    pub fn disconnected(&mut self) {
        self.connected = false;
    }

    /// The update of `key` now waiting for its acknowledgement, if sent.
    pub fn outstanding(&self, key: &TaskKey) -> Option<&pb::StatusUpdate> {
        let s = self.streams.get(key)?;
        s.resend.and(s.queue.front())
    }

    /// How many updates of `key` are not acknowledged yet.
    pub fn pending(&self, key: &TaskKey) -> usize {
        self.streams.get(key).map_or(0, |s| s.queue.len())
    }
}

#[cfg(test)]
#[path = "updates_tests.rs"]
mod tests;
