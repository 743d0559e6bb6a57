//! Starting Keel's release binaries as local processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use keel_api::keel::{AgentState, AgentSummary};
use keel_client::blocking;

use crate::{cargo, root};

pub fn release_bin(name: &str) -> PathBuf {
    root().join("target/release").join(name)
}

pub fn build_release() -> Result<()> {
    cargo(&[
        "build",
        "--release",
        "--bins",
        "-p",
        "keel-master",
        "-p",
        "keel-agent",
        "-p",
        "keelctl",
    ])
}

pub struct Node {
    pub child: Child,
    pub name: &'static str,
}

impl Node {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and wait; returns whether it exited 0.
    pub fn stop(mut self) -> Result<bool> {
        Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("kill")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s.success());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("{} did not stop within 10s of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn spawn_master(port: u16, work_dir: &Path, quiet: bool) -> Result<Node> {
    spawn_master_with(port, work_dir, quiet, &[])
}

/// [`spawn_master`] with more flags.
pub fn spawn_master_with(
    port: u16,
    work_dir: &Path,
    quiet: bool,
    extra: &[String],
) -> Result<Node> {
    let mut cmd = Command::new(release_bin("keel-master"));
    cmd.args(["--ip", "127.0.0.1", "--port", &port.to_string()])
        .arg("--work-dir")
        .arg(work_dir)
        .args(extra)
        .env("KEEL_LOG_STDERR", "1");
    if quiet {
        cmd.stderr(Stdio::null());
    }
    Ok(Node {
        child: cmd.spawn().context("cannot start keel-master")?,
        name: "keel-master",
    })
}

pub fn spawn_agent(master: &str, port: u16, work_dir: &Path, quiet: bool) -> Result<Node> {
    spawn_agent_with(master, port, work_dir, quiet, &[], &[])
}

/// [`spawn_agent`] with more flags and environment (secrets such as a
/// join token go there: `ps` shows argv to everyone).
pub fn spawn_agent_with(
    master: &str,
    port: u16,
    work_dir: &Path,
    quiet: bool,
    extra: &[String],
    env: &[(&str, &str)],
) -> Result<Node> {
    let mut cmd = Command::new(release_bin("keel-agent"));
    cmd.args([
        "--master",
        master,
        "--ip",
        "127.0.0.1",
        "--port",
        &port.to_string(),
    ])
    .arg("--work-dir")
    .arg(work_dir)
    .args(["--registration-backoff-factor", "100ms"])
    .args(extra)
    .envs(env.iter().copied())
    .env("KEEL_LOG_STDERR", "1");
    if quiet {
        cmd.stderr(Stdio::null());
    }
    Ok(Node {
        child: cmd.spawn().context("cannot start keel-agent")?,
        name: "keel-agent",
    })
}

/// The master on `port` through keel-client: that master only (no leader
/// discovery), each request answered within 2 s.
pub struct Api(blocking::Client);

impl Api {
    pub fn new(port: u16) -> Result<Api> {
        Api::with(port, |b| b)
    }

    /// [`Api::new`], the client's options changed by `f` (TLS,
    /// credentials).
    pub fn with(
        port: u16,
        f: impl FnOnce(keel_client::ClientBuilder) -> keel_client::ClientBuilder,
    ) -> Result<Api> {
        let builder = keel_client::Client::builder(&format!("127.0.0.1:{port}"))
            .discover_leader(false)
            .timeout(Duration::from_secs(2));
        Ok(Api(blocking::Client::from_builder(f(builder))?))
    }

    /// Whether it answers `/health`.
    pub fn healthy(&self) -> bool {
        self.0.health().is_ok()
    }

    /// The agents it lists as active.
    pub fn active_agents(&self) -> Vec<AgentSummary> {
        self.0
            .keel_agents()
            .map(|a| a.agents)
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a.state == AgentState::Active)
            .collect()
    }

    pub fn client(&self) -> &blocking::Client {
        &self.0
    }
}

pub fn wait_until(within: Duration, cond: impl FnMut() -> bool) -> bool {
    wait_every(within, Duration::from_millis(2), cond)
}

/// Whether `cond` turns true within `within`, asked every `every`.
pub fn wait_every(within: Duration, every: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(every);
    }
    false
}

pub fn wait_for_ctrl_c() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
}

/// A port the kernel says is free on 127.0.0.1 now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// `VmRSS` of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The `p` quantile (0..=1) of sorted samples, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}
