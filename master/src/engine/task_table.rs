//! The task table: live tasks by (framework, task) id, indexed by agent,
//! and the completed ones kept for the operator views.
//!
//! Every per-agent question (the tasks an offer's executors come from,
//! what a lost, re-registered or gone agent had) reads the index, so its
//! cost follows the agent's tasks, not the cluster's: offers for 10,000
//! agents over 100,000 tasks had each scanned the whole table.

use std::collections::{BTreeSet, HashMap, VecDeque};

use super::tasks::TaskRecord;

/// Completed tasks remembered for the operator views.
const COMPLETED_KEPT: usize = 1000;

pub(super) type Key = (String, String);

pub(super) fn key(fw: &str, task: &str) -> Key {
    (fw.to_string(), task.to_string())
}

#[derive(Default)]
pub(super) struct TaskTable {
    live: HashMap<Key, TaskRecord>,
    /// Agent id -> the keys of its live tasks, sorted.
    by_agent: HashMap<String, BTreeSet<Key>>,
    completed: VecDeque<TaskRecord>,
}

impl TaskTable {
    pub(super) fn get(&self, k: &Key) -> Option<&TaskRecord> {
        self.live.get(k)
    }

    /// A task to change in place; its agent must not change (the index
    /// would not follow).
    pub(super) fn get_mut(&mut self, k: &Key) -> Option<&mut TaskRecord> {
        self.live.get_mut(k)
    }

    pub(super) fn contains(&self, k: &Key) -> bool {
        self.live.contains_key(k)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &TaskRecord> {
        self.live.values()
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &Key> {
        self.live.keys()
    }

    /// Adds (or replaces) a live task.
    pub(super) fn insert(&mut self, k: Key, record: TaskRecord) {
        let agent = record.agent_id.clone();
        if let Some(old) = self.live.insert(k.clone(), record)
            && old.agent_id != agent
        {
            self.unindex(&old.agent_id, &k);
        }
        self.by_agent.entry(agent).or_default().insert(k);
    }

    /// Moves a live task to the completed ones.
    pub(super) fn complete(&mut self, k: &Key) {
        if let Some(t) = self.live.remove(k) {
            self.unindex(&t.agent_id, k);
            self.completed.push_back(t);
            while self.completed.len() > COMPLETED_KEPT {
                self.completed.pop_front();
            }
        }
    }

    /// The keys of the live tasks on `agent_id`, sorted.
    pub(super) fn keys_on(&self, agent_id: &str) -> Vec<Key> {
        self.by_agent
            .get(agent_id)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The live tasks on `agent_id`, in key order.
    pub(super) fn on_agent<'a>(&'a self, agent_id: &str) -> impl Iterator<Item = &'a TaskRecord> {
        self.by_agent
            .get(agent_id)
            .into_iter()
            .flatten()
            .filter_map(|k| self.live.get(k))
    }

    pub(super) fn completed(&self) -> impl DoubleEndedIterator<Item = &TaskRecord> {
        self.completed.iter()
    }

    fn unindex(&mut self, agent_id: &str, k: &Key) {
        if let Some(keys) = self.by_agent.get_mut(agent_id) {
            keys.remove(k);
            if keys.is_empty() {
                self.by_agent.remove(agent_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_api::mesos::TaskState;

    fn task_record(fw: &str, task: &str, agent: &str) -> TaskRecord {
        TaskRecord {
            framework_id: fw.into(),
            task_id: task.into(),
            agent_id: agent.into(),
            executor_id: None,
            name: task.into(),
            info: serde_json::from_value(serde_json::json!({
                "name": task,
                "task_id": {"value": task},
                "agent_id": {"value": agent},
            }))
            .unwrap(),
            resources: Default::default(),
            role: "*".into(),
            state: TaskState::TASK_STAGING,
            statuses: Vec::new(),
            pending_ack: None,
            volumes: Vec::new(),
            kill: None,
        }
    }

    #[test]
    fn the_agent_index_follows_inserts_moves_and_completions() {
        let mut table = TaskTable::default();
        table.insert(key("f", "t1"), task_record("f", "t1", "a1"));
        table.insert(key("f", "t2"), task_record("f", "t2", "a1"));
        table.insert(key("g", "t3"), task_record("g", "t3", "a2"));
        assert_eq!(table.keys_on("a1"), vec![key("f", "t1"), key("f", "t2")]);
        // Reported again from another agent: it moves.
        table.insert(key("f", "t2"), task_record("f", "t2", "a2"));
        assert_eq!(table.keys_on("a1"), vec![key("f", "t1")]);
        assert_eq!(table.keys_on("a2"), vec![key("f", "t2"), key("g", "t3")]);
        table.complete(&key("f", "t1"));
        assert!(table.keys_on("a1").is_empty());
        assert!(!table.by_agent.contains_key("a1"));
        assert_eq!(table.on_agent("a2").count(), 2);
        assert_eq!(table.completed().count(), 1);
        assert!(table.get(&key("f", "t1")).is_none());
    }
}
