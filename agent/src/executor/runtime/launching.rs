//! Starting tasks: from `LaunchTasks` to a checkpoint and a supervisor per
//! task, or a TASK_FAILED for what cannot be started.

use std::path::PathBuf;

use keel_api::mesos::TaskState;
use keel_api::resources::Resources;
use tokio::sync::mpsc;

use super::{Phase, Runtime, Task};
use crate::executor::checkpoint::log::UpdateLog;
use crate::executor::checkpoint::{self, ContainerCheckpoint, MetaDir};
use crate::executor::health::HealthCheck;
use crate::executor::hooks::{ContainerIsolation, TaskContext};
use crate::executor::launch::{LaunchRequest, ParsedTask};
use crate::executor::launcher::ProcessLauncher;
use crate::executor::supervisor::{Start, Supervisor};
use crate::executor::task::{TaskDescription, TaskSpec};
use crate::executor::updates::TaskKey;
use crate::executor::{command, sandbox, status, users, volumes};
use crate::isolation::cgroups::io::{self, Bandwidth};
use crate::isolation::cgroups::{CgroupPaths, leaf_name};
use crate::isolation::network::{self, NetworkAttachment};
use crate::isolation::{self, Plan};

/// Whether a `ports` resource value holds `port`.
fn value_has_port(v: &keel_api::resources::Value, port: u16) -> bool {
    match v {
        keel_api::resources::Value::Ranges(ranges) => ranges
            .iter()
            .any(|r| (r.begin..=r.end).contains(&u64::from(port))),
        _ => false,
    }
}

/// Resources of a TaskInfo/ExecutorInfo (unreadable ones count as none).
pub(super) fn resources_of(list: &[keel_api::mesos::Resource]) -> Resources {
    Resources::from_v1(list).unwrap_or_default()
}

