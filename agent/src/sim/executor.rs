//! The simulator's task runtime: a [`TaskExecutor`] whose tasks run no
//! process. A launched task goes TASK_STARTING, TASK_RUNNING, "runs" for
//! its duration and ends with its exit status (TASK_FINISHED for 0, else
//! TASK_FAILED); a kill ends it TASK_KILLED. Its status updates go through
//! the real status update manager ([`UpdateManager`]): one outstanding per
//! task, resent until acknowledged, all sent again on a new session.
//!
//! ```text
//!  Launch --> STARTING, RUNNING --duration--> FINISHED / FAILED --ack--> forgotten
//!                 |                                 ^
//!                 +--------- Kill --> KILLED -------+
//! ```
//!
//! A task may override the simulator's defaults with labels:
//! `keel.sim/duration` (humantime, e.g. `250ms`) and `keel.sim/exit` (the
//! exit code). Nothing is checkpointed: a restarted simulator has no tasks.
//!
//! [`SimTasks`] is the pure core (time passed in); [`SimExecutor`] is the
//! actor that owns one and its timer.

use std::collections::BTreeMap;
use std::time::Duration;

use keel_api::mesos::TaskState;
use keel_api::pb;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::executor::TaskExecutor;
use crate::executor::call::ExecutorCall;
use crate::executor::launch::{LaunchRequest, ParsedTask};
use crate::executor::launcher::ExitStatus;
use crate::executor::status;
use crate::executor::updates::{Output, TaskKey, UpdateManager};

/// Label overriding how long a task runs.
pub const DURATION_LABEL: &str = "keel.sim/duration";
/// Label overriding a task's exit code.
pub const EXIT_LABEL: &str = "keel.sim/exit";

/// How simulated tasks behave unless their labels say otherwise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Behaviour {
    pub duration: Duration,
    pub exit_code: i32,
    /// First resend of an unacknowledged update (doubles up to the cap).
    pub resend_base: Duration,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            duration: Duration::from_secs(10),
            exit_code: 0,
            resend_base: crate::executor::updates::RESEND_BASE,
        }
    }
}

struct SimTask {
    info_json: String,
    executor_id: String,
    latest: Option<pb::TaskStatus>,
    /// When it exits, and how; `None` once terminal.
    ends: Option<(Instant, i32)>,
}

/// Every task of one simulated agent, and its update manager. Pure.
pub struct SimTasks {
    behaviour: Behaviour,
    tasks: BTreeMap<TaskKey, SimTask>,
    updates: UpdateManager,
}

impl SimTasks {
    pub fn new(behaviour: Behaviour) -> Self {
        SimTasks {
            behaviour,
            tasks: BTreeMap::new(),
            updates: UpdateManager::new(
                behaviour.resend_base,
                crate::executor::updates::RESEND_CAP,
            ),
        }
    }

    /// Applies a call from the master; the updates to send.
    pub fn call(&mut self, call: ExecutorCall, now: Instant) -> Vec<pb::StatusUpdate> {
        let mut out = Vec::new();
        match call {
            ExecutorCall::Launch(req) => self.launch(*req, now, &mut out),
            ExecutorCall::Kill(m) => {
                self.kill(&TaskKey::new(m.framework_id, m.task_id), now, &mut out)
            }
            ExecutorCall::Acknowledge(m) => {
                let key = TaskKey::new(m.framework_id, m.task_id);
                if let Some(o) = self.updates.acknowledge(&key, &m.uuid, now) {
                    self.apply(o, &mut out);
                }
            }
            ExecutorCall::ShutdownFramework(m) => {
                let keys: Vec<TaskKey> = self
                    .tasks
                    .keys()
                    .filter(|k| k.framework_id == m.framework_id)
                    .cloned()
                    .collect();
                for key in keys {
                    self.kill(&key, now, &mut out);
                }
            }
            ExecutorCall::DestroyVolumes(_)
            | ExecutorCall::FrameworkMessage(_)
            | ExecutorCall::ShutdownExecutor(_) => {}
        }
        out
    }

