//! The operator event stream: `SUBSCRIBE` on `/api/v1`, answered by the
//! leader with a RecordIO stream of [`Event`]s, `SUBSCRIBED` first.

use bytes::Bytes;
use keel_api::operator::events::Subscribed;
use keel_api::operator::{Call, Event};

use crate::records::{self, Stream};
use crate::{Client, ClientError};

const OPERATOR: &str = "/api/v1";

/// An operator subscription: the state when it began, then every event.
pub struct EventStream {
    subscribed: Subscribed,
    /// The master that serves it.
    master: String,
    events: Stream<Event>,
}

impl Client {
    /// SUBSCRIBE to the operator event stream; waits for `SUBSCRIBED`.
    pub async fn events(&self) -> Result<EventStream, ClientError> {
        let body = serde_json::to_vec(&Call::Subscribe).map_err(|source| ClientError::Decode {
            url: OPERATOR.to_string(),
            source,
        })?;
        let answer = records::subscribe(&self.transport, OPERATOR, Bytes::from(body)).await?;
        let mut events = Stream::read(answer.response, answer.url, |r| serde_json::from_slice(r));
        let subscribed = match events.next().await {
            Some(Ok(Event::Subscribed(s))) => s,
            Some(Ok(other)) => {
                return Err(ClientError::Subscribe(format!(
                    "the first event was {}, not SUBSCRIBED",
                    other.kind()
                )));
            }
            Some(Err(e)) => return Err(e),
            None => return Err(ClientError::StreamEnded),
        };
        Ok(EventStream {
            subscribed,
            master: answer.master,
            events,
        })
    }
}

impl EventStream {
    /// The next event after `SUBSCRIBED`; `None` once the stream ended
    /// (the master dropped the subscriber, or stopped leading).
    pub async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        self.events.next().await
    }

    /// The `SUBSCRIBED` event: the state when the stream began.
    pub fn subscribed(&self) -> &Subscribed {
        &self.subscribed
    }

    /// The master serving the stream.
    pub fn master(&self) -> &str {
        &self.master
    }
}
