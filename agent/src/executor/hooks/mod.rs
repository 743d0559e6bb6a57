//! Task lifecycle hooks. The runtime runs every hook's `prestart` in order
//! before the task's process is spawned, and every `poststop` in reverse
//! order once all its processes are gone:
//!
//! ```text
//!  prestart: sandbox -> volume -> cgroup -> network -> spawn
//!  adopted after a restart: recover (port forwarding again)
//!  running: watch (a limit broken -> kill)     kill escalation: kill (cgroup.kill)
//!  exit/kill -> reap group -> poststop: network -> cgroup -> sandbox
//! ```
//!
//! Each hook is idempotent: a restarted agent may run it again for a task it
//! recovers. A failed `prestart` fails the task (TASK_FAILED with the hook's
//! message); hooks that already ran get their `poststop`.

pub mod cgroup;
pub mod network;
pub mod volume;

use std::path::PathBuf;

use super::launcher::LaunchSpec;
use super::sandbox::{self, SandboxError};
use super::users::Account;
use super::volumes::{Volume, VolumeError};
use crate::isolation::Namespaces;
use crate::isolation::cgroups::{CgroupError, CgroupPaths, Limitation, LimitationWatch, Limits};
use crate::isolation::network::{NetworkAttachment, NetworkError};

/// Where a task runs and who it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskContext {
    pub agent_id: String,
    pub framework_id: String,
    pub executor_id: String,
    pub container_id: String,
    pub task_id: String,
    /// `.../executors/<executor>/runs`.
    pub runs_dir: PathBuf,
    /// `.../runs/<container>`: the executor's sandbox.
    pub run_dir: PathBuf,
    /// The task's own sandbox: `run_dir` for command tasks,
    /// `run_dir/tasks/<task>` in a task group.
    pub sandbox: PathBuf,
    pub isolation: ContainerIsolation,
    /// The account the task runs as (`None`: the agent's).
    pub user: Option<Account>,
    /// The persistent volumes in its resources.
    pub volumes: Vec<Volume>,
}

/// What isolates the task's container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerIsolation {
    /// The container's cgroups, if it has one.
    pub cgroup: Option<CgroupPaths>,
    /// What to write into the container's cgroup.
    pub limits: Limits,
    pub namespaces: Namespaces,
    /// The container's place on the agent's network (own network namespace).
    pub network: Option<NetworkAttachment>,
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Volume(#[from] VolumeError),
}

pub trait TaskHook: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// Prepares the task; may amend what will be spawned.
    fn prestart(&self, _ctx: &TaskContext, _spec: &mut LaunchSpec) -> Result<(), HookError> {
        Ok(())
    }

    /// Cleans up after the task's processes are gone.
    fn poststop(&self, _ctx: &TaskContext) -> Result<(), HookError> {
        Ok(())
    }

    /// Picks up a task adopted after an agent restart (what the agent
    /// itself ran for it, such as port forwarding, starts again).
    fn recover(&self, _ctx: &TaskContext) -> Result<(), HookError> {
        Ok(())
    }

    /// Kills every process of the task, wherever it went (the end of a
    /// kill's grace period, or a broken limit).
    fn kill(&self, _ctx: &TaskContext) -> Result<(), HookError> {
        Ok(())
    }

    /// The limit the task broke, checked now (after it ended).
    fn limitation(&self, _ctx: &TaskContext) -> Option<Limitation> {
        None
    }

    /// Resolves when the running task breaks a limit.
    fn watch(&self, _ctx: &TaskContext) -> Option<LimitationWatch> {
        None
    }
}

/// Creates the sandbox (kept on disk after the task ends).
pub struct SandboxHook;

impl TaskHook for SandboxHook {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn prestart(&self, ctx: &TaskContext, _spec: &mut LaunchSpec) -> Result<(), HookError> {
        sandbox::create(&ctx.run_dir)?;
        sandbox::create(&ctx.sandbox)?;
        sandbox::link_latest(&ctx.runs_dir, &ctx.container_id)?;
        if let Some(user) = ctx.user {
            // The task's user owns its sandbox, as in Mesos.
            sandbox::chown(&ctx.sandbox, user.uid, user.gid)?;
        }
        Ok(())
    }
}

/// The hooks every task gets, in order.
pub fn default_hooks() -> Vec<std::sync::Arc<dyn TaskHook>> {
    vec![
        std::sync::Arc::new(SandboxHook),
        std::sync::Arc::new(volume::VolumeHook),
    ]
}

/// Runs each `prestart` in order. On failure, runs `poststop` of the hooks
/// that already ran (the failing one included) and returns the error text.
pub fn run_prestart(
    hooks: &[std::sync::Arc<dyn TaskHook>],
    ctx: &TaskContext,
    spec: &mut LaunchSpec,
) -> Result<(), String> {
    for (i, hook) in hooks.iter().enumerate() {
        if let Err(e) = hook.prestart(ctx, spec) {
            run_poststop(&hooks[..=i], ctx);
            return Err(format!("{} hook: {e}", hook.name()));
        }
    }
    Ok(())
}

