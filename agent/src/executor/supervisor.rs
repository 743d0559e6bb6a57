//! One task's process from prestart hooks to reaping, as an async task of
//! its own. It reports [`Event`]s to the runtime and takes kill requests
//! (grace periods) on a channel:
//!
//! ```text
//!  Launch: prestart hooks --fail--> Failed
//!          fetch URIs --fail--> Failed (REASON_FETCHER_FAILED)
//!            | kill already asked --> KilledBeforeStart
//!          spawn --fail--> Failed
//!            v
//!  Adopt (after a restart) ----> Running --exit-----------------> reap group, poststop, Exited{killed: false}
//!                                  | kill(grace): SIGTERM group --exit--> reap group, poststop, Exited{killed: true}
//!                                  |   grace over: SIGKILL group + kill hooks (cgroup.kill) --exit-> (same)
//!                                  +-- a limit broken (OOM): kill hooks + SIGKILL --> Exited{limitation}
//!  Ended (while the agent was down) -----------------------------> poststop, Exited
//! ```
//!
//! When the runtime goes away (the agent is stopping or was dropped in a
//! test) the supervisor returns without touching the process: tasks outlive
//! the agent and the next one adopts them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::health::probe::{self, Target};
use super::health::{Decision, HealthCheck};
use super::hooks::{self, TaskContext, TaskHook};
use super::launcher::{ExitStatus, LaunchSpec, Process, ProcessLauncher, Signal};
use super::updates::TaskKey;
use crate::fetcher::{Fetcher, REASON_FETCHER_FAILED};
use crate::isolation::cgroups::Limitation;
use crate::isolation::mounts::SANDBOX_PATH;
use crate::metrics::tasks::{Phase, RuntimeMetrics};
use keel_api::mesos::CommandUri;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Running {
        key: TaskKey,
        pid: u32,
    },
    /// Never started: a hook, the fetcher or the spawn failed.
    Failed {
        key: TaskKey,
        message: String,
        /// The Mesos reason (default: REASON_COMMAND_EXECUTOR_FAILED).
        reason: Option<&'static str>,
    },
    KilledBeforeStart {
        key: TaskKey,
    },
    /// A health check result changed the task's health.
    Health {
        key: TaskKey,
        healthy: bool,
    },
    /// Too many health checks failed in a row: the task must be killed.
    Unhealthy {
        key: TaskKey,
    },
    Exited {
        key: TaskKey,
        /// `Err`: the exit status could not be read.
        status: Result<ExitStatus, String>,
        killed: bool,
        /// A limit the container broke (it was killed for it).
        limitation: Option<Limitation>,
    },
}

impl Event {
    /// The supervised process the event is about.
    pub fn key(&self) -> &TaskKey {
        match self {
            Event::Running { key, .. }
            | Event::Failed { key, .. }
            | Event::KilledBeforeStart { key }
            | Event::Health { key, .. }
            | Event::Unhealthy { key }
            | Event::Exited { key, .. } => key,
        }
    }
}

/// Where the supervisor picks the task up.
pub enum Start<P> {
    /// A new task: run the prestart hooks, fetch its URIs, spawn it.
    Launch(Box<LaunchSpec>, Vec<CommandUri>),
    /// A task still running after an agent restart.
    Adopt(P),
    /// A task that ended while the agent was down (`Err`: how is unknown).
    Ended(Result<ExitStatus, String>),
}

pub struct Supervisor<L: ProcessLauncher> {
    pub launcher: Arc<L>,
    pub fetcher: Option<Arc<Fetcher>>,
    /// The task's health check, and the agent binary that enters its
    /// namespaces for COMMAND checks.
    pub health: Option<(HealthCheck, PathBuf)>,
    pub hooks: Arc<[Arc<dyn TaskHook>]>,
    /// Where the launch phases are timed and fetches counted.
    pub metrics: Arc<RuntimeMetrics>,
    pub key: TaskKey,
    pub ctx: TaskContext,
    pub start: Start<L::Process>,
    /// The task was asked to die before the agent restarted.
    pub killed: bool,
    pub events: mpsc::UnboundedSender<Event>,
}

