//! `clone3(2)` for the launcher's single-threaded processes (the fork
//! server and the task supervisors): a child that starts in a given cgroup
//! (`CLONE_INTO_CGROUP`, so no process is ever migrated between cgroups,
//! which costs a `synchronize_rcu` per move), optionally as PID 1 of a new
//! PID namespace, with a pidfd for the parent.
//!
//! The child is a copy of a single-threaded parent and may run any code,
//! allocation included; it must end with `exec` or `_exit` and never return
//! into the parent's logic. Never call [`fork_into`] from a process with more
//! than one thread (the agent itself): only async-signal-safe code would be
//! allowed in its child.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const CLONE_NEWPID: u64 = 0x2000_0000;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` up to `cgroup` (`CLONE_ARGS_SIZE_VER2`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Where the caller runs after a successful [`fork_into`].
#[derive(Debug)]
pub enum Forked {
    /// In the child.
    Child,
    /// In the parent: the child's pid and a pidfd for it.
    Parent { pid: u32, pidfd: OwnedFd },
}

/// What the child gets.
#[derive(Debug, Clone, Copy, Default)]
pub struct CloneOptions<'a> {
    /// Start in this cgroup (an open directory of cgroup v2).
    pub cgroup: Option<BorrowedFd<'a>>,
    /// Start as PID 1 of a new PID namespace.
    pub new_pid_namespace: bool,
}

/// Forks the calling single-threaded process as `options` say.
#[allow(unsafe_code)]
pub fn fork_into(options: CloneOptions<'_>) -> std::io::Result<Forked> {
    let mut pidfd: i32 = -1;
    let mut args = CloneArgs {
        flags: CLONE_PIDFD,
        pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(cg) = options.cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = cg.as_raw_fd() as u64;
    }
    if options.new_pid_namespace {
        args.flags |= CLONE_NEWPID;
    }
    // SAFETY: `args` is a valid `clone_args` of the size passed, living
    // across the call; `pidfd` points at a live i32. Without CLONE_VM the
    // child gets its own copy of the address space (a fork), and callers
    // are single-threaded (module rule), so the child's copy of every lock
    // and allocator is consistent.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::addr_of_mut!(args),
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(std::io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid: pid as u32,
            // SAFETY: with CLONE_PIDFD a successful clone3 stored a new
            // descriptor that nothing else owns.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}

/// Ends the child without running the parent's exit handlers or
/// destructors (its copy of them belongs to the parent).
#[allow(unsafe_code)]
pub fn exit_child(code: i32) -> ! {
    // SAFETY: `_exit` only ends the process; it touches no user-space state.
    unsafe { libc::_exit(code) }
}

/// Room the fork server's command line leaves for its children's, which
/// [`set_identity`] writes over it: `keel-agent forkserver` and padding.
pub const CMDLINE_ROOM: usize = 4096;

/// Gives a forked child its own command line (`/proc/PID/cmdline`, what
/// `ps` shows) and `name` (`comm`, at most 15 bytes), as an exec would
/// have. With CAP_SYS_RESOURCE the kernel is pointed at new memory;
/// without, the text is written over the process's own argument area,
/// which the fork server padded to [`CMDLINE_ROOM`] (and cut to fit).
#[allow(unsafe_code)]
pub fn set_identity(name: &str, args: &[&str]) {
    let mut text = Vec::new();
    for a in args {
        text.extend_from_slice(a.as_bytes());
        text.push(0);
    }
    if let Ok(name) = std::ffi::CString::new(name.as_bytes()) {
        let _ = rustix::thread::set_name(&name);
    }
    // The kernel reads the command line from this memory from now on.
    let area: &'static [u8] = Vec::leak(text.clone());
    let start = area.as_ptr() as libc::c_ulong;
    let end = start + area.len() as libc::c_ulong;
    let set = |what: libc::c_int, value: libc::c_ulong| {
        // SAFETY: PR_SET_MM takes plain integers; the area stays mapped
        // (leaked) for the life of the process.
        unsafe {
            libc::prctl(
                libc::PR_SET_MM,
                what,
                value,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        }
    };
    // The kernel wants start <= end at every step: the order depends on
    // where the new area lies against the old one.
    if set(libc::PR_SET_MM_ARG_START, start) == 0 {
        if set(libc::PR_SET_MM_ARG_END, end) == 0 {
            return;
        }
    } else if set(libc::PR_SET_MM_ARG_END, end) == 0 && set(libc::PR_SET_MM_ARG_START, start) == 0 {
        return;
    }
    let Some((arg_start, arg_end)) = argument_area() else {
        return;
    };
    let room = arg_end.saturating_sub(arg_start);
    if room == 0 {
        return;
    }
    text.truncate(room - 1);
    text.resize(room, 0);
    // SAFETY: [arg_start, arg_end) is this process's own argument area on
    // its initial stack (from /proc/self/stat), mapped and writable; only
    // std's copy of argv points into it, and nothing reads that after a
    // fork. Exactly `room` bytes are written.
    unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), arg_start as *mut u8, room) };
}

/// `arg_start` and `arg_end` from `/proc/self/stat` (fields 48 and 49).
fn argument_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let field = |n: usize| rest.get(n - 3)?.parse::<usize>().ok();
    Some((field(48)?, field(49)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_runs_and_the_parent_gets_its_pidfd() {
        // The test harness is multi-threaded: the child only exits.
        match fork_into(CloneOptions::default()).unwrap() {
            Forked::Child => exit_child(7),
            Forked::Parent { pid, pidfd } => {
                assert!(pid > 1);
                let status = rustix::process::waitpid(
                    rustix::process::Pid::from_raw(pid as i32),
                    rustix::process::WaitOptions::empty(),
                )
                .unwrap()
                .unwrap()
                .1;
                assert_eq!(status.exit_status(), Some(7));
                drop(pidfd);
            }
        }
    }
}
