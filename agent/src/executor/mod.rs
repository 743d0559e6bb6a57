//! The agent's task runtime for command tasks and task groups.
//!
//! ```text
//!  master --LaunchTasks--> runtime --TASK_STARTING--> update manager --> session --> master
//!                            | supervisor per task:
//!                            |   prestart hooks (sandbox) -> spawn --TASK_RUNNING-->
//!                            |   wait -> reap group -> poststop --TASK_FINISHED/FAILED/KILLED-->
//!  master --KillTask------> SIGTERM group, grace period, SIGKILL group
//!  master --Acknowledge---> pops the outstanding update, sends the next
//! ```
//!
//! - [`call`]: master messages -> [`ExecutorCall`].
//! - [`checkpoint`]: what survives an agent restart (containers, tasks,
//!   the status update log) and reading it back.
//! - [`launch`]: `LaunchTasks` -> typed tasks, kill grace periods (pure).
//! - [`task`]: a task's TaskInfo as the agent holds it ([`task::TaskSpec`],
//!   typed once at the edge; checkpoints and reports are its serialization).
//! - [`command`]: CommandInfo -> argv and environment (pure).
//! - [`health`]: COMMAND, HTTP and TCP health checks.
//! - [`sandbox`]: the Mesos sandbox layout under the work dir.
//! - [`hooks`]: ordered, idempotent lifecycle hooks ([`hooks::SandboxHook`]).
//! - [`launcher`]: the only code that spawns, signals and reaps processes
//!   ([`LinuxLauncher`] with its per-task `shim`, [`FakeLauncher`]).
//! - [`supervisor`]: one task's process from hooks to reaping.
//! - [`status`]: building updates and Mesos' exit wording.
//! - [`updates`]: the status update manager (pure state machine).
//! - [`users`]: which user a task runs as (`--switch-user`).
//! - [`volumes`]: persistent volumes in sandboxes.
//! - [`runtime`]: the actor tying it together; [`ExecutorHandle`] is its API.
//! - [`seam`]: [`TaskExecutor`], what the session needs from a runtime (the
//!   real one, or the simulator's).

pub mod call;
pub mod checkpoint;
pub mod command;
pub mod health;
pub mod hooks;
pub mod http;
pub mod launch;
pub mod launcher;
pub mod runtime;
pub mod sandbox;
pub mod seam;
pub mod status;
pub mod supervisor;
pub mod task;
pub mod updates;
pub mod users;
pub mod volumes;

pub use call::ExecutorCall;
pub use launcher::fake::FakeLauncher;
pub use launcher::linux::LinuxLauncher;
pub use runtime::{ExecutorConfig, ExecutorHandle};
pub use seam::TaskExecutor;
pub use updates::TaskKey;
