//! The in-guest half of `cargo xtask guest-bench`: task launch through a
//! Keel agent beside `crun run`, timed on the guest's own clock. It runs as
//! one task of the guest's agent (fetched from the host with `crun/` and a
//! static busybox) and needs what a task normally may not do, so it first
//! relaxes its own container: `/` and `/sys/fs/cgroup` writable again,
//! `/var` gone, the cgroup controllers handed down in its container.
//!
//! Then, all on the guest's loopback: a `keel-master` and a second
//! `keel-agent` (`--isolation strict`, its cgroups under this container,
//! its work dir in this sandbox, as the appliance's is on the work disk),
//! and a framework that launches `true` RUNS times, each time timing
//! ACCEPT -> TASK_RUNNING and ACCEPT -> TASK_FINISHED (the agent removes
//! the container's cgroups before it reports the end). Interleaved with
//! those, `crun run` of a bundle doing the same work: the same static
//! `true`, PID/mount/UTS/IPC namespaces, a read-only root, a cgroup with
//! the same cpu.max, memory.max (no swap) and pids.max; its state on tmpfs.
//!
//! With `--host DIR` (`cargo xtask host-bench`) it runs the same comparison
//! on the machine it is started on, as root, with no container to relax:
//! `keel-master` and `keel-agent` from beside this example's directory
//! (`target/release/`), the agent with `--isolation auto`, every work dir
//! and crun's state under DIR (on disk, so the fsyncs count), the host's
//! `crun` and static busybox (`KEEL_BENCH_BUSYBOX`, default `/bin/busybox`).
//! Neither side gets resource limits (a host may offer no cgroup v2
//! controllers; each side still gets its own cgroup per container). On a
//! hybrid cgroup host (v1 controllers, v2 at `/sys/fs/cgroup/unified`),
//! which crun refuses, it re-runs itself under `unshare --mount`, detaches
//! the v1 tree and mounts cgroup2 at `/sys/fs/cgroup`, so both sides see a
//! v2-only machine (the same v2 hierarchy).
//! `KEEL_BENCH_STRACE="-f -c -o FILE"` runs the agent under `strace` with
//! those options (for counting syscalls; the times are then not the
//! agent's).
//!
//! ```text
//! guest_bench RUNS WARMUP
//! guest_bench --host DIR RUNS WARMUP
//! ```
//!
//! Output: `key=value` lines on stdout (milliseconds).

mod crun;
mod framework;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crun::Crun;
use framework::{Framework, agent_true};
use rustix::mount::{MountFlags, UnmountFlags, mount_remount, unmount};

const MASTER_PORT: u16 = 5060;
const AGENT_PORT: u16 = 5052;
/// What each `true` gets, on both sides.
const CPUS: f64 = 1.0;
const MEM_MB: u64 = 64;
const PIDS_MAX: u64 = 4096;

fn out(k: &str, v: impl std::fmt::Display) {
    println!("{k}={v}");
    let _ = std::io::stdout().flush();
}

fn sandbox() -> PathBuf {
    std::env::var_os("MESOS_SANDBOX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/mnt/mesos/sandbox"))
}

/// Makes a read-only mount of this container's view writable again.
fn writable(path: &str) -> anyhow::Result<()> {
    let tries = [
        MountFlags::BIND,
        MountFlags::empty(),
        MountFlags::BIND | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
    ];
    let mut last = None;
    for flags in tries {
        match mount_remount(path, flags, "") {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    anyhow::bail!("cannot remount {path} read-write: {last:?}")
}

/// This task's container cgroup (the parent of its leaf), as a path under
/// /sys/fs/cgroup.
fn container_cgroup() -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup")?;
    let leaf = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| anyhow::anyhow!("no cgroup v2 line in /proc/self/cgroup"))?;
    let container = Path::new(leaf.trim())
        .parent()
        .ok_or_else(|| anyhow::anyhow!("cgroup {leaf} has no parent"))?;
    Ok(Path::new("/sys/fs/cgroup").join(container.strip_prefix("/")?))
}

fn enable_controllers(dir: &Path) {
    for c in ["cpu", "memory", "pids", "io"] {
        let _ = std::fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"));
    }
}

/// The sorted samples' p50, p99 and max.
fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.50), at(0.99), v[v.len() - 1])
}

