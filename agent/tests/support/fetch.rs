//! For fetcher tests: files served over HTTP on 127.0.0.1 (whole, or
//! chunked without a length), and a task runtime whose tasks fetch them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use keel_agent::executor::{ExecutorConfig, ExecutorHandle};
use keel_agent::fetcher::FetcherConfig;
use keel_agent::isolation::{HostSupport, Isolation};
use keel_api::pb;
use serde_json::{Value, json};
use tokio::sync::mpsc;

#[derive(Clone, Default)]
pub struct Files {
    pub files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    pub hits: Arc<AtomicUsize>,
}

impl Files {
    pub fn put(&self, name: &str, bytes: Vec<u8>) {
        self.files.lock().unwrap().insert(name.into(), bytes);
    }
}

async fn serve(State(f): State<Files>, UrlPath(name): UrlPath<String>) -> impl IntoResponse {
    f.hits.fetch_add(1, Ordering::SeqCst);
    match f.files.lock().unwrap().get(&name) {
        Some(b) => (StatusCode::OK, b.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `n` zero bytes in 64 KiB chunks, with no Content-Length.
async fn chunked(UrlPath(n): UrlPath<usize>) -> impl IntoResponse {
    let chunks = (0..n.div_ceil(1 << 16))
        .map(move |i| Ok::<_, std::io::Error>(vec![0u8; (n - i * (1 << 16)).min(1 << 16)]));
    Body::from_stream(futures::stream::iter(chunks))
}

/// Serves `files` at `/{name}` and chunked zeros at `/chunked/{n}`.
pub async fn server(files: Files) -> String {
    let app = axum::Router::new()
        .route("/{name}", axum::routing::get(serve))
        .route("/chunked/{n}", axum::routing::get(chunked))
        .with_state(files);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

pub struct Agent {
    pub exec: ExecutorHandle,
    pub rx: mpsc::UnboundedReceiver<pb::StatusUpdate>,
    pub dir: tempfile::TempDir,
}

pub fn agent(isolation: Isolation, host: HostSupport, fetcher: FetcherConfig) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ExecutorConfig::new(dir.path());
    config.isolation = isolation;
    config.host = host;
    config.fetcher = fetcher;
    let (exec, rx) = super::start_runtime(config);
    Agent { exec, rx, dir }
}

impl Agent {
    pub fn launch(&self, id: &str, cmd: &str, uris: Value) {
        let task = json!({"name": id, "task_id": {"value": id},
            "agent_id": {"value": "agent-S1"}, "resources": [],
            "command": {"value": cmd, "uris": uris}});
        super::launch_into(&self.exec, json!({"user": "root", "name": "t"}), &task);
    }

    pub async fn end(&mut self) -> pb::TaskStatus {
        super::until_terminal(&self.exec, &mut self.rx).await
    }

    pub fn sandbox(&self, task: &str) -> PathBuf {
        self.dir.path().join(format!(
            "slaves/agent-S1/frameworks/fw/executors/{task}/runs/latest"
        ))
    }

    pub fn stdout(&self, task: &str) -> String {
        std::fs::read_to_string(self.sandbox(task).join("stdout")).unwrap_or_default()
    }

    /// Launches a task and waits for its end, expecting the fetcher's
    /// failure with `text` in the message.
    pub async fn fetch_fails(&mut self, id: &str, uris: Value, text: &str) {
        self.launch(id, "true", uris);
        let end = self.end().await;
        assert_eq!(
            (end.state.as_str(), end.reason.as_str()),
            ("TASK_FAILED", "REASON_FETCHER_FAILED"),
            "{id}: {end:?}"
        );
        assert!(end.message.starts_with("Failed to fetch '"), "{end:?}");
        assert!(end.message.contains(text), "{id}: {text:?} not in {end:?}");
    }
}
