//! What happens to tasks when their agent is lost or comes back, and when
//! their framework is removed.

use std::collections::{BTreeSet, HashSet};

use keel_api::mesos::{self, Id, TaskState};
use keel_api::resources::Resources;
use keel_api::scheduler::Event;

use super::agents::ReportedTask;
use super::tasks::{Key, TaskRecord, key, master_status, record_status};
use super::{Engine, Now, ToAgent};

/// The agent is unreachable: its tasks become TASK_UNREACHABLE (or
/// TASK_LOST for frameworks without PARTITION_AWARE) and every framework
/// hears FAILURE.
pub(super) fn agent_lost(e: &mut Engine, agent_id: &str, now: Now) {
    let keys: Vec<Key> = e
        .tasks
        .on_agent(agent_id)
        .filter(|t| !t.state.is_terminal())
        .map(|t| key(&t.framework_id, &t.task_id))
        .collect();
    for k in keys {
        let state = if e.partition_aware(&k.0) {
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
            now,
        );
        if state == TaskState::TASK_UNREACHABLE {
            status.unreachable_time = Some(mesos::Nanos {
                nanoseconds: (now.unix * 1e9) as i64,
            });
        }
        // The allocator already dropped the agent: nothing to recover.
        e.transition(&k, status.clone(), false, now);
        e.notify(&k.0, status);
        if state.is_terminal() {
            e.complete(&k);
        }
    }
    let mut frameworks: Vec<String> = e.frameworks.keys().cloned().collect();
    frameworks.sort();
    for fw in frameworks {
        e.send_framework(
            &fw,
            Event::Failure(keel_api::scheduler::Failure {
                agent_id: Some(Id::new(agent_id)),
                executor_id: None,
                status: None,
            }),
        );
    }
}

/// A (re-)registering agent reported `reported`; tasks of known frameworks
/// join the table, tasks it no longer has are gone.
///
/// An agent back from unreachable still runs the tasks its frameworks were
/// told were TASK_LOST (those without PARTITION_AWARE): they may have
/// launched them again, so these are killed, not taken back (as Mesos
/// does), and those that ended meanwhile are not taken back either. Taken
/// back, the framework saw a task lost and then running: run twice.
pub(super) fn agent_reregistered(
    e: &mut Engine,
    agent_id: &str,
    reported: Vec<ReportedTask>,
    was_unreachable: bool,
    now: Now,
) {
    let mut seen = HashSet::new();
    let doomed_before = e.agents.doomed.remove(agent_id).unwrap_or_default();
    let mut doomed = HashSet::new();
    for r in reported {
        let live = r.latest.as_ref().is_none_or(|s| !s.state.is_terminal());
        let k = key(&r.framework_id, &r.info.task_id.value);
        let told_lost = was_unreachable || doomed_before.contains(&k);
        if told_lost && !e.partition_aware(&r.framework_id) {
            // Ended meanwhile: its last update is dropped as a task the
            // master does not know (the framework heard TASK_LOST).
            if !live {
                continue;
            }
            doomed.insert(k);
            let task_id = r.info.task_id.value.clone();
            tracing::info!(%agent_id, framework_id = %r.framework_id, %task_id, "task reported lost while its agent was unreachable: killed");
            e.send_agent(
                agent_id,
                ToAgent::Kill {
                    framework_id: r.framework_id,
                    task_id,
                    grace_period_ms: None,
                },
            );
            continue;
        }
        if let Some(k) = take_report(e, agent_id, r) {
            seen.insert(k);
        }
    }
    if !doomed.is_empty() {
        e.agents.doomed.insert(agent_id.to_string(), doomed);
    }
    let missing: Vec<Key> = e
        .tasks
        .keys_on(agent_id)
        .into_iter()
        .filter(|k| {
            !seen.contains(k)
                && e.tasks
                    .get(k)
                    .is_some_and(|t| !t.state.is_terminal() && t.state != TaskState::TASK_STAGING)
        })
        .collect();
    for k in missing {
        let state = if e.partition_aware(&k.0) {
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
            now,
        );
        // The allocator re-learns the agent's use from the table next.
        e.transition(&k, status.clone(), false, now);
        e.notify(&k.0, status);
        e.complete(&k);
    }
}

