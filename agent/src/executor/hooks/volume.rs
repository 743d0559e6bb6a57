//! The task's persistent volumes ([`crate::executor::volumes`]): each
//! volume's directory is created on first use, then bind-mounted into the
//! sandbox by the container's init (own mount namespace) or linked from
//! it. Nothing is undone after the task: the data stays for the next task
//! given the volume, and a mount goes with the container's namespace.

use super::{HookError, TaskContext, TaskHook};
use crate::executor::launcher::LaunchSpec;
use crate::executor::volumes;

pub struct VolumeHook;

impl TaskHook for VolumeHook {
    fn name(&self) -> &'static str {
        "volume"
    }

    fn prestart(&self, ctx: &TaskContext, spec: &mut LaunchSpec) -> Result<(), HookError> {
        let owner = ctx.user.map(|u| (u.uid, u.gid));
        spec.volumes.clear();
        for v in &ctx.volumes {
            volumes::prepare(v, owner)?;
            if ctx.isolation.namespaces.mount {
                volumes::mount_point(&ctx.sandbox, v)?;
                spec.volumes.push(v.bind());
            } else {
                volumes::link(&ctx.sandbox, v)?;
            }
        }
        Ok(())
    }
}
