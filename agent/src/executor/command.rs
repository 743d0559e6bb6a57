//! CommandInfo -> what to spawn: argv (shell or exec form) and the task's
//! environment. Pure; the launcher does the spawning.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use keel_api::mesos::{CommandInfo, ContainerInfo};

use super::hooks::TaskContext;
use super::launcher::LaunchSpec;
use crate::isolation::mounts::SANDBOX_PATH;

/// `PATH` for tasks that do not set their own (as Mesos).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CommandError {
    #[error("task {task_id} has no command")]
    Missing { task_id: String },
    #[error("task {task_id}: {which} command is not specified")]
    NoValue {
        task_id: String,
        which: &'static str,
    },
}

/// The spec for `command` running in `ctx`'s sandbox. `base_env` comes
/// first (agent-wide defaults), then the `MESOS_*` variables, then the
/// command's own `VALUE` variables, later ones winning.
pub fn launch_spec(
    ctx: &TaskContext,
    command: Option<&CommandInfo>,
    base_env: &[(String, String)],
) -> Result<LaunchSpec, CommandError> {
    let command = command.ok_or_else(|| CommandError::Missing {
        task_id: ctx.task_id.clone(),
    })?;
    let no_value = |which| CommandError::NoValue {
        task_id: ctx.task_id.clone(),
        which,
    };
    let (program, argv) = if command.shell() {
        let value = command.value.clone().ok_or_else(|| no_value("shell"))?;
        ("/bin/sh".to_string(), vec!["sh".into(), "-c".into(), value])
    } else {
        let value = command
            .value
            .clone()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| no_value("executable"))?;
        let argv = if command.arguments.is_empty() {
            vec![value.clone()]
        } else {
            command.arguments.clone()
        };
        (value, argv)
    };
    Ok(LaunchSpec {
        program,
        argv,
        env: environment(ctx, command, base_env),
        cwd: ctx.sandbox.clone(),
        stdout: ctx.sandbox.join("stdout"),
        stderr: ctx.sandbox.join("stderr"),
        // Set by the runtime: the task's checkpoint directory.
        state_dir: PathBuf::new(),
        ..LaunchSpec::default()
    })
}

/// Applies the container's namespaces to `spec`: with a mount namespace
/// the task runs in `/mnt/mesos/sandbox` (its `MESOS_SANDBOX`; the host
/// path stays in `MESOS_DIRECTORY`) and the agent's `work_dir` is hidden.
pub fn contain(spec: &mut LaunchSpec, ctx: &TaskContext, hostname: Option<&str>, work_dir: &Path) {
    let ns = ctx.isolation.namespaces;
    spec.namespaces = ns;
    spec.user = ctx.user.map(|u| (u.uid, u.gid));
    if ns.uts {
        spec.hostname = hostname.map(str::to_string);
    }
    if ns.mount {
        spec.sandbox = Some(ctx.sandbox.clone());
        spec.cwd = PathBuf::from(SANDBOX_PATH);
        spec.hide = vec![work_dir.to_path_buf()];
        for (k, v) in spec.env.iter_mut() {
            if k == "MESOS_SANDBOX" {
                *v = SANDBOX_PATH.to_string();
            }
        }
    }
}

/// `ContainerInfo.hostname`, when set.
pub fn container_hostname(container: Option<&ContainerInfo>) -> Option<&str> {
    container?.hostname.as_deref().filter(|h| !h.is_empty())
}

