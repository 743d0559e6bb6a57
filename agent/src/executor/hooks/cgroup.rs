//! The container's cgroup: created with its limits before the task starts,
//! `cgroup.kill` when a kill's grace period is over or a limit is broken,
//! removed (whatever is left killed first) after the task. The task starts
//! in its leaf; its shim waits in the `supervisors` cgroup.
//!
//! A task group's container is resized as its tasks join (a later
//! LAUNCH_GROUP) and end: the runtime sets the new limits in
//! [`ContainerLimits`], which the hook also creates containers from, so the
//! cgroup ends with the latest limits whichever supervisor runs first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{HookError, TaskContext, TaskHook};
use crate::executor::launcher::LaunchSpec;
use crate::isolation::cgroups::{
    CgroupError, CgroupPaths, Cgroups, Limitation, LimitationWatch, Limits,
};

/// The limits each live container should have, shared by the runtime and
/// the cgroup hook. Every write to a container's limits happens under its
/// lock, with the latest value.
#[derive(Clone, Default)]
pub struct ContainerLimits(Arc<Mutex<HashMap<PathBuf, Limits>>>);

impl ContainerLimits {
    fn lock(&self) -> MutexGuard<'_, HashMap<PathBuf, Limits>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the limits of the container at `container`. A container seen
    /// before is resized ([`Limits::resized_from`]: memory never shrinks)
    /// and rewritten if its cgroup exists; returns what it now has.
    pub fn set(
        &self,
        cgroups: &dyn Cgroups,
        container: &Path,
        limits: &Limits,
    ) -> Result<Limits, CgroupError> {
        let mut all = self.lock();
        let next = match all.get(container) {
            Some(prev) => {
                let next = limits.resized_from(prev);
                if next != *prev {
                    cgroups.update(container, &next)?;
                }
                next
            }
            None => limits.clone(),
        };
        all.insert(container.to_path_buf(), next.clone());
        Ok(next)
    }

    /// The container is gone (no live task left).
    pub fn forget(&self, container: &Path) {
        self.lock().remove(container);
    }

    /// Creates the container's cgroup with its latest limits (`fallback`
    /// when the runtime set none).
    fn create(
        &self,
        cgroups: &dyn Cgroups,
        paths: &CgroupPaths,
        fallback: &Limits,
    ) -> Result<Limits, CgroupError> {
        let all = self.lock();
        let limits = all.get(&paths.container).unwrap_or(fallback);
        cgroups.create(paths, limits)?;
        Ok(limits.clone())
    }
}

pub struct CgroupHook {
    pub cgroups: Arc<dyn Cgroups>,
    pub limits: ContainerLimits,
}

impl TaskHook for CgroupHook {
    fn name(&self) -> &'static str {
        "cgroup"
    }

    fn prestart(&self, ctx: &TaskContext, spec: &mut LaunchSpec) -> Result<(), HookError> {
        let Some(paths) = &ctx.isolation.cgroup else {
            return Ok(());
        };
        let limits = self
            .limits
            .create(&*self.cgroups, paths, &ctx.isolation.limits)?;
        tracing::debug!(task_id = %ctx.task_id, cgroup = %paths.leaf.display(),
            ?limits, "container cgroup ready");
        spec.cgroup = Some(paths.leaf.clone());
        spec.supervisor_cgroup = Some(self.cgroups.supervisors());
        Ok(())
    }

    fn poststop(&self, ctx: &TaskContext) -> Result<(), HookError> {
        match &ctx.isolation.cgroup {
            Some(paths) => Ok(self.cgroups.remove(paths)?),
            None => Ok(()),
        }
    }

    fn kill(&self, ctx: &TaskContext) -> Result<(), HookError> {
        match &ctx.isolation.cgroup {
            Some(paths) => Ok(self.cgroups.kill(&paths.leaf)?),
            None => Ok(()),
        }
    }

    fn limitation(&self, ctx: &TaskContext) -> Option<Limitation> {
        self.cgroups.limitation(ctx.isolation.cgroup.as_ref()?)
    }

    fn watch(&self, ctx: &TaskContext) -> Option<LimitationWatch> {
        self.cgroups.watch(ctx.isolation.cgroup.as_ref()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::hooks::{ContainerIsolation, TaskContext};
    use crate::isolation::cgroups::fake::{CgroupCall, FakeCgroups};
    use crate::isolation::cgroups::{Controller, LimitOptions, limits_for};

    #[test]
    fn a_late_create_takes_the_latest_limits() {
        let cg = FakeCgroups::new(Controller::ALL);
        let limits = ContainerLimits::default();
        let hook = CgroupHook {
            cgroups: Arc::new(cg.clone()),
            limits: limits.clone(),
        };
        let paths = cg.paths("c", "t").unwrap();
        let first = limits_for(Some(0.5), Some(64.0), LimitOptions::default());
        let grown = limits_for(Some(1.5), Some(192.0), LimitOptions::default());
        limits.set(&cg, &paths.container, &first).unwrap();
        assert!(cg.calls().is_empty(), "nothing to resize yet");
        limits.set(&cg, &paths.container, &grown).unwrap();
        // The first task's supervisor runs only now, with its own snapshot.
        let runs = PathBuf::from("/nonexistent/runs");
        let ctx = TaskContext {
            agent_id: "a".into(),
            framework_id: "f".into(),
            executor_id: "ex".into(),
            container_id: "c".into(),
            task_id: "t".into(),
            run_dir: runs.join("c"),
            sandbox: runs.join("c/tasks/t"),
            runs_dir: runs,
            isolation: ContainerIsolation {
                cgroup: Some(paths.clone()),
                limits: first,
                ..ContainerIsolation::default()
            },
            user: None,
            volumes: Vec::new(),
        };
        let mut spec = crate::executor::command::launch_spec(
            &ctx,
            Some(&keel_api::mesos::CommandInfo {
                value: Some("true".into()),
                ..Default::default()
            }),
            &[],
        )
        .unwrap();
        hook.prestart(&ctx, &mut spec).unwrap();
        assert_eq!(
            cg.calls(),
            [
                CgroupCall::Update(paths.container.clone(), grown.clone()),
                CgroupCall::Create(paths.clone(), grown),
            ]
        );
        assert_eq!(spec.cgroup, Some(paths.leaf));
        limits.forget(&paths.container);
        let again = limits_for(Some(0.1), Some(16.0), LimitOptions::default());
        assert_eq!(limits.set(&cg, &paths.container, &again).unwrap(), again);
    }
}
