//! ACCEPT: takes the offers, then performs each operation in order. LAUNCH
//! and LAUNCH_GROUP validate tasks against what is left of the offers and
//! send them to the agent; RESERVE, UNRESERVE, CREATE and DESTROY are
//! planned, committed to the registry, then applied to the remainder. What
//! is left goes back to the allocator with the framework's filter.

use keel_api::mesos::{self, Filters, TaskInfo, TaskState};
use keel_api::pb::{self, master_message::Msg};
use keel_api::resources::Resources;
use serde_json::Value as Json;

use super::tasks::{TaskRecord, key, master_status, notify, partition_aware};
use super::{Inner, Master, offers, unix_now};
use crate::registry::Command;
use crate::registry::roles::unreserved;
use crate::registry::volumes::Volume;
use crate::scheduler::call::Operation;
use crate::scheduler::validation::{inject_allocation_role, validate_task};

impl Master {
    /// ACCEPT. Offer problems turn every launched task into TASK_LOST /
    /// TASK_DROPPED (REASON_INVALID_OFFERS); invalid tasks into TASK_ERROR.
    pub async fn accept(
        &self,
        framework_id: &str,
        offer_ids: &[String],
        operations: Vec<Operation>,
        filters: Filters,
    ) {
        // Registry changes inside one ACCEPT are committed in order, and
        // nothing else writes in between.
        let w = self.write().await;
        let taken = {
            let mut inner = self.lock();
            match offers::take_offers(&mut inner, framework_id, offer_ids) {
                Ok(t) => t,
                Err(reason) => {
                    let state = if partition_aware(&inner, framework_id) {
                        TaskState::TASK_DROPPED
                    } else {
                        TaskState::TASK_LOST
                    };
                    for op in &operations {
                        let tasks = match op {
                            Operation::Launch { task_infos }
                            | Operation::LaunchGroup { task_infos, .. } => task_infos,
                            _ => continue,
                        };
                        for t in tasks {
                            let id = t
                                .get("task_id")
                                .and_then(|i| i.get("value"))
                                .and_then(Json::as_str)
                                .unwrap_or("");
                            let status =
                                master_status(id, None, state, "REASON_INVALID_OFFERS", &reason);
                            notify(&mut inner, framework_id, &status);
                        }
                    }
                    tracing::info!(%framework_id, %reason, "accept with invalid offers");
                    return;
                }
            }
        };
        let agent_id = taken[0].agent_id.clone();
        let role = taken[0].role.clone();
        let mut remaining = Resources::default();
        let mut volumes: Vec<Volume> = Vec::new();
        for o in &taken {
            remaining.add(&o.resources);
            volumes.extend(o.volumes.iter().cloned());
        }
        for op in operations {
            let planned = {
                let mut inner = self.lock();
                let mut ctx = LaunchCtx {
                    framework_id,
                    agent_id: &agent_id,
                    role: &role,
                    remaining: &mut remaining,
                    volumes: &mut volumes,
                };
                match op {
                    Operation::Launch { task_infos } => {
                        launch(&mut inner, &mut ctx, task_infos, None);
                        None
                    }
                    Operation::LaunchGroup {
                        executor,
                        task_infos,
                    } => {
                        launch(&mut inner, &mut ctx, task_infos, Some(executor));
                        None
                    }
                    Operation::Reserve { resources } => {
                        plan_reserve(framework_id, &agent_id, ctx.remaining, &resources, true)
                    }
                    Operation::Unreserve { resources } => {
                        plan_reserve(framework_id, &agent_id, ctx.remaining, &resources, false)
                    }
                    Operation::Create { volumes: specs } => {
                        plan_create(framework_id, &agent_id, &role, ctx.remaining, &specs)
                    }
                    Operation::Destroy { volumes: specs } => {
                        plan_destroy(framework_id, &agent_id, ctx.volumes, &specs)
                    }
                    Operation::Unsupported { kind } => {
                        tracing::warn!(%framework_id, %kind, "offer operation not supported by Keel; dropped");
                        None
                    }
                }
            };
            let Some((cmd, pending)) = planned else {
                continue;
            };
            match self.commit(&w, cmd).await {
                Ok(_) => {
                    let mut inner = self.lock();
                    let mut ctx = LaunchCtx {
                        framework_id,
                        agent_id: &agent_id,
                        role: &role,
                        remaining: &mut remaining,
                        volumes: &mut volumes,
                    };
                    finish(&mut inner, &mut ctx, pending);
                }
                Err(e) => tracing::info!(%framework_id, error = %e, "offer operation refused"),
            }
        }
        let mut inner = self.lock();
        if !remaining.is_empty() {
            inner.allocator.recover(
                framework_id,
                &agent_id,
                &role,
                &remaining,
                Some(filters.refuse_seconds()),
                unix_now(),
            );
        }
        drop(inner);
        drop(w);
        self.want_allocation();
    }
}

