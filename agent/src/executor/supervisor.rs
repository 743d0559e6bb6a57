//! One task's process from prestart hooks to reaping, as an async task of
//! its own. It reports [`Event`]s to the runtime and takes kill requests
//! (grace periods) on a channel:
//!
//! ```text
//!  Launch: prestart hooks --fail--> Failed
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

use super::hooks::{self, TaskContext, TaskHook};
use super::launcher::{ExitStatus, LaunchSpec, Process, ProcessLauncher, Signal};
use super::updates::TaskKey;
use crate::isolation::cgroups::Limitation;

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Running {
        key: TaskKey,
        pid: u32,
    },
    /// Never started: a hook or the spawn failed.
    Failed {
        key: TaskKey,
        message: String,
    },
    KilledBeforeStart {
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

/// Where the supervisor picks the task up.
pub enum Start<P> {
    /// A new task: run the prestart hooks and spawn it.
    Launch(LaunchSpec),
    /// A task still running after an agent restart.
    Adopt(P),
    /// A task that ended while the agent was down (`Err`: how is unknown).
    Ended(Result<ExitStatus, String>),
}

pub struct Supervisor<L: ProcessLauncher> {
    pub launcher: Arc<L>,
    pub hooks: Arc<[Arc<dyn TaskHook>]>,
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
    hooks: Arc<[Arc<dyn TaskHook>]>,
    key: TaskKey,
    ctx: TaskContext,
    killed: bool,
    events: mpsc::UnboundedSender<Event>,
}

impl<L: ProcessLauncher> Supervisor<L> {
    pub async fn run(self, mut kills: mpsc::UnboundedReceiver<Duration>) {
        let Supervisor {
            launcher,
            hooks,
            key,
            ctx,
            start,
            killed,
            events,
        } = self;
        let core = Core {
            launcher,
            hooks,
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
            Start::Launch(mut spec) => match self.launch(&mut spec, kills).await {
                Some(p) => p,
                None => return,
            },
            Start::Adopt(p) => {
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
        kills: &mut mpsc::UnboundedReceiver<Duration>,
    ) -> Option<L::Process> {
        let key = self.key.clone();
        if let Err(message) = hooks::run_prestart(&self.hooks, &self.ctx, spec) {
            let _ = self.events.send(Event::Failed { key, message });
            return None;
        }
        if kills.try_recv().is_ok() {
            hooks::run_poststop(&self.hooks, &self.ctx);
            let _ = self.events.send(Event::KilledBeforeStart { key });
            return None;
        }
        match self.launcher.spawn(spec).await {
            Ok(p) => {
                let _ = self.events.send(Event::Running { key, pid: p.pid() });
                Some(p)
            }
            Err(e) => {
                hooks::run_poststop(&self.hooks, &self.ctx);
                let message = format!("Failed to launch command: {e}");
                let _ = self.events.send(Event::Failed { key, message });
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
                () = escalate => {
                    tracing::info!(task_id = %key.task_id, "grace period over, sending SIGKILL");
                    self.signal(pgid, Signal::Kill);
                    hooks::run_kill(&self.hooks, &self.ctx);
                    escalate_at = None;
                }
            }
        };
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

    fn signal(&self, pgid: u32, signal: Signal) {
        if let Err(e) = self.launcher.signal_group(pgid, signal) {
            tracing::warn!(task_id = %self.key.task_id, error = %e, "cannot signal task");
        }
    }
}
