//! What the operator event stream reports (Mesos' `master::Event`), as the
//! engine sees it: changes to tasks, agents and frameworks, emitted as
//! [`Effect::Observed`] in order with the rest of the effects. They are
//! emitted only while someone listens ([`Engine::set_observed`]), so that a
//! master without operator subscribers copies nothing.

use keel_api::mesos::{FrameworkInfo, TaskStatus};
use keel_api::resources::Resources;

use super::tasks::{Key, TaskRecord};
use super::{Effect, Engine, FrameworkView};
use crate::registry::AgentRecord;

/// One change an operator subscriber hears of.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// A task the master now knows; `user` is its framework's.
    TaskAdded { task: Box<TaskRecord>, user: String },
    /// A status recorded for a task (its state is the task's after it).
    TaskUpdated {
        task: Box<TaskRecord>,
        status: Box<TaskStatus>,
        user: String,
    },
    /// An agent (re-)registered; `used` is what its tasks hold.
    AgentAdded {
        agent: Box<AgentRecord>,
        used: Resources,
    },
    /// An agent became unreachable or was marked gone.
    AgentRemoved { agent_id: String },
    /// A framework subscribed for the first time.
    FrameworkAdded(Box<FrameworkView>),
    /// A framework re-subscribed, was updated or disconnected.
    FrameworkUpdated(Box<FrameworkView>),
    /// A framework was removed (torn down or failed over for good).
    FrameworkRemoved(Box<FrameworkInfo>),
}

impl Engine {
    /// Whether anyone listens to [`Observed`] changes (the shell says so
    /// as operator subscribers come and go).
    pub fn set_observed(&mut self, on: bool) {
        self.observed = on;
    }

    fn observe(&mut self, make: impl FnOnce(&Engine) -> Option<Observed>) {
        if !self.observed {
            return;
        }
        if let Some(o) = make(self) {
            self.emit(Effect::Observed(o));
        }
    }

    fn framework_user(&self, framework_id: &str) -> String {
        self.registry
            .framework(framework_id)
            .map(|f| f.info.user.clone())
            .unwrap_or_default()
    }

    pub(super) fn observe_task_added(&mut self, k: &Key) {
        self.observe(|e| {
            let task = e.tasks.get(k)?;
            Some(Observed::TaskAdded {
                task: Box::new(task.clone()),
                user: e.framework_user(&k.0),
            })
        });
    }

    /// `task` has just recorded `status`.
    pub(super) fn observe_task_updated(&mut self, task: &TaskRecord, status: &TaskStatus) {
        self.observe(|e| {
            Some(Observed::TaskUpdated {
                task: Box::new(task.clone()),
                status: Box::new(status.clone()),
                user: e.framework_user(&task.framework_id),
            })
        });
    }

    /// The task under `k` has just recorded `status`.
    pub(super) fn observe_task_status(&mut self, k: &Key, status: &TaskStatus) {
        if !self.observed {
            return;
        }
        if let Some(task) = self.tasks.get(k).cloned() {
            self.observe_task_updated(&task, status);
        }
    }

    pub(super) fn observe_agent_added(&mut self, agent_id: &str) {
        self.observe(|e| {
            let agent = e.registry.agent(agent_id)?;
            let mut used = Resources::default();
            for (_, _, r) in super::tasks::used_on_agent(e, agent_id) {
                used.add(&r);
            }
            Some(Observed::AgentAdded {
                agent: Box::new(agent.clone()),
                used,
            })
        });
    }

    pub(super) fn observe_agent_removed(&mut self, agent_id: &str) {
        self.observe(|_| {
            Some(Observed::AgentRemoved {
                agent_id: agent_id.to_string(),
            })
        });
    }

    /// The framework was added (`added`) or changed.
    pub(super) fn observe_framework(&mut self, framework_id: &str, added: bool) {
        self.observe(|e| {
            let r = e.registry.framework(framework_id)?;
            let view = Box::new(FrameworkView {
                id: r.id.clone(),
                info: r.info.clone(),
                connected: e.frameworks.get(&r.id).is_some_and(|f| f.connected()),
                registered_time: r.registered_time,
                reregistered_time: r.reregistered_time,
            });
            Some(match added {
                true => Observed::FrameworkAdded(view),
                false => Observed::FrameworkUpdated(view),
            })
        });
    }

    pub(super) fn observe_framework_removed(&mut self, info: FrameworkInfo) {
        self.observe(|_| Some(Observed::FrameworkRemoved(Box::new(info))));
    }
}
