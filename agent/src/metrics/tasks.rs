//! What the task runtime counts for the agent's metrics: tasks by state
//! (`slave/tasks_*`), executors (`slave/executors_running`,
//! `slave/executors_terminated`), fetches
//! (`containerizer/fetcher/task_fetches_*`) and the launch phases' and
//! fetch's durations (`keel_agent_launch_*_seconds`).
//!
//! [`TaskTally`] is pure: the runtime tells it each task's transitions
//! (launched, each state it reports, recovered after a restart) and it
//! keeps the gauges and counters Mesos' agent keeps. [`RuntimeMetrics`]
//! is the shared handle (a tally under a lock, and the timings).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use keel_api::mesos::TaskState;
use keel_telemetry::metrics::prometheus_client::registry::Registry;
use keel_telemetry::metrics::{Snapshot, Timing};

/// Mesos' current-state gauges (`slave/tasks_<state>`).
pub const CURRENT: [&str; 4] = ["staging", "starting", "running", "killing"];
/// Mesos' terminal counters (`slave/tasks_<state>`).
pub const EXITS: [&str; 4] = ["finished", "failed", "killed", "lost"];

/// The gauge or counter a state counts under; `None` for states Mesos'
/// agent does not count (TASK_ERROR and the partition-aware ones).
fn label(state: TaskState) -> Option<&'static str> {
    Some(match state {
        TaskState::TASK_STAGING => "staging",
        TaskState::TASK_STARTING => "starting",
        TaskState::TASK_RUNNING => "running",
        TaskState::TASK_KILLING => "killing",
        TaskState::TASK_FINISHED => "finished",
        TaskState::TASK_FAILED => "failed",
        TaskState::TASK_KILLED => "killed",
        TaskState::TASK_LOST => "lost",
        _ => return None,
    })
}

/// Tasks and executors as the runtime reported them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TaskTally {
    current: BTreeMap<&'static str, u64>,
    exits: BTreeMap<&'static str, u64>,
    /// Live tasks per executor, by (framework, executor).
    executors: BTreeMap<(String, String), u64>,
    executors_terminated: u64,
    fetches: [u64; 2],
}

impl TaskTally {
    fn down(&mut self, state: Option<TaskState>) {
        let l = state.map_or(Some("staging"), label);
        if let Some(n) = l.and_then(|l| self.current.get_mut(l)) {
            *n = n.saturating_sub(1);
        }
    }

    /// A task accepted for launch: staging, its executor alive.
    pub fn launched(&mut self, framework: &str, executor: &str) {
        *self.current.entry("staging").or_default() += 1;
        *self
            .executors
            .entry((framework.to_string(), executor.to_string()))
            .or_default() += 1;
    }

    /// A task of `executor` moved from `prev` (`None`: staging) to `next`.
    /// A terminal state is counted once; nothing follows it.
    pub fn changed(
        &mut self,
        framework: &str,
        executor: &str,
        prev: Option<TaskState>,
        next: TaskState,
    ) {
        if prev.is_some_and(TaskState::is_terminal) || prev == Some(next) {
            return;
        }
        self.down(prev);
        let l = label(next);
        if !next.is_terminal() {
            if let Some(l) = l {
                *self.current.entry(l).or_default() += 1;
            }
            return;
        }
        if let Some(l) = l {
            *self.exits.entry(l).or_default() += 1;
        }
        let key = (framework.to_string(), executor.to_string());
        if let Some(n) = self.executors.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.executors.remove(&key);
                self.executors_terminated += 1;
            }
        }
    }

    /// A task found in the checkpoints after a restart, in `state`
    /// (`None`: no update yet): counted as it is, its exit not again.
    pub fn recovered(&mut self, framework: &str, executor: &str, state: Option<TaskState>) {
        if state.is_some_and(TaskState::is_terminal) {
            return;
        }
        self.launched(framework, executor);
        if state.is_some() {
            self.down(None);
            if let Some(l) = state.and_then(label) {
                *self.current.entry(l).or_default() += 1;
            }
        }
    }

    /// A task's URIs fetched (`ok`) or not.
    pub fn fetched(&mut self, ok: bool) {
        self.fetches[usize::from(!ok)] += 1;
    }

    pub fn current(&self, state: &str) -> u64 {
        self.current.get(state).copied().unwrap_or(0)
    }

    pub fn exits(&self, state: &str) -> u64 {
        self.exits.get(state).copied().unwrap_or(0)
    }

    pub fn executors_running(&self) -> u64 {
        self.executors.len() as u64
    }

    pub fn executors_terminated(&self) -> u64 {
        self.executors_terminated
    }

    /// Fetches that succeeded and failed.
    pub fn fetches(&self) -> (u64, u64) {
        (self.fetches[0], self.fetches[1])
    }

    /// Mesos' snapshot keys.
    pub fn write(&self, out: &mut Snapshot) {
        for s in CURRENT {
            out.insert(format!("slave/tasks_{s}"), self.current(s) as f64);
        }
        for s in EXITS {
            out.insert(format!("slave/tasks_{s}"), self.exits(s) as f64);
        }
        out.insert(
            "slave/executors_running".into(),
            self.executors_running() as f64,
        );
        out.insert(
            "slave/executors_terminated".into(),
            self.executors_terminated as f64,
        );
        out.insert(
            "containerizer/fetcher/task_fetches_succeeded".into(),
            self.fetches[0] as f64,
        );
        out.insert(
            "containerizer/fetcher/task_fetches_failed".into(),
            self.fetches[1] as f64,
        );
    }
}

