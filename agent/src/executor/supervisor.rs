//! One task's process from prestart hooks to reaping, as an async task of
//! its own. It reports [`Event`]s to the runtime and takes kill requests
//! (grace periods) on a channel:
//!
//! ```text
//!  prestart hooks --fail--> Failed
//!       | kill already asked --> KilledBeforeStart
//!     spawn --fail--> Failed
//!       v
//!    Running --exit--------------------------------> reap group, poststop, Exited{killed: false}
//!       | kill(grace): SIGTERM group --exit---------> reap group, poststop, Exited{killed: true}
//!       +-- grace over: SIGKILL group --exit-------> (same)
//! ```

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::hooks::{self, TaskContext, TaskHook};
use super::launcher::{ExitStatus, LaunchSpec, Process, ProcessLauncher, Signal};
use super::updates::TaskKey;

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
    },
}

pub struct Supervisor<L> {
    pub launcher: Arc<L>,
    pub hooks: Arc<[Arc<dyn TaskHook>]>,
    pub key: TaskKey,
    pub ctx: TaskContext,
    pub spec: LaunchSpec,
    pub events: mpsc::UnboundedSender<Event>,
}

impl<L: ProcessLauncher> Supervisor<L> {
    pub async fn run(mut self, mut kills: mpsc::UnboundedReceiver<Duration>) {
        let key = self.key.clone();
        if let Err(message) = hooks::run_prestart(&self.hooks, &self.ctx, &mut self.spec) {
            let _ = self.events.send(Event::Failed { key, message });
            return;
        }
        if kills.try_recv().is_ok() {
            hooks::run_poststop(&self.hooks, &self.ctx);
            let _ = self.events.send(Event::KilledBeforeStart { key });
            return;
        }
        let mut process = match self.launcher.spawn(&self.spec) {
            Ok(p) => p,
            Err(e) => {
                hooks::run_poststop(&self.hooks, &self.ctx);
                let message = format!("Failed to launch command: {e}");
                let _ = self.events.send(Event::Failed { key, message });
                return;
            }
        };
        let pgid = process.pid();
        let _ = self.events.send(Event::Running {
            key: key.clone(),
            pid: pgid,
        });

        let mut killed = false;
        let mut escalate_at: Option<Instant> = None;
        let mut kills_open = true;
        let status = loop {
            let escalate = async {
                match escalate_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                status = process.wait() => break status.map_err(|e| e.to_string()),
                grace = kills.recv(), if kills_open => match grace {
                    Some(grace) => {
                        let at = Instant::now() + grace;
                        if !killed {
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
                    escalate_at = None;
                }
            }
        };
        // Whatever the leader left behind in its group goes with it. The
        // group id cannot have been reused: members keep it alive, and pids
        // are not recycled this fast.
        self.signal(pgid, Signal::Kill);
        hooks::run_poststop(&self.hooks, &self.ctx);
        let _ = self.events.send(Event::Exited {
            key,
            status,
            killed,
        });
    }

    fn signal(&self, pgid: u32, signal: Signal) {
        if let Err(e) = self.launcher.signal_group(pgid, signal) {
            tracing::warn!(task_id = %self.key.task_id, error = %e, "cannot signal task");
        }
    }
}
