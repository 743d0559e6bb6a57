//! Maintenance and drain at the edge: the v1 calls
//! (`UPDATE_MAINTENANCE_SCHEDULE`, `GET_MAINTENANCE_SCHEDULE`,
//! `GET_MAINTENANCE_STATUS`, `START_MAINTENANCE`, `STOP_MAINTENANCE`,
//! `DRAIN_AGENT`, `DEACTIVATE_AGENT`, `REACTIVATE_AGENT`) parsed into
//! [`OperatorCall`]s with registry values, and the legacy endpoints
//! (`/master/maintenance/schedule` GET and POST,
//! `/master/maintenance/status`, `POST /master/machine/down|up` with
//! JSON bodies as Mesos takes them) parsed into the same calls, so they
//! are authorized and carried out alike.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keel_api::mesos::{Id, Nanos, bounded};
use keel_api::operator::maintenance::{
    AgentRef, ClusterStatus, DrainAgent, DrainingMachine, InverseOfferStatus, MachineId, Machines,
    MaintenanceSchedule, Schedule, Window as ApiWindow,
};
use keel_api::operator::{GetMaintenanceStatus, Response as Answer};

use super::error::ApiError as Rejection;
use super::operator::OperatorCall;
use super::operator_body::{self as body, RawCall, bad};
use super::plain;
use crate::auth::Caller;
use crate::core::{Master, MasterError};
use crate::engine::InverseAnswer;
use crate::registry::{Machine, MaintenanceCommand, Registry, RegistryError, Window};

fn machine(m: &MachineId) -> Machine {
    Machine::new(m.hostname.as_deref(), m.ip.as_deref())
}

fn machine_id(m: &Machine) -> MachineId {
    let set = |s: &str| (!s.is_empty()).then(|| s.to_string());
    MachineId {
        hostname: set(&m.hostname),
        ip: set(&m.ip),
    }
}

/// A schedule as the registry keeps it.
pub fn windows(s: &Schedule) -> Vec<Window> {
    s.windows
        .iter()
        .map(|w| Window {
            machines: w.machine_ids.iter().map(machine).collect(),
            start_ns: w.unavailability.start.nanoseconds,
            duration_ns: w.unavailability.duration.map(|d| d.nanoseconds),
        })
        .collect()
}

/// The registry's schedule as the APIs show it.
pub fn schedule(r: &Registry) -> Schedule {
    Schedule {
        windows: r
            .maintenance()
            .windows
            .iter()
            .map(|w| ApiWindow {
                machine_ids: w.machines.iter().map(machine_id).collect(),
                unavailability: crate::engine::unavailability(w),
            })
            .collect(),
    }
}

fn nanos(unix: f64) -> Nanos {
    Nanos {
        nanoseconds: (unix * 1e9) as i64,
    }
}

/// `ClusterStatus`: scheduled machines not down, each with the answers
/// of the frameworks asked about its agents; the machines DOWN.
pub fn cluster_status(r: &Registry, answers: &[InverseAnswer]) -> ClusterStatus {
    let m = r.maintenance();
    let draining_machines = m
        .windows
        .iter()
        .flat_map(|w| &w.machines)
        .filter(|x| !m.down.contains(x))
        .map(|x| DrainingMachine {
            id: machine_id(x),
            statuses: answers
                .iter()
                .filter(|a| r.agent(&a.agent_id).is_some_and(|ag| x.matches(&ag.info)))
                .map(|a| InverseOfferStatus {
                    status: a.answer,
                    framework_id: Id::new(&a.framework_id),
                    timestamp: nanos(a.at),
                })
                .collect(),
        })
        .collect();
    ClusterStatus {
        draining_machines,
        down_machines: m.down.iter().map(machine_id).collect(),
    }
}

