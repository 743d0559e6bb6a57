//! Entering namespaces: `unshare` for new ones, `setns` for a network
//! namespace the agent made. Used by the single-threaded task supervisor
//! and container init processes, and (network only, which is per thread)
//! by a dedicated thread of the agent that creates a task's network
//! namespace; never on an async runtime's threads.

use std::os::fd::AsFd;
use std::path::Path;

use rustix::thread::{LinkNameSpaceType, UnshareFlags};

use super::Namespaces;

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("unshare({what}): {source}")]
    Unshare {
        what: String,
        source: std::io::Error,
    },
    #[error("cannot enter network namespace {path}: {source}")]
    Setns {
        path: String,
        source: std::io::Error,
    },
    #[error("sethostname({name}): {source}")]
    Hostname {
        name: String,
        source: std::io::Error,
    },
}

/// `unshare(2)` of namespaces only (never the fd table or fs info).
#[allow(unsafe_code)]
fn unshare(flags: UnshareFlags) -> Result<(), NamespaceError> {
    let ns_only = UnshareFlags::NEWNS
        | UnshareFlags::NEWUTS
        | UnshareFlags::NEWIPC
        | UnshareFlags::NEWPID
        | UnshareFlags::NEWNET
        | UnshareFlags::NEWCGROUP;
    debug_assert!(ns_only.contains(flags));
    // SAFETY: `unshare_unsafe` is unsafe only for `CLONE_FILES` (another
    // thread could see file descriptors vanish); only namespace flags are
    // passed (masked here), none of which shares or splits the fd table.
    unsafe { rustix::thread::unshare_unsafe(flags & ns_only) }.map_err(|e| {
        NamespaceError::Unshare {
            what: format!("{flags:?}"),
            source: e.into(),
        }
    })
}

/// A new network namespace for the calling thread only.
pub fn new_network_namespace() -> Result<(), NamespaceError> {
    unshare(UnshareFlags::NEWNET)
}

/// New mount, UTS and IPC namespaces for the caller, as `ns` asks. A PID
/// namespace needs its own `/proc`, so it brings a mount namespace too.
pub fn enter_own(ns: &Namespaces) -> Result<(), NamespaceError> {
    let mut flags = UnshareFlags::empty();
    if ns.mount || ns.pid {
        flags |= UnshareFlags::NEWNS;
    }
    if ns.uts {
        flags |= UnshareFlags::NEWUTS;
    }
    if ns.ipc {
        flags |= UnshareFlags::NEWIPC;
    }
    if flags.is_empty() {
        return Ok(());
    }
    unshare(flags)
}

/// Joins the network namespace bound at `path`.
pub fn enter_network(path: &Path) -> Result<(), NamespaceError> {
    let err = |e: std::io::Error| NamespaceError::Setns {
        path: path.display().to_string(),
        source: e,
    };
    let file = std::fs::File::open(path).map_err(err)?;
    rustix::thread::move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network))
        .map_err(|e| err(e.into()))
}

pub fn set_hostname(name: &str) -> Result<(), NamespaceError> {
    rustix::system::sethostname(name.as_bytes()).map_err(|e| NamespaceError::Hostname {
        name: name.to_string(),
        source: e.into(),
    })
}
