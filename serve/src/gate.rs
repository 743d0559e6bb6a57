//! Every request of a connection passes here: it is counted in flight
//! until its response body ends, its body gets a deadline, and on a
//! reserved connection only priority routes get through.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;

use crate::conn::{Active, ConnState};
use crate::{Limits, Routes, matches};

type BoxError = Box<dyn StdError + Send + Sync>;

/// What every connection of a listener shares.
pub(crate) struct Shared {
    pub app: axum::Router,
    pub routes: Routes,
    pub limits: Limits,
}

/// A request body that did not arrive within the body timeout: the error
/// a handler reads from the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request body not received within {0:?}")]
pub struct BodyTimeout(pub Duration);

impl BodyTimeout {
    /// The timeout behind a body error, if that is what it was.
    pub fn find<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a BodyTimeout> {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(t) = err.downcast_ref::<BodyTimeout>() {
                return Some(t);
            }
            cur = err.source();
        }
        None
    }
}

#[derive(Clone)]
pub(crate) struct Gate {
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    /// The client certificate's identity (TLS), given to every request.
    peer: Option<Arc<keel_pki::PeerIdentity>>,
}

impl Gate {
    pub fn new(
        shared: Arc<Shared>,
        conn: Arc<ConnState>,
        peer: Option<Arc<keel_pki::PeerIdentity>>,
    ) -> Self {
        Gate { shared, conn, peer }
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<Response<Guarded>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Gate {
    type Response = Response<Guarded>;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, req: Request<Incoming>) -> Answer {
        let active = self.conn.request_started();
        let routes = &self.shared.routes;
        let path = req.uri().path();
        if self.conn.reserved && !matches(routes.priority, path) {
            self.conn.close_when_idle();
            let resp = refusal(req.version()).map(|body| Guarded::new(body, active));
            return Box::pin(std::future::ready(Ok(resp)));
        }
        let mut req = req;
        if let Some(peer) = &self.peer {
            req.extensions_mut()
                .insert(keel_pki::PeerIdentity::clone(peer));
        }
        let req = if matches(routes.streams, req.uri().path()) {
            req.map(Body::new)
        } else {
            let timeout = self.shared.limits.body_read_timeout;
            req.map(|body| Body::new(Deadline::new(body, timeout)))
        };
        let mut app = self.shared.app.clone();
        Box::pin(async move {
            // A Router is always ready.
            let resp = match tower_service::Service::call(&mut app, req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            };
            Ok(resp.map(|body| Guarded::new(body, active)))
        })
    }
}

/// `503` on a reserved connection for anything but a priority route.
fn refusal(version: Version) -> Response<Body> {
    let mut resp = Response::new(Body::from(
        "Connection limit reached: only health checks and agent sessions are served \
         on this connection; retry later",
    ));
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    if version < Version::HTTP_2 {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// A response body that keeps its request in flight until it ends.
pub(crate) struct Guarded {
    body: Body,
    active: Option<Active>,
}

impl Guarded {
    fn new(body: Body, active: Active) -> Self {
        Guarded {
            body,
            active: Some(active),
        }
    }
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            self.active = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A request body that must arrive by a deadline.
    struct Deadline<B> {
        #[pin]
        body: B,
        #[pin]
        sleep: tokio::time::Sleep,
        timeout: Duration,
    }
}

impl<B> Deadline<B> {
    fn new(body: B, timeout: Duration) -> Self {
        Deadline {
            body,
            sleep: tokio::time::sleep(timeout),
            timeout,
        }
    }
}

impl<B> http_body::Body for Deadline<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.body.poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match this.sleep.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(*this.timeout))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
