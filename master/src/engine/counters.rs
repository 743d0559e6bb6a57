//! What the metrics need from the engine, kept pure: counters of events
//! as they happen (terminal tasks, agent registrations and removals),
//! latency samples measured on the engine's clock (offer -> ACCEPT,
//! ACCEPT -> TASK_RUNNING), and [`Gauges`] counted from the state in one
//! pass. The shell reads them into the process's metrics registry
//! (`crate::metrics`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use keel_api::mesos::TaskState;

use super::Engine;
use super::tasks::Key;
use crate::registry::AgentState;

/// Samples kept until the shell takes them (more are dropped).
const SAMPLES_KEPT: usize = 10_000;

/// Events counted since the process started (a takeover keeps them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub tasks_finished: u64,
    pub tasks_failed: u64,
    pub tasks_killed: u64,
    pub tasks_lost: u64,
    pub tasks_error: u64,
    pub tasks_dropped: u64,
    pub tasks_gone: u64,
    pub tasks_gone_by_operator: u64,
    pub slave_registrations: u64,
    pub slave_reregistrations: u64,
    pub slave_removals: u64,
    /// Status updates from agents that changed or repeated a task's state.
    pub valid_status_updates: u64,
    /// Status updates dropped (unknown task, another agent's).
    pub invalid_status_updates: u64,
}

impl Counters {
    /// A task reached the terminal `state`.
    pub(super) fn task_ended(&mut self, state: TaskState) {
        let slot = match state {
            TaskState::TASK_FINISHED => &mut self.tasks_finished,
            TaskState::TASK_FAILED => &mut self.tasks_failed,
            TaskState::TASK_KILLED => &mut self.tasks_killed,
            TaskState::TASK_LOST => &mut self.tasks_lost,
            TaskState::TASK_ERROR => &mut self.tasks_error,
            TaskState::TASK_DROPPED => &mut self.tasks_dropped,
            TaskState::TASK_GONE => &mut self.tasks_gone,
            TaskState::TASK_GONE_BY_OPERATOR => &mut self.tasks_gone_by_operator,
            _ => return,
        };
        *slot += 1;
    }
}

/// A latency the engine measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample {
    /// From an offer's creation to the ACCEPT that took it.
    OfferToAccept(Duration),
    /// From the ACCEPT that launched a task to its first TASK_RUNNING.
    AcceptToRunning(Duration),
}

/// The counters, the samples not yet taken, and when each task still on
/// its way to TASK_RUNNING was accepted.
#[derive(Debug, Default)]
pub(super) struct Metering {
    pub(super) counters: Counters,
    samples: Vec<Sample>,
    accepted_at: HashMap<Key, Instant>,
}

impl Metering {
    pub(super) fn sample(&mut self, s: Sample) {
        if self.samples.len() < SAMPLES_KEPT {
            self.samples.push(s);
        }
    }

    pub(super) fn accepted(&mut self, k: Key, at: Instant) {
        self.accepted_at.insert(k, at);
    }

    /// A task changed to `state` at `now`.
    pub(super) fn task_state(&mut self, k: &Key, state: TaskState, now: Instant) {
        if state == TaskState::TASK_RUNNING {
            if let Some(at) = self.accepted_at.remove(k) {
                self.sample(Sample::AcceptToRunning(now.saturating_duration_since(at)));
            }
        } else if state.is_terminal() {
            self.accepted_at.remove(k);
        }
    }

    pub(super) fn forget(&mut self, k: &Key) {
        self.accepted_at.remove(k);
    }

    /// Runtime state is dropped (a step down); counters stay.
    pub(super) fn reset(&mut self) {
        self.accepted_at.clear();
        self.samples.clear();
    }
}

/// The state's gauges, counted in one pass over agents, frameworks,
/// tasks and offers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gauges {
    pub elected: bool,
    /// `(name, total, used)` for cpus, mem, disk and gpus over the agents
    /// that are registered (connected or not; not unreachable).
    pub resources: [(&'static str, f64, f64); 4],
    pub agents_connected: u64,
    pub agents_disconnected: u64,
    pub agents_unreachable: u64,
    pub frameworks_connected: u64,
    pub frameworks_disconnected: u64,
    pub tasks_staging: u64,
    pub tasks_starting: u64,
    pub tasks_running: u64,
    pub tasks_killing: u64,
    pub tasks_unreachable: u64,
    pub outstanding_offers: u64,
}

const RESOURCES: [&str; 4] = ["cpus", "mem", "disk", "gpus"];

impl Engine {
    /// The counters so far.
    pub fn counters(&self) -> &Counters {
        &self.metering.counters
    }

    /// The latency samples measured since the last call.
    pub fn take_samples(&mut self) -> Vec<Sample> {
        std::mem::take(&mut self.metering.samples)
    }

    /// The gauges now.
    pub fn gauges(&self) -> Gauges {
        let mut g = Gauges {
            elected: self.elected_time.is_some(),
            resources: RESOURCES.map(|r| (r, 0.0, 0.0)),
            outstanding_offers: self.offers.offers.len() as u64,
            ..Gauges::default()
        };
        for a in self.registry.agents() {
            match a.state {
                AgentState::Active => g.agents_connected += 1,
                AgentState::Disconnected => g.agents_disconnected += 1,
                AgentState::Unreachable => {
                    g.agents_unreachable += 1;
                    continue;
                }
            }
            let total = a.total_resources();
            for slot in &mut g.resources {
                slot.1 += total.scalar(slot.0);
            }
        }
        for f in self.frameworks.values() {
            if f.connected() {
                g.frameworks_connected += 1;
            } else {
                g.frameworks_disconnected += 1;
            }
        }
        for t in self.tasks.values() {
            let slot = match t.state {
                TaskState::TASK_STAGING => &mut g.tasks_staging,
                TaskState::TASK_STARTING => &mut g.tasks_starting,
                TaskState::TASK_RUNNING => &mut g.tasks_running,
                TaskState::TASK_KILLING => &mut g.tasks_killing,
                TaskState::TASK_UNREACHABLE => {
                    g.tasks_unreachable += 1;
                    continue;
                }
                _ => continue,
            };
            *slot += 1;
            for used in &mut g.resources {
                used.2 += t.resources.scalar(used.0);
            }
        }
        g
    }
}
