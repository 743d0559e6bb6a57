//! Custom executors' ends (`docs/design/0014-custom-executors.md`): their
//! processes' events, the end of their tasks when they go, kills, SHUTDOWN
//! and the registration and shutdown deadlines.

use std::time::Duration;

use keel_api::executor::Event;
use keel_api::mesos::TaskState;
use keel_api::pb;
use tokio::time::Instant;

use super::custom::{
    ExecState, REASON_EXECUTOR_REGISTRATION_TIMEOUT, REASON_EXECUTOR_REREGISTRATION_TIMEOUT,
    REASON_EXECUTOR_TERMINATED, Termination, duration_text,
};
use super::{Phase, Runtime};
use crate::executor::checkpoint;
use crate::executor::launcher::{ExitStatus, ProcessLauncher};
use crate::executor::status;
use crate::executor::supervisor::Event as ProcessEvent;
use crate::executor::updates::TaskKey;

impl<L: ProcessLauncher> Runtime<L> {
    /// An event of an executor's process.
    pub(super) fn custom_process_event(&mut self, id: (String, String), event: ProcessEvent) {
        match event {
            ProcessEvent::Running { pid, .. } => {
                // Its pid is the snapshot's (`book`), for state and statuses.
                if self.custom.contains_key(&id) {
                    tracing::info!(framework_id = %id.0, executor_id = %id.1, pid, "executor running");
                    self.book.pid(&id.0, &id.1, pid);
                }
            }
            ProcessEvent::Health { .. } | ProcessEvent::Unhealthy { .. } => {}
            ProcessEvent::Failed {
                message, reason, ..
            } => {
                let end = Termination {
                    state: TaskState::TASK_FAILED,
                    reason: reason.unwrap_or(status::REASON_CONTAINER_LAUNCH_FAILED),
                    message: format!("Failed to launch executor: {message}"),
                };
                self.executor_ended(&id, None, end);
            }
            ProcessEvent::KilledBeforeStart { .. } => {
                let end = Termination {
                    state: TaskState::TASK_KILLED,
                    reason: REASON_EXECUTOR_TERMINATED,
                    message: "Executor killed before it started".into(),
                };
                self.executor_ended(&id, None, end);
            }
            ProcessEvent::Exited {
                status: exit,
                limitation,
                ..
            } => {
                let code = exit.as_ref().ok().map(|s| wait_status(*s));
                let end = match (limitation, &exit) {
                    (Some(l), _) => Termination {
                        state: TaskState::TASK_FAILED,
                        reason: l.reason,
                        message: l.message,
                    },
                    (None, Ok(s)) => Termination {
                        state: TaskState::TASK_FAILED,
                        reason: REASON_EXECUTOR_TERMINATED,
                        message: format!("Executor terminated: {}", describe(*s)),
                    },
                    (None, Err(e)) => Termination {
                        state: TaskState::TASK_FAILED,
                        reason: REASON_EXECUTOR_TERMINATED,
                        message: format!("Executor terminated: {e}"),
                    },
                };
                self.executor_ended(&id, code, end);
            }
        }
    }

