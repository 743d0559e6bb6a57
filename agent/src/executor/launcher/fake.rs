//! A recording launcher for tests: nothing is executed. Each spawn gets a
//! made-up pid; the test ends processes with [`FakeLauncher::exit`], and
//! signals end them the way a plain process would (TERM unless the fake was
//! told to ignore it, KILL always). Processes outlive the runtime that
//! started them: a second runtime given a clone of the same fake adopts them
//! by their `state_dir`, as a restarted agent does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::{Adopted, ExitStatus, LaunchSpec, LauncherError, Process, ProcessLauncher, Signal};

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

#[derive(Clone, Default)]
pub struct FakeLauncher {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    next_pid: u32,
    spawned: Vec<(u32, LaunchSpec)>,
    signals: Vec<(u32, Signal)>,
    exits: HashMap<u32, watch::Sender<Option<ExitStatus>>>,
    by_dir: HashMap<PathBuf, u32>,
    /// Processes whose supervisor "died": adoption finds nothing.
    lost: Vec<u32>,
    spawn_error: Option<String>,
    ignore_term: bool,
}

pub struct FakeProcess {
    pid: u32,
    exit: watch::Receiver<Option<ExitStatus>>,
}

impl FakeLauncher {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every later spawn fails with this reason (`None`: spawns work again).
    pub fn fail_spawns(&self, reason: Option<&str>) {
        self.state().spawn_error = reason.map(str::to_string);
    }

    /// Processes started from now on ignore SIGTERM.
    pub fn ignore_term(&self, ignore: bool) {
        self.state().ignore_term = ignore;
    }

    /// `(pid, spec)` of every spawn, in order.
    pub fn spawned(&self) -> Vec<(u32, LaunchSpec)> {
        self.state().spawned.clone()
    }

    /// `(pgid, signal)` of every signal sent, in order.
    pub fn signals(&self) -> Vec<(u32, Signal)> {
        self.state().signals.clone()
    }

    /// Ends process `pid` (no effect if it already ended).
    pub fn exit(&self, pid: u32, status: ExitStatus) {
        if let Some(tx) = self.state().exits.get(&pid) {
            tx.send_if_modified(|s| s.is_none() && s.replace(status).is_none());
        }
    }

    /// Whether process `pid` was started and has not ended.
    pub fn is_running(&self, pid: u32) -> bool {
        self.state()
            .exits
            .get(&pid)
            .is_some_and(|tx| tx.borrow().is_none())
    }

    /// Process `pid` loses its supervisor: a later adoption finds it gone.
    pub fn lose(&self, pid: u32) {
        self.state().lost.push(pid);
    }
}

impl ProcessLauncher for FakeLauncher {
    type Process = FakeProcess;

    async fn spawn(&self, spec: &LaunchSpec) -> Result<FakeProcess, LauncherError> {
        let mut st = self.state();
        if let Some(reason) = &st.spawn_error {
            return Err(LauncherError::Spawn {
                program: spec.program.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, reason.clone()),
            });
        }
        st.next_pid += 1;
        let pid = 1000 + st.next_pid;
        st.spawned.push((pid, spec.clone()));
        st.by_dir.insert(spec.state_dir.clone(), pid);
        let (tx, exit) = watch::channel(None);
        st.exits.insert(pid, tx);
        Ok(FakeProcess { pid, exit })
    }

    async fn adopt(&self, state_dir: &Path) -> Adopted<FakeProcess> {
        let st = self.state();
        let Some(pid) = st.by_dir.get(state_dir).copied() else {
            return Adopted::NotStarted;
        };
        if st.lost.contains(&pid) {
            return Adopted::Gone(format!("fake process {pid} lost its supervisor"));
        }
        let Some(tx) = st.exits.get(&pid) else {
            return Adopted::NotStarted;
        };
        match *tx.borrow() {
            Some(status) => Adopted::Exited(status),
            None => Adopted::Running(FakeProcess {
                pid,
                exit: tx.subscribe(),
            }),
        }
    }

    fn signal_group(&self, pgid: u32, signal: Signal) -> Result<(), LauncherError> {
        let ignore_term = {
            let mut st = self.state();
            st.signals.push((pgid, signal));
            st.ignore_term
        };
        match signal {
            Signal::Term if ignore_term => {}
            Signal::Term => self.exit(pgid, ExitStatus::Signaled(SIGTERM)),
            Signal::Kill => self.exit(pgid, ExitStatus::Signaled(SIGKILL)),
        }
        Ok(())
    }
}

impl Process for FakeProcess {
    fn pid(&self) -> u32 {
        self.pid
    }

    async fn wait(&mut self) -> Result<ExitStatus, LauncherError> {
        let pid = self.pid;
        match self.exit.wait_for(Option::is_some).await {
            Ok(status) => Ok(status.expect("checked by wait_for")),
            Err(_) => Err(LauncherError::Wait {
                pid,
                reason: "fake launcher dropped".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &str) -> LaunchSpec {
        LaunchSpec {
            program: "/bin/true".into(),
            argv: vec!["true".into()],
            env: vec![],
            cwd: "/".into(),
            stdout: "/dev/null".into(),
            stderr: "/dev/null".into(),
            state_dir: dir.into(),
            ..LaunchSpec::default()
        }
    }

    #[tokio::test]
    async fn records_and_obeys_signals() {
        let l = FakeLauncher::new();
        let mut a = l.spawn(&spec("/a")).await.unwrap();
        l.signal_group(a.pid(), Signal::Term).unwrap();
        assert_eq!(a.wait().await.unwrap(), ExitStatus::Signaled(15));

        l.ignore_term(true);
        let mut b = l.spawn(&spec("/b")).await.unwrap();
        l.signal_group(b.pid(), Signal::Term).unwrap();
        assert!(l.is_running(b.pid()));
        l.signal_group(b.pid(), Signal::Kill).unwrap();
        l.exit(b.pid(), ExitStatus::Exited(0));
        assert_eq!(b.wait().await.unwrap(), ExitStatus::Signaled(9));
        assert_eq!(l.signals().len(), 3);
        assert_eq!(l.spawned().len(), 2);

        l.fail_spawns(Some("no such file"));
        assert!(l.spawn(&spec("/c")).await.is_err());
    }

    #[tokio::test]
    async fn processes_are_adopted_by_their_state_dir() {
        let l = FakeLauncher::new();
        let a = l.spawn(&spec("/a")).await.unwrap();
        let b = l.spawn(&spec("/b")).await.unwrap();
        let c = l.spawn(&spec("/c")).await.unwrap();
        l.exit(b.pid(), ExitStatus::Exited(3));
        l.lose(c.pid());
        let again = l.clone();
        let Adopted::Running(mut a2) = again.adopt(Path::new("/a")).await else {
            panic!("a runs");
        };
        assert_eq!(a2.pid(), a.pid());
        assert!(matches!(
            again.adopt(Path::new("/b")).await,
            Adopted::Exited(ExitStatus::Exited(3))
        ));
        assert!(matches!(
            again.adopt(Path::new("/c")).await,
            Adopted::Gone(_)
        ));
        assert!(matches!(
            again.adopt(Path::new("/d")).await,
            Adopted::NotStarted
        ));
        l.exit(a.pid(), ExitStatus::Exited(0));
        assert_eq!(a2.wait().await.unwrap(), ExitStatus::Exited(0));
    }
}