/// The supervisor less its starting point (borrowed across awaits).
struct Core<L> {
    launcher: Arc<L>,
    fetcher: Option<Arc<Fetcher>>,
    health: Option<(HealthCheck, PathBuf)>,
    hooks: Arc<[Arc<dyn TaskHook>]>,
    metrics: Arc<RuntimeMetrics>,
    key: TaskKey,
    ctx: TaskContext,
    killed: bool,
    events: mpsc::UnboundedSender<Event>,
}

impl<L: ProcessLauncher> Supervisor<L> {
    pub async fn run(self, mut kills: mpsc::UnboundedReceiver<Duration>) {
        let Supervisor {
            launcher,
            fetcher,
            health,
            hooks,
            metrics,
            key,
            ctx,
            start,
            killed,
            events,
        } = self;
        let core = Core {
            launcher,
            fetcher,
            health,
            hooks,
            metrics,
            key,
            ctx,
            killed,
            events: events.clone(),
        };
        tokio::select! {
            () = core.supervise(start, &mut kills) => {}
            () = events.closed() => {}
        }
    }
}

impl<L: ProcessLauncher> Core<L> {
    async fn supervise(
        self,
        start: Start<L::Process>,
        kills: &mut mpsc::UnboundedReceiver<Duration>,
    ) {
        let key = self.key.clone();
        let process = match start {
            Start::Launch(mut spec, uris) => match self.launch(&mut spec, &uris, kills).await {
                Some(p) => p,
                None => return,
            },
            Start::Adopt(p) => {
                hooks::run_recover(&self.hooks, &self.ctx);
                let _ = self.events.send(Event::Running {
                    key: key.clone(),
                    pid: p.pid(),
                });
                p
            }
            Start::Ended(status) => {
                let limitation = hooks::limitation(&self.hooks, &self.ctx);
                hooks::run_poststop(&self.hooks, &self.ctx);
                let killed = self.killed;
                let _ = self.events.send(Event::Exited {
                    key,
                    status,
                    killed,
                    limitation,
                });
                return;
            }
        };
        self.watch(process, kills).await;
    }

    async fn launch(
        &self,
        spec: &mut LaunchSpec,
        uris: &[CommandUri],
        kills: &mut mpsc::UnboundedReceiver<Duration>,
    ) -> Option<L::Process> {
        let key = self.key.clone();
        let began = Instant::now();
        let prestart = hooks::run_prestart(&self.hooks, &self.ctx, spec);
        self.metrics.phase(Phase::Prestart, began.elapsed());
        if let Err(message) = prestart {
            let reason = None;
            let _ = self.events.send(Event::Failed {
                key,
                message,
                reason,
            });
            return None;
        }
        if !uris.is_empty() {
            let Some(fetcher) = self.fetcher.clone() else {
                let message = "this agent cannot fetch URIs".to_string();
                let reason = Some(REASON_FETCHER_FAILED);
                let _ = self.events.send(Event::Failed {
                    key,
                    message,
                    reason,
                });
                return None;
            };
            let began = Instant::now();
            tokio::select! {
                fetched = fetcher.fetch_all(uris, &self.ctx.sandbox) => {
                    self.metrics.phase(Phase::Fetch, began.elapsed());
                    self.metrics.tally(|t| t.fetched(fetched.is_ok()));
                    if let Err(e) = fetched {
                    hooks::run_poststop(&self.hooks, &self.ctx);
                    let (message, reason) = (e.to_string(), Some(REASON_FETCHER_FAILED));
                    let _ = self.events.send(Event::Failed { key, message, reason });
                    return None;
                    }
                },
                _ = kills.recv() => {
                    hooks::run_poststop(&self.hooks, &self.ctx);
                    let _ = self.events.send(Event::KilledBeforeStart { key });
                    return None;
                }
            }
        }
        if kills.try_recv().is_ok() {
            hooks::run_poststop(&self.hooks, &self.ctx);
            let _ = self.events.send(Event::KilledBeforeStart { key });
            return None;
        }
        let began = Instant::now();
        let spawned = self.launcher.spawn(spec).await;
        self.metrics.phase(Phase::Spawn, began.elapsed());
        match spawned {
            Ok(p) => {
                let _ = self.events.send(Event::Running { key, pid: p.pid() });
                Some(p)
            }
            Err(e) => {
                hooks::run_poststop(&self.hooks, &self.ctx);
                let message = format!("Failed to launch command: {e}");
                let reason = None;
                let _ = self.events.send(Event::Failed {
                    key,
                    message,
                    reason,
                });
                None
            }
        }
    }