    fn launch(&mut self, req: LaunchRequest, now: Instant, out: &mut Vec<pb::StatusUpdate>) {
        let group = req.executor.as_ref().map(|e| e.executor_id.value.clone());
        for task in req.tasks {
            let (task_id, info_json, behaviour) = match task {
                ParsedTask::Valid(spec) => {
                    let behaviour = self.behaviour_of(spec.labels());
                    let json = spec.to_json().unwrap_or_default();
                    (spec.task_id().to_string(), json, Ok(behaviour))
                }
                ParsedTask::Invalid {
                    task_id: Some(id),
                    text,
                    message,
                } => (id, text, Err(message)),
                ParsedTask::Invalid { task_id: None, .. } => continue,
            };
            let key = TaskKey::new(&req.framework_id, &task_id);
            if self.tasks.contains_key(&key) {
                tracing::warn!(%task_id, "task already known, launch ignored");
                continue;
            }
            let behaviour = match (&req.executor_error, behaviour) {
                (Some(e), _) => Err(e.clone()),
                (None, b) => b,
            };
            self.tasks.insert(
                key.clone(),
                SimTask {
                    info_json,
                    executor_id: group.clone().unwrap_or_else(|| task_id.clone()),
                    latest: None,
                    ends: None,
                },
            );
            match behaviour {
                Ok((duration, code)) => {
                    self.emit(&key, TaskState::TASK_STARTING, None, None, now, out);
                    self.emit(&key, TaskState::TASK_RUNNING, None, None, now, out);
                    if let Some(t) = self.tasks.get_mut(&key) {
                        t.ends = Some((now + duration, code));
                    }
                }
                Err(message) => {
                    let reason = Some(status::REASON_TASK_INVALID);
                    self.emit(&key, TaskState::TASK_ERROR, Some(message), reason, now, out);
                }
            }
        }
    }

    /// The task's duration and exit code: its labels, else the defaults.
    fn behaviour_of(&self, labels: Option<&keel_api::mesos::Labels>) -> (Duration, i32) {
        let label = |key: &str| {
            labels?
                .labels
                .iter()
                .find(|l| l.key == key)
                .and_then(|l| l.value.clone())
        };
        let duration = label(DURATION_LABEL)
            .and_then(|v| humantime::parse_duration(&v).ok())
            .unwrap_or(self.behaviour.duration);
        let code = label(EXIT_LABEL)
            .and_then(|v| v.parse().ok())
            .unwrap_or(self.behaviour.exit_code);
        (duration, code)
    }

    fn kill(&mut self, key: &TaskKey, now: Instant, out: &mut Vec<pb::StatusUpdate>) {
        let live = self.tasks.get(key).is_some_and(|t| t.ends.is_some());
        if !live {
            tracing::debug!(task_id = %key.task_id, "kill for an unknown or ended task ignored");
            return;
        }
        let (state, reason, message) = status::terminal(ExitStatus::Signaled(15), true);
        self.emit(key, state, Some(message), reason, now, out);
    }

    fn emit(
        &mut self,
        key: &TaskKey,
        state: TaskState,
        message: Option<String>,
        reason: Option<&str>,
        now: Instant,
        out: &mut Vec<pb::StatusUpdate>,
    ) {
        let Some(task) = self.tasks.get_mut(key) else {
            return;
        };
        let st = status::update(&key.task_id, &task.executor_id, state, message, reason);
        task.latest = Some(st.clone());
        if state.is_terminal() {
            task.ends = None;
        }
        let update = pb::StatusUpdate {
            framework_id: key.framework_id.clone(),
            status: Some(st),
        };
        let o = self.updates.enqueue(update, now);
        self.apply(o, out);
    }

    fn apply(&mut self, outputs: Vec<Output>, out: &mut Vec<pb::StatusUpdate>) {
        for o in outputs {
            match o {
                Output::Send(update) => out.push(*update),
                Output::Forget(key) => {
                    self.tasks.remove(&key);
                }
            }
        }
    }