fn report(name: &str, samples: Vec<f64>) -> (f64, f64) {
    let n = samples.len();
    let (p50, p99, max) = percentiles(samples);
    out(&format!("{name}_p50_ms"), format!("{p50:.1}"));
    out(&format!("{name}_p99_ms"), format!("{p99:.1}"));
    out(&format!("{name}_max_ms"), format!("{max:.1}"));
    out(&format!("{name}_n"), n);
    (p50, p99)
}

fn spawn(program: &str, args: &[String], log: &Path) -> anyhow::Result<Child> {
    let f = std::fs::File::create(log)?;
    Ok(Command::new(program)
        .args(args)
        .env("KEEL_LOG_STDERR", "1")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(f.try_clone()?)
        .stderr(f)
        .spawn()?)
}

fn wait_port(port: u16, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Where one run takes its binaries and puts its state.
struct Setup {
    /// The master's and agent's work dirs and logs.
    work: PathBuf,
    /// `rootfs/` (a static busybox as `bin/true`), `config.json`, `netns/`.
    bundle: PathBuf,
    master_bin: PathBuf,
    agent_bin: PathBuf,
    busybox: PathBuf,
    /// `--isolation` of the agent under test.
    isolation: &'static str,
    /// The cgroup both sides' containers go under: `nested/` (the agent's
    /// `--cgroups-root`) and `crun/`.
    cgroup: PathBuf,
    /// Whether `cgroup` is this bench's own (removed at the end).
    own_cgroup: bool,
    crun: Crun,
    master_port: u16,
    agent_port: u16,
}

/// Inside the guest: relaxes this task's container, everything in /bench
/// and the sandbox, limits on both sides.
fn guest_setup() -> anyhow::Result<Setup> {
    let sandbox = sandbox();
    // A writable / (for /bench, which the nested agent's tasks then see
    // read-only) and a writable cgroup tree.
    writable("/")?;
    writable("/sys/fs/cgroup")?;
    // This view's /var holds (under the empty tmpfs over the guest agent's
    // work dir) a copy of the tree it was built in, whose mount points the
    // nested agent cannot reach to remount them read-only; its tasks need
    // no /var.
    unmount("/var", UnmountFlags::DETACH)?;
    let container = container_cgroup()?;
    enable_controllers(&container);
    let crun_dir = sandbox.join("crun");
    let crun_bin = crun_dir.join("bin/crun");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&crun_bin, std::fs::Permissions::from_mode(0o755))?;
    Ok(Setup {
        work: sandbox.clone(),
        bundle: PathBuf::from("/bench"),
        master_bin: PathBuf::from("/usr/bin/keel-master"),
        agent_bin: PathBuf::from("/usr/bin/keel-agent"),
        busybox: sandbox.join("busybox"),
        isolation: "strict",
        cgroup: container,
        own_cgroup: false,
        crun: Crun {
            bin: crun_bin,
            lib: Some(crun_dir.join("lib")),
            // tmpfs in the guest.
            state: PathBuf::from("/bench/crun-state"),
            bundle: PathBuf::from("/bench"),
            cgroup: String::new(),
            limits: true,
        },
        master_port: MASTER_PORT,
        agent_port: AGENT_PORT,
    })
}

/// The file system type mounted (last) at `path`, from mountinfo.
fn mount_type(path: &str) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().rev().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let fs_type = right.split(' ').next()?;
        (left.split(' ').nth(4)? == path).then(|| fs_type.to_string())
    })
}

/// Set in the private mount namespace `host_setup` re-runs itself in.
const PRIVATE_NS: &str = "KEEL_BENCH_PRIVATE_NS";

