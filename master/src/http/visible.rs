//! What a caller may see. As in Mesos, the views of frameworks and tasks
//! (GET_STATE, GET_FRAMEWORKS, GET_TASKS, `/master/state`,
//! `/master/frameworks`, `/master/tasks`) are filtered rather than
//! refused: a framework by `view_frameworks` on its user, a task (of a
//! visible framework) by `view_tasks` on its user; roles, weights and
//! quotas by `view_roles` / `get_quotas`. Flags (`view_flags`) and agents
//! (Keel's `view_agents`) are all or nothing.

use keel_api::mesos::FrameworkInfo;

use super::state::Snapshot;
use crate::auth::{Action, Caller, Trust};
use crate::core::{Master, TaskView};

/// A caller's view.
#[derive(Clone, Copy)]
pub struct Viewer<'a> {
    pub trust: &'a Trust,
    pub caller: &'a Caller,
}

/// The user a task runs as: its command's, else its executor's, else its
/// framework's (`framework_user`).
fn task_user<'a>(t: &'a TaskView, framework_user: &'a str) -> &'a str {
    let command = t.info.command.as_ref().and_then(|c| c.user.as_deref());
    let executor = t.info.executor.as_ref().and_then(|e| e.command.as_ref());
    command
        .or_else(|| executor.and_then(|c| c.user.as_deref()))
        .unwrap_or(framework_user)
}

impl<'a> Viewer<'a> {
    /// What `caller` may see on `master`.
    pub fn of(master: &'a Master, caller: &'a Caller) -> Viewer<'a> {
        Viewer {
            trust: &master.config().trust,
            caller,
        }
    }

    /// A snapshot of `master` as far as the caller may see.
    pub fn snapshot(&self, master: &Master) -> Snapshot {
        let mut s = Snapshot::take(master);
        self.filter(&mut s);
        s
    }

    fn allows(&self, action: Action, object: Option<&str>) -> bool {
        self.trust.allowed(self.caller, action, object)
    }

    pub fn framework(&self, info: &FrameworkInfo) -> bool {
        self.allows(Action::ViewFramework, Some(&info.user))
    }

    /// A task of a framework whose user is `framework_user`.
    pub fn task(&self, t: &TaskView, framework_user: &str) -> bool {
        self.allows(Action::ViewFramework, Some(framework_user))
            && self.allows(Action::ViewTask, Some(task_user(t, framework_user)))
    }

    pub fn role(&self, role: &str) -> bool {
        self.allows(Action::ViewRole, Some(role))
    }

    pub fn quota(&self, role: &str) -> bool {
        self.allows(Action::GetQuota, Some(role))
    }

    pub fn flags(&self) -> bool {
        self.allows(Action::ViewFlags, None)
    }

    pub fn agents(&self) -> bool {
        self.allows(Action::ViewAgent, None)
    }

    /// Drops from `s` the frameworks, tasks and offers the caller may not
    /// see.
    pub fn filter(&self, s: &mut Snapshot) {
        let acls = self.trust.acls();
        let everything =
            acls.allows_all(Action::ViewFramework) && acls.allows_all(Action::ViewTask);
        if everything && self.trust.allowed(self.caller, Action::ViewTask, None) {
            return;
        }
        // Per framework: whether it is visible, and its user.
        let mut frameworks = std::collections::BTreeMap::new();
        let removed = s.registry.removed_frameworks().map(|f| (&f.id, &f.info));
        for (id, info) in s.frameworks.iter().map(|f| (&f.id, &f.info)).chain(removed) {
            frameworks.insert(id.clone(), (self.framework(info), info.user.clone()));
        }
        let visible = |id: &str| frameworks.get(id).is_some_and(|(v, _)| *v);
        let task = |t: &TaskView| match frameworks.get(&t.framework_id) {
            Some((true, user)) => self.allows(Action::ViewTask, Some(task_user(t, user))),
            _ => false,
        };
        s.frameworks.retain(|f| visible(&f.id));
        s.registry.retain_removed_frameworks(|f| visible(&f.id));
        s.live.retain(|t| task(t));
        s.completed.retain(|t| task(t));
        s.offers.retain(|o| visible(&o.framework_id));
    }
}