/// A launch phase the supervisor times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The prestart hooks (cgroup, network, mounts, ...).
    Prestart,
    /// Fetching the task's URIs.
    Fetch,
    /// Spawning the process through the launcher.
    Spawn,
}

/// The tally and the timings, shared by the runtime (which counts) and
/// the port (which shows).
#[derive(Debug)]
pub struct RuntimeMetrics {
    tally: Mutex<TaskTally>,
    phases: [Timing; 3],
}

/// How long the timers keep samples.
const WINDOW: Duration = Duration::from_secs(3600);

impl RuntimeMetrics {
    /// Registers the launch histograms in `registry`
    /// (`keel_agent_launch_{prestart,fetch,spawn}_seconds`).
    pub fn new(registry: &mut Registry) -> RuntimeMetrics {
        let mut timing = |name: &str, help: &str| Timing::new(registry, name, help, WINDOW);
        RuntimeMetrics {
            tally: Mutex::default(),
            phases: [
                timing(
                    "keel_agent_launch_prestart",
                    "Prestart hooks of one task launch",
                ),
                timing("keel_agent_launch_fetch", "Fetching one task's URIs"),
                timing("keel_agent_launch_spawn", "Spawning one task's process"),
            ],
        }
    }

    /// Metrics nobody reads (a runtime started without an agent port).
    pub fn detached() -> RuntimeMetrics {
        RuntimeMetrics::new(&mut Registry::default())
    }

    /// Changes the tally.
    pub fn tally(&self, f: impl FnOnce(&mut TaskTally)) {
        f(&mut self.tally.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// A copy of the tally.
    pub fn read(&self) -> TaskTally {
        self.tally.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// One launch phase took `took`.
    pub fn phase(&self, phase: Phase, took: Duration) {
        self.phases[phase as usize].observe(Instant::now(), took);
    }

    /// The timers as Mesos' snapshot keys
    /// (`slave/launch_{prestart,fetch,spawn}_ms`).
    pub fn write_timers(&self, out: &mut Snapshot) {
        let now = Instant::now();
        for (timing, name) in self.phases.iter().zip(["prestart", "fetch", "spawn"]) {
            timing.write(&format!("slave/launch_{name}_ms"), now, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskState::*;

    #[test]
    fn a_workload_is_counted_as_mesos_counts_it() {
        let mut t = TaskTally::default();
        for (task, ends) in [
            ("ok", TASK_FINISHED),
            ("bad", TASK_FAILED),
            ("long", TASK_KILLED),
        ] {
            t.launched("f", task);
            assert_eq!(t.current("staging"), 1);
            t.changed("f", task, None, TASK_STARTING);
            t.changed("f", task, Some(TASK_STARTING), TASK_RUNNING);
            assert_eq!((t.current("staging"), t.current("running")), (0, 1));
            // A re-sent update changes nothing.
            t.changed("f", task, Some(TASK_RUNNING), TASK_RUNNING);
            t.changed("f", task, Some(TASK_RUNNING), ends);
            // Nothing after a terminal state counts.
            t.changed("f", task, Some(ends), TASK_LOST);
        }
        assert_eq!(t.current("running"), 0);
        assert_eq!(
            (t.exits("finished"), t.exits("failed"), t.exits("killed")),
            (1, 1, 1)
        );
        assert_eq!(t.exits("lost"), 0);
        assert_eq!((t.executors_running(), t.executors_terminated()), (0, 3));
    }

    #[test]
    fn a_task_group_is_one_executor_and_recovery_counts_no_exit_twice() {
        let mut t = TaskTally::default();
        t.launched("f", "group");
        t.launched("f", "group");
        assert_eq!(t.executors_running(), 1);
        t.changed("f", "group", None, TASK_ERROR);
        assert_eq!((t.executors_running(), t.executors_terminated()), (1, 0));
        assert_eq!(t.current("staging"), 1, "TASK_ERROR leaves staging");
        t.changed("f", "group", None, TASK_FAILED);
        assert_eq!((t.executors_running(), t.executors_terminated()), (0, 1));

        let mut r = TaskTally::default();
        r.recovered("f", "a", Some(TASK_RUNNING));
        r.recovered("f", "b", None);
        r.recovered("f", "c", Some(TASK_FINISHED));
        assert_eq!((r.current("running"), r.current("staging")), (1, 1));
        assert_eq!((r.exits("finished"), r.executors_running()), (0, 2));
        r.fetched(true);
        r.fetched(false);
        assert_eq!(r.fetches(), (1, 1));
        let mut s = Snapshot::new();
        r.write(&mut s);
        assert_eq!(s["slave/tasks_running"], 1.0);
        assert_eq!(s["containerizer/fetcher/task_fetches_failed"], 1.0);
    }
}
