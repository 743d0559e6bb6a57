//! Tasks: the task table, status updates from agents, acknowledgements,
//! KILL, RECONCILE, and what agent loss, agent re-registration and framework
//! removal do to tasks. ACCEPT, which creates them, is in `accept.rs`.

use std::collections::{HashMap, VecDeque};

use keel_api::mesos::{self, Id, KillPolicy, TaskInfo, TaskState, TaskStatus};
use keel_api::pb::{self, master_message::Msg};
use keel_api::resources::Resources;
use serde_json::Value as Json;

use super::frameworks::send_event;
use super::{Inner, Master, unix_now};
use crate::scheduler::events;

/// Completed tasks remembered for the operator views.
const COMPLETED_KEPT: usize = 1000;
/// Status history kept per task.
const STATUSES_KEPT: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub framework_id: String,
    pub task_id: String,
    pub agent_id: String,
    pub executor_id: Option<String>,
    pub name: String,
    /// The TaskInfo JSON as sent to the agent.
    pub info: Json,
    pub resources: Resources,
    pub role: String,
    pub state: TaskState,
    pub statuses: Vec<TaskStatus>,
    /// The uuid of the last update forwarded and not yet acknowledged.
    pub pending_ack: Option<Vec<u8>>,
    /// Persistent volumes the task uses, as (role, id).
    pub volumes: Vec<(String, String)>,
}

/// A copy for the operator views.
pub type TaskView = TaskRecord;

#[derive(Default)]
pub(crate) struct TaskTable {
    pub(super) live: HashMap<(String, String), TaskRecord>,
    completed: VecDeque<TaskRecord>,
}

pub(super) fn key(fw: &str, task: &str) -> (String, String) {
    (fw.to_string(), task.to_string())
}

/// A status the master itself generates: no uuid, nothing to acknowledge.
pub(super) fn master_status(
    task_id: &str,
    agent_id: Option<&str>,
    state: TaskState,
    reason: &str,
    message: &str,
) -> TaskStatus {
    TaskStatus {
        task_id: Id::new(task_id),
        state,
        message: Some(message.to_string()),
        source: Some("SOURCE_MASTER".into()),
        reason: Some(reason.to_string()),
        data: None,
        agent_id: agent_id.map(Id::new),
        executor_id: None,
        timestamp: Some(unix_now()),
        uuid: None,
        healthy: None,
        unreachable_time: None,
    }
}

pub(super) fn partition_aware(inner: &Inner, framework_id: &str) -> bool {
    inner
        .frameworks
        .get(framework_id)
        .is_some_and(|f| f.partition_aware())
}

pub(super) fn notify(inner: &mut Inner, framework_id: &str, status: &TaskStatus) {
    send_event(inner, framework_id, &events::update(status));
}

/// Moves a task to `completed` (terminal and acknowledged, or its framework is gone).
fn complete(inner: &mut Inner, k: &(String, String)) {
    if let Some(t) = inner.tasks.live.remove(k) {
        inner.tasks.completed.push_back(t);
        while inner.tasks.completed.len() > COMPLETED_KEPT {
            inner.tasks.completed.pop_front();
        }
    }
}

/// Applies a state change; frees the resources when it becomes terminal.
fn transition(inner: &mut Inner, k: &(String, String), status: &TaskStatus) {
    let Some(t) = inner.tasks.live.get_mut(k) else {
        return;
    };
    let was_terminal = t.state.is_terminal();
    t.state = status.state;
    t.statuses.push(status.clone());
    if t.statuses.len() > STATUSES_KEPT {
        t.statuses.remove(0);
    }
    if !was_terminal && status.state.is_terminal() {
        let (fw, agent, role, res) = (
            t.framework_id.clone(),
            t.agent_id.clone(),
            t.role.clone(),
            t.resources.clone(),
        );
        inner
            .allocator
            .recover(&fw, &agent, &role, &res, None, unix_now());
    }
}

pub(super) fn volume_in_use(inner: &Inner, agent_id: &str, role: &str, id: &str) -> bool {
    inner.tasks.live.values().any(|t| {
        t.agent_id == agent_id
            && !t.state.is_terminal()
            && t.volumes.iter().any(|(r, i)| r == role && i == id)
    })
}