/// Parses a maintenance or drain call of type `ty`; `None` for others.
pub fn parse(ty: &str, call: &RawCall<'_>) -> Option<Result<OperatorCall, Rejection>> {
    let machines = |name: &str| {
        body::body::<Machines>(call, name).map(|b| b.machines.iter().map(machine).collect())
    };
    let agent = |name: &str| body::body::<AgentRef>(call, name).map(|b| b.agent_id.value);
    Some(match ty {
        "GET_MAINTENANCE_SCHEDULE" => Ok(OperatorCall::GetMaintenanceSchedule),
        "GET_MAINTENANCE_STATUS" => Ok(OperatorCall::GetMaintenanceStatus),
        "UPDATE_MAINTENANCE_SCHEDULE" => {
            body::body::<MaintenanceSchedule>(call, "update_maintenance_schedule")
                .map(|b| OperatorCall::UpdateMaintenanceSchedule(windows(&b.schedule)))
        }
        "START_MAINTENANCE" => machines("start_maintenance").map(OperatorCall::StartMaintenance),
        "STOP_MAINTENANCE" => machines("stop_maintenance").map(OperatorCall::StopMaintenance),
        "DRAIN_AGENT" => body::body::<DrainAgent>(call, "drain_agent").and_then(|b| {
            let max_grace_period_ns = b.max_grace_period.map(|d| d.nanos);
            if max_grace_period_ns.is_some_and(|n| n < 0) {
                return Err(bad("DRAIN_AGENT's 'max_grace_period' is negative"));
            }
            Ok(OperatorCall::DrainAgent {
                agent_id: b.agent_id.value,
                max_grace_period_ns,
                mark_gone: b.mark_gone.unwrap_or(false),
            })
        }),
        "DEACTIVATE_AGENT" => agent("deactivate_agent").map(OperatorCall::DeactivateAgent),
        "REACTIVATE_AGENT" => agent("reactivate_agent").map(OperatorCall::ReactivateAgent),
        _ => return None,
    })
}

/// The registry command a maintenance write is.
fn command(call: &OperatorCall) -> Option<MaintenanceCommand> {
    Some(match call {
        OperatorCall::UpdateMaintenanceSchedule(windows) => MaintenanceCommand::UpdateSchedule {
            windows: windows.clone(),
        },
        OperatorCall::StartMaintenance(machines) => MaintenanceCommand::Start {
            machines: machines.clone(),
        },
        OperatorCall::StopMaintenance(machines) => MaintenanceCommand::Stop {
            machines: machines.clone(),
        },
        OperatorCall::DrainAgent {
            agent_id,
            max_grace_period_ns,
            mark_gone,
        } => MaintenanceCommand::Drain {
            agent_id: agent_id.clone(),
            max_grace_period_ns: *max_grace_period_ns,
            mark_gone: *mark_gone,
        },
        OperatorCall::DeactivateAgent(agent_id) => MaintenanceCommand::Deactivate {
            agent_id: agent_id.clone(),
        },
        OperatorCall::ReactivateAgent(agent_id) => MaintenanceCommand::Reactivate {
            agent_id: agent_id.clone(),
        },
        _ => return None,
    })
}

