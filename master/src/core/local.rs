//! In-process frameworks: a framework that runs inside the master (the
//! built-in service and job schedulers) subscribes, gets offers through the
//! same allocator under its own role, and calls ACCEPT, KILL, RECONCILE
//! ... through [`Master::call`] exactly like an HTTP framework; its events
//! arrive on a channel instead of a RecordIO stream. It shows in
//! `GET_FRAMEWORKS` like any other.

use std::sync::Arc;

use keel_api::scheduler::{CallKind, Event, Subscribe};
use tokio::sync::mpsc;

use super::links::{FrameworkConnection, SendError};
use super::{CallError, CallReply, Master};

/// Events queued for an in-process framework before it counts as stuck
/// (and is disconnected, as a slow HTTP framework would be).
const QUEUE: usize = 4096;

struct LocalConnection {
    tx: mpsc::Sender<Event>,
}

impl FrameworkConnection for LocalConnection {
    fn send(&self, event: &Event) -> Result<(), SendError> {
        self.tx.try_send(event.clone()).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Full,
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })
    }

    fn room(&self) -> usize {
        self.tx.capacity()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The master answered SUBSCRIBE with ERROR.
    #[error("subscription refused: {0}")]
    Refused(String),
    /// The stream ended before SUBSCRIBED (the master stepped down).
    #[error("the master closed the subscription")]
    Closed,
}

/// A subscribed in-process framework.
pub struct LocalFramework {
    master: Arc<Master>,
    framework_id: String,
    stream: String,
    events: mpsc::Receiver<Event>,
}

impl LocalFramework {
    /// SUBSCRIBE (with `framework_info.id` set to re-subscribe).
    pub async fn subscribe(master: &Arc<Master>, sub: Subscribe) -> Result<Self, LocalError> {
        let (tx, mut events) = mpsc::channel(QUEUE);
        let stream = uuid::Uuid::new_v4().to_string();
        let framework_id = sub.framework_info.id.as_ref().map(|i| i.value.clone());
        let _ = master
            .subscribe(
                framework_id,
                sub,
                stream.clone(),
                Box::new(LocalConnection { tx }),
            )
            .await;
        match events.recv().await {
            Some(Event::Subscribed(s)) => Ok(LocalFramework {
                master: Arc::clone(master),
                framework_id: s.framework_id.value,
                stream,
                events,
            }),
            Some(Event::Error(message)) => Err(LocalError::Refused(message)),
            _ => Err(LocalError::Closed),
        }
    }

    pub fn framework_id(&self) -> &str {
        &self.framework_id
    }

    /// The next event; `None` once the master ended the subscription.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Any call but SUBSCRIBE.
    pub async fn call(&self, kind: CallKind) -> Result<CallReply, CallError> {
        self.master
            .call(&self.framework_id, Some(&self.stream), kind)
            .await
    }
}

impl Drop for LocalFramework {
    /// The framework is gone: its stream closes, its failover timeout
    /// starts, as for an HTTP framework whose connection broke.
    fn drop(&mut self) {
        self.master.stream_gone(&self.framework_id, &self.stream);
    }
}
