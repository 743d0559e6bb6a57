//! The bench's Mesos v1 framework on the loopback (keel-client): one `true`
//! at a time, offers held between launches so that nothing churns while
//! one is timed.

use std::time::{Duration, Instant};

use keel_api::mesos::{CommandInfo, TaskState, TaskStatus};
use keel_api::operator::Offer;
use keel_api::resources::v1::{Resource, Scalar};
use keel_client::Client;
use keel_client::scheduler::compose::{framework_info, task_info};
use keel_client::scheduler::{Event, Subscription};
use serde_json::json;

use super::{CPUS, MEM_MB, ms};

/// A minimal Mesos v1 framework on the guest's loopback.
pub struct Framework {
    sub: Subscription,
    offers: Vec<Offer>,
}

impl Framework {
    pub async fn subscribe(port: u16) -> anyhow::Result<Framework> {
        let client = Client::new(&format!("127.0.0.1:{port}"))?;
        let sub = client
            .subscribe_framework(framework_info("root", "guest-bench"))
            .await?;
        Ok(Framework {
            sub,
            offers: Vec::new(),
        })
    }

    /// The next event of `kind`; offers met on the way are kept (held
    /// offers are not offered again, so nothing churns while a launch is
    /// timed).
    async fn next(&mut self, kind: &str) -> anyhow::Result<Event> {
        loop {
            let e = tokio::time::timeout(Duration::from_secs(120), self.sub.next())
                .await
                .map_err(|_| anyhow::anyhow!("no {kind} within 120 s"))?
                .ok_or_else(|| anyhow::anyhow!("the event stream ended"))??;
            let found = e.kind() == kind;
            match e {
                Event::Offers(offers) if !found => self.offers.extend(offers),
                Event::Offers(offers) => {
                    self.offers.extend(offers.iter().cloned());
                    return Ok(Event::Offers(offers));
                }
                e if found => return Ok(e),
                _ => {}
            }
        }
    }

    /// A held or new offer with room for one `true`.
    async fn offer(&mut self) -> anyhow::Result<Offer> {
        loop {
            let fits = |o: &Offer| o.scalar("cpus") >= CPUS && o.scalar("mem") >= MEM_MB as f64;
            if let Some(i) = self.offers.iter().position(fits) {
                return Ok(self.offers.remove(i));
            }
            self.next("OFFERS").await?;
        }
    }

    /// The next update of `task`, acknowledged.
    async fn update(&mut self, task: &str) -> anyhow::Result<TaskStatus> {
        loop {
            let Event::Update(status) = self.next("UPDATE").await? else {
                continue;
            };
            self.sub.acknowledge(&status).await?;
            if status.task_id.value == task {
                return Ok(status);
            }
        }
    }
}

/// One `true` through the nested agent: (ACCEPT -> RUNNING, ACCEPT ->
/// FINISHED, the agent's own STARTING -> FINISHED from its timestamps).
pub async fn agent_true(
    fw: &mut Framework,
    i: usize,
    true_bin: &str,
) -> anyhow::Result<(f64, f64, f64)> {
    let offer = fw.offer().await?;
    let take = |name: &str, amount: f64| {
        let mut r = offer
            .resources
            .iter()
            .find(|r| r.name == name)
            .cloned()
            .unwrap_or_else(|| Resource::scalar(name, amount));
        r.scalar = Some(Scalar { value: amount });
        r
    };
    let id = format!("true-{i}");
    let command = CommandInfo {
        shell: Some(false),
        value: Some(true_bin.to_string()),
        arguments: vec!["true".to_string()],
        ..CommandInfo::default()
    };
    let mut task = task_info(
        &id,
        &offer.agent_id,
        vec![take("cpus", CPUS), take("mem", MEM_MB as f64)],
        command,
    );
    task.container = Some(json!({"type": "MESOS", "hostname": "bench"}));
    let t0 = Instant::now();
    fw.sub.launch(&offer, vec![task], Some(0.0)).await?;
    let mut running = None;
    let mut starting_ts = None;
    loop {
        let st = fw.update(&id).await?;
        let ts = st.timestamp.unwrap_or(0.0);
        match st.state {
            TaskState::TASK_STARTING => starting_ts = Some(ts),
            TaskState::TASK_RUNNING => running = Some(t0.elapsed()),
            TaskState::TASK_FINISHED => {
                let finished = t0.elapsed();
                let running = running.unwrap_or(finished);
                let inside = starting_ts.map(|s| (ts - s) * 1e3).unwrap_or(f64::NAN);
                return Ok((ms(running), ms(finished), inside));
            }
            other => anyhow::bail!("task {id} ended {}: {st:?}", other.name()),
        }
    }
}
