//! ACCEPT: takes the offers, then performs each operation in order.
//! LAUNCH and LAUNCH_GROUP validate tasks against what is left of the
//! offers and send them to the agent; RESERVE, UNRESERVE, CREATE and
//! DESTROY are planned, committed to the registry, then applied to the
//! remainder (`operations.rs`). What is left goes back to the allocator
//! with the framework's filter.
//!
//! The shell drives it: [`Engine::accept_begin`], then
//! [`Engine::accept_next`] until it returns no command (committing each
//! and reporting with [`Engine::accept_committed`]), then
//! [`Engine::accept_end`].

use keel_api::mesos::{ExecutorInfo, Filters, Resource, TaskInfo, TaskState};
use keel_api::resources::Resources;
use keel_api::scheduler::{Operation, OperationKind};

use super::changes::{self, AcceptRun};
use super::operations;
use super::tasks::{TaskRecord, key, master_status};
use super::validation::{inject_allocation_role, validate_task};
use super::{Engine, Invalid, Now, ToAgent};
use crate::registry::Command;
use crate::registry::volumes::Volume;

impl Engine {
    /// Takes the offers. Offer problems turn every launched task into
    /// TASK_LOST / TASK_DROPPED (REASON_INVALID_OFFERS) and other
    /// operations with an id into OPERATION_DROPPED; `None` then.
    pub fn accept_begin(
        &mut self,
        framework_id: &str,
        offer_ids: &[String],
        operations: Vec<Operation>,
        filters: Filters,
        now: Now,
    ) -> Option<AcceptRun> {
        let taken = match super::offers::take_offers(self, framework_id, offer_ids) {
            Ok(t) => t,
            Err(reason) => {
                self.refuse_operations(framework_id, &operations, &reason, now);
                tracing::info!(%framework_id, %reason, "accept with invalid offers");
                return None;
            }
        };
        let mut remaining = Resources::default();
        let mut volumes = Vec::new();
        for o in &taken {
            let waited = now.instant.saturating_duration_since(o.created);
            self.metering
                .sample(super::counters::Sample::OfferToAccept(waited));
            remaining.add(&o.resources);
            volumes.extend(o.volumes.iter().cloned());
        }
        Some(AcceptRun {
            framework_id: framework_id.to_string(),
            agent_id: taken[0].agent_id.clone(),
            role: taken[0].role.clone(),
            remaining,
            volumes,
            filters,
            operations: operations.into(),
            pending: None,
        })
    }

    fn refuse_operations(&mut self, framework_id: &str, ops: &[Operation], reason: &str, now: Now) {
        let state = if self.partition_aware(framework_id) {
            TaskState::TASK_DROPPED
        } else {
            TaskState::TASK_LOST
        };
        for op in ops {
            match &op.kind {
                OperationKind::Launch { task_infos: tasks }
                | OperationKind::LaunchGroup { tasks, .. } => {
                    for t in tasks {
                        let status = master_status(
                            &t.task_id.value,
                            None,
                            state,
                            "REASON_INVALID_OFFERS",
                            reason,
                            now,
                        );
                        self.metering.counters.task_ended(state);
                        self.notify(framework_id, status);
                    }
                }
                _ => operations::report(
                    self,
                    framework_id,
                    operations::OpRef::of(op).as_ref(),
                    None,
                    "OPERATION_DROPPED",
                    reason,
                ),
            }
        }
    }

    /// Performs operations up to the next registry change, which it
    /// returns for committing; `None` when every operation is done.
    pub fn accept_next(&mut self, run: &mut AcceptRun, now: Now) -> Option<Command> {
        while let Some(op) = run.operations.pop_front() {
            let id = operations::OpRef::of(&op);
            let planned = match op.kind {
                OperationKind::Launch { task_infos } => {
                    self.launch(run, task_infos, None, now);
                    continue;
                }
                OperationKind::LaunchGroup { executor, tasks } => {
                    self.launch(run, tasks, Some(*executor), now);
                    continue;
                }
                OperationKind::Reserve { resources } => {
                    changes::plan_reserve(run, &resources, true)
                }
                OperationKind::Unreserve { resources } => {
                    changes::plan_reserve(run, &resources, false)
                }
                OperationKind::Create { volumes } => changes::plan_create(run, &volumes),
                OperationKind::Destroy { volumes } => changes::plan_destroy(run, &volumes),
                OperationKind::Unsupported { kind } => Err(Invalid(format!(
                    "offer operation {kind} is not supported by Keel"
                ))),
            };
            match planned {
                Ok((command, pending)) => match self.registry.validate(&command) {
                    Ok(()) => {
                        run.pending = Some((pending, id));
                        return Some(command);
                    }
                    Err(e) => self.operation_refused(run, id.as_ref(), &e.to_string()),
                },
                Err(Invalid(reason)) => self.operation_refused(run, id.as_ref(), &reason),
            }
        }
        None
    }

