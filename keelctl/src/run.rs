//! `keelctl run`: a minimal framework on the Mesos v1 scheduler API, like
//! `mesos-execute`. Subscribes, launches one command task on the first
//! offer that fits, prints every state change, acknowledges, tears down,
//! and exits with the task's status.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use keel_api::recordio::Decoder;
use serde_json::{Value as Json, json};

/// What to run and with which resources.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub cpus: f64,
    pub mem: f64,
    pub role: String,
    pub name: String,
    pub command: Vec<String>,
    pub offer_timeout: Duration,
}

/// Sum of a scalar resource in an offer usable by `role`.
fn offered_scalar(offer: &Json, name: &str) -> f64 {
    offer["resources"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter(|r| r["name"] == name)
                .filter_map(|r| r["scalar"]["value"].as_f64())
                .sum()
        })
        .unwrap_or(0.0)
}

/// The task resources, taken from the offer's own entries so reservations
/// and `allocation_info` match what was offered.
pub fn pick_resources(offer: &Json, name: &str, amount: f64) -> Vec<Json> {
    let mut left = amount;
    let mut out = Vec::new();
    for r in offer["resources"].as_array().into_iter().flatten() {
        if r["name"] != name || left <= 0.0 {
            continue;
        }
        let have = r["scalar"]["value"].as_f64().unwrap_or(0.0);
        let take = have.min(left);
        if take <= 0.0 {
            continue;
        }
        let mut part = r.clone();
        part["scalar"] = json!({ "value": (take * 1000.0).round() / 1000.0 });
        out.push(part);
        left -= take;
    }
    out
}

pub fn fits(offer: &Json, spec: &RunSpec) -> bool {
    offered_scalar(offer, "cpus") + 1e-9 >= spec.cpus
        && offered_scalar(offer, "mem") + 1e-9 >= spec.mem
}

/// The CommandInfo: one argument runs through the shell, several are argv.
pub fn command_info(args: &[String]) -> Json {
    match args {
        [one] => json!({ "shell": true, "value": one }),
        [first, ..] => json!({ "shell": false, "value": first, "arguments": args }),
        [] => json!({ "shell": true, "value": "true" }),
    }
}

pub fn task_info(offer: &Json, spec: &RunSpec, task_id: &str) -> Json {
    let mut resources = pick_resources(offer, "cpus", spec.cpus);
    resources.extend(pick_resources(offer, "mem", spec.mem));
    json!({
        "name": spec.name,
        "task_id": { "value": task_id },
        "agent_id": offer["agent_id"],
        "resources": resources,
        "command": command_info(&spec.command),
    })
}

/// Exit status for a terminal update: 0 for TASK_FINISHED, the command's
/// status for TASK_FAILED ("Command exited with status N"), 1 otherwise.
pub fn exit_code(status: &Json) -> i32 {
    match status["state"].as_str() {
        Some("TASK_FINISHED") => 0,
        Some("TASK_FAILED") => status["message"]
            .as_str()
            .and_then(|m| m.rsplit("status ").next())
            .and_then(|n| n.trim().parse::<i32>().ok())
            .filter(|n| *n != 0)
            .unwrap_or(1),
        _ => 1,
    }
}

pub fn is_terminal(state: &str) -> bool {
    matches!(
        state,
        "TASK_FINISHED"
            | "TASK_FAILED"
            | "TASK_KILLED"
            | "TASK_ERROR"
            | "TASK_LOST"
            | "TASK_DROPPED"
            | "TASK_GONE"
            | "TASK_GONE_BY_OPERATOR"
    )
}

struct Session {
    http: reqwest::Client,
    url: String,
    framework_id: String,
    stream_id: String,
}

impl Session {
    async fn call(&self, mut body: Json) -> Result<()> {
        body["framework_id"] = json!({ "value": self.framework_id });
        let resp = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Mesos-Stream-Id", &self.stream_id)
            .body(body.to_string())
            .send()
            .await
            .with_context(|| format!("{} call", body["type"]))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            bail!("{} call: {status}: {text}", body["type"]);
        }
        Ok(())
    }
}

