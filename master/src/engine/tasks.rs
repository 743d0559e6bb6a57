//! Tasks: the task table, status updates from agents and their
//! acknowledgement order, KILL, RECONCILE, and what agent loss, agent
//! re-registration and framework removal do to tasks. ACCEPT, which
//! creates them, is in `accept.rs`.
//!
//! A task only ever changes through updates from the agent it was placed
//! on (or that reported it), and a terminal state is final.

use std::collections::BTreeSet;

use keel_api::mesos::{Id, KillPolicy, TaskInfo, TaskState, TaskStatus};
use keel_api::resources::Resources;
use keel_api::scheduler::Event;

use super::agents::AgentUpdate;
use super::{Effect, Engine, Now, ToAgent};

/// Status history kept per task.
const STATUSES_KEPT: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub framework_id: String,
    pub task_id: String,
    pub agent_id: String,
    pub executor_id: Option<String>,
    pub name: String,
    /// The TaskInfo as sent to the agent.
    pub info: TaskInfo,
    pub resources: Resources,
    pub role: String,
    pub state: TaskState,
    pub statuses: Vec<TaskStatus>,
    /// The last update forwarded and not yet acknowledged.
    pub pending_ack: Option<PendingAck>,
    /// Persistent volumes the task uses, as (role, id).
    pub volumes: Vec<(String, String)>,
    /// A KILL asked for and not yet answered by a terminal state, with its
    /// grace period: sent again whenever the agent re-registers, so that a
    /// kill its session could not take is not lost.
    pub kill: Option<Option<u64>>,
}

/// An update forwarded to the framework and not yet acknowledged: the
/// task completes once a terminal one is.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingAck {
    pub uuid: Vec<u8>,
    pub state: TaskState,
}

/// A copy for the operator views.
pub type TaskView = TaskRecord;

pub(super) use super::task_table::{Key, TaskTable, key};

/// A status the master itself generates: no uuid, nothing to acknowledge.
pub(super) fn master_status(
    task_id: &str,
    agent_id: Option<&str>,
    state: TaskState,
    reason: &str,
    message: &str,
    now: Now,
) -> TaskStatus {
    TaskStatus {
        message: Some(message.to_string()),
        source: Some("SOURCE_MASTER".into()),
        reason: Some(reason.to_string()),
        agent_id: agent_id.map(Id::new),
        timestamp: Some(now.unix),
        ..TaskStatus::new(task_id, state)
    }
}

/// Appends `status` to a task's history; a repeat of the last state (a
/// re-sent update) replaces it, as Mesos does.
pub(super) fn record_status(t: &mut TaskRecord, status: TaskStatus) {
    match t.statuses.last_mut() {
        Some(last) if last.state == status.state => *last = status,
        _ => t.statuses.push(status),
    }
    if t.statuses.len() > STATUSES_KEPT {
        t.statuses.remove(0);
    }
}

impl Engine {
    pub(super) fn partition_aware(&self, framework_id: &str) -> bool {
        self.frameworks
            .get(framework_id)
            .is_some_and(|f| f.partition_aware())
    }

    /// An UPDATE to the framework.
    pub(super) fn notify(&mut self, framework_id: &str, status: TaskStatus) {
        self.send_framework(framework_id, Event::Update(status));
    }

    /// Moves a task to `completed` (terminal and acknowledged, or its
    /// framework is gone).
    pub(super) fn complete(&mut self, k: &Key) {
        self.metering.forget(k);
        self.tasks.complete(k);
    }

    /// Applies a state change; frees the resources when it becomes
    /// terminal (`recover`: the allocator still holds the agent).
    pub(super) fn transition(&mut self, k: &Key, status: TaskStatus, recover: bool, now: Now) {
        let Some(t) = self.tasks.get_mut(k) else {
            return;
        };
        let was_terminal = t.state.is_terminal();
        t.state = status.state;
        if !was_terminal && t.state.is_terminal() {
            self.metering.counters.task_ended(t.state);
        }
        self.metering.task_state(k, t.state, now.instant);
        let observed = self.observed.then(|| status.clone());
        record_status(t, status);
        if let Some(status) = observed {
            self.observe_task_status(k, &status);
        }
        let Some(t) = self.tasks.get(k) else {
            return;
        };
        if !was_terminal && t.state.is_terminal() && recover {
            let (fw, agent, role, res) = (
                t.framework_id.clone(),
                t.agent_id.clone(),
                t.role.clone(),
                t.resources.clone(),
            );
            self.allocator
                .recover(&fw, &agent, &role, &res, None, now.unix);
            self.allocate_soon();
        }
    }

