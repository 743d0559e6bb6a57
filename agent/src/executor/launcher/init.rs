//! The task's first process: forked by the shim into the task's cgroup
//! (and as PID 1 of a new PID namespace if asked, see [`super::clone`]). It
//! sets up the rest from inside, then runs the task:
//!
//! ```text
//!  shim --clone3(INTO_CGROUP [, NEWPID])--> init: own process group
//!    init: unshare(NEWNS|NEWUTS|NEWIPC), setns(netns), sethostname,
//!          open stdout/stderr on the host, build the view (mounts), pivot_root
//!    PID namespace:  spawn the task as PID 2 (same process group), report
//!                    {"started"}, reap every orphan until the task exits,
//!                    report {"exited"|"signaled"}, exit (the kernel kills
//!                    what is left in the namespace)
//!    otherwise:      exec the task (init becomes it; the shim reaps)
//!  failure at any step: {"failed": {errno, message}} on the report pipe, exit 127
//! ```
//!
//! Reports go to the shim through a close-on-exec pipe, so an exec that
//! worked says nothing and closes it.
//!
//! As PID 1, init gets no signal it has no handler for from outside the
//! namespace, SIGKILL aside: the agent's SIGTERM to the task's process group
//! reaches the task and leaves init waiting; SIGKILL ends the namespace.

use std::io::{PipeWriter, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::LaunchSpec;
use super::shim::{self, Failure, ShimEnd, ShimReport};
use crate::isolation::{mounts, namespaces};

/// Runs in the forked child; returns its exit code (when it did not exec).
pub fn run(spec: &LaunchSpec, mut out: PipeWriter) -> i32 {
    let dir = spec.state_dir.to_string_lossy();
    super::clone::set_identity("keel-init", &["keel-agent", "init", &dir]);
    // The shim's stdout is the agent's report pipe: not for this process.
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = rustix::stdio::dup2_stdout(&null);
    }
    match set_up_and_run(spec, &mut out) {
        Ok(code) => code,
        Err((errno, message)) => {
            shim::report_to(&mut out, &ShimReport::Failed { errno, message });
            127
        }
    }
}

fn set_up_and_run(spec: &LaunchSpec, out: &mut impl Write) -> Result<i32, Failure> {
    // Its own process group: the agent signals the task's group.
    rustix::process::setpgid(None, None)
        .map_err(|e| (Some(e.raw_os_error()), format!("setpgid: {e}")))?;
    let ns = spec.namespaces;
    namespaces::enter_own(&ns).map_err(|e| (None, e.to_string()))?;
    if let Some(netns) = &spec.netns {
        namespaces::enter_network(netns).map_err(|e| (None, e.to_string()))?;
    }
    if ns.uts
        && let Some(name) = &spec.hostname
    {
        namespaces::set_hostname(name).map_err(|e| (None, e.to_string()))?;
    }
    // Opened on the host, before the view changes.
    let stdout = shim::open_append(&spec.stdout)?;
    let stderr = shim::open_append(&spec.stderr)?;
    if ns.mount || ns.pid {
        mounts::make_private().map_err(|e| (None, e.to_string()))?;
    }
    if ns.mount {
        let root = spec.state_dir.join("rootfs");
        let sandbox = spec.sandbox.clone().unwrap_or_else(|| spec.cwd.clone());
        let view = mounts::View {
            root: &root,
            sandbox: &sandbox,
            hide: &spec.hide,
            volumes: &spec.volumes,
            fresh_proc: ns.pid,
        };
        let ops = mounts::plan(&mounts::host_entries(Path::new("/")), &view);
        mounts::apply(&root, &ops).map_err(|e| (None, e.to_string()))?;
        mounts::pivot(&root).map_err(|e| (None, e.to_string()))?;
    } else if ns.pid {
        // Only /proc changes: it must show this namespace.
        rustix::mount::mount(
            "proc",
            "/proc",
            "proc",
            rustix::mount::MountFlags::NOSUID | rustix::mount::MountFlags::NODEV,
            None,
        )
        .map_err(|e| (Some(e.raw_os_error()), format!("mount /proc: {e}")))?;
    }

    let mut cmd = Command::new(&spec.program);
    if let Some((argv0, rest)) = spec.argv.split_first() {
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    if let Some((uid, gid)) = spec.user {
        cmd.uid(uid).gid(gid);
    }
    let cannot_run = |e: std::io::Error| {
        (
            e.raw_os_error(),
            format!("cannot run {}: {e}", spec.program),
        )
    };
    if !ns.pid {
        // Only returns if the exec failed.
        return Err(cannot_run(cmd.exec()));
    }
    let task = cmd.spawn().map_err(cannot_run)?.id();
    shim::report_to(out, &ShimReport::Started { pid: task });
    let end = shim::wait_for(task).map_err(|e| (None, e.to_string()))?;
    shim::report_end(out, &end);
    Ok(match end {
        ShimEnd::Exited(code) => code,
        ShimEnd::Signaled(sig) => 128 + sig,
        ShimEnd::LaunchFailed { .. } => 127,
    })
}
