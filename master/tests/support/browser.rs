//! Headless Chromium over WebDriver for the web UI's tests: chromedriver
//! (Debian's `chromium-driver`, installed by `.ci/run`) on a free port,
//! one session driven with fantoccini, the browser's console log read
//! back through chromedriver's log endpoint.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value as Json, json};

use super::{Proc, free_port};

/// chromedriver and one browser session.
pub struct Browser {
    pub client: Client,
    session: String,
    port: u16,
    _driver: Proc,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium (as root it needs
    /// `--no-sandbox`); panics when either is missing.
    pub async fn start(dir: &Path) -> Browser {
        let port = free_port();
        let driver = Proc::spawn(
            Command::new("chromedriver").arg(format!("--port={port}")),
            dir.join("chromedriver.log"),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not start (install Debian's chromium and chromium-driver)"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({
            "goog:chromeOptions": {
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        });
        let Json::Object(caps) = caps else {
            unreachable!("an object")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        let session = client
            .session_id()
            .await
            .expect("session id")
            .expect("a session");
        Browser {
            client,
            session,
            port,
            _driver: driver,
        }
    }

    /// The console entries logged since the last call, as (level, message).
    pub fn console(&self) -> Vec<(String, String)> {
        let path = format!("/session/{}/se/log", self.session);
        let text = driver_post(self.port, &path, r#"{"type": "browser"}"#).expect("log");
        let reply: Json = serde_json::from_str(&text).expect("log json");
        reply["value"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let level = e["level"].as_str().unwrap_or("").to_string();
                (level, e["message"].as_str().unwrap_or("").to_string())
            })
            .collect()
    }

    /// Asserts nothing on the console is an error.
    pub fn assert_no_console_errors(&self, page: &str) {
        let errors: Vec<_> = self
            .console()
            .into_iter()
            .filter(|(level, _)| level == "SEVERE")
            .collect();
        assert!(errors.is_empty(), "console errors on {page}: {errors:?}");
    }

    /// The value of `script` (a JavaScript expression).
    pub async fn eval(&self, script: &str) -> Json {
        self.client
            .execute(&format!("return ({script});"), Vec::new())
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Waits until `script` is true; panics with `what` after `within`.
    pub async fn wait_until(&self, within: Duration, what: &str, script: &str) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.eval(script).await == Json::Bool(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let live = self
            .eval("document.getElementById('live') && document.getElementById('live').innerText")
            .await;
        panic!("timed out after {within:?} waiting for {what}; the page shows: {live}");
    }

    /// The text of the element with `id` ("" when there is none).
    pub async fn text(&self, id: &str) -> String {
        let script = format!("(document.getElementById({id:?}) || {{innerText: ''}}).innerText");
        self.eval(&script).await.as_str().unwrap_or("").to_string()
    }

    /// Saves a screenshot of the page as `name`.png under
    /// `target/ui-screenshots/`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }
}

/// POSTs `body` to chromedriver; the answer's body. chromedriver keeps
/// the connection open despite `Connection: close`, so the body is read
/// by its `Content-Length`.
fn driver_post(port: u16, path: &str, body: &str) -> std::io::Result<String> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(s);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut out = vec![0; length];
    reader.read_exact(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// `target/ui-screenshots`, next to the profile's directory the test runs
/// from.
fn screenshots_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("target dir (target/<profile>/deps/<test>)");
    target.join("ui-screenshots")
}