    /// A status update from `agent_id`. Only tasks the master placed on
    /// that agent (or it reported) change, and never out of a terminal
    /// state; anything else is acknowledged to the agent and dropped, so
    /// that it stops re-sending.
    ///
    /// An agent re-sends its unacknowledged updates in order, so after a
    /// failover its report may already say a task finished while the
    /// TASK_RUNNING before it is still being re-sent. Such an update is
    /// forwarded (as Mesos does) without changing the task's state, so
    /// that the framework sees every state in order. (A terminal state the
    /// master decides itself, lost, dropped or killed with its framework,
    /// completes the task at once, so no agent can contradict it.)
    pub fn status_update(&mut self, agent_id: &str, update: AgentUpdate, now: Now) {
        let fw = update.framework_id.clone();
        if !self.frameworks.contains_key(&fw) {
            // The framework is gone; its tasks must go too.
            self.send_agent(agent_id, ToAgent::ShutdownFramework { framework_id: fw });
            return;
        }
        let task_id = update.status.task_id.value.clone();
        let k = key(&fw, &task_id);
        let (drop_reason, stale) = match self.tasks.get(&k) {
            None => (Some("the master does not know the task"), false),
            Some(t) if t.agent_id != agent_id => (Some("the task is on another agent"), false),
            Some(t) if t.state.is_terminal() && t.state != update.status.state => (None, true),
            Some(_) => (None, false),
        };
        if let Some(reason) = drop_reason {
            self.metering.counters.invalid_status_updates += 1;
            tracing::warn!(%agent_id, framework_id = %fw, %task_id, state = update.status.state.name(), reason, "status update dropped");
            if !update.uuid.is_empty() {
                self.send_agent(
                    agent_id,
                    ToAgent::Acknowledge {
                        framework_id: fw,
                        task_id,
                        uuid: update.uuid,
                    },
                );
            }
            return;
        }
        self.metering.counters.valid_status_updates += 1;
        let mut status = update.status;
        status.agent_id = Some(Id::new(agent_id));
        if stale {
            tracing::debug!(%agent_id, framework_id = %fw, %task_id, state = status.state.name(), "earlier update of a task already ended forwarded; its state stays");
        } else {
            self.transition(&k, status.clone(), true, now);
        }
        if let Some(t) = self.tasks.get_mut(&k) {
            t.pending_ack = (!update.uuid.is_empty()).then_some(PendingAck {
                uuid: update.uuid,
                state: status.state,
            });
        }
        self.notify(&fw, status);
    }

    /// ACKNOWLEDGE: relayed to the agent; a terminal, acknowledged task
    /// completes.
    pub fn acknowledge(
        &mut self,
        framework_id: &str,
        agent_id: &str,
        task_id: &str,
        uuid: Vec<u8>,
    ) {
        let k = key(framework_id, task_id);
        if let Some(t) = self.tasks.get_mut(&k)
            && let Some(acked) = t
                .pending_ack
                .take_if(|p| p.uuid.as_slice() == uuid.as_slice())
            && acked.state.is_terminal()
            && t.state.is_terminal()
        {
            self.complete(&k);
        }
        self.send_agent(
            agent_id,
            ToAgent::Acknowledge {
                framework_id: framework_id.to_string(),
                task_id: task_id.to_string(),
                uuid,
            },
        );
    }

    /// KILL. An unknown task is answered with TASK_LOST (TASK_UNKNOWN for
    /// PARTITION_AWARE frameworks).
    pub fn kill(
        &mut self,
        framework_id: &str,
        task_id: &str,
        kill_policy: Option<KillPolicy>,
        now: Now,
    ) {
        let k = key(framework_id, task_id);
        let Some(agent) = self
            .tasks
            .get(&k)
            .filter(|t| !t.state.is_terminal())
            .map(|t| t.agent_id.clone())
        else {
            let state = if self.partition_aware(framework_id) {
                TaskState::TASK_UNKNOWN
            } else {
                TaskState::TASK_LOST
            };
            let status = master_status(
                task_id,
                None,
                state,
                "REASON_TASK_UNKNOWN",
                "Attempted to kill an unknown task",
                now,
            );
            self.notify(framework_id, status);
            return;
        };
        let grace_period_ms = kill_policy
            .and_then(|p| p.grace_period)
            .map(|g| (g.nanoseconds.max(0) / 1_000_000) as u64);
        if let Some(t) = self.tasks.get_mut(&k) {
            t.kill = Some(grace_period_ms);
        }
        let sent = self.send_agent(
            &agent,
            ToAgent::Kill {
                framework_id: framework_id.to_string(),
                task_id: task_id.to_string(),
                grace_period_ms,
            },
        );
        if !sent {
            tracing::info!(%framework_id, %task_id, agent_id = %agent, "kill not sent: agent is not connected; sent when it re-registers");
        }
    }

