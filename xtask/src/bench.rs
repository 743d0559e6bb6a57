//! `cargo xtask bench`: figures for BENCHMARKS.md.
//!
//! - agent start -> registered: from spawning `keel-agent` (fresh work dir,
//!   so discovery and a first registration are included) to the master's API
//!   listing it as active, polled every 2 ms;
//! - agent idle RSS: VmRSS 3 s after registration;
//! - master RSS with that agent connected.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::cluster::{self, Api, rss_kib, wait_until};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(15050)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

pub fn run(runs: usize, launches: usize) -> Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    cluster::build_release()?;
    let tmp = std::env::temp_dir().join(format!("keel-bench-{}", std::process::id()));
    let mut latencies = Vec::new();
    let mut agent_rss = Vec::new();
    let mut master_rss = Vec::new();
    for i in 0..runs {
        let dir = tmp.join(i.to_string());
        let port = free_port();
        let master = cluster::spawn_master(port, &dir.join("master"), true)?;
        let api = Api::new(port)?;
        if !wait_until(Duration::from_secs(15), || api.healthy()) {
            bail!("master did not start");
        }
        let start = Instant::now();
        let agent = cluster::spawn_agent(
            &format!("127.0.0.1:{port}"),
            free_port(),
            &dir.join("agent"),
            true,
        )?;
        if !wait_until(Duration::from_secs(30), || !api.active_agents().is_empty()) {
            bail!("agent did not register");
        }
        latencies.push(start.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_secs(3));
        agent_rss.push(rss_kib(agent.pid()).unwrap_or(0) as f64);
        master_rss.push(rss_kib(master.pid()).unwrap_or(0) as f64);
        agent.stop()?;
        master.stop()?;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    for v in [&mut latencies, &mut agent_rss, &mut master_rss] {
        v.sort_by(f64::total_cmp);
    }
    println!("keel bench ({runs} runs, release build, loopback)");
    println!(
        "agent start -> registered: p50 {:.1} ms, min {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.5),
        latencies[0],
        latencies[latencies.len() - 1]
    );
    println!(
        "agent idle RSS:            p50 {:.1} MiB, max {:.1} MiB",
        percentile(&agent_rss, 0.5) / 1024.0,
        agent_rss[agent_rss.len() - 1] / 1024.0
    );
    println!(
        "master RSS (1 agent):      p50 {:.1} MiB, max {:.1} MiB",
        percentile(&master_rss, 0.5) / 1024.0,
        master_rss[master_rss.len() - 1] / 1024.0
    );
    if launches > 0 {
        launch_latency(launches)?;
    }
    Ok(())
}

fn launch_latency(launches: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("keel-bench-launch-{}", std::process::id()));
    let port = free_port();
    let master = cluster::spawn_master(port, &dir.join("master"), true)?;
    let api = Api::new(port)?;
    if !wait_until(Duration::from_secs(15), || api.healthy()) {
        bail!("master did not start");
    }
    let agent = cluster::spawn_agent(
        &format!("127.0.0.1:{port}"),
        free_port(),
        &dir.join("agent"),
        true,
    )?;
    if !wait_until(Duration::from_secs(30), || !api.active_agents().is_empty()) {
        bail!("agent did not register");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let mut lat = rt.block_on(crate::launch_bench::measure(port, launches))?;
    let wall = started.elapsed();
    agent.stop()?;
    master.stop()?;
    let _ = std::fs::remove_dir_all(&dir);
    lat.sort_by(f64::total_cmp);
    println!(
        "ACCEPT -> TASK_RUNNING:    p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} launches ({:.1} launches/s)",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1],
        lat.len(),
        lat.len() as f64 / wall.as_secs_f64()
    );
    Ok(())
}
