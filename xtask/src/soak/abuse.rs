//! Bad clients, on raw sockets (keel-client only sends good requests).
//! Every second, to the leader (every fourth second a follower): one
//! malformed request (broken JSON, a wrong content type, garbage to the
//! scheduler API, or bytes that are not HTTP), one oversized request
//! (20 MiB, beyond the master's 16 MiB body limit; with a Content-Length
//! and chunked in turn), and one new slowloris connection: a request
//! header sent a line every few seconds and never finished. At most
//! `pool` slowloris connections are open; the oldest is closed for a new
//! one.

use super::Pace;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const OVERSIZED: usize = 20 << 20;
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
const OVERSIZED_WITHIN: Duration = Duration::from_secs(15);
/// A slowloris connection sends one more header line this often.
const TRICKLE: Duration = Duration::from_secs(5);

/// How one bad request ended.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ending {
    /// Answered with this status.
    Status(u16),
    /// The connection was closed (or reset) without a status.
    Closed,
    /// Nobody listened (the master was down).
    Refused,
    /// No answer in time.
    Timeout,
}

/// One kind of bad request: how each ended, and where it went.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// (ending, to a follower) -> count.
    pub endings: std::collections::BTreeMap<(Ending, bool), usize>,
    /// The first few answers that were wrong, with what was sent.
    pub wrong: Vec<String>,
}

impl Tally {
    pub fn sent(&self) -> usize {
        self.endings.values().sum()
    }

    pub fn count(&self, f: impl Fn(&Ending, bool) -> bool) -> usize {
        self.endings
            .iter()
            .filter(|((e, follower), _)| f(e, *follower))
            .map(|(_, n)| n)
            .sum()
    }

    fn add(&mut self, ending: Ending, follower: bool, wrong: Option<String>) {
        *self.endings.entry((ending, follower)).or_default() += 1;
        if let Some(w) = wrong
            && self.wrong.len() < 10
        {
            self.wrong.push(w);
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Slowloris {
    pub opened: usize,
    pub refused: usize,
    /// Closed by the master: (its index, opened, closed).
    pub closed_by_master: Vec<(usize, Instant, Instant)>,
    /// Answers the master sent on them before closing (e.g. 408).
    pub answers: Vec<u16>,
    /// Closed by the soak to make room.
    pub evicted: usize,
    /// Still open at the end.
    pub open_at_end: usize,
}

#[derive(Debug, Default, Clone)]
pub struct Report {
    pub malformed: Tally,
    pub oversized: Tally,
    pub slowloris: Slowloris,
}

/// Whether `ending` is what a bad request should get: a 4xx (413 for an
/// oversized one, which may also close the connection instead). A
/// follower may redirect (307) before it reads anything; a master that
/// was just deposed or has no leader may say 503.
fn acceptable(ending: &Ending, oversized: bool) -> bool {
    match ending {
        Ending::Status(413) => true,
        Ending::Status(_) if oversized => false,
        Ending::Status(s) => (400..500).contains(s),
        Ending::Closed => oversized,
        _ => false,
    }
}

/// Not the answer the check wants, but not a wrong one either.
fn not_leading(ending: &Ending) -> bool {
    matches!(ending, Ending::Status(307 | 503) | Ending::Refused)
}

/// Whether the ending is a failure of the check (see `report.rs`).
pub fn wrong(ending: &Ending, oversized: bool) -> bool {
    !acceptable(ending, oversized) && !not_leading(ending) && *ending != Ending::Closed
}

fn status_of(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head.get(..12)?).ok()?;
    text.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()
}

/// Reads until a status line is in; how the request ended.
async fn read_status(stream: &mut tokio::net::tcp::OwnedReadHalf) -> Ending {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return status_of(&head).map_or(Ending::Closed, Ending::Status),
            Ok(n) => {
                head.extend_from_slice(&buf[..n]);
                if let Some(s) = status_of(&head) {
                    return Ending::Status(s);
                }
                if head.len() > 64 {
                    return Ending::Closed;
                }
            }
        }
    }
}

async fn connect(port: u16) -> Result<TcpStream, Ending> {
    match tokio::time::timeout(
        Duration::from_secs(2),
        TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(_)) => Err(Ending::Refused),
        Err(_) => Err(Ending::Timeout),
    }
}

