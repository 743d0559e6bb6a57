//! `keelctl agents pending|approve|deny`: agents whose TPM is attested
//! but whose endorsement key nobody allowed yet (`--agent-admission tpm`);
//! they get no session until approved. `keelctl agents gone ID`: an agent
//! removed for good (`MARK_AGENT_GONE`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use clap::Subcommand;
use keel_api::keel::{EkState, PendingAgents};
use keel_client::Client;

use crate::output;

#[derive(Debug, Subcommand)]
pub enum AgentsAction {
    /// List the agents waiting for approval (with --all, the approved and
    /// denied endorsement keys too).
    Pending {
        #[arg(long)]
        all: bool,
    },
    /// Let the agent with ID in (its id from `pending`, or an EK
    /// fingerprint `sha256:<hex>` to approve before it shows up).
    Approve { id: String },
    /// Refuse the agent with ID from now on.
    Deny { id: String },
    /// Remove the agent with ID (its agent id) for good, as Mesos'
    /// MARK_AGENT_GONE: its tasks become TASK_GONE_BY_OPERATOR, its session
    /// is closed and it may never register again, whatever it presents.
    #[command(alias = "remove")]
    Gone { id: String },
}

fn ago(t: f64, now: f64) -> String {
    let secs = (now - t).max(0.0) as u64;
    format!(
        "{} ago",
        humantime::format_duration(Duration::from_secs(secs))
    )
}

pub fn table(body: &PendingAgents, now: f64) -> String {
    let rows: Vec<Vec<String>> = body
        .agents
        .iter()
        .map(|a| {
            vec![
                a.id.clone(),
                match a.state {
                    EkState::Pending => "pending".into(),
                    EkState::Approved => "approved".into(),
                    EkState::Denied => "denied".into(),
                },
                if a.hostname.is_empty() {
                    "-".into()
                } else {
                    a.hostname.clone()
                },
                if a.ip.is_empty() {
                    "-".into()
                } else {
                    a.ip.clone()
                },
                ago(a.last_seen, now),
                format!("sha256:{}", a.ek_sha256),
            ]
        })
        .collect();
    output::table(&["ID", "STATE", "HOSTNAME", "IP", "SEEN", "EK"], &rows)
}

pub async fn run(client: &Client, action: Option<AgentsAction>, json: bool) -> Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let pending = match action {
        None => {
            let agents = client.keel_agents().await?;
            return match json {
                true => output::print_json(&agents),
                false => Ok(output::print(&output::agents_table(&agents))?),
            };
        }
        Some(AgentsAction::Pending { all }) => client.pending_agents(all).await?,
        Some(AgentsAction::Approve { id }) => client.decide_agent(&id, true).await?,
        Some(AgentsAction::Deny { id }) => client.decide_agent(&id, false).await?,
        Some(AgentsAction::Gone { id }) => {
            client.mark_agent_gone(&id).await?;
            if !json {
                eprintln!("agent {id} marked gone");
            }
            return Ok(());
        }
    };
    match json {
        true => output::print_json(&pending),
        false => Ok(output::print(&table(&pending, now))?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_api::keel::PendingAgent;

    #[test]
    fn pending_agents_show_their_id_and_ek() {
        let body = PendingAgents {
            agents: vec![PendingAgent {
                id: "abababababababab".into(),
                ek_sha256: "ab".repeat(32),
                state: EkState::Pending,
                hostname: "node-1".into(),
                ip: String::new(),
                first_seen: 0.0,
                last_seen: 40.0,
                decided_at: None,
            }],
        };
        let text = table(&body, 100.0);
        for needle in [
            "abababababababab",
            "pending",
            "node-1",
            "1m ago",
            "sha256:abab",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
    }
}
