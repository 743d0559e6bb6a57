//! Maintenance and drain, replicated: the maintenance schedule (windows of
//! machines with their unavailability), the machines an operator brought
//! DOWN, agents being drained (DRAIN_AGENT) and agents deactivated
//! (DEACTIVATE_AGENT). Mesos' machine modes:
//!
//! ```text
//!  UP --(in the schedule)--> DRAINING --START_MAINTENANCE--> DOWN
//!   ^                                                          |
//!   +---------------------- STOP_MAINTENANCE ------------------+
//! ```
//!
//! and an agent's drain: `DrainAgent` (DRAINING, deactivated) ->
//! `AgentDrained` (DRAINED, once no task is left) -> `ReactivateAgent`.
//! What a command refuses changes nothing; the messages are Mesos'.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{AgentInfo, AgentRecord, Applied, Registry, RegistryError};

/// Machines one schedule (or one START/STOP) may name.
pub const MAX_MACHINES: usize = 10_000;

/// A machine as an operator names it: a hostname (lower case), an IP, or
/// both; an empty field is unset.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Machine {
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub ip: String,
}

impl Machine {
    /// A machine id as given (the hostname is not case-sensitive).
    pub fn new(hostname: Option<&str>, ip: Option<&str>) -> Machine {
        Machine {
            hostname: hostname.unwrap_or_default().to_ascii_lowercase(),
            ip: ip.unwrap_or_default().to_string(),
        }
    }

    /// Whether an agent with this hostname and IP runs on the machine:
    /// every field the machine sets matches.
    pub fn matches(&self, info: &AgentInfo) -> bool {
        (self.hostname.is_empty() || self.hostname.eq_ignore_ascii_case(&info.hostname))
            && (self.ip.is_empty() || self.ip == info.ip)
    }

    fn label(&self) -> String {
        match (self.hostname.as_str(), self.ip.as_str()) {
            (h, "") => h.to_string(),
            ("", i) => i.to_string(),
            (h, i) => format!("{h} ({i})"),
        }
    }

    fn validate(&self) -> Result<(), RegistryError> {
        if self.hostname.is_empty() && self.ip.is_empty() {
            return Err(invalid(
                "Both 'hostname' and 'ip' for a machine are empty".into(),
            ));
        }
        if !self.ip.is_empty() && self.ip.parse::<IpAddr>().is_err() {
            return Err(invalid(format!(
                "Failed to parse IP '{}' of a machine",
                self.ip
            )));
        }
        if self.hostname.len() > 255 || self.hostname.chars().any(char::is_control) {
            return Err(invalid(format!("Invalid hostname {:?}", self.hostname)));
        }
        Ok(())
    }
}

/// A maintenance window: machines and when they may become unavailable
/// (nanoseconds since the epoch, and for how long).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub machines: Vec<Machine>,
    pub start_ns: i64,
    #[serde(default)]
    pub duration_ns: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainState {
    /// Its tasks are being killed.
    Draining,
    /// No task is left.
    Drained,
}

/// An agent's drain and how it was asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drain {
    pub state: DrainState,
    /// Caps each task's kill grace period.
    #[serde(default)]
    pub max_grace_period_ns: Option<i64>,
    /// Mark the agent gone once it is drained.
    #[serde(default)]
    pub mark_gone: bool,
}

/// What the registry knows about maintenance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Maintenance {
    pub windows: Vec<Window>,
    /// Machines in DOWN mode (all in the schedule).
    pub down: BTreeSet<Machine>,
    /// Agents being drained or drained, by id.
    pub drains: BTreeMap<String, Drain>,
    /// Agents that get no offers (DEACTIVATE_AGENT, and every drain).
    pub deactivated: BTreeSet<String>,
}

impl Maintenance {
    /// The window an agent's machine is scheduled in, with that machine.
    pub fn window_of(&self, info: &AgentInfo) -> Option<(&Window, &Machine)> {
        self.windows
            .iter()
            .find_map(|w| w.machines.iter().find(|m| m.matches(info)).map(|m| (w, m)))
    }

    /// The DOWN machine an agent runs on, if any.
    pub fn down_machine(&self, info: &AgentInfo) -> Option<&Machine> {
        self.down.iter().find(|m| m.matches(info))
    }

    fn scheduled(&self, machine: &Machine) -> bool {
        self.windows.iter().any(|w| w.machines.contains(machine))
    }
}

