//! `keelctl run`: a minimal framework on the Mesos v1 scheduler API, like
//! `mesos-execute`. Subscribes (on whichever master leads), launches one
//! command task on the first offer that fits, prints every state change,
//! acknowledges, tears down, and exits with the task's status.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use keel_api::mesos::{CommandInfo, TaskInfo, TaskState, TaskStatus};
use keel_api::operator::Offer;
use keel_client::Client;
use keel_client::scheduler::Event;
use keel_client::scheduler::compose::{self, take};

use crate::output;

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

pub fn fits(offer: &Offer, spec: &RunSpec) -> bool {
    offer.scalar("cpus") + 1e-9 >= spec.cpus && offer.scalar("mem") + 1e-9 >= spec.mem
}

/// The CommandInfo: one argument runs through the shell, several are argv.
pub fn command_info(args: &[String]) -> CommandInfo {
    match args {
        [one] => compose::shell(one),
        [_, ..] => compose::argv(args),
        [] => compose::shell("true"),
    }
}

/// The task, with resources taken from the offer's own entries so that
/// reservations and `allocation_info` match what was offered.
pub fn task_info(offer: &Offer, spec: &RunSpec, task_id: &str) -> TaskInfo {
    let mut resources = take(offer, "cpus", spec.cpus);
    resources.extend(take(offer, "mem", spec.mem));
    let mut task = compose::task_info(
        task_id,
        &offer.agent_id,
        resources,
        command_info(&spec.command),
    );
    task.name = spec.name.clone();
    task
}

/// Exit status for a terminal update: 0 for TASK_FINISHED, the command's
/// status for TASK_FAILED ("Command exited with status N"), 1 otherwise.
pub fn exit_code(status: &TaskStatus) -> i32 {
    match status.state {
        TaskState::TASK_FINISHED => 0,
        TaskState::TASK_FAILED => status
            .message
            .as_deref()
            .and_then(|m| m.rsplit("status ").next())
            .and_then(|n| n.trim().parse::<i32>().ok())
            .filter(|n| *n != 0)
            .unwrap_or(1),
        _ => 1,
    }
}

/// Runs the task; returns the process exit code.
pub async fn run(client: &Client, spec: RunSpec) -> Result<i32> {
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let mut info = compose::framework_info(&user, &format!("keelctl run {}", spec.name));
    info.role = Some(spec.role.clone());
    info.failover_timeout = Some(0.0);
    let mut sub = client
        .subscribe_framework(info)
        .await
        .context("cannot subscribe")?;
    eprintln!("subscribed as framework {}", sub.framework_id().value);
    let task_id = format!(
        "keelctl-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut launched = false;
    let deadline = tokio::time::Instant::now() + spec.offer_timeout;

    loop {
        let event = if launched {
            sub.next().await
        } else {
            match tokio::time::timeout_at(deadline, sub.next()).await {
                Ok(e) => e,
                Err(_) => bail!(
                    "no offer with cpus:{} mem:{} for role {} within {:?}",
                    spec.cpus,
                    spec.mem,
                    spec.role,
                    spec.offer_timeout
                ),
            }
        };
        match event.ok_or_else(|| anyhow!("the master closed the event stream"))?? {
            Event::Offers(offers) => {
                let mut decline = Vec::new();
                for offer in offers {
                    if !launched && fits(&offer, &spec) {
                        let task = task_info(&offer, &spec, &task_id);
                        sub.launch(&offer, vec![task], Some(3600.0)).await?;
                        launched = true;
                        eprintln!("launched task {task_id} on agent {}", offer.agent_id.value);
                        sub.suppress(vec![]).await?;
                    } else {
                        decline.push(offer.id);
                    }
                }
                if !decline.is_empty() {
                    sub.decline(decline, Some(3600.0)).await?;
                }
            }
            Event::Update(status) => {
                let state = status.state.name();
                match status.message.as_deref() {
                    Some(m) if !m.is_empty() => output::print(&format!("{state}: {m}\n"))?,
                    _ => output::print(&format!("{state}\n"))?,
                }
                sub.acknowledge(&status).await?;
                if status.state.is_terminal() && status.task_id.value == task_id {
                    let code = exit_code(&status);
                    sub.teardown().await?;
                    return Ok(code);
                }
            }
            Event::Error(message) => bail!("master error: {message}"),
            Event::Failure(f) => eprintln!(
                "agent {} failed",
                f.agent_id.map(|a| a.value).unwrap_or_default()
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn offer() -> Offer {
        serde_json::from_value(json!({"id": {"value": "o1"}, "framework_id": {"value": "f"},
            "agent_id": {"value": "a"}, "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2.0}, "role": "*", "allocation_info": {"role": "*"}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 1024.0}, "role": "*", "allocation_info": {"role": "*"}}
        ]}))
        .unwrap()
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

    fn status(v: serde_json::Value) -> TaskStatus {
        let mut v = v;
        v["task_id"] = json!({"value": "t"});
        keel_api::mesos::parse(v).unwrap()
    }

    #[test]
    fn task_takes_what_it_asks_from_the_offer() {
        assert!(fits(&offer(), &spec(0.1, 32.0)));
        assert!(!fits(&offer(), &spec(4.0, 32.0)));
        let t = serde_json::to_value(task_info(&offer(), &spec(0.1, 32.0), "tid")).unwrap();
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
            serde_json::to_value(c).unwrap(),
            json!({"shell": false, "value": "ls", "arguments": ["ls", "-l"]})
        );
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(&status(json!({"state": "TASK_FINISHED"}))), 0);
        assert_eq!(
            exit_code(&status(
                json!({"state": "TASK_FAILED", "message": "Command exited with status 3"})
            )),
            3
        );
        assert_eq!(
            exit_code(&status(
                json!({"state": "TASK_FAILED", "message": "Command terminated with signal SIGKILL"})
            )),
            1
        );
        assert_eq!(exit_code(&status(json!({"state": "TASK_KILLED"}))), 1);
    }
}