    fn operation_refused(&mut self, run: &AcceptRun, id: Option<&operations::OpRef>, reason: &str) {
        tracing::info!(framework_id = %run.framework_id, %reason, "offer operation refused");
        operations::report(
            self,
            &run.framework_id,
            id,
            Some(&run.agent_id),
            "OPERATION_ERROR",
            reason,
        );
    }

    /// The registry change [`Engine::accept_next`] returned was committed
    /// (`Ok`) or not (`Err` with the reason).
    pub fn accept_committed(&mut self, run: &mut AcceptRun, outcome: Result<(), Invalid>) {
        let Some((pending, id)) = run.pending.take() else {
            return;
        };
        match outcome {
            Ok(()) => {
                changes::finish(self, run, pending);
                operations::report(
                    self,
                    &run.framework_id,
                    id.as_ref(),
                    Some(&run.agent_id),
                    "OPERATION_FINISHED",
                    "",
                );
            }
            Err(Invalid(reason)) => {
                tracing::info!(framework_id = %run.framework_id, %reason, "offer operation not recorded");
                operations::report(
                    self,
                    &run.framework_id,
                    id.as_ref(),
                    Some(&run.agent_id),
                    "OPERATION_FAILED",
                    &reason,
                );
            }
        }
    }

    /// What is left of the offers goes back, filtered for the
    /// framework's `refuse_seconds`.
    pub fn accept_end(&mut self, run: AcceptRun, now: Now) {
        if !run.remaining.is_empty() {
            self.allocator.recover(
                &run.framework_id,
                &run.agent_id,
                &run.role,
                &run.remaining,
                Some(run.filters.refuse_seconds()),
                now.unix,
            );
        }
        self.allocate_soon();
    }

    /// LAUNCH (`group_executor` None) or LAUNCH_GROUP: valid tasks draw
    /// from the remainder and go to the agent; invalid ones get TASK_ERROR
    /// (a task group is all or nothing).
    fn launch(
        &mut self,
        run: &mut AcceptRun,
        tasks: Vec<TaskInfo>,
        group_executor: Option<ExecutorInfo>,
        now: Now,
    ) {
        let mut budget = run.remaining.clone();
        let (accepted, errors) =
            self.check_launch(run, tasks, group_executor.as_ref(), &mut budget);
        for (id, message) in errors {
            tracing::info!(framework_id = %run.framework_id, task_id = %id, %message, "invalid task");
            let status = master_status(
                &id,
                Some(&run.agent_id),
                TaskState::TASK_ERROR,
                "REASON_TASK_INVALID",
                &message,
                now,
            );
            self.metering.counters.task_ended(TaskState::TASK_ERROR);
            self.notify(&run.framework_id, status);
        }
        if accepted.is_empty() {
            return;
        }
        run.remaining = budget;
        if let Some(exec) = &group_executor
            && !self.executor_on(&run.agent_id, &run.framework_id, &exec.executor_id.value)
        {
            self.executor_launched(&run.agent_id, &run.framework_id, exec.clone());
        }
        let executor_id = group_executor.as_ref().map(|e| e.executor_id.value.clone());
        let mut infos = Vec::with_capacity(accepted.len());
        for a in accepted {
            let task_executor = executor_id
                .clone()
                .or_else(|| {
                    a.info
                        .executor
                        .as_ref()
                        .map(|e| e.executor_id.value.clone())
                })
                .unwrap_or_else(|| a.info.task_id.value.clone());
            if let Some(exec) = &a.info.executor
                && !self.executor_on(&run.agent_id, &run.framework_id, &exec.executor_id.value)
            {
                self.executor_launched(&run.agent_id, &run.framework_id, exec.clone());
            }
            infos.push(a.info.clone());
            let k = key(&run.framework_id, &a.info.task_id.value);
            self.metering.accepted(k.clone(), now.instant);
            self.tasks.insert(
                k.clone(),
                TaskRecord {
                    framework_id: run.framework_id.clone(),
                    task_id: a.info.task_id.value.clone(),
                    agent_id: run.agent_id.clone(),
                    executor_id: Some(task_executor),
                    name: a.info.name.clone(),
                    info: a.info,
                    resources: a.resources,
                    role: run.role.clone(),
                    state: TaskState::TASK_STAGING,
                    statuses: Vec::new(),
                    pending_ack: None,
                    volumes: a.volumes,
                    kill: None,
                },
            );
            self.observe_task_added(&k);
        }
        let framework_info = self
            .frameworks
            .get(&run.framework_id)
            .map(|f| f.info.clone());
        let message = ToAgent::Launch(Box::new(super::Launch {
            framework_id: run.framework_id.clone(),
            framework_info,
            tasks: infos,
            executor: group_executor,
        }));
        if !self.send_agent(&run.agent_id, message.clone()) {
            let agent_id = run.agent_id.clone();
            self.agent_send_failed(&agent_id, message, now);
        }
    }

