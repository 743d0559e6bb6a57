//! One connection: what it is doing (requests in flight, a request head
//! arriving), read off its bytes and its requests, and the watch that
//! closes it when it idles, dawdles over a head, or must make room.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, watch};

use crate::gate::{Gate, Shared};
use crate::stream::Stream;
use crate::table::Table;
use crate::{CLOSE_GRACE, Io, Limits, MAX_LEADING_BLANKS};

const H2_PREFACE: &[u8] = b"PRI";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    /// Fewer than [`H2_PREFACE`]'s bytes seen.
    Unknown(usize),
    Http1,
    Http2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    /// Nothing of the next request yet.
    Waiting,
    /// Only empty lines so far (that many bytes).
    Blank(usize),
    Started,
}

struct Inner {
    /// Requests whose response has not ended.
    active: usize,
    idle_since: Instant,
    /// When the first byte of the next request head arrived (HTTP/1.1).
    head_since: Option<Instant>,
    head: Head,
    proto: Proto,
    evicted: bool,
    /// Close once no request is in flight (refused on a reserved one).
    close_when_idle: bool,
}

/// Why a connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Expiry {
    /// Nothing expired: time to look again.
    Recheck,
    Idle,
    Head,
    Evicted,
    Refused,
}

pub(crate) struct ConnState {
    pub id: u64,
    /// Admitted into the reserve: priority routes only.
    pub reserved: bool,
    inner: Mutex<Inner>,
    changed: Notify,
}

impl ConnState {
    pub fn new(id: u64, reserved: bool) -> Self {
        ConnState {
            id,
            reserved,
            inner: Mutex::new(Inner {
                active: 0,
                idle_since: Instant::now(),
                head_since: None,
                head: Head::Waiting,
                proto: Proto::Unknown(0),
                evicted: false,
                close_when_idle: false,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request was dispatched; it is in flight until the guard drops
    /// (with its response body).
    ///
    /// The connection's task is woken only where it must act: an evicted
    /// connection that got a request is kept. (A timer it armed before
    /// finds the request in flight and arms none; every wake-up costs a
    /// context switch per request, which Raft's many small calls felt.)
    pub fn request_started(self: &Arc<Self>) -> Active {
        let mut s = self.lock();
        s.active += 1;
        s.head = Head::Waiting;
        s.head_since = None;
        let evicted = s.evicted;
        drop(s);
        if evicted {
            self.changed.notify_one();
        }
        Active(self.clone())
    }

    /// `Some(since)` when no request is in flight and it may be taken.
    pub fn idle_since(&self) -> Option<Instant> {
        let s = self.lock();
        (s.active == 0 && !s.evicted).then_some(s.idle_since)
    }

    pub fn evict(&self) {
        self.lock().evicted = true;
        self.changed.notify_one();
    }

    pub fn evicted(&self) -> bool {
        self.lock().evicted
    }

    /// Clears the eviction; whether there was one.
    pub fn unevict(&self) -> bool {
        std::mem::replace(&mut self.lock().evicted, false)
    }

    pub fn close_when_idle(&self) {
        self.lock().close_when_idle = true;
        self.changed.notify_one();
    }

    /// Bytes came in; an error closes the connection.
    fn on_read(&self, bytes: &[u8]) -> io::Result<()> {
        let mut s = self.lock();
        if let Proto::Unknown(seen) = s.proto {
            let n = bytes.len().min(H2_PREFACE.len() - seen);
            s.proto = if bytes[..n] != H2_PREFACE[seen..seen + n] {
                Proto::Http1
            } else if seen + n == H2_PREFACE.len() {
                Proto::Http2
            } else {
                Proto::Unknown(seen + n)
            };
        }
        // h2 frames its headers itself; bytes during a request are its body.
        if s.proto == Proto::Http2 || s.active > 0 {
            return Ok(());
        }
        // The connection's task finds this at its next check (see
        // `deadline`): no wake-up per request.
        if s.head_since.is_none() {
            s.head_since = Some(Instant::now());
        }
        for &b in bytes {
            s.head = match s.head {
                Head::Started => break,
                Head::Waiting | Head::Blank(_) if !matches!(b, b'\r' | b'\n') => Head::Started,
                Head::Waiting => Head::Blank(1),
                Head::Blank(n) if n >= MAX_LEADING_BLANKS => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "too many empty lines before a request",
                    ));
                }
                Head::Blank(n) => Head::Blank(n + 1),
            };
        }
        Ok(())
    }

    /// When to close the connection if nothing happens before, and why;
    /// `None` while a request is in flight.
    fn deadline(&self, limits: &Limits) -> Option<(Instant, Expiry)> {
        let s = self.lock();
        if s.active > 0 {
            return None;
        }
        let now = Instant::now();
        if s.evicted {
            return Some((now, Expiry::Evicted));
        }
        if s.close_when_idle {
            return Some((now, Expiry::Refused));
        }
        // A reserved connection has nothing to wait for.
        let idle = if self.reserved {
            limits.idle_timeout.min(limits.header_read_timeout)
        } else {
            limits.idle_timeout
        };
        let mut deadline = (s.idle_since + idle, Expiry::Idle);
        match s.head_since {
            Some(at) => deadline = deadline.min((at + limits.header_read_timeout, Expiry::Head)),
            // A head may start at any moment without waking the task: look
            // again one head timeout from now, so that a head that started
            // meanwhile is held to its deadline exactly (it is at most
            // that far off).
            None if s.proto != Proto::Http2 => {
                deadline = deadline.min((now + limits.header_read_timeout, Expiry::Recheck));
            }
            None => {}
        }
        Some(deadline)
    }
}

/// A request in flight.
pub(crate) struct Active(Arc<ConnState>);

impl Drop for Active {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.active -= 1;
        let idle = s.active == 0;
        if idle {
            s.idle_since = Instant::now();
        }
        drop(s);
        // Idle again: the task arms the idle and head timers.
        if idle {
            self.0.changed.notify_one();
        }
    }
}

