//! A RecordIO event stream (the scheduler's and the operator's) read into
//! a channel by a task of its own.

use futures::StreamExt;
use keel_api::recordio::Decoder;
use tokio::sync::mpsc;

use crate::ClientError;

/// Reads `response`'s records into `tx`, each made an event by `parse`,
/// until the stream ends, fails (the error is sent last) or nobody
/// listens.
pub(crate) async fn read<E>(
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