impl<L: ProcessLauncher> Runtime<L> {
    pub(super) fn launch(&mut self, req: LaunchRequest) {
        let fw = req.framework_id.clone();
        self.book
            .launch(&fw, req.framework.as_ref(), req.executor.as_ref());
        let killing_state = req
            .framework
            .as_ref()
            .is_some_and(|f| f.has_capability("TASK_KILLING_STATE"));
        let group = req.executor.as_ref().map(|e| e.executor_id.value.clone());
        // A task group shares one container (an existing one when its
        // executor already runs); each command task gets its own.
        let group_container = group
            .as_ref()
            .and_then(|ex| self.groups.get(&(fw.clone(), ex.clone())).cloned())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        // A task group's container is limited to what its executor and all
        // its live tasks asked for, those of earlier launches included.
        let executor_json = req
            .executor
            .as_ref()
            .map(|e| e.resources.clone())
            .unwrap_or_default();
        // Tasks refused below for their description are left out.
        let mut joining = Resources::default();
        let mut bandwidths = self.live_bandwidths(&group_container);
        for t in &req.tasks {
            if let ParsedTask::Valid(spec) = t
                && !self.tasks.contains_key(&TaskKey::new(&fw, spec.task_id()))
                && let Ok(bw) = io::from_labels(spec.labels())
                && volumes::parse(&self.config.work_dir, &spec.info().resources).is_ok()
            {
                joining.add(&resources_of(&spec.info().resources));
                bandwidths.push(bw);
            }
        }
        let mut group_total = self.live_resources(&group_container, &joining);
        group_total.add(&resources_of(&executor_json));
        let group_io = Bandwidth::combine(&bandwidths);
        for parsed in req.tasks {
            let spec = match parsed {
                ParsedTask::Valid(spec) => spec,
                ParsedTask::Invalid {
                    task_id: Some(id),
                    text,
                    message,
                } => {
                    let key = TaskKey::new(&fw, &id);
                    let executor_id = group.clone().unwrap_or(id);
                    self.reject(
                        key,
                        TaskDescription::Unreadable(text),
                        executor_id,
                        message,
                        status::REASON_TASK_INVALID,
                    );
                    continue;
                }
                ParsedTask::Invalid {
                    task_id: None,
                    message,
                    ..
                } => {
                    tracing::warn!(framework_id = %fw, %message, "dropping a task without an id");
                    continue;
                }
            };
            let key = TaskKey::new(&fw, spec.task_id());
            if self.tasks.contains_key(&key) {
                tracing::warn!(task_id = %key.task_id, "task already known, launch ignored");
                continue;
            }
            if group.is_none() && spec.info().executor.is_some() && req.executor_error.is_none() {
                self.launch_custom(&fw, req.framework.as_ref(), killing_state, spec);
                continue;
            }
            let executor_id = group.clone().unwrap_or_else(|| key.task_id.clone());
            let container_id = match &group {
                Some(_) => group_container.clone(),
                None => uuid::Uuid::new_v4().to_string(),
            };
            let agent_id = self
                .agent_id
                .clone()
                .unwrap_or_else(|| spec.info().agent_id.value.clone());
            let own_io = match io::from_labels(spec.labels()) {
                Ok(bw) => bw,
                Err(e) => {
                    self.refuse(key, typed(spec), executor_id, invalid(e));
                    continue;
                }
            };
            let volumes = match volumes::parse(&self.config.work_dir, &spec.info().resources) {
                Ok(v) => v,
                Err(e) => {
                    self.refuse(key, typed(spec), executor_id, invalid(e));
                    continue;
                }
            };
            let (resources, io) = match &group {
                Some(_) => (group_total.clone(), group_io),
                None => (resources_of(&spec.info().resources), own_io),
            };
            let mut plan = match self.plan(&resources, &io, &container_id, &key.task_id) {
                Ok(p) => p,
                Err(message) => {
                    let reason = status::REASON_CONTAINER_LAUNCH_FAILED;
                    self.reject(key, typed(spec), executor_id, message, reason);
                    continue;
                }
            };
            let user = if self.config.switch_user {
                let name = spec
                    .info()
                    .command
                    .as_ref()
                    .and_then(|c| c.user.clone())
                    .or_else(|| req.framework.as_ref().map(|f| f.user.clone()))
                    .unwrap_or_default();
                let agent_uid = rustix::process::geteuid().as_raw();
                match users::account(&self.config.passwd_root, &name, agent_uid) {
                    Ok(u) => u,
                    Err(e) => {
                        let reason = status::REASON_CONTAINER_LAUNCH_FAILED;
                        self.reject(key, typed(spec), executor_id, e.to_string(), reason);
                        continue;
                    }
                }
            } else {
                None
            };
            let health = match spec.health_check().map(HealthCheck::from_mesos).transpose() {
                Ok(h) => h,
                Err(e) => {
                    let message = format!("invalid health check: {e}");
                    let reason = status::REASON_TASK_INVALID;
                    self.reject(key, typed(spec), executor_id, message, reason);
                    continue;
                }
            };
            if !plan.0.namespaces.mount {
                for v in volumes.iter().filter(|v| v.readonly) {
                    plan.0.unenforced.push(format!(
                        "read-only volume {} (namespaces/mount: no mount namespace, linked)",
                        v.id
                    ));
                }
            }
            let network = match self.network_for(&spec, &resources, &container_id) {
                Ok(n) => n,
                Err((message, reason)) => {
                    self.reject(key, typed(spec), executor_id, message, reason);
                    continue;
                }
            };
            let container = ContainerCheckpoint {
                agent_id,
                framework_id: fw.clone(),
                executor_id: executor_id.clone(),
                container_id: container_id.clone(),
                group: group.clone(),
                killing_state,
                cgroup: plan.1.clone(),
                network,
                executor_resources: group
                    .as_ref()
                    .map_or_else(Vec::new, |_| executor_json.clone()),
                custom: None,
            };
            let prepared = if let Some(e) = &req.executor_error {
                Err(e.clone())
            } else {
                self.context(&container, &key.task_id, Some(&plan.0))
                    .map(|ctx| TaskContext {
                        user,
                        volumes,
                        ..ctx
                    })
                    .map_err(|e| e.to_string())
                    .and_then(|ctx| {
                        let command = spec.info().command.as_ref();
                        command::launch_spec(&ctx, command, &self.config.base_env)
                            .map(|spec| (ctx, spec))
                            .map_err(|e| e.to_string())
                    })
            };
            let (ctx, mut launch) = match prepared {
                Ok(p) => p,
                Err(message) => {
                    self.release_address(&container_id);
                    let reason = status::REASON_TASK_INVALID;
                    self.reject(key, typed(spec), executor_id, message, reason);
                    continue;
                }
            };
            let hostname = command::container_hostname(spec.container());
            command::contain(&mut launch, &ctx, hostname, &self.config.work_dir);
            let uris = spec
                .info()
                .command
                .as_ref()
                .map(|c| c.uris.clone())
                .unwrap_or_default();
            let description = typed(spec);
            let (dir, log, durable) = match self.checkpoint_task(&container, &key, &description) {
                Ok(c) => c,
                Err(e) => {
                    self.release_address(&container_id);
                    let message = format!("the agent cannot checkpoint the task: {e}");
                    let reason = status::REASON_CONTAINER_LAUNCH_FAILED;
                    self.reject(key, description, executor_id, message, reason);
                    continue;
                }
            };
            launch.state_dir = dir.join(checkpoint::PROCESS_DIR);
            if let Some(ex) = &group {
                self.groups
                    .insert((fw.clone(), ex.clone()), container_id.clone());
                self.group_executors
                    .insert(container_id.clone(), resources_of(&executor_json));
            }
            if let (Some(limits), Some(dir)) = (&plan.0.limits, &plan.1) {
                self.set_limits(dir, limits);
            }
            let (kills, kill_rx) = mpsc::unbounded_channel();
            self.config
                .metrics
                .tally(|t| t.launched(&key.framework_id, &executor_id));
            self.tasks.insert(
                key.clone(),
                Task {
                    description,
                    executor_id,
                    container_id: container_id.clone(),
                    group: group.clone(),
                    killing_state,
                    phase: Phase::Starting,
                    latest: None,
                    kills: Some(kills),
                    kill_requested: false,
                    unhealthy: false,
                    custom: false,
                    dir: Some(dir),
                    log: Some(log),
                },
            );
            tracing::info!(task_id = %key.task_id, framework_id = %fw,
                sandbox = %ctx.sandbox.display(), "launching task");
            let supervisor = Supervisor {
                launcher: self.launcher.clone(),
                fetcher: self.fetcher.clone(),
                health: health.map(|h| (h, self.config.helper.clone())),
                hooks: self.hooks.clone(),
                metrics: self.config.metrics.clone(),
                key: key.clone(),
                ctx,
                start: Start::Launch(Box::new(launch), uris),
                killed: false,
                events: self.events.clone(),
            };
            // The launch runs while the checkpoint is made durable: what it
            // starts dies with the machine, and no update about the task
            // leaves before the checkpoint is on disk (its events queue
            // behind this call, TASK_STARTING first).
            tokio::spawn(supervisor.run(kill_rx));
            if let Err(e) = durable.sync() {
                tracing::error!(task_id = %key.task_id, error = %e,
                    "cannot make the task's checkpoint durable; killing it");
                self.emit(&key, TaskState::TASK_STARTING, plan.0.note(), None);
                self.kill(&key, Some(0), false);
                continue;
            }
            self.emit(&key, TaskState::TASK_STARTING, plan.0.note(), None);
        }
    }