/// Splits a task's resources into persistent volumes and the rest.
fn split_volumes(task_json: &Json) -> (Vec<Result<Volume, String>>, Vec<Json>) {
    let mut volumes = Vec::new();
    let mut rest = Vec::new();
    for r in task_json
        .get("resources")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        match Volume::from_resource_json(r) {
            Some(v) => volumes.push(v),
            None => rest.push(r.clone()),
        }
    }
    (volumes, rest)
}

/// A task that passed validation: its JSON, parsed info, resources, and
/// the persistent volumes it uses as (role, id).
type Accepted = (Json, TaskInfo, Resources, Vec<(String, String)>);

/// What one ACCEPT's launches draw from.
struct LaunchCtx<'a> {
    framework_id: &'a str,
    agent_id: &'a str,
    role: &'a str,
    remaining: &'a mut Resources,
    /// Persistent volumes offered (or created) in this ACCEPT.
    volumes: &'a mut Vec<Volume>,
}

fn launch(
    inner: &mut Inner,
    ctx: &mut LaunchCtx<'_>,
    task_infos: Vec<Json>,
    group_executor: Option<Json>,
) {
    let (framework_id, agent_id, role) = (ctx.framework_id, ctx.agent_id, ctx.role);
    let group = group_executor.is_some();
    let mut accepted: Vec<Accepted> = Vec::new();
    let mut errors: Vec<(String, String)> = Vec::new();
    let mut budget = ctx.remaining.clone();
    let mut claimed: Vec<(String, String)> = Vec::new();
    let executor_id = group_executor.as_ref().and_then(|e| {
        e.get("executor_id")?
            .get("value")?
            .as_str()
            .map(str::to_string)
    });
    if let Some(exec) = &group_executor {
        if executor_id.is_none() {
            errors.push((String::new(), "ExecutorInfo must set 'executor_id'".into()));
        } else if let Ok(res) =
            Resources::from_v1_json(exec.get("resources").unwrap_or(&Json::Array(vec![])))
        {
            match budget.checked_sub(&res) {
                Some(left) => budget = left,
                None => errors.push((
                    String::new(),
                    "Executor uses resources not in the offers".into(),
                )),
            }
        }
    }
    for mut tj in task_infos {
        mesos::strip_nulls(&mut tj);
        let id = tj
            .get("task_id")
            .and_then(|i| i.get("value"))
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string();
        let info = match mesos::parse::<TaskInfo>(tj.clone()) {
            Ok(i) => i,
            Err(e) => {
                errors.push((id, format!("Task is malformed: {e}")));
                continue;
            }
        };
        let (vols, rest) = split_volumes(&tj);
        let mut task_volumes = Vec::new();
        let mut volume_error = None;
        for v in vols {
            match v {
                Ok(v)
                    if ctx.volumes.iter().any(|o| o.id == v.id && o.role == v.role)
                        && !claimed.iter().any(|(r, i)| r == &v.role && i == &v.id) =>
                {
                    task_volumes.push((v.role, v.id))
                }
                Ok(v) => {
                    volume_error = Some(format!(
                        "Persistent volume {} is not in the offers or already in use",
                        v.id
                    ))
                }
                Err(e) => volume_error = Some(e),
            }
        }
        if let Some(e) = volume_error {
            errors.push((id, e));
            continue;
        }
        let mut check = info.clone();
        check.resources = rest;
        if check.resources.is_empty() && !task_volumes.is_empty() {
            errors.push((
                id,
                "Task uses no resources besides persistent volumes".into(),
            ));
            continue;
        }
        let exists = |t: &str| {
            inner.tasks.live.contains_key(&key(framework_id, t))
                || accepted.iter().any(|a| a.1.task_id.value == t)
        };
        let res = match validate_task(&check, agent_id, exists, group) {
            Ok(r) => r,
            Err(e) => {
                errors.push((id, e));
                continue;
            }
        };
        let Some(left) = budget.checked_sub(&res) else {
            errors.push((
                id,
                format!("Task uses more resources ({res}) than available in the offers ({budget})"),
            ));
            continue;
        };
        if let Err(e) = inject_allocation_role(&mut tj, role) {
            errors.push((id, e));
            continue;
        }
        budget = left;
        claimed.extend(task_volumes.iter().cloned());
        accepted.push((tj, info, res, task_volumes));
    }
    // A task group is all or nothing.
    if group && !errors.is_empty() {
        let reason = errors
            .iter()
            .map(|e| e.1.clone())
            .collect::<Vec<_>>()
            .join("; ");
        for (tj, _, _, _) in &accepted {
            let id = tj["task_id"]["value"].as_str().unwrap_or("").to_string();
            errors.push((id, format!("Task group is invalid: {reason}")));
        }
        accepted.clear();
    }
    for (id, message) in errors.into_iter().filter(|e| !e.0.is_empty()) {
        tracing::info!(%framework_id, task_id = %id, %message, "invalid task");
        let status = master_status(
            &id,
            Some(agent_id),
            TaskState::TASK_ERROR,
            "REASON_TASK_INVALID",
            &message,
        );
        notify(inner, framework_id, &status);
    }
    if accepted.is_empty() {
        return;
    }
    *ctx.remaining = budget;
    let framework_info_json = inner
        .registry
        .framework(framework_id)
        .map(|f| f.info.to_string())
        .unwrap_or_default();
    let mut task_jsons = Vec::new();
    for (tj, info, res, task_volumes) in accepted {
        let k = key(framework_id, &info.task_id.value);
        task_jsons.push(tj.to_string());
        inner.tasks.live.insert(
            k,
            TaskRecord {
                framework_id: framework_id.to_string(),
                task_id: info.task_id.value.clone(),
                agent_id: agent_id.to_string(),
                executor_id: Some(
                    executor_id
                        .clone()
                        .or_else(|| info.executor.as_ref().map(|e| e.executor_id.value.clone()))
                        .unwrap_or_else(|| info.task_id.value.clone()),
                ),
                name: info.name.clone(),
                info: tj,
                resources: res,
                role: role.to_string(),
                state: TaskState::TASK_STAGING,
                statuses: Vec::new(),
                pending_ack: None,
                volumes: task_volumes,
            },
        );
    }
    let msg = Msg::LaunchTasks(pb::LaunchTasks {
        framework_id: framework_id.to_string(),
        framework_info_json,
        task_info_json: task_jsons,
        executor_info_json: group_executor.map(|e| e.to_string()).unwrap_or_default(),
    });
    if !Master::send_to_agent(inner, agent_id, msg) {
        tracing::warn!(%framework_id, %agent_id, "launch could not be sent: agent not connected");
    }
}