/// The malformed requests, in turn: (what, bytes).
fn malformed(n: u64) -> (&'static str, Vec<u8>) {
    let post = |path: &str, content_type: &str, body: &[u8]| {
        let mut r = format!(
            "POST {path} HTTP/1.1\r\nHost: soak\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    };
    match n % 4 {
        0 => (
            "operator call, broken JSON",
            post("/api/v1", "application/json", br#"{"type": "GET_HEALTH""#),
        ),
        1 => (
            "operator call, text/plain",
            post("/api/v1", "text/plain", br#"{"type": "GET_HEALTH"}"#),
        ),
        2 => (
            "scheduler call, garbage body",
            post(
                "/api/v1/scheduler",
                "application/json",
                b"\x00\xff\xfe garbage {]",
            ),
        ),
        _ => (
            "not HTTP",
            b"\x16\x03\x01\x02\x00GARBAGE / HTTP/9.9\r\n\x01\x02\r\n\r\n".to_vec(),
        ),
    }
}

async fn send_malformed(port: u16, n: u64) -> (Ending, &'static str) {
    let (what, bytes) = malformed(n);
    let stream = match connect(port).await {
        Ok(s) => s,
        Err(e) => return (e, what),
    };
    let (mut rd, mut wr) = stream.into_split();
    if wr.write_all(&bytes).await.is_err() {
        return (Ending::Closed, what);
    }
    let ending = tokio::time::timeout(ANSWER_WITHIN, read_status(&mut rd))
        .await
        .unwrap_or(Ending::Timeout);
    (ending, what)
}

async fn send_oversized(port: u16, chunked: bool) -> Ending {
    let stream = match connect(port).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    let (mut rd, mut wr) = stream.into_split();
    let length = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {OVERSIZED}")
    };
    let head = format!(
        "POST /api/v1 HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n\
         {length}\r\nConnection: close\r\n\r\n"
    );
    let sender = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 << 10];
        for _ in 0..OVERSIZED / chunk.len() {
            if chunked {
                wr.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                wr.write_all(&chunk).await?;
                wr.write_all(b"\r\n").await?;
            } else {
                wr.write_all(&chunk).await?;
            }
        }
        if chunked {
            wr.write_all(b"0\r\n\r\n").await?;
        }
        // Keep the write half open until the answer is read.
        std::future::pending::<()>().await;
        Ok::<_, std::io::Error>(wr)
    });
    let ending = tokio::time::timeout(OVERSIZED_WITHIN, read_status(&mut rd))
        .await
        .unwrap_or(Ending::Timeout);
    sender.abort();
    ending
}

/// One slowloris connection: the start of a request, then a header line
/// every [`TRICKLE`] until the master closes it or the soak drops it.
async fn slowloris(master: usize, port: u16, report: Arc<Mutex<Slowloris>>) {
    let Ok(stream) = connect(port).await else {
        if let Ok(mut r) = report.lock() {
            r.refused += 1;
        }
        return;
    };
    if let Ok(mut r) = report.lock() {
        r.opened += 1;
    }
    let opened = Instant::now();
    let (mut rd, mut wr) = stream.into_split();
    let mut closed = wr
        .write_all(b"POST /api/v1 HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n")
        .await
        .is_err();
    let mut answer = None;
    let mut line = 0u64;
    let mut buf = [0u8; 256];
    while !closed {
        tokio::select! {
            r = rd.read(&mut buf) => {
                if let Ok(n @ 1..) = r {
                    answer = answer.or(status_of(&buf[..n]));
                    continue;
                }
                closed = true;
            }
            _ = tokio::time::sleep(TRICKLE) => {
                line += 1;
                closed = wr.write_all(format!("X-Soak-{line}: {line}\r\n").as_bytes()).await.is_err();
            }
        }
    }
    if let Ok(mut r) = report.lock() {
        r.closed_by_master.push((master, opened, Instant::now()));
        r.answers.extend(answer);
    }
}

/// Sends the bad requests until `stop`. `ports` are the masters';
/// `leader` the index of the one that leads (`usize::MAX`: unknown).
pub async fn run(
    ports: Vec<u16>,
    leader: Arc<AtomicUsize>,
    pool: usize,
    stop: watch::Receiver<bool>,
) -> Report {
    let mut report = Report::default();
    let slow = Arc::new(Mutex::new(Slowloris::default()));
    let mut open: VecDeque<JoinHandle<()>> = VecDeque::new();
    let mut pace = Pace::new(Duration::from_secs(1), stop);
    let mut n: u64 = 0;
    while pace.next().await {
        n += 1;
        let l = leader.load(Ordering::Relaxed);
        let (target, follower) = if l >= ports.len() {
            (n as usize % ports.len(), false)
        } else if n.is_multiple_of(4) {
            // A follower, each in turn.
            let k = 1 + (n / 4) as usize % (ports.len() - 1);
            ((l + k) % ports.len(), true)
        } else {
            (l, false)
        };
        let port = ports[target];
        open.retain(|h| !h.is_finished());
        while open.len() >= pool {
            if let Some(h) = open.pop_front() {
                h.abort();
                if let Ok(mut r) = slow.lock() {
                    r.evicted += 1;
                }
            }
        }
        open.push_back(tokio::spawn(slowloris(target, port, slow.clone())));
        let ((ending, what), big) =
            tokio::join!(send_malformed(port, n), send_oversized(port, n % 2 == 1));
        let note = |e: &Ending, what: &str| format!("{what} to m{target}: {e:?}");
        let bad = wrong(&ending, false).then(|| note(&ending, what));
        report.malformed.add(ending, follower, bad);
        let bad = wrong(&big, true).then(|| note(&big, "20 MiB body"));
        report.oversized.add(big, follower, bad);
    }
    open.retain(|h| !h.is_finished());
    let still = open.len();
    for h in open {
        h.abort();
    }
    let mut s = slow.lock().map(|s| s.clone()).unwrap_or_default();
    s.open_at_end = still;
    report.slowloris = s;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endings() {
        assert_eq!(status_of(b"HTTP/1.1 413 Payload Too Large\r\n"), Some(413));
        assert_eq!(status_of(b"HTTP/1.1 4"), None);
        assert!(acceptable(&Ending::Status(400), false));
        assert!(acceptable(&Ending::Status(413), true));
        assert!(acceptable(&Ending::Closed, true));
        assert!(!acceptable(&Ending::Closed, false));
        assert!(!acceptable(&Ending::Status(400), true));
        assert!(wrong(&Ending::Status(200), false));
        assert!(wrong(&Ending::Status(500), true));
        assert!(wrong(&Ending::Timeout, false));
        assert!(!wrong(&Ending::Status(307), false));
        assert!(!wrong(&Ending::Refused, true));
    }
}
