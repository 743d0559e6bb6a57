//! `cargo xtask bench --launches N`: ACCEPT -> TASK_RUNNING latency on
//! loopback. A framework takes each offer, launches `true` (0.01 cpus,
//! 1 MB), and measures from sending ACCEPT to receiving TASK_RUNNING;
//! every update is acknowledged and unused resources are declined with
//! `refuse_seconds: 0` so the next offer comes at once.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use keel_api::mesos::{CommandInfo, TaskState};
use keel_api::resources::v1::Resource;
use keel_client::Client;
use keel_client::scheduler::Event;
use keel_client::scheduler::compose::{framework_info, task_info};

/// Returns the latencies in milliseconds.
pub async fn measure(port: u16, launches: usize) -> Result<Vec<f64>> {
    measure_with(&Client::new(&format!("127.0.0.1:{port}"))?, launches).await
}

/// [`measure`] through `client` (TLS, credentials).
pub async fn measure_with(client: &Client, launches: usize) -> Result<Vec<f64>> {
    let mut sub = client
        .subscribe_framework(framework_info("root", "launch-bench"))
        .await?;
    let mut pending: Option<(String, Instant)> = None;
    let mut latencies = Vec::with_capacity(launches);
    let mut n = 0usize;
    let deadline = Instant::now() + Duration::from_secs(600);
    while latencies.len() < launches {
        if Instant::now() > deadline {
            bail!("benchmark took over 10 minutes");
        }
        let event = tokio::time::timeout(Duration::from_secs(30), sub.next())
            .await
            .context("no event within 30s")?
            .context("stream closed")??;
        match event {
            Event::Offers(offers) => {
                for offer in offers {
                    if pending.is_some() || latencies.len() >= launches {
                        sub.decline(vec![offer.id], Some(0.0)).await?;
                        continue;
                    }
                    n += 1;
                    let task_id = format!("b{n}");
                    let role = offer.role().to_string();
                    let resources = vec![
                        Resource::scalar("cpus", 0.01).allocated_to(&role),
                        Resource::scalar("mem", 1.0).allocated_to(&role),
                    ];
                    let command = CommandInfo {
                        value: Some("true".into()),
                        ..CommandInfo::default()
                    };
                    let mut task = task_info(&task_id, &offer.agent_id, resources, command);
                    task.name = "bench".into();
                    let start = Instant::now();
                    sub.launch(&offer, vec![task], Some(0.0)).await?;
                    pending = Some((task_id, start));
                }
            }
            Event::Update(st) => {
                if let Some((id, start)) = &pending
                    && st.task_id.value == *id
                    && st.state == TaskState::TASK_RUNNING
                {
                    latencies.push(start.elapsed().as_secs_f64() * 1000.0);
                    pending = None;
                }
                sub.acknowledge(&st).await?;
                if matches!(st.state, TaskState::TASK_ERROR | TaskState::TASK_LOST) {
                    bail!("launch failed: {st:?}");
                }
            }
            _ => {}
        }
    }
    let _ = sub.teardown().await;
    Ok(latencies)
}