    /// The tasks of one launch that may run (drawing from `budget`), and
    /// (task id, reason) for the others. A task group is all or nothing.
    fn check_launch(
        &self,
        run: &AcceptRun,
        tasks: Vec<TaskInfo>,
        group_executor: Option<&ExecutorInfo>,
        budget: &mut Resources,
    ) -> (Vec<Accepted>, Vec<(String, String)>) {
        let group = group_executor.is_some();
        // Problems of the group itself (no task id) fail every task in it.
        let mut errors: Vec<(String, String)> = Vec::new();
        if let Some(exec) = group_executor {
            let running =
                self.executor_on(&run.agent_id, &run.framework_id, &exec.executor_id.value);
            if exec.executor_id.value.is_empty() {
                errors.push((String::new(), "ExecutorInfo must set 'executor_id'".into()));
            } else if running {
                // A running executor's resources are already held.
            } else if let Ok(res) = Resources::from_v1(&exec.resources) {
                match budget.checked_sub(&res) {
                    Some(left) => *budget = left,
                    None => errors.push((
                        String::new(),
                        "Executor uses resources not in the offers".into(),
                    )),
                }
            }
        }
        let mut accepted: Vec<Accepted> = Vec::new();
        for task in tasks {
            let id = task.task_id.value.clone();
            match self.check_task(run, task, &accepted, budget, group) {
                Ok(a) => accepted.push(a),
                Err(e) => errors.push((id, e.0)),
            }
        }
        if group && !errors.is_empty() {
            let reason = errors
                .iter()
                .map(|e| e.1.clone())
                .collect::<Vec<_>>()
                .join("; ");
            for a in accepted.drain(..) {
                errors.push((
                    a.info.task_id.value.clone(),
                    format!("Task group is invalid: {reason}"),
                ));
            }
        }
        errors.retain(|e| !e.0.is_empty());
        (accepted, errors)
    }

    /// One task of a launch: its volumes must be in the offers and not
    /// claimed, the rest valid and within `budget` (which it draws from).
    fn check_task(
        &self,
        run: &AcceptRun,
        mut info: TaskInfo,
        accepted: &[Accepted],
        budget: &mut Resources,
        group: bool,
    ) -> Result<Accepted, Invalid> {
        let mut volumes = Vec::new();
        let mut rest: Vec<Resource> = Vec::new();
        for r in &info.resources {
            match Volume::from_resource(r) {
                None => rest.push(r.clone()),
                Some(Err(e)) => return Err(Invalid(e.to_string())),
                Some(Ok(v)) => {
                    let offered = run.volumes.iter().any(|o| o.id == v.id && o.role == v.role);
                    let claimed = accepted
                        .iter()
                        .flat_map(|a| &a.volumes)
                        .any(|(r, i)| r == &v.role && i == &v.id);
                    if !offered || claimed {
                        return Err(Invalid(format!(
                            "Persistent volume {} is not in the offers or already in use",
                            v.id
                        )));
                    }
                    volumes.push((v.role, v.id));
                }
            }
        }
        if rest.is_empty() && !volumes.is_empty() {
            return Err("Task uses no resources besides persistent volumes".into());
        }
        let framework_id = run.framework_id.as_str();
        let exists = |t: &str| {
            self.tasks.contains(&key(framework_id, t))
                || accepted.iter().any(|a| a.info.task_id.value == t)
        };
        let resources = validate_task(&info, &rest, &run.agent_id, exists, group)?;
        let mut left = budget.checked_sub(&resources).ok_or_else(|| {
            Invalid(format!(
                "Task uses more resources ({resources}) than available in the offers ({budget})"
            ))
        })?;
        inject_allocation_role(&mut info, &run.role)?;
        // A custom executor's first task brings the executor's resources.
        if let Some(exec) = info.executor.as_mut() {
            let id = exec.executor_id.value.clone();
            if id.is_empty() {
                return Err("ExecutorInfo must set 'executor_id'".into());
            }
            if exec.command.is_none() {
                return Err(Invalid(format!("Executor '{id}' must have a CommandInfo")));
            }
            let starting = !self.executor_on(&run.agent_id, framework_id, &id)
                && !accepted.iter().any(|a| {
                    a.info
                        .executor
                        .as_ref()
                        .is_some_and(|e| e.executor_id.value == id)
                });
            for r in &mut exec.resources {
                if r.allocation_info.is_none() {
                    r.allocation_info =
                        Some(keel_api::resources::v1::AllocationInfo::role(&run.role));
                }
            }
            if starting {
                let own = Resources::from_v1(&exec.resources)
                    .map_err(|e| Invalid(format!("Executor uses invalid resources: {e}")))?;
                left = left.checked_sub(&own).ok_or_else(|| {
                    Invalid(format!(
                        "Executor uses more resources ({own}) than available in the offers"
                    ))
                })?;
            }
        }
        *budget = left;
        Ok(Accepted {
            info,
            resources,
            volumes,
        })
    }
}

/// A task that passed validation.
struct Accepted {
    info: TaskInfo,
    resources: Resources,
    /// Persistent volumes it uses, as (role, id).
    volumes: Vec<(String, String)>,
}
