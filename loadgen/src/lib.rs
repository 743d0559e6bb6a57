//! A framework load generator on the real Mesos v1 scheduler API, through
//! keel-client (the one client of the master): `frameworks` frameworks in
//! `roles` roles take offers and launch small tasks as fast as offers
//! allow, acknowledge every update, follow the leader across a failover
//! (subscribing again with their id, then reconciling), and record every
//! state each task was seen in and ACCEPT -> TASK_RUNNING as the framework
//! saw it. Used by the scale tests (`master/tests/scale.rs`) and
//! `cargo xtask bench-scale`.
//!
//! - [`book`]: one framework's bookkeeping, pure.
//! - `framework`: one framework's I/O.
//! - [`Report`]: what happened, for assertions and figures.

pub mod book;
mod framework;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use keel_api::mesos::TaskState;
use keel_client::{Client, ClientError};

pub use book::{Attempt, Slot, TaskKind, is_final};

#[derive(Debug, Clone)]
pub struct Workload {
    pub frameworks: usize,
    pub roles: usize,
    /// Tasks in all (spread evenly over the frameworks).
    pub tasks: usize,
    pub cpus: f64,
    pub mem: f64,
    /// Tasks launched on one offer at most (spreads them over agents).
    pub per_offer: usize,
    /// Task `i` of a framework is of kind `kinds[i % len]`.
    pub kinds: Vec<TaskKind>,
    /// Every framework must be done within this.
    pub deadline: Duration,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            frameworks: 1,
            roles: 1,
            tasks: 10,
            cpus: 0.01,
            mem: 1.0,
            per_offer: 10,
            kinds: vec![TaskKind::exits(0)],
            deadline: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("framework {framework}: {finished} of {total} tasks ended before the deadline")]
    Deadline {
        framework: String,
        finished: usize,
        total: usize,
    },
    #[error("the master removed the framework: {0}")]
    Removed(String),
    #[error("the event stream ended")]
    StreamEnded,
    #[error("a framework task panicked: {0}")]
    Join(String),
}

/// Counters for whoever watches a run: attempts launched, seen running,
/// tasks ended.
#[derive(Debug, Default)]
pub struct Progress {
    pub launched: AtomicU64,
    pub running: AtomicU64,
    pub ended: AtomicU64,
}

/// One framework's outcome.
#[derive(Debug, Clone)]
pub struct FrameworkReport {
    pub name: String,
    pub role: String,
    pub framework_id: Option<String>,
    pub slots: Vec<Slot>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub frameworks: Vec<FrameworkReport>,
    pub started: Instant,
    pub finished: Instant,
}

impl Report {
    /// The final state of every task, by `(framework name, slot)`.
    pub fn final_states(&self) -> BTreeMap<(String, usize), Option<TaskState>> {
        self.frameworks
            .iter()
            .flat_map(|f| {
                f.slots
                    .iter()
                    .enumerate()
                    .map(|(i, s)| ((f.name.clone(), i), s.final_state))
            })
            .collect()
    }

    fn attempts(&self) -> impl Iterator<Item = (&FrameworkReport, usize, &Attempt)> {
        self.frameworks.iter().flat_map(|f| {
            f.slots
                .iter()
                .enumerate()
                .flat_map(move |(i, s)| s.attempts.iter().map(move |a| (f, i, a)))
        })
    }

    /// Tasks seen running that never reached a final state: lost work.
    pub fn lost(&self) -> Vec<String> {
        self.attempts()
            .filter(|(_, _, a)| a.running_at.is_some() && !a.states.iter().any(|s| is_final(*s)))
            .map(|(_, _, a)| a.task_id.clone())
            .collect()
    }

    /// Slots run more than once (two attempts seen running or ended).
    pub fn duplicated(&self) -> Vec<(String, usize)> {
        self.frameworks
            .iter()
            .flat_map(|f| {
                f.slots.iter().enumerate().filter_map(move |(i, s)| {
                    let ran = s
                        .attempts
                        .iter()
                        .filter(|a| a.running_at.is_some() || a.states.iter().any(|x| is_final(*x)))
                        .count();
                    (ran > 1).then(|| (f.name.clone(), i))
                })
            })
            .collect()
    }

    /// Every attempt of slot `slot` of framework `name`: task id, agent
    /// and the states seen (for failure messages).
    pub fn describe(&self, name: &str, slot: usize) -> String {
        self.frameworks
            .iter()
            .filter(|f| f.name == name)
            .flat_map(|f| f.slots.get(slot))
            .flat_map(|s| s.attempts.iter())
            .map(|a| format!("{} on {}: {:?}", a.task_id, a.agent_id, a.states))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Attempts launched (relaunches included).
    pub fn launched(&self) -> usize {
        self.attempts().count()
    }

    /// ACCEPT -> TASK_RUNNING of every attempt seen running, sorted.
    pub fn latencies(&self) -> Vec<Duration> {
        let mut l: Vec<Duration> = self
            .attempts()
            .filter_map(|(_, _, a)| a.latency())
            .collect();
        l.sort();
        l
    }

    /// Tasks seen running per second, from the first ACCEPT to the last
    /// TASK_RUNNING.
    pub fn placements_per_second(&self) -> f64 {
        let first = self.attempts().map(|(_, _, a)| a.accepted_at).min();
        let last = self.attempts().filter_map(|(_, _, a)| a.running_at).max();
        let n = self
            .attempts()
            .filter(|(_, _, a)| a.running_at.is_some())
            .count();
        match (first, last) {
            (Some(f), Some(l)) if l > f => n as f64 / l.duration_since(f).as_secs_f64(),
            _ => 0.0,
        }
    }
}

/// Runs `workload` against the masters `client` talks to.
pub async fn run(client: Arc<Client>, workload: &Workload) -> Result<Report, LoadError> {
    run_with(client, workload, Arc::new(Progress::default())).await
}

/// [`run`], counting into `progress` as it goes.
pub async fn run_with(
    client: Arc<Client>,
    workload: &Workload,
    progress: Arc<Progress>,
) -> Result<Report, LoadError> {
    let started = Instant::now();
    let deadline = started + workload.deadline;
    let n = workload.frameworks.max(1);
    let mut set = tokio::task::JoinSet::new();
    for f in 0..n {
        let slots = workload.tasks / n + usize::from(f < workload.tasks % n);
        let name = format!("loadgen-{f}");
        let mut fw = framework::Framework {
            role: format!("load{}", f % workload.roles.max(1)),
            framework_id: None,
            book: book::Book::new(
                &format!("f{f}"),
                slots,
                workload.kinds.clone(),
                workload.cpus,
                workload.mem,
            ),
            name,
        };
        let (client, progress) = (client.clone(), progress.clone());
        let per_offer = workload.per_offer.max(1);
        set.spawn(async move {
            let result = fw.run(&client, &progress, per_offer, deadline).await;
            (f, fw, result)
        });
    }
    let mut frameworks: Vec<Option<FrameworkReport>> = vec![None; n];
    let mut first_error = None;
    while let Some(joined) = set.join_next().await {
        let (f, fw, result) = joined.map_err(|e| LoadError::Join(e.to_string()))?;
        if let Err(e) = result {
            tracing::warn!(framework = %fw.name, error = %e, "framework failed");
            first_error.get_or_insert(e);
        }
        frameworks[f] = Some(FrameworkReport {
            name: fw.name,
            role: fw.role,
            framework_id: fw.framework_id,
            slots: fw.book.slots,
        });
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(Report {
        frameworks: frameworks.into_iter().flatten().collect(),
        started,
        finished: Instant::now(),
    })
}
