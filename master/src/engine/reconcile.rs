//! RECONCILE, explicit (the listed tasks) or implicit (every task the
//! master knows for the framework), answered at the pace the framework's
//! stream takes: at most [`RECONCILE_BURST`] answers at once, the rest as
//! the shell finds room on the stream ([`Engine::reconcile_more`]).
//! Answered all at once, a framework reconciling more tasks than its
//! stream queues (4,096 events) was dropped as a slow reader, subscribed
//! again, reconciled again, and never got out of that loop (found at
//! 100,000 tasks). Answers carry no uuid.

use std::collections::VecDeque;

use keel_api::mesos::{Id, TaskState};
use keel_api::scheduler::ReconcileTask;

use super::tasks::{TaskRecord, key, master_status};
use super::{Engine, Now};
use crate::registry::AgentState;

/// Answers sent within the RECONCILE call itself.
pub const RECONCILE_BURST: usize = 1024;

/// One task still to answer for.
#[derive(Debug, Clone)]
pub(super) enum Asked {
    /// Named by the framework: answered whatever the master knows.
    Named(ReconcileTask),
    /// Known to the master at an implicit reconciliation: answered while
    /// it is still known (one that ended meanwhile had its terminal update
    /// sent the usual way).
    Known(String),
}

impl Engine {
    /// RECONCILE: queues the answers and sends the first of them.
    pub fn reconcile(&mut self, framework_id: &str, tasks: &[ReconcileTask], now: Now) {
        let asked: Vec<Asked> = if tasks.is_empty() {
            let mut mine: Vec<String> = self
                .tasks
                .values()
                .filter(|t| t.framework_id == framework_id)
                .map(|t| t.task_id.clone())
                .collect();
            mine.sort();
            mine.into_iter().map(Asked::Known).collect()
        } else {
            tasks.iter().cloned().map(Asked::Named).collect()
        };
        self.reconciling
            .entry(framework_id.to_string())
            .or_default()
            .extend(asked);
        self.reconcile_more(framework_id, RECONCILE_BURST, now);
    }

    /// Frameworks with answers still to send.
    pub fn reconciling(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.reconciling.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The stream the framework's answers go to, while it has one.
    pub fn stream_of(&self, framework_id: &str) -> Option<String> {
        self.frameworks.get(framework_id)?.stream.clone()
    }

    /// Sends up to `budget` of the framework's waiting answers; how many
    /// are left.
    pub fn reconcile_more(&mut self, framework_id: &str, budget: usize, now: Now) -> usize {
        let Some(queue) = self.reconciling.get_mut(framework_id) else {
            return 0;
        };
        let take = budget.min(queue.len());
        let batch: Vec<Asked> = queue.drain(..take).collect();
        let left = queue.len();
        if left == 0 {
            self.reconciling.remove(framework_id);
        }
        for asked in batch {
            if let Some(status) = self.answer(framework_id, asked, now) {
                self.notify(framework_id, status);
            }
        }
        left
    }

    /// The framework's stream is gone: its waiting answers too (a new
    /// subscription reconciles again).
    pub(super) fn forget_reconciliation(&mut self, framework_id: &str) {
        self.reconciling.remove(framework_id);
    }

    fn answer(
        &self,
        framework_id: &str,
        asked: Asked,
        now: Now,
    ) -> Option<keel_api::mesos::TaskStatus> {
        let t = match asked {
            Asked::Known(task_id) => {
                return self
                    .tasks
                    .get(&key(framework_id, &task_id))
                    .map(|t| self.latest(t, now));
            }
            Asked::Named(t) => t,
        };
        let task_id = t.task_id.value.as_str();
        if let Some(known) = self.tasks.get(&key(framework_id, task_id)) {
            return Some(self.latest(known, now));
        }
        if let Some(done) = self
            .tasks
            .completed()
            .rev()
            .find(|c| c.framework_id == framework_id && c.task_id == task_id)
        {
            return Some(self.latest(done, now));
        }
        let agent = t.agent_id.as_ref().map(|a| a.value.as_str());
        if let Some(agent) = agent
            && self.agents.recovering(agent)
        {
            // Its agent has not re-registered since the takeover: no
            // answer until it does or is marked unreachable (the framework
            // asks again), as Mesos does.
            tracing::debug!(%framework_id, %task_id, agent_id = %agent, "reconciliation dropped: the agent has not re-registered yet");
            return None;
        }
        let agent_state = agent.and_then(|a| self.registry.agent(a)).map(|a| a.state);
        let state = match (self.partition_aware(framework_id), agent_state) {
            (false, _) => TaskState::TASK_LOST,
            (true, Some(AgentState::Unreachable)) => TaskState::TASK_UNREACHABLE,
            (true, Some(_)) => TaskState::TASK_GONE,
            (true, None) => TaskState::TASK_UNKNOWN,
        };
        Some(master_status(
            task_id,
            agent,
            state,
            "REASON_RECONCILIATION",
            "Reconciliation: task is unknown",
            now,
        ))
    }

    /// A known task's latest state, as a reconciliation answer.
    fn latest(&self, t: &TaskRecord, now: Now) -> keel_api::mesos::TaskStatus {
        let mut s = t.statuses.last().cloned().unwrap_or_else(|| {
            master_status(
                &t.task_id,
                Some(&t.agent_id),
                t.state,
                "REASON_RECONCILIATION",
                "Reconciliation: latest task state",
                now,
            )
        });
        s.state = t.state;
        s.uuid = None;
        s.reason = Some("REASON_RECONCILIATION".into());
        s.agent_id = Some(Id::new(&t.agent_id));
        s
    }
}

/// Waiting answers, by framework.
pub(super) type Backlog = std::collections::HashMap<String, VecDeque<Asked>>;
