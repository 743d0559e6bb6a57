//! What the runtime knows, for the agent's state and operator API: every
//! framework with its executors, each executor with its container, sandbox,
//! cgroup and tasks, and the recently completed ones ([`RuntimeSnapshot`],
//! plain data built in one pass by the actor).
//!
//! The runtime forgets a task once its terminal update is acknowledged;
//! the [`Book`] keeps what outlives that: each framework's latest
//! FrameworkInfo, each task's statuses and its executor's pid while it
//! lives, and afterwards, within Mesos' bounds, completed tasks (per
//! executor), completed executors (per framework) and completed frameworks.

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use keel_api::mesos::{ExecutorInfo, FrameworkInfo, TaskInfo, TaskState};
use keel_api::pb;
use keel_api::resources::Resources;

use super::launching::resources_of;
use super::{Phase, Runtime, Task};
use crate::executor::launcher::ProcessLauncher;
use crate::executor::sandbox;
use crate::executor::updates::TaskKey;

/// Mesos' `--max_completed_executors_per_framework` default.
pub const MAX_COMPLETED_EXECUTORS: usize = 150;
/// Mesos' `--max_completed_tasks_per_executor` default.
pub const MAX_COMPLETED_TASKS: usize = 200;
/// Mesos' `--max_completed_frameworks` default.
pub const MAX_COMPLETED_FRAMEWORKS: usize = 50;
/// Statuses kept per task (a task whose health flaps sends many): the
/// first and the most recent ones.
pub const MAX_STATUSES: usize = 100;

/// Everything the runtime knows, at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeSnapshot {
    pub agent_id: Option<String>,
    /// Frameworks with a live executor.
    pub frameworks: Vec<FrameworkSnapshot>,
    /// Frameworks whose executors all completed (most recent last).
    pub completed_frameworks: Vec<FrameworkSnapshot>,
}

