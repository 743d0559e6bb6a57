//! Request bodies of the v1 APIs, read within limits: a size per endpoint
//! (`413` beyond, before anything is read when `Content-Length` says so),
//! the listener's body timeout (`408`), and one budget for the bodies all
//! requests hold at once (`503` when it is spent: the request may be
//! retried). A body is one buffer of its own size.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use bytes::BytesMut;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;

/// The budget is counted in units of this many bytes.
const UNIT: usize = 1 << 10;

/// Body sizes of the v1 APIs (`--max-scheduler-call-size`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// One scheduler call (a big ACCEPT).
    pub scheduler: usize,
    /// One operator call.
    pub operator: usize,
    /// The bodies of all requests being read or parsed at once.
    pub in_flight: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            scheduler: 16 << 20,
            operator: 1 << 20,
            in_flight: 256 << 20,
        }
    }
}

/// The limits and the budget, shared by the handlers.
#[derive(Clone)]
pub struct Bodies {
    pub limits: BodyLimits,
    budget: Arc<Semaphore>,
}

/// A body read whole; its bytes count against the budget until dropped.
pub struct ReadBody {
    pub bytes: Bytes,
    permit: Option<OwnedSemaphorePermit>,
}

/// What a body still holds of the budget once its bytes are gone.
pub struct Held {
    _permit: Option<OwnedSemaphorePermit>,
}

impl ReadBody {
    /// Drops the bytes; the budget stays taken while the call they made
    /// is carried out.
    pub fn into_held(self) -> Held {
        Held {
            _permit: self.permit,
        }
    }
}

impl std::ops::Deref for ReadBody {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

fn mib(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

impl Bodies {
    pub fn new(limits: BodyLimits) -> Self {
        let units = (limits.in_flight / UNIT).clamp(1, Semaphore::MAX_PERMITS);
        Bodies {
            limits,
            budget: Arc::new(Semaphore::new(units)),
        }
    }

    /// Takes `bytes` more of the budget.
    fn take(&self, held: &mut Option<OwnedSemaphorePermit>, bytes: usize) -> Result<(), ApiError> {
        let units = u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX);
        if units == 0 {
            return Ok(());
        }
        let permit = self
            .budget
            .clone()
            .try_acquire_many_owned(units)
            .map_err(|_| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "Too many request bodies in flight (more than {} at once); retry later",
                        mib(self.limits.in_flight)
                    ),
                )
            })?;
        match held {
            Some(h) => h.merge(permit),
            None => *held = Some(permit),
        }
        Ok(())
    }

    /// Reads `body` whole, at most `max` bytes (`what` names the calls in
    /// the refusal).
    pub async fn read(
        &self,
        headers: &HeaderMap,
        body: Body,
        max: usize,
        what: &str,
    ) -> Result<ReadBody, ApiError> {
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "Request body is larger than {} (the limit of {what})",
                    mib(max)
                ),
            )
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut chunks = body.into_data_stream();
        if declared.is_some_and(|n| n > max) {
            // Nothing is kept; up to `max` bytes are read (and dropped) so
            // that a client writing its whole body first reads the answer.
            let mut drained = 0;
            while drained <= max {
                match chunks.next().await {
                    Some(Ok(chunk)) => drained += chunk.len(),
                    _ => break,
                }
            }
            return Err(too_large());
        }
        let mut held = None;
        let mut buf = BytesMut::new();
        if let Some(n) = declared {
            self.take(&mut held, n)?;
            buf.reserve(n);
        }
        let mut taken = declared.unwrap_or(0);
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| match keel_serve::BodyTimeout::find(&e) {
                Some(t) => ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("Request body not received within {:?}", t.0),
                ),
                None => ApiError::bad_request(format!("Failed to read the request body: {e}")),
            })?;
            if buf.len() + chunk.len() > max {
                return Err(too_large());
            }
            let len = buf.len() + chunk.len();
            if len > taken {
                self.take(&mut held, len - taken)?;
                taken = len;
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(ReadBody {
            bytes: buf.freeze(),
            permit: held,
        })
    }

    #[cfg(test)]
    fn available(&self) -> usize {
        self.budget.available_permits() * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(len: Option<usize>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(n) = len {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        h
    }

    #[tokio::test]
    async fn sizes_and_the_budget() {
        let bodies = Bodies::new(BodyLimits {
            scheduler: 4096,
            operator: 1024,
            in_flight: 8192,
        });
        let body = |n: usize| Body::from(vec![b'x'; n]);
        let ok = bodies
            .read(&headers(Some(4000)), body(4000), 4096, "x")
            .await
            .unwrap();
        assert_eq!(ok.len(), 4000);
        // Declared too large: refused, nothing kept.
        let err = bodies
            .read(&headers(Some(5000)), body(0), 4096, "scheduler calls")
            .await;
        let err = err.err().unwrap();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            err.reason,
            "Request body is larger than 4096 bytes (the limit of scheduler calls)"
        );
        // Not declared (chunked): refused when it gets there.
        let err = bodies
            .read(&headers(None), body(5000), 4096, "x")
            .await
            .err()
            .unwrap();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        // The budget: 4 KiB held by `ok`, 4 KiB left.
        assert_eq!(bodies.available(), 4096);
        let second = bodies
            .read(&headers(None), body(4000), 4096, "x")
            .await
            .unwrap();
        let err = bodies
            .read(&headers(Some(10)), body(10), 4096, "x")
            .await
            .err()
            .unwrap();
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
        drop((ok, second));
        assert_eq!(bodies.available(), 8192);
    }
}
