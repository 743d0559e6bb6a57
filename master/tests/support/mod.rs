//! Harness for tests that run Keel's real binaries on loopback.
//!
//! The binaries are found next to the test executable's `deps/` directory
//! (`target/<profile>/`); `cargo xtask test` builds them first.
//!
//! Tests talk to the masters through keel-client ([`Master::api`],
//! [`scheduler::Scheduler`]); the raw HTTP/1.1 helpers ([`http`],
//! [`http_to`], ...) are for tests of wire details on purpose: status codes,
//! headers, malformed bodies, exact JSON.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod auth;
pub mod scheduler;
pub mod testnet;
pub mod venv;

use keel_api::keel::AgentSummary;
use keel_client::blocking;
use rustix::process::{Pid, Signal, kill_process};

pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`, done by `cargo xtask test`)",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `text` to `dir/name`; the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A TLS master signed by `ca` that holds the CA's key (it certifies the
/// agents it admits), with `extra` flags, files under `root`; its client
/// is an admin's. Returns the master and the CA file agents are given.
pub fn start_secure_master(root: &Path, ca: &keel_pki::Ca, extra: &[String]) -> (Master, PathBuf) {
    use keel_pki::{Material, Role};
    let valid = Duration::from_secs(3600);
    let port = free_port();
    let m = ca
        .issue(
            Role::Master,
            &format!("127.0.0.1:{port}"),
            &["127.0.0.1".into()],
            valid,
        )
        .unwrap();
    let ca_file = write_file(root, "ca.crt", ca.cert_pem());
    let files = [
        ("--tls-ca", ca_file.clone()),
        ("--tls-cert", write_file(root, "m.crt", &m.cert_pem)),
        ("--tls-key", write_file(root, "m.key", &m.key_pem)),
        ("--tls-ca-key", write_file(root, "ca.key", ca.key_pem())),
    ];
    let mut flags: Vec<String> = files
        .iter()
        .flat_map(|(flag, path)| [flag.to_string(), path.display().to_string()])
        .collect();
    flags.extend(extra.iter().cloned());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let admin = ca.issue(Role::Admin, "admin", &[], valid).unwrap();
    let admin = Material::from_pem(ca.cert_pem(), Some((&admin.cert_pem, &admin.key_pem))).unwrap();
    (
        Master::start_tls(root, port, "3s", &flags, Some(admin)),
        ca_file,
    )
}

/// `n` free loopback ports for masters, and their `--masters` list.
pub fn master_ports(n: usize) -> (Vec<u16>, String) {
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let list = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    (ports, list)
}

/// Three replicated masters under `dir` (agent timeout 3 s, agents have
/// 20 s to re-register after a failover), and their `--masters` list.
pub fn three_masters(dir: &Path) -> (Vec<Master>, String) {
    let (ports, list) = master_ports(3);
    let masters = ports
        .iter()
        .map(|p| {
            let d = dir.join(format!("m{p}"));
            std::fs::create_dir_all(&d).unwrap();
            Master::start_with(
                &d,
                *p,
                "3s",
                &["--masters", &list, "--agent-reregister-timeout", "20s"],
            )
        })
        .collect();
    (masters, list)
}

/// A child process that is killed when dropped.
pub struct Proc {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(cmd: &mut Command, log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdout(Stdio::null())
            .stderr(file)
            .env("KEEL_LOG_STDERR", "1")
            .env("KEEL_LOG", "info")
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Proc {
            child: Some(child),
            log,
        }
    }

    fn pid(&self) -> Pid {
        let id = self.child.as_ref().expect("running").id();
        Pid::from_raw(id as i32).expect("pid")
    }

    pub fn signal(&self, sig: Signal) {
        kill_process(self.pid(), sig).expect("kill");
    }

    /// Sends SIGKILL and reaps.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        self.signal(Signal::TERM);
        let deadline = Instant::now() + within;
        let mut child = self.child.take().expect("running");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "process did not exit within {within:?} of SIGTERM; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub struct Master {
    pub proc: Proc,
    pub port: u16,
    pub work_dir: PathBuf,
    /// This master only: its redirects are reported
    /// ([`keel_client::ClientError::NotLeader`]), not followed.
    pub api: blocking::Client,
}

impl Master {
    pub fn start(dir: &Path, port: u16, agent_timeout: &str) -> Master {
        Self::start_with(dir, port, agent_timeout, &[])
    }

    pub fn start_with(dir: &Path, port: u16, agent_timeout: &str, extra: &[&str]) -> Master {
        Self::start_tls(dir, port, agent_timeout, extra, None)
    }

    /// [`Master::start_with`]; its client speaks TLS with `tls` when given
    /// (`extra` then carries the master's `--tls-*` flags).
    pub fn start_tls(
        dir: &Path,
        port: u16,
        agent_timeout: &str,
        extra: &[&str],
        tls: Option<keel_pki::Material>,
    ) -> Master {
        let work_dir = dir.join("master");
        let proc = Proc::spawn(
            Command::new(bin("keel-master"))
                .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
                .arg("--work-dir")
                .arg(&work_dir)
                .args([
                    "--agent-timeout",
                    agent_timeout,
                    "--heartbeat-interval",
                    "300ms",
                ])
                .args(extra),
            dir.join(format!("master-{}.log", fastrand_suffix())),
        );
        let builder = keel_client::Client::builder(&format!("127.0.0.1:{port}"))
            .discover_leader(false)
            .tls(tls);
        let m = Master {
            proc,
            port,
            work_dir,
            api: blocking::Client::from_builder(builder).expect("client"),
        };
        wait_for(
            Duration::from_secs(20),
            "master health",
            || m.api.health().is_ok(),
            || m.proc.log_text(),
        );
        m
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn keel_agents(&self) -> Vec<AgentSummary> {
        self.api.keel_agents().expect("agents").agents
    }
}

/// A master with its defaults and one agent under `dir`, once the agent
/// has registered.
pub fn master_and_agent(dir: &Path) -> (Master, Proc) {
    let m = Master::start(dir, free_port(), "5s");
    let agent = start_agent(dir, &m.addr(), &[]);
    wait_for(
        Duration::from_secs(30),
        "the agent registered",
        || m.keel_agents().len() == 1,
        || agent.log_text(),
    );
    (m, agent)
}

pub fn start_agent(dir: &Path, master: &str, extra: &[&str]) -> Proc {
    start_agent_on(dir, master, free_port(), extra)
}

/// [`start_agent`] on `port` (an agent restarted on the same port keeps
/// its address: its executors reach it again).
pub fn start_agent_on(dir: &Path, master: &str, port: u16, extra: &[&str]) -> Proc {
    Proc::spawn(
        Command::new(bin("keel-agent"))
            .args([
                "--master",
                master,
                "--ip",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .arg("--work-dir")
            .arg(dir.join("agent"))
            .args(["--registration-backoff-factor", "200ms"])
            .args(extra),
        dir.join(format!("agent-{}.log", fastrand_suffix())),
    )
}

fn fastrand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst).to_string()
}

pub fn wait_for(
    within: Duration,
    what: &str,
    mut cond: impl FnMut() -> bool,
    log: impl Fn() -> String,
) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "timed out after {within:?} waiting for {what}; log:\n{}",
        log()
    );
}

/// Status, lower-cased headers, body.
pub type Reply = (u16, Vec<(String, String)>, String);

/// A tiny blocking HTTP/1.1 client for tests of wire details.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    http_to(addr, Duration::from_secs(10), method, path, headers, body)
}

/// [`http`] to any address, answered within `timeout` (connecting, then
/// each read and write).
pub fn http_to(
    addr: std::net::SocketAddr,
    timeout: Duration,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok((status, headers, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http(port, "GET", path, &[], b"").map(|(s, _, b)| (s, b))
}

pub fn post_json(port: u16, path: &str, body: &str) -> Reply {
    http(
        port,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .expect("post")
}

pub fn run_output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}
