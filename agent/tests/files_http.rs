//! The files API served on loopback over a real sandbox tree: Mesos'
//! answers, and confinement (nothing outside a sandbox is opened; FIFOs,
//! devices and hard links inside one are refused without being opened).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keel_agent::files::Sandboxes;
use keel_agent::files::http::{FilesView, MAX_READ, router};
use serde_json::Value;

struct Server {
    base: String,
    dir: tempfile::TempDir,
    run: PathBuf,
    http: reqwest::Client,
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let sandboxes = Sandboxes::new(dir.path());
    let run = sandboxes
        .root()
        .join("a-S0/frameworks/fw/executors/t1/runs/c1");
    std::fs::create_dir_all(run.join("sub")).unwrap();
    std::fs::write(run.join("stdout"), "line one\nline two\n").unwrap();
    std::fs::write(run.join("stderr"), "").unwrap();
    std::fs::write(run.join("big"), "x".repeat(200_000)).unwrap();
    std::os::unix::fs::symlink("c1", run.parent().unwrap().join("latest")).unwrap();
    std::fs::write(dir.path().join("outside"), "secret").unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside"), run.join("link")).unwrap();
    let view = FilesView {
        sandboxes,
        agent_id: Arc::new(|| Some("a-S0".to_string())),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // The port's middleware would decide the access; here everything.
    let app = router(view).layer(axum::Extension(keel_agent::access::Access::All));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        base,
        dir,
        run,
        http: reqwest::Client::new(),
    }
}

