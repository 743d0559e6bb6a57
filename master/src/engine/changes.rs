//! The registry-changing operations of an ACCEPT (RESERVE, UNRESERVE,
//! CREATE, DESTROY): planned against what is left of the offers, committed
//! by the shell, then applied to the remainder and the allocator.

use std::collections::VecDeque;

use keel_api::mesos::{Filters, Resource};
use keel_api::resources::Resources;
use keel_api::scheduler::Operation;

use super::{Engine, Invalid, ToAgent};
use crate::registry::Command;
use crate::registry::roles::unreserved;
use crate::registry::volumes::Volume;

/// An ACCEPT in progress.
#[derive(Debug)]
pub struct AcceptRun {
    pub(super) framework_id: String,
    pub(super) agent_id: String,
    pub(super) role: String,
    /// What is left of the offers.
    pub(super) remaining: Resources,
    /// Persistent volumes offered (or created) in this ACCEPT.
    pub(super) volumes: Vec<Volume>,
    pub(super) filters: Filters,
    pub(super) operations: VecDeque<Operation>,
    /// The registry change being committed, and its operation's id.
    pub(super) pending: Option<(Pending, Option<super::operations::OpRef>)>,
}

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
