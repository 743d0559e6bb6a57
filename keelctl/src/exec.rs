//! `keelctl exec TASK [-t] -- CMD ARGS...` and `keelctl attach TASK`,
//! through the master (`/api/keel/v1/tasks/<task>/...`), which relays the
//! agent's nested-container calls (`keel_client::ContainerApi`).
//!
//! exec launches a nested container session in the task's container
//! (LAUNCH_NESTED_CONTAINER_SESSION), prints its output as it comes,
//! forwards stdin (ATTACH_CONTAINER_INPUT: until EOF; with `-t` a
//! terminal in raw mode, and its size as it changes), then asks how it
//! ended (WAIT_NESTED_CONTAINER) and exits with that status. attach
//! prints the task's output (ATTACH_CONTAINER_OUTPUT) until it ends.

use std::io::Write;

use anyhow::{Context, Result};
use keel_api::agent::containers::{
    ContainerCall, ContainerId, Form, InputRecord, Launch, Stream, WindowSize,
};
use keel_api::mesos::{CommandInfo, ContainerInfo};
use keel_client::{Client, OutputStream};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
pub struct ExecSpec {
    pub task: String,
    pub framework: Option<String>,
    pub tty: bool,
    /// One argument runs through `/bin/sh -c`, several are argv.
    pub command: Vec<String>,
}

/// The command as Mesos' `CommandInfo`.
pub fn command_info(command: &[String]) -> CommandInfo {
    match command {
        [one] => CommandInfo {
            shell: Some(true),
            value: Some(one.clone()),
            ..Default::default()
        },
        _ => CommandInfo {
            shell: Some(false),
            value: command.first().cloned(),
            arguments: command.to_vec(),
            ..Default::default()
        },
    }
}

/// The local terminal's size, if stdout is one.
fn window() -> Option<WindowSize> {
    let ws = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    Some(WindowSize {
        rows: u32::from(ws.ws_row),
        columns: u32::from(ws.ws_col),
    })
}

/// Puts stdin's terminal in raw mode until dropped.
struct RawMode(Option<rustix::termios::Termios>);

impl RawMode {
    fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(saved) = rustix::termios::tcgetattr(&stdin) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        raw.make_raw();
        if rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw).is_err()
        {
            return RawMode(None);
        }
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}

/// Prints the records of `output` until it ends.
async fn print(mut output: OutputStream) -> Result<()> {
    while let Some(record) = output.next().await? {
        let Some((stream, bytes)) = record.bytes() else {
            continue;
        };
        match stream {
            Stream::Stderr => {
                let mut err = std::io::stderr();
                err.write_all(&bytes)?;
                err.flush()?;
            }
            _ => {
                let mut out = std::io::stdout();
                out.write_all(&bytes)?;
                out.flush()?;
            }
        }
    }
    Ok(())
}

/// Reads stdin into `tx` until EOF (an empty record then says so), and
/// with a terminal also its size changes.
async fn forward_stdin(tx: mpsc::Sender<InputRecord>, tty: bool) {
    if tty {
        let winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change());
        if let Ok(mut winch) = winch {
            let tx = tx.clone();
            tokio::spawn(async move {
                while winch.recv().await.is_some() {
                    if let Some(size) = window()
                        && tx.send(InputRecord::Window(size)).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    }
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; 16 << 10];
    loop {
        match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx
                    .send(InputRecord::Stdin(buf[..n].to_vec()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
    let _ = tx.send(InputRecord::Stdin(Vec::new())).await;
}

/// Runs the command in the task; its exit status.
pub async fn exec(client: &Client, spec: ExecSpec) -> Result<i32> {
    let (api, parent) = client
        .task_container(&spec.task, spec.framework.as_deref())
        .await
        .with_context(|| format!("cannot reach task {}", spec.task))?;
    let id = ContainerId::nested(parent, uuid::Uuid::new_v4().to_string());
    let tty = spec.tty.then(|| {
        window().unwrap_or(WindowSize {
            rows: 24,
            columns: 80,
        })
    });
    let launch = Launch {
        container_id: id.clone(),
        command: Some(command_info(&spec.command)),
        container: Some(ContainerInfo {
            kind: Some("MESOS".into()),
            tty_info: tty.map(|size| serde_json::json!({ "window_size": size })),
            ..Default::default()
        }),
        resources: Vec::new(),
    };
    let output = api
        .stream(&ContainerCall::LaunchSession(launch))
        .await
        .context("cannot launch the command")?;
    let _raw = spec.tty.then(RawMode::enter);
    let (tx, rx) = mpsc::channel(16);
    let reader = tokio::spawn(forward_stdin(tx, spec.tty));
    let input = {
        let api = api.clone();
        let id = id.clone();
        tokio::spawn(async move { api.attach_input(&id, rx).await })
    };
    let printed = print(output).await;
    reader.abort();
    input.abort();
    printed?;
    let answer = api
        .wait(&ContainerCall::Wait(id, Form::Nested))
        .await
        .context("cannot learn how the command ended")?;
    Ok(answer.code().unwrap_or(1))
}

/// Prints the task's output until the task ends.
pub async fn attach(client: &Client, task: &str, framework: Option<&str>) -> Result<()> {
    let (api, container) = client
        .task_container(task, framework)
        .await
        .with_context(|| format!("cannot reach task {task}"))?;
    let output = api
        .stream(&ContainerCall::AttachOutput(container))
        .await
        .context("cannot attach")?;
    print(output).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_argument_is_a_shell_command_several_are_argv() {
        let sh = command_info(&["echo hi | wc -c".into()]);
        assert_eq!(sh.shell, Some(true));
        assert_eq!(sh.value.as_deref(), Some("echo hi | wc -c"));
        let argv = command_info(&["ls".into(), "-l".into()]);
        assert_eq!(argv.shell, Some(false));
        assert_eq!(argv.value.as_deref(), Some("ls"));
        assert_eq!(argv.arguments, ["ls", "-l"]);
    }
}