/// Runs every hook's `recover`; failures are logged.
pub fn run_recover(hooks: &[std::sync::Arc<dyn TaskHook>], ctx: &TaskContext) {
    for hook in hooks {
        if let Err(e) = hook.recover(ctx) {
            tracing::warn!(task_id = %ctx.task_id, hook = hook.name(), error = %e, "recover hook failed");
        }
    }
}

/// Runs every hook's `kill`; failures are logged.
pub fn run_kill(hooks: &[std::sync::Arc<dyn TaskHook>], ctx: &TaskContext) {
    for hook in hooks {
        if let Err(e) = hook.kill(ctx) {
            tracing::warn!(task_id = %ctx.task_id, hook = hook.name(), error = %e, "kill hook failed");
        }
    }
}

/// The first limitation a hook reports.
pub fn limitation(hooks: &[std::sync::Arc<dyn TaskHook>], ctx: &TaskContext) -> Option<Limitation> {
    hooks.iter().find_map(|h| h.limitation(ctx))
}

/// Resolves with the first limitation any hook's watch reports (never,
/// without watches).
pub fn watch(hooks: &[std::sync::Arc<dyn TaskHook>], ctx: &TaskContext) -> LimitationWatch {
    let watches: Vec<LimitationWatch> = hooks.iter().filter_map(|h| h.watch(ctx)).collect();
    if watches.is_empty() {
        return Box::pin(std::future::pending());
    }
    Box::pin(async move { futures::future::select_all(watches).await.0 })
}

/// Runs each `poststop` in reverse order; failures are logged.
pub fn run_poststop(hooks: &[std::sync::Arc<dyn TaskHook>], ctx: &TaskContext) {
    for hook in hooks.iter().rev() {
        if let Err(e) = hook.poststop(ctx) {
            tracing::warn!(task_id = %ctx.task_id, hook = hook.name(), error = %e,
                "poststop hook failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Recorder {
        name: &'static str,
        log: Arc<Mutex<Vec<String>>>,
        fail: bool,
    }

    impl TaskHook for Recorder {
        fn name(&self) -> &'static str {
            self.name
        }
        fn prestart(&self, _: &TaskContext, _: &mut LaunchSpec) -> Result<(), HookError> {
            self.log.lock().unwrap().push(format!("pre {}", self.name));
            if self.fail {
                return Err(SandboxError::InvalidId {
                    kind: "task",
                    id: "x".into(),
                }
                .into());
            }
            Ok(())
        }
        fn poststop(&self, _: &TaskContext) -> Result<(), HookError> {
            self.log.lock().unwrap().push(format!("post {}", self.name));
            Ok(())
        }
    }

    fn context(root: &std::path::Path) -> TaskContext {
        let runs = root.join("runs");
        TaskContext {
            agent_id: "a".into(),
            framework_id: "f".into(),
            executor_id: "t".into(),
            container_id: "c".into(),
            task_id: "t".into(),
            run_dir: runs.join("c"),
            sandbox: runs.join("c/tasks/t"),
            runs_dir: runs,
            isolation: ContainerIsolation::default(),
            user: None,
            volumes: Vec::new(),
        }
    }

    fn spec() -> LaunchSpec {
        LaunchSpec {
            program: "true".into(),
            argv: vec![],
            env: vec![],
            cwd: "/".into(),
            stdout: "/dev/null".into(),
            stderr: "/dev/null".into(),
            state_dir: "/nonexistent".into(),
            ..LaunchSpec::default()
        }
    }

    #[test]
    fn hooks_run_in_order_and_unwind_on_failure() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let hook = |name, fail| -> Arc<dyn TaskHook> {
            Arc::new(Recorder {
                name,
                log: log.clone(),
                fail,
            })
        };
        let hooks = [hook("a", false), hook("b", true), hook("c", false)];
        let ctx = context(std::path::Path::new("/nonexistent"));
        let err = run_prestart(&hooks, &ctx, &mut spec()).unwrap_err();
        assert!(err.starts_with("b hook: task id"), "{err}");
        assert_eq!(*log.lock().unwrap(), ["pre a", "pre b", "post b", "post a"]);
    }

    #[test]
    fn the_sandbox_hook_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path());
        let hooks = default_hooks();
        run_prestart(&hooks, &ctx, &mut spec()).unwrap();
        run_prestart(&hooks, &ctx, &mut spec()).unwrap();
        for d in [&ctx.run_dir, &ctx.sandbox] {
            assert!(d.join("stdout").is_file() && d.join("stderr").is_file());
        }
        assert!(ctx.runs_dir.join("latest").is_symlink());
        run_poststop(&hooks, &ctx);
        assert!(
            ctx.sandbox.join("stdout").is_file(),
            "sandboxes stay on disk"
        );
    }
}
