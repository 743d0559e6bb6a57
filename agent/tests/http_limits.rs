//! The agent's HTTP port is bounded like the master's: idle and slow
//! connections are closed, leading junk is cut, and `/health` answers when
//! idle connections fill the limit. The port as `keel_agent::run` serves
//! it, on loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_agent::files::Sandboxes;
use keel_agent::http::{AgentView, router, serve};
use keel_agent::session::SessionStatus;
use keel_serve::Limits;

const LIMITS: Limits = Limits {
    max_connections: 20,
    reserved_connections: 2,
    header_read_timeout: Duration::from_secs(1),
    idle_timeout: Duration::from_secs(2),
    body_read_timeout: Duration::from_secs(1),
};

fn start(dir: &std::path::Path) -> (SocketAddr, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (_tx, status) = tokio::sync::watch::channel(SessionStatus::default());
    let _guard = rt.enter();
    let executor = keel_agent::executor::ExecutorHandle::start(
        keel_agent::executor::ExecutorConfig::new(dir),
        keel_agent::executor::FakeLauncher::new(),
    );
    let view = Arc::new(AgentView {
        hostname: "test".into(),
        pid: "slave(1)@127.0.0.1:0".into(),
        inventory: Default::default(),
        resources: Default::default(),
        attributes: Default::default(),
        status,
        sandboxes: Sandboxes::new(dir),
        grants: None,
        metrics: Arc::new(keel_agent::metrics::AgentMetrics::new(Default::default())),
        containers: keel_agent::containers::Containers::new(
            executor.clone(),
            "/bin/false".into(),
            dir.into(),
        ),
        sys_root: "/".into(),
        runtime: executor,
        flags: Default::default(),
        start_time: 0.0,
    });
    rt.spawn(serve(
        listener,
        router(view),
        LIMITS,
        None,
        std::future::pending(),
    ));
    (addr, rt)
}

/// Reads until the agent closes the connection; `None` after `within`.
fn until_closed(s: &mut TcpStream, within: Duration) -> Option<(Duration, String)> {
    let start = Instant::now();
    s.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some((start.elapsed(), String::from_utf8_lossy(&got).into())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            Err(_) => return Some((start.elapsed(), String::from_utf8_lossy(&got).into())),
        }
    }
}

fn health(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    until_closed(&mut s, Duration::from_secs(5))
        .expect("answered")
        .1
}

#[test]
fn idle_slow_and_junk_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _rt) = start(dir.path());
    let mut idle = TcpStream::connect(addr).unwrap();
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nX-A: b\r\n")
        .unwrap();
    let mut junk = TcpStream::connect(addr).unwrap();
    let _ = junk.write_all(&b"\r\n".repeat(10_000));
    let (after, _) = until_closed(&mut junk, Duration::from_secs(5)).expect("junk cut");
    assert!(after < Duration::from_secs(1), "{after:?}");
    let (after, _) = until_closed(&mut slow, Duration::from_secs(5)).expect("head cut");
    assert!(after < Duration::from_millis(1900), "{after:?}");
    let (after, _) = until_closed(&mut idle, Duration::from_secs(5)).expect("idle cut");
    assert!(after < Duration::from_secs(3), "{after:?}");
}

#[test]
fn health_answers_over_a_flood_of_idle_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _rt) = start(dir.path());
    let _idle: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let answer = health(addr);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
