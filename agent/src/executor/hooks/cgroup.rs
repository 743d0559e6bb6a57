//! The container's cgroup: created with its limits before the task starts,
//! `cgroup.kill` when a kill's grace period is over or a limit is broken,
//! removed (whatever is left killed first) after the task. The task starts
//! in its leaf; its shim waits in the `supervisors` cgroup.

use std::sync::Arc;

use super::{HookError, TaskContext, TaskHook};
use crate::executor::launcher::LaunchSpec;
use crate::isolation::cgroups::{Cgroups, Limitation, LimitationWatch};

pub struct CgroupHook {
    pub cgroups: Arc<dyn Cgroups>,
}

impl TaskHook for CgroupHook {
    fn name(&self) -> &'static str {
        "cgroup"
    }

    fn prestart(&self, ctx: &TaskContext, spec: &mut LaunchSpec) -> Result<(), HookError> {
        let Some(paths) = &ctx.isolation.cgroup else {
            return Ok(());
        };
        self.cgroups.create(paths, &ctx.isolation.limits)?;
        tracing::debug!(task_id = %ctx.task_id, cgroup = %paths.leaf.display(),
            limits = ?ctx.isolation.limits, "container cgroup ready");
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