/// A maintenance change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MaintenanceCommand {
    /// UPDATE_MAINTENANCE_SCHEDULE: the whole schedule.
    UpdateSchedule {
        windows: Vec<Window>,
    },
    /// START_MAINTENANCE: the machines go DOWN; their agents leave the
    /// registry (they may register again once the machine is up).
    Start {
        machines: Vec<Machine>,
    },
    /// STOP_MAINTENANCE: the machines are UP and leave the schedule.
    Stop {
        machines: Vec<Machine>,
    },
    /// DRAIN_AGENT (a repeat takes the new configuration and drains
    /// again: DRAINING until no task is left).
    Drain {
        agent_id: String,
        #[serde(default)]
        max_grace_period_ns: Option<i64>,
        #[serde(default)]
        mark_gone: bool,
    },
    /// No task is left on a draining agent.
    Drained {
        agent_id: String,
    },
    Deactivate {
        agent_id: String,
    },
    /// REACTIVATE_AGENT: offers again; ends a drain.
    Reactivate {
        agent_id: String,
    },
}

fn invalid(reason: String) -> RegistryError {
    RegistryError::InvalidRequest(reason)
}

/// A list of machines: not empty, within bounds, each valid, none twice.
fn machine_list(machines: &[Machine]) -> Result<(), RegistryError> {
    if machines.is_empty() {
        return Err(invalid("List of machines is empty".into()));
    }
    if machines.len() > MAX_MACHINES {
        return Err(invalid(format!(
            "List of machines exceeds {MAX_MACHINES} entries"
        )));
    }
    let mut seen = BTreeSet::new();
    for m in machines {
        m.validate()?;
        if !seen.insert(m) {
            return Err(invalid(format!(
                "Machine '{}' appears more than once",
                m.label()
            )));
        }
    }
    Ok(())
}

impl Registry {
    pub fn maintenance(&self) -> &Maintenance {
        &self.maintenance
    }

    /// Each registered agent on a scheduled machine, with its window (the
    /// first naming its machine, as [`Maintenance::window_of`]), in
    /// O(agents + machines): allocation cycles ask for it.
    pub fn scheduled_agents(&self) -> HashMap<&str, &Window> {
        let windows = &self.maintenance.windows;
        let mut out = HashMap::new();
        if windows.is_empty() {
            return out;
        }
        let mut by_host: HashMap<String, Vec<&AgentRecord>> = HashMap::new();
        let mut by_ip: HashMap<&str, Vec<&AgentRecord>> = HashMap::new();
        for a in self.agents.values() {
            by_host
                .entry(a.info.hostname.to_ascii_lowercase())
                .or_default()
                .push(a);
            by_ip.entry(a.info.ip.as_str()).or_default().push(a);
        }
        for w in windows {
            for m in &w.machines {
                let candidates = match m.hostname.is_empty() {
                    false => by_host.get(&m.hostname.to_ascii_lowercase()),
                    true => by_ip.get(m.ip.as_str()),
                };
                for a in candidates.into_iter().flatten() {
                    if m.matches(&a.info) {
                        out.entry(a.id.as_str()).or_insert(w);
                    }
                }
            }
        }
        out
    }

    /// Refuses an agent registering from a DOWN machine.
    pub(super) fn not_down(&self, info: &AgentInfo) -> Result<(), RegistryError> {
        match self.maintenance.down_machine(info) {
            Some(m) => Err(RegistryError::MachineDown(m.label())),
            None => Ok(()),
        }
    }