impl Server {
    async fn get(&self, endpoint: &str, query: &[(&str, &str)]) -> (u16, String) {
        let resp = self
            .http
            .get(format!("{}/files/{endpoint}", self.base))
            .query(query)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn json(&self, endpoint: &str, query: &[(&str, &str)]) -> Value {
        let (status, body) = self.get(endpoint, query).await;
        assert_eq!(status, 200, "{endpoint} {query:?}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

const LATEST: &str = "/frameworks/fw/executors/t1/runs/latest";

#[tokio::test]
async fn browse_lists_sandboxes_by_virtual_and_real_path() {
    let s = server().await;
    let listing = s.json("browse", &[("path", LATEST)]).await;
    let paths: Vec<&str> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    let expect: Vec<String> = ["big", "link", "stderr", "stdout", "sub"]
        .iter()
        .map(|n| format!("{LATEST}/{n}"))
        .collect();
    assert_eq!(paths, expect);
    let stdout = &listing[3];
    assert_eq!(stdout["size"], 18);
    assert_eq!(stdout["nlink"], 1);
    assert!(stdout["mode"].as_str().unwrap().starts_with("-rw"));
    assert_eq!(
        listing[4]["mode"].as_str().unwrap().chars().next(),
        Some('d')
    );
    for key in ["mtime", "uid", "gid"] {
        assert!(stdout.get(key).is_some(), "{key}");
    }
    let real = s.run.to_str().unwrap().to_string();
    let listing = s.json("browse", &[("path", &real)]).await;
    assert_eq!(listing[3]["path"], format!("{real}/stdout"));
}

#[tokio::test]
async fn read_follows_mesos_offsets() {
    let s = server().await;
    let p = format!("{LATEST}/stdout");
    let size = s.json("read", &[("path", &p), ("offset", "-1")]).await;
    assert_eq!(size, serde_json::json!({"data": "", "offset": 18}));
    let all = s.json("read", &[("path", &p), ("offset", "0")]).await;
    assert_eq!(all["data"], "line one\nline two\n");
    let part = s
        .json("read", &[("path", &p), ("offset", "5"), ("length", "3")])
        .await;
    assert_eq!(part, serde_json::json!({"data": "one", "offset": 5}));
    let past = s.json("read", &[("path", &p), ("offset", "100")]).await;
    assert_eq!(past["data"], "");
    let big = s
        .json(
            "read",
            &[("path", &format!("{LATEST}/big")), ("offset", "0")],
        )
        .await;
    assert_eq!(big["data"].as_str().unwrap().len() as u64, MAX_READ);

    for (query, status) in [
        (vec![("path", LATEST)], 400),
        (vec![("offset", "0")], 400),
        (vec![("path", p.as_str()), ("offset", "-7")], 400),
        (
            vec![("path", "/frameworks/fw/executors/none/runs/latest/stdout")],
            404,
        ),
    ] {
        assert_eq!(s.get("read", &query).await.0, status, "{query:?}");
    }
}

#[tokio::test]
async fn download_streams_the_whole_file() {
    let s = server().await;
    let resp = s
        .http
        .get(format!("{}/files/download", s.base))
        .query(&[("path", format!("{LATEST}/big"))])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"big\""
    );
    assert_eq!(resp.bytes().await.unwrap().len(), 200_000);
    assert_eq!(s.get("download", &[("path", LATEST)]).await.0, 400);
}

#[tokio::test]
async fn nothing_outside_the_sandboxes_leaks() {
    let s = server().await;
    let outside = s.dir.path().join("outside");
    let traversal = format!("{LATEST}/../../../../../../outside");
    for path in [
        outside.to_str().unwrap(),
        "/etc/passwd",
        "/proc/self/environ",
        &format!("{LATEST}/link"),
    ] {
        for endpoint in ["browse", "read", "download"] {
            let (status, body) = s.get(endpoint, &[("path", path)]).await;
            assert_eq!(status, 404, "{endpoint} {path}: {body}");
            assert!(!body.contains("secret"));
        }
    }
    let (status, _) = s.get("read", &[("path", &traversal)]).await;
    assert_eq!(status, 400);
    assert_eq!(s.get("browse", &[("path", "relative")]).await.0, 400);
}

/// A writer blocked opening a FIFO until some reader opens it: a request
/// that opened the FIFO for reading would release it.
struct BlockedWriter {
    fifo: PathBuf,
    released: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BlockedWriter {
    fn new(fifo: PathBuf) -> Self {
        mkfifo(&fifo);
        let released = Arc::new(AtomicBool::new(false));
        let (path, flag) = (fifo.clone(), released.clone());
        let thread = std::thread::spawn(move || {
            let _w = std::fs::OpenOptions::new().write(true).open(&path);
            flag.store(true, Ordering::SeqCst);
        });
        BlockedWriter {
            fifo,
            released,
            thread: Some(thread),
        }
    }

    /// Whether the writer got a reader (after letting it run a moment).
    async fn released(&self) -> bool {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.released.load(Ordering::SeqCst)
    }
}

impl Drop for BlockedWriter {
    fn drop(&mut self) {
        let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK;
        let _r = rustix::fs::open(&self.fifo, flags, rustix::fs::Mode::empty());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}

#[tokio::test]
async fn a_fifo_outside_every_sandbox_is_never_opened() {
    let s = server().await;
    let writer = BlockedWriter::new(s.dir.path().join("fifo"));
    // Named directly, and through a link a task planted in its sandbox.
    std::os::unix::fs::symlink(&writer.fifo, s.run.join("fifo-link")).unwrap();
    for path in [
        writer.fifo.display().to_string(),
        format!("{LATEST}/fifo-link"),
        s.run.join("fifo-link").display().to_string(),
    ] {
        for endpoint in ["browse", "read", "download"] {
            let (status, body) = s.get(endpoint, &[("path", &path)]).await;
            assert_eq!(status, 404, "{endpoint} {path}: {body}");
        }
    }
    assert!(!writer.released().await, "a request opened the FIFO");
}

#[tokio::test]
async fn a_fifo_inside_a_sandbox_is_refused_unopened() {
    let s = server().await;
    let writer = BlockedWriter::new(s.run.join("fifo"));
    for endpoint in ["browse", "read", "download"] {
        let (status, body) = s
            .get(endpoint, &[("path", &format!("{LATEST}/fifo"))])
            .await;
        assert_eq!(status, 403, "{endpoint}: {body}");
        assert!(body.contains("a FIFO"), "{body}");
    }
    assert!(!writer.released().await, "a request opened the FIFO");
    // Listed, as Mesos lists it, without being opened.
    let listing = s.json("browse", &[("path", LATEST)]).await;
    let fifo = listing
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == format!("{LATEST}/fifo"))
        .expect("listed");
    assert!(fifo["mode"].as_str().unwrap().starts_with('p'));
    assert!(!writer.released().await);
}

#[tokio::test]
async fn a_device_node_is_refused_unopened() {
    let s = server().await;
    let node = s.run.join("null");
    let made = rustix::fs::mknodat(
        rustix::fs::CWD,
        &node,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    );
    if made.is_err() {
        eprintln!("skipped: cannot make a device node here ({made:?})");
        return;
    }
    // Any open of the node (not an O_PATH lookup) shows as IN_OPEN.
    let inotify = rustix::fs::inotify::init(rustix::fs::inotify::CreateFlags::NONBLOCK).unwrap();
    rustix::fs::inotify::add_watch(&inotify, &node, rustix::fs::inotify::WatchFlags::OPEN).unwrap();
    for endpoint in ["browse", "read", "download"] {
        let (status, body) = s
            .get(endpoint, &[("path", &format!("{LATEST}/null"))])
            .await;
        assert_eq!(status, 403, "{endpoint}: {body}");
        assert!(body.contains("a character device"), "{body}");
    }
    let (status, _) = s.get("read", &[("path", "/dev/null")]).await;
    assert_eq!(status, 404);
    let mut buf = [std::mem::MaybeUninit::uninit(); 1024];
    let mut events = rustix::fs::inotify::Reader::new(&inotify, &mut buf);
    assert!(events.next().is_err(), "the device node was opened");
}

#[tokio::test]
async fn a_hard_link_to_a_file_outside_is_not_served() {
    let s = server().await;
    std::fs::hard_link(s.dir.path().join("outside"), s.run.join("hard")).unwrap();
    for endpoint in ["browse", "read", "download"] {
        let (status, body) = s
            .get(endpoint, &[("path", &format!("{LATEST}/hard"))])
            .await;
        assert_eq!(status, 403, "{endpoint}: {body}");
        assert!(body.contains("2 hard links"), "{body}");
        assert!(!body.contains("secret"));
    }
}

#[tokio::test]
async fn download_serves_one_range() {
    let s = server().await;
    let url = format!("{}/files/download", s.base);
    let p = format!("{LATEST}/stdout");
    let get = |range: &'static str| {
        s.http
            .get(&url)
            .query(&[("path", p.as_str())])
            .header("range", range)
            .send()
    };
    let part = get("bytes=5-7").await.unwrap();
    assert_eq!(part.status().as_u16(), 206);
    let range = part.headers()["content-range"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(range, "bytes 5-7/18");
    assert_eq!(part.text().await.unwrap(), "one");
    // An open end, and an end past the file, stop at its end.
    for r in ["bytes=14-", "bytes=14-1000"] {
        let tail = get(r).await.unwrap();
        assert_eq!(tail.status().as_u16(), 206, "{r}");
        assert_eq!(tail.text().await.unwrap(), "two\n", "{r}");
    }
    let past = get("bytes=18-").await.unwrap();
    assert_eq!(past.status().as_u16(), 416);
    assert_eq!(past.headers()["content-range"], "bytes */18");
    let bad = get("bytes=9-3").await.unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    // Without a Range header, the whole file.
    let (status, body) = s.get("download", &[("path", &p)]).await;
    assert_eq!((status, body.as_str()), (200, "line one\nline two\n"));
}