    /// Writes the container's and the task's checkpoint and opens its
    /// update log; durable once the returned [`checkpoint::Durable`] is
    /// synced, which must happen before the task's first update.
    pub(super) fn checkpoint_task(
        &self,
        container: &ContainerCheckpoint,
        key: &TaskKey,
        task: &TaskDescription,
    ) -> Result<(PathBuf, UpdateLog, checkpoint::Durable), checkpoint::CheckpointError> {
        let dir = self.meta.container_dir(container)?;
        let task_dir = MetaDir::task_dir(&dir, &key.task_id)?;
        // One durable pass for all of it (see `checkpoint::Durable`).
        let mut batch = checkpoint::Durable::default();
        if !dir.join(checkpoint::CONTAINER_FILE).exists() {
            container.write_into(&dir, &mut batch)?;
        }
        checkpoint::write_task_info_into(&task_dir, task, &mut batch)?;
        let updates = task_dir.join(checkpoint::UPDATES_FILE);
        let (log, _) = UpdateLog::open(&updates)?;
        batch.created(&updates);
        Ok((task_dir, log, batch))
    }

    /// The container's isolation and its cgroup directory; `Err` is the
    /// message of a task this agent must refuse.
    pub(super) fn plan(
        &self,
        resources: &Resources,
        io: &Bandwidth,
        container_id: &str,
        task_id: &str,
    ) -> Result<(Plan, Option<PathBuf>), String> {
        let scalar = |name| resources.has(name).then(|| resources.scalar(name));
        let plan = isolation::plan(
            &self.config.isolation,
            &self.config.host,
            self.config.limit_options,
            scalar("cpus"),
            scalar("mem"),
            io,
        )?;
        let cgroup = match (&plan.limits, &self.config.cgroups) {
            (Some(_), Some(cg)) => Some(
                cg.paths(container_id, task_id)
                    .map_err(|e| e.to_string())?
                    .container,
            ),
            _ => None,
        };
        Ok((plan, cgroup))
    }