    /// The executor's process is gone: its live tasks end (`end`, unless a
    /// termination was decided earlier; TASK_KILLED for tasks asked to die),
    /// and the master hears that its resources are free.
    fn executor_ended(&mut self, id: &(String, String), code: Option<i32>, end: Termination) {
        let Some(mut e) = self.custom.remove(id) else {
            return;
        };
        let end = e.termination.take().unwrap_or(end);
        tracing::info!(framework_id = %id.0, executor_id = %id.1, reason = end.reason,
            message = %end.message, "executor ended");
        e.stream = None;
        let container = e.checkpoint.container_id.clone();
        let live: Vec<TaskKey> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.custom && t.container_id == container && t.phase != Phase::Terminal)
            .map(|(k, _)| k.clone())
            .collect();
        for key in live {
            let killed = self.tasks.get(&key).is_some_and(|t| t.kill_requested);
            let state = if killed {
                TaskState::TASK_KILLED
            } else {
                end.state
            };
            let mut st = status::update(
                &key.task_id,
                &id.1,
                state,
                Some(end.message.clone()),
                Some(end.reason),
            );
            st.source = status::SOURCE_AGENT.to_string();
            self.emit_status(&key, st);
        }
        self.release_address(&container);
        self.resize_container(&container);
        if let Ok(dir) = self.meta.container_dir(&e.checkpoint)
            && let Err(err) = checkpoint::remove_executor(&dir)
        {
            tracing::warn!(executor_id = %id.1, error = %err, "cannot remove an executor's checkpoint");
        }
        self.send_upstream(pb::agent_message::Msg::ExecutorExited(pb::ExecutorExited {
            framework_id: id.0.clone(),
            executor_id: id.1.clone(),
            // Mesos' -1 for an unknown status (pymesos reads it).
            status: Some(code.unwrap_or(-1)),
        }));
    }

    pub(super) fn send_upstream(&mut self, msg: pb::agent_message::Msg) {
        let sent = self.upstream.as_ref().is_some_and(|s| s.send(msg).is_ok());
        if !sent {
            self.upstream = None;
            tracing::debug!("no master stream: executor message dropped");
        }
    }

    /// A kill of a task run by a custom executor: dropped from the queue
    /// (TASK_KILLED) before delivery, KILL to the executor after.
    pub(super) fn kill_custom(&mut self, key: &TaskKey, grace: Duration) {
        let Some(task) = self.tasks.get_mut(key) else {
            return;
        };
        task.kill_requested = true;
        if let Some(dir) = &task.dir
            && let Err(e) = checkpoint::write_killed(dir, grace.as_millis() as u64)
        {
            tracing::error!(task_id = %key.task_id, error = %e, "cannot checkpoint a kill");
        }
        let id = (key.framework_id.clone(), task.executor_id.clone());
        let Some(e) = self.custom.get_mut(&id) else {
            return;
        };
        if let Some(at) = e.queued.iter().position(|k| k == key) {
            e.queued.remove(at);
            let reason = Some(status::REASON_TASK_KILLED_DURING_LAUNCH);
            let message = Some("Killed before delivery to the executor".to_string());
            self.emit(key, TaskState::TASK_KILLED, message, reason);
            return;
        }
        let policy = keel_api::mesos::KillPolicy {
            grace_period: Some(keel_api::mesos::Nanos::from_duration(grace)),
        };
        let event = Event::Kill {
            task_id: key.task_id.clone(),
            kill_policy: Some(policy),
        };
        if !e.send(event) {
            tracing::info!(task_id = %key.task_id, "executor not connected: KILL sent when it subscribes");
        }
    }

    /// SHUTDOWN of one executor: the event now, its process killed when the
    /// grace period is over (at once when it is not connected).
    pub(super) fn shutdown_executor(&mut self, fw: &str, ex: &str) {
        let grace = self.config.executors.shutdown_grace_period;
        let live: Vec<TaskKey> = self
            .tasks
            .iter()
            .filter(|(k, t)| k.framework_id == fw && t.custom && t.executor_id == ex)
            .map(|(k, _)| k.clone())
            .collect();
        for key in live {
            if let Some(t) = self.tasks.get_mut(&key) {
                t.kill_requested = true;
            }
        }
        let Some(e) = self.custom.get_mut(&(fw.to_string(), ex.to_string())) else {
            return;
        };
        if e.state == ExecState::Terminating {
            return;
        }
        tracing::info!(framework_id = %fw, executor_id = %ex, "shutting down executor");
        e.state = ExecState::Terminating;
        e.deadline = None;
        let grace = e.info.shutdown_grace_period.map_or(grace, |n| n.duration());
        if e.send(Event::Shutdown) {
            e.shutdown_at = Some(Instant::now() + grace);
        } else {
            let _ = e.kills.send(Duration::ZERO);
        }
    }

    pub(super) fn shutdown_framework_executors(&mut self, fw: &str) {
        let ids: Vec<String> = self
            .custom
            .keys()
            .filter(|(f, _)| f == fw)
            .map(|(_, e)| e.clone())
            .collect();
        for ex in ids {
            self.shutdown_executor(fw, &ex);
        }
    }

    /// The earliest registration deadline or end of a shutdown grace.
    pub(super) fn custom_deadline(&self) -> Option<Instant> {
        self.custom
            .values()
            .flat_map(|e| [e.deadline, e.shutdown_at])
            .flatten()
            .min()
    }

    /// Executors that did not (re-)subscribe in time are killed; a
    /// shutdown's grace period that is over kills the process.
    pub(super) fn custom_tick(&mut self, now: Instant) {
        let cfg = self.config.executors.clone();
        for ((fw, ex), e) in self.custom.iter_mut() {
            if e.shutdown_at.is_some_and(|at| at <= now) {
                e.shutdown_at = None;
                let _ = e.kills.send(Duration::ZERO);
            }
            if e.state != ExecState::Registering || e.deadline.is_none_or(|at| at > now) {
                continue;
            }
            e.deadline = None;
            e.state = ExecState::Terminating;
            e.termination = Some(if e.recovered {
                let lost = e.framework.has_capability("PARTITION_AWARE");
                Termination {
                    state: if lost {
                        TaskState::TASK_GONE
                    } else {
                        TaskState::TASK_LOST
                    },
                    reason: REASON_EXECUTOR_REREGISTRATION_TIMEOUT,
                    message: format!(
                        "Executor did not reregister within {}",
                        duration_text(cfg.reregistration_timeout)
                    ),
                }
            } else {
                Termination {
                    state: TaskState::TASK_FAILED,
                    reason: REASON_EXECUTOR_REGISTRATION_TIMEOUT,
                    message: format!(
                        "Executor did not register within {}",
                        duration_text(cfg.registration_timeout)
                    ),
                }
            });
            tracing::warn!(framework_id = %fw, executor_id = %ex, "executor did not subscribe in time: killing it");
            let _ = e.kills.send(Duration::ZERO);
        }
    }
}

/// The wait status Mesos reports in `FAILURE.status`.
fn wait_status(s: ExitStatus) -> i32 {
    match s {
        ExitStatus::Exited(code) => (code & 0xff) << 8,
        ExitStatus::Signaled(sig) => sig & 0x7f,
    }
}

fn describe(s: ExitStatus) -> String {
    match s {
        ExitStatus::Exited(code) => format!("exited with status {code}"),
        ExitStatus::Signaled(sig) => format!("terminated by signal {sig}"),
    }
}
