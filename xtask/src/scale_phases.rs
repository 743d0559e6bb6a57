//! The later figures of `cargo xtask bench-scale`: the master's load from
//! idle agents (heartbeats), `/health` while `/master/state` is requested
//! in a loop, and agent loss detection (a batch of agents going silent).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use keel_loadgen::{Progress, TaskKind, Workload};

use crate::cluster::{self, Node};

/// CPU seconds the master spends per second over `window` with nothing to
/// do but its agents' heartbeats and sessions.
pub fn idle_load(master: &Node, window: Duration) -> f64 {
    let before = cpu_seconds(master.pid()).unwrap_or(0.0);
    std::thread::sleep(window);
    (cpu_seconds(master.pid()).unwrap_or(0.0) - before) / window.as_secs_f64()
}

/// `/health` latencies (ms, sorted) while another client requests
/// `/master/state` back to back; and how many states it got meanwhile.
pub async fn health_under_state(addr: &str, samples: usize) -> Result<(Vec<f64>, usize)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let states = {
        let (http, stop) = (http.clone(), stop.clone());
        let url = format!("http://{addr}/master/state");
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(r) = http.get(&url).send().await
                    && r.bytes().await.is_ok()
                {
                    n += 1;
                }
            }
            n
        })
    };
    // Let the first rendering start.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let url = format!("http://{addr}/health");
    let mut latencies = Vec::new();
    for _ in 0..samples {
        let t = Instant::now();
        http.get(&url).send().await?.error_for_status()?;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let n = states.await.unwrap_or(0);
    latencies.sort_by(f64::total_cmp);
    Ok((latencies, n))
}

/// A batch of agents (their own simulator, `batch`) goes silent (SIGSTOP)
/// with tasks running on them: the time until the master has marked them
/// all unreachable, and how many tasks it reported lost or unreachable
/// by then. One task per agent is launched first (a framework of its
/// own, tasks that run for an hour).
pub fn loss_detection(
    rt: &tokio::runtime::Runtime,
    client: Arc<keel_client::Client>,
    agents: usize,
    batch: &Node,
    batch_size: usize,
) -> Result<()> {
    let progress = Arc::new(Progress::default());
    let workload = Workload {
        frameworks: 1,
        roles: 1,
        tasks: agents,
        cpus: 0.01,
        mem: 1.0,
        per_offer: 1,
        kinds: vec![TaskKind::sleeps(Duration::from_secs(3600))],
        deadline: Duration::from_secs(7200),
    };
    let load = {
        let (client, progress) = (client.clone(), progress.clone());
        rt.spawn(async move { keel_loadgen::run_with(client, &workload, progress).await })
    };
    let running = cluster::wait_until(Duration::from_secs(1800), || {
        progress.running.load(Ordering::Relaxed) as usize >= agents
    });
    if !running {
        load.abort();
        anyhow::bail!("loss detection: {agents} tasks did not all run within 30 min");
    }
    let before = rt.block_on(lost_tasks(&client))?;
    signal(batch, "STOP")?;
    let silenced = Instant::now();
    let mut detected = None;
    while silenced.elapsed() < Duration::from_secs(600) {
        let m = rt.block_on(client.get_metrics())?;
        if metric(&m, "master/slaves_unreachable") as usize >= batch_size {
            detected = Some(silenced.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = rt.block_on(lost_tasks(&client))?;
    signal(batch, "CONT")?;
    load.abort();
    match detected {
        Some(d) => println!(
            "agent loss: {batch_size} of {agents} agents silent -> all unreachable in {:.1} s (default --agent-timeout), {} tasks reported lost/unreachable",
            d.as_secs_f64(),
            after - before
        ),
        None => {
            println!("agent loss: {batch_size} agents silent, not all unreachable within 10 min")
        }
    }
    Ok(())
}

/// The master's allocation cycles (Mesos' timer: the last cycles'
/// percentiles), as one line.
pub fn allocation_cycles(
    rt: &tokio::runtime::Runtime,
    client: &keel_client::Client,
    frameworks: usize,
) -> Result<String> {
    let m = rt.block_on(client.get_metrics())?;
    let key = "allocator/mesos/allocation_run_ms";
    Ok(format!(
        "allocation cycle with {frameworks} frameworks subscribed: {} cycles, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        metric(&m, "allocator/mesos/allocation_runs"),
        metric(&m, &format!("{key}/p50")),
        metric(&m, &format!("{key}/p99")),
        metric(&m, &format!("{key}/max")),
    ))
}

async fn lost_tasks(client: &keel_client::Client) -> Result<f64> {
    let m = client.get_metrics().await?;
    Ok(metric(&m, "master/tasks_lost") + metric(&m, "master/tasks_unreachable"))
}

fn metric(m: &keel_api::operator::GetMetrics, name: &str) -> f64 {
    m.metrics
        .iter()
        .find(|x| x.name == name)
        .and_then(|x| x.value)
        .unwrap_or(0.0)
}

fn signal(node: &Node, sig: &str) -> Result<()> {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &node.pid().to_string()])
        .status()
        .context("kill")?
        .success();
    anyhow::ensure!(ok, "kill -{sig} {} failed", node.pid());
    Ok(())
}

/// User + system CPU seconds of `pid`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
