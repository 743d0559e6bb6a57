//! The registry-changing operations of an ACCEPT (RESERVE, UNRESERVE,
//! CREATE, DESTROY) and operation feedback: an operation with an `id` is
//! answered with UPDATE_OPERATION_STATUS (carrying a uuid the framework
//! acknowledges with ACKNOWLEDGE_OPERATION_STATUS), and RECONCILE_OPERATIONS
//! answers with the latest status of each operation asked about.

use std::collections::{HashMap, VecDeque};

use keel_api::mesos::{Id, Resource};
use keel_api::resources::Resources;
use keel_api::scheduler::{Event, OperationStatus};

use super::accept::AcceptRun;
use super::{Engine, Invalid, ToAgent};
use crate::registry::Command;
use crate::registry::roles::unreserved;
use crate::registry::volumes::Volume;

/// Operations remembered per framework for reconciliation.
const KEPT_PER_FRAMEWORK: usize = 1000;

/// A registry change planned inside an ACCEPT, applied to the offer's
/// remainder once committed.
#[derive(Debug)]
pub(super) enum Pending {
    /// RESERVE / UNRESERVE: `from` becomes `to` inside the allocation.
    Convert { from: Resources, to: Resources },
    /// CREATE: `disk` becomes the `created` volumes.
    Create {
        disk: Resources,
        created: Vec<Volume>,
    },
    /// DESTROY: the `gone` volumes become `disk` again.
    Destroy { disk: Resources, gone: Vec<Volume> },
}

#[derive(Debug, Clone)]
struct Record {
    operation_id: String,
    agent_id: Option<String>,
    state: String,
    message: Option<String>,
    /// Until acknowledged.
    uuid: Option<Vec<u8>>,
}

/// Recent operations with an id, per framework.
#[derive(Default)]
pub(super) struct OperationLog {
    by_framework: HashMap<String, VecDeque<Record>>,
    next_uuid: u64,
}

impl OperationLog {
    /// A fresh 16-byte uuid: a counter and a fixed tag (unique within the
    /// leader's term, which is all an acknowledgement needs).
    fn uuid(&mut self) -> Vec<u8> {
        self.next_uuid += 1;
        let mut bytes = self.next_uuid.to_be_bytes().to_vec();
        bytes.extend_from_slice(b"keel-op\x01");
        bytes
    }
}

fn status_of(r: &Record) -> OperationStatus {
    OperationStatus {
        operation_id: Some(Id::new(&r.operation_id)),
        state: r.state.clone(),
        message: r.message.clone(),
        converted_resources: Vec::new(),
        uuid: r.uuid.as_ref().map(|u| keel_api::scheduler::Uuid {
            value: keel_api::mesos::base64_encode(u),
        }),
        agent_id: r.agent_id.as_ref().map(Id::new),
    }
}

/// UPDATE_OPERATION_STATUS for an operation that has an `id` (nothing
/// for one without).
pub(super) fn report(
    e: &mut Engine,
    framework_id: &str,
    id: Option<&str>,
    agent_id: Option<&str>,
    state: &str,
    message: &str,
) {
    let Some(id) = id else {
        return;
    };
    let record = Record {
        operation_id: id.to_string(),
        agent_id: agent_id.map(str::to_string),
        state: state.to_string(),
        message: (!message.is_empty()).then(|| message.to_string()),
        uuid: Some(e.operations.uuid()),
    };
    let log = e
        .operations
        .by_framework
        .entry(framework_id.to_string())
        .or_default();
    log.retain(|r| r.operation_id != id);
    log.push_back(record.clone());
    while log.len() > KEPT_PER_FRAMEWORK {
        log.pop_front();
    }
    e.send_framework(
        framework_id,
        Event::UpdateOperationStatus(status_of(&record)),
    );
}

impl Engine {
    /// ACKNOWLEDGE_OPERATION_STATUS: the status with that uuid needs no
    /// more resending.
    pub fn acknowledge_operation(&mut self, framework_id: &str, operation_id: &str, uuid: &[u8]) {
        if let Some(r) = self
            .operations
            .by_framework
            .get_mut(framework_id)
            .and_then(|log| log.iter_mut().find(|r| r.operation_id == operation_id))
            && r.uuid.as_deref() == Some(uuid)
        {
            r.uuid = None;
        }
    }

    /// RECONCILE_OPERATIONS: the latest status of each operation listed
    /// (OPERATION_UNKNOWN for one the master does not know), or of every
    /// operation still unacknowledged when none is listed.
    pub fn reconcile_operations(&mut self, framework_id: &str, operation_ids: &[String]) {
        let log = self.operations.by_framework.get(framework_id);
        let statuses: Vec<OperationStatus> = if operation_ids.is_empty() {
            log.into_iter()
                .flatten()
                .filter(|r| r.uuid.is_some())
                .map(status_of)
                .collect()
        } else {
            operation_ids
                .iter()
                .map(
                    |id| match log.and_then(|l| l.iter().find(|r| &r.operation_id == id)) {
                        Some(r) => status_of(r),
                        None => OperationStatus {
                            operation_id: Some(Id::new(id)),
                            state: "OPERATION_UNKNOWN".into(),
                            message: Some("Reconciliation: operation is unknown".into()),
                            converted_resources: Vec::new(),
                            uuid: None,
                            agent_id: None,
                        },
                    },
                )
                .collect()
        };
        for s in statuses {
            self.send_framework(framework_id, Event::UpdateOperationStatus(s));
        }
    }
}

