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
//! ```text
//! guest_bench RUNS WARMUP
//! ```
//!
//! Output: `key=value` lines on stdout (milliseconds).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use keel_api::recordio::Decoder;
use rustix::mount::{MountFlags, UnmountFlags, mount_remount, unmount};
use serde_json::{Value as Json, json};
use tokio::sync::mpsc;

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

/// The OCI bundle `crun run` gets: the same work as one of the agent's
/// tasks.
fn crun_config(cgroup: &str) -> Json {
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
            "resources": {
                "memory": {"limit": mem, "swap": mem},
                "cpu": {"shares": (CPUS * 1024.0) as u64,
                        "quota": (CPUS * 100_000.0) as i64, "period": 100_000},
                "pids": {"limit": PIDS_MAX}
            }
        }
    })
}

/// A minimal Mesos v1 framework on the guest's loopback.
struct Framework {
    http: reqwest::Client,
    url: String,
    id: String,
    stream_id: String,
    events: mpsc::UnboundedReceiver<Json>,
    offers: Vec<Json>,
}

impl Framework {
    async fn subscribe(port: u16) -> anyhow::Result<Framework> {
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/api/v1/scheduler");
        let body = json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
            "user": "root", "name": "guest-bench"}}});
        let resp = http
            .post(&url)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        anyhow::ensure!(resp.status().is_success(), "subscribe: {}", resp.status());
        let stream_id = resp.headers()["Mesos-Stream-Id"].to_str()?.to_string();
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut body = resp.bytes_stream();
            let mut decoder = Decoder::default();
            while let Some(Ok(chunk)) = body.next().await {
                for record in decoder.push(&chunk).unwrap_or_default() {
                    if let Ok(e) = serde_json::from_slice::<Json>(&record)
                        && tx.send(e).is_err()
                    {
                        return;
                    }
                }
            }
        });
        let mut f = Framework {
            http,
            url,
            id: String::new(),
            stream_id,
            events,
            offers: Vec::new(),
        };
        let first = f.next("SUBSCRIBED").await?;
        f.id = first["subscribed"]["framework_id"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Ok(f)
    }

    async fn call(&self, mut call: Json) -> anyhow::Result<()> {
        call["framework_id"] = json!({ "value": self.id });
        let resp = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Mesos-Stream-Id", &self.stream_id)
            .body(call.to_string())
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "{}: {}",
            call["type"],
            resp.status()
        );
        Ok(())
    }

    /// The next event of `kind`; offers met on the way are kept (held
    /// offers are not offered again, so nothing churns while a launch is
    /// timed).
    async fn next(&mut self, kind: &str) -> anyhow::Result<Json> {
        loop {
            let e = tokio::time::timeout(Duration::from_secs(120), self.events.recv())
                .await
                .map_err(|_| anyhow::anyhow!("no {kind} within 120 s"))?
                .ok_or_else(|| anyhow::anyhow!("the event stream ended"))?;
            if e["type"] == "OFFERS" {
                let offers = e["offers"]["offers"].as_array().cloned();
                self.offers.extend(offers.into_iter().flatten());
            }
            if e["type"] == kind {
                return Ok(e);
            }
        }
    }

    /// A held or new offer with room for one `true`.
    async fn offer(&mut self) -> anyhow::Result<Json> {
        let scalar = |o: &Json, name: &str| -> f64 {
            o["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["name"] == name)
                .filter_map(|r| r["scalar"]["value"].as_f64())
                .sum()
        };
        loop {
            let fits = |o: &Json| scalar(o, "cpus") >= CPUS && scalar(o, "mem") >= MEM_MB as f64;
            if let Some(i) = self.offers.iter().position(fits) {
                return Ok(self.offers.remove(i));
            }
            self.next("OFFERS").await?;
        }
    }

    /// The next update of `task`, acknowledged.
    async fn update(&mut self, task: &str) -> anyhow::Result<Json> {
        loop {
            let e = self.next("UPDATE").await?;
            let status = e["update"]["status"].clone();
            if status.get("uuid").is_some() {
                self.call(json!({"type": "ACKNOWLEDGE", "acknowledge": {
                    "agent_id": status["agent_id"], "task_id": status["task_id"],
                    "uuid": status["uuid"]}}))
                    .await?;
            }
            if status["task_id"]["value"] == task {
                return Ok(status);
            }
        }
    }
}