    async fn watch(self, mut process: L::Process, kills: &mut mpsc::UnboundedReceiver<Duration>) {
        let key = self.key.clone();
        let pgid = process.pid();
        let mut killed = self.killed;
        let mut termed = false;
        let mut escalate_at: Option<Instant> = None;
        let mut kills_open = true;
        let mut limit_watch = hooks::watch(&self.hooks, &self.ctx);
        let mut limitation = None;
        let (checks_tx, mut checks) = mpsc::unbounded_channel();
        let checker = self.health.clone().map(|(hc, exe)| {
            let target = self.target(&hc, pgid, exe);
            tokio::spawn(probe::run(hc, target, checks_tx))
        });
        let status = loop {
            let escalate = async {
                match escalate_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                status = process.wait() => break status.map_err(|e| e.to_string()),
                broken = &mut limit_watch, if limitation.is_none() => {
                    tracing::warn!(task_id = %key.task_id, reason = broken.reason,
                        message = %broken.message, "limit broken, killing the task");
                    limitation = Some(broken);
                    hooks::run_kill(&self.hooks, &self.ctx);
                    self.signal(pgid, Signal::Kill);
                }
                grace = kills.recv(), if kills_open => match grace {
                    Some(grace) => {
                        let at = Instant::now() + grace;
                        if !termed {
                            termed = true;
                            killed = true;
                            tracing::info!(task_id = %key.task_id, ?grace, "sending SIGTERM");
                            self.signal(pgid, Signal::Term);
                        }
                        // A later kill may shorten the grace period, never extend it.
                        escalate_at = Some(escalate_at.map_or(at, |e| e.min(at)));
                    }
                    None => kills_open = false,
                },
                Some(decision) = checks.recv() => {
                    let event = match decision {
                        Decision::Report(healthy) => Event::Health { key: key.clone(), healthy },
                        Decision::Kill => Event::Unhealthy { key: key.clone() },
                    };
                    let _ = self.events.send(event);
                }
                () = escalate => {
                    tracing::info!(task_id = %key.task_id, "grace period over, sending SIGKILL");
                    self.signal(pgid, Signal::Kill);
                    hooks::run_kill(&self.hooks, &self.ctx);
                    escalate_at = None;
                }
            }
        };
        if let Some(c) = checker {
            c.abort();
        }
        // Whatever the leader left behind in its group goes with it. The
        // group id cannot have been reused: members keep it alive, and pids
        // are not recycled this fast.
        self.signal(pgid, Signal::Kill);
        let limitation = limitation.or_else(|| hooks::limitation(&self.hooks, &self.ctx));
        hooks::run_poststop(&self.hooks, &self.ctx);
        let _ = self.events.send(Event::Exited {
            key,
            status,
            killed,
            limitation,
        });
    }

    /// How health checks reach the task whose group leader is `pid`.
    fn target(&self, hc: &HealthCheck, pid: u32, exe: PathBuf) -> Target {
        let iso = &self.ctx.isolation;
        let host = iso
            .network
            .as_ref()
            .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |n| IpAddr::V4(n.ip));
        let contained = iso.namespaces.any() || iso.network.is_some();
        let inside = if iso.namespaces.mount {
            PathBuf::from(SANDBOX_PATH)
        } else {
            self.ctx.sandbox.clone()
        };
        Target {
            host,
            pid,
            enter: contained.then_some((exe, inside)),
            cwd: self.ctx.sandbox.clone(),
            env: probe::check_env(&self.ctx, &hc.probe),
        }
    }

    fn signal(&self, pgid: u32, signal: Signal) {
        if let Err(e) = self.launcher.signal_group(pgid, signal) {
            tracing::warn!(task_id = %self.key.task_id, error = %e, "cannot signal task");
        }
    }
}
