//! The soak's cluster: three release masters (`--masters`), each on its own
//! tmpfs when root, and two agents, all on loopback. One guard owns every
//! process and mount: whatever way the run ends, its `Drop` kills the
//! processes, unmounts the tmpfs (copying each master's store out first when
//! the logs are kept) and removes the directory unless it is kept.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cluster::{Api, free_port, release_bin};

/// The file the disk fill writes into a master's work dir.
const FILLER: &str = "soak-filler";

pub struct Master {
    pub port: u16,
    pub work: PathBuf,
    pub api: Api,
    child: Option<Child>,
    /// How many times it was started (its log is `m<i>-<starts>.log`).
    pub starts: u32,
    pub started: Instant,
}

impl Master {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }
}

pub struct Agent {
    child: Option<Child>,
    starts: u32,
}

/// Owns the processes, the mounts and the directory of one run.
pub struct Procs {
    pub dir: PathBuf,
    /// `127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    pub list: String,
    pub masters: Vec<Master>,
    agents: Vec<Agent>,
    mounts: Vec<PathBuf>,
    /// Keep the directory (logs, stores) when dropped: true until the run
    /// passes, so a failure or a panic keeps it.
    keep: bool,
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn mount_source(i: usize) -> String {
    format!("keel-soak-{}-m{i}", std::process::id())
}

/// Unmounts tmpfs left by soak runs that died without cleaning up (killed
/// with SIGKILL): their source names a process that is gone.
pub fn unmount_stale() {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(source), Some(target), Some("tmpfs")) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let Some(pid) = source
            .strip_prefix("keel-soak-")
            .and_then(|r| r.split('-').next())
        else {
            continue;
        };
        if Path::new("/proc").join(pid).exists() {
            continue;
        }
        eprintln!("soak: unmounting {target}, left by an earlier run (pid {pid})");
        unmount(Path::new(target));
    }
}

fn unmount(path: &Path) {
    let ok = Command::new("umount")
        .arg(path)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let _ = Command::new("umount").arg("-l").arg(path).status();
    }
}

/// Appends to `DIR/NAME.log`.
fn log_to(dir: &Path, name: &str) -> Result<Stdio> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))
        .with_context(|| format!("cannot open {name}.log in {}", dir.display()))?;
    Ok(Stdio::from(f))
}

impl Procs {
    /// A fresh directory and, with `tmpfs_mib`, one tmpfs of that size per
    /// master's work dir (root only).
    pub fn create(dir: PathBuf, tmpfs_mib: Option<u64>) -> Result<Procs> {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let list = ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut procs = Procs {
            dir: dir.clone(),
            list,
            masters: Vec::new(),
            agents: Vec::new(),
            mounts: Vec::new(),
            keep: true,
        };
        for (i, port) in ports.into_iter().enumerate() {
            let work = dir.join(format!("m{i}"));
            std::fs::create_dir_all(&work)?;
            if let Some(mib) = tmpfs_mib {
                let status = Command::new("mount")
                    .args(["-t", "tmpfs", "-o", &format!("size={mib}m,mode=0700")])
                    .arg(mount_source(i))
                    .arg(&work)
                    .status()
                    .context("cannot run mount")?;
                if !status.success() {
                    bail!("mount -t tmpfs on {} failed: {status}", work.display());
                }
                procs.mounts.push(work.clone());
            }
            procs.masters.push(Master {
                port,
                work,
                api: Api::new(port)?,
                child: None,
                starts: 0,
                started: Instant::now(),
            });
        }
        Ok(procs)
    }

    /// Keep the directory when dropped, or not.
    pub fn keep(&mut self, keep: bool) {
        self.keep = keep;
    }

