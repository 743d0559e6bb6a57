//! What the framework's records say: which tasks were lost or duplicated
//! (the definitions are in `report.rs`), which the master refused at
//! launch, and ACCEPT -> TASK_RUNNING.

use std::collections::BTreeSet;

use keel_api::mesos::TaskState;

use super::Run;
use super::framework::{Accept, Task};
use super::report::{at, ms};

fn lost_kind(s: TaskState) -> bool {
    matches!(
        s,
        TaskState::TASK_LOST
            | TaskState::TASK_DROPPED
            | TaskState::TASK_GONE
            | TaskState::TASK_GONE_BY_OPERATOR
            | TaskState::TASK_UNKNOWN
    )
}

/// A launch the master refused before it reached an agent.
fn refused_launch(t: &Task) -> bool {
    let started = |s: TaskState| {
        matches!(
            s,
            TaskState::TASK_STARTING | TaskState::TASK_RUNNING | TaskState::TASK_FINISHED
        )
    };
    t.seen.iter().take_while(|s| !started(s.state)).any(|s| {
        lost_kind(s.state)
            && matches!(
                s.reason.as_deref(),
                Some("REASON_INVALID_OFFERS" | "REASON_AGENT_DISCONNECTED")
            )
    }) && !t.seen.iter().any(|s| started(s.state))
}

/// A task's statuses as the framework saw them.
pub fn history(run: &Run, t: &Task) -> String {
    t.seen
        .iter()
        .map(|s| {
            format!(
                "{:?}{}{} at {}",
                s.state,
                s.agent
                    .as_deref()
                    .map(|a| format!(" on {a}"))
                    .unwrap_or_default(),
                s.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                at(run, s.at)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub struct Tasks {
    /// Terminal without a TASK_RUNNING seen (an update that went missing).
    pub no_running: Vec<String>,
    pub confirmed: usize,
    pub unconfirmed: usize,
    pub refused: usize,
    pub finished: usize,
    pub failed: usize,
    pub dropped_at_launch: usize,
    pub lost: Vec<String>,
    pub duplicated: Vec<String>,
    pub came_back: usize,
    pub latencies: Vec<f64>,
}

pub fn tasks(run: &Run) -> Tasks {
    let fw = &run.framework;
    let mut out = Tasks {
        no_running: Vec::new(),
        confirmed: 0,
        unconfirmed: 0,
        refused: 0,
        finished: 0,
        failed: 0,
        dropped_at_launch: 0,
        lost: Vec::new(),
        duplicated: Vec::new(),
        came_back: 0,
        latencies: Vec::new(),
    };
    for (id, t) in &fw.tasks {
        match t.accept {
            Accept::Confirmed => out.confirmed += 1,
            Accept::Unconfirmed(_) => out.unconfirmed += 1,
            Accept::Refused(_) => out.refused += 1,
        }
        let states: Vec<TaskState> = t.seen.iter().map(|s| s.state).collect();
        if states.contains(&TaskState::TASK_FINISHED) {
            out.finished += 1;
        }
        if states
            .iter()
            .any(|s| matches!(s, TaskState::TASK_FAILED | TaskState::TASK_ERROR))
        {
            out.failed += 1;
        }
        if let Some(i) = t.seen.iter().position(|s| lost_kind(s.state))
            && t.seen[i + 1..]
                .iter()
                .any(|s| !lost_kind(s.state) && s.state != TaskState::TASK_STAGING)
        {
            out.came_back += 1;
        }
        let running: BTreeSet<&str> = t
            .seen
            .iter()
            .filter(|s| s.state == TaskState::TASK_RUNNING)
            .filter_map(|s| s.agent.as_deref())
            .collect();
        let elsewhere = running.iter().any(|a| *a != t.agent);
        if running.len() > 1 || elsewhere {
            out.duplicated.push(format!(
                "{id}: launched on {}, RUNNING on {}",
                t.agent,
                running.iter().copied().collect::<Vec<_>>().join(", ")
            ));
        } else if !running.is_empty() && matches!(t.accept, Accept::Refused(_)) {
            out.duplicated
                .push(format!("{id}: RUNNING though its ACCEPT was refused"));
        }
        if t.accept != Accept::Confirmed {
            continue;
        }
        if let Some(d) = t.running_after() {
            out.latencies.push(ms(d));
        } else if states.contains(&TaskState::TASK_FINISHED) {
            out.no_running.push(format!(
                "{id} (ACCEPT at {}, on {}): [{}]",
                at(run, t.accepted),
                t.agent,
                history(run, t)
            ));
        }
        if refused_launch(t) {
            out.dropped_at_launch += 1;
            continue;
        }
        if !t.terminal() {
            out.lost.push(format!(
                "{id} (ACCEPT at {}, on {}): never terminal; seen: [{}]",
                at(run, t.accepted),
                t.agent,
                history(run, t)
            ));
        } else if t.seen.iter().any(|s| lost_kind(s.state)) {
            out.lost.push(format!(
                "{id} (ACCEPT at {}, on {}): [{}]",
                at(run, t.accepted),
                t.agent,
                history(run, t)
            ));
        }
    }
    for (id, state) in &fw.strangers {
        if *state == TaskState::TASK_RUNNING {
            out.duplicated
                .push(format!("{id}: RUNNING but never launched"));
        }
    }
    out.latencies.sort_by(f64::total_cmp);
    out
}
