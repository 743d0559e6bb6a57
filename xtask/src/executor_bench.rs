//! `cargo xtask bench-executors [--launches N]`: ACCEPT -> TASK_RUNNING of
//! tasks run by custom executors beside command tasks, in one run on one
//! release master and agent (BENCHMARKS.md, "Custom executors"). Three
//! kinds, launched in turn, one at a time:
//! - `command`: a command task (`true`);
//! - `executor, new`: the first task of a new custom executor (its
//!   container and process start, it SUBSCRIBEs, gets LAUNCH, says
//!   TASK_RUNNING), after which the executor exits;
//! - `executor, running`: a task for a custom executor already running.
//!
//! The executor is this binary (`xtask executor-bench-executor`, on
//! keel-client's executor API): TASK_RUNNING then TASK_FINISHED for each
//! task it gets.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use keel_api::executor::Event as ExecutorEvent;
use keel_api::mesos::{self, CommandInfo, TaskState};
use keel_api::resources::v1::Resource;
use keel_client::executor::{ExecutorClient, ExecutorEnv};
use keel_client::scheduler::Event;
use keel_client::scheduler::compose::{framework_info, task_info};
use serde_json::json;

use crate::cluster;
use crate::scale_bench::{spawn_master, tempfile_dir, wait_until};

#[derive(Debug, clap::Args)]
pub struct ExecutorBenchArgs {
    /// Launches of each kind.
    #[arg(long, default_value_t = 50)]
    pub launches: usize,
}

const KINDS: [&str; 3] = ["command", "executor, new", "executor, running"];

pub fn run(args: &ExecutorBenchArgs) -> Result<()> {
    if let Some(done) = crate::rerun_released() {
        return done;
    }
    cluster::build_release()?;
    let dir = tempfile_dir()?;
    let (_master, api, addr) = spawn_master(&dir, Duration::from_secs(30))?;
    let agent = cluster::spawn_agent(&addr, cluster::free_port(), &dir.join("agent"), true)?;
    if !wait_until(Duration::from_secs(60), || !api.active_agents().is_empty()) {
        bail!("the agent did not register; see {}", dir.display());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let client = keel_client::Client::new(&addr)?;
    let exe = std::env::current_exe()?;
    let lat = rt.block_on(measure(&client, &exe, args.launches))?;
    agent.stop()?;
    println!(
        "bench-executors: ACCEPT -> TASK_RUNNING, {} launches of each kind, one at a time",
        args.launches
    );
    for (kind, mut l) in KINDS.iter().zip(lat) {
        l.sort_by(f64::total_cmp);
        println!(
            "  {kind:<18} p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms",
            cluster::percentile(&l, 0.5),
            cluster::percentile(&l, 0.99),
            l[l.len() - 1]
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The executor's ExecutorInfo; `once`: it exits after its first task.
fn executor(
    exe: &std::path::Path,
    id: &str,
    once: bool,
    role: &str,
) -> Result<mesos::ExecutorInfo> {
    Ok(mesos::parse(json!({
        "executor_id": {"value": id}, "type": "CUSTOM",
        "command": {"value": exe.display().to_string(), "shell": false,
                    "arguments": [exe.display().to_string(), "executor-bench-executor"],
                    "environment": {"variables": [{"name": "KEEL_BENCH_ONCE", "value": if once { "1" } else { "0" }}]}},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.01},
                       "allocation_info": {"role": role}},
                      {"name": "mem", "type": "SCALAR", "scalar": {"value": 8},
                       "allocation_info": {"role": role}}]
    }))?)
}

/// Latencies (ms) of each of [`KINDS`].
async fn measure(
    client: &keel_client::Client,
    exe: &std::path::Path,
    n: usize,
) -> Result<[Vec<f64>; 3]> {
    let mut sub = client
        .subscribe_framework(framework_info("root", "executor-bench"))
        .await?;
    let mut lat: [Vec<f64>; 3] = Default::default();
    // The first launch warms the running executor up (not counted).
    let mut next = 0usize;
    let mut warmed = false;
    let mut pending: Option<(String, usize, Instant)> = None;
    let deadline = Instant::now() + Duration::from_secs(900);
    while lat.iter().any(|l| l.len() < n) {
        if Instant::now() > deadline {
            bail!("benchmark took over 15 minutes");
        }
        let event = tokio::time::timeout(Duration::from_secs(60), sub.next())
            .await
            .context("no event within 60s")?
            .context("stream closed")??;
        match event {
            Event::Offers(offers) => {
                for offer in offers {
                    if pending.is_some() {
                        sub.decline(vec![offer.id], Some(0.0)).await?;
                        continue;
                    }
                    let kind = if warmed { next % 3 } else { 2 };
                    next += usize::from(warmed);
                    let role = offer.role().to_string();
                    let id = format!("t{next}-{kind}-{}", lat[kind].len());
                    let resources = vec![
                        Resource::scalar("cpus", 0.01).allocated_to(&role),
                        Resource::scalar("mem", 1.0).allocated_to(&role),
                    ];
                    let command = CommandInfo {
                        value: Some("true".into()),
                        ..CommandInfo::default()
                    };
                    let mut task = task_info(&id, &offer.agent_id, resources, command);
                    match kind {
                        1 => {
                            task.command = None;
                            task.executor = Some(executor(exe, &format!("new-{id}"), true, &role)?);
                        }
                        2 => {
                            task.command = None;
                            task.executor = Some(executor(exe, "running", false, &role)?);
                        }
                        _ => {}
                    }
                    let start = Instant::now();
                    sub.launch(&offer, vec![task], Some(0.0)).await?;
                    pending = Some((id, kind, start));
                }
            }
            Event::Update(st) => {
                if let Some((id, kind, start)) = &pending
                    && st.task_id.value == *id
                {
                    if st.state == TaskState::TASK_RUNNING {
                        if warmed && lat[*kind].len() < n {
                            lat[*kind].push(start.elapsed().as_secs_f64() * 1000.0);
                        }
                        warmed = true;
                        pending = None;
                    } else if st.state.is_terminal() {
                        bail!("task {id} ended before it ran: {st:?}");
                    }
                }
                sub.acknowledge(&st).await?;
            }
            _ => {}
        }
    }
    let _ = sub.teardown().await;
    Ok(lat)
}

/// `xtask executor-bench-executor`: the benchmark's custom executor, run
/// by the agent. Each task: TASK_RUNNING, then TASK_FINISHED; with
/// `KEEL_BENCH_ONCE=1` it exits after its first task.
pub fn executor_main() -> Result<()> {
    let once = std::env::var("KEEL_BENCH_ONCE").is_ok_and(|v| v == "1");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let exec = ExecutorClient::new(ExecutorEnv::from_env()?)?;
        let mut events = exec.subscribe().await?;
        while let Some(event) = events.next().await {
            match event? {
                ExecutorEvent::Launch(task) => {
                    let id = task["task_id"]["value"].as_str().unwrap_or("").to_string();
                    exec.update(&id, TaskState::TASK_RUNNING, None).await?;
                    exec.update(&id, TaskState::TASK_FINISHED, None).await?;
                    if once {
                        return Ok(());
                    }
                }
                ExecutorEvent::Shutdown => return Ok(()),
                _ => {}
            }
        }
        Ok(())
    })
}