    pub fn spawn_master(&mut self, i: usize) -> Result<()> {
        let m = &mut self.masters[i];
        m.starts += 1;
        let log = log_to(&self.dir, &format!("m{i}-{}", m.starts))?;
        let child = Command::new(release_bin("keel-master"))
            .args(["--ip", "127.0.0.1", "--port", &m.port.to_string()])
            .args(["--masters", &self.list])
            .arg("--work-dir")
            .arg(&m.work)
            .args(["--agent-reregister-timeout", "60s"])
            .env("KEEL_LOG_STDERR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            // Its own process group: a Ctrl-C reaches the soak, which
            // cleans up, not the masters.
            .process_group(0)
            .spawn()
            .context("cannot start keel-master")?;
        m.child = Some(child);
        m.started = Instant::now();
        Ok(())
    }

    pub fn spawn_agent(&mut self) -> Result<()> {
        let i = self.agents.len();
        self.agents.push(Agent {
            child: None,
            starts: 0,
        });
        self.respawn_agent(i)
    }

    fn respawn_agent(&mut self, i: usize) -> Result<()> {
        let a = &mut self.agents[i];
        a.starts += 1;
        let log = log_to(&self.dir, &format!("a{i}-{}", a.starts))?;
        let child = Command::new(release_bin("keel-agent"))
            .args(["--master", &self.list, "--ip", "127.0.0.1", "--port", "0"])
            .arg("--work-dir")
            .arg(self.dir.join(format!("a{i}")))
            .args(["--hostname", &format!("soak-a{i}")])
            .args(["--resources", "cpus:2;mem:1024"])
            .args(["--registration-backoff-factor", "100ms"])
            // Tasks use host networking; no bridge to set up.
            .args(["--network-cidr", "none"])
            .env("KEEL_LOG_STDERR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("cannot start keel-agent")?;
        a.child = Some(child);
        Ok(())
    }

    /// SIGKILL master `i` and reap it.
    pub fn kill_master(&mut self, i: usize) {
        if let Some(mut c) = self.masters[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Masters that exited by themselves since the last call, with how.
    pub fn exited_masters(&mut self) -> Vec<(usize, ExitStatus)> {
        let mut out = Vec::new();
        for (i, m) in self.masters.iter_mut().enumerate() {
            if let Some(status) = m.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                m.child = None;
                out.push((i, status));
            }
        }
        out
    }

    /// Agents that exited by themselves; each is started again.
    pub fn restart_exited_agents(&mut self) -> Result<Vec<(usize, ExitStatus)>> {
        let mut out = Vec::new();
        for i in 0..self.agents.len() {
            let exited = self.agents[i]
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                out.push((i, status));
                self.respawn_agent(i)?;
            }
        }
        Ok(out)
    }

    /// The master that leads and serves (answers `GET_HEALTH` itself).
    pub fn leader(&self) -> Option<usize> {
        (0..self.masters.len()).find(|i| {
            self.masters[*i].running()
                && matches!(self.masters[*i].api.client().get_health(), Ok(true))
        })
    }

    /// Fills master `i`'s disk until ENOSPC; the bytes written.
    pub fn fill(&self, i: usize) -> Result<u64> {
        let path = self.masters[i].work.join(FILLER);
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut written = 0u64;
        // Large writes first, then small ones for what is left.
        for size in [1 << 20, 4096] {
            let chunk = vec![0x5au8; size];
            loop {
                match f.write(&chunk) {
                    Ok(0) => break,
                    Ok(n) => written += n as u64,
                    Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                    Err(e) => bail!("writing {}: {e}", path.display()),
                }
            }
        }
        Ok(written)
    }

    /// Removes the filler of master `i`.
    pub fn free(&self, i: usize) -> Result<()> {
        let path = self.masters[i].work.join(FILLER);
        std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))
    }

    /// SIGTERM every process and wait up to 10 s for each; those that did
    /// not exit 0 (name and how), then SIGKILL for the rest.
    pub fn stop_all(&mut self) -> Vec<String> {
        let mut children: Vec<(String, Child)> = Vec::new();
        for (i, a) in self.agents.iter_mut().enumerate() {
            if let Some(c) = a.child.take() {
                children.push((format!("a{i}"), c));
            }
        }
        for (i, m) in self.masters.iter_mut().enumerate() {
            if let Some(c) = m.child.take() {
                children.push((format!("m{i}"), c));
            }
        }
        for (_, c) in &children {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut unclean = Vec::new();
        for (name, mut c) in children {
            loop {
                match c.try_wait() {
                    Ok(Some(s)) if s.success() => break,
                    Ok(Some(s)) => {
                        unclean.push(format!("{name} exited with {s}"));
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    _ => {
                        let _ = c.kill();
                        let _ = c.wait();
                        unclean.push(format!("{name} did not stop within 10 s of SIGTERM"));
                        break;
                    }
                }
            }
        }
        unclean
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        let children = self
            .agents
            .iter_mut()
            .filter_map(|a| a.child.take())
            .chain(self.masters.iter_mut().filter_map(|m| m.child.take()));
        for mut c in children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for m in &self.mounts {
            let _ = std::fs::remove_file(m.join(FILLER));
            if self.keep {
                // The store lives in RAM: copy it next to the logs.
                let name = m.file_name().unwrap_or_default().to_string_lossy();
                let to = self.dir.join(format!("{name}-store"));
                let _ = Command::new("cp").arg("-a").arg(m).arg(&to).status();
            }
            unmount(m);
        }
        if self.keep {
            eprintln!("soak: logs and stores kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
