//! The listener of Keel's master and agent: HTTP/1.1 and h2c on one port
//! (as `axum::serve`), with every peer bounded (house style 18).
//!
//! - Open connections: at most [`Limits::max_connections`]. At the limit a
//!   new connection takes the place of the connection idle the longest
//!   (no request in flight); when none is idle it gets one of
//!   [`Limits::reserved_connections`], on which only the
//!   [`Routes::priority`] paths are served (health, agent sessions, Raft):
//!   anything else there gets `503` and the connection closes. Past those
//!   it is closed at once. Long-lived streams (event streams, agent
//!   sessions) have a request in flight and are never taken.
//! - Time: a connection with no request in flight is closed after
//!   [`Limits::idle_timeout`]; once a request's first byte arrived, its
//!   head must be complete within [`Limits::header_read_timeout`]; a
//!   request body must arrive within [`Limits::body_read_timeout`] (the
//!   handler reads [`BodyTimeout`]), except on [`Routes::streams`].
//!   More than a few empty lines before a request close the connection.
//! - Memory: request heads are at most [`MAX_HEAD_BYTES`], h2 streams per
//!   connection at most [`MAX_H2_STREAMS`].
//! - File descriptors: [`nofile::raise`] lifts the soft limit to the hard
//!   one, and [`Limits::fit`] keeps the connections within it.
//!
//! - TLS, when given a configuration: the handshake within
//!   [`Limits::header_read_timeout`], in the connection's own task; a
//!   client that speaks plaintext or presents a certificate the CA did not
//!   sign is refused with a log line naming it. A verified client
//!   certificate's [`keel_pki::PeerIdentity`] is put in every request's
//!   extensions.
//!
//! `conn` follows one connection, `stream` holds its bytes (plain or
//! TLS), `table` admits them, `gate` wraps every request.

mod conn;
mod gate;
pub mod nofile;
mod stream;
mod table;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use gate::BodyTimeout;

/// The most bytes of a request head (HTTP/1.1) or header list (h2).
pub const MAX_HEAD_BYTES: usize = 64 << 10;
/// Concurrent h2 streams per connection (an agent uses one, Raft a few).
pub const MAX_H2_STREAMS: u32 = 64;
/// Empty lines (CR or LF bytes) accepted before a request line.
pub const MAX_LEADING_BLANKS: usize = 16;
/// How long a connection being closed may take to say goodbye.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// HTTP/2 pings on a quiet connection find peers that went away.
const H2_KEEPALIVE: Duration = Duration::from_secs(30);

/// Connection limits and timeouts of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    /// More connections, kept for [`Routes::priority`] when every other
    /// connection has a request in flight.
    pub reserved_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_read_timeout: Duration,
}

impl Limits {
    /// The master's defaults (`--max-connections`, ...): room for a fleet
    /// of tens of thousands of agents, one connection each (fitted into
    /// the open-files limit).
    pub const MASTER: Limits = Limits {
        max_connections: 65536,
        reserved_connections: 128,
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        body_read_timeout: Duration::from_secs(30),
    };

    /// The agent's defaults: its port serves operators, not the cluster.
    pub const AGENT: Limits = Limits {
        max_connections: 1024,
        reserved_connections: 16,
        ..Limits::MASTER
    };

    /// File descriptors kept for everything but connections.
    pub const OTHER_FILES: u64 = 256;

    /// Lowers `max_connections` so that connections, reserved ones and
    /// [`Limits::OTHER_FILES`] fit in `nofile` descriptors; returns the
    /// limit before when it did.
    pub fn fit(&mut self, nofile: u64) -> Option<usize> {
        let others = Self::OTHER_FILES + self.reserved_connections as u64;
        let room = usize::try_from(nofile.saturating_sub(others)).unwrap_or(usize::MAX);
        if self.max_connections <= room {
            return None;
        }
        let before = self.max_connections;
        self.max_connections = room.max(1);
        Some(before)
    }