/// On this machine: everything under `dir`, no limits, `--isolation auto`.
/// Returns None when it re-ran itself in a private mount namespace (which
/// did the work).
fn host_setup(dir: &Path) -> anyhow::Result<Option<Setup>> {
    let is_v2 = |p: &str| mount_type(p).is_some_and(|t| t == "cgroup2");
    if !is_v2("/sys/fs/cgroup") {
        anyhow::ensure!(
            is_v2("/sys/fs/cgroup/unified"),
            "no cgroup v2 at /sys/fs/cgroup or /sys/fs/cgroup/unified"
        );
        if std::env::var_os(PRIVATE_NS).is_none() {
            // crun refuses a hybrid hierarchy: run in a mount namespace of
            // our own where the v2 tree is /sys/fs/cgroup.
            let status = Command::new("unshare")
                .args(["--mount", "--propagation", "private", "--"])
                .arg(std::env::current_exe()?)
                .args(std::env::args_os().skip(1))
                .env(PRIVATE_NS, "1")
                .status()?;
            anyhow::ensure!(status.success(), "the bench under unshare: {status}");
            return Ok(None);
        }
        // The v1 tree goes (the agent builds its tasks' views from every
        // mount it sees), a fresh view of the same v2 hierarchy replaces it.
        unmount("/sys/fs/cgroup", UnmountFlags::DETACH)?;
        rustix::mount::mount(
            "cgroup2",
            "/sys/fs/cgroup",
            "cgroup2",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            None,
        )?;
    }
    let release = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow::anyhow!("no directory above this example's"))?;
    for d in ["master", "agent", "crun-state", "bundle"] {
        let p = dir.join(d);
        if p.exists() {
            std::fs::remove_dir_all(&p)
                .map_err(|e| anyhow::anyhow!("cannot clear {}: {e}", p.display()))?;
        }
    }
    let free_port = || -> anyhow::Result<u16> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    };
    let cgroup = PathBuf::from(format!(
        "/sys/fs/cgroup/keel-host-bench-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&cgroup)?;
    Ok(Some(Setup {
        work: dir.to_path_buf(),
        bundle: dir.join("bundle"),
        master_bin: release.join("keel-master"),
        agent_bin: release.join("keel-agent"),
        busybox: std::env::var_os("KEEL_BENCH_BUSYBOX")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/bin/busybox")),
        isolation: "auto",
        cgroup,
        own_cgroup: true,
        crun: Crun {
            bin: PathBuf::from("crun"),
            lib: None,
            state: dir.join("crun-state"),
            bundle: dir.join("bundle"),
            cgroup: String::new(),
            limits: false,
        },
        master_port: free_port()?,
        agent_port: free_port()?,
    }))
}

/// `program` (the agent under `strace` when `KEEL_BENCH_STRACE` says so).
fn spawn_traced(program: &Path, args: &[String], log: &Path) -> anyhow::Result<Child> {
    match std::env::var("KEEL_BENCH_STRACE") {
        Ok(opts) if !opts.trim().is_empty() => {
            let mut all: Vec<String> = opts.split_whitespace().map(String::from).collect();
            all.push("--".into());
            all.push(program.display().to_string());
            all.extend_from_slice(args);
            spawn("strace", &all, log)
        }
        _ => spawn(&program.display().to_string(), args, log),
    }
}

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let setup = if args.first().map(String::as_str) == Some("--host") {
        anyhow::ensure!(args.len() >= 2, "usage: guest_bench --host DIR RUNS WARMUP");
        let dir = PathBuf::from(args[1].clone());
        args.drain(..2);
        match host_setup(&dir)? {
            Some(s) => s,
            None => return Ok(()),
        }
    } else {
        guest_setup()?
    };
    let runs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(100);
    let warmup: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let Setup {
        work,
        bundle,
        master_bin,
        agent_bin,
        busybox,
        isolation,
        cgroup,
        own_cgroup,
        mut crun,
        master_port,
        agent_port,
    } = setup;

    let crun_cg = cgroup.join("crun");
    std::fs::create_dir_all(&crun_cg)?;
    enable_controllers(&crun_cg);
    crun.cgroup = crun_cg
        .strip_prefix("/sys/fs/cgroup")?
        .display()
        .to_string();
    let nested_cg = cgroup.join("nested");
    out("cgroup", cgroup.display());
    out("isolation", isolation);
    out("limits", crun.limits);

    // The same static `true` for both sides: BUNDLE/rootfs/bin/true.
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin"))?;
    for d in ["proc", "dev", "sys", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    std::fs::copy(&busybox, rootfs.join("bin/busybox"))?;
    let _ = std::fs::remove_file(rootfs.join("bin/true"));
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/true"))?;
    let true_bin = rootfs.join("bin/true");
    std::fs::create_dir_all(&crun.state)?;
    out("crun", crun.version());

    let mut children = Children(Vec::new());
    children.0.push(spawn(
        &master_bin.display().to_string(),
        &[
            "--ip".into(),
            "127.0.0.1".into(),
            "--port".into(),
            master_port.to_string(),
            "--work-dir".into(),
            work.join("master").display().to_string(),
        ],
        &work.join("master.log"),
    )?);
    wait_port(master_port, Duration::from_secs(60))?;
    children.0.push(spawn_traced(
        &agent_bin,
        &[
            "--master".into(),
            format!("127.0.0.1:{master_port}"),
            "--ip".into(),
            "127.0.0.1".into(),
            "--port".into(),
            agent_port.to_string(),
            "--work-dir".into(),
            work.join("agent").display().to_string(),
            "--hostname".into(),
            "bench".into(),
            "--isolation".into(),
            isolation.into(),
            "--cgroups-root".into(),
            nested_cg.display().to_string(),
            "--switch-user=false".into(),
            "--network-cidr".into(),
            "none".into(),
            "--network-netns-dir".into(),
            bundle.join("netns").display().to_string(),
        ],
        &work.join("agent.log"),
    )?);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut to_running, mut to_finished, mut inside, mut crun_runs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let started = Instant::now();
    let true_path = true_bin.display().to_string();
    rt.block_on(async {
        let mut fw = Framework::subscribe(master_port).await?;
        for i in 0..warmup + runs {
            let (r, f, a) = agent_true(&mut fw, i, &true_path).await?;
            let c = crun.run(i)?;
            if i >= warmup {
                to_running.push(r);
                to_finished.push(f);
                inside.push(a);
                crun_runs.push(c);
            }
        }
        anyhow::Ok(())
    })?;
    out(
        "bench_secs",
        format!("{:.1}", started.elapsed().as_secs_f64()),
    );
    out("runs", runs);
    out("warmup", warmup);
    let (run50, run99) = report("agent_accept_to_running", to_running);
    let (fin50, fin99) = report("agent_accept_to_finished", to_finished);
    let (in50, in99) = report("agent_starting_to_finished", inside);
    let (crun50, crun99) = report("crun_run", crun_runs);
    let (ratio50, ratio99) = (fin50 / crun50, fin99 / crun99);
    out("ratio_p50", format!("{ratio50:.2}"));
    out("ratio_p99", format!("{ratio99:.2}"));
    // The BENCHMARKS.md row the host and guest benches print.
    out(
        "table_row",
        format!(
            "| {runs} runs | Keel ACCEPT->RUNNING p50 {run50:.1} / p99 {run99:.1} ms | Keel ACCEPT->FINISHED p50 {fin50:.1} / p99 {fin99:.1} ms | Keel STARTING->FINISHED p50 {in50:.1} / p99 {in99:.1} ms | crun run p50 {crun50:.1} / p99 {crun99:.1} ms | ratio p50 {ratio50:.2} / p99 {ratio99:.2} |"
        ),
    );
    out("launch_p50_ms", format!("{run50:.1}"));
    out("launch_p99_ms", format!("{run99:.1}"));

    // What one exec of each binary costs here (the agent execs itself
    // twice per task: the shim and the container's init).
    let execs = |mut cmd: Command| -> anyhow::Result<f64> {
        let mut v = Vec::new();
        for _ in 0..20 {
            let t0 = Instant::now();
            let st = cmd.stdout(Stdio::null()).status()?;
            anyhow::ensure!(st.success(), "{cmd:?}: {st}");
            v.push(ms(t0.elapsed()));
        }
        Ok(percentiles(v).0)
    };
    let mut agent_version = Command::new(&agent_bin);
    agent_version.arg("--version");
    out(
        "exec_keel_agent_p50_ms",
        format!("{:.1}", execs(agent_version)?),
    );
    let mut crun_version = crun.command();
    crun_version.arg("--version");
    out("exec_crun_p50_ms", format!("{:.1}", execs(crun_version)?));
    let mut true_cmd = Command::new(&true_bin);
    true_cmd.arg0("true");
    out("exec_true_p50_ms", format!("{:.1}", execs(true_cmd)?));

    // Nothing left behind by either side.
    let leftovers = |dir: &Path| {
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .filter(|e| e.file_name() != "supervisors")
                    .count()
            })
            .unwrap_or(0)
    };
    out("crun_cgroups_left", leftovers(&crun_cg));
    out("agent_cgroups_left", leftovers(&nested_cg));
    drop(children);
    for dir in [&nested_cg.join("supervisors"), &nested_cg, &crun_cg] {
        let _ = std::fs::remove_dir(dir);
    }
    if own_cgroup {
        let _ = std::fs::remove_dir(&cgroup);
    }
    Ok(())
}
