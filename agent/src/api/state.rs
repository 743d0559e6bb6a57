//! GET_STATE, GET_FRAMEWORKS, GET_EXECUTORS, GET_TASKS and the
//! Mesos-shaped `/state`, from one [`RuntimeSnapshot`] (pure functions
//! of it, and of the agent's view for `/state`).

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::response::Response;
use keel_api::agent::legacy;
use keel_api::agent::state::{
    Executor, Framework, GetExecutors, GetFrameworks, GetState, GetTasks,
};
use keel_api::convert;
use keel_api::mesos::{CommandInfo, ExecutorInfo, FrameworkInfo, Id, TaskState};
use keel_api::operator::Task;
use keel_api::resources::Resources;

use crate::access::Access;
use crate::executor::runtime::{
    ExecutorSnapshot, FrameworkSnapshot, RuntimeSnapshot, TaskSnapshot,
};
use crate::http::AgentView;

/// The FrameworkInfo the agent shows: the latest a launch carried, or
/// only the id when none was readable.
pub fn framework_info(f: &FrameworkSnapshot) -> FrameworkInfo {
    f.info.clone().unwrap_or_else(|| FrameworkInfo {
        id: Some(Id::new(&f.framework_id)),
        ..FrameworkInfo::new("", "")
    })
}

/// The executor's ExecutorInfo: a task group's own, or for a command
/// task the command executor Mesos' agent would have made for it.
pub fn executor_info(e: &ExecutorSnapshot) -> ExecutorInfo {
    if let Some(info) = &e.info {
        return ExecutorInfo {
            framework_id: info
                .framework_id
                .clone()
                .or_else(|| Some(Id::new(&e.framework_id))),
            ..info.clone()
        };
    }
    let task = e.tasks.iter().chain(&e.completed_tasks).next();
    let command = task
        .and_then(|t| t.info.as_ref())
        .and_then(|i| i.command.as_ref())
        .and_then(|c| c.value.clone())
        .unwrap_or_default();
    ExecutorInfo {
        kind: None,
        executor_id: Id::new(&e.executor_id),
        framework_id: Some(Id::new(&e.framework_id)),
        command: Some(CommandInfo {
            value: Some("keel-agent".into()),
            ..Default::default()
        }),
        resources: e.resources.to_v1(),
        name: Some(format!(
            "Command Executor (Task: {}) (Command: sh -c '{command}')",
            e.executor_id
        )),
        container: None,
        source: Some(e.executor_id.clone()),
        data: None,
        labels: None,
        shutdown_grace_period: None,
    }
}

/// The executor's `source` (Mesos: the task id for a command executor).
pub fn executor_source(e: &ExecutorSnapshot) -> String {
    match &e.info {
        Some(_) => String::new(),
        None => e.executor_id.clone(),
    }
}

/// One task as GET_TASKS has it.
pub fn task_v1(t: &TaskSnapshot, agent_id: &str, group: bool) -> Task {
    let statuses: Vec<_> = t
        .statuses
        .iter()
        .filter_map(|s| convert::task_status_to_mesos(s, agent_id).ok())
        .collect();
    let last = statuses.last();
    let info = t.info.as_ref();
    Task {
        name: info.map(|i| i.name.clone()).unwrap_or_default(),
        task_id: Id::new(&t.task_id),
        framework_id: Id::new(&t.framework_id),
        executor_id: group.then(|| Id::new(&t.executor_id)),
        agent_id: Id::new(agent_id),
        state: t.state.unwrap_or(TaskState::TASK_STAGING),
        resources: info.map(|i| i.resources.clone()).unwrap_or_default(),
        status_update_state: last.map(|s| s.state),
        status_update_uuid: last.and_then(|s| s.uuid.clone()),
        statuses,
        labels: info.and_then(|i| i.labels.clone()),
        discovery: info.and_then(|i| i.discovery.clone()),
        container: info.and_then(|i| i.container.clone()),
        health_check: info.and_then(|i| i.health_check.clone()),
        kill_policy: info.and_then(|i| i.kill_policy.clone()),
    }
}

fn agent_id(s: &RuntimeSnapshot) -> &str {
    s.agent_id.as_deref().unwrap_or_default()
}

pub fn get_frameworks(s: &RuntimeSnapshot) -> GetFrameworks {
    let of = |list: &[FrameworkSnapshot]| {
        list.iter()
            .map(|f| Framework {
                framework_info: framework_info(f),
            })
            .collect()
    };
    GetFrameworks {
        frameworks: of(&s.frameworks),
        completed_frameworks: of(&s.completed_frameworks),
    }
}

pub fn get_executors(s: &RuntimeSnapshot) -> GetExecutors {
    let executor = |e: &ExecutorSnapshot| Executor {
        executor_info: executor_info(e),
    };
    GetExecutors {
        executors: s
            .frameworks
            .iter()
            .flat_map(|f| &f.executors)
            .map(executor)
            .collect(),
        completed_executors: s
            .all_frameworks()
            .flat_map(|f| &f.completed_executors)
            .map(executor)
            .collect(),
    }
}