    /// What the live tasks of `container_id` asked for, plus `joining`
    /// (a task group's executor is not included).
    pub(super) fn live_resources(&self, container_id: &str, joining: &Resources) -> Resources {
        let mut total = joining.clone();
        let live = self
            .tasks
            .values()
            .filter(|t| t.container_id == container_id && t.phase != Phase::Terminal);
        for spec in live.filter_map(Task::spec) {
            total.add(&resources_of(&spec.info().resources));
        }
        total
    }

    /// The bandwidth each live task of `container_id` asked for.
    fn live_bandwidths(&self, container_id: &str) -> Vec<Bandwidth> {
        self.tasks
            .values()
            .filter(|t| t.container_id == container_id && t.phase != Phase::Terminal)
            .filter_map(Task::spec)
            .map(|spec| io::from_labels(spec.labels()).unwrap_or_default())
            .collect()
    }

    /// Gives the container's cgroup `limits` (resized if it has some).
    pub(super) fn set_limits(
        &self,
        container: &std::path::Path,
        limits: &crate::isolation::cgroups::Limits,
    ) {
        let Some(cg) = &self.config.cgroups else {
            return;
        };
        match self.config.container_limits.set(&**cg, container, limits) {
            Ok(now) => tracing::debug!(cgroup = %container.display(), limits = ?now,
                "container limits set"),
            Err(e) => tracing::warn!(cgroup = %container.display(), error = %e,
                "cannot resize a container's cgroup"),
        }
    }

    /// Sizes a task group's container to its executor and its live tasks
    /// (after a task ended, or when adopted after a restart); a container
    /// with no live task is forgotten.
    pub(super) fn resize_container(&mut self, container_id: &str) {
        let Some(dir) = self.container_cgroup(container_id) else {
            return;
        };
        let live = self
            .tasks
            .values()
            .any(|t| t.container_id == container_id && t.phase != Phase::Terminal);
        if !live {
            self.config.container_limits.forget(&dir);
            self.group_executors.remove(container_id);
            return;
        }
        let Some(executor) = self.group_executors.get(container_id) else {
            return;
        };
        let total = self.live_resources(container_id, executor);
        let io = Bandwidth::combine(&self.live_bandwidths(container_id));
        match self.plan(&total, &io, container_id, "") {
            Ok((
                Plan {
                    limits: Some(limits),
                    ..
                },
                _,
            )) => self.set_limits(&dir, &limits),
            Ok(_) => {}
            Err(e) => tracing::warn!(container_id, error = %e, "cannot resize a container"),
        }
    }

    /// The cgroup directory of a live container, from its tasks' contexts.
    pub(super) fn container_cgroup(&self, container_id: &str) -> Option<PathBuf> {
        let cg = self.config.cgroups.as_ref()?;
        let dir = cg.paths(container_id, "").ok()?.container;
        Some(dir)
    }

    /// The container's place on the agent's network, if the task asked for
    /// one (allocated once per container); `Err`: message and reason of
    /// the refusal.
    fn network_for(
        &mut self,
        spec: &TaskSpec,
        resources: &Resources,
        container_id: &str,
    ) -> Result<Option<NetworkAttachment>, (String, &'static str)> {
        let invalid = |e: String| (e, status::REASON_TASK_INVALID);
        let Some(req) = network::request(spec.container()).map_err(|e| invalid(e.to_string()))?
        else {
            return Ok(None);
        };
        let (name, subnet) = match &self.config.network {
            Some((name, subnet)) if *name == req.name => (name.clone(), *subnet),
            other => {
                let offered = other
                    .as_ref()
                    .map_or("none".to_string(), |(n, _)| n.clone());
                let message = format!(
                    "network {:?} is not available on this agent (it offers: {offered})",
                    req.name
                );
                return Err((message, status::REASON_CONTAINER_LAUNCH_FAILED));
            }
        };
        let ports: Vec<&keel_api::resources::Value> = resources
            .iter()
            .filter(|r| r.name == "ports")
            .map(|r| &r.value)
            .collect();
        for m in &req.port_mappings {
            if !ports.iter().any(|v| value_has_port(v, m.host_port)) {
                return Err(invalid(format!(
                    "host port {} of network {name} is not among the task's ports",
                    m.host_port
                )));
            }
        }
        let ip = match self.container_ips.get(container_id) {
            Some(ip) => *ip,
            None => {
                let ipam = self
                    .ipam
                    .as_mut()
                    .ok_or_else(|| invalid("no address range".into()))?;
                let ip = ipam
                    .allocate()
                    .map_err(|e| (e.to_string(), status::REASON_CONTAINER_LAUNCH_FAILED))?;
                self.container_ips.insert(container_id.to_string(), ip);
                ip
            }
        };
        Ok(Some(NetworkAttachment {
            ip,
            prefix: subnet.prefix,
            gateway: subnet.gateway(),
            port_mappings: req.port_mappings,
        }))
    }