/// One `true` through the nested agent: (ACCEPT -> RUNNING, ACCEPT ->
/// FINISHED, the agent's own STARTING -> FINISHED from its timestamps).
async fn agent_true(fw: &mut Framework, i: usize) -> anyhow::Result<(f64, f64, f64)> {
    let offer = fw.offer().await?;
    let take = |name: &str, amount: f64| {
        let mut r = offer["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| json!({"name": name, "type": "SCALAR"}));
        r["scalar"] = json!({ "value": amount });
        r
    };
    let id = format!("true-{i}");
    let task = json!({"name": id, "task_id": {"value": id}, "agent_id": offer["agent_id"],
        "resources": [take("cpus", CPUS), take("mem", MEM_MB as f64)],
        "command": {"shell": false, "value": "/bench/rootfs/bin/true", "arguments": ["true"]},
        "container": {"type": "MESOS", "hostname": "bench"}});
    let accept = json!({"type": "ACCEPT", "accept": {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
        "filters": {"refuse_seconds": 0.0}}});
    let t0 = Instant::now();
    fw.call(accept).await?;
    let mut running = None;
    let mut starting_ts = None;
    loop {
        let st = fw.update(&id).await?;
        let state = st["state"].as_str().unwrap_or("");
        let ts = st["timestamp"].as_f64().unwrap_or(0.0);
        match state {
            "TASK_STARTING" => starting_ts = Some(ts),
            "TASK_RUNNING" => running = Some(t0.elapsed()),
            "TASK_FINISHED" => {
                let finished = t0.elapsed();
                let running = running.unwrap_or(finished);
                let inside = starting_ts.map(|s| (ts - s) * 1e3).unwrap_or(f64::NAN);
                return Ok((ms(running), ms(finished), inside));
            }
            other => anyhow::bail!("task {id} ended {other}: {st}"),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Crun {
    bin: PathBuf,
    lib: PathBuf,
    state: PathBuf,
    bundle: PathBuf,
    /// The cgroup (relative to the mount) runs go under.
    cgroup: String,
}

impl Crun {
    /// `crun run` of the bundle, start to exit.
    fn run(&self, i: usize) -> anyhow::Result<f64> {
        let config = crun_config(&format!("{}/run-{i}", self.cgroup));
        std::fs::write(self.bundle.join("config.json"), config.to_string())?;
        let t0 = Instant::now();
        let out = Command::new(&self.bin)
            .env("LD_LIBRARY_PATH", &self.lib)
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

    fn version(&self) -> String {
        Command::new(&self.bin)
            .env("LD_LIBRARY_PATH", &self.lib)
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

struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let warmup: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    let sandbox = sandbox();

    // Relax this container: a writable / (for /bench, which the nested
    // agent's tasks then see read-only) and a writable cgroup tree.
    writable("/")?;
    writable("/sys/fs/cgroup")?;
    // This view's /var holds (under the empty tmpfs over the guest agent's
    // work dir) a copy of the tree it was built in, whose mount points the
    // nested agent cannot reach to remount them read-only; its tasks need
    // no /var.
    unmount("/var", UnmountFlags::DETACH)?;
    let container = container_cgroup()?;
    enable_controllers(&container);
    let crun_cg = container.join("crun");
    std::fs::create_dir_all(&crun_cg)?;
    enable_controllers(&crun_cg);
    let nested_cg = container.join("nested");
    out("cgroup", container.display());

    // The same static `true` for both sides: /bench/rootfs/bin/true.
    let rootfs = Path::new("/bench/rootfs");
    std::fs::create_dir_all(rootfs.join("bin"))?;
    for d in ["proc", "dev", "sys", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    std::fs::copy(sandbox.join("busybox"), rootfs.join("bin/busybox"))?;
    let _ = std::fs::remove_file(rootfs.join("bin/true"));
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/true"))?;
    let crun_dir = sandbox.join("crun");
    let crun = Crun {
        bin: crun_dir.join("bin/crun"),
        lib: crun_dir.join("lib"),
        state: PathBuf::from("/bench/crun-state"),
        bundle: PathBuf::from("/bench"),
        cgroup: crun_cg
            .strip_prefix("/sys/fs/cgroup")?
            .display()
            .to_string(),
    };
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&crun.bin, std::fs::Permissions::from_mode(0o755))?;
    std::fs::create_dir_all(&crun.state)?;
    out("crun", crun.version());

    let mut children = Children(Vec::new());
    children.0.push(spawn(
        "/usr/bin/keel-master",
        &[
            "--ip".into(),
            "127.0.0.1".into(),
            "--port".into(),
            MASTER_PORT.to_string(),
            "--work-dir".into(),
            sandbox.join("master").display().to_string(),
        ],
        &sandbox.join("master.log"),
    )?);
    wait_port(MASTER_PORT, Duration::from_secs(60))?;
    children.0.push(spawn(
        "/usr/bin/keel-agent",
        &[
            "--master".into(),
            format!("127.0.0.1:{MASTER_PORT}"),
            "--ip".into(),
            "127.0.0.1".into(),
            "--port".into(),
            AGENT_PORT.to_string(),
            "--work-dir".into(),
            sandbox.join("agent").display().to_string(),
            "--hostname".into(),
            "bench".into(),
            "--isolation".into(),
            "strict".into(),
            "--cgroups-root".into(),
            nested_cg.display().to_string(),
            "--switch-user=false".into(),
            "--network-cidr".into(),
            "none".into(),
            "--network-netns-dir".into(),
            "/bench/netns".into(),
        ],
        &sandbox.join("agent.log"),
    )?);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut to_running, mut to_finished, mut inside, mut crun_runs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let started = Instant::now();
    rt.block_on(async {
        let mut fw = Framework::subscribe(MASTER_PORT).await?;
        for i in 0..warmup + runs {
            let (r, f, a) = agent_true(&mut fw, i).await?;
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
    report("agent_starting_to_finished", inside);
    let (crun50, crun99) = report("crun_run", crun_runs);
    out("ratio_p50", format!("{:.2}", fin50 / crun50));
    out("ratio_p99", format!("{:.2}", fin99 / crun99));
    out("launch_p50_ms", format!("{run50:.1}"));
    out("launch_p99_ms", format!("{run99:.1}"));

    // What one exec of each binary costs here (the agent execs itself
    // twice per task: the shim and the container's init).
    let execs = |program: &Path, arg: &str| -> anyhow::Result<f64> {
        let mut v = Vec::new();
        for _ in 0..20 {
            let t0 = Instant::now();
            let st = Command::new(program)
                .arg(arg)
                .env("LD_LIBRARY_PATH", &crun.lib)
                .stdout(Stdio::null())
                .status()?;
            anyhow::ensure!(st.success(), "{}: {st}", program.display());
            v.push(ms(t0.elapsed()));
        }
        Ok(percentiles(v).0)
    };
    let exec_agent = execs(Path::new("/usr/bin/keel-agent"), "--version")?;
    out("exec_keel_agent_p50_ms", format!("{exec_agent:.1}"));
    out(
        "exec_crun_p50_ms",
        format!("{:.1}", execs(&crun.bin, "--version")?),
    );
    let exec_true = execs(&rootfs.join("bin/true"), "true")?;
    out("exec_true_p50_ms", format!("{exec_true:.1}"));

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
    Ok(())
}
