//! A small Mesos v1 framework for tests that go through a real master:
//! SUBSCRIBE (RecordIO events read on a task), launch one task per offer,
//! acknowledge updates, kill.

use std::time::Duration;

use futures::StreamExt;
use keel_api::recordio::Decoder;
use serde_json::{Value as Json, json};
use tokio::sync::mpsc;

pub struct Framework {
    http: reqwest::Client,
    url: String,
    pub id: String,
    stream_id: String,
    events: mpsc::UnboundedReceiver<Json>,
    backlog: Vec<Json>,
}

/// `resources` entries taken from `offer` for `name` (scalar `amount`).
fn take(offer: &Json, name: &str, amount: f64) -> Option<Json> {
    let r = offer["resources"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == name && r["scalar"]["value"].as_f64().unwrap_or(0.0) >= amount)?;
    let mut r = r.clone();
    r["scalar"] = json!({ "value": amount });
    Some(r)
}

/// Whether `offer` holds every range of the RANGES resource `r`.
fn has_ranges(offer: &Json, r: &Json) -> bool {
    let offered: Vec<(u64, u64)> = offer["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["name"] == r["name"])
        .flat_map(|o| o["ranges"]["range"].as_array().cloned().unwrap_or_default())
        .filter_map(|x| Some((x["begin"].as_u64()?, x["end"].as_u64()?)))
        .collect();
    r["ranges"]["range"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| Some((x["begin"].as_u64()?, x["end"].as_u64()?)))
        .all(|(b, e)| offered.iter().any(|(ob, oe)| *ob <= b && e <= *oe))
}

impl Framework {
    pub async fn subscribe(master: &str, name: &str) -> Framework {
        let http = reqwest::Client::new();
        let url = format!("http://{master}/api/v1/scheduler");
        let body = json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
            "user": "root", "name": name,
            "capabilities": [{"type": "TASK_KILLING_STATE"}]}}});
        let resp = http
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("subscribe");
        assert!(resp.status().is_success(), "subscribe: {}", resp.status());
        let stream_id = resp.headers()["Mesos-Stream-Id"]
            .to_str()
            .unwrap()
            .to_string();
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
            backlog: Vec::new(),
        };
        let first = f.expect("SUBSCRIBED", Duration::from_secs(30)).await;
        f.id = first["subscribed"]["framework_id"]["value"]
            .as_str()
            .unwrap()
            .to_string();
        f
    }

    pub async fn call(&self, mut call: Json) {
        call["framework_id"] = json!({ "value": self.id });
        let resp = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Mesos-Stream-Id", &self.stream_id)
            .body(call.to_string())
            .send()
            .await
            .expect("call");
        assert!(resp.status().is_success(), "{call}: {}", resp.status());
    }

    /// The next event of `kind` (others are kept), skipping heartbeats.
    pub async fn expect(&mut self, kind: &str, within: Duration) -> Json {
        if let Some(i) = self.backlog.iter().position(|e| e["type"] == kind) {
            return self.backlog.remove(i);
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let e = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no {kind} within {within:?}; kept {:?}", self.backlog))
                .expect("event stream ended");
            match e["type"].as_str() {
                Some(k) if k == kind => return e,
                Some("HEARTBEAT") => {}
                _ => self.backlog.push(e),
            }
        }
    }

    /// Launches `task` (a TaskInfo without agent_id and resources) with
    /// `cpus`/`mem` and the given extra resources, on the first offer that
    /// has them; every other offer is declined (its resources come back).
    pub async fn launch(&mut self, mut task: Json, cpus: f64, mem: f64, extra: Vec<Json>) {
        loop {
            let offers = self.expect("OFFERS", Duration::from_secs(60)).await;
            let mut decline = Vec::new();
            let mut launched = false;
            for offer in offers["offers"]["offers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let fits = (take(&offer, "cpus", cpus), take(&offer, "mem", mem));
                let has_extra = extra.iter().all(|r| has_ranges(&offer, r));
                let (Some(c), Some(m), false, true) = (fits.0, fits.1, launched, has_extra) else {
                    decline.push(offer["id"].clone());
                    continue;
                };
                let mut resources = vec![c, m];
                for mut r in extra.clone() {
                    if let Some(alloc) = offer["resources"][0].get("allocation_info") {
                        r["allocation_info"] = alloc.clone();
                    }
                    resources.push(r);
                }
                task["agent_id"] = offer["agent_id"].clone();
                task["resources"] = json!(resources);
                self.call(json!({"type": "ACCEPT", "accept": {
                    "offer_ids": [offer["id"]],
                    "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task.clone()]}}],
                    "filters": {"refuse_seconds": 0.0}}}))
                    .await;
                launched = true;
            }
            if !decline.is_empty() {
                self.call(json!({"type": "DECLINE", "decline": {"offer_ids": decline,
                    "filters": {"refuse_seconds": 0.0}}}))
                    .await;
            }
            if launched {
                return;
            }
        }
    }

    /// The next update of `task_id`, acknowledged.
    pub async fn update(&mut self, task_id: &str, within: Duration) -> Json {
        loop {
            let e = self.expect("UPDATE", within).await;
            let status = e["update"]["status"].clone();
            if status.get("uuid").is_some() {
                self.call(json!({"type": "ACKNOWLEDGE", "acknowledge": {
                    "agent_id": status["agent_id"], "task_id": status["task_id"],
                    "uuid": status["uuid"]}}))
                    .await;
            }
            if status["task_id"]["value"] == task_id {
                return status;
            }
        }
    }

    /// Updates of `task_id` until `state` (or a terminal one); returns it.
    pub async fn until(&mut self, task_id: &str, state: &str, within: Duration) -> Json {
        loop {
            let st = self.update(task_id, within).await;
            let s = st["state"].as_str().unwrap_or("");
            let terminal = matches!(
                s,
                "TASK_FINISHED" | "TASK_FAILED" | "TASK_KILLED" | "TASK_ERROR" | "TASK_LOST"
            );
            if s == state || terminal {
                return st;
            }
        }
    }

    pub async fn kill(&self, task_id: &str) {
        self.call(json!({"type": "KILL", "kill": {"task_id": {"value": task_id}}}))
            .await;
    }
}
