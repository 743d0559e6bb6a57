//! `cargo xtask bench-scale [--agents N --tasks N --frameworks N]`: one
//! master (release build, default flags) and `keel-agent sim` on loopback
//! (`docs/design/0007-scale-harness.md`).
//!
//! - N agents register from cold: time until all are active; the master's
//!   RSS and CPU seconds then, and its CPU use with the agents idle;
//! - the tasks, launched by keel-loadgen's frameworks, all running: the
//!   master's RSS, `/master/state` latency and size, `/health` latency
//!   while `/master/state` is requested in a loop;
//! - placements per second end to end (first ACCEPT to last TASK_RUNNING
//!   as the frameworks saw it) and ACCEPT -> TASK_RUNNING percentiles;
//! - agent loss: a tenth of the agents (at most 1,000, their own
//!   simulator) stopped with a task each: time until all are unreachable
//!   (`scale_phases.rs`).
//!
//! Logs go to `<tmp>/{master,sim,sim-batch}.log`; the directory is kept with
//! `KEEL_BENCH_KEEP=1`.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use keel_loadgen::{Progress, TaskKind, Workload};

use crate::cluster::{self, Api, Node, release_bin, rss_kib};
use crate::scale_phases::{self, cpu_seconds};

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    #[arg(long, default_value_t = 10_000)]
    pub agents: usize,
    #[arg(long, default_value_t = 100_000)]
    pub tasks: usize,
    #[arg(long, default_value_t = 10)]
    pub frameworks: usize,
    /// Masters: with more than one, the leader is killed with every task
    /// running (`scale_failover.rs`).
    #[arg(long, default_value_t = 1)]
    pub masters: usize,
    /// How long each task runs (long enough for all to run at once).
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    pub task_duration: Duration,
}

/// Polls `cond` every 200 ms (listing 10,000 agents is no free call: a
/// tighter loop would load the master it measures).
pub(crate) fn wait_until(within: Duration, cond: impl FnMut() -> bool) -> bool {
    cluster::wait_every(within, Duration::from_millis(200), cond)
}

