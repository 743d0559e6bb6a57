//! `keelctl logs TASK [-f] [--stderr]`: a task's stdout (or stderr) from
//! its agent's sandbox.
//!
//! The master's `GET_TASKS` names the task's agent, framework and executor;
//! `GET_AGENTS` gives the agent's address (its `pid`, `slave(1)@IP:PORT`).
//! The sandbox is Mesos' virtual path of the executor's latest run,
//! `/frameworks/<fw>/executors/<ex>/runs/latest` (plus `tasks/<task>` for a
//! task of a task group), read through the agent's files API: the whole
//! file with `/files/download`, and with `-f` new bytes with `/files/read`
//! until the task has ended and nothing more comes.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use serde_json::Value as Json;

use crate::client::Client;

const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct LogsSpec {
    pub task: String,
    pub framework: Option<String>,
    pub follow: bool,
    pub stderr: bool,
}

/// Where a task ran.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPlace {
    pub framework_id: String,
    pub agent_id: String,
    pub executor_id: String,
    pub state: String,
}

/// Finds `task` in a `GET_TASKS` answer (live tasks first).
pub fn find_task(get_tasks: &Json, task: &str, framework: Option<&str>) -> Result<TaskPlace> {
    let mut found = Vec::new();
    for list in ["tasks", "unreachable_tasks", "completed_tasks"] {
        for t in get_tasks[list].as_array().into_iter().flatten() {
            let fw = t["framework_id"]["value"].as_str().unwrap_or_default();
            if t["task_id"]["value"] == task && framework.is_none_or(|f| f == fw) {
                found.push(TaskPlace {
                    framework_id: fw.to_string(),
                    agent_id: t["agent_id"]["value"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    executor_id: t["executor_id"]["value"]
                        .as_str()
                        .unwrap_or(task)
                        .to_string(),
                    state: t["state"].as_str().unwrap_or_default().to_string(),
                });
            }
        }
    }
    let frameworks: std::collections::BTreeSet<&str> =
        found.iter().map(|p| p.framework_id.as_str()).collect();
    if frameworks.len() > 1 {
        bail!("task {task} exists in several frameworks ({frameworks:?}): pass --framework");
    }
    found
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("the master knows no task {task}"))
}

/// `HOST:PORT` of agent `agent_id` from a `GET_AGENTS` answer.
pub fn agent_address(get_agents: &Json, agent_id: &str) -> Result<String> {
    let agents = get_agents["agents"].as_array().into_iter().flatten();
    let agent = agents
        .chain(
            get_agents["recovered_agents"]
                .as_array()
                .into_iter()
                .flatten(),
        )
        .find(|a| a["agent_info"]["id"]["value"] == agent_id)
        .ok_or_else(|| anyhow!("agent {agent_id} is not registered with the master"))?;
    let pid = agent["pid"].as_str().unwrap_or_default();
    pid.split_once('@')
        .map(|(_, addr)| addr.to_string())
        .filter(|a| !a.is_empty())
        .ok_or_else(|| anyhow!("agent {agent_id} has no address (pid {pid:?})"))
}

/// The virtual path of the task's output file.
pub fn sandbox_file(task: &str, place: &TaskPlace, stderr: bool) -> String {
    let mut p = format!(
        "/frameworks/{}/executors/{}/runs/latest",
        place.framework_id, place.executor_id
    );
    if place.executor_id != task {
        p.push_str(&format!("/tasks/{task}"));
    }
    p.push_str(if stderr { "/stderr" } else { "/stdout" });
    p
}

