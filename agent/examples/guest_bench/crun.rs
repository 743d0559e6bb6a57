//! `crun run` of an OCI bundle doing the same work as one of the agent's
//! tasks: the other side of the comparison.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{Value as Json, json};

use super::{CPUS, MEM_MB, PIDS_MAX, ms};

/// The OCI bundle `crun run` gets: the same work as one of the agent's
/// tasks (with the agent's cpu, memory and pids limits when `limits`).
pub fn crun_config(cgroup: &str, limits: bool) -> Json {
    let caps = json!([
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE"
    ]);
    let mem = (MEM_MB << 20) as i64;
    let resources = if limits {
        json!({
            "memory": {"limit": mem, "swap": mem},
            "cpu": {"shares": (CPUS * 1024.0) as u64,
                    "quota": (CPUS * 100_000.0) as i64, "period": 100_000},
            "pids": {"limit": PIDS_MAX}
        })
    } else {
        json!({})
    };
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/true"],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": false
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "bench",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev"]},
            {"destination": "/sys", "type": "none", "source": "/sys",
             "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}],
            "cgroupsPath": cgroup,
            "resources": resources
        }
    })
}

pub struct Crun {
    pub bin: PathBuf,
    /// Where its libraries are, when not the system's.
    pub lib: Option<PathBuf>,
    pub state: PathBuf,
    pub bundle: PathBuf,
    /// The cgroup (relative to the mount) runs go under.
    pub cgroup: String,
    /// The agent's cpu, memory and pids limits in the bundle too.
    pub limits: bool,
}

impl Crun {
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        if let Some(lib) = &self.lib {
            c.env("LD_LIBRARY_PATH", lib);
        }
        c
    }

    /// `crun run` of the bundle, start to exit.
    pub fn run(&self, i: usize) -> anyhow::Result<f64> {
        let config = crun_config(&format!("{}/run-{i}", self.cgroup), self.limits);
        std::fs::write(self.bundle.join("config.json"), config.to_string())?;
        let t0 = Instant::now();
        let out = self
            .command()
            .arg("--root")
            .arg(&self.state)
            .args(["run", "--bundle"])
            .arg(&self.bundle)
            .arg(format!("bench-{i}"))
            .stdin(Stdio::null())
            .output()?;
        let took = t0.elapsed();
        anyhow::ensure!(
            out.status.success(),
            "crun run: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(ms(took))
    }

    pub fn version(&self) -> String {
        self.command()
            .arg("--version")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_default()
    }
}