/// A release master with default flags in `dir/master`, healthy: the
/// process, its API (requests answered within `timeout`) and `host:port`.
pub(crate) fn spawn_master(
    dir: &std::path::Path,
    timeout: Duration,
) -> Result<(Node, Api, String)> {
    let port = cluster::free_port();
    let master = spawn_logged(
        Command::new(release_bin("keel-master"))
            .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
            .arg("--work-dir")
            .arg(dir.join("master")),
        dir,
        "master",
    )?;
    let api = Api::with(port, |b| b.timeout(timeout))?;
    if !wait_until(Duration::from_secs(30), || api.healthy()) {
        bail!("master not healthy; see {}", dir.display());
    }
    Ok((master, api, format!("127.0.0.1:{port}")))
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub(crate) fn mib(kib: Option<u64>) -> String {
    kib.map_or("?".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
}

pub fn run(args: &ScaleArgs) -> Result<()> {
    if let Some(done) = crate::rerun_released() {
        return done;
    }
    cluster::build_release()?;
    let tmp = tempfile_dir()?;
    let dir = tmp.as_path();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "bench-scale: {} master(s), {} agents, {} tasks, {} frameworks; {cores} cores, load {}",
        args.masters,
        args.agents,
        args.tasks,
        args.frameworks,
        loadavg()
    );
    if args.masters > 1 {
        crate::scale_failover::run(args, dir)?;
        if std::env::var_os("KEEL_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(dir);
        }
        return Ok(());
    }
    let (master, api, addr) = spawn_master(dir, Duration::from_secs(60))?;

    // Cold registration.
    let cpu0 = cpu_seconds(master.pid()).unwrap_or(0.0);
    let started = Instant::now();
    // The fleet in two simulators: the second one's agents go silent
    // together for the loss figure.
    let batch_size = (args.agents / 10).min(1000);
    let first = args.agents - batch_size;
    let sim = spawn_sim(&addr, dir, args, 0, first, "sim")?;
    let batch = spawn_sim(&addr, dir, args, first, batch_size, "sim-batch")?;
    let registered = wait_until(Duration::from_secs(1800), || {
        api.active_agents().len() >= args.agents
    });
    let took = started.elapsed();
    if !registered {
        bail!(
            "agents did not all register within 30 min; see {}",
            dir.display()
        );
    }
    println!(
        "{} agents registered from cold: {:.1} s; master RSS {}, CPU {:.1} s; sim RSS {}; load {}",
        args.agents,
        took.as_secs_f64(),
        mib(rss_kib(master.pid())),
        cpu_seconds(master.pid()).unwrap_or(0.0) - cpu0,
        mib(rss_kib(sim.pid()).map(|k| k + rss_kib(batch.pid()).unwrap_or(0))),
        loadavg()
    );
    println!(
        "{} idle agents (heartbeats every 5 s): master {:.3} CPU s/s over 20 s",
        args.agents,
        scale_phases::idle_load(&master, Duration::from_secs(20))
    );

    // The tasks.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (client, progress, load) = start_load(&rt, &addr, args)?;
    let all_running = wait_until(Duration::from_secs(3600), || {
        progress.running.load(Ordering::Relaxed) as usize >= args.tasks || load.is_finished()
    });
    if all_running && !load.is_finished() {
        println!(
            "{} tasks running: master RSS {}; load {}",
            args.tasks,
            mib(rss_kib(master.pid())),
            loadavg()
        );
        let (latencies, size) =
            rt.block_on(crate::metrics_bench::latencies(&addr, "/master/state", 5))?;
        println!(
            "/master/state with {} tasks: {} bytes, latency median {:.0} ms, max {:.0} ms ({} requests)",
            args.tasks,
            size,
            cluster::percentile(&latencies, 0.5),
            cluster::percentile(&latencies, 1.0),
            latencies.len()
        );
        let (health, states) = rt.block_on(scale_phases::health_under_state(&addr, 50))?;
        println!(
            "/health while /master/state is requested in a loop ({states} states meanwhile): median {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            cluster::percentile(&health, 0.5),
            cluster::percentile(&health, 0.99),
            cluster::percentile(&health, 1.0),
        );
    }
    let report = rt.block_on(load)?.context("load generator")?;
    let lat: Vec<f64> = report
        .latencies()
        .iter()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    println!(
        "placements: {:.0}/s end to end; ACCEPT -> TASK_RUNNING p50 {:.0} ms, p99 {:.0} ms; {} launches for {} tasks, lost {}, run twice {}; load {}",
        report.placements_per_second(),
        cluster::percentile(&lat, 0.5),
        cluster::percentile(&lat, 0.99),
        report.launched(),
        args.tasks,
        report.lost().len(),
        report.duplicated().len(),
        loadavg()
    );
    println!(
        "{}",
        scale_phases::allocation_cycles(&rt, &client, args.frameworks)?
    );
    if batch_size > 0 {
        scale_phases::loss_detection(&rt, client.clone(), args.agents, &batch, batch_size)?;
    }
    if !sim.stop()? || !batch.stop()? {
        bail!("keel-agent sim did not exit 0 on SIGTERM");
    }
    drop(master);
    if std::env::var_os("KEEL_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}

/// The run's workload on the masters `addr` (a `,` list), started: the
/// client, the progress, the load generator's task.
pub(crate) type Load =
    tokio::task::JoinHandle<Result<keel_loadgen::Report, keel_loadgen::LoadError>>;

pub(crate) fn start_load(
    rt: &tokio::runtime::Runtime,
    addr: &str,
    args: &ScaleArgs,
) -> Result<(Arc<keel_client::Client>, Arc<Progress>, Load)> {
    let client = Arc::new(
        keel_client::Client::builder(addr)
            .timeout(Duration::from_secs(60))
            .build()?,
    );
    let progress = Arc::new(Progress::default());
    let workload = Workload {
        frameworks: args.frameworks,
        roles: args.frameworks.clamp(1, 3),
        tasks: args.tasks,
        cpus: 0.01,
        mem: 1.0,
        per_offer: 10,
        kinds: vec![TaskKind::sleeps(args.task_duration)],
        deadline: Duration::from_secs(3600) + args.task_duration,
    };
    let load = {
        let (client, progress) = (client.clone(), progress.clone());
        rt.spawn(async move { keel_loadgen::run_with(client, &workload, progress).await })
    };
    Ok((client, progress, load))
}

/// `count` simulated agents from index `first`.
pub(crate) fn spawn_sim(
    addr: &str,
    dir: &std::path::Path,
    args: &ScaleArgs,
    first: usize,
    count: usize,
    name: &'static str,
) -> Result<Node> {
    spawn_logged(
        Command::new(release_bin("keel-agent"))
            .args(["sim", "--master", addr, "--agents", &count.to_string()])
            .args(["--first-index", &first.to_string()])
            .arg("--work-dir")
            .arg(dir.join("sim"))
            .args([
                "--task-duration",
                &format!("{}ms", args.task_duration.as_millis()),
            ]),
        dir,
        name,
    )
}

pub(crate) fn spawn_logged(
    cmd: &mut Command,
    dir: &std::path::Path,
    name: &'static str,
) -> Result<Node> {
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let child = cmd
        .env("KEEL_LOG_STDERR", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    Ok(Node { child, name })
}

pub(crate) fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("keel-bench-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
