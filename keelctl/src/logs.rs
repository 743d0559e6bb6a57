//! `keelctl logs TASK [-f] [--stderr]`: a task's stdout (or stderr) from
//! its agent's sandbox.
//!
//! The master's `GET_TASKS` names the task's agent, framework and executor;
//! `GET_AGENTS` gives the agent's address (its `pid`, `slave(1)@IP:PORT`).
//! The sandbox is Mesos' virtual path of the executor's latest run,
//! `/frameworks/<fw>/executors/<ex>/runs/latest` (plus `tasks/<task>` for a
//! task of a task group), read through the agent's files API: the whole
//! file with `/files/download`, and with `-f` new bytes with `/files/read`
//! until the task has ended and nothing more comes, through
//! `keel-client` (over TLS with a sandbox grant when the cluster has TLS).

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use keel_api::mesos::TaskState;
use keel_api::operator::{GetAgents, GetTasks};
use keel_client::{Client, ClientError, FileChunk};

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
    pub state: TaskState,
}

/// Finds `task` in a `GET_TASKS` answer (live tasks first).
pub fn find_task(get_tasks: &GetTasks, task: &str, framework: Option<&str>) -> Result<TaskPlace> {
    let found: Vec<TaskPlace> = get_tasks
        .all()
        .filter(|t| t.task_id.value == task && framework.is_none_or(|f| f == t.framework_id.value))
        .map(|t| TaskPlace {
            framework_id: t.framework_id.value.clone(),
            agent_id: t.agent_id.value.clone(),
            executor_id: t.executor().to_string(),
            state: t.state,
        })
        .collect();
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
pub fn agent_address(get_agents: &GetAgents, agent_id: &str) -> Result<String> {
    let agent = get_agents
        .agents
        .iter()
        .find(|a| a.id() == agent_id)
        .ok_or_else(|| anyhow!("agent {agent_id} is not registered with the master"))?;
    agent.address().map(str::to_string).ok_or_else(|| {
        anyhow!(
            "agent {agent_id} has no address (pid {:?})",
            agent.pid.as_deref().unwrap_or_default()
        )
    })
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

async fn locate(client: &Client, spec: &LogsSpec) -> Result<TaskPlace> {
    let tasks = client.get_tasks().await?;
    find_task(&tasks, &spec.task, spec.framework.as_deref())
}

pub async fn logs(client: &Client, spec: LogsSpec) -> Result<()> {
    let place = locate(client, &spec).await?;
    let agents = client.get_agents().await?;
    let agent = agent_address(&agents, &place.agent_id)?;
    let path = sandbox_file(&spec.task, &place, spec.stderr);
    let sandbox = client
        .sandbox(&place.agent_id, &agent, &place.framework_id)
        .context("cannot set up a client of the agent")?;
    let mut out = std::io::stdout();

    if !spec.follow {
        let resp = sandbox
            .download(&path)
            .await
            .with_context(|| format!("agent {agent}: {path}"))?;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            out.write_all(&chunk.context("reading the file")?)?;
        }
        out.flush()?;
        return Ok(());
    }

    let mut offset: u64 = 0;
    let mut ended = place.state.is_terminal();
    let mut last_check = std::time::Instant::now();
    loop {
        let chunk = match sandbox.read(&path, offset).await {
            Ok(chunk) => chunk,
            // A task being launched has no sandbox yet.
            Err(ClientError::Status { status: 404, .. }) if !ended => FileChunk::default(),
            Err(e) => return Err(e).with_context(|| format!("agent {agent}: {path}")),
        };
        let data = chunk.data.as_str();
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
            ended = locate(client, &spec).await?.state.is_terminal();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tasks() -> GetTasks {
        let task = |id: &str, fw: &str, agent: &str, executor: Option<&str>, state: &str| {
            let mut t = json!({"name": id, "task_id": {"value": id}, "framework_id": {"value": fw},
                "agent_id": {"value": agent}, "state": state});
            if let Some(e) = executor {
                t["executor_id"] = json!({"value": e});
            }
            t
        };
        serde_json::from_value(json!({
            "tasks": [task("web", "f1", "a-S0", Some("web"), "TASK_RUNNING")],
            "completed_tasks": [task("t2", "f1", "a-S1", Some("group"), "TASK_FINISHED"),
                                task("web", "f2", "a-S1", None, "TASK_FAILED")]
        }))
        .unwrap()
    }

    #[test]
    fn tasks_are_found_by_id_and_framework() {
        let t = tasks();
        assert!(find_task(&t, "web", None).is_err(), "ambiguous");
        let web = find_task(&t, "web", Some("f2")).unwrap();
        assert_eq!(
            (web.executor_id.as_str(), web.state.name()),
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
        let agents: GetAgents = serde_json::from_value(json!({"agents": [
            {"agent_info": {"hostname": "h", "id": {"value": "a-S0"}}, "active": true,
             "version": "1", "pid": "slave(1)@10.0.0.5:5051"}]}))
        .unwrap();
        assert_eq!(agent_address(&agents, "a-S0").unwrap(), "10.0.0.5:5051");
        assert!(agent_address(&agents, "a-S9").is_err());
    }
}
