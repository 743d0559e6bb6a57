//! `keelctl events`: the operator event stream, one event a line (a
//! summary, or the event's JSON with `-o json`), until the master ends it.

use anyhow::{Result, bail};
use keel_api::operator::Event;
use keel_client::Client;

use crate::output;

/// One line for `event`.
pub fn line(event: &Event) -> String {
    let kind = event.kind();
    match event {
        Event::Heartbeat => kind.to_string(),
        Event::Subscribed(s) => {
            let st = &s.get_state;
            format!(
                "{kind} agents={} frameworks={} tasks={} heartbeat={}s",
                st.get_agents.agents.len(),
                st.get_frameworks.frameworks.len(),
                st.get_tasks.tasks.len() + st.get_tasks.unreachable_tasks.len(),
                s.heartbeat_interval_seconds.unwrap_or_default()
            )
        }
        Event::TaskAdded(t) => format!(
            "{kind} framework={} task={} agent={} state={:?}",
            t.task.framework_id.value, t.task.task_id.value, t.task.agent_id.value, t.task.state
        ),
        Event::TaskUpdated(u) => {
            let mut text = format!(
                "{kind} framework={} task={} state={:?}",
                u.framework_id.value, u.status.task_id.value, u.state
            );
            if let Some(m) = u.status.message.as_deref().filter(|m| !m.is_empty()) {
                text.push_str(&format!(" message={m:?}"));
            }
            text
        }
        Event::AgentAdded(a) => format!(
            "{kind} agent={} hostname={}",
            a.agent.id(),
            a.agent.agent_info.hostname
        ),
        Event::AgentRemoved(a) => format!("{kind} agent={}", a.agent_id.value),
        Event::FrameworkAdded(f) | Event::FrameworkUpdated(f) => format!(
            "{kind} framework={} name={} connected={}",
            f.framework.id(),
            f.framework.framework_info.name,
            f.framework.connected
        ),
        Event::FrameworkRemoved(f) => format!(
            "{kind} framework={} name={}",
            f.framework_info
                .id
                .as_ref()
                .map_or("", |i| i.value.as_str()),
            f.framework_info.name
        ),
    }
}

fn print(event: &Event, json: bool) -> Result<()> {
    let text = match json {
        true => serde_json::to_string(event)?,
        false => line(event),
    };
    output::print(&format!("{text}\n"))?;
    Ok(())
}

pub async fn run(client: &Client, json: bool) -> Result<()> {
    let mut stream = client.events().await?;
    print(&Event::Subscribed(stream.subscribed().clone()), json)?;
    while let Some(event) = stream.next().await {
        print(&event?, json)?;
    }
    bail!("the master ended the event stream")
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_api::mesos::{Id, TaskState, TaskStatus};
    use keel_api::operator::events::{AgentRemoved, TaskUpdated};

    #[test]
    fn one_line_per_event() {
        let removed = Event::AgentRemoved(AgentRemoved {
            agent_id: Id::new("m-S1"),
        });
        assert_eq!(line(&removed), "AGENT_REMOVED agent=m-S1");
        let updated = Event::TaskUpdated(TaskUpdated {
            framework_id: Id::new("f"),
            status: TaskStatus::new("t", TaskState::TASK_RUNNING),
            state: TaskState::TASK_RUNNING,
        });
        assert_eq!(
            line(&updated),
            "TASK_UPDATED framework=f task=t state=TASK_RUNNING"
        );
        assert_eq!(line(&Event::Heartbeat), "HEARTBEAT");
    }
}
