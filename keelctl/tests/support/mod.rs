//! Harness for keelctl's tests: a real master and agent on loopback, and
//! keelctl run against them.
//!
//! The master and agent binaries are found next to the test's `deps/`
//! directory (`cargo build --workspace --bins`, done by `cargo xtask test`).

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).unwrap().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`)",
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

pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Cluster {
    pub master: String,
    _procs: Vec<Killed>,
    _dir: tempfile::TempDir,
}

pub fn spawn(cmd: &mut Command, log: PathBuf) -> Killed {
    let log = std::fs::File::create(log).unwrap();
    Killed(
        cmd.stdout(Stdio::null())
            .stderr(log)
            .env("KEEL_LOG_STDERR", "1")
            .spawn()
            .unwrap(),
    )
}

pub fn keelctl(master: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keelctl"))
        .args(["--master", master])
        .args(args)
        .output()
        .unwrap()
}

/// keelctl with only `env` of the credentials variables (the caller's
/// `KEEL_PRINCIPAL`, `KEEL_SECRET`, `KEEL_TOKEN`, `KEEL_CONFIG` removed).
pub fn keelctl_env(master: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keelctl"));
    for var in ["KEEL_PRINCIPAL", "KEEL_SECRET", "KEEL_TOKEN", "KEEL_CONFIG"] {
        cmd.env_remove(var);
    }
    cmd.args(["--master", master])
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap()
}

/// stdout and stderr, for messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The task id `keelctl run` reports on stderr.
pub fn task_id(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("launched task "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no task id in {stderr}"))
        .to_string()
}

pub fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let master = format!("127.0.0.1:{port}");
    let m = spawn(
        Command::new(bin("keel-master"))
            .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
            .arg("--work-dir")
            .arg(dir.path().join("master")),
        dir.path().join("master.log"),
    );
    let a = spawn(
        Command::new(bin("keel-agent"))
            .args(["--master", &master, "--ip", "127.0.0.1"])
            .args(["--port", &free_port().to_string()])
            .arg("--work-dir")
            .arg(dir.path().join("agent"))
            .args(["--registration-backoff-factor", "200ms"])
            .args(["--resources", "cpus:2;mem:1024"]),
        dir.path().join("agent.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = keelctl(&master, &["agents", "-o", "json"]);
        let text = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && text.contains("\"active\"") {
            break;
        }
        assert!(Instant::now() < deadline, "the agent never registered");
        std::thread::sleep(Duration::from_millis(200));
    }
    Cluster {
        master,
        _procs: vec![m, a],
        _dir: dir,
    }
}