pin_project_lite::pin_project! {
    /// A socket whose bytes are shown to its [`ConnState`].
    pub(crate) struct Tracked<T> {
        #[pin]
        io: T,
        state: Arc<ConnState>,
    }
}

impl<T: AsyncRead> AsyncRead for Tracked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        std::task::ready!(this.io.poll_read(cx, buf))?;
        let new = &buf.filled()[before..];
        if !new.is_empty() {
            this.state.on_read(new)?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite> AsyncWrite for Tracked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

/// One admitted connection and what it needs to run.
pub(crate) struct Conn {
    pub state: Arc<ConnState>,
    pub table: Arc<Table>,
    pub limits: Limits,
    /// Becomes `true` when the server shuts down.
    pub stop: watch::Receiver<bool>,
    /// Held until the connection is closed.
    pub _done: watch::Receiver<()>,
}

impl Conn {
    pub async fn run(
        mut self,
        tcp: Stream,
        peer: Option<keel_pki::PeerIdentity>,
        builder: &hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
        shared: Arc<Shared>,
    ) {
        let io: Io = hyper_util::rt::TokioIo::new(Tracked {
            io: tcp,
            state: self.state.clone(),
        });
        let gate = Gate::new(shared, self.state.clone(), peer.map(Arc::new));
        let conn = builder.serve_connection(io, gate);
        tokio::pin!(conn);
        let mut stopping = *self.stop.borrow();
        while !stopping {
            let deadline = self.state.deadline(&self.limits);
            let sleep = async {
                match deadline {
                    Some((at, _)) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(conn = self.state.id, error = %e, "connection failed");
                    }
                    self.table.remove(&self.state);
                    return;
                }
                () = sleep => {
                    // Again: a request may have come in meanwhile.
                    if let Some((at, why)) = self.state.deadline(&self.limits)
                        && at <= Instant::now()
                    {
                        tracing::debug!(conn = self.state.id, reason = ?why, "closing connection");
                        // Half a head has nothing to finish; an idle
                        // connection is told (h2: GOAWAY).
                        if why != Expiry::Head {
                            conn.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await;
                        }
                        self.table.remove(&self.state);
                        return;
                    }
                }
                () = self.state.changed.notified() => {
                    if self.state.deadline(&self.limits).is_none() && self.state.evicted() {
                        self.table.keep(&self.state);
                    }
                }
                // Told to stop, or the server is gone.
                _ = self.stop.changed() => stopping = true,
            }
        }
        // The server stops: requests in flight may finish (HTTP/1.1 closes
        // after its response, h2 says GOAWAY); the server bounds the wait.
        conn.as_mut().graceful_shutdown();
        if let Err(e) = conn.as_mut().await {
            tracing::debug!(conn = self.state.id, error = %e, "connection failed");
        }
        self.table.remove(&self.state);
    }
}