/// RESERVE / UNRESERVE of resources in the offer's remainder.
pub(super) fn plan_reserve(
    run: &AcceptRun,
    resources: &[Resource],
    reserve: bool,
) -> Result<(Command, Pending), Invalid> {
    let rs =
        Resources::from_v1(resources).map_err(|e| Invalid(format!("invalid resources: {e}")))?;
    let (from, to) = if reserve {
        (unreserved(&rs), rs.clone())
    } else {
        (rs.clone(), unreserved(&rs))
    };
    if !run.remaining.contains(&from) {
        return Err(Invalid(format!("{rs} is not in the offers")));
    }
    let agent_id = run.agent_id.clone();
    let command = if reserve {
        Command::ReserveResources {
            agent_id,
            resources: rs,
        }
    } else {
        Command::UnreserveResources {
            agent_id,
            resources: rs,
        }
    };
    Ok((command, Pending::Convert { from, to }))
}

/// CREATE: reserved disk of the offer's role becomes persistent volumes,
/// usable by LAUNCHes later in the same ACCEPT and offered back afterwards.
pub(super) fn plan_create(
    run: &AcceptRun,
    specs: &[Resource],
) -> Result<(Command, Pending), Invalid> {
    let mut created = Vec::new();
    let mut disk = Resources::default();
    for spec in specs {
        let v = match Volume::from_resource(spec) {
            Some(Ok(v)) => v,
            Some(Err(e)) => return Err(Invalid(e.to_string())),
            None => return Err("CREATE of a resource without disk.persistence".into()),
        };
        if v.role != run.role {
            return Err(Invalid(format!(
                "volume {}: CREATE needs disk reserved to the offer's role {}",
                v.id, run.role
            )));
        }
        disk.add(&v.disk());
        created.push(v);
    }
    if !run.remaining.contains(&disk) {
        return Err(Invalid(format!(
            "CREATE needs reserved disk {disk} that is not in the offers"
        )));
    }
    let command = Command::CreateVolumes {
        agent_id: run.agent_id.clone(),
        volumes: created.clone(),
    };
    Ok((command, Pending::Create { disk, created }))
}

/// DESTROY: offered, unused volumes go back to reserved disk.
pub(super) fn plan_destroy(
    run: &AcceptRun,
    specs: &[Resource],
) -> Result<(Command, Pending), Invalid> {
    let mut gone = Vec::new();
    for spec in specs {
        let Some(Ok(v)) = Volume::from_resource(spec) else {
            return Err("DESTROY of something that is not a persistent volume".into());
        };
        let known = run
            .volumes
            .iter()
            .find(|o| o.id == v.id && o.role == v.role)
            .cloned()
            .ok_or_else(|| Invalid(format!("volume {} is not in the offers", v.id)))?;
        gone.push(known);
    }
    let mut disk = Resources::default();
    for v in &gone {
        disk.add(&v.disk());
    }
    let command = Command::DestroyVolumes {
        agent_id: run.agent_id.clone(),
        volumes: gone
            .iter()
            .map(|v| (v.role.clone(), v.id.clone()))
            .collect(),
    };
    Ok((command, Pending::Destroy { disk, gone }))
}

/// The committed change, applied to the allocator and the offer's remainder.
pub(super) fn finish(e: &mut Engine, run: &mut AcceptRun, pending: Pending) {
    let none = Resources::default();
    let (fw, agent, role) = (&run.framework_id, &run.agent_id, &run.role);
    match pending {
        Pending::Convert { from, to } => {
            e.allocator.update_allocation(fw, agent, role, &from, &to);
            if let Some(mut left) = run.remaining.checked_sub(&from) {
                left.add(&to);
                run.remaining = left;
            }
        }
        Pending::Create { disk, created } => {
            e.allocator.update_allocation(fw, agent, role, &disk, &none);
            if let Some(left) = run.remaining.checked_sub(&disk) {
                run.remaining = left;
            }
            run.volumes.extend(created);
        }
        Pending::Destroy { disk, gone } => {
            e.allocator.update_allocation(fw, agent, role, &none, &disk);
            run.remaining.add(&disk);
            run.volumes
                .retain(|o| !gone.iter().any(|g| g.id == o.id && g.role == o.role));
            // The agent deletes the data (if it is connected now).
            let volumes = gone
                .iter()
                .map(|v| (v.role.clone(), v.id.clone()))
                .collect();
            let agent = agent.clone();
            if !e.send_agent(&agent, ToAgent::DestroyVolumes { volumes }) {
                tracing::warn!(agent_id = %agent, "destroyed volumes' data stays: agent not connected");
            }
        }
    }
}