    /// Sends the agent's tasks' outstanding kills again (it re-registered).
    pub(super) fn resend_kills(&mut self, agent_id: &str) {
        let kills: Vec<(String, String, Option<u64>)> = self
            .tasks
            .on_agent(agent_id)
            .filter(|t| !t.state.is_terminal())
            .filter_map(|t| Some((t.framework_id.clone(), t.task_id.clone(), t.kill?)))
            .collect();
        for (framework_id, task_id, grace_period_ms) in kills {
            let kill = ToAgent::Kill {
                framework_id,
                task_id,
                grace_period_ms,
            };
            self.send_agent(agent_id, kill);
        }
    }

    /// SHUTDOWN of an executor: a custom executor is shut down by its
    /// agent (its tasks end with it); otherwise its tasks are killed.
    pub fn shutdown_executor(&mut self, framework_id: &str, executor_id: &str, now: Now) {
        let custom = self.executors().any(|r| {
            r.framework_id == framework_id && r.info.executor_id.value == executor_id && r.custom()
        });
        if custom {
            self.shutdown_custom_executors(framework_id, executor_id);
            return;
        }
        let mut ids: Vec<String> = self
            .tasks
            .values()
            .filter(|t| {
                t.framework_id == framework_id && t.executor_id.as_deref() == Some(executor_id)
            })
            .map(|t| t.task_id.clone())
            .collect();
        ids.sort();
        for id in ids {
            self.kill(framework_id, &id, None, now);
        }
    }

    /// Live tasks (sorted) and completed ones (oldest first).
    pub fn tasks(&self) -> (Vec<TaskView>, Vec<TaskView>) {
        let mut live: Vec<TaskView> = self.tasks.values().cloned().collect();
        live.sort_by(|a, b| (&a.framework_id, &a.task_id).cmp(&(&b.framework_id, &b.task_id)));
        (live, self.tasks.completed().cloned().collect())
    }
}

pub(super) fn volume_in_use(e: &Engine, agent_id: &str, role: &str, id: &str) -> bool {
    e.tasks
        .on_agent(agent_id)
        .any(|t| !t.state.is_terminal() && t.volumes.iter().any(|(r, i)| r == role && i == id))
}

pub(super) fn used_on_agent(e: &Engine, agent_id: &str) -> Vec<(String, String, Resources)> {
    let mut used: Vec<_> = e
        .tasks
        .on_agent(agent_id)
        .filter(|t| !t.state.is_terminal())
        .map(|t| (t.framework_id.clone(), t.role.clone(), t.resources.clone()))
        .collect();
    used.extend(e.executors_used_on(agent_id));
    used.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    used
}

pub(super) fn executor_ids_on(e: &Engine, framework_id: &str, agent_id: &str) -> Vec<String> {
    let mut ids: BTreeSet<String> = e
        .tasks
        .on_agent(agent_id)
        .filter(|t| t.framework_id == framework_id && !t.state.is_terminal())
        .filter_map(|t| t.executor_id.clone())
        .collect();
    ids.extend(e.executor_ids(framework_id, agent_id));
    ids.into_iter().collect()
}

/// A task whose launch could not be sent: TASK_DROPPED (TASK_LOST for
/// frameworks that are not PARTITION_AWARE), its resources back.
pub(super) fn launch_undeliverable(e: &mut Engine, framework_id: &str, task_id: &str, now: Now) {
    let k = key(framework_id, task_id);
    let Some(t) = e.tasks.get(&k) else {
        return;
    };
    if t.state != TaskState::TASK_STAGING {
        return;
    }
    let state = if e.partition_aware(framework_id) {
        TaskState::TASK_DROPPED
    } else {
        TaskState::TASK_LOST
    };
    let status = master_status(
        task_id,
        Some(&t.agent_id.clone()),
        state,
        "REASON_AGENT_DISCONNECTED",
        "The launch could not be sent to the agent",
        now,
    );
    e.transition(&k, status.clone(), true, now);
    e.notify(framework_id, status);
    e.complete(&k);
}

impl Engine {
    /// An event on the framework's current stream, if it has one.
    pub(super) fn send_framework(&mut self, framework_id: &str, event: Event) -> bool {
        let Some(stream) = self
            .frameworks
            .get(framework_id)
            .and_then(|f| f.stream.clone())
        else {
            return false;
        };
        self.emit(Effect::ToFramework {
            framework_id: framework_id.to_string(),
            stream,
            event,
        });
        true
    }
}
