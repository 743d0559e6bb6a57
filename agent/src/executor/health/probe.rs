//! Running health checks: one probe each `interval` after `delay`, judged
//! by the [`Tracker`]; decisions go to the task's supervisor.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Decision, HealthCheck, Probe, Tracker};
use crate::executor::command;

/// Where and how the checks reach the task.
#[derive(Debug, Clone)]
pub struct Target {
    /// 127.0.0.1, or the container's address on the agent's network.
    pub host: IpAddr,
    /// The task's process group leader (its container init, if any).
    pub pid: u32,
    /// Run COMMAND checks in the task's namespaces (through
    /// `<agent_exe> enter`), with this working directory there.
    pub enter: Option<(PathBuf, PathBuf)>,
    /// The working directory on the host otherwise (the sandbox).
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
}

async fn tcp(host: IpAddr, port: u16, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await,
        Ok(Ok(_))
    )
}

async fn http(client: &reqwest::Client, url: String, timeout: Duration) -> bool {
    match client.get(url).timeout(timeout).send().await {
        Ok(r) => (200..400).contains(&r.status().as_u16()),
        Err(_) => false,
    }
}

async fn command(cmd: &keel_api::mesos::CommandInfo, t: &Target, timeout: Duration) -> bool {
    let (program, argv) = if cmd.shell() {
        let v = cmd.value.clone().unwrap_or_default();
        (
            "/bin/sh".to_string(),
            vec!["sh".to_string(), "-c".to_string(), v],
        )
    } else {
        let v = cmd.value.clone().unwrap_or_default();
        let argv = if cmd.arguments.is_empty() {
            vec![v.clone()]
        } else {
            cmd.arguments.clone()
        };
        (v, argv)
    };
    let mut c = match &t.enter {
        Some((exe, cwd)) => {
            let mut c = tokio::process::Command::new(exe);
            c.arg0("keel-agent")
                .arg("enter")
                .arg(t.pid.to_string())
                .arg(cwd)
                .arg("--")
                .arg(&program)
                .args(&argv);
            c
        }
        None => {
            let mut c = tokio::process::Command::new(&program);
            if let Some((argv0, rest)) = argv.split_first() {
                c.arg0(argv0).args(rest);
            }
            c.current_dir(&t.cwd);
            c
        }
    };
    c.env_clear()
        .envs(t.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let Ok(mut child) = c.spawn() else {
        return false;
    };
    let pgid = child.id().and_then(|p| Pid::from_raw(p as i32));
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status.success(),
        _ => {
            if let Some(pgid) = pgid {
                let _ = kill_process_group(pgid, Signal::KILL);
            }
            let _ = child.wait().await;
            false
        }
    }
}

/// One check now: whether the task is healthy.
pub async fn check(
    probe: &Probe,
    target: &Target,
    timeout: Duration,
    client: &reqwest::Client,
) -> bool {
    match probe {
        Probe::Tcp { port } => tcp(target.host, *port, timeout).await,
        Probe::Http { scheme, port, path } => {
            let host = match target.host {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            };
            http(client, format!("{scheme}://{host}:{port}{path}"), timeout).await
        }
        Probe::Command(cmd) => command(cmd, target, timeout).await,
    }
}

/// Checks until the receiver is gone (the task ended), sending decisions.
pub async fn run(hc: HealthCheck, target: Target, out: mpsc::UnboundedSender<Decision>) {
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap_or_default();
    let mut tracker = Tracker::new(hc.policy, Instant::now());
    tokio::time::sleep(hc.policy.delay).await;
    loop {
        let started = Instant::now();
        let healthy = check(&hc.probe, &target, hc.policy.timeout, &client).await;
        for d in tracker.record(healthy, Instant::now()) {
            if out.send(d).is_err() {
                return;
            }
        }
        tokio::time::sleep_until(started + hc.policy.interval).await;
        if out.is_closed() {
            return;
        }
    }
}

/// The environment of a COMMAND check: the check's own variables over the
/// task's `MESOS_*` ones.
pub fn check_env(
    ctx: &crate::executor::hooks::TaskContext,
    probe: &Probe,
) -> Vec<(String, String)> {
    match probe {
        Probe::Command(cmd) => command::environment(ctx, cmd, &[]),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn target(dir: &std::path::Path) -> Target {
        Target {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            pid: std::process::id(),
            enter: None,
            cwd: dir.to_path_buf(),
            env: vec![
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("X".into(), "1".into()),
            ],
        }
    }

    #[tokio::test]
    async fn probes_tell_healthy_from_not() {
        let dir = tempfile::tempdir().unwrap();
        let t = target(dir.path());
        let c = reqwest::Client::new();
        let ms = Duration::from_millis(500);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(check(&Probe::Tcp { port }, &t, ms, &c).await);
        drop(listener);
        assert!(!check(&Probe::Tcp { port }, &t, ms, &c).await);

        let app = axum::Router::new()
            .route("/ok", axum::routing::get(|| async { "fine" }))
            .route(
                "/bad",
                axum::routing::get(|| async { axum::http::StatusCode::SERVICE_UNAVAILABLE }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(l, app).await });
        let http = |path: &str| Probe::Http {
            scheme: "http".into(),
            port,
            path: path.into(),
        };
        assert!(check(&http("/ok"), &t, ms, &c).await);
        assert!(!check(&http("/bad"), &t, ms, &c).await);

        let cmd = |v: &str| {
            Probe::Command(keel_api::mesos::CommandInfo {
                value: Some(v.into()),
                ..Default::default()
            })
        };
        assert!(check(&cmd("test \"$X\" = 1 && test -d ."), &t, ms, &c).await);
        assert!(!check(&cmd("exit 1"), &t, ms, &c).await);
        let started = std::time::Instant::now();
        assert!(
            !check(&cmd("sleep 30"), &t, ms, &c).await,
            "a timeout is a failure"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