/// Runs the task; returns the process exit code.
pub async fn run(master: &str, spec: RunSpec) -> Result<i32> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let url = format!("http://{master}/api/v1/scheduler");
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let subscribe = json!({
        "type": "SUBSCRIBE",
        "subscribe": { "framework_info": {
            "user": user, "name": format!("keelctl run {}", spec.name), "role": spec.role,
            "capabilities": [], "failover_timeout": 0,
        }},
    });
    let resp = http
        .post(&url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(subscribe.to_string())
        .send()
        .await
        .with_context(|| format!("cannot subscribe to {master}"))?;
    if !resp.status().is_success() {
        let status = resp.status();
        bail!(
            "subscribe: {status}: {}",
            resp.text().await.unwrap_or_default()
        );
    }
    let stream_id = resp
        .headers()
        .get("Mesos-Stream-Id")
        .and_then(|v| v.to_str().ok())
        .context("subscribe answer has no Mesos-Stream-Id")?
        .to_string();
    let mut body = resp.bytes_stream();
    let mut decoder = Decoder::default();
    let mut session: Option<Session> = None;
    let task_id = format!(
        "keelctl-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut launched = false;
    let deadline = tokio::time::Instant::now() + spec.offer_timeout;

    loop {
        let chunk = if launched {
            body.next().await
        } else {
            match tokio::time::timeout_at(deadline, body.next()).await {
                Ok(c) => c,
                Err(_) => bail!(
                    "no offer with cpus:{} mem:{} for role {} within {:?}",
                    spec.cpus,
                    spec.mem,
                    spec.role,
                    spec.offer_timeout
                ),
            }
        };
        let chunk = chunk.ok_or_else(|| anyhow!("the master closed the event stream"))??;
        for record in decoder.push(&chunk)? {
            let event: Json = serde_json::from_slice(&record).context("invalid event JSON")?;
            match event["type"].as_str().unwrap_or("") {
                "SUBSCRIBED" => {
                    let id = event["subscribed"]["framework_id"]["value"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    eprintln!("subscribed as framework {id}");
                    session = Some(Session {
                        http: http.clone(),
                        url: url.clone(),
                        framework_id: id,
                        stream_id: stream_id.clone(),
                    });
                }
                "OFFERS" => {
                    let s = session.as_ref().context("offers before SUBSCRIBED")?;
                    let offers = event["offers"]["offers"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let mut decline = Vec::new();
                    for offer in offers {
                        if !launched && fits(&offer, &spec) {
                            let task = task_info(&offer, &spec, &task_id);
                            s.call(json!({
                                "type": "ACCEPT",
                                "accept": {
                                    "offer_ids": [offer["id"]],
                                    "operations": [{ "type": "LAUNCH", "launch": { "task_infos": [task] } }],
                                    "filters": { "refuse_seconds": 3600 },
                                },
                            }))
                            .await?;
                            launched = true;
                            eprintln!(
                                "launched task {task_id} on agent {}",
                                offer["agent_id"]["value"].as_str().unwrap_or("")
                            );
                            s.call(json!({ "type": "SUPPRESS" })).await?;
                        } else {
                            decline.push(offer["id"].clone());
                        }
                    }
                    if !decline.is_empty() {
                        s.call(json!({ "type": "DECLINE", "decline": { "offer_ids": decline, "filters": { "refuse_seconds": 3600 } } })).await?;
                    }
                }
                "UPDATE" => {
                    let s = session.as_ref().context("update before SUBSCRIBED")?;
                    let status = &event["update"]["status"];
                    let state = status["state"].as_str().unwrap_or("");
                    match status["message"].as_str() {
                        Some(m) if !m.is_empty() => println!("{state}: {m}"),
                        _ => println!("{state}"),
                    }
                    if status.get("uuid").is_some() {
                        s.call(json!({
                            "type": "ACKNOWLEDGE",
                            "acknowledge": { "agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"] },
                        }))
                        .await?;
                    }
                    if is_terminal(state) && status["task_id"]["value"] == task_id.as_str() {
                        let code = exit_code(status);
                        s.call(json!({ "type": "TEARDOWN" })).await?;
                        return Ok(code);
                    }
                }
                "ERROR" => bail!(
                    "master error: {}",
                    event["error"]["message"].as_str().unwrap_or("")
                ),
                "FAILURE" => eprintln!(
                    "agent {} failed",
                    event["failure"]["agent_id"]["value"].as_str().unwrap_or("")
                ),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer() -> Json {
        json!({"id": {"value": "o1"}, "agent_id": {"value": "a"}, "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2.0}, "role": "*", "allocation_info": {"role": "*"}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 1024.0}, "role": "*", "allocation_info": {"role": "*"}}
        ]})
    }

    fn spec(cpus: f64, mem: f64) -> RunSpec {
        RunSpec {
            cpus,
            mem,
            role: "*".into(),
            name: "t".into(),
            command: vec!["echo hi".into()],
            offer_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn task_takes_what_it_asks_from_the_offer() {
        assert!(fits(&offer(), &spec(0.1, 32.0)));
        assert!(!fits(&offer(), &spec(4.0, 32.0)));
        let t = task_info(&offer(), &spec(0.1, 32.0), "tid");
        let rs = t["resources"].as_array().unwrap();
        assert_eq!(rs[0]["scalar"]["value"], 0.1);
        assert_eq!(rs[0]["allocation_info"]["role"], "*");
        assert_eq!(rs[1]["scalar"]["value"], 32.0);
        assert_eq!(t["command"], json!({"shell": true, "value": "echo hi"}));
    }

    #[test]
    fn argv_form_for_several_arguments() {
        let c = command_info(&["ls".into(), "-l".into()]);
        assert_eq!(
            c,
            json!({"shell": false, "value": "ls", "arguments": ["ls", "-l"]})
        );
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(&json!({"state": "TASK_FINISHED"})), 0);
        assert_eq!(
            exit_code(&json!({"state": "TASK_FAILED", "message": "Command exited with status 3"})),
            3
        );
        assert_eq!(
            exit_code(
                &json!({"state": "TASK_FAILED", "message": "Command terminated with signal SIGKILL"})
            ),
            1
        );
        assert_eq!(exit_code(&json!({"state": "TASK_KILLED"})), 1);
    }
}
