//! The container's init (`keel-agent init DIR`), started by the shim when a
//! task has namespaces. It sets them up from inside, then runs the task:
//!
//! ```text
//!  shim: unshare(NEWPID) if asked --spawn--> init (PID 1 of the new PID namespace)
//!    init: unshare(NEWNS|NEWUTS|NEWIPC), setns(netns), sethostname,
//!          open stdout/stderr on the host, build the view (mounts), pivot_root
//!    PID namespace:  spawn the task as PID 2 (same process group), report
//!                    {"started"}, reap every orphan until the task exits,
//!                    report {"exited"|"signaled"}, exit (the kernel kills
//!                    what is left in the namespace)
//!    otherwise:      exec the task (init becomes it; the shim reaps)
//!  failure at any step: {"failed": {errno, message}} on stdout, exit 127
//! ```
//!
//! As PID 1, init gets no signal it has no handler for from outside the
//! namespace, SIGKILL aside: the agent's SIGTERM to the task's process group
//! reaches the task and leaves init waiting; SIGKILL ends the namespace.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::LaunchSpec;
use super::shim::{self, Failure, LAUNCH_FILE, ShimEnd, ShimReport};
use crate::isolation::{mounts, namespaces};

/// The init's `main`: returns the process exit code.
pub fn main(dir: &Path) -> i32 {
    match run(dir) {
        Ok(code) => code,
        Err((errno, message)) => {
            shim::report(&ShimReport::Failed { errno, message });
            127
        }
    }
}

fn failure(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Failure {
    move |e| (e.raw_os_error(), format!("{what}: {e}"))
}

fn run(dir: &Path) -> Result<i32, Failure> {
    let path = dir.join(LAUNCH_FILE);
    let spec: LaunchSpec = std::fs::read(&path)
        .map_err(failure(path.display()))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| (None, e.to_string())))?;
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
        let root = dir.join("rootfs");
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
    shim::report(&ShimReport::Started { pid: task });
    let end = shim::wait_for(task).map_err(|e| (None, e.to_string()))?;
    shim::report_end(&end);
    Ok(match end {
        ShimEnd::Exited(code) => code,
        ShimEnd::Signaled(sig) => 128 + sig,
        ShimEnd::LaunchFailed { .. } => 127,
    })
}
