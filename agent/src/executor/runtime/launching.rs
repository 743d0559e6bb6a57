//! Starting tasks: from `LaunchTasks` to a checkpoint and a supervisor per
//! task, or a TASK_FAILED for what cannot be started.

use std::path::PathBuf;

use keel_api::mesos::{TaskInfo, TaskState};
use keel_api::pb;
use keel_api::resources::Resources;
use tokio::sync::mpsc;

use super::{Phase, Runtime, Task};
use crate::executor::checkpoint::log::UpdateLog;
use crate::executor::checkpoint::{self, ContainerCheckpoint, MetaDir};
use crate::executor::hooks::{ContainerIsolation, TaskContext};
use crate::executor::launch::{self, ParsedTask};
use crate::executor::launcher::ProcessLauncher;
use crate::executor::supervisor::{Start, Supervisor};
use crate::executor::updates::TaskKey;
use crate::executor::{command, health, sandbox, status, users};
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
fn resources_of(json: &[serde_json::Value]) -> Resources {
    Resources::from_v1_json(&serde_json::Value::Array(json.to_vec())).unwrap_or_default()
}

impl<L: ProcessLauncher> Runtime<L> {
    pub(super) fn launch(&mut self, msg: &pb::LaunchTasks) {
        let req = launch::parse(msg);
        let fw = req.framework_id.clone();
        let killing_state = req
            .framework
            .as_ref()
            .is_some_and(|f| f.has_capability("TASK_KILLING_STATE"));
        let group = req.executor.as_ref().map(|e| e.executor_id.value.clone());
        let container_id = group
            .as_ref()
            .and_then(|ex| self.groups.get(&(fw.clone(), ex.clone())).cloned())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        // A task group's container is limited to what all its tasks and
        // its executor asked for.
        let mut group_total = req
            .executor
            .as_ref()
            .map(|e| resources_of(&e.resources))
            .unwrap_or_default();
        for t in &req.tasks {
            if let ParsedTask::Valid { info, .. } = t {
                group_total.add(&resources_of(&info.resources));
            }
        }
        for parsed in req.tasks {
            let (info, json) = match parsed {
                ParsedTask::Valid { info, json } => (info, json),
                ParsedTask::Invalid {
                    task_id: Some(id),
                    json,
                    message,
                } => {
                    let key = TaskKey::new(&fw, &id);
                    let executor_id = group.clone().unwrap_or(id);
                    self.reject(
                        key,
                        None,
                        json,
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
            let key = TaskKey::new(&fw, &info.task_id.value);
            if self.tasks.contains_key(&key) {
                tracing::warn!(task_id = %key.task_id, "task already known, launch ignored");
                continue;
            }
            let executor_id = group.clone().unwrap_or_else(|| key.task_id.clone());
            let agent_id = self
                .agent_id
                .clone()
                .unwrap_or_else(|| info.agent_id.value.clone());
            let resources = match &group {
                Some(_) => group_total.clone(),
                None => resources_of(&info.resources),
            };
            let plan = match self.plan(&resources, &container_id, &key.task_id) {
                Ok(p) => p,
                Err(message) => {
                    let reason = status::REASON_CONTAINER_LAUNCH_FAILED;
                    self.reject(key, Some(info), json, executor_id, message, reason);
                    continue;
                }
            };
            let user = if self.config.switch_user {
                let name = info
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
                        self.reject(key, Some(info), json, executor_id, e.to_string(), reason);
                        continue;
                    }
                }
            } else {
                None
            };
            let health = match info.health_check.as_ref().map(health::parse).transpose() {
                Ok(h) => h,
                Err(e) => {
                    let message = format!("invalid health check: {e}");
                    let reason = status::REASON_TASK_INVALID;
                    self.reject(key, Some(info), json, executor_id, message, reason);
                    continue;
                }
            };
            let network = match self.network_for(&info, &resources, &container_id) {
                Ok(n) => n,
                Err((message, reason)) => {
                    self.reject(key, Some(info), json, executor_id, message, reason);
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
            };
            let prepared = if let Some(e) = &req.executor_error {
                Err(e.clone())
            } else if group.is_none() && info.executor.is_some() {
                Err("custom executors are not supported by this agent".to_string())
            } else {
                self.context(&container, &key.task_id, Some(&plan.0))
                    .map(|ctx| TaskContext { user, ..ctx })
                    .map_err(|e| e.to_string())
                    .and_then(|ctx| {
                        command::launch_spec(&ctx, info.command.as_ref(), &self.config.base_env)
                            .map(|spec| (ctx, spec))
                            .map_err(|e| e.to_string())
                    })
            };
            let (ctx, mut spec) = match prepared {
                Ok(p) => p,
                Err(message) => {
                    self.release_address(&container_id);
                    self.reject(
                        key,
                        Some(info),
                        json,
                        executor_id,
                        message,
                        status::REASON_TASK_INVALID,
                    );
                    continue;
                }
            };
            let (dir, log) = match self.checkpoint_task(&container, &key, &json) {
                Ok(c) => c,
                Err(e) => {
                    self.release_address(&container_id);
                    let message = format!("the agent cannot checkpoint the task: {e}");
                    let reason = status::REASON_CONTAINER_LAUNCH_FAILED;
                    self.reject(key, Some(info), json, executor_id, message, reason);
                    continue;
                }
            };
            spec.state_dir = dir.join(checkpoint::PROCESS_DIR);
            let uris = info
                .command
                .as_ref()
                .map(|c| c.uris.clone())
                .unwrap_or_default();
            let hostname = command::container_hostname(info.container.as_ref());
            command::contain(&mut spec, &ctx, hostname, &self.config.work_dir);
            if let Some(ex) = &group {
                self.groups
                    .insert((fw.clone(), ex.clone()), container_id.clone());
            }
            let (kills, kill_rx) = mpsc::unbounded_channel();
            self.tasks.insert(
                key.clone(),
                Task {
                    info: Some(info),
                    info_json: json,
                    executor_id,
                    container_id: container_id.clone(),
                    group: group.clone(),
                    killing_state,
                    phase: Phase::Starting,
                    latest: None,
                    kills: Some(kills),
                    kill_requested: false,
                    unhealthy: false,
                    dir: Some(dir),
                    log: Some(log),
                },
            );
            tracing::info!(task_id = %key.task_id, framework_id = %fw,
                sandbox = %ctx.sandbox.display(), "launching task");
            self.emit(&key, TaskState::TASK_STARTING, plan.0.note(), None);
            let supervisor = Supervisor {
                launcher: self.launcher.clone(),
                fetcher: self.fetcher.clone(),
                health: health.map(|h| (h, self.config.helper.clone())),
                hooks: self.hooks.clone(),
                key,
                ctx,
                start: Start::Launch(Box::new(spec), uris),
                killed: false,
                events: self.events.clone(),
            };
            tokio::spawn(supervisor.run(kill_rx));
        }
    }

    /// Writes the container's and the task's checkpoint and opens its
    /// update log.
    pub(super) fn checkpoint_task(
        &self,
        container: &ContainerCheckpoint,
        key: &TaskKey,
        info_json: &str,
    ) -> Result<(PathBuf, UpdateLog), checkpoint::CheckpointError> {
        let dir = self.meta.container_dir(container)?;
        if !dir.join(checkpoint::CONTAINER_FILE).exists() {
            container.write(&dir)?;
        }
        let task_dir = MetaDir::task_dir(&dir, &key.task_id)?;
        checkpoint::write_task_info(&task_dir, info_json)?;
        let (log, _) = UpdateLog::open(&task_dir.join(checkpoint::UPDATES_FILE))?;
        Ok((task_dir, log))
    }

    /// The container's isolation and its cgroup directory; `Err` is the
    /// message of a task this agent must refuse.
    fn plan(
        &self,
        resources: &Resources,
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

    /// The container's place on the agent's network, if the task asked for
    /// one (allocated once per container); `Err`: message and reason of
    /// the refusal.
    fn network_for(
        &mut self,
        info: &TaskInfo,
        resources: &Resources,
        container_id: &str,
    ) -> Result<Option<NetworkAttachment>, (String, &'static str)> {
        let invalid = |e: String| (e, status::REASON_TASK_INVALID);
        let Some(req) =
            network::request(info.container.as_ref()).map_err(|e| invalid(e.to_string()))?
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
        })
    }

    /// A task that cannot be started at all: TASK_FAILED, nothing spawned.
    fn reject(
        &mut self,
        key: TaskKey,
        info: Option<Box<TaskInfo>>,
        info_json: String,
        executor_id: String,
        message: String,
        reason: &'static str,
    ) {
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
        };
        let (dir, log) = match self.checkpoint_task(&container, &key, &info_json) {
            Ok((dir, log)) => (Some(dir), Some(log)),
            Err(e) => {
                tracing::error!(task_id = %key.task_id, error = %e, "cannot checkpoint a rejected task");
                (None, None)
            }
        };
        let task = Task {
            info,
            info_json,
            executor_id,
            container_id: container.container_id.clone(),
            group: None,
            killing_state: false,
            phase: Phase::Starting,
            latest: None,
            kills: None,
            kill_requested: false,
            unhealthy: false,
            dir,
            log,
        };
        self.tasks.insert(key.clone(), task);
        self.emit(&key, TaskState::TASK_FAILED, Some(message), Some(reason));
    }
}