/// A refusal as HTTP: an unknown agent is `404 Agent '<id>' not found`,
/// an invalid request 400, a store or leadership failure 503.
fn refusal(e: &MasterError) -> (StatusCode, String) {
    match e.registry_error() {
        Some(RegistryError::UnknownAgent(id)) => {
            (StatusCode::NOT_FOUND, format!("Agent '{id}' not found"))
        }
        _ if e.is_unavailable() => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        _ => (StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// Performs a maintenance write; `None` for other calls.
pub async fn mutate(
    master: &Master,
    call: &OperatorCall,
) -> Option<Result<StatusCode, (StatusCode, String)>> {
    let cmd = command(call)?;
    Some(
        master
            .maintain(cmd)
            .await
            .map(|()| StatusCode::OK)
            .map_err(|e| refusal(&e)),
    )
}

/// Answers a maintenance read; `None` for other calls.
pub fn answer(master: &Master, call: &OperatorCall) -> Option<Answer> {
    Some(match call {
        OperatorCall::GetMaintenanceSchedule => {
            Answer::GetMaintenanceSchedule(MaintenanceSchedule {
                schedule: schedule(&master.registry()),
            })
        }
        OperatorCall::GetMaintenanceStatus => {
            let (registry, answers) = master.maintenance_status();
            Answer::GetMaintenanceStatus(GetMaintenanceStatus {
                status: cluster_status(&registry, &answers),
            })
        }
        _ => return None,
    })
}

/// Which legacy endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legacy {
    Schedule,
    Status,
    Down,
    Up,
}

/// The call a legacy request asks for (a JSON body for the writes).
pub fn parse_legacy(
    which: Legacy,
    method: &Method,
    body: &[u8],
) -> Result<OperatorCall, Rejection> {
    let read = |b: &[u8]| -> Result<Vec<u8>, Rejection> {
        bounded::prepare(b, &body::LIMITS)
            .map(|t| t.into_owned())
            .map_err(|e| bad(format!("Failed to parse body into JSON: {e}")))
    };
    match (which, method == Method::POST) {
        (Legacy::Schedule, false) => Ok(OperatorCall::GetMaintenanceSchedule),
        (Legacy::Status, _) => Ok(OperatorCall::GetMaintenanceStatus),
        (Legacy::Schedule, true) => {
            let s: Schedule = bounded::from_prepared(&read(body)?)
                .map_err(|e| bad(format!("Failed to convert JSON into a Schedule: {e}")))?;
            Ok(OperatorCall::UpdateMaintenanceSchedule(windows(&s)))
        }
        (Legacy::Down | Legacy::Up, _) => {
            let list: Vec<MachineId> = bounded::from_prepared(&read(body)?).map_err(|e| {
                bad(format!(
                    "Failed to convert JSON into a list of machines: {e}"
                ))
            })?;
            let machines = list.iter().map(machine).collect();
            Ok(match which {
                Legacy::Down => OperatorCall::StartMaintenance(machines),
                _ => OperatorCall::StopMaintenance(machines),
            })
        }
    }
}

async fn legacy(
    which: Legacy,
    master: Arc<Master>,
    caller: Caller,
    method: Method,
    params: HashMap<String, String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let writes = method == Method::POST && which != Legacy::Status;
    if writes {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json");
        if !content_type.starts_with("application/json") {
            return plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Expecting a JSON body (application/json), got '{content_type}'"),
            );
        }
    } else if method != Method::GET {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Expecting GET or POST, got {method}"),
        );
    }
    let call = match parse_legacy(which, &method, &body) {
        Ok(call) => call,
        Err(e) => return e.into_response(),
    };
    if let Err(r) = super::auth::operator(&master, &caller, &call) {
        return plain(r.status, r.reason);
    }
    if let Some(result) = mutate(&master, &call).await {
        return match result {
            Ok(status) => status.into_response(),
            Err((status, reason)) => plain(status, reason),
        };
    }
    if let Err(e) = master.read_barrier().await {
        return plain(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    }
    match answer(&master, &call) {
        Some(Answer::GetMaintenanceSchedule(s)) => super::legacy::respond(&params, &s.schedule),
        Some(Answer::GetMaintenanceStatus(s)) => super::legacy::respond(&params, &s.status),
        _ => plain(StatusCode::INTERNAL_SERVER_ERROR, "not a maintenance call"),
    }
}

macro_rules! endpoint {
    ($name:ident, $which:expr) => {
        pub async fn $name(
            State(master): State<Arc<Master>>,
            Extension(caller): Extension<Caller>,
            method: Method,
            Query(params): Query<HashMap<String, String>>,
            headers: HeaderMap,
            body: axum::body::Bytes,
        ) -> Response {
            legacy($which, master, caller, method, params, headers, body).await
        }
    };
}

endpoint!(legacy_schedule, Legacy::Schedule);
endpoint!(legacy_status, Legacy::Status);
endpoint!(machine_down, Legacy::Down);
endpoint!(machine_up, Legacy::Up);

#[cfg(test)]
mod tests;
