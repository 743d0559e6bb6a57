//! PID 1's duties once the node is configured: run the service, restart it
//! with backoff when it exits, reap every orphan, and shut down cleanly on
//! the signals the kernel sends init.
//!
//! ```text
//!  spawn --exits--> log status, wait backoff (1 s doubling to 60 s; reset
//!    ^               after a minute of running) --+
//!    +--------------------------------------------+
//!  SIGINT (Ctrl-Alt-Del) -> reboot     SIGTERM, SIGPWR -> power off
//!  address changed (DHCP) -> stop the service, start it on the new address
//! ```

use std::collections::VecDeque;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, WaitOptions, WaitStatus};
use tokio::signal::unix::{Signal as SignalStream, SignalKind, signal};
use tokio::time::Instant;

use crate::mounts;
use crate::service::Service;

const BACKOFF_CAP: Duration = Duration::from_secs(60);
/// A service that ran this long is healthy again: the backoff resets.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
/// How long the service gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("cannot install the {0} handler: {1}")]
    Signal(&'static str, std::io::Error),
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
}

/// Why init stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    Reboot,
    PowerOff,
}

/// The delay before restart number `n` (0-based): 1 s doubling, capped.
pub fn restart_delay(n: u32) -> Duration {
    Duration::from_secs(1u64 << n.min(6)).min(BACKOFF_CAP)
}

/// The signals PID 1 handles. Create these first thing at boot: a signal
/// sent to init without a handler is dropped.
pub struct Signals {
    child: SignalStream,
    int: SignalStream,
    term: SignalStream,
    pwr: SignalStream,
    exited: VecDeque<(Pid, WaitStatus)>,
}

impl Signals {
    pub fn install() -> Result<Self, SuperviseError> {
        let s = |kind, name| signal(kind).map_err(|e| SuperviseError::Signal(name, e));
        Ok(Signals {
            child: s(SignalKind::child(), "SIGCHLD")?,
            int: s(SignalKind::interrupt(), "SIGINT")?,
            term: s(SignalKind::terminate(), "SIGTERM")?,
            pwr: s(SignalKind::from_raw(Signal::POWER.as_raw()), "SIGPWR")?,
            exited: VecDeque::new(),
        })
    }

    fn reap(&mut self) {
        while let Ok(Some((pid, status))) = rustix::process::waitpid(None, WaitOptions::NOHANG) {
            self.exited.push_back((pid, status));
        }
    }

    /// The next child exit (any child: orphans are reaped here too) or
    /// shutdown request.
    async fn next_event(&mut self) -> Event {
        loop {
            self.reap();
            if let Some((pid, status)) = self.exited.pop_front() {
                return Event::Exited(pid, status);
            }
            tokio::select! {
                _ = self.child.recv() => {}
                _ = self.int.recv() => return Event::Shutdown(Shutdown::Reboot),
                _ = self.term.recv() => return Event::Shutdown(Shutdown::PowerOff),
                _ = self.pwr.recv() => return Event::Shutdown(Shutdown::PowerOff),
            }
        }
    }

    /// The next shutdown request; child exits meanwhile are reaped and
    /// dropped.
    pub async fn shutdown_requested(&mut self) -> Shutdown {
        loop {
            if let Event::Shutdown(s) = self.next_event().await {
                return s;
            }
        }
    }
}

enum Event {
    Exited(Pid, WaitStatus),
    Shutdown(Shutdown),
}

/// Describes how a process ended.
pub fn describe(status: WaitStatus) -> String {
    match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (_, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "stopped".to_string(),
    }
}

fn spawn(svc: &Service) -> Result<Pid, SuperviseError> {
    let child = Command::new(&svc.program)
        .args(&svc.args)
        .envs(svc.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .spawn()
        .map_err(|source| SuperviseError::Spawn {
            program: svc.program.display().to_string(),
            source,
        })?;
    let pid = Pid::from_child(&child);
    // Waited for through SIGCHLD, not through `child`.
    drop(child);
    if let Err(e) = mounts::join_cgroup(Path::new(mounts::SERVICE_CGROUP), pid.as_raw_pid() as u32)
    {
        tracing::warn!("{e}");
    }
    Ok(pid)
}

/// Runs the service that `make` builds from the current address until a
/// shutdown is requested; restarts it when it exits or when `address`
/// changes. Returns the shutdown to perform, with the service stopped.
pub async fn run<A: Clone + PartialEq + Send + Sync>(
    signals: &mut Signals,
    address: &mut tokio::sync::watch::Receiver<A>,
    make: impl Fn(&A) -> Service,
) -> Shutdown {
    let mut failures = 0u32;
    loop {
        let current = address.borrow_and_update().clone();
        let svc = make(&current);
        let name = svc
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let started = Instant::now();
        let reason = match spawn(&svc) {
            Err(e) => e.to_string(),
            Ok(pid) => {
                tracing::info!(
                    "started {name} (pid {}): {}",
                    pid.as_raw_pid(),
                    svc.display()
                );
                match watch(signals, address, &current, pid, &name).await {
                    Ended::Shutdown(s) => return s,
                    Ended::Reason(r) => r,
                }
            }
        };
        if started.elapsed() >= HEALTHY_AFTER {
            failures = 0;
        }
        let delay = restart_delay(failures);
        failures = failures.saturating_add(1);
        tracing::warn!("{reason}; restarting in {delay:?}");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            shutdown = signals.shutdown_requested() => return shutdown,
        }
    }
}

enum Ended {
    Shutdown(Shutdown),
    Reason(String),
}

/// Waits for the service to exit, a shutdown, or a new address.
async fn watch<A: Clone + PartialEq>(
    signals: &mut Signals,
    address: &mut tokio::sync::watch::Receiver<A>,
    current: &A,
    pid: Pid,
    name: &str,
) -> Ended {
    let mut address_open = true;
    loop {
        tokio::select! {
            event = signals.next_event() => match event {
                Event::Exited(exited, status) if exited == pid => {
                    return Ended::Reason(format!("{name} {}", describe(status)));
                }
                Event::Exited(..) => {}
                Event::Shutdown(shutdown) => {
                    tracing::info!("{shutdown:?} requested; stopping {name}");
                    stop(signals, pid, name).await;
                    return Ended::Shutdown(shutdown);
                }
            },
            changed = address.changed(), if address_open => {
                if changed.is_err() {
                    // The sender is gone: the address will not change again.
                    address_open = false;
                } else if *address.borrow() != *current {
                    tracing::info!("address changed; restarting {name}");
                    stop(signals, pid, name).await;
                    return Ended::Reason("address changed".to_string());
                }
            }
        }
    }
}

/// SIGTERM, then SIGKILL after [`STOP_GRACE`]; reaps it.
async fn stop(signals: &mut Signals, pid: Pid, name: &str) {
    let _ = rustix::process::kill_process(pid, Signal::TERM);
    let deadline = Instant::now() + STOP_GRACE;
    loop {
        tokio::select! {
            event = signals.next_event() => match event {
                Event::Exited(exited, status) if exited == pid => {
                    tracing::info!("{name} {}", describe(status));
                    return;
                }
                // A second shutdown request while stopping changes nothing.
                _ => {}
            },
            _ = tokio::time::sleep_until(deadline) => {
                tracing::warn!("{name} did not stop within {STOP_GRACE:?}; killing it");
                let _ = rustix::process::kill_process(pid, Signal::KILL);
                let _ = rustix::process::waitpid(Some(pid), WaitOptions::empty());
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_to_a_minute() {
        let d: Vec<u64> = (0..9).map(|n| restart_delay(n).as_secs()).collect();
        assert_eq!(d, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
