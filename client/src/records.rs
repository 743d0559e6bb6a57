//! A RecordIO event stream (the scheduler's and the operator's): opened
//! with a SUBSCRIBE on the leader, then read into a channel by a task of
//! its own, which ends with the [`Stream`].

use bytes::Bytes;
use futures::StreamExt;
use keel_api::recordio::Decoder;
use reqwest::{Method, StatusCode};
use tokio::sync::mpsc;

use crate::ClientError;
use crate::transport::{Answer, Request, Transport};

/// Events read ahead of the caller.
const QUEUE: usize = 1024;

/// POSTs the SUBSCRIBE `body` to `path` on the leader; the answer, which
/// must be `200` (the stream).
pub(crate) async fn subscribe(
    transport: &Transport,
    path: &str,
    body: Bytes,
) -> Result<Answer, ClientError> {
    let answer = transport
        .send(Request {
            method: Method::POST,
            path,
            headers: &[
                ("Content-Type", "application/json"),
                ("Accept", "application/json"),
            ],
            body: Some(body),
            stream: true,
        })
        .await?;
    if answer.response.status() != StatusCode::OK {
        return Err(ClientError::Status {
            method: "SUBSCRIBE".into(),
            url: answer.url,
            status: answer.response.status().as_u16(),
            reason: answer.response.text().await.unwrap_or_default(),
        });
    }
    Ok(answer)
}

/// The events of a stream being read.
pub(crate) struct Stream<E> {
    events: mpsc::Receiver<Result<E, ClientError>>,
    reader: tokio::task::JoinHandle<()>,
}

impl<E> Drop for Stream<E> {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl<E: Send + 'static> Stream<E> {
    /// Reads `response`'s records, each made an event by `parse`.
    pub(crate) fn read(
        response: reqwest::Response,
        url: String,
        parse: impl Fn(&[u8]) -> Result<E, serde_json::Error> + Send + 'static,
    ) -> Stream<E> {
        let (tx, events) = mpsc::channel(QUEUE);
        let reader = tokio::spawn(read(response, url, tx, parse));
        Stream { events, reader }
    }

    /// The next event; `None` once the stream has ended.
    pub(crate) async fn next(&mut self) -> Option<Result<E, ClientError>> {
        self.events.recv().await
    }

    /// Stops reading (the master sees the subscriber go).
    pub(crate) fn close(&mut self) {
        self.reader.abort();
        self.events.close();
    }
}

/// Reads `response`'s records into `tx` until the stream ends, fails (the
/// error is sent last) or nobody listens.
async fn read<E>(
    response: reqwest::Response,
    url: String,
    tx: mpsc::Sender<Result<E, ClientError>>,
    parse: impl Fn(&[u8]) -> Result<E, serde_json::Error>,
) {
    let mut body = response.bytes_stream();
    let mut decoder = Decoder::default();
    while let Some(chunk) = body.next().await {
        let records = match chunk {
            Ok(bytes) => decoder.push(&bytes).map_err(ClientError::from),
            Err(source) => Err(ClientError::Http {
                url: url.clone(),
                source,
            }),
        };
        let records = match records {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        for record in records {
            let event = parse(&record).map_err(|source| ClientError::Decode {
                url: url.clone(),
                source,
            });
            if tx.send(event).await.is_err() {
                return;
            }
        }
    }
}
