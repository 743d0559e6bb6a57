//! Boot time under TCG, side by side in one run: the bundle's kernel with
//! Keel's initramfs (kernel start -> agent registered with the host master)
//! and the same kernel with a bare busybox initramfs (kernel start ->
//! userspace: the floor).
//!
//! Both are measured from the kernel's own start: busybox prints
//! `/proc/uptime` as its first act; for Keel, init's first console line
//! carries the uptime, which places the kernel's start on the host's clock,
//! and the host sees the registration by polling the master.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::api::has_any_mac;
use crate::lab::Lab;
use crate::qemu::{Boot, Guest, GuestSpec, QemuError};
use crate::shape::{NicSpec, Shape};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Qemu(#[from] QemuError),
    #[error(transparent)]
    Build(#[from] keel_initramfs::BuildError),
    #[error(transparent)]
    Cpio(#[from] keel_initramfs::cpio::CpioError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse {what} from console line {line:?}")]
    Parse { what: &'static str, line: String },
    #[error("the agent did not register: {0}")]
    Register(#[from] crate::api::ApiError),
}

/// The busybox the floor runs (Debian `busybox-static`).
pub const BUSYBOX: &str = "/bin/busybox";
const FLOOR_MARK: &str = "keel-floor userspace at ";

/// One side-by-side measurement, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Run {
    /// Floor: kernel start -> busybox /init running (guest clock).
    pub floor: f64,
    /// Floor: QEMU start -> busybox /init running (host clock).
    pub floor_wall: f64,
    /// Keel: kernel start -> agent registered.
    pub keel: f64,
    /// Keel: QEMU start -> agent registered (host clock).
    pub keel_wall: f64,
    /// Keel: kernel start -> keel-init running.
    pub keel_init: f64,
}

impl Run {
    pub fn ratio(&self) -> f64 {
        self.keel / self.floor
    }
}

/// The shape both guests get.
pub fn bench_shape() -> Shape {
    Shape {
        name: "bench".into(),
        vcpus: 2,
        memory_mib: 1024,
        disks: vec![],
        nics: vec![NicSpec {
            mac: "52:54:00:4b:0b:01".into(),
            model: Some("virtio-net-pci".into()),
            driver: None,
        }],
        tpm: false,
    }
}

/// A bare busybox initramfs: `/init` prints the uptime and powers off.
/// Packed like the bundle (cpio, zstd at `level`).
pub fn floor_initramfs(out: &Path, level: u32) -> Result<PathBuf, BenchError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BenchError::Io { path, source }
    };
    let mut ar = keel_initramfs::cpio::Archive::new(0);
    for d in ["proc", "sys", "dev"] {
        ar.dir(d)?;
    }
    ar.add(
        "dev/console",
        keel_initramfs::cpio::Node::CharDev {
            mode: 0o600,
            major: 5,
            minor: 1,
        },
    )?;
    let busybox = std::fs::read(BUSYBOX).map_err(io(Path::new(BUSYBOX)))?;
    ar.file("bin/busybox", 0o755, busybox)?;
    ar.symlink("bin/sh", "busybox")?;
    let init = format!(
        "#!/bin/sh\n/bin/busybox mount -t proc proc /proc\nread up idle < /proc/uptime\necho \"{FLOOR_MARK}$up\"\n/bin/busybox poweroff -f\n"
    );
    ar.file("init", 0o755, init.into_bytes())?;
    let bytes = keel_initramfs::zstd(&ar.to_bytes(), level)?;
    std::fs::create_dir_all(out).map_err(io(out))?;
    let path = out.join("floor.img");
    std::fs::write(&path, bytes).map_err(io(&path))?;
    Ok(path)
}

/// The number after `[` in a keel-init console line (`[    3.991]  INFO ...`).
pub fn init_uptime(line: &str) -> Option<f64> {
    line.trim_start()
        .strip_prefix('[')?
        .split(']')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// One floor boot and one Keel boot.
pub fn run_once(lab: &Lab, floor_img: &Path) -> Result<Run, BenchError> {
    let shape = bench_shape();
    let kernel = lab.bundle.join(keel_initramfs::VMLINUZ);

    // The floor.
    let spec = GuestSpec {
        dir: lab.dir.join("floor"),
        shape: shape.clone(),
        boot: Boot::Kernel {
            kernel: kernel.clone(),
            initrd: floor_img.to_path_buf(),
            append: "console=ttyS0 quiet panic=-1".into(),
        },
        allow_reboot: false,
        forwards: vec![],
    };
    let mut g = Guest::start(spec)?;
    let (line, wall) = g.wait_for(FLOOR_MARK, Duration::from_secs(120))?;
    let floor = line
        .split(FLOOR_MARK)
        .nth(1)
        .and_then(|s| s.trim().parse::<f64>().ok())
        .ok_or(BenchError::Parse {
            what: "the floor's uptime",
            line: line.clone(),
        })?;
    drop(g);

    // Keel. Earlier runs' agents (same MAC, another id) do not count.
    let known: std::collections::HashSet<String> = lab
        .rt
        .block_on(lab.api.agents())
        .map(|a| a.into_iter().map(|a| a.id).collect())
        .unwrap_or_default();
    let mut spec = lab.kernel_guest(shape.clone(), lab.append("quiet"));
    spec.dir = lab.dir.join("keel");
    let mut g = Guest::start(spec)?;
    let (line, _) = g.wait_for("INFO keel-init ", Duration::from_secs(120))?;
    let seen = Instant::now();
    let keel_init = init_uptime(&line).ok_or(BenchError::Parse {
        what: "keel-init's uptime",
        line: line.clone(),
    })?;
    let kernel_start = seen - Duration::from_secs_f64(keel_init);
    let macs = vec![shape.nics[0].mac.clone()];
    let (_, _, registered) = lab.rt.block_on(lab.api.wait_for_agent(
        "the bench guest's MAC and a new id",
        Duration::from_secs(180),
        |a, inv| has_any_mac(inv, &macs) && !known.contains(&a.id),
    ))?;
    let run = Run {
        floor,
        floor_wall: wall.as_secs_f64(),
        keel: registered.duration_since(kernel_start).as_secs_f64(),
        keel_wall: registered.duration_since(g.started()).as_secs_f64(),
        keel_init,
    };
    drop(g);
    Ok(run)
}

/// The median of `xs` (sorted copy).
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_of_an_init_line() {
        assert_eq!(
            init_uptime("[    3.991]  INFO keel-init 0.1.0 on Linux 6.1.0-56-amd64"),
            Some(3.991)
        );
        assert_eq!(init_uptime("2026-11-22T04:52:13Z INFO x"), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn the_floor_is_a_busybox_initramfs() {
        let dir = tempfile::tempdir().unwrap();
        let img = floor_initramfs(dir.path(), 3).unwrap();
        let out = std::process::Command::new("zstd")
            .args(["-d", "-c", "-q"])
            .arg(&img)
            .output()
            .unwrap();
        let entries = keel_initramfs::cpio::read(&out.stdout).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/busybox",
                "bin/sh",
                "dev",
                "dev/console",
                "init",
                "proc",
                "sys"
            ]
        );
    }
}