/// One reported task into the table; its key, or `None` when the report
/// is not taken (an unknown framework, or a task another agent runs).
fn take_report(e: &mut Engine, agent_id: &str, r: ReportedTask) -> Option<Key> {
    if e.registry.framework(&r.framework_id).is_none() {
        // A framework the cluster does not know cannot be handed tasks by
        // an agent. Its tasks keep running until it comes back or is
        // known to be gone.
        tracing::warn!(%agent_id, framework_id = %r.framework_id, task_id = %r.info.task_id.value, "reported task of an unknown framework ignored");
        return None;
    }
    let k = key(&r.framework_id, &r.info.task_id.value);
    if let Some(existing) = e.tasks.get(&k)
        && existing.agent_id != agent_id
        && !existing.state.is_terminal()
    {
        tracing::warn!(%agent_id, other = %existing.agent_id, task_id = %k.1, "reported task runs on another agent; ignored");
        return None;
    }
    let state = r
        .latest
        .as_ref()
        .map(|s| s.state)
        .unwrap_or(TaskState::TASK_STAGING);
    let latest = r.latest.map(|mut s| {
        s.agent_id = Some(Id::new(agent_id));
        s
    });
    if let Some(moved) = e.tasks.get(&k).filter(|t| t.agent_id != agent_id) {
        // Re-inserted so that the agent index follows.
        let mut moved = moved.clone();
        moved.agent_id = agent_id.to_string();
        e.tasks.insert(k.clone(), moved);
    }
    if let Some(t) = e.tasks.get_mut(&k) {
        if !t.state.is_terminal() && state.is_terminal() {
            e.metering.counters.task_ended(state);
        }
        t.state = state;
        if let Some(s) = latest {
            record_status(t, s.clone());
            e.observe_task_status(&k, &s);
        }
        return Some(k);
    }
    let info = r.info;
    let role = info
        .resources
        .iter()
        .find_map(|x| x.allocation_role().map(str::to_string))
        .unwrap_or_else(|| "*".to_string());
    let executor_id = info
        .executor
        .as_ref()
        .map_or(info.task_id.value.clone(), |x| x.executor_id.value.clone());
    let record = TaskRecord {
        framework_id: r.framework_id,
        task_id: info.task_id.value.clone(),
        agent_id: agent_id.to_string(),
        executor_id: Some(executor_id),
        name: info.name.clone(),
        resources: Resources::from_v1(&info.resources).unwrap_or_default(),
        role,
        state,
        statuses: latest.into_iter().collect(),
        pending_ack: None,
        volumes: Vec::new(),
        kill: None,
        info,
    };
    e.tasks.insert(k.clone(), record);
    e.observe_task_added(&k);
    Some(k)
}

/// The framework is gone: its tasks are killed on their agents and
/// recorded as TASK_KILLED.
pub(super) fn framework_removed(e: &mut Engine, framework_id: &str, now: Now) {
    let mut keys: Vec<Key> = e
        .tasks
        .keys()
        .filter(|k| k.0 == framework_id)
        .cloned()
        .collect();
    keys.sort();
    let mut agents = BTreeSet::new();
    for k in keys {
        if let Some(t) = e.tasks.get_mut(&k) {
            agents.insert(t.agent_id.clone());
            if !t.state.is_terminal() {
                e.metering.counters.task_ended(TaskState::TASK_KILLED);
                t.state = TaskState::TASK_KILLED;
                let status = master_status(
                    &t.task_id,
                    Some(&t.agent_id),
                    TaskState::TASK_KILLED,
                    "REASON_FRAMEWORK_REMOVED",
                    "Framework was removed",
                    now,
                );
                record_status(t, status.clone());
                e.observe_task_status(&k, &status);
            }
        }
        e.complete(&k);
    }
    // Agents where its executors still run (their tasks may all be done).
    agents.extend(
        e.executors()
            .filter(|r| r.framework_id == framework_id)
            .map(|r| r.agent_id.clone()),
    );
    for agent in agents {
        e.send_agent(
            &agent,
            ToAgent::ShutdownFramework {
                framework_id: framework_id.to_string(),
            },
        );
    }
}