    /// Ends the tasks whose time has come and resends what is due.
    pub fn tick(&mut self, now: Instant) -> Vec<pb::StatusUpdate> {
        let mut out = Vec::new();
        let due: Vec<(TaskKey, i32)> = self
            .tasks
            .iter()
            .filter_map(|(k, t)| {
                t.ends
                    .filter(|(at, _)| *at <= now)
                    .map(|(_, c)| (k.clone(), c))
            })
            .collect();
        for (key, code) in due {
            let (state, reason, message) = status::terminal(ExitStatus::Exited(code), false);
            self.emit(&key, state, Some(message), reason, now, &mut out);
        }
        let o = self.updates.tick(now);
        self.apply(o, &mut out);
        out
    }

    /// When [`Self::tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let ends = self
            .tasks
            .values()
            .filter_map(|t| t.ends.map(|(at, _)| at))
            .min();
        match (ends, self.updates.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A session is up: every outstanding update again.
    pub fn connected(&mut self, now: Instant) -> Vec<pb::StatusUpdate> {
        let mut out = Vec::new();
        let o = self.updates.connected(now);
        self.apply(o, &mut out);
        out
    }

    pub fn disconnected(&mut self) {
        self.updates.disconnected();
    }

    /// Every known task with its latest status, for `Register.tasks`.
    pub fn reports(&self) -> Vec<pb::TaskReport> {
        self.tasks
            .iter()
            .map(|(key, t)| pb::TaskReport {
                framework_id: key.framework_id.clone(),
                task_info_json: t.info_json.clone(),
                latest: t.latest.clone(),
            })
            .collect()
    }

    /// How many tasks have not ended.
    pub fn running(&self) -> usize {
        self.tasks.values().filter(|t| t.ends.is_some()).count()
    }
}

enum Command {
    Call(ExecutorCall),
    Attach(mpsc::UnboundedSender<pb::StatusUpdate>),
    Detach,
    Reports(oneshot::Sender<Vec<pb::TaskReport>>),
}

/// The handle to one simulated agent's runtime; the runtime stops when the
/// last handle is dropped.
#[derive(Clone)]
pub struct SimExecutor {
    tx: mpsc::UnboundedSender<Command>,
}

impl SimExecutor {
    /// Starts the runtime on the current tokio runtime.
    pub fn start(behaviour: Behaviour) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(SimTasks::new(behaviour), rx));
        SimExecutor { tx }
    }
}

async fn run(mut tasks: SimTasks, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut sink: Option<mpsc::UnboundedSender<pb::StatusUpdate>> = None;
    loop {
        let deadline = tasks.next_deadline();
        let timer = async move {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let out = tokio::select! {
            cmd = commands.recv() => match cmd {
                None => return,
                Some(Command::Call(call)) => tasks.call(call, Instant::now()),
                Some(Command::Attach(s)) => {
                    sink = Some(s);
                    tasks.connected(Instant::now())
                }
                Some(Command::Detach) => {
                    sink = None;
                    tasks.disconnected();
                    Vec::new()
                }
                Some(Command::Reports(reply)) => {
                    let _ = reply.send(tasks.reports());
                    Vec::new()
                }
            },
            () = timer => tasks.tick(Instant::now()),
        };
        for update in out {
            let delivered = sink.as_ref().is_some_and(|s| s.send(update).is_ok());
            if !delivered && sink.take().is_some() {
                tasks.disconnected();
            }
        }
    }
}

impl TaskExecutor for SimExecutor {
    fn call(&self, call: ExecutorCall) {
        let _ = self.tx.send(Command::Call(call));
    }

    fn attach(&self, _agent_id: &str, sink: mpsc::UnboundedSender<pb::StatusUpdate>) {
        let _ = self.tx.send(Command::Attach(sink));
    }

    fn detach(&self) {
        let _ = self.tx.send(Command::Detach);
    }

    async fn reports(&self) -> Vec<pb::TaskReport> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Reports(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }
}

#[cfg(test)]
#[path = "executor_tests.rs"]
mod tests;
