//! How a container launched through the agent's API runs, decided from
//! plain data (pure): the parent task's launch (its `launch.json`, the
//! [`LaunchSpec`] the launcher started it with) and the call's
//! `CommandInfo` and `tty_info` become one `keel-agent enter` command line,
//! its environment and the sandbox it writes to.

use std::path::{Path, PathBuf};

use keel_api::agent::containers::{Launch, WindowSize};

use crate::executor::launcher::LaunchSpec;
use crate::executor::launcher::enter::EnterArgs;

/// Where a nested container's process goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parent {
    /// The process whose namespaces it joins (a task's container init, or
    /// the agent itself for a standalone container's tree).
    pub pid: u32,
    /// The parent task's launch, `None` for a standalone container's tree.
    pub task: Option<LaunchSpec>,
    /// The sandbox on the host of the top-level container.
    pub host_sandbox: PathBuf,
}

/// What to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub enter: EnterArgs,
    pub env: Vec<(String, String)>,
    /// Its own sandbox on the host (created before the launch); `None`
    /// for a session, which works in its parent's.
    pub sandbox: Option<PathBuf>,
    /// A terminal of this size (`None`: pipes).
    pub tty: Option<WindowSize>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("Expecting 'command' to be present: a nested container needs a command")]
    NoCommand,
    #[error("Expecting 'command.value' to be present")]
    NoValue,
}

/// The terminal size used when `tty_info` names none.
pub const DEFAULT_WINDOW: WindowSize = WindowSize {
    rows: 24,
    columns: 80,
};

/// `session`: a LAUNCH_NESTED_CONTAINER_SESSION (Mesos' DEBUG class: the
/// parent's working directory and environment); otherwise the container
/// gets its own sandbox, `containers/<id>` under its top-level one.
pub fn plan(launch: &Launch, parent: &Parent, session: bool) -> Result<Plan, PlanError> {
    let command = launch.command.as_ref().ok_or(PlanError::NoCommand)?;
    let value = command.value.clone().ok_or(PlanError::NoValue)?;
    let (program, argv) = if command.shell() {
        ("/bin/sh".to_string(), vec!["sh".into(), "-c".into(), value])
    } else if command.arguments.is_empty() {
        (value.clone(), vec![value])
    } else {
        (value, command.arguments.clone())
    };
    // Inside the task's mount namespace the sandbox is where the task sees it.
    let task_cwd = match &parent.task {
        Some(spec) => spec.cwd.clone(),
        None => parent.host_sandbox.clone(),
    };
    let rel = relative(&launch.container_id);
    let (cwd, sandbox) = if session {
        (task_cwd, None)
    } else {
        (task_cwd.join(&rel), Some(parent.host_sandbox.join(&rel)))
    };
    let mut env: Vec<(String, String)> = parent
        .task
        .as_ref()
        .map(|s| s.env.clone())
        .unwrap_or_else(|| vec![("PATH".into(), DEFAULT_PATH.into())]);
    if !session {
        set(&mut env, "MESOS_SANDBOX", &cwd.display().to_string());
    }
    for v in command.environment.iter().flat_map(|e| &e.variables) {
        if v.kind.as_deref().is_none_or(|k| k == "VALUE") {
            set(&mut env, &v.name, v.value.as_deref().unwrap_or_default());
        }
    }
    let tty = launch
        .tty()
        .map(|t| t.window_size.unwrap_or(DEFAULT_WINDOW));
    let task = parent.task.as_ref();
    Ok(Plan {
        enter: EnterArgs {
            cgroup: task.and_then(|s| s.cgroup.clone()),
            user: task.and_then(|s| s.user),
            tty: tty.is_some(),
            die_with_parent: true,
            pid: parent.pid.to_string(),
            cwd,
            program: program.into(),
            argv: argv.into_iter().map(Into::into).collect(),
        },
        env,
        sandbox,
        tty,
    })
}

/// `PATH` for a standalone container's tree (no task to inherit from).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn set(env: &mut Vec<(String, String)>, name: &str, value: &str) {
    env.retain(|(k, _)| k != name);
    env.push((name.to_string(), value.to_string()));
}

