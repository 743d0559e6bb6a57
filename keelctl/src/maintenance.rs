//! `keelctl maintenance schedule|status|start|stop`: Mesos' maintenance
//! primitives (the schedule of windows over machines, machines DOWN and
//! UP); `keelctl drain|deactivate|reactivate AGENT_ID`: one agent out of
//! service (DRAIN_AGENT kills its tasks, DEACTIVATE_AGENT only stops its
//! offers).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use keel_api::operator::maintenance::{ClusterStatus, MachineId, Schedule};
use keel_client::Client;

use crate::output;

#[derive(Debug, Subcommand)]
pub enum MaintenanceAction {
    /// Show the schedule, or replace it with the one in --file (JSON as
    /// Mesos' maintenance.md writes it, `-` for stdin; an empty schedule
    /// `{}` cancels it).
    Schedule {
        /// `show` (the default).
        #[arg(value_parser = ["show"])]
        show: Option<String>,
        #[arg(long, conflicts_with = "show")]
        file: Option<PathBuf>,
    },
    /// The draining machines with the frameworks' answers, and the
    /// machines down.
    Status,
    /// Bring scheduled machines DOWN (their agents are removed).
    Start {
        /// HOST, IP or HOST@IP.
        #[arg(required = true)]
        machines: Vec<String>,
    },
    /// Bring machines UP again (they leave the schedule).
    Stop {
        #[arg(required = true)]
        machines: Vec<String>,
    },
}

/// `HOST`, `IP` or `HOST@IP` as a machine id.
pub fn machine(text: &str) -> MachineId {
    match text.split_once('@') {
        Some((host, ip)) => MachineId {
            hostname: Some(host.to_string()),
            ip: Some(ip.to_string()),
        },
        None if text.parse::<std::net::IpAddr>().is_ok() => MachineId {
            hostname: None,
            ip: Some(text.to_string()),
        },
        None => MachineId::hostname(text),
    }
}

fn label(m: &MachineId) -> String {
    match (&m.hostname, &m.ip) {
        (Some(h), Some(i)) => format!("{h}@{i}"),
        (Some(h), None) => h.clone(),
        (None, Some(i)) => i.clone(),
        (None, None) => "-".into(),
    }
}

fn at(nanos: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_nanos(nanos.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

pub fn schedule_table(s: &Schedule) -> String {
    let rows: Vec<Vec<String>> = s
        .windows
        .iter()
        .flat_map(|w| {
            w.machine_ids.iter().map(|m| {
                vec![
                    label(m),
                    at(w.unavailability.start.nanoseconds),
                    w.unavailability.duration.map_or("-".into(), |d| {
                        humantime::format_duration(Duration::from_secs(
                            (d.nanoseconds.max(0) / 1_000_000_000) as u64,
                        ))
                        .to_string()
                    }),
                ]
            })
        })
        .collect();
    output::table(&["MACHINE", "START", "DURATION"], &rows)
}

pub fn status_table(s: &ClusterStatus) -> String {
    let mut rows = Vec::new();
    for m in &s.draining_machines {
        if m.statuses.is_empty() {
            rows.push(vec![
                label(&m.id),
                "DRAINING".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        for st in &m.statuses {
            rows.push(vec![
                label(&m.id),
                "DRAINING".into(),
                st.framework_id.value.clone(),
                format!("{:?}", st.status),
            ]);
        }
    }
    for m in &s.down_machines {
        rows.push(vec![label(m), "DOWN".into(), "-".into(), "-".into()]);
    }
    output::table(&["MACHINE", "MODE", "FRAMEWORK", "ANSWER"], &rows)
}

fn read_schedule(file: &PathBuf) -> Result<Schedule> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the schedule from stdin")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))
}

pub async fn run(client: &Client, action: MaintenanceAction, json: bool) -> Result<()> {
    let down = matches!(action, MaintenanceAction::Start { .. });
    match action {
        MaintenanceAction::Schedule { file: Some(f), .. } => {
            client
                .update_maintenance_schedule(read_schedule(&f)?)
                .await?;
            if !json {
                eprintln!("maintenance schedule updated");
            }
        }
        MaintenanceAction::Schedule { file: None, .. } => {
            let s = client.get_maintenance_schedule().await?;
            match json {
                true => output::print_json(&s)?,
                false => output::print(&schedule_table(&s))?,
            }
        }
        MaintenanceAction::Status => {
            let s = client.get_maintenance_status().await?;
            match json {
                true => output::print_json(&s)?,
                false => output::print(&status_table(&s))?,
            }
        }
        MaintenanceAction::Start { machines } | MaintenanceAction::Stop { machines } => {
            let ids: Vec<MachineId> = machines.iter().map(|m| machine(m)).collect();
            match down {
                true => client.start_maintenance(ids).await?,
                false => client.stop_maintenance(ids).await?,
            }
            if !json {
                let mode = if down { "down" } else { "up" };
                eprintln!("{} {mode}", machines.join(", "));
            }
        }
    }
    Ok(())
}

/// `keelctl drain AGENT_ID [--grace D] [--mark-gone]`.
pub async fn drain(
    client: &Client,
    agent_id: &str,
    grace: Option<Duration>,
    mark_gone: bool,
    json: bool,
) -> Result<()> {
    client.drain_agent(agent_id, grace, mark_gone).await?;
    if !json {
        eprintln!("agent {agent_id} draining");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_api::mesos::{Id, Nanos};
    use keel_api::operator::maintenance::{
        DrainingMachine, InverseOfferAnswer, InverseOfferStatus, Unavailability, Window,
    };

    #[test]
    fn machines_are_hosts_ips_or_both() {
        assert_eq!(machine("node-1"), MachineId::hostname("node-1"));
        assert_eq!(machine("10.0.0.1").ip.as_deref(), Some("10.0.0.1"));
        let both = machine("node-1@10.0.0.1");
        assert_eq!(both.hostname.as_deref(), Some("node-1"));
        assert_eq!(both.ip.as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn tables_show_machines_windows_and_answers() {
        let s = Schedule {
            windows: vec![Window {
                machine_ids: vec![machine("node-1")],
                unavailability: Unavailability {
                    start: Nanos { nanoseconds: 0 },
                    duration: Some(Nanos {
                        nanoseconds: 3_600_000_000_000,
                    }),
                },
            }],
        };
        let text = schedule_table(&s);
        for needle in ["node-1", "1970-01-01T00:00:00Z", "1h"] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        let status = ClusterStatus {
            draining_machines: vec![DrainingMachine {
                id: machine("node-1"),
                statuses: vec![InverseOfferStatus {
                    status: InverseOfferAnswer::ACCEPT,
                    framework_id: Id::new("m-0001"),
                    timestamp: Nanos { nanoseconds: 0 },
                }],
            }],
            down_machines: vec![machine("node-2")],
        };
        let text = status_table(&status);
        for needle in ["node-1", "DRAINING", "m-0001", "ACCEPT", "node-2", "DOWN"] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
    }
}
