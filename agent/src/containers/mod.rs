//! Containers launched through the agent's v1 operator API: nested
//! containers in a running task's namespaces and cgroup (sessions behind
//! `mesos task exec` / `keelctl exec`, and LAUNCH_NESTED_CONTAINER /
//! LAUNCH_CONTAINER with a parent), and standalone containers
//! (LAUNCH_CONTAINER without a parent, sandbox `<work_dir>/containers/<id>`).
//!
//! The task runtime stays the owner of tasks; this module asks it one
//! question ([`ExecutorHandle::container`]) and reads the parent task's
//! launch from its launcher files. How the process runs is decided in
//! [`plan`] (pure) and done in [`process`]. The HTTP side is
//! `crate::api::containers`. Design: `docs/design/0013-nested-containers.md`.

pub mod output;
pub mod plan;
pub mod process;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_api::agent::containers::{ContainerId, Launch};

use crate::access::Access;
use crate::executor::ExecutorHandle;
use crate::executor::launcher::LaunchSpec;
use crate::executor::launcher::shim::{LAUNCH_FILE, PID_FILE, PidRecord};
use crate::executor::runtime::containers::{ContainerQuery, ContainerRef};
use plan::Parent;
use process::ContainerProcess;

/// Containers (running or ended, until removed) one agent keeps.
pub const MAX_CONTAINERS: usize = 1024;
/// Reads of a task's `pid.json` before its init's pid is known (10 ms apart).
const PID_TRIES: usize = 200;
/// How often a nested container checks that its task still runs.
const PARENT_CHECK: Duration = Duration::from_secs(1);

/// Why a call about a container fails; the text is Mesos' where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

fn not_found(id: &ContainerId) -> ContainerError {
    ContainerError::NotFound(format!("Container {id} cannot be found"))
}

/// One container launched here.
#[derive(Clone)]
struct Entry {
    /// The framework of the task at its root (`None`: a standalone tree).
    framework_id: Option<String>,
    /// Its own sandbox on the host (removed by REMOVE_CONTAINER).
    sandbox: Option<PathBuf>,
    process: Arc<ContainerProcess>,
}

/// The top of a container tree.
enum Root {
    Task(ContainerRef),
    Standalone(Entry),
}

/// What ATTACH_CONTAINER_OUTPUT reads.
pub enum OutputSource {
    /// A container launched here: its output as it comes.
    Live(Arc<ContainerProcess>),
    /// A task's own container: its sandbox's `stdout` and `stderr`
    /// followed from their current end while the task runs.
    TaskFiles(output::Follow),
}

/// What a launch did.
pub enum Launched {
    /// Started; the receiver has all of its output.
    New(
        Arc<ContainerProcess>,
        tokio::sync::broadcast::Receiver<process::Chunk>,
    ),
    /// The id is taken already (Mesos: 202).
    Exists,
}

/// The agent's API containers; cheap to clone.
#[derive(Clone)]
pub struct Containers {
    inner: Arc<Inner>,
}

struct Inner {
    executor: ExecutorHandle,
    /// The `keel-agent` binary (`enter`).
    helper: PathBuf,
    work_dir: PathBuf,
    entries: Mutex<BTreeMap<ContainerId, Entry>>,
}

