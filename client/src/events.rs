//! The operator event stream: `SUBSCRIBE` on `/api/v1`, answered by the
//! leader with a RecordIO stream of [`Event`]s, `SUBSCRIBED` first.

use bytes::Bytes;
use keel_api::operator::events::Subscribed;
use keel_api::operator::{Call, Event};
use reqwest::{Method, StatusCode};
use tokio::sync::mpsc;

use crate::transport::Request;
use crate::{Client, ClientError};

const OPERATOR: &str = "/api/v1";
/// Events read ahead of the caller.
const QUEUE: usize = 1024;

/// An operator subscription: the state when it began, then every event.
pub struct EventStream {
    subscribed: Subscribed,
    /// The master that serves it.
    master: String,
    events: mpsc::Receiver<Result<Event, ClientError>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Client {
    /// SUBSCRIBE to the operator event stream; waits for `SUBSCRIBED`.
    pub async fn events(&self) -> Result<EventStream, ClientError> {
        let body = serde_json::to_vec(&Call::Subscribe).map_err(|source| ClientError::Decode {
            url: OPERATOR.to_string(),
            source,
        })?;
        let answer = self
            .transport
            .send(Request {
                method: Method::POST,
                path: OPERATOR,
                headers: &[
                    ("Content-Type", "application/json"),
                    ("Accept", "application/json"),
                ],
                body: Some(Bytes::from(body)),
                stream: true,
            })
            .await?;
        let url = answer.url;
        let response = answer.response;
        if response.status() != StatusCode::OK {
            return Err(ClientError::Status {
                method: "SUBSCRIBE".into(),
                url,
                status: response.status().as_u16(),
                reason: response.text().await.unwrap_or_default(),
            });
        }
        let (tx, mut events) = mpsc::channel(QUEUE);
        let reader = tokio::spawn(crate::records::read(response, url.clone(), tx, |r| {
            serde_json::from_slice(r)
        }));
        let subscribed = match events.recv().await {
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
            reader,
        })
    }
}

impl EventStream {
    /// The next event after `SUBSCRIBED`; `None` once the stream ended
    /// (the master dropped the subscriber, or stopped leading).
    pub async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        self.events.recv().await
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
