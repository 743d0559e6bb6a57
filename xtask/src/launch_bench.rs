//! `cargo xtask bench --launches N`: ACCEPT -> TASK_RUNNING latency on
//! loopback. A framework takes each offer, launches `true` (0.01 cpus,
//! 1 MB), and measures from sending ACCEPT to receiving TASK_RUNNING;
//! every update is acknowledged and unused resources are declined with
//! `refuse_seconds: 0` so the next offer comes at once.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use keel_api::recordio::Decoder;
use serde_json::{Value as Json, json};

async fn call(
    http: &reqwest::Client,
    url: &str,
    stream_id: &str,
    fid: &str,
    mut body: Json,
) -> Result<()> {
    body["framework_id"] = json!({ "value": fid });
    let resp = http
        .post(url)
        .header("Content-Type", "application/json")
        .header("Mesos-Stream-Id", stream_id)
        .body(body.to_string())
        .send()
        .await?;
    if resp.status().as_u16() != 202 {
        bail!("{}: {}", body["type"], resp.status());
    }
    Ok(())
}

/// Returns the latencies in milliseconds.
pub async fn measure(port: u16, launches: usize) -> Result<Vec<f64>> {
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/v1/scheduler");
    let resp = http
        .post(&url)
        .header("Content-Type", "application/json")
        .body(json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "root", "name": "launch-bench"}}}).to_string())
        .send()
        .await?;
    let stream_id = resp
        .headers()
        .get("Mesos-Stream-Id")
        .and_then(|v| v.to_str().ok())
        .context("no stream id")?
        .to_string();
    let mut body = resp.bytes_stream();
    let mut decoder = Decoder::default();
    let mut fid = String::new();
    let mut pending: Option<(String, Instant)> = None;
    let mut latencies = Vec::with_capacity(launches);
    let mut n = 0usize;
    let deadline = Instant::now() + Duration::from_secs(600);
    while latencies.len() < launches {
        if Instant::now() > deadline {
            bail!("benchmark took over 10 minutes");
        }
        let chunk = tokio::time::timeout(Duration::from_secs(30), body.next())
            .await
            .context("no event within 30s")?
            .context("stream closed")??;
        for rec in decoder.push(&chunk)? {
            let e: Json = serde_json::from_slice(&rec)?;
            match e["type"].as_str().unwrap_or("") {
                "SUBSCRIBED" => {
                    fid = e["subscribed"]["framework_id"]["value"]
                        .as_str()
                        .unwrap_or("")
                        .to_string()
                }
                "OFFERS" => {
                    for offer in e["offers"]["offers"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                    {
                        if pending.is_some() || latencies.len() >= launches {
                            call(&http, &url, &stream_id, &fid, json!({"type": "DECLINE",
                                "decline": {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0}}})).await?;
                            continue;
                        }
                        n += 1;
                        let task_id = format!("b{n}");
                        let role = offer["allocation_info"]["role"].clone();
                        let task = json!({"name": "bench", "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
                            "resources": [
                                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.01}, "role": "*", "allocation_info": {"role": role}},
                                {"name": "mem", "type": "SCALAR", "scalar": {"value": 1}, "role": "*", "allocation_info": {"role": role}}],
                            "command": {"value": "true"}});
                        let start = Instant::now();
                        call(
                            &http,
                            &url,
                            &stream_id,
                            &fid,
                            json!({"type": "ACCEPT", "accept": {
                            "offer_ids": [offer["id"]],
                            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
                            "filters": {"refuse_seconds": 0}}}),
                        )
                        .await?;
                        pending = Some((task_id, start));
                    }
                }
                "UPDATE" => {
                    let st = &e["update"]["status"];
                    if let Some((id, start)) = &pending
                        && st["task_id"]["value"] == id.as_str()
                        && st["state"] == "TASK_RUNNING"
                    {
                        latencies.push(start.elapsed().as_secs_f64() * 1000.0);
                        pending = None;
                    }
                    if st.get("uuid").is_some() {
                        call(&http, &url, &stream_id, &fid, json!({"type": "ACKNOWLEDGE", "acknowledge": {
                            "agent_id": st["agent_id"], "task_id": st["task_id"], "uuid": st["uuid"]}})).await?;
                    }
                    if st["state"] == "TASK_ERROR" || st["state"] == "TASK_LOST" {
                        bail!("launch failed: {st}");
                    }
                }
                _ => {}
            }
        }
    }
    let _ = call(&http, &url, &stream_id, &fid, json!({"type": "TEARDOWN"})).await;
    Ok(latencies)
}