/// `containers/<a>/containers/<b>` for a container nested below its root
/// (Mesos' `getSandboxPath`).
pub fn relative(id: &keel_api::agent::containers::ContainerId) -> PathBuf {
    let mut chain = Vec::new();
    let mut cur = id;
    while let Some(parent) = &cur.parent {
        chain.push(cur.value.as_str());
        cur = parent;
    }
    chain
        .iter()
        .rev()
        .fold(PathBuf::new(), |p, v| p.join("containers").join(v))
}

/// A standalone container's sandbox: `<work_dir>/containers/<id>`.
pub fn standalone_sandbox(work_dir: &Path, id: &str) -> PathBuf {
    work_dir.join("containers").join(id)
}

#[cfg(test)]
mod tests {
    use keel_api::agent::containers::ContainerId;
    use keel_api::mesos::{CommandInfo, ContainerInfo, EnvVar, Environment};

    use super::*;

    fn task_spec() -> LaunchSpec {
        LaunchSpec {
            cwd: "/mnt/mesos/sandbox".into(),
            sandbox: Some("/work/slaves/a/frameworks/f/executors/t/runs/c".into()),
            env: vec![
                ("PATH".into(), "/bin".into()),
                ("HOME".into(), "/root".into()),
            ],
            cgroup: Some("/sys/fs/cgroup/keel/c/task".into()),
            user: Some((1000, 1000)),
            ..Default::default()
        }
    }

    fn launch(value: &str, tty: bool) -> Launch {
        Launch {
            container_id: ContainerId::nested(ContainerId::new("c"), "n1"),
            command: Some(CommandInfo {
                value: Some(value.into()),
                environment: Some(Environment {
                    variables: vec![EnvVar {
                        name: "HOME".into(),
                        kind: None,
                        value: Some("/tmp".into()),
                    }],
                }),
                ..Default::default()
            }),
            container: tty.then(|| ContainerInfo {
                tty_info: Some(serde_json::json!({})),
                ..Default::default()
            }),
            resources: vec![],
        }
    }

    fn parent() -> Parent {
        Parent {
            pid: 42,
            task: Some(task_spec()),
            host_sandbox: "/work/slaves/a/frameworks/f/executors/t/runs/c".into(),
        }
    }

    #[test]
    fn a_session_works_in_the_tasks_directory_as_its_user_and_cgroup() {
        let p = plan(&launch("echo hi", true), &parent(), true).unwrap();
        assert_eq!(p.enter.pid, "42");
        assert_eq!(p.enter.cwd, PathBuf::from("/mnt/mesos/sandbox"));
        assert_eq!(p.enter.user, Some((1000, 1000)));
        assert_eq!(
            p.enter.cgroup,
            Some(PathBuf::from("/sys/fs/cgroup/keel/c/task"))
        );
        assert!(p.enter.tty && p.enter.die_with_parent);
        assert_eq!(p.tty, Some(DEFAULT_WINDOW));
        assert_eq!(p.enter.program, "/bin/sh");
        assert_eq!(p.enter.argv, ["sh", "-c", "echo hi"]);
        assert_eq!(p.sandbox, None);
        // The task's environment, the call's variables over it.
        assert!(p.env.contains(&("HOME".into(), "/tmp".into())));
        assert!(p.env.contains(&("PATH".into(), "/bin".into())));
    }

    #[test]
    fn a_nested_container_gets_its_own_sandbox_below_the_tasks() {
        let p = plan(&launch("cat", false), &parent(), false).unwrap();
        assert_eq!(
            p.enter.cwd,
            PathBuf::from("/mnt/mesos/sandbox/containers/n1")
        );
        assert_eq!(
            p.sandbox,
            Some(PathBuf::from(
                "/work/slaves/a/frameworks/f/executors/t/runs/c/containers/n1"
            ))
        );
        assert!(p.env.contains(&(
            "MESOS_SANDBOX".into(),
            "/mnt/mesos/sandbox/containers/n1".into()
        )));
        assert_eq!(p.tty, None);
    }

    #[test]
    fn without_a_command_there_is_nothing_to_run() {
        let mut l = launch("x", false);
        l.command = None;
        assert_eq!(plan(&l, &parent(), true), Err(PlanError::NoCommand));
        let deep = ContainerId::nested(ContainerId::nested(ContainerId::new("r"), "a"), "b");
        assert_eq!(relative(&deep), PathBuf::from("containers/a/containers/b"));
    }
}