impl RuntimeSnapshot {
    /// Live and completed frameworks.
    pub fn all_frameworks(&self) -> impl Iterator<Item = &FrameworkSnapshot> {
        self.frameworks.iter().chain(&self.completed_frameworks)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FrameworkSnapshot {
    pub framework_id: String,
    /// The latest FrameworkInfo a launch carried (`None`: none was readable).
    pub info: Option<FrameworkInfo>,
    pub executors: Vec<ExecutorSnapshot>,
    pub completed_executors: Vec<ExecutorSnapshot>,
}

/// An executor: a task group's, or a command task's own.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorSnapshot {
    pub framework_id: String,
    pub executor_id: String,
    /// The task group's ExecutorInfo; `None` for a command task.
    pub info: Option<ExecutorInfo>,
    pub container_id: String,
    /// The run directory (the executor's sandbox).
    pub directory: Option<PathBuf>,
    /// The container's cgroup directory, when it has one.
    pub cgroup: Option<PathBuf>,
    pub pid: Option<u32>,
    /// The container's address on the agent's network.
    pub ip: Option<Ipv4Addr>,
    /// The executor's resources and those of its live tasks.
    pub resources: Resources,
    /// Live tasks, and terminal ones whose update is not acknowledged.
    pub tasks: Vec<TaskSnapshot>,
    pub completed_tasks: Vec<TaskSnapshot>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskSnapshot {
    pub framework_id: String,
    pub task_id: String,
    pub executor_id: String,
    pub container_id: String,
    /// `None` for a task whose TaskInfo could not be read.
    pub info: Option<TaskInfo>,
    /// The latest state (`None`: no update yet).
    pub state: Option<TaskState>,
    /// Every update, oldest first.
    pub statuses: Vec<pb::TaskStatus>,
    pub sandbox: Option<PathBuf>,
}

impl TaskSnapshot {
    pub fn is_terminal(&self) -> bool {
        self.state.is_some_and(TaskState::is_terminal)
    }
}

/// What the runtime keeps beside its live tasks (see the module doc).
#[derive(Debug, Default)]
pub(super) struct Book {
    frameworks: BTreeMap<String, FrameworkInfo>,
    executors: BTreeMap<(String, String), ExecutorInfo>,
    statuses: BTreeMap<TaskKey, Vec<pb::TaskStatus>>,
    pids: BTreeMap<(String, String), u32>,
    /// Completed tasks of executors that still live.
    finished: BTreeMap<(String, String), VecDeque<TaskSnapshot>>,
    /// Completed executors per framework, and when the last one completed.
    completed: BTreeMap<String, (u64, VecDeque<ExecutorSnapshot>)>,
    seq: u64,
}

impl Book {
    /// A launch for `framework_id` (its info, and the task group's executor).
    pub(super) fn launch(
        &mut self,
        framework_id: &str,
        info: Option<&FrameworkInfo>,
        executor: Option<&ExecutorInfo>,
    ) {
        if let Some(info) = info {
            self.frameworks
                .insert(framework_id.to_string(), info.clone());
        }
        if let Some(e) = executor {
            let key = (framework_id.to_string(), e.executor_id.value.clone());
            self.executors.insert(key, e.clone());
        }
    }

    pub(super) fn pid(&mut self, framework_id: &str, executor_id: &str, pid: u32) {
        let key = (framework_id.to_string(), executor_id.to_string());
        self.pids.entry(key).or_insert(pid);
    }

    fn executor_pid(&self, framework_id: &str, executor_id: &str) -> Option<u32> {
        let key = (framework_id.to_string(), executor_id.to_string());
        self.pids.get(&key).copied()
    }

    pub(super) fn status(&mut self, key: &TaskKey, status: &pb::TaskStatus) {
        let statuses = self.statuses.entry(key.clone()).or_default();
        statuses.push(status.clone());
        if statuses.len() > MAX_STATUSES {
            statuses.remove(1);
        }
    }

    /// Keeps `task` as completed; with `last`, its executor completes too.
    fn retire(&mut self, task: TaskSnapshot, executor: Option<ExecutorSnapshot>, live: &[&str]) {
        let key = (task.framework_id.clone(), task.executor_id.clone());
        let finished = self.finished.entry(key.clone()).or_default();
        push_bounded(finished, task, MAX_COMPLETED_TASKS);
        let Some(mut executor) = executor else {
            return;
        };
        executor.completed_tasks = self.finished.remove(&key).unwrap_or_default().into();
        self.pids.remove(&key);
        self.executors.remove(&key);
        self.seq += 1;
        let entry = self
            .completed
            .entry(key.0.clone())
            .or_insert_with(|| (0, VecDeque::new()));
        entry.0 = self.seq;
        push_bounded(&mut entry.1, executor, MAX_COMPLETED_EXECUTORS);
        // Frameworks with nothing live: the most recent ones are kept.
        let mut idle: Vec<(u64, String)> = self
            .completed
            .iter()
            .filter(|(fw, _)| !live.contains(&fw.as_str()))
            .map(|(fw, (seq, _))| (*seq, fw.clone()))
            .collect();
        idle.sort();
        while idle.len() > MAX_COMPLETED_FRAMEWORKS {
            let (_, fw) = idle.remove(0);
            self.completed.remove(&fw);
            self.frameworks.remove(&fw);
        }
    }
}

fn push_bounded<T>(q: &mut VecDeque<T>, item: T, max: usize) {
    q.push_back(item);
    while q.len() > max {
        q.pop_front();
    }
}

impl<L: ProcessLauncher> Runtime<L> {
    /// Mesos' `ContainerStatus` of the task's container, for its updates.
    pub(super) fn container_status(&self, key: &TaskKey) -> Option<pb::ContainerStatus> {
        let task = self.tasks.get(key)?;
        Some(pb::ContainerStatus {
            container_id: task.container_id.clone(),
            parent_id: String::new(),
            executor_pid: self.book.executor_pid(&key.framework_id, &task.executor_id),
            ip_addresses: self
                .container_ips
                .get(&task.container_id)
                .map(|ip| vec![ip.to_string()])
                .unwrap_or_default(),
        })
    }

    /// The task is forgotten (its terminal update acknowledged): it is
    /// kept as completed, and its executor too when it was the last task.
    pub(super) fn retire(&mut self, key: &TaskKey) {
        let Some(task) = self.tasks.get(key) else {
            return;
        };
        let snapshot = self.task_snapshot(key, task);
        let last = !self.tasks.iter().any(|(k, t)| {
            k != key && k.framework_id == key.framework_id && t.executor_id == task.executor_id
        });
        let executor = last.then(|| ExecutorSnapshot {
            tasks: Vec::new(),
            ..self.executor_snapshot(&key.framework_id, &[(key, task)])
        });
        let live: Vec<String> = self
            .tasks
            .keys()
            .filter(|k| *k != key)
            .map(|k| k.framework_id.clone())
            .collect();
        let live: Vec<&str> = live.iter().map(String::as_str).collect();
        self.book.retire(snapshot, executor, &live);
        self.book.statuses.remove(key);
    }

    fn task_snapshot(&self, key: &TaskKey, task: &Task) -> TaskSnapshot {
        let mut statuses = self.book.statuses.get(key).cloned().unwrap_or_default();
        if statuses.is_empty() {
            statuses.extend(task.latest.clone());
        }
        let run_dir = self.run_dir(&key.framework_id, task);
        let sandbox = match (&task.group, run_dir) {
            (Some(_), Some(run)) => sandbox::task_dir(&run, &key.task_id).ok(),
            (None, run) => run,
            (Some(_), None) => None,
        };
        TaskSnapshot {
            framework_id: key.framework_id.clone(),
            task_id: key.task_id.clone(),
            executor_id: task.executor_id.clone(),
            container_id: task.container_id.clone(),
            info: task.spec().map(|s| s.info().clone()),
            state: task
                .latest
                .as_ref()
                .and_then(|s| TaskState::from_name(&s.state)),
            statuses,
            sandbox,
        }
    }

    fn run_dir(&self, framework_id: &str, task: &Task) -> Option<PathBuf> {
        let agent_id = self
            .agent_id
            .clone()
            .or_else(|| task.spec().map(|s| s.info().agent_id.value.clone()))?;
        let runs = sandbox::runs_dir(
            &self.config.work_dir,
            &agent_id,
            framework_id,
            &task.executor_id,
        )
        .ok()?;
        sandbox::run_dir(&runs, &task.container_id).ok()
    }

    /// One executor from its tasks (all of the same framework and executor).
    fn executor_snapshot(
        &self,
        framework_id: &str,
        tasks: &[(&TaskKey, &Task)],
    ) -> ExecutorSnapshot {
        let (_, first) = tasks[0];
        let executor_id = first.executor_id.clone();
        let book_key = (framework_id.to_string(), executor_id.clone());
        let mut resources = self
            .group_executors
            .get(&first.container_id)
            .cloned()
            .unwrap_or_default();
        for (_, t) in tasks.iter().filter(|(_, t)| t.phase != Phase::Terminal) {
            if let Some(spec) = t.spec() {
                resources.add(&resources_of(&spec.info().resources));
            }
        }
        ExecutorSnapshot {
            framework_id: framework_id.to_string(),
            info: self.book.executors.get(&book_key).cloned(),
            container_id: first.container_id.clone(),
            directory: self.run_dir(framework_id, first),
            cgroup: self.container_cgroup(&first.container_id),
            pid: self.book.pids.get(&book_key).copied(),
            ip: self.container_ips.get(&first.container_id).copied(),
            resources,
            tasks: tasks
                .iter()
                .map(|(k, t)| self.task_snapshot(k, t))
                .collect(),
            completed_tasks: self
                .book
                .finished
                .get(&book_key)
                .map(|q| q.iter().cloned().collect())
                .unwrap_or_default(),
            executor_id,
        }
    }

    /// Everything, at once (see [`RuntimeSnapshot`]).
    pub(super) fn snapshot(&self) -> RuntimeSnapshot {
        let mut by_executor: BTreeMap<(&str, &str), Vec<(&TaskKey, &Task)>> = BTreeMap::new();
        for (key, task) in &self.tasks {
            by_executor
                .entry((key.framework_id.as_str(), task.executor_id.as_str()))
                .or_default()
                .push((key, task));
        }
        let mut live: BTreeMap<&str, Vec<ExecutorSnapshot>> = BTreeMap::new();
        for ((fw, _), tasks) in &by_executor {
            live.entry(fw)
                .or_default()
                .push(self.executor_snapshot(fw, tasks));
        }
        let completed_of = |fw: &str| -> Vec<ExecutorSnapshot> {
            self.book
                .completed
                .get(fw)
                .map(|(_, q)| q.iter().cloned().collect())
                .unwrap_or_default()
        };
        let frameworks = live
            .into_iter()
            .map(|(fw, executors)| FrameworkSnapshot {
                framework_id: fw.to_string(),
                info: self.book.frameworks.get(fw).cloned(),
                executors,
                completed_executors: completed_of(fw),
            })
            .collect::<Vec<_>>();
        let mut idle: Vec<(&u64, &String)> = self
            .book
            .completed
            .iter()
            .filter(|(fw, _)| !frameworks.iter().any(|f| &f.framework_id == *fw))
            .map(|(fw, (seq, _))| (seq, fw))
            .collect();
        idle.sort();
        let completed_frameworks = idle
            .into_iter()
            .map(|(_, fw)| FrameworkSnapshot {
                framework_id: fw.clone(),
                info: self.book.frameworks.get(fw).cloned(),
                executors: Vec::new(),
                completed_executors: completed_of(fw),
            })
            .collect();
        RuntimeSnapshot {
            agent_id: self.agent_id.clone(),
            frameworks,
            completed_frameworks,
        }
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