/// Live tasks are launched; terminal ones not yet acknowledged are
/// terminated; forgotten ones completed.
pub fn get_tasks(s: &RuntimeSnapshot) -> GetTasks {
    let agent = agent_id(s);
    let mut out = GetTasks::default();
    for f in s.all_frameworks() {
        for e in &f.executors {
            let group = e.info.is_some();
            for t in &e.tasks {
                let task = task_v1(t, agent, group);
                match t.is_terminal() {
                    true => out.terminated_tasks.push(task),
                    false => out.launched_tasks.push(task),
                }
            }
            let done = e.completed_tasks.iter().map(|t| task_v1(t, agent, group));
            out.completed_tasks.extend(done);
        }
        for e in &f.completed_executors {
            let group = e.info.is_some();
            let done = e.completed_tasks.iter().map(|t| task_v1(t, agent, group));
            out.completed_tasks.extend(done);
        }
    }
    out
}

pub async fn get_state(view: &AgentView, access: &Access) -> GetState {
    let s = super::snapshot(view, access).await;
    GetState {
        get_tasks: get_tasks(&s),
        get_executors: get_executors(&s),
        get_frameworks: get_frameworks(&s),
    }
}

fn role_of(f: &FrameworkInfo) -> String {
    f.effective_roles()
        .into_iter()
        .next()
        .unwrap_or_else(|| "*".into())
}

fn task_legacy(
    t: &TaskSnapshot,
    agent_id: &str,
    role: &str,
    group: bool,
) -> keel_api::legacy::Task {
    let v1 = task_v1(t, agent_id, group);
    keel_api::legacy::Task {
        id: t.task_id.clone(),
        name: v1.name.clone(),
        framework_id: t.framework_id.clone(),
        executor_id: if group {
            t.executor_id.clone()
        } else {
            String::new()
        },
        slave_id: agent_id.to_string(),
        state: v1.state,
        resources: Resources::from_v1(&v1.resources)
            .unwrap_or_default()
            .to_legacy(),
        role: role.to_string(),
        statuses: v1
            .statuses
            .iter()
            .map(|s| keel_api::legacy::TaskStatus {
                state: s.state,
                timestamp: s.timestamp.unwrap_or_default(),
                healthy: s.healthy,
                container_status: s.container_status.as_deref().cloned(),
            })
            .collect(),
    }
}

fn executor_legacy(e: &ExecutorSnapshot, agent_id: &str, role: &str) -> legacy::Executor {
    let group = e.info.is_some();
    let info = executor_info(e);
    let tasks = |list: &[TaskSnapshot]| {
        list.iter()
            .map(|t| task_legacy(t, agent_id, role, group))
            .collect()
    };
    legacy::Executor {
        id: e.executor_id.clone(),
        name: info.name.clone().unwrap_or_default(),
        source: executor_source(e),
        framework_id: e.framework_id.clone(),
        container: e.container_id.clone(),
        directory: e
            .directory
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        resources: e.resources.to_legacy(),
        role: Some(role.to_string()),
        kind: group.then(|| "DEFAULT".to_string()),
        tasks: tasks(&e.tasks),
        queued_tasks: Vec::new(),
        completed_tasks: tasks(&e.completed_tasks),
    }
}

fn framework_legacy(f: &FrameworkSnapshot, agent_id: &str) -> legacy::Framework {
    let info = framework_info(f);
    let role = role_of(&info);
    let multi = info.has_capability("MULTI_ROLE");
    legacy::Framework {
        id: f.framework_id.clone(),
        name: info.name.clone(),
        user: info.user.clone(),
        failover_timeout: info.failover_timeout.unwrap_or_default(),
        checkpoint: info.checkpoint.unwrap_or_default(),
        hostname: info.hostname.clone(),
        role: (!multi).then(|| role.clone()),
        roles: multi.then(|| info.roles.clone()),
        principal: info.principal.clone(),
        capabilities: info.capabilities.iter().map(|c| c.kind.clone()).collect(),
        executors: f
            .executors
            .iter()
            .map(|e| executor_legacy(e, agent_id, &role))
            .collect(),
        completed_executors: f
            .completed_executors
            .iter()
            .map(|e| executor_legacy(e, agent_id, &role))
            .collect(),
    }
}

/// The Mesos-shaped state of the agent.
pub fn state_legacy(view: &AgentView, s: &RuntimeSnapshot) -> legacy::State {
    let status = view.status.borrow().clone();
    let agent = status.agent_id.clone().unwrap_or_default();
    let version = super::system::version_info();
    legacy::State {
        version: version.version,
        git_tag: version.git_tag,
        build_user: version.build_user,
        start_time: view.start_time,
        id: agent.clone(),
        pid: view.pid.clone(),
        hostname: view.hostname.clone(),
        capabilities: vec!["MULTI_ROLE".into(), "TASK_KILLING_STATE".into()],
        resources: view.resources.to_legacy(),
        attributes: view.attributes.to_legacy_json(),
        master_hostname: status.master.clone(),
        flags: view.flags.clone(),
        frameworks: s
            .frameworks
            .iter()
            .map(|f| framework_legacy(f, &agent))
            .collect(),
        completed_frameworks: s
            .completed_frameworks
            .iter()
            .map(|f| framework_legacy(f, &agent))
            .collect(),
        registered: status.registered,
    }
}

/// `/state` (`/slave(1)/state`): a sandbox grant sees its frameworks only.
pub async fn state_endpoint(
    State(view): State<Arc<AgentView>>,
    access: Option<Extension<Access>>,
) -> Response {
    let access = match super::access_of(access) {
        Ok(a) => a,
        Err(e) => return crate::access::refusal(&e),
    };
    let s = super::snapshot(&view, &access).await;
    super::json(&state_legacy(&view, &s))
}
