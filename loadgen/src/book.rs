//! One framework's bookkeeping, pure: which logical tasks ("slots") still
//! need launching, the attempts made for each, every state each attempt
//! was seen in, and what to do with an offer or an update. Time is passed
//! in.
//!
//! ```text
//!  slot queued --offer fits--> attempt launched --RUNNING--> running --FINISHED/FAILED/KILLED/ERROR--> final
//!      ^                            |                          |
//!      +-- LOST/DROPPED/GONE/... ---+ (never ran: relaunch)    +-- LOST/...: kept, reconciled again
//! ```
//!
//! A slot is never launched again once an attempt of it was seen running:
//! that would run the work twice. Such an attempt last seen lost counts as
//! lost.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use keel_api::mesos::{CommandInfo, Id, Label, Labels, TaskInfo, TaskState, TaskStatus};
use keel_api::operator::Offer;
use keel_api::resources::v1::Resource;
use keel_client::scheduler::ReconcileTask;
use keel_client::scheduler::compose::task_info;
use serde_json::Value as Json;

/// What a task runs: a shell command for real agents and labels for
/// simulated ones (`keel.sim/duration`, `keel.sim/exit`).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskKind {
    pub command: String,
    pub labels: Vec<(String, String)>,
}

impl TaskKind {
    /// Ends at once with `code` on either kind of agent.
    pub fn exits(code: i32) -> Self {
        TaskKind {
            command: format!("exit {code}"),
            labels: vec![
                ("keel.sim/duration".into(), "0s".into()),
                ("keel.sim/exit".into(), code.to_string()),
            ],
        }
    }

    /// Runs for `d`, then exits 0.
    pub fn sleeps(d: Duration) -> Self {
        TaskKind {
            command: format!("sleep {}", d.as_secs_f64()),
            labels: vec![
                ("keel.sim/duration".into(), format!("{}ms", d.as_millis())),
                ("keel.sim/exit".into(), "0".into()),
            ],
        }
    }
}

/// One launch of a slot.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub task_id: String,
    pub agent_id: String,
    pub accepted_at: Instant,
    pub running_at: Option<Instant>,
    /// Every state seen, in order (reconciliation answers included).
    pub states: Vec<TaskState>,
    /// Heard about lately (updates or reconciliation).
    pub heard_at: Instant,
    /// The master answered its ACCEPT (or the call failed): only then may
    /// it be reconciled (a master that has not yet taken the ACCEPT in
    /// would call it lost, and it would run twice).
    pub answered: bool,
}

impl Attempt {
    pub fn last(&self) -> Option<TaskState> {
        self.states.last().copied()
    }

    /// ACCEPT -> TASK_RUNNING as the framework saw it.
    pub fn latency(&self) -> Option<Duration> {
        Some(self.running_at?.duration_since(self.accepted_at))
    }