pub(super) fn used_on_agent(inner: &Inner, agent_id: &str) -> Vec<(String, String, Resources)> {
    inner
        .tasks
        .live
        .values()
        .filter(|t| t.agent_id == agent_id && !t.state.is_terminal())
        .map(|t| (t.framework_id.clone(), t.role.clone(), t.resources.clone()))
        .collect()
}

pub(super) fn executor_ids_on(inner: &Inner, framework_id: &str, agent_id: &str) -> Vec<String> {
    let mut ids: Vec<String> = inner
        .tasks
        .live
        .values()
        .filter(|t| {
            t.framework_id == framework_id && t.agent_id == agent_id && !t.state.is_terminal()
        })
        .filter_map(|t| t.executor_id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// The agent is unreachable: its tasks become TASK_UNREACHABLE (or
/// TASK_LOST for frameworks without PARTITION_AWARE) and every framework
/// hears FAILURE.
pub(super) fn agent_lost(inner: &mut Inner, agent_id: &str) {
    let keys: Vec<(String, String)> = inner
        .tasks
        .live
        .iter()
        .filter(|(_, t)| t.agent_id == agent_id && !t.state.is_terminal())
        .map(|(k, _)| k.clone())
        .collect();
    for k in keys {
        let state = if partition_aware(inner, &k.0) {
            TaskState::TASK_UNREACHABLE
        } else {
            TaskState::TASK_LOST
        };
        let mut status = master_status(
            &k.1,
            Some(agent_id),
            state,
            "REASON_AGENT_REMOVED",
            "Agent is unreachable",
        );
        if state == TaskState::TASK_UNREACHABLE {
            status.unreachable_time = Some(mesos::Nanos {
                nanoseconds: (unix_now() * 1e9) as i64,
            });
        }
        // The allocator already dropped the agent: do not recover twice.
        if let Some(t) = inner.tasks.live.get_mut(&k) {
            t.state = state;
            t.statuses.push(status.clone());
        }
        notify(inner, &k.0, &status);
        if state.is_terminal() {
            complete(inner, &k);
        }
    }
    let frameworks: Vec<String> = inner.frameworks.keys().cloned().collect();
    for fw in frameworks {
        send_event(inner, &fw, &events::failure(agent_id));
    }
}

/// A (re-)registering agent reported `reported`; tasks it no longer has are gone.
pub(super) fn agent_reregistered(inner: &mut Inner, agent_id: &str, reported: Vec<pb::TaskReport>) {
    let mut seen = std::collections::HashSet::new();
    for r in reported {
        let Ok(mut info_json) = serde_json::from_str::<Json>(&r.task_info_json) else {
            continue;
        };
        mesos::strip_nulls(&mut info_json);
        let Ok(info) = mesos::parse::<TaskInfo>(info_json.clone()) else {
            continue;
        };
        let k = key(&r.framework_id, &info.task_id.value);
        seen.insert(k.clone());
        let latest = r
            .latest
            .as_ref()
            .and_then(|s| keel_api::convert::task_status_to_mesos(s, agent_id).ok());
        let state = latest
            .as_ref()
            .map(|s| s.state)
            .unwrap_or(TaskState::TASK_STAGING);
        match inner.tasks.live.get_mut(&k) {
            Some(t) => {
                t.agent_id = agent_id.to_string();
                t.state = state;
                if let Some(s) = latest {
                    t.statuses.push(s);
                }
            }
            None => {
                let resources = Resources::from_v1_json(&Json::Array(info.resources.clone()))
                    .unwrap_or_default();
                let role = info
                    .resources
                    .iter()
                    .find_map(|r| {
                        r.get("allocation_info")?
                            .get("role")?
                            .as_str()
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| "*".to_string());
                inner.tasks.live.insert(
                    k,
                    TaskRecord {
                        framework_id: r.framework_id.clone(),
                        task_id: info.task_id.value.clone(),
                        agent_id: agent_id.to_string(),
                        executor_id: Some(
                            info.executor
                                .as_ref()
                                .map_or(info.task_id.value.clone(), |e| {
                                    e.executor_id.value.clone()
                                }),
                        ),
                        name: info.name.clone(),
                        info: info_json,
                        resources,
                        role,
                        state,
                        statuses: latest.into_iter().collect(),
                        pending_ack: None,
                        volumes: Vec::new(),
                    },
                );
            }
        }
    }
    let missing: Vec<(String, String)> = inner
        .tasks
        .live
        .iter()
        .filter(|(k, t)| {
            t.agent_id == agent_id
                && !seen.contains(*k)
                && !t.state.is_terminal()
                && t.state != TaskState::TASK_STAGING
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in missing {
        let state = if partition_aware(inner, &k.0) {
            TaskState::TASK_GONE
        } else {
            TaskState::TASK_LOST
        };
        let status = master_status(
            &k.1,
            Some(agent_id),
            state,
            "REASON_AGENT_REMOVED",
            "Task was not reported by its re-registering agent",
        );
        if let Some(t) = inner.tasks.live.get_mut(&k) {
            t.state = state;
            t.statuses.push(status.clone());
        }
        notify(inner, &k.0, &status);
        complete(inner, &k);
    }
}

/// The framework is gone: its tasks are killed on their agents.
pub(super) fn framework_removed(inner: &mut Inner, framework_id: &str) {
    let keys: Vec<(String, String)> = inner
        .tasks
        .live
        .keys()
        .filter(|k| k.0 == framework_id)
        .cloned()
        .collect();
    let mut agents = std::collections::BTreeSet::new();
    for k in keys {
        if let Some(t) = inner.tasks.live.get_mut(&k) {
            agents.insert(t.agent_id.clone());
            if !t.state.is_terminal() {
                t.state = TaskState::TASK_KILLED;
            }
        }
        complete(inner, &k);
    }
    for agent in agents {
        Master::send_to_agent(
            inner,
            &agent,
            Msg::ShutdownFramework(pb::ShutdownFramework {
                framework_id: framework_id.to_string(),
            }),
        );
    }
}

impl Master {
    /// A status update from an agent.
    pub fn status_update(&self, agent_id: &str, update: pb::StatusUpdate) {
        let Some(st) = update.status.as_ref() else {
            return;
        };
        let status = match keel_api::convert::task_status_to_mesos(st, agent_id) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%agent_id, error = %e, "dropping a malformed status update");
                return;
            }
        };
        let mut inner = self.lock();
        let fw = update.framework_id.clone();
        if !inner.frameworks.contains_key(&fw) {
            // The framework is gone; its tasks must go too.
            Master::send_to_agent(
                &inner,
                agent_id,
                Msg::ShutdownFramework(pb::ShutdownFramework { framework_id: fw }),
            );
            return;
        }
        let k = key(&fw, &status.task_id.value);
        let was_terminal = inner.tasks.live.get(&k).map(|t| t.state.is_terminal());
        transition(&mut inner, &k, &status);
        if let Some(t) = inner.tasks.live.get_mut(&k) {
            t.pending_ack = (!st.uuid.is_empty()).then(|| st.uuid.clone());
        }
        notify(&mut inner, &fw, &status);
        drop(inner);
        if was_terminal == Some(false) && status.state.is_terminal() {
            self.want_allocation();
        }
    }

    /// ACKNOWLEDGE: relayed to the agent; a terminal, acknowledged task completes.
    pub fn acknowledge(&self, framework_id: &str, agent_id: &str, task_id: &str, uuid: Vec<u8>) {
        let mut inner = self.lock();
        let k = key(framework_id, task_id);
        if let Some(t) = inner.tasks.live.get_mut(&k)
            && t.pending_ack.as_deref() == Some(uuid.as_slice())
        {
            t.pending_ack = None;
            if t.state.is_terminal() {
                complete(&mut inner, &k);
            }
        }
        Master::send_to_agent(
            &inner,
            agent_id,
            Msg::Acknowledge(pb::Acknowledge {
                framework_id: framework_id.to_string(),
                task_id: task_id.to_string(),
                uuid,
            }),
        );
    }

    /// KILL. An unknown task is answered with TASK_LOST (TASK_UNKNOWN for
    /// PARTITION_AWARE frameworks).
    pub fn kill(&self, framework_id: &str, task_id: &str, kill_policy: Option<KillPolicy>) {
        let mut inner = self.lock();
        let k = key(framework_id, task_id);
        let Some(t) = inner.tasks.live.get(&k).filter(|t| !t.state.is_terminal()) else {
            let state = if partition_aware(&inner, framework_id) {
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
            );
            notify(&mut inner, framework_id, &status);
            return;
        };
        let grace_period_ms = kill_policy
            .and_then(|p| p.grace_period)
            .map(|g| (g.nanoseconds.max(0) / 1_000_000) as u64);
        let agent = t.agent_id.clone();
        if !Master::send_to_agent(
            &inner,
            &agent,
            Msg::KillTask(pb::KillTask {
                framework_id: framework_id.to_string(),
                task_id: task_id.to_string(),
                grace_period_ms,
            }),
        ) {
            tracing::info!(%framework_id, %task_id, agent_id = %agent, "kill dropped: agent is not connected");
        }
    }

    /// SHUTDOWN of an executor: kills its tasks.
    pub fn shutdown_executor(&self, framework_id: &str, executor_id: &str) {
        let ids: Vec<String> = self
            .lock()
            .tasks
            .live
            .values()
            .filter(|t| {
                t.framework_id == framework_id && t.executor_id.as_deref() == Some(executor_id)
            })
            .map(|t| t.task_id.clone())
            .collect();
        for id in ids {
            self.kill(framework_id, &id, None);
        }
    }

    /// RECONCILE: explicit (the listed tasks) or implicit (empty list: every
    /// task the master knows for the framework). Answers carry no uuid.
    pub fn reconcile(&self, framework_id: &str, tasks: &[(String, Option<String>)]) {
        let mut inner = self.lock();
        let aware = partition_aware(&inner, framework_id);
        let answer = |t: &TaskRecord| {
            let mut s = t.statuses.last().cloned().unwrap_or_else(|| {
                master_status(
                    &t.task_id,
                    Some(&t.agent_id),
                    t.state,
                    "REASON_RECONCILIATION",
                    "Reconciliation: latest task state",
                )
            });
            s.state = t.state;
            s.uuid = None;
            s.reason = Some("REASON_RECONCILIATION".into());
            s.agent_id = Some(Id::new(&t.agent_id));
            s
        };
        let mut out = Vec::new();
        if tasks.is_empty() {
            out.extend(
                inner
                    .tasks
                    .live
                    .values()
                    .filter(|t| t.framework_id == framework_id)
                    .map(answer),
            );
        } else {
            for (task_id, agent_id) in tasks {
                let k = key(framework_id, task_id);
                if let Some(t) = inner.tasks.live.get(&k) {
                    out.push(answer(t));
                } else if let Some(t) = inner
                    .tasks
                    .completed
                    .iter()
                    .rev()
                    .find(|t| t.framework_id == framework_id && &t.task_id == task_id)
                {
                    out.push(answer(t));
                } else {
                    let state = if aware {
                        TaskState::TASK_UNKNOWN
                    } else {
                        TaskState::TASK_LOST
                    };
                    out.push(master_status(
                        task_id,
                        agent_id.as_deref(),
                        state,
                        "REASON_RECONCILIATION",
                        "Reconciliation: task is unknown",
                    ));
                }
            }
        }
        for s in out {
            notify(&mut inner, framework_id, &s);
        }
    }

    /// Live and completed tasks, for operator views.
    pub fn tasks(&self) -> (Vec<TaskView>, Vec<TaskView>) {
        let inner = self.lock();
        let mut live: Vec<TaskView> = inner.tasks.live.values().cloned().collect();
        live.sort_by(|a, b| (&a.framework_id, &a.task_id).cmp(&(&b.framework_id, &b.task_id)));
        (live, inner.tasks.completed.iter().cloned().collect())
    }
}