impl Containers {
    pub fn new(executor: ExecutorHandle, helper: PathBuf, work_dir: PathBuf) -> Self {
        Containers {
            inner: Arc::new(Inner {
                executor,
                helper,
                work_dir,
                entries: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<ContainerId, Entry>> {
        self.inner.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry(&self, id: &ContainerId) -> Option<Entry> {
        self.entries().get(id).cloned()
    }

    /// The running task container with this id.
    async fn task(&self, id: &ContainerId) -> Option<ContainerRef> {
        if id.parent.is_some() {
            return None;
        }
        let query = ContainerQuery::Id(id.value.clone());
        self.inner.executor.container(query).await
    }

    async fn root(&self, id: &ContainerId) -> Option<Root> {
        let root = id.root();
        if let Some(t) = self.task(root).await {
            return Some(Root::Task(t));
        }
        self.entry(root).map(Root::Standalone)
    }

    /// The container id of a task's container (Keel's lookup for
    /// `keelctl exec`; Mesos clients read it from `container_status`).
    pub async fn of_task(&self, framework_id: &str, task_id: &str) -> Option<ContainerId> {
        let query = ContainerQuery::Task {
            framework_id: framework_id.into(),
            task_id: task_id.into(),
        };
        let found = self.inner.executor.container(query).await?;
        Some(ContainerId::new(found.container_id))
    }

    /// Launches `launch` (a session when `session`).
    pub async fn launch(
        &self,
        access: &Access,
        launch: &Launch,
        session: bool,
    ) -> Result<Launched, ContainerError> {
        let id = &launch.container_id;
        if let Some(e) = self.entry(id) {
            permitted(access, e.framework_id.as_deref())?;
            return Ok(Launched::Exists);
        }
        let (parent, framework_id, watch_task) = match &id.parent {
            None => {
                permitted(access, None)?;
                if self.task(id).await.is_some() {
                    return Ok(Launched::Exists);
                }
                let sandbox = plan::standalone_sandbox(&self.inner.work_dir, &id.value);
                let parent = Parent {
                    pid: std::process::id(),
                    task: None,
                    host_sandbox: sandbox.clone(),
                };
                (parent, None, None)
            }
            Some(p) => {
                let missing =
                    || ContainerError::BadRequest(format!("Parent container {p} does not exist"));
                // A parent below the root must be one of ours, still running.
                if p.parent.is_some() && !self.entry(p).is_some_and(|e| e.process.running()) {
                    return Err(missing());
                }
                match self.root(id).await.ok_or_else(missing)? {
                    Root::Task(task) => {
                        permitted(access, Some(&task.framework_id))?;
                        let parent = task_parent(&task.process_dir).await?;
                        (parent, Some(task.framework_id), Some(id.root().clone()))
                    }
                    Root::Standalone(e) if e.process.running() => {
                        permitted(access, None)?;
                        let host_sandbox = e.sandbox.clone().unwrap_or_default();
                        let parent = Parent {
                            pid: std::process::id(),
                            task: None,
                            host_sandbox,
                        };
                        (parent, None, None)
                    }
                    Root::Standalone(_) => return Err(missing()),
                }
            }
        };
        let mut plan = plan::plan(launch, &parent, session)
            .map_err(|e| ContainerError::BadRequest(e.to_string()))?;
        if id.parent.is_none() {
            plan.sandbox = Some(parent.host_sandbox.clone());
        }
        self.make_room()?;
        let (process, output) = ContainerProcess::start(&plan, &self.inner.helper)
            .map_err(|e| ContainerError::BadRequest(e.to_string()))?;
        let entry = Entry {
            framework_id,
            sandbox: plan.sandbox.clone(),
            process: process.clone(),
        };
        self.entries().insert(id.clone(), entry);
        tracing::info!(container_id = %id, session, pid = process.pgid, "container launched");
        if let Some(root) = watch_task {
            tokio::spawn(self.clone().end_with_task(root, process.clone()));
        }
        Ok(Launched::New(process, output))
    }

    /// Kills `process` once its task no longer runs (as Mesos destroys a
    /// container's children with it).
    async fn end_with_task(self, root: ContainerId, process: Arc<ContainerProcess>) {
        let mut exit = process.exit();
        while process.running() {
            tokio::select! {
                changed = exit.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(PARENT_CHECK) => {
                    if self.task(&root).await.is_none() {
                        tracing::info!(container_id = %root, "task gone: killing its nested container");
                        let _ = process.signal(9);
                        return;
                    }
                }
            }
        }
    }

    /// Frees the place of ended containers when the table is full.
    fn make_room(&self) -> Result<(), ContainerError> {
        let mut entries = self.entries();
        if entries.len() < MAX_CONTAINERS {
            return Ok(());
        }
        let ended: Vec<ContainerId> = entries
            .iter()
            .filter(|(_, e)| !e.process.running() && e.sandbox.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in ended {
            entries.remove(&id);
        }
        if entries.len() >= MAX_CONTAINERS {
            return Err(ContainerError::Unavailable(format!(
                "Too many containers on this agent ({MAX_CONTAINERS}): remove ended ones"
            )));
        }
        Ok(())
    }

    /// The wait(2) status of the container once it ended.
    pub async fn wait(&self, access: &Access, id: &ContainerId) -> Result<i32, ContainerError> {
        let Some(e) = self.entry(id) else {
            if self.task(id).await.is_some() {
                return Err(ContainerError::BadRequest(format!(
                    "Container {id} is a task's: wait for its task status instead"
                )));
            }
            return Err(not_found(id));
        };
        permitted(access, e.framework_id.as_deref())?;
        let mut exit = e.process.exit();
        let status = exit
            .wait_for(Option::is_some)
            .await
            .map(|s| *s)
            .ok()
            .flatten();
        status.ok_or_else(|| not_found(id))
    }

    pub async fn kill(
        &self,
        access: &Access,
        id: &ContainerId,
        signal: i32,
    ) -> Result<(), ContainerError> {
        let gone = || {
            ContainerError::NotFound(format!(
                "Container '{id}' cannot be found (or is already killed)"
            ))
        };
        let e = self.entry(id).ok_or_else(gone)?;
        permitted(access, e.framework_id.as_deref())?;
        if !e.process.running() {
            return Err(gone());
        }
        e.process
            .signal(signal)
            .map_err(|e| ContainerError::Internal(e.to_string()))
    }

    /// Forgets an ended container and deletes its sandbox.
    pub async fn remove(&self, access: &Access, id: &ContainerId) -> Result<(), ContainerError> {
        let Some(e) = self.entry(id) else {
            return match &id.parent {
                Some(_) if self.root(id).await.is_none() => {
                    Err(ContainerError::Internal("Unknown root container".into()))
                }
                _ => Err(ContainerError::Internal(format!("Unknown container {id}"))),
            };
        };
        permitted(access, e.framework_id.as_deref())?;
        if e.process.running() {
            return Err(ContainerError::Internal(
                "Nested container has not terminated yet".into(),
            ));
        }
        if let Some(dir) = &e.sandbox
            && let Err(err) = tokio::fs::remove_dir_all(dir).await
            && err.kind() != std::io::ErrorKind::NotFound
        {
            return Err(ContainerError::Internal(format!(
                "Failed to remove the sandbox directory: {err}"
            )));
        }
        self.entries().remove(id);
        Ok(())
    }

    /// Where ATTACH_CONTAINER_OUTPUT reads from.
    pub async fn output(
        &self,
        access: &Access,
        id: &ContainerId,
    ) -> Result<OutputSource, ContainerError> {
        if let Some(e) = self.entry(id) {
            permitted(access, e.framework_id.as_deref())?;
            if !e.process.running() {
                return Err(finished(id));
            }
            return Ok(OutputSource::Live(e.process));
        }
        let task = self.task(id).await.ok_or_else(|| not_found(id))?;
        permitted(access, Some(&task.framework_id))?;
        let spec = launch_spec(&task.process_dir).await?;
        let this = self.clone();
        let root = id.clone();
        let running = move || {
            let this = this.clone();
            let root = root.clone();
            async move { this.task(&root).await.is_some() }
        };
        Ok(OutputSource::TaskFiles(
            output::Follow::start(spec.stdout, spec.stderr, running).await,
        ))
    }

    /// The process whose stdin ATTACH_CONTAINER_INPUT writes (claimed:
    /// one input connection at a time).
    pub async fn input(
        &self,
        access: &Access,
        id: &ContainerId,
    ) -> Result<Arc<ContainerProcess>, ContainerError> {
        let Some(e) = self.entry(id) else {
            if self.task(id).await.is_some() {
                return Err(ContainerError::BadRequest(
                    "I/O switchboard server was disabled for this container".into(),
                ));
            }
            return Err(not_found(id));
        };
        permitted(access, e.framework_id.as_deref())?;
        if !e.process.running() {
            return Err(finished(id));
        }
        if !e.process.claim_input() {
            return Err(ContainerError::Conflict(
                "Multiple input connections are not allowed".into(),
            ));
        }
        Ok(e.process)
    }
}

fn finished(id: &ContainerId) -> ContainerError {
    ContainerError::NotFound(format!("Container {id} has terminated"))
}

/// Whether `access` covers a container of `framework_id` (`None`: a
/// standalone container, for callers with access to every sandbox).
fn permitted(access: &Access, framework_id: Option<&str>) -> Result<(), ContainerError> {
    match (access, framework_id) {
        (Access::All, _) => Ok(()),
        (Access::Frameworks(set), Some(fw)) if set.contains(fw) => Ok(()),
        (Access::NoSandboxes(who), _) => Err(ContainerError::Forbidden(format!(
            "{who} certificates do not use containers"
        ))),
        (Access::Frameworks(set), _) => Err(ContainerError::Forbidden(format!(
            "the grant opens the containers of frameworks {set:?} of this agent only"
        ))),
    }
}

async fn launch_spec(dir: &Path) -> Result<LaunchSpec, ContainerError> {
    let path = dir.join(LAUNCH_FILE);
    let bytes = tokio::fs::read(&path).await.map_err(|e| {
        ContainerError::BadRequest(format!("Failed to read {}: {e}", path.display()))
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ContainerError::BadRequest(format!("Failed to read {}: {e}", path.display())))
}

/// The parent of a container nested in a task: its init and its launch.
async fn task_parent(dir: &Path) -> Result<Parent, ContainerError> {
    let spec = launch_spec(dir).await?;
    // The shim reports the task running just before it records the pid.
    let mut pid = None;
    for _ in 0..PID_TRIES {
        pid = tokio::fs::read(dir.join(PID_FILE))
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<PidRecord>(&b).ok())
            .and_then(|r| r.task_pid);
        if pid.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid =
        pid.ok_or_else(|| ContainerError::BadRequest("Unknown parent container pid".into()))?;
    let host_sandbox = spec.sandbox.clone().unwrap_or_else(|| spec.cwd.clone());
    Ok(Parent {
        pid,
        task: Some(spec),
        host_sandbox,
    })
}
