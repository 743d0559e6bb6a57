//! `cargo xtask bench-events [--agents N --tasks N --subscribers N]`: what
//! operator event-stream subscribers (`SUBSCRIBE` on `/api/v1`) cost the
//! frameworks. One release master, `keel-agent sim` with N agents, and the
//! same workload three times in one run: without subscribers, with one
//! subscriber that never reads (which the master must drop without slowing
//! down), and with N subscribers reading every event. Printed: ACCEPT ->
//! TASK_RUNNING p50 / p99 / max of each run, and whether the stalled
//! subscriber was dropped (BENCHMARKS.md, Operator events).

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use keel_loadgen::{Report, TaskKind, Workload};

use crate::cluster::{self, release_bin};
use crate::scale_bench::{spawn_logged, spawn_master, tempfile_dir, wait_until};

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    #[arg(long, default_value_t = 100)]
    pub agents: usize,
    #[arg(long, default_value_t = 5000)]
    pub tasks: usize,
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
}

pub fn run(args: &EventsArgs) -> Result<()> {
    if let Some(done) = crate::rerun_released() {
        return done;
    }
    cluster::build_release()?;
    let dir = tempfile_dir()?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "bench-events: {} simulated agents, {} tasks a run, {} subscribers; {cores} cores",
        args.agents, args.tasks, args.subscribers
    );
    let (_master, api, addr) = spawn_master(&dir, Duration::from_secs(30))?;
    let sim = spawn_logged(
        Command::new(release_bin("keel-agent"))
            .args(["sim", "--master", &addr, "--agents"])
            .arg(args.agents.to_string())
            .arg("--work-dir")
            .arg(dir.join("sim")),
        &dir,
        "sim",
    )?;
    if !wait_until(Duration::from_secs(300), || {
        api.active_agents().len() >= args.agents
    }) {
        bail!("agents did not register; see {}", dir.display());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let client = Arc::new(
        keel_client::Client::builder(&addr)
            .timeout(Duration::from_secs(60))
            .build()?,
    );
    let workload = Workload {
        frameworks: 2,
        roles: 1,
        tasks: args.tasks,
        cpus: 0.01,
        mem: 1.0,
        per_offer: 10,
        kinds: vec![TaskKind::sleeps(Duration::from_millis(500))],
        deadline: Duration::from_secs(1800),
    };

    let quiet = rt.block_on(keel_loadgen::run(client.clone(), &workload))?;
    print_run("without subscribers", &quiet);

    // One subscriber that never reads: the master must drop it without
    // slowing down.
    let mut stalled = rt.block_on(client.events()).context("SUBSCRIBE")?;
    let slow = rt.block_on(keel_loadgen::run(client.clone(), &workload))?;
    print_run("with 1 stalled subscriber", &slow);
    // Its queued events, then the end of the stream if the master dropped
    // it.
    let dropped = rt.block_on(async {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), stalled.next()).await {
                Ok(Some(Ok(_))) => continue,
                Ok(None | Some(Err(_))) => return true,
                Err(_) => return false,
            }
        }
    });
    println!("the stalled subscriber was dropped: {dropped}");
    drop(stalled);

    // Subscribers that read every event.
    let mut readers = Vec::new();
    for _ in 0..args.subscribers {
        let mut stream = rt.block_on(client.events()).context("SUBSCRIBE")?;
        readers.push(rt.spawn(async move {
            let mut n = 0u64;
            while let Some(Ok(_)) = stream.next().await {
                n += 1;
            }
            n
        }));
    }
    let busy = rt.block_on(keel_loadgen::run(client.clone(), &workload))?;
    print_run(
        &format!("with {} subscribers reading", args.subscribers),
        &busy,
    );
    for r in &readers {
        r.abort();
    }
    if !sim.stop()? {
        bail!("keel-agent sim did not exit 0 on SIGTERM");
    }
    if std::env::var_os("KEEL_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

fn print_run(what: &str, report: &Report) {
    let lat: Vec<f64> = report
        .latencies()
        .iter()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    println!(
        "{what}: ACCEPT -> TASK_RUNNING p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {:.0} placements/s; lost {}, run twice {}",
        cluster::percentile(&lat, 0.5),
        cluster::percentile(&lat, 0.99),
        cluster::percentile(&lat, 1.0),
        report.placements_per_second(),
        report.lost().len(),
        report.duplicated().len()
    );
}
