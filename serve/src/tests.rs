//! The listener against raw sockets on loopback.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::*;

const LIMITS: Limits = Limits {
    max_connections: 8,
    reserved_connections: 2,
    header_read_timeout: Duration::from_millis(600),
    idle_timeout: Duration::from_millis(1500),
    body_read_timeout: Duration::from_millis(600),
};

const ROUTES: Routes = Routes {
    priority: &["/health", "/events"],
    streams: &["/stream-in"],
};

fn app() -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/other", get(|| async { "other" }))
        .route(
            "/body",
            post(|body: Body| async move {
                match axum::body::to_bytes(body, 1 << 20).await {
                    Ok(b) => (http::StatusCode::OK, format!("{} bytes", b.len())),
                    Err(e) => {
                        let timeout = BodyTimeout::find(&e).is_some();
                        (
                            http::StatusCode::REQUEST_TIMEOUT,
                            format!("timeout={timeout}"),
                        )
                    }
                }
            }),
        )
        .route(
            "/events",
            get(|| async {
                // A long-lived response: one chunk every 200 ms.
                let ticks = tokio_stream::StreamExt::map(
                    tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(
                        Duration::from_millis(200),
                    )),
                    |_| Ok::<_, std::convert::Infallible>(bytes::Bytes::from_static(b"tick\n")),
                );
                Body::from_stream(ticks)
            }),
        )
}

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(limits: Limits) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    let done = tokio::spawn(serve(listener, app(), limits, ROUTES, None, async move {
        let _ = rx.await;
    }));
    Server {
        addr,
        stop: Some(tx),
        done,
    }
}

/// Reads until the peer closes; how long that took, and what came.
async fn until_closed(s: &mut TcpStream, within: Duration) -> Option<(Duration, String)> {
    let start = Instant::now();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + within).into(), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Some((start.elapsed(), String::from_utf8_lossy(&all).into()));
            }
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
        }
    }
}

async fn get_once(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let (_, text) = until_closed(&mut s, Duration::from_secs(5))
        .await
        .expect("answered");
    text
}

