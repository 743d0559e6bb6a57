//! `cargo xtask bench-exec [--runs N]`: the round trip of `exec true` into
//! a running task (BENCHMARKS.md, Exec). One release master and agent on
//! loopback, a task `sleep 600`; each run launches a nested container
//! session `true` in the task (LAUNCH_NESTED_CONTAINER_SESSION), reads its
//! output stream to the end and asks how it ended (WAIT_NESTED_CONTAINER),
//! as `keelctl exec` does: once through the master's relay, once on the
//! agent's port directly. Printed: p50 / p99 / max of each.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use keel_api::agent::containers::{ContainerCall, ContainerId, Form, Launch};
use keel_api::mesos::{CommandInfo, TaskState};
use keel_api::resources::v1::Resource;
use keel_client::scheduler::Event;
use keel_client::scheduler::compose::{framework_info, task_info};
use keel_client::{Client, ContainerApi};

use crate::cluster::{self, Api, free_port, percentile, wait_until};

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Execs per path (through the master, then directly).
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
}

pub fn run(args: &ExecArgs) -> Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if let Some(done) = crate::rerun_released() {
        return done;
    }
    cluster::build_release()?;
    let dir = std::env::temp_dir().join(format!("keel-bench-exec-{}", std::process::id()));
    let port = free_port();
    let master = cluster::spawn_master(port, &dir.join("master"), true)?;
    let api = Api::new(port)?;
    if !wait_until(Duration::from_secs(15), || api.healthy()) {
        bail!("master did not start");
    }
    let agent_port = free_port();
    let agent = cluster::spawn_agent(
        &format!("127.0.0.1:{port}"),
        agent_port,
        &dir.join("agent"),
        true,
    )?;
    if !wait_until(Duration::from_secs(30), || !api.active_agents().is_empty()) {
        bail!("agent did not register");
    }
    let agent_id = api.active_agents()[0].id.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "bench-exec: {} execs of `true` each way, {cores} cores",
        args.runs
    );
    let result = rt.block_on(async {
        let client = Client::new(&format!("127.0.0.1:{port}"))?;
        let _sub = running_task(&client).await?;
        let (relayed, parent) = client.task_container("exec-bench", None).await?;
        let direct = ContainerApi::agent(None, &agent_id, &format!("127.0.0.1:{agent_port}"))?;
        for (what, api) in [
            ("through the master", &relayed),
            ("on the agent's port", &direct),
        ] {
            let lat = execs(api, &parent, args.runs).await?;
            println!(
                "exec true {what}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                percentile(&lat, 0.5),
                percentile(&lat, 0.99),
                percentile(&lat, 1.0)
            );
        }
        anyhow::Ok(())
    });
    agent.stop()?;
    master.stop()?;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Launches the task `sleep 600` and waits until it runs; the
/// subscription (the framework goes with it).
async fn running_task(client: &Client) -> Result<keel_client::Subscription> {
    let mut sub = client
        .subscribe_framework(framework_info("root", "exec-bench"))
        .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut launched = false;
    loop {
        if Instant::now() > deadline {
            bail!("the task did not start within 60 s");
        }
        let event = tokio::time::timeout(Duration::from_secs(30), sub.next())
            .await
            .context("no event within 30s")?
            .context("stream closed")??;
        match event {
            Event::Offers(offers) => {
                for offer in offers {
                    if launched {
                        sub.decline(vec![offer.id], Some(0.0)).await?;
                        continue;
                    }
                    let role = offer.role().to_string();
                    let resources = vec![
                        Resource::scalar("cpus", 0.1).allocated_to(&role),
                        Resource::scalar("mem", 32.0).allocated_to(&role),
                    ];
                    let command = CommandInfo {
                        value: Some("sleep 600".into()),
                        ..CommandInfo::default()
                    };
                    let task = task_info("exec-bench", &offer.agent_id, resources, command);
                    sub.launch(&offer, vec![task], Some(0.0)).await?;
                    launched = true;
                }
            }
            Event::Update(st) => {
                sub.acknowledge(&st).await?;
                match st.state {
                    TaskState::TASK_RUNNING => return Ok(sub),
                    s if s.is_terminal() => bail!("the task ended: {st:?}"),
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

/// `runs` execs of `true` under `parent`; each round trip in ms, sorted.
async fn execs(api: &ContainerApi, parent: &ContainerId, runs: usize) -> Result<Vec<f64>> {
    let mut lat = Vec::with_capacity(runs);
    for _ in 0..runs {
        let id = ContainerId::nested(parent.clone(), uuid::Uuid::new_v4().to_string());
        let launch = Launch {
            container_id: id.clone(),
            command: Some(CommandInfo {
                value: Some("true".into()),
                ..CommandInfo::default()
            }),
            container: None,
            resources: Vec::new(),
        };
        let start = Instant::now();
        let mut output = api.stream(&ContainerCall::LaunchSession(launch)).await?;
        while output.next().await?.is_some() {}
        let wait = api
            .wait(&ContainerCall::Wait(id.clone(), Form::Nested))
            .await?;
        lat.push(start.elapsed().as_secs_f64() * 1000.0);
        if wait.code() != Some(0) {
            bail!("exec true ended with {wait:?}");
        }
        // Ended sessions are kept for WAIT until removed.
        api.call(&ContainerCall::Remove(id, Form::Nested)).await?;
    }
    lat.sort_by(f64::total_cmp);
    Ok(lat)
}