    fn ran(&self) -> bool {
        self.running_at.is_some() || self.states.iter().any(|s| is_final(*s))
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Slot {
    pub attempts: Vec<Attempt>,
    /// The state it ended in (FINISHED, FAILED, KILLED or ERROR).
    pub final_state: Option<TaskState>,
}

/// A terminal state the task itself reached (not a loss).
pub fn is_final(s: TaskState) -> bool {
    matches!(
        s,
        TaskState::TASK_FINISHED
            | TaskState::TASK_FAILED
            | TaskState::TASK_KILLED
            | TaskState::TASK_ERROR
    )
}

fn is_loss(s: TaskState) -> bool {
    matches!(
        s,
        TaskState::TASK_LOST
            | TaskState::TASK_DROPPED
            | TaskState::TASK_GONE
            | TaskState::TASK_GONE_BY_OPERATOR
            | TaskState::TASK_UNKNOWN
            | TaskState::TASK_UNREACHABLE
    )
}

pub struct Book {
    prefix: String,
    kinds: Vec<TaskKind>,
    cpus: f64,
    mem: f64,
    pub slots: Vec<Slot>,
    queue: VecDeque<usize>,
    by_task: HashMap<String, (usize, usize)>,
    finals: usize,
    running: usize,
}

impl Book {
    /// `slots` tasks named `<prefix>-<slot>-<attempt>`, slot `i` of kind
    /// `kinds[i % len]`, each taking `cpus` and `mem`.
    pub fn new(prefix: &str, slots: usize, kinds: Vec<TaskKind>, cpus: f64, mem: f64) -> Self {
        Book {
            prefix: prefix.to_string(),
            kinds,
            cpus,
            mem,
            slots: vec![Slot::default(); slots],
            queue: (0..slots).collect(),
            by_task: HashMap::new(),
            finals: 0,
            running: 0,
        }
    }

    pub fn done(&self) -> bool {
        self.finals == self.slots.len()
    }

    pub fn finals(&self) -> usize {
        self.finals
    }

    /// Attempts seen TASK_RUNNING.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Slots waiting for an offer.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The tasks to launch on `offer`: as many queued slots as fit, at
    /// most `most`.
    pub fn plan(&mut self, offer: &Offer, now: Instant, most: usize) -> Vec<TaskInfo> {
        let (mut cpus, mut mem) = (offer.scalar("cpus"), offer.scalar("mem"));
        let role = offer.role().to_string();
        let mut tasks = Vec::new();
        while tasks.len() < most && cpus + 1e-9 >= self.cpus && mem + 1e-9 >= self.mem {
            let Some(slot) = self.queue.pop_front() else {
                break;
            };
            cpus -= self.cpus;
            mem -= self.mem;
            let attempt = self.slots[slot].attempts.len();
            let task_id = format!("{}-{slot}-{attempt}", self.prefix);
            let kind = &self.kinds[slot % self.kinds.len()];
            let resources = vec![
                Resource::scalar("cpus", self.cpus).allocated_to(&role),
                Resource::scalar("mem", self.mem).allocated_to(&role),
            ];
            let command = CommandInfo {
                shell: Some(true),
                value: Some(kind.command.clone()),
                ..CommandInfo::default()
            };
            let mut task = task_info(&task_id, &offer.agent_id, resources, command);
            task.labels = labels(&kind.labels);
            tasks.push(task);
            self.by_task.insert(task_id.clone(), (slot, attempt));
            self.slots[slot].attempts.push(Attempt {
                task_id,
                agent_id: offer.agent_id.value.clone(),
                accepted_at: now,
                running_at: None,
                states: Vec::new(),
                heard_at: now,
                answered: false,
            });
        }
        tasks
    }

    /// Records `status`; whether it was a task of this book.
    pub fn update(&mut self, status: &TaskStatus, now: Instant) -> bool {
        let Some(&(slot, attempt)) = self.by_task.get(&status.task_id.value) else {
            return false;
        };
        let s = &mut self.slots[slot];
        let a = &mut s.attempts[attempt];
        a.states.push(status.state);
        a.heard_at = now;
        if status.state == TaskState::TASK_RUNNING && a.running_at.is_none() {
            a.running_at = Some(now);
            self.running += 1;
        }
        if is_final(status.state) {
            if s.final_state.is_none() {
                self.finals += 1;
            }
            s.final_state = Some(status.state);
        } else if is_loss(status.state)
            && !a.ran()
            && attempt + 1 == s.attempts.len()
            && s.final_state.is_none()
        {
            // Never ran: launch it again.
            self.queue.push_back(slot);
        }
        true
    }

    /// The ACCEPTs of `task_ids` were answered.
    pub fn answered(&mut self, task_ids: &[String], now: Instant) {
        for id in task_ids {
            if let Some(&(slot, attempt)) = self.by_task.get(id) {
                let a = &mut self.slots[slot].attempts[attempt];
                a.answered = true;
                a.heard_at = a.heard_at.max(now);
            }
        }
    }

    /// No ACCEPT is in flight any more (its session is gone).
    pub fn answer_all(&mut self, now: Instant) {
        for a in self.slots.iter_mut().flat_map(|s| s.attempts.iter_mut()) {
            if !a.answered {
                a.answered = true;
                a.heard_at = now;
            }
        }
    }

    /// Launched attempts not heard about since `quiet` that may still
    /// change: to reconcile.
    pub fn to_reconcile(&self, now: Instant, quiet: Duration) -> Vec<ReconcileTask> {
        self.slots
            .iter()
            .filter(|s| s.final_state.is_none())
            .filter_map(|s| s.attempts.last())
            .filter(|a| a.answered)
            .filter(|a| !a.last().is_some_and(is_loss) || a.ran())
            .filter(|a| now.duration_since(a.heard_at) >= quiet)
            .map(|a| ReconcileTask {
                task_id: Id::new(&a.task_id),
                agent_id: Some(Id::new(&a.agent_id)),
            })
            .collect()
    }
}

fn labels(pairs: &[(String, String)]) -> Option<Json> {
    if pairs.is_empty() {
        return None;
    }
    let labels = Labels {
        labels: pairs
            .iter()
            .map(|(k, v)| Label {
                key: k.clone(),
                value: Some(v.clone()),
            })
            .collect(),
    };
    serde_json::to_value(labels).ok()
}

#[cfg(test)]
#[path = "book_tests.rs"]
mod tests;
