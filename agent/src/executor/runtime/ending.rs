//! Ending tasks: kills (SIGTERM, grace, SIGKILL happen in the supervisor),
//! the supervisor's events, terminal updates and task-group fate sharing.

use keel_api::mesos::TaskState;

use super::{Phase, Runtime};
use crate::executor::checkpoint;
use crate::executor::health;
use crate::executor::launch;
use crate::executor::launcher::ProcessLauncher;
use crate::executor::status;
use crate::executor::supervisor::Event;
use crate::executor::updates::TaskKey;

impl<L: ProcessLauncher> Runtime<L> {
    /// Kills a live task (a no-op for unknown or finished ones). With
    /// `whole_group`, a task of a task group takes its group with it.
    pub(super) fn kill(&mut self, key: &TaskKey, grace_ms: Option<u64>, whole_group: bool) {
        let Some(task) = self.tasks.get_mut(key) else {
            tracing::debug!(task_id = %key.task_id, "kill for an unknown task ignored");
            return;
        };
        if task.phase == Phase::Terminal {
            return;
        }
        let default = self.config.kill_grace_period;
        let grace = match task.spec() {
            Some(spec) => launch::grace_period(grace_ms, spec.info(), default),
            None => default,
        };
        if task.custom {
            self.kill_custom(key, grace);
            return;
        }
        if let Some(kills) = &task.kills {
            let _ = kills.send(grace);
        }
        let first = !std::mem::replace(&mut task.kill_requested, true);
        // A restarted agent must still know the task was meant to die.
        if first
            && let Some(dir) = &task.dir
            && let Err(e) = checkpoint::write_killed(dir, grace.as_millis() as u64)
        {
            tracing::error!(task_id = %key.task_id, error = %e, "cannot checkpoint a kill");
        }
        let announce = first && task.killing_state && task.phase == Phase::Running;
        let group = task.group.clone();
        if announce {
            self.emit(key, TaskState::TASK_KILLING, None, None);
        }
        if let (true, Some(group)) = (whole_group, group) {
            for sibling in self.group_members(&key.framework_id, &group, key) {
                self.kill(&sibling, grace_ms, false);
            }
        }
    }

    /// Live tasks of task group `executor`, other than `except`.
    fn group_members(&self, framework_id: &str, executor: &str, except: &TaskKey) -> Vec<TaskKey> {
        self.tasks
            .iter()
            .filter(|(k, t)| {
                k.framework_id == framework_id
                    && *k != except
                    && t.group.as_deref() == Some(executor)
                    && t.phase != Phase::Terminal
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub(super) fn event(&mut self, event: Event) {
        if let Some(id) = super::custom::executor_of(event.key()) {
            self.custom_process_event(id, event);
            return;
        }
        match event {
            Event::Running { key, pid } => {
                let Some(task) = self.tasks.get_mut(&key) else {
                    return;
                };
                self.book.pid(&key.framework_id, &task.executor_id, pid);
                // An adopted task that already reported RUNNING says nothing.
                if task.phase != Phase::Starting {
                    tracing::info!(task_id = %key.task_id, pid, "task re-attached");
                    return;
                }
                task.phase = Phase::Running;
                let announce_kill = task.kill_requested && task.killing_state;
                tracing::info!(task_id = %key.task_id, pid, "task running");
                self.emit(&key, TaskState::TASK_RUNNING, None, None);
                if announce_kill {
                    self.emit(&key, TaskState::TASK_KILLING, None, None);
                }
            }
            Event::Failed {
                key,
                message,
                reason,
            } => {
                let reason = Some(reason.unwrap_or(status::REASON_COMMAND_EXECUTOR_FAILED));
                self.finish(&key, TaskState::TASK_FAILED, reason, message);
            }
            Event::Health { key, healthy } => {
                let Some(task) = self.tasks.get(&key) else {
                    return;
                };
                if task.phase != Phase::Running {
                    return;
                }
                let state = task
                    .latest
                    .as_ref()
                    .and_then(|s| TaskState::from_name(&s.state))
                    .unwrap_or(TaskState::TASK_RUNNING);
                tracing::info!(task_id = %key.task_id, healthy, "task health changed");
                let reason = Some(health::REASON_TASK_HEALTH_CHECK_STATUS_UPDATED);
                self.emit_health(&key, state, None, reason, Some(healthy));
            }
            Event::Unhealthy { key } => {
                tracing::warn!(task_id = %key.task_id, "health checks failed: killing the task");
                if let Some(task) = self.tasks.get_mut(&key) {
                    task.unhealthy = true;
                }
                self.kill(&key, None, true);
            }
            Event::KilledBeforeStart { key } => {
                let reason = Some(status::REASON_TASK_KILLED_DURING_LAUNCH);
                let message = "Task killed before it was started".to_string();
                self.finish(&key, TaskState::TASK_KILLED, reason, message);
            }
            Event::Exited {
                key,
                status,
                killed,
                limitation,
            } => {
                let (state, reason, message) = match (status, limitation) {
                    (_, Some(l)) if !killed => (TaskState::TASK_FAILED, Some(l.reason), l.message),
                    (status, _) => Self::ended(status, killed),
                };
                self.finish(&key, state, reason, message);
            }
        }
    }

    fn ended(
        status: Result<crate::executor::launcher::ExitStatus, String>,
        killed: bool,
    ) -> (TaskState, Option<&'static str>, String) {
        match status {
            Ok(st) => status::terminal(st, killed),
            Err(e) if killed => (TaskState::TASK_KILLED, None, e),
            Err(e) => (
                TaskState::TASK_FAILED,
                Some(status::REASON_COMMAND_EXECUTOR_FAILED),
                format!("Failed to get exit status for Command: {e}"),
            ),
        }
    }

    /// The task's terminal update; a task group loses the rest of its
    /// tasks when one of them does not finish cleanly (as Mesos' default
    /// executor does).
    fn finish(&mut self, key: &TaskKey, state: TaskState, reason: Option<&str>, message: String) {
        tracing::info!(task_id = %key.task_id, state = state.name(), %message, "task ended");
        self.emit(key, state, Some(message), reason);
        if let Some(container) = self.tasks.get(key).map(|t| t.container_id.clone()) {
            let in_use = self.tasks.iter().any(|(k, t)| {
                k != key && t.container_id == container && t.phase != Phase::Terminal
            });
            if !in_use {
                self.release_address(&container);
            }
            // A task group's container shrinks to what is left of it (its
            // memory is kept; see `Limits::resized_from`).
            self.resize_container(&container);
        }
        let Some(group) = self.tasks.get(key).and_then(|t| t.group.clone()) else {
            return;
        };
        let members = self.group_members(&key.framework_id, &group, key);
        if members.is_empty() {
            self.groups
                .remove(&(key.framework_id.clone(), group.clone()));
            // The master frees the group executor's resources.
            self.send_upstream(keel_api::pb::agent_message::Msg::ExecutorExited(
                keel_api::pb::ExecutorExited {
                    framework_id: key.framework_id.clone(),
                    executor_id: group,
                    status: None,
                },
            ));
        } else if state != TaskState::TASK_FINISHED {
            for sibling in members {
                self.kill(&sibling, None, false);
            }
        }
    }
}