/// A registry change planned inside an ACCEPT, applied to the offer's
/// remainder once committed.
enum Pending {
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
fn plan_reserve(
    framework_id: &str,
    agent_id: &str,
    remaining: &Resources,
    resources: &[Json],
    reserve: bool,
) -> Option<(Command, Pending)> {
    let Ok(rs) = Resources::from_v1_json(&Json::Array(resources.to_vec())) else {
        tracing::info!(%framework_id, "(un)reserve with invalid resources dropped");
        return None;
    };
    let (from, to) = if reserve {
        (unreserved(&rs), rs.clone())
    } else {
        (rs.clone(), unreserved(&rs))
    };
    if !remaining.contains(&from) {
        tracing::info!(%framework_id, %rs, "(un)reserve of resources not in the offer dropped");
        return None;
    }
    let agent_id = agent_id.to_string();
    let cmd = if reserve {
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
    Some((cmd, Pending::Convert { from, to }))
}

/// CREATE: reserved disk of the offer's role becomes persistent volumes,
/// usable by LAUNCHes later in the same ACCEPT and offered back afterwards.
fn plan_create(
    framework_id: &str,
    agent_id: &str,
    role: &str,
    remaining: &Resources,
    specs: &[Json],
) -> Option<(Command, Pending)> {
    let mut created = Vec::new();
    let mut disk = Resources::default();
    for spec in specs {
        match Volume::from_resource_json(spec) {
            Some(Ok(v)) if v.role == role => {
                disk.add(&v.disk());
                created.push(v);
            }
            Some(Ok(v)) => {
                tracing::info!(%framework_id, volume = %v.id, "CREATE on disk not reserved to the offer's role dropped");
                return None;
            }
            Some(Err(e)) => {
                tracing::info!(%framework_id, error = %e, "CREATE with an invalid volume dropped");
                return None;
            }
            None => {
                tracing::info!(%framework_id, "CREATE of a resource without disk.persistence dropped");
                return None;
            }
        }
    }
    if !remaining.contains(&disk) {
        tracing::info!(%framework_id, %disk, "CREATE needs reserved disk that is not in the offer");
        return None;
    }
    let cmd = Command::CreateVolumes {
        agent_id: agent_id.to_string(),
        volumes: created.clone(),
    };
    Some((cmd, Pending::Create { disk, created }))
}

/// DESTROY: offered, unused volumes go back to reserved disk.
fn plan_destroy(
    framework_id: &str,
    agent_id: &str,
    offered: &[Volume],
    specs: &[Json],
) -> Option<(Command, Pending)> {
    let mut gone = Vec::new();
    for spec in specs {
        let Some(Ok(v)) = Volume::from_resource_json(spec) else {
            tracing::info!(%framework_id, "DESTROY of something that is not a persistent volume dropped");
            return None;
        };
        let Some(known) = offered
            .iter()
            .find(|o| o.id == v.id && o.role == v.role)
            .cloned()
        else {
            tracing::info!(%framework_id, volume = %v.id, "DESTROY of a volume that is not in the offers dropped");
            return None;
        };
        gone.push(known);
    }
    let mut disk = Resources::default();
    for v in &gone {
        disk.add(&v.disk());
    }
    let cmd = Command::DestroyVolumes {
        agent_id: agent_id.to_string(),
        volumes: gone
            .iter()
            .map(|v| (v.role.clone(), v.id.clone()))
            .collect(),
    };
    Some((cmd, Pending::Destroy { disk, gone }))
}

/// The committed change, applied to the allocator and the offer's remainder.
fn finish(inner: &mut Inner, ctx: &mut LaunchCtx<'_>, pending: Pending) {
    let none = Resources::default();
    let (fw, agent, role) = (ctx.framework_id, ctx.agent_id, ctx.role);
    match pending {
        Pending::Convert { from, to } => {
            inner
                .allocator
                .update_allocation(fw, agent, role, &from, &to);
            if let Some(mut left) = ctx.remaining.checked_sub(&from) {
                left.add(&to);
                *ctx.remaining = left;
            }
        }
        Pending::Create { disk, created } => {
            inner
                .allocator
                .update_allocation(fw, agent, role, &disk, &none);
            if let Some(left) = ctx.remaining.checked_sub(&disk) {
                *ctx.remaining = left;
            }
            ctx.volumes.extend(created);
        }
        Pending::Destroy { disk, gone } => {
            inner
                .allocator
                .update_allocation(fw, agent, role, &none, &disk);
            ctx.remaining.add(&disk);
            ctx.volumes
                .retain(|o| !gone.iter().any(|g| g.id == o.id && g.role == o.role));
            // The agent deletes the data (if it is connected now).
            let msg = Msg::DestroyVolumes(pb::DestroyVolumes {
                volumes: gone
                    .iter()
                    .map(|v| pb::VolumeRef {
                        role: v.role.clone(),
                        id: v.id.clone(),
                    })
                    .collect(),
            });
            if !Master::send_to_agent(inner, agent, msg) {
                tracing::warn!(agent_id = %agent, "destroyed volumes' data stays: agent not connected");
            }
        }
    }
}