#[tokio::test]
async fn idle_connections_close_and_heads_must_come_in_time() {
    let srv = start(LIMITS).await;
    // Nothing sent: closed after the idle timeout.
    let mut idle = TcpStream::connect(srv.addr).await.unwrap();
    let (after, _) = until_closed(&mut idle, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(after >= Duration::from_millis(1400), "{after:?}");
    // A head trickling in: closed after the header timeout.
    let mut slow = TcpStream::connect(srv.addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    let trickle = async {
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow.write_all(b"X-A: b\r\n").await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(1200), trickle).await;
    let closed = until_closed(&mut slow, Duration::from_secs(1)).await;
    assert!(closed.is_some(), "a head taking 1.2 s is cut at 0.6 s");
    // Keep-alive: a second request on the same connection is answered.
    let mut ka = TcpStream::connect(srv.addr).await.unwrap();
    for _ in 0..2 {
        ka.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = ka.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn empty_lines_before_a_request_are_cut_at_once() {
    let srv = start(LIMITS).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(&b"\r\n".repeat(10_000)).await.unwrap_or(());
    let (after, _) = until_closed(&mut s, Duration::from_secs(5)).await.unwrap();
    assert!(after < Duration::from_millis(300), "{after:?}");
    // A couple of them are fine (RFC 9112 2.2).
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (_, text) = until_closed(&mut s, Duration::from_secs(5)).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test]
async fn slow_bodies_time_out() {
    let srv = start(LIMITS).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")
        .await
        .unwrap();
    let (after, text) = until_closed(&mut s, Duration::from_secs(5)).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.ends_with("timeout=true"), "{text}");
    assert!(after < Duration::from_secs(2), "{after:?}");
}

#[tokio::test]
async fn long_lived_responses_outlive_the_idle_timeout() {
    let srv = start(LIMITS).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = 0;
    let until = Instant::now() + LIMITS.idle_timeout * 3;
    let mut buf = [0u8; 1024];
    while Instant::now() < until {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "the stream was cut");
        got += n;
    }
    assert!(got > 100);
}

#[tokio::test]
async fn a_full_server_still_answers_health() {
    let srv = start(LIMITS).await;
    // Twice the limit in idle connections: each new one takes the place
    // of the oldest idle one.
    let mut idle = Vec::new();
    for _ in 0..LIMITS.max_connections * 2 {
        idle.push(TcpStream::connect(srv.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        get_once(srv.addr, "/health")
            .await
            .starts_with("HTTP/1.1 200")
    );
    // Every connection busy (long-lived responses): reserved connections
    // serve health only, then new ones are closed at once.
    drop(idle);
    let mut busy = Vec::new();
    for _ in 0..LIMITS.max_connections {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        assert!(s.read(&mut buf).await.unwrap() > 0);
        busy.push(s);
    }
    assert!(
        get_once(srv.addr, "/health")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let other = get_once(srv.addr, "/other").await;
    assert!(other.starts_with("HTTP/1.1 503"), "{other}");
    // Idle reserved connections make room too; busy ones do not.
    for _ in 0..LIMITS.reserved_connections {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        assert!(s.read(&mut buf).await.unwrap() > 0);
        busy.push(s);
    }
    let mut refused = TcpStream::connect(srv.addr).await.unwrap();
    let (after, text) = until_closed(&mut refused, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(
        text.is_empty() && after < Duration::from_millis(500),
        "{after:?} {text}"
    );
    // The busy ones were never disturbed.
    for s in &mut busy {
        let mut buf = [0u8; 256];
        assert!(s.read(&mut buf).await.unwrap() > 0);
    }
}

#[tokio::test]
async fn shutdown_waits_for_requests_then_returns() {
    let mut srv = start(LIMITS).await;
    let mut idle = TcpStream::connect(srv.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    srv.stop.take().unwrap().send(()).unwrap();
    let done = tokio::time::timeout(Duration::from_secs(3), &mut srv.done).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "{done:?}");
    assert!(
        until_closed(&mut idle, Duration::from_secs(1))
            .await
            .is_some()
    );
    assert!(TcpStream::connect(srv.addr).await.is_err());
}

#[test]
fn fit_keeps_connections_within_the_descriptors() {
    let mut l = Limits::MASTER;
    assert_eq!(l.fit(1 << 20), None);
    assert_eq!(l.fit(1024), Some(65536));
    assert_eq!(l.max_connections, 1024 - 256 - 128);
}

#[test]
fn flags_of_zero_are_refused_by_name_and_the_rest_fitted() {
    let zero = Limits {
        idle_timeout: Duration::ZERO,
        ..Limits::AGENT
    };
    assert_eq!(
        zero.from_flags(1 << 20).unwrap_err().to_string(),
        "--http-idle-timeout must be non-zero"
    );
    let none = Limits {
        max_connections: 0,
        ..Limits::AGENT
    };
    assert_eq!(
        none.from_flags(1 << 20),
        Err(FlagError::Zero("--max-connections"))
    );
    let fitted = Limits::AGENT.from_flags(1024).unwrap();
    assert_eq!(fitted.max_connections, 1024 - 256 - 16);
}

#[test]
fn sizes_read_with_units() {
    assert_eq!(parse_size("16MiB"), Ok(16 << 20));
    assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
    assert_eq!(parse_size("1000"), Ok(1000));
    assert!(parse_size("1 TB").is_err());
    assert!(parse_size("MiB").is_err());
}

#[tokio::test]
async fn a_head_that_stops_is_cut_at_the_header_timeout() {
    let srv = start(LIMITS).await;
    let mut slow = TcpStream::connect(srv.addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nX-A: b\r\n")
        .await
        .unwrap();
    let (after, _) = until_closed(&mut slow, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(after < Duration::from_millis(1000), "{after:?}");
}
