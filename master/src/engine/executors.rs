//! Executors on agents (`docs/design/0014-custom-executors.md`): custom
//! executors and task groups' executors hold their ExecutorInfo's
//! resources from their first launch on an agent until the agent says the
//! executor ended (`ExecutorExited`); a custom executor's end is a
//! FAILURE event to its framework, as in Mesos. Framework messages go
//! scheduler -> agent -> executor and back, unreliably.
//!
//! The table is the leader's: a new leader learns it from the agents'
//! registrations (`Register.executors`).

use std::collections::BTreeMap;

use keel_api::mesos::{ExecutorInfo, Id, base64_encode};
use keel_api::resources::Resources;
use keel_api::scheduler::{Event, Failure, Message};

use super::{Engine, Now, ToAgent};

/// One executor the master counts.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorRecord {
    pub framework_id: String,
    pub agent_id: String,
    pub info: ExecutorInfo,
    /// What it holds (its ExecutorInfo's resources).
    pub resources: Resources,
    pub role: String,
}

impl ExecutorRecord {
    /// A custom executor (not a task group's default executor).
    pub fn custom(&self) -> bool {
        self.info.kind.as_deref() != Some("DEFAULT")
    }
}

/// An executor an agent reports at registration.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedExecutor {
    pub framework_id: String,
    pub info: ExecutorInfo,
}

/// (agent, framework, executor) -> its record.
pub(super) type ExecutorTable = BTreeMap<(String, String, String), ExecutorRecord>;

fn table_key(agent_id: &str, framework_id: &str, executor_id: &str) -> (String, String, String) {
    (
        agent_id.to_string(),
        framework_id.to_string(),
        executor_id.to_string(),
    )
}

/// The role an executor's resources were allocated to.
fn role_of(info: &ExecutorInfo) -> String {
    info.resources
        .iter()
        .find_map(|r| r.allocation_info.as_ref().and_then(|a| a.role.clone()))
        .unwrap_or_else(|| "*".to_string())
}

impl Engine {
    /// Whether `executor_id` of the framework runs (or is being launched)
    /// on the agent.
    pub(super) fn executor_on(
        &self,
        agent_id: &str,
        framework_id: &str,
        executor_id: &str,
    ) -> bool {
        self.executors
            .contains_key(&table_key(agent_id, framework_id, executor_id))
    }

    /// An executor launched from an offer: its resources are already the
    /// framework's (drawn from the offer).
    pub(super) fn executor_launched(
        &mut self,
        agent_id: &str,
        framework_id: &str,
        info: ExecutorInfo,
    ) {
        let resources = Resources::from_v1(&info.resources).unwrap_or_default();
        let record = ExecutorRecord {
            framework_id: framework_id.to_string(),
            agent_id: agent_id.to_string(),
            role: role_of(&info),
            resources,
            info,
        };
        let k = table_key(agent_id, framework_id, &record.info.executor_id.value);
        self.executors.insert(k, record);
    }

    /// The executors a (re-)registering agent runs, before its resources
    /// go to the allocator ([`Engine::agent_registered`] counts them).
    pub fn executors_reported(&mut self, agent_id: &str, reported: Vec<ReportedExecutor>) {
        self.executors.retain(|(a, _, _), _| a != agent_id);
        for r in reported {
            if self.frameworks.contains_key(&r.framework_id) {
                self.executor_launched(agent_id, &r.framework_id, r.info);
            }
        }
    }

    /// What the executors on `agent_id` hold, as (framework, role, resources).
    pub(super) fn executors_used_on(&self, agent_id: &str) -> Vec<(String, String, Resources)> {
        self.executors
            .values()
            .filter(|r| r.agent_id == agent_id)
            .map(|r| (r.framework_id.clone(), r.role.clone(), r.resources.clone()))
            .collect()
    }

    /// The executors of a framework on an agent, for offers' `executor_ids`.
    pub(super) fn executor_ids(&self, framework_id: &str, agent_id: &str) -> Vec<String> {
        self.executors
            .values()
            .filter(|r| r.agent_id == agent_id && r.framework_id == framework_id)
            .map(|r| r.info.executor_id.value.clone())
            .collect()
    }

    /// Every executor the master counts (the operator views).
    pub fn executors(&self) -> impl Iterator<Item = &ExecutorRecord> {
        self.executors.values()
    }

    /// The agent is gone (removed, or marked gone): its executors too.
    pub(super) fn forget_agent_executors(&mut self, agent_id: &str) {
        self.executors.retain(|(a, _, _), _| a != agent_id);
    }

    /// The framework is gone: its executors are not counted any more.
    pub(super) fn forget_framework_executors(&mut self, framework_id: &str) {
        self.executors.retain(|(_, f, _), _| f != framework_id);
    }

    /// The agent says an executor ended: its resources come back and a
    /// custom executor's framework hears FAILURE with its wait status.
    pub fn executor_exited(
        &mut self,
        agent_id: &str,
        framework_id: &str,
        executor_id: &str,
        status: Option<i32>,
        now: Now,
    ) {
        let Some(record) = self
            .executors
            .remove(&table_key(agent_id, framework_id, executor_id))
        else {
            tracing::debug!(%agent_id, %framework_id, %executor_id, "exit of an executor the master does not count");
            return;
        };
        tracing::info!(%agent_id, %framework_id, %executor_id, ?status, "executor exited");
        if self.agents.session(agent_id).is_some() {
            self.allocator.recover(
                framework_id,
                agent_id,
                &record.role,
                &record.resources,
                None,
                now.unix,
            );
            self.allocate_soon();
        }
        if record.custom() {
            let failure = Failure {
                agent_id: Some(Id::new(agent_id)),
                executor_id: Some(Id::new(executor_id)),
                status,
            };
            self.send_framework(framework_id, Event::Failure(failure));
        }
    }

    /// An executor's MESSAGE, to its framework's scheduler.
    pub fn executor_message(
        &mut self,
        agent_id: &str,
        framework_id: &str,
        executor_id: &str,
        data: &[u8],
    ) {
        let message = Message {
            agent_id: Id::new(agent_id),
            executor_id: Id::new(executor_id),
            data: base64_encode(data),
        };
        if !self.send_framework(framework_id, Event::Message(message)) {
            tracing::info!(%framework_id, %executor_id, "executor message dropped: the framework is not connected");
        }
    }

    /// A scheduler's MESSAGE for one of its executors: to the agent (Mesos
    /// answers 202 either way; a message that cannot go is dropped).
    pub fn framework_message(
        &mut self,
        framework_id: &str,
        agent_id: &str,
        executor_id: &str,
        data: Vec<u8>,
    ) {
        let message = ToAgent::FrameworkMessage {
            framework_id: framework_id.to_string(),
            executor_id: executor_id.to_string(),
            data,
        };
        if !self.send_agent(agent_id, message) {
            tracing::info!(%framework_id, %agent_id, %executor_id, "framework message dropped: the agent is not connected");
        }
    }

    /// A scheduler's SHUTDOWN of a custom executor: to its agent.
    pub(super) fn shutdown_custom_executors(&mut self, framework_id: &str, executor_id: &str) {
        let agents: Vec<String> = self
            .executors
            .values()
            .filter(|r| {
                r.framework_id == framework_id
                    && r.info.executor_id.value == executor_id
                    && r.custom()
            })
            .map(|r| r.agent_id.clone())
            .collect();
        for agent_id in agents {
            let message = ToAgent::ShutdownExecutor {
                framework_id: framework_id.to_string(),
                executor_id: executor_id.to_string(),
            };
            self.send_agent(&agent_id, message);
        }
    }
}