    pub(super) fn validate_maintenance(
        &self,
        cmd: &MaintenanceCommand,
    ) -> Result<(), RegistryError> {
        let m = &self.maintenance;
        match cmd {
            MaintenanceCommand::UpdateSchedule { windows } => {
                let mut seen = BTreeSet::new();
                let mut total = 0;
                for w in windows {
                    if w.machines.is_empty() {
                        return Err(invalid(
                            "List of machines in the maintenance window is empty".into(),
                        ));
                    }
                    if w.duration_ns.is_some_and(|d| d < 0) {
                        return Err(invalid("Unavailability 'duration' is negative".into()));
                    }
                    total += w.machines.len();
                    if total > MAX_MACHINES {
                        return Err(invalid(format!(
                            "The schedule exceeds {MAX_MACHINES} machines"
                        )));
                    }
                    for machine in &w.machines {
                        machine.validate()?;
                        if !seen.insert(machine) {
                            return Err(invalid(format!(
                                "Machine '{}' appears more than once in the schedule",
                                machine.label()
                            )));
                        }
                    }
                }
                if let Some(down) = m.down.iter().find(|d| !seen.contains(d)) {
                    return Err(invalid(format!(
                        "Machine '{}' is deactivated (DOWN) and cannot be removed from the schedule; bring it up first",
                        down.label()
                    )));
                }
                Ok(())
            }
            MaintenanceCommand::Start { machines } => {
                machine_list(machines)?;
                for machine in machines {
                    if !m.scheduled(machine) {
                        return Err(invalid(format!(
                            "Machine '{}' is not part of a maintenance schedule",
                            machine.label()
                        )));
                    }
                    if m.down.contains(machine) {
                        return Err(invalid(format!(
                            "Machine '{}' is not in DRAINING mode and cannot be brought down",
                            machine.label()
                        )));
                    }
                }
                Ok(())
            }
            MaintenanceCommand::Stop { machines } => {
                machine_list(machines)?;
                match machines.iter().find(|x| !m.down.contains(x)) {
                    Some(x) => Err(invalid(format!(
                        "Machine '{}' is not in DOWN mode and cannot be brought up",
                        x.label()
                    ))),
                    None => Ok(()),
                }
            }
            MaintenanceCommand::Drain {
                agent_id,
                max_grace_period_ns,
                ..
            } => {
                self.known_agent(agent_id)?;
                match max_grace_period_ns {
                    Some(ns) if *ns < 0 => Err(invalid(
                        "DRAIN_AGENT's 'max_grace_period' is negative".into(),
                    )),
                    _ => Ok(()),
                }
            }
            MaintenanceCommand::Drained { agent_id } => {
                self.known_agent(agent_id)?;
                match m.drains.get(agent_id) {
                    Some(d) if d.state == DrainState::Draining => Ok(()),
                    _ => Err(invalid(format!("Agent {agent_id} is not draining"))),
                }
            }
            MaintenanceCommand::Deactivate { agent_id }
            | MaintenanceCommand::Reactivate { agent_id } => self.known_agent(agent_id).map(|_| ()),
        }
    }

    pub(super) fn apply_maintenance(&mut self, cmd: &MaintenanceCommand) -> Applied {
        let m = &mut self.maintenance;
        let removed_agents = match cmd {
            MaintenanceCommand::UpdateSchedule { windows } => {
                m.windows = windows.clone();
                Vec::new()
            }
            MaintenanceCommand::Start { machines } => {
                m.down.extend(machines.iter().cloned());
                let removed: Vec<String> = self
                    .agents
                    .values()
                    .filter(|a| machines.iter().any(|x| x.matches(&a.info)))
                    .map(|a| a.id.clone())
                    .collect();
                for id in &removed {
                    self.forget_agent(id);
                }
                removed
            }
            MaintenanceCommand::Stop { machines } => {
                for x in machines {
                    m.down.remove(x);
                }
                for w in &mut m.windows {
                    w.machines.retain(|x| !machines.contains(x));
                }
                m.windows.retain(|w| !w.machines.is_empty());
                Vec::new()
            }
            MaintenanceCommand::Drain {
                agent_id,
                max_grace_period_ns,
                mark_gone,
            } => {
                m.drains.insert(
                    agent_id.clone(),
                    Drain {
                        state: DrainState::Draining,
                        max_grace_period_ns: *max_grace_period_ns,
                        mark_gone: *mark_gone,
                    },
                );
                m.deactivated.insert(agent_id.clone());
                Vec::new()
            }
            MaintenanceCommand::Drained { agent_id } => {
                if let Some(d) = m.drains.get_mut(agent_id) {
                    d.state = DrainState::Drained;
                }
                Vec::new()
            }
            MaintenanceCommand::Deactivate { agent_id } => {
                if !m.deactivated.insert(agent_id.clone()) {
                    return Applied::Unchanged;
                }
                Vec::new()
            }
            MaintenanceCommand::Reactivate { agent_id } => {
                let drained = m.drains.remove(agent_id).is_some();
                if !m.deactivated.remove(agent_id) && !drained {
                    return Applied::Unchanged;
                }
                Vec::new()
            }
        };
        Applied::Maintenance { removed_agents }
    }

    /// An agent leaves the registry (its machine went down, or it was
    /// marked gone): its drain and deactivation go with it.
    pub(super) fn forget_agent(&mut self, agent_id: &str) {
        self.agents.remove(agent_id);
        self.maintenance.drains.remove(agent_id);
        self.maintenance.deactivated.remove(agent_id);
    }
}

#[cfg(test)]
mod tests;