/// The task's complete environment, sorted by name.
pub fn environment(
    ctx: &TaskContext,
    command: &CommandInfo,
    base_env: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("PATH".into(), DEFAULT_PATH.into());
    env.extend(base_env.iter().cloned());
    let sandbox = ctx.sandbox.to_string_lossy().into_owned();
    for (k, v) in [
        ("MESOS_SANDBOX", sandbox.as_str()),
        ("MESOS_DIRECTORY", sandbox.as_str()),
        ("MESOS_TASK_ID", &ctx.task_id),
        ("MESOS_FRAMEWORK_ID", &ctx.framework_id),
        ("MESOS_AGENT_ID", &ctx.agent_id),
        ("MESOS_SLAVE_ID", &ctx.agent_id),
        ("MESOS_EXECUTOR_ID", &ctx.executor_id),
        ("MESOS_CONTAINER_ID", &ctx.container_id),
    ] {
        env.insert(k.into(), v.into());
    }
    let vars = command.environment.iter().flat_map(|e| &e.variables);
    for var in vars {
        // SECRET variables need a secret resolver, which Keel does not have.
        if var.kind.as_deref().is_none_or(|k| k == "VALUE") {
            env.insert(var.name.clone(), var.value.clone().unwrap_or_default());
        }
    }
    env.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_api::mesos::{EnvVar, Environment};

    fn ctx() -> TaskContext {
        TaskContext {
            agent_id: "a-S0".into(),
            framework_id: "fw".into(),
            executor_id: "t1".into(),
            container_id: "c1".into(),
            task_id: "t1".into(),
            runs_dir: PathBuf::from("/w/runs"),
            run_dir: PathBuf::from("/w/runs/c1"),
            sandbox: PathBuf::from("/w/runs/c1"),
            isolation: Default::default(),
            user: None,
            volumes: Vec::new(),
        }
    }

    fn cmd(value: &str, shell: Option<bool>, args: &[&str]) -> CommandInfo {
        CommandInfo {
            value: Some(value.into()),
            shell,
            arguments: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn shell_commands_go_through_sh() {
        let s = launch_spec(&ctx(), Some(&cmd("echo hi", None, &["ignored"])), &[]).unwrap();
        assert_eq!(s.program, "/bin/sh");
        assert_eq!(s.argv, ["sh", "-c", "echo hi"]);
        assert_eq!(s.cwd, PathBuf::from("/w/runs/c1"));
        assert_eq!(s.stdout, PathBuf::from("/w/runs/c1/stdout"));
    }

    #[test]
    fn exec_form_keeps_argv0() {
        let c = cmd("/bin/echo", Some(false), &["my-echo", "a", "b"]);
        let s = launch_spec(&ctx(), Some(&c), &[]).unwrap();
        assert_eq!(
            (s.program.as_str(), s.argv.as_slice()),
            (
                "/bin/echo",
                &["my-echo".to_string(), "a".into(), "b".into()][..]
            )
        );
        let s = launch_spec(&ctx(), Some(&cmd("true", Some(false), &[])), &[]).unwrap();
        assert_eq!(s.argv, ["true"]);
    }

    #[test]
    fn missing_commands_are_errors() {
        assert_eq!(
            launch_spec(&ctx(), None, &[]),
            Err(CommandError::Missing {
                task_id: "t1".into()
            })
        );
        let c = CommandInfo::default();
        assert!(matches!(
            launch_spec(&ctx(), Some(&c), &[]),
            Err(CommandError::NoValue { which: "shell", .. })
        ));
        let c = cmd("", Some(false), &[]);
        assert!(matches!(
            launch_spec(&ctx(), Some(&c), &[]),
            Err(CommandError::NoValue { .. })
        ));
    }

    #[test]
    fn environment_layers() {
        let mut c = cmd("env", None, &[]);
        c.environment = Some(Environment {
            variables: vec![
                EnvVar {
                    name: "FOO".into(),
                    kind: None,
                    value: Some("bar".into()),
                },
                EnvVar {
                    name: "PATH".into(),
                    kind: Some("VALUE".into()),
                    value: Some("/opt/bin".into()),
                },
                EnvVar {
                    name: "S".into(),
                    kind: Some("SECRET".into()),
                    value: None,
                },
            ],
        });
        let base = [("LANG".to_string(), "C.UTF-8".to_string())];
        let env: BTreeMap<_, _> = environment(&ctx(), &c, &base).into_iter().collect();
        assert_eq!(env["FOO"], "bar");
        assert_eq!(env["PATH"], "/opt/bin");
        assert_eq!(env["LANG"], "C.UTF-8");
        assert_eq!(env["MESOS_SANDBOX"], "/w/runs/c1");
        assert_eq!(env["MESOS_TASK_ID"], "t1");
        assert_eq!(env["MESOS_FRAMEWORK_ID"], "fw");
        assert_eq!(env["MESOS_AGENT_ID"], "a-S0");
        assert_eq!(env["MESOS_EXECUTOR_ID"], "t1");
        assert_eq!(env["MESOS_CONTAINER_ID"], "c1");
        assert!(!env.contains_key("S"));
        let env: BTreeMap<_, _> = environment(&ctx(), &cmd("x", None, &[]), &[])
            .into_iter()
            .collect();
        assert_eq!(env["PATH"], DEFAULT_PATH);
    }
}
