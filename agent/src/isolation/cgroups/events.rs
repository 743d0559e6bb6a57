//! `memory.events` and `cgroup.events`: parsing, and waiting for them to
//! change. The kernel reports a change of either file as an inotify
//! `IN_MODIFY`; this is how an OOM kill is noticed (cgroups-rs can only do
//! this on v1, through `memory.oom_control`).

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::inotify;
use tokio::io::unix::AsyncFd;

/// `key value` lines (`memory.events`, `cgroup.events`, `pids.events`).
pub fn parse_flat(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// The counters of `memory.events` Keel reacts to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryEvents {
    pub high: u64,
    pub max: u64,
    pub oom: u64,
    pub oom_kill: u64,
    pub oom_group_kill: u64,
}

impl MemoryEvents {
    pub fn parse(text: &str) -> Self {
        let m = parse_flat(text);
        let get = |k: &str| m.get(k).copied().unwrap_or(0);
        MemoryEvents {
            high: get("high"),
            max: get("max"),
            oom: get("oom"),
            oom_kill: get("oom_kill"),
            oom_group_kill: get("oom_group_kill"),
        }
    }

    /// The OOM killer took a process (or the whole group) of the cgroup.
    pub fn oom_killed(&self) -> bool {
        self.oom_kill > 0 || self.oom_group_kill > 0
    }
}

/// `cgroup.events`: whether any process is left in the cgroup or below.
pub fn populated(text: &str) -> Option<bool> {
    parse_flat(text).get("populated").map(|v| *v != 0)
}

/// Registers an inotify descriptor with the reactor.
#[allow(unsafe_code)]
fn register(fd: OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the `OwnedFd` moves into the `AsyncFd`, which owns it until
    // dropped: the descriptor stays open and `as_raw_fd` never changes.
    unsafe { AsyncFd::register(fd) }.map_err(std::io::Error::from)
}

fn inotify_on(file: &Path) -> std::io::Result<AsyncFd<OwnedFd>> {
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)?;
    inotify::add_watch(&fd, file, inotify::WatchFlags::MODIFY)?;
    register(fd)
}

/// Resolves with `check`'s answer once it has one, checking at once and
/// whenever `file` changes (inotify), or every `fallback` if inotify cannot
/// watch it.
pub async fn when<T, F>(file: PathBuf, fallback: Duration, check: F) -> T
where
    F: Fn() -> Option<T>,
{
    let watch = inotify_on(&file);
    if let Err(e) = &watch {
        tracing::debug!(file = %file.display(), error = %e, "no inotify, polling");
    }
    loop {
        if let Some(v) = check() {
            return v;
        }
        match &watch {
            Ok(fd) => {
                let Ok(mut guard) = fd.readable().await else {
                    tokio::time::sleep(fallback).await;
                    continue;
                };
                // Drain: the events say no more than "it changed".
                let mut buf = [0u8; 1024];
                while rustix::io::read(fd.get_ref(), &mut buf).is_ok_and(|n| n > 0) {}
                guard.clear_ready();
            }
            Err(_) => tokio::time::sleep(fallback).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from a QEMU guest after `memhog 100` ran in a 32M group.
    const OOM: &str = "low 0\nhigh 0\nmax 1291\noom 1\noom_kill 1\noom_group_kill 0\n";

    #[test]
    fn parses_the_event_files() {
        let m = MemoryEvents::parse(OOM);
        assert_eq!((m.max, m.oom, m.oom_kill), (1291, 1, 1));
        assert!(m.oom_killed());
        assert!(!MemoryEvents::parse("low 0\nhigh 3\n").oom_killed());
        assert!(MemoryEvents::parse("oom_group_kill 1\n").oom_killed());
        assert_eq!(populated("populated 1\nfrozen 0\n"), Some(true));
        assert_eq!(populated("populated 0\nfrozen 0\n"), Some(false));
        assert_eq!(populated("junk"), None);
    }

    #[tokio::test]
    async fn a_change_of_the_file_wakes_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("memory.events");
        std::fs::write(&file, "oom_kill 0\n").unwrap();
        let f = file.clone();
        let check = move || {
            let text = std::fs::read_to_string(&f).ok()?;
            MemoryEvents::parse(&text).oom_killed().then_some("oom")
        };
        // A fallback this long means only inotify can wake it in time.
        let watch = tokio::spawn(when(file.clone(), Duration::from_secs(3600), check));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!watch.is_finished());
        std::fs::write(&file, "oom_kill 1\n").unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), watch).await;
        assert_eq!(got.expect("inotify woke it").unwrap(), "oom");
    }

    #[tokio::test]
    async fn without_inotify_it_polls() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let flag = dir.path().join("flag");
        let f = flag.clone();
        let watch = tokio::spawn(when(missing, Duration::from_millis(20), move || {
            f.exists().then_some(())
        }));
        std::fs::write(&flag, "").unwrap();
        tokio::time::timeout(Duration::from_secs(5), watch)
            .await
            .unwrap()
            .unwrap();
    }
}
