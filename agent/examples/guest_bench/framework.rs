//! The bench's Mesos v1 framework on the loopback: one `true` at a time,
//! offers held between launches so that nothing churns while one is timed.

use std::time::{Duration, Instant};

use futures::StreamExt;
use keel_api::recordio::Decoder;
use serde_json::{Value as Json, json};
use tokio::sync::mpsc;

use super::{CPUS, MEM_MB, ms};

/// A minimal Mesos v1 framework on the guest's loopback.
pub struct Framework {
    http: reqwest::Client,
    url: String,
    id: String,
    stream_id: String,
    events: mpsc::UnboundedReceiver<Json>,
    offers: Vec<Json>,
}

impl Framework {
    pub async fn subscribe(port: u16) -> anyhow::Result<Framework> {
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
pub async fn agent_true(
    fw: &mut Framework,
    i: usize,
    true_bin: &str,
) -> anyhow::Result<(f64, f64, f64)> {
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
        "command": {"shell": false, "value": true_bin, "arguments": ["true"]},
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
