//! Agent restart: every checkpointed task comes back before the first
//! registration, so `Register.tasks` reports it.
//!
//! ```text
//!  terminal update acknowledged ------------------------> checkpoint removed
//!  terminal update not acknowledged --------------------> queued again (same uuid)
//!  live: its supervisor (shim) still runs --------------> re-attached (Start::Adopt)
//!        the task ended meanwhile ----------------------> TASK_FINISHED/FAILED/KILLED
//!        its shim is gone, or it was never started -----> TASK_FAILED (TASK_KILLED if
//!                                                          a kill was recorded)
//!  every unacknowledged update is queued again and resent on the next attach
//! ```

use std::time::Duration;

use keel_api::mesos::TaskState;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Phase, Runtime, Task, remove_checkpoint};
use crate::executor::checkpoint::log::UpdateLog;
use crate::executor::checkpoint::recover::{self, RecoveredContainer, RecoveredTask};
use crate::executor::checkpoint::{self};
use crate::executor::health::HealthCheck;
use crate::executor::launcher::{Adopted, ProcessLauncher};
use crate::executor::status;
use crate::executor::supervisor::{Start, Supervisor};
use crate::executor::task::TaskDescription;
use crate::executor::updates::TaskKey;

/// What recovery found, for the log line and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecoverySummary {
    pub adopted: usize,
    pub ended: usize,
    pub pending_updates: usize,
    pub forgotten: usize,
}

impl<L: ProcessLauncher> Runtime<L> {
    pub(super) async fn recover(&mut self) {
        let started = std::time::Instant::now();
        let (containers, problems) = recover::scan(&self.meta);
        for p in &problems {
            tracing::warn!(problem = %p, "skipping a damaged checkpoint");
        }
        let mut summary = RecoverySummary::default();
        for c in containers {
            if c.checkpoint.custom.is_some() {
                self.recover_custom(&c).await;
            }
            let tasks = c.tasks.clone();
            for t in tasks {
                self.recover_task(&c, t, &mut summary).await;
            }
        }
        // Adopted task groups: their containers' current limits, so later
        // launches and ends resize them from there.
        let groups: Vec<String> = self.group_executors.keys().cloned().collect();
        for container in groups {
            self.resize_container(&container);
        }
        if summary != RecoverySummary::default() {
            tracing::info!(adopted = summary.adopted, ended = summary.ended,
                pending_updates = summary.pending_updates, forgotten = summary.forgotten,
                took = ?started.elapsed(), "recovered tasks from checkpoints");
        }
    }

    async fn recover_task(
        &mut self,
        c: &RecoveredContainer,
        mut t: RecoveredTask,
        summary: &mut RecoverySummary,
    ) {
        let cp = &c.checkpoint;
        let key = TaskKey::new(&cp.framework_id, &t.task_id);
        if t.replay.done() || self.tasks.contains_key(&key) {
            summary.forgotten += 1;
            remove_checkpoint(&t.dir);
            return;
        }
        let log_path = t.dir.join(checkpoint::UPDATES_FILE);
        let (log, replay) = match UpdateLog::open(&log_path) {
            Ok(opened) => opened,
            Err(e) => {
                tracing::error!(task_id = %key.task_id, error = %e, "cannot reopen an update log");
                return;
            }
        };
        // Read once, by the checkpoint scan; a missing `task.info` is
        // reported as an empty one, as before.
        let description = t
            .description
            .take()
            .unwrap_or_else(|| TaskDescription::Unreadable(String::new()));
        let phase = match replay.latest_state() {
            None | Some(TaskState::TASK_STAGING | TaskState::TASK_STARTING) => Phase::Starting,
            Some(s) if s.is_terminal() => Phase::Terminal,
            Some(_) => Phase::Running,
        };
        let (kills, kill_rx) = mpsc::unbounded_channel();
        self.config
            .metrics
            .tally(|m| m.recovered(&key.framework_id, &cp.executor_id, replay.latest_state()));
        self.tasks.insert(
            key.clone(),
            Task {
                description,
                executor_id: cp.executor_id.clone(),
                container_id: cp.container_id.clone(),
                group: cp.group.clone(),
                killing_state: cp.killing_state,
                phase,
                latest: replay.latest().cloned(),
                kills: (phase != Phase::Terminal).then_some(kills.clone()),
                kill_requested: t.killed.is_some(),
                unhealthy: false,
                custom: cp.custom.is_some(),
                dir: Some(t.dir.clone()),
                log: Some(log),
            },
        );
        for update in replay.pending() {
            summary.pending_updates += 1;
            let out = self.updates.enqueue(update.clone(), Instant::now());
            self.apply(out);
        }
        if phase == Phase::Terminal {
            return;
        }
        // Its executor reports its states (`recover_custom`).
        if cp.custom.is_some() {
            return;
        }
        if let (Some(net), Some(ipam)) = (&cp.network, self.ipam.as_mut()) {
            ipam.reserve(net.ip);
            self.container_ips.insert(cp.container_id.clone(), net.ip);
        }
        if let Some(group) = &cp.group {
            self.groups
                .entry((cp.framework_id.clone(), group.clone()))
                .or_insert_with(|| cp.container_id.clone());
            self.group_executors
                .entry(cp.container_id.clone())
                .or_insert_with(|| super::launching::resources_of(&cp.executor_resources));
        }
        let ctx = match self.context(cp, &t.task_id, None) {
            Ok(ctx) => ctx,
            Err(e) => {
                let reason = Some(status::REASON_COMMAND_EXECUTOR_FAILED);
                self.emit(&key, TaskState::TASK_FAILED, Some(e.to_string()), reason);
                return;
            }
        };
        let start = match self.launcher.adopt(&t.process_dir()).await {
            Adopted::Running(p) => {
                summary.adopted += 1;
                tracing::info!(task_id = %key.task_id, "re-attaching to a running task");
                Start::Adopt(p)
            }
            Adopted::Exited(st) => Start::Ended(Ok(st)),
            Adopted::Gone(reason) => Start::Ended(Err(reason)),
            Adopted::NotStarted => Start::Ended(Err(
                "the agent restarted before the task was started".to_string(),
            )),
            Adopted::LaunchFailed(message) => {
                summary.ended += 1;
                let reason = Some(status::REASON_COMMAND_EXECUTOR_FAILED);
                let message = format!("Failed to launch command: {message}");
                self.emit(&key, TaskState::TASK_FAILED, Some(message), reason);
                return;
            }
        };
        if matches!(start, Start::Ended(_)) {
            summary.ended += 1;
        }
        if let Some(ms) = t.killed {
            // The kill goes on where the last agent left it.
            let _ = kills.send(Duration::from_millis(ms));
        }
        let health = self
            .tasks
            .get(&key)
            .and_then(Task::spec)
            .and_then(|spec| spec.health_check())
            .and_then(|h| HealthCheck::from_mesos(h).ok())
            .map(|h| (h, self.config.helper.clone()));
        let supervisor = Supervisor {
            launcher: self.launcher.clone(),
            fetcher: self.fetcher.clone(),
            health,
            hooks: self.hooks.clone(),
            metrics: self.config.metrics.clone(),
            key,
            ctx,
            start,
            killed: t.killed.is_some(),
            events: self.events.clone(),
        };
        tokio::spawn(supervisor.run(kill_rx));
    }
}