    /// Limits given as flags (`--max-connections`, `--http-*-timeout`),
    /// checked and fitted into `nofile` descriptors (with a warning when
    /// `max_connections` had to be lowered).
    pub fn from_flags(mut self, nofile: u64) -> Result<Limits, FlagError> {
        for (flag, d) in [
            ("--http-header-timeout", self.header_read_timeout),
            ("--http-idle-timeout", self.idle_timeout),
            ("--http-body-timeout", self.body_read_timeout),
        ] {
            if d.is_zero() {
                return Err(FlagError::Zero(flag));
            }
        }
        if self.max_connections == 0 {
            return Err(FlagError::Zero("--max-connections"));
        }
        if let Some(asked) = self.fit(nofile) {
            tracing::warn!(
                asked,
                max_connections = self.max_connections,
                nofile,
                "--max-connections lowered to fit the file descriptor limit"
            );
        }
        Ok(self)
    }
}

/// A listener flag the process cannot run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    #[error("{0} must be non-zero")]
    Zero(&'static str),
}

/// Paths a listener treats apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Routes {
    /// Served on reserved connections: exact paths, or prefixes ending in
    /// `/` (`/keel.v1.AgentService/`).
    pub priority: &'static [&'static str],
    /// Long-lived request bodies (agent sessions): no body timeout.
    pub streams: &'static [&'static str],
}

fn matches(list: &[&str], path: &str) -> bool {
    list.iter()
        .any(|p| path == *p || (p.ends_with('/') && path.starts_with(p)))
}

/// Parses a size flag: bytes, or a number with `KiB`, `MiB` or `GiB`.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => t.split_at(at),
        None => (t, ""),
    };
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" | "K" => 10,
        "MiB" | "M" => 20,
        "GiB" | "G" => 30,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{text}' (B, KiB, MiB, GiB)"
            ));
        }
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a size"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves;
/// then stops accepting, asks every connection to finish (HTTP/1.1 after
/// its request, h2 with GOAWAY) and returns once all are closed. Callers
/// that cannot wait for long-lived streams bound that wait themselves.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    routes: Routes,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let table = Arc::new(table::Table::new(limits));
    let builder = Arc::new(builder());
    let shared = Arc::new(gate::Shared {
        app,
        routes,
        limits,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(());
    // In its own task: the accept loop often runs on the process's main
    // thread (`#[tokio::main]`'s `block_on`), and a shutdown future that
    // wakes often without resolving (the master's watches Raft's metrics,
    // which change several times per write) would wake that thread each
    // time (13 context switches per registry write across 3 masters,
    // +0.1-0.5 ms per write).
    let mut shutdown = AbortOnDrop(tokio::spawn(shutdown));
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            _ = &mut shutdown.0 => break,
        };
        let Some(state) = table.admit() else {
            table.refused(peer);
            drop(tcp);
            continue;
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let conn = conn::Conn {
            state,
            table: table.clone(),
            limits,
            stop: stop_rx.clone(),
            _done: done_rx.clone(),
        };
        let builder = builder.clone();
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let Some((stream, peer_identity)) =
                stream::accept(tcp, peer, tls.as_ref(), limits.header_read_timeout).await
            else {
                conn.table.remove(&conn.state);
                return;
            };
            conn.run(stream, peer_identity, &builder, shared).await
        });
    }
    drop(listener);
    drop(done_rx);
    let _ = stop_tx.send(true);
    done_tx.closed().await;
    Ok(())
}

/// A task that ends with the future that spawned it (the listener gone,
/// its shutdown signal is not waited for any more).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn builder() -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    b.http1().max_buf_size(MAX_HEAD_BYTES);
    b.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEPALIVE)
        .keep_alive_timeout(H2_KEEPALIVE)
        .max_concurrent_streams(MAX_H2_STREAMS)
        .max_header_list_size(MAX_HEAD_BYTES as u32);
    b
}

/// Out of file descriptors (or a connection gone before it was taken):
/// wait a little rather than spin; the connections held will close.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// An I/O object as hyper wants it.
type Io = TokioIo<conn::Tracked<stream::Stream>>;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;
