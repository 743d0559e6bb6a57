//! `cargo xtask bench-metrics [--agents N --requests N]`: the latency of
//! the master's `/metrics` (Prometheus) and `/metrics/snapshot` (Mesos)
//! with N simulated agents registered (`keel-agent sim`,
//! `docs/design/0007-scale-harness.md`), one request at a time; the
//! release build of the master and the agent (BENCHMARKS.md, Metrics).

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::cluster::{self, release_bin, rss_kib};
use crate::scale_bench::{spawn_logged, tempfile_dir};

#[derive(Debug, clap::Args)]
pub struct MetricsArgs {
    #[arg(long, default_value_t = 10_000)]
    pub agents: usize,
    /// Requests to each endpoint.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
}

pub fn run(args: &MetricsArgs) -> Result<()> {
    cluster::build_release()?;
    let dir = tempfile_dir()?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "bench-metrics: {} simulated agents, {} requests per endpoint; {cores} cores",
        args.agents, args.requests
    );
    let (master, api, addr) = crate::scale_bench::spawn_master(&dir, Duration::from_secs(60))?;
    let started = Instant::now();
    let sim = spawn_logged(
        Command::new(release_bin("keel-agent"))
            .args(["sim", "--master", &addr])
            .args(["--agents", &args.agents.to_string()])
            .arg("--work-dir")
            .arg(dir.join("sim")),
        &dir,
        "sim",
    )?;
    // Polled every 2 s: listing 10,000 agents is no free call.
    let deadline = Instant::now() + Duration::from_secs(1800);
    while api.active_agents().len() < args.agents {
        if Instant::now() > deadline {
            bail!("agents did not all register; see {}", dir.display());
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    println!(
        "{} agents registered in {:.1} s; master RSS {}",
        args.agents,
        started.elapsed().as_secs_f64(),
        rss_kib(master.pid()).map_or("?".into(), |k| format!("{} MiB", k / 1024))
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for path in ["/metrics/snapshot", "/metrics"] {
        let (lat, size) = rt.block_on(latencies(&addr, path, args.requests))?;
        println!(
            "{path} with {} agents: {size} bytes; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} requests)",
            args.agents,
            cluster::percentile(&lat, 0.5),
            cluster::percentile(&lat, 0.99),
            cluster::percentile(&lat, 1.0),
            lat.len()
        );
    }
    if !sim.stop()? {
        bail!("keel-agent sim did not exit 0 on SIGTERM");
    }
    drop(master);
    if std::env::var_os("KEEL_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// `n` sequential GETs of `path` on one connection: the latencies (ms,
/// sorted) and the last body's size.
pub(crate) async fn latencies(addr: &str, path: &str, n: usize) -> Result<(Vec<f64>, usize)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let url = format!("http://{addr}{path}");
    let mut out = Vec::with_capacity(n);
    let mut size = 0;
    for _ in 0..n {
        let t = Instant::now();
        let body = http
            .get(&url)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        out.push(t.elapsed().as_secs_f64() * 1000.0);
        size = body.len();
    }
    out.sort_by(f64::total_cmp);
    Ok((out, size))
}
