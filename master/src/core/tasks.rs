//! Tasks: ACCEPT (launch, launch group, reserve, unreserve), status updates
//! from agents, acknowledgements, KILL, RECONCILE, and what agent loss,
//! agent re-registration and framework removal do to tasks.

use std::collections::{HashMap, VecDeque};

use keel_api::mesos::{self, Filters, Id, KillPolicy, TaskInfo, TaskState, TaskStatus};
use keel_api::pb::{self, master_message::Msg};
use keel_api::resources::{Resource, Resources};
use serde_json::Value as Json;

use super::frameworks::send_event;
use super::{Inner, Master, offers, unix_now};
use crate::registry::Command;
use crate::registry::volumes::Volume;
use crate::scheduler::call::Operation;
use crate::scheduler::events;
use crate::scheduler::validation::{inject_allocation_role, validate_task};

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
    live: HashMap<(String, String), TaskRecord>,
    completed: VecDeque<TaskRecord>,
}

fn key(fw: &str, task: &str) -> (String, String) {
    (fw.to_string(), task.to_string())
}

/// A status the master itself generates: no uuid, nothing to acknowledge.
fn master_status(
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

fn partition_aware(inner: &Inner, framework_id: &str) -> bool {
    inner
        .frameworks
        .get(framework_id)
        .is_some_and(|f| f.partition_aware())
}

fn notify(inner: &mut Inner, framework_id: &str, status: &TaskStatus) {
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

/// Splits a task's resources into persistent volumes and the rest.
fn split_volumes(task_json: &Json) -> (Vec<Result<Volume, String>>, Vec<Json>) {
    let mut volumes = Vec::new();
    let mut rest = Vec::new();
    for r in task_json
        .get("resources")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        match Volume::from_resource_json(r) {
            Some(v) => volumes.push(v),
            None => rest.push(r.clone()),
        }
    }
    (volumes, rest)
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
    /// ACCEPT. Offer problems turn every launched task into TASK_LOST /
    /// TASK_DROPPED (REASON_INVALID_OFFERS); invalid tasks into TASK_ERROR.
    pub async fn accept(
        &self,
        framework_id: &str,
        offer_ids: &[String],
        operations: Vec<Operation>,
        filters: Filters,
    ) {
        // Registry changes inside one ACCEPT are committed in order, and
        // nothing else writes in between.
        let w = self.write().await;
        let taken = {
            let mut inner = self.lock();
            match offers::take_offers(&mut inner, framework_id, offer_ids) {
                Ok(t) => t,
                Err(reason) => {
                    let state = if partition_aware(&inner, framework_id) {
                        TaskState::TASK_DROPPED
                    } else {
                        TaskState::TASK_LOST
                    };
                    for op in &operations {
                        let tasks = match op {
                            Operation::Launch { task_infos }
                            | Operation::LaunchGroup { task_infos, .. } => task_infos,
                            _ => continue,
                        };
                        for t in tasks {
                            let id = t
                                .get("task_id")
                                .and_then(|i| i.get("value"))
                                .and_then(Json::as_str)
                                .unwrap_or("");
                            let status =
                                master_status(id, None, state, "REASON_INVALID_OFFERS", &reason);
                            notify(&mut inner, framework_id, &status);
                        }
                    }
                    tracing::info!(%framework_id, %reason, "accept with invalid offers");
                    return;
                }
            }
        };
        let agent_id = taken[0].agent_id.clone();
        let role = taken[0].role.clone();
        let mut remaining = Resources::default();
        let mut volumes: Vec<Volume> = Vec::new();
        for o in &taken {
            remaining.add(&o.resources);
            volumes.extend(o.volumes.iter().cloned());
        }
        for op in operations {
            let planned = {
                let mut inner = self.lock();
                let mut ctx = LaunchCtx {
                    framework_id,
                    agent_id: &agent_id,
                    role: &role,
                    remaining: &mut remaining,
                    volumes: &mut volumes,
                };
                match op {
                    Operation::Launch { task_infos } => {
                        launch(&mut inner, &mut ctx, task_infos, None);
                        None
                    }
                    Operation::LaunchGroup {
                        executor,
                        task_infos,
                    } => {
                        launch(&mut inner, &mut ctx, task_infos, Some(executor));
                        None
                    }
                    Operation::Reserve { resources } => {
                        plan_reserve(framework_id, &agent_id, ctx.remaining, &resources, true)
                    }
                    Operation::Unreserve { resources } => {
                        plan_reserve(framework_id, &agent_id, ctx.remaining, &resources, false)
                    }
                    Operation::Create { volumes: specs } => {
                        plan_create(framework_id, &agent_id, &role, ctx.remaining, &specs)
                    }
                    Operation::Destroy { volumes: specs } => {
                        plan_destroy(framework_id, &agent_id, ctx.volumes, &specs)
                    }
                    Operation::Unsupported { kind } => {
                        tracing::warn!(%framework_id, %kind, "offer operation not supported by Keel; dropped");
                        None
                    }
                }
            };
            let Some((cmd, pending)) = planned else {
                continue;
            };
            match self.commit(&w, cmd).await {
                Ok(_) => {
                    let mut inner = self.lock();
                    let mut ctx = LaunchCtx {
                        framework_id,
                        agent_id: &agent_id,
                        role: &role,
                        remaining: &mut remaining,
                        volumes: &mut volumes,
                    };
                    finish(&mut inner, &mut ctx, pending);
                }
                Err(e) => tracing::info!(%framework_id, error = %e, "offer operation refused"),
            }
        }
        let mut inner = self.lock();
        if !remaining.is_empty() {
            inner.allocator.recover(
                framework_id,
                &agent_id,
                &role,
                &remaining,
                Some(filters.refuse_seconds()),
                unix_now(),
            );
        }
        drop(inner);
        drop(w);
        self.want_allocation();
    }

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

/// A task that passed validation: its JSON, parsed info, resources, and
/// the persistent volumes it uses as (role, id).
type Accepted = (Json, TaskInfo, Resources, Vec<(String, String)>);

/// What one ACCEPT's launches draw from.
struct LaunchCtx<'a> {
    framework_id: &'a str,
    agent_id: &'a str,
    role: &'a str,
    remaining: &'a mut Resources,
    /// Persistent volumes offered (or created) in this ACCEPT.
    volumes: &'a mut Vec<Volume>,
}

fn launch(
    inner: &mut Inner,
    ctx: &mut LaunchCtx<'_>,
    task_infos: Vec<Json>,
    group_executor: Option<Json>,
) {
    let (framework_id, agent_id, role) = (ctx.framework_id, ctx.agent_id, ctx.role);
    let group = group_executor.is_some();
    let mut accepted: Vec<Accepted> = Vec::new();
    let mut errors: Vec<(String, String)> = Vec::new();
    let mut budget = ctx.remaining.clone();
    let mut claimed: Vec<(String, String)> = Vec::new();
    let executor_id = group_executor.as_ref().and_then(|e| {
        e.get("executor_id")?
            .get("value")?
            .as_str()
            .map(str::to_string)
    });
    if let Some(exec) = &group_executor {
        if executor_id.is_none() {
            errors.push((String::new(), "ExecutorInfo must set 'executor_id'".into()));
        } else if let Ok(res) =
            Resources::from_v1_json(exec.get("resources").unwrap_or(&Json::Array(vec![])))
        {
            match budget.checked_sub(&res) {
                Some(left) => budget = left,
                None => errors.push((
                    String::new(),
                    "Executor uses resources not in the offers".into(),
                )),
            }
        }
    }
    for mut tj in task_infos {
        mesos::strip_nulls(&mut tj);
        let id = tj
            .get("task_id")
            .and_then(|i| i.get("value"))
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string();
        let info = match mesos::parse::<TaskInfo>(tj.clone()) {
            Ok(i) => i,
            Err(e) => {
                errors.push((id, format!("Task is malformed: {e}")));
                continue;
            }
        };
        let (vols, rest) = split_volumes(&tj);
        let mut task_volumes = Vec::new();
        let mut volume_error = None;
        for v in vols {
            match v {
                Ok(v)
                    if ctx.volumes.iter().any(|o| o.id == v.id && o.role == v.role)
                        && !claimed.iter().any(|(r, i)| r == &v.role && i == &v.id) =>
                {
                    task_volumes.push((v.role, v.id))
                }
                Ok(v) => {
                    volume_error = Some(format!(
                        "Persistent volume {} is not in the offers or already in use",
                        v.id
                    ))
                }
                Err(e) => volume_error = Some(e),
            }
        }
        if let Some(e) = volume_error {
            errors.push((id, e));
            continue;
        }
        let mut check = info.clone();
        check.resources = rest;
        if check.resources.is_empty() && !task_volumes.is_empty() {
            errors.push((
                id,
                "Task uses no resources besides persistent volumes".into(),
            ));
            continue;
        }
        let exists = |t: &str| {
            inner.tasks.live.contains_key(&key(framework_id, t))
                || accepted.iter().any(|a| a.1.task_id.value == t)
        };
        let res = match validate_task(&check, agent_id, exists, group) {
            Ok(r) => r,
            Err(e) => {
                errors.push((id, e));
                continue;
            }
        };
        let Some(left) = budget.checked_sub(&res) else {
            errors.push((
                id,
                format!("Task uses more resources ({res}) than available in the offers ({budget})"),
            ));
            continue;
        };
        if let Err(e) = inject_allocation_role(&mut tj, role) {
            errors.push((id, e));
            continue;
        }
        budget = left;
        claimed.extend(task_volumes.iter().cloned());
        accepted.push((tj, info, res, task_volumes));
    }
    // A task group is all or nothing.
    if group && !errors.is_empty() {
        let reason = errors
            .iter()
            .map(|e| e.1.clone())
            .collect::<Vec<_>>()
            .join("; ");
        for (tj, _, _, _) in &accepted {
            let id = tj["task_id"]["value"].as_str().unwrap_or("").to_string();
            errors.push((id, format!("Task group is invalid: {reason}")));
        }
        accepted.clear();
    }
    for (id, message) in errors.into_iter().filter(|e| !e.0.is_empty()) {
        tracing::info!(%framework_id, task_id = %id, %message, "invalid task");
        let status = master_status(
            &id,
            Some(agent_id),
            TaskState::TASK_ERROR,
            "REASON_TASK_INVALID",
            &message,
        );
        notify(inner, framework_id, &status);
    }
    if accepted.is_empty() {
        return;
    }
    *ctx.remaining = budget;
    let framework_info_json = inner
        .registry
        .framework(framework_id)
        .map(|f| f.info.to_string())
        .unwrap_or_default();
    let mut task_jsons = Vec::new();
    for (tj, info, res, task_volumes) in accepted {
        let k = key(framework_id, &info.task_id.value);
        task_jsons.push(tj.to_string());
        inner.tasks.live.insert(
            k,
            TaskRecord {
                framework_id: framework_id.to_string(),
                task_id: info.task_id.value.clone(),
                agent_id: agent_id.to_string(),
                executor_id: Some(
                    executor_id
                        .clone()
                        .or_else(|| info.executor.as_ref().map(|e| e.executor_id.value.clone()))
                        .unwrap_or_else(|| info.task_id.value.clone()),
                ),
                name: info.name.clone(),
                info: tj,
                resources: res,
                role: role.to_string(),
                state: TaskState::TASK_STAGING,
                statuses: Vec::new(),
                pending_ack: None,
                volumes: task_volumes,
            },
        );
    }
    let msg = Msg::LaunchTasks(pb::LaunchTasks {
        framework_id: framework_id.to_string(),
        framework_info_json,
        task_info_json: task_jsons,
        executor_info_json: group_executor.map(|e| e.to_string()).unwrap_or_default(),
    });
    if !Master::send_to_agent(inner, agent_id, msg) {
        tracing::warn!(%framework_id, %agent_id, "launch could not be sent: agent not connected");
    }
}

fn unreserved(rs: &Resources) -> Resources {
    Resources(
        rs.iter()
            .map(|r| Resource {
                role: "*".into(),
                ..r.clone()
            })
            .collect(),
    )
}

/// A registry change planned inside an ACCEPT, applied to the offer's
/// remainder once committed.
enum Pending {
    /// RESERVE / UNRESERVE: `from` becomes `to` inside the allocation.
    Convert { from: Resources, to: Resources },
    /// CREATE: `disk` becomes the `created` volumes.
    Create {
        disk: Resources,
        created: Vec<Volume>,
    },
    /// DESTROY: the `gone` volumes become `disk` again.
    Destroy { disk: Resources, gone: Vec<Volume> },
}

/// RESERVE / UNRESERVE of resources in the offer's remainder.
fn plan_reserve(
    framework_id: &str,
    agent_id: &str,
    remaining: &Resources,
    resources: &[Json],
    reserve: bool,
) -> Option<(Command, Pending)> {
    let Ok(rs) = Resources::from_v1_json(&Json::Array(resources.to_vec())) else {
        tracing::info!(%framework_id, "(un)reserve with invalid resources dropped");
        return None;
    };
    let (from, to) = if reserve {
        (unreserved(&rs), rs.clone())
    } else {
        (rs.clone(), unreserved(&rs))
    };
    if !remaining.contains(&from) {
        tracing::info!(%framework_id, %rs, "(un)reserve of resources not in the offer dropped");
        return None;
    }
    let agent_id = agent_id.to_string();
    let cmd = if reserve {
        Command::ReserveResources {
            agent_id,
            resources: rs,
        }
    } else {
        Command::UnreserveResources {
            agent_id,
            resources: rs,
        }
    };
    Some((cmd, Pending::Convert { from, to }))
}

/// CREATE: reserved disk of the offer's role becomes persistent volumes,
/// usable by LAUNCHes later in the same ACCEPT and offered back afterwards.
fn plan_create(
    framework_id: &str,
    agent_id: &str,
    role: &str,
    remaining: &Resources,
    specs: &[Json],
) -> Option<(Command, Pending)> {
    let mut created = Vec::new();
    let mut disk = Resources::default();
    for spec in specs {
        match Volume::from_resource_json(spec) {
            Some(Ok(v)) if v.role == role => {
                disk.add(&v.disk());
                created.push(v);
            }
            Some(Ok(v)) => {
                tracing::info!(%framework_id, volume = %v.id, "CREATE on disk not reserved to the offer's role dropped");
                return None;
            }
            Some(Err(e)) => {
                tracing::info!(%framework_id, error = %e, "CREATE with an invalid volume dropped");
                return None;
            }
            None => {
                tracing::info!(%framework_id, "CREATE of a resource without disk.persistence dropped");
                return None;
            }
        }
    }
    if !remaining.contains(&disk) {
        tracing::info!(%framework_id, %disk, "CREATE needs reserved disk that is not in the offer");
        return None;
    }
    let cmd = Command::CreateVolumes {
        agent_id: agent_id.to_string(),
        volumes: created.clone(),
    };
    Some((cmd, Pending::Create { disk, created }))
}

/// DESTROY: offered, unused volumes go back to reserved disk.
fn plan_destroy(
    framework_id: &str,
    agent_id: &str,
    offered: &[Volume],
    specs: &[Json],
) -> Option<(Command, Pending)> {
    let mut gone = Vec::new();
    for spec in specs {
        let Some(Ok(v)) = Volume::from_resource_json(spec) else {
            tracing::info!(%framework_id, "DESTROY of something that is not a persistent volume dropped");
            return None;
        };
        let Some(known) = offered
            .iter()
            .find(|o| o.id == v.id && o.role == v.role)
            .cloned()
        else {
            tracing::info!(%framework_id, volume = %v.id, "DESTROY of a volume that is not in the offers dropped");
            return None;
        };
        gone.push(known);
    }
    let mut disk = Resources::default();
    for v in &gone {
        disk.add(&v.disk());
    }
    let cmd = Command::DestroyVolumes {
        agent_id: agent_id.to_string(),
        volumes: gone
            .iter()
            .map(|v| (v.role.clone(), v.id.clone()))
            .collect(),
    };
    Some((cmd, Pending::Destroy { disk, gone }))
}

/// The committed change, applied to the allocator and the offer's remainder.
fn finish(inner: &mut Inner, ctx: &mut LaunchCtx<'_>, pending: Pending) {
    let none = Resources::default();
    let (fw, agent, role) = (ctx.framework_id, ctx.agent_id, ctx.role);
    match pending {
        Pending::Convert { from, to } => {
            inner
                .allocator
                .update_allocation(fw, agent, role, &from, &to);
            if let Some(mut left) = ctx.remaining.checked_sub(&from) {
                left.add(&to);
                *ctx.remaining = left;
            }
        }
        Pending::Create { disk, created } => {
            inner
                .allocator
                .update_allocation(fw, agent, role, &disk, &none);
            if let Some(left) = ctx.remaining.checked_sub(&disk) {
                *ctx.remaining = left;
            }
            ctx.volumes.extend(created);
        }
        Pending::Destroy { disk, gone } => {
            inner
                .allocator
                .update_allocation(fw, agent, role, &none, &disk);
            ctx.remaining.add(&disk);
            ctx.volumes
                .retain(|o| !gone.iter().any(|g| g.id == o.id && g.role == o.role));
        }
    }
}