fn terminal(state: &str) -> bool {
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

async fn locate(client: &Client, spec: &LogsSpec) -> Result<TaskPlace> {
    let tasks = client.operator_call("GET_TASKS").await?;
    find_task(&tasks["get_tasks"], &spec.task, spec.framework.as_deref())
}

pub async fn logs(client: &Client, spec: LogsSpec) -> Result<()> {
    let place = locate(client, &spec).await?;
    let agents = client.operator_call("GET_AGENTS").await?;
    let agent = agent_address(&agents["get_agents"], &place.agent_id)?;
    let path = sandbox_file(&spec.task, &place, spec.stderr);
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .context("cannot build http client")?;
    let files = format!("http://{agent}/files");
    let mut out = std::io::stdout();

    if !spec.follow {
        let resp = http
            .get(format!("{files}/download"))
            .query(&[("path", &path)])
            .send()
            .await
            .with_context(|| format!("cannot reach agent {agent}"))?;
        let status = resp.status();
        if !status.is_success() {
            bail!(
                "agent {agent}: {path}: {status}: {}",
                resp.text().await.unwrap_or_default()
            );
        }
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            out.write_all(&chunk.context("reading the file")?)?;
        }
        out.flush()?;
        return Ok(());
    }

    let mut offset: u64 = 0;
    let mut ended = terminal(&place.state);
    let mut last_check = std::time::Instant::now();
    loop {
        let resp = http
            .get(format!("{files}/read"))
            .query(&[("path", path.as_str()), ("offset", &offset.to_string())])
            .send()
            .await
            .with_context(|| format!("cannot reach agent {agent}"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        // A task being launched has no sandbox yet.
        let not_yet = status == reqwest::StatusCode::NOT_FOUND && !ended;
        if !status.is_success() && !not_yet {
            bail!("agent {agent}: {path}: {status}: {text}");
        }
        let body: Json = serde_json::from_str(&text).unwrap_or_default();
        let data = body["data"].as_str().unwrap_or_default();
        if !data.is_empty() {
            out.write_all(data.as_bytes())?;
            out.flush()?;
            offset += data.len() as u64;
            continue;
        }
        if ended {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
        if last_check.elapsed() >= Duration::from_secs(2) {
            last_check = std::time::Instant::now();
            // Ended: one more read drains what was written last.
            ended = terminal(&locate(client, &spec).await?.state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tasks() -> Json {
        json!({
            "tasks": [{"task_id": {"value": "web"}, "framework_id": {"value": "f1"},
                       "agent_id": {"value": "a-S0"}, "executor_id": {"value": "web"},
                       "state": "TASK_RUNNING"}],
            "completed_tasks": [{"task_id": {"value": "t2"}, "framework_id": {"value": "f1"},
                       "agent_id": {"value": "a-S1"}, "executor_id": {"value": "group"},
                       "state": "TASK_FINISHED"},
                      {"task_id": {"value": "web"}, "framework_id": {"value": "f2"},
                       "agent_id": {"value": "a-S1"}, "state": "TASK_FAILED"}]
        })
    }

    #[test]
    fn tasks_are_found_by_id_and_framework() {
        let t = tasks();
        assert!(find_task(&t, "web", None).is_err(), "ambiguous");
        let web = find_task(&t, "web", Some("f2")).unwrap();
        assert_eq!(
            (web.executor_id.as_str(), web.state.as_str()),
            ("web", "TASK_FAILED")
        );
        let t2 = find_task(&t, "t2", None).unwrap();
        assert_eq!(
            sandbox_file("t2", &t2, true),
            "/frameworks/f1/executors/group/runs/latest/tasks/t2/stderr"
        );
        let web = find_task(&t, "web", Some("f1")).unwrap();
        assert_eq!(
            sandbox_file("web", &web, false),
            "/frameworks/f1/executors/web/runs/latest/stdout"
        );
        assert!(find_task(&t, "nope", None).is_err());
    }

    #[test]
    fn agent_addresses_come_from_the_pid() {
        let agents = json!({"agents": [
            {"agent_info": {"id": {"value": "a-S0"}}, "pid": "slave(1)@10.0.0.5:5051"}]});
        assert_eq!(agent_address(&agents, "a-S0").unwrap(), "10.0.0.5:5051");
        assert!(agent_address(&agents, "a-S9").is_err());
    }
}