    /// Gives the container's address back (it has no task left).
    pub(super) fn release_address(&mut self, container_id: &str) {
        if let (Some(ip), Some(ipam)) =
            (self.container_ips.remove(container_id), self.ipam.as_mut())
        {
            ipam.release(ip);
        }
    }

    /// The task's context; `plan` is `None` for a task adopted after a
    /// restart (its limits were written when it started).
    pub(super) fn context(
        &self,
        c: &ContainerCheckpoint,
        task_id: &str,
        plan: Option<&Plan>,
    ) -> Result<TaskContext, sandbox::SandboxError> {
        let runs_dir = sandbox::runs_dir(
            &self.config.work_dir,
            &c.agent_id,
            &c.framework_id,
            &c.executor_id,
        )?;
        let run_dir = sandbox::run_dir(&runs_dir, &c.container_id)?;
        let task_sandbox = if c.group.is_some() {
            sandbox::task_dir(&run_dir, task_id)?
        } else {
            run_dir.clone()
        };
        Ok(TaskContext {
            agent_id: c.agent_id.clone(),
            framework_id: c.framework_id.clone(),
            executor_id: c.executor_id.clone(),
            container_id: c.container_id.clone(),
            task_id: task_id.to_string(),
            runs_dir,
            run_dir,
            sandbox: task_sandbox,
            isolation: ContainerIsolation {
                cgroup: c.cgroup.as_ref().map(|dir| CgroupPaths {
                    leaf: dir.join(leaf_name(task_id)),
                    container: dir.clone(),
                }),
                limits: plan.and_then(|p| p.limits.clone()).unwrap_or_default(),
                namespaces: plan.map(|p| p.namespaces).unwrap_or_default(),
                network: c.network.clone(),
            },
            user: None,
            volumes: Vec::new(),
        })
    }

    /// A task that cannot be started at all: TASK_FAILED, nothing spawned.
    pub(super) fn reject(
        &mut self,
        key: TaskKey,
        description: TaskDescription,
        executor_id: String,
        message: String,
        reason: &'static str,
    ) {
        let why = (TaskState::TASK_FAILED, reason, message);
        self.refuse(key, description, executor_id, why);
    }

    /// A task that is not started, nothing spawned; `why`: its state
    /// (TASK_FAILED, or TASK_ERROR for a task description the agent
    /// cannot accept), reason and message.
    pub(super) fn refuse(
        &mut self,
        key: TaskKey,
        description: TaskDescription,
        executor_id: String,
        why: (TaskState, &'static str, String),
    ) {
        let (state, reason, message) = why;
        if self.tasks.contains_key(&key) {
            return;
        }
        tracing::warn!(task_id = %key.task_id, %message, "task rejected");
        let container = ContainerCheckpoint {
            agent_id: self.agent_id.clone().unwrap_or_default(),
            framework_id: key.framework_id.clone(),
            executor_id: executor_id.clone(),
            container_id: uuid::Uuid::new_v4().to_string(),
            group: None,
            killing_state: false,
            cgroup: None,
            network: None,
            executor_resources: Vec::new(),
            custom: None,
        };
        let checkpoint = self
            .checkpoint_task(&container, &key, &description)
            .and_then(|(dir, log, durable)| durable.sync().map(|()| (dir, log)));
        let (dir, log) = match checkpoint {
            Ok((dir, log)) => (Some(dir), Some(log)),
            Err(e) => {
                tracing::error!(task_id = %key.task_id, error = %e, "cannot checkpoint a rejected task");
                (None, None)
            }
        };
        let task = Task {
            description,
            executor_id,
            container_id: container.container_id.clone(),
            group: None,
            killing_state: false,
            phase: Phase::Starting,
            latest: None,
            kills: None,
            kill_requested: false,
            unhealthy: false,
            custom: false,
            dir,
            log,
        };
        self.config
            .metrics
            .tally(|t| t.launched(&key.framework_id, &task.executor_id));
        self.tasks.insert(key.clone(), task);
        self.emit(&key, state, Some(message), Some(reason));
    }
}

fn typed(spec: Box<TaskSpec>) -> TaskDescription {
    TaskDescription::Typed(spec)
}

/// TASK_ERROR for a task description this agent cannot accept.
fn invalid(e: impl std::fmt::Display) -> (TaskState, &'static str, String) {
    (
        TaskState::TASK_ERROR,
        status::REASON_TASK_INVALID,
        e.to_string(),
    )
}
