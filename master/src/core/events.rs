//! Operator event subscribers (`SUBSCRIBE` on `/api/v1`): each gets the
//! engine's [`Observed`] changes on a bounded queue. Publishing never
//! waits: a subscriber whose queue is full (it stopped reading) or whose
//! reader went away is dropped, and its stream ends once drained. The
//! engine copies changes only while someone subscribes.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{Master, State};
use crate::engine::{Observed, Snapshot};

/// Most operator subscribers at once (Mesos' default).
pub const MAX_SUBSCRIBERS: usize = 1000;
/// Changes queued for one subscriber before it is dropped, by default
/// (`--operator-event-queue`): room for an agent's loss with thousands of
/// tasks.
pub const SUBSCRIBER_QUEUE: usize = 8192;

/// Where a subscriber reads its changes; `None` once it was dropped (or
/// the master stopped leading).
pub type EventReceiver = mpsc::Receiver<Arc<Observed>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventsError {
    #[error("this master does not lead")]
    NotLeading,
    #[error("too many operator subscribers (at most {0})")]
    TooMany(usize),
}

#[derive(Default)]
pub(crate) struct Subscribers {
    queues: Vec<mpsc::Sender<Arc<Observed>>>,
}

impl Subscribers {
    /// Queues `change` for every subscriber, dropping those that cannot
    /// take it; whether any remain.
    pub(crate) fn publish(&mut self, change: Observed) -> bool {
        let change = Arc::new(change);
        self.queues
            .retain(|q| match q.try_send(Arc::clone(&change)) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!("dropping an operator subscriber that does not keep up");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        !self.queues.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.queues.iter().filter(|q| !q.is_closed()).count()
    }

    pub(crate) fn clear(&mut self) {
        self.queues.clear();
    }
}

impl Master {
    /// A new operator subscriber: the state at this moment and, from the
    /// same moment on, every change.
    pub fn subscribe_events(&self) -> Result<(Snapshot, EventReceiver), EventsError> {
        if !self.serving() {
            return Err(EventsError::NotLeading);
        }
        self.with_links(|state: &mut State, _| {
            let subscribers = &mut state.links.subscribers;
            subscribers.queues.retain(|q| !q.is_closed());
            if subscribers.len() >= MAX_SUBSCRIBERS {
                return Err(EventsError::TooMany(MAX_SUBSCRIBERS));
            }
            let (tx, rx) = mpsc::channel(self.config.event_queue.max(1));
            subscribers.queues.push(tx);
            state.engine.set_observed(true);
            Ok((state.engine.snapshot(), rx))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn removed(id: &str) -> Observed {
        Observed::AgentRemoved {
            agent_id: id.into(),
        }
    }

    #[test]
    fn a_full_or_gone_subscriber_is_dropped() {
        let mut subs = Subscribers::default();
        let (tx, mut reading) = mpsc::channel(2);
        subs.queues.push(tx);
        let (tx, _stalled) = mpsc::channel(2);
        subs.queues.push(tx);
        let (tx, gone) = mpsc::channel(2);
        subs.queues.push(tx);
        drop(gone);
        assert!(subs.publish(removed("a")));
        assert_eq!(subs.queues.len(), 2);
        assert!(reading.try_recv().is_ok());
        assert!(subs.publish(removed("b")));
        assert!(reading.try_recv().is_ok());
        // The stalled one is full now.
        assert!(subs.publish(removed("c")));
        assert_eq!(subs.queues.len(), 1);
        drop(reading);
        assert!(!subs.publish(removed("d")));
    }
}
