//! The agent's nested-container calls (`POST /api/v1` on the agent's
//! port, `agent/src/api/containers.rs`, `docs/design/0013-nested-containers.md`)
//! against a real master and agent running a task `sleep 600`: sessions
//! with output, stdin, a terminal and exit statuses; LAUNCH / WAIT / KILL
//! / REMOVE of nested and standalone containers; ATTACH_CONTAINER_OUTPUT;
//! bad input answered 4xx with Mesos' message, the task unaffected.

mod support;

use std::time::Duration;

use keel_api::agent::containers::{
    ContainerCall, ContainerId, Form, InputRecord, Launch, Stream, WindowSize,
};
use keel_api::mesos::{CommandInfo, ContainerInfo, TaskState};
use keel_client::{ClientError, ContainerApi, OutputStream};
use support::scheduler::{Scheduler, command_task, framework, launch};
use support::*;
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(30);

/// A master, an agent and a running task `sleep 600`.
struct Cluster {
    _tmp: tempfile::TempDir,
    master: Master,
    agent: Proc,
    fw: Scheduler,
    agent_id: String,
    /// The agent's port.
    port: u16,
    task_id: String,
    rt: tokio::runtime::Runtime,
}

impl Cluster {
    fn start() -> Cluster {
        Self::start_with(&[])
    }

    /// With the agent's `extra` flags.
    fn start_with(extra: &[&str]) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let master = Master::start(tmp.path(), free_port(), "5s");
        let agent = start_agent(tmp.path(), &master.addr(), extra);
        wait_for(
            T,
            "the agent registered",
            || master.keel_agents().len() == 1,
            || agent.log_text(),
        );
        let a = master.keel_agents()[0].clone();
        let mut fw = Scheduler::subscribe(master.port, framework("nested"));
        let offer = fw.offer(T);
        let task_id = "sleeper".to_string();
        let task = command_task(&offer, &task_id, "sleep 600", 0.1, 32.0);
        assert_eq!(launch(&fw, &offer, vec![task]), 202);
        loop {
            let update = fw.update(T);
            fw.ack(&update);
            assert!(
                !update.state.is_terminal(),
                "{update:?}\n{}",
                agent.log_text()
            );
            if update.state == TaskState::TASK_RUNNING {
                break;
            }
        }
        Cluster {
            _tmp: tmp,
            master,
            agent,
            fw,
            agent_id: a.id,
            port: a.port,
            task_id,
            rt: tokio::runtime::Runtime::new().unwrap(),
        }
    }

    fn api(&self) -> ContainerApi {
        ContainerApi::agent(None, &self.agent_id, &format!("127.0.0.1:{}", self.port)).unwrap()
    }

    /// The task's container id.
    fn parent(&self) -> ContainerId {
        self.rt
            .block_on(
                self.api()
                    .task_container_of(&self.fw.framework_id, &self.task_id),
            )
            .unwrap()
    }

    fn agent_dir(&self) -> std::path::PathBuf {
        self._tmp.path().join("agent")
    }

    /// The task still runs: no update came, and the master says RUNNING.
    fn task_unaffected(&mut self) {
        assert!(self.fw.sees("UPDATE", Duration::from_millis(300)).is_none());
        let (_, body) = http_get(self.master.port, "/master/tasks").unwrap();
        assert!(body.contains("TASK_RUNNING"), "{body}");
    }
}

fn command(value: &str) -> Option<CommandInfo> {
    Some(CommandInfo {
        value: Some(value.into()),
        ..Default::default()
    })
}

fn launch_of(id: &ContainerId, cmd: &str, tty: Option<WindowSize>) -> Launch {
    Launch {
        container_id: id.clone(),
        command: command(cmd),
        container: tty.map(|size| ContainerInfo {
            kind: Some("MESOS".into()),
            tty_info: Some(serde_json::json!({"window_size": size})),
            ..Default::default()
        }),
        resources: Vec::new(),
    }
}

fn nested(parent: &ContainerId) -> ContainerId {
    ContainerId::nested(parent.clone(), uuid::Uuid::new_v4().to_string())
}

/// Everything `output` says, stdout and stderr apart.
async fn collect(mut output: OutputStream) -> (String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(r) = output.next().await.unwrap() {
        match r.bytes() {
            Some((Stream::Stdout, b)) => out.extend(b),
            Some((Stream::Stderr, b)) => err.extend(b),
            _ => {}
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

fn refusal<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (u16, String) {
    match r {
        Err(ClientError::Status { status, reason, .. }) => (status, reason),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_session_streams_output_and_reports_its_exit_status() {
    let mut c = Cluster::start();
    let api = c.api();
    let parent = c.parent();
    let id = nested(&parent);
    let cmd = "echo hi; echo oops >&2; cat /proc/self/cgroup >/dev/null; exit 3";
    let (out, err, wait) = c.rt.block_on(async {
        let output = api
            .stream(&ContainerCall::LaunchSession(launch_of(&id, cmd, None)))
            .await
            .unwrap();
        let (out, err) = collect(output).await;
        let wait = api
            .wait(&ContainerCall::Wait(id.clone(), Form::Nested))
            .await
            .unwrap();
        (out, err, wait)
    });
    assert_eq!(out, "hi\n");
    assert_eq!(err, "oops\n");
    assert_eq!(wait.exit_status, Some(3 << 8));
    assert_eq!(wait.code(), Some(3));
    c.task_unaffected();
}

#[test]
fn a_session_joins_the_tasks_namespaces() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: no namespaces to join");
        return;
    }
    let isolation = "namespaces/pid,namespaces/mount,namespaces/uts,namespaces/ipc";
    let c = Cluster::start_with(&["--isolation", isolation]);
    let api = c.api();
    let id = nested(&c.parent());
    let cmd = "readlink /proc/self/ns/pid /proc/self/ns/mnt /proc/self/ns/uts; pwd; \
               tr '\\0' ' ' < /proc/1/cmdline; echo; echo $MESOS_SANDBOX";
    let out = c.rt.block_on(async {
        let output = api
            .stream(&ContainerCall::LaunchSession(launch_of(&id, cmd, None)))
            .await
            .unwrap();
        collect(output).await
    });
    let lines: Vec<&str> = out.0.lines().collect();
    assert_eq!(lines.len(), 6, "{out:?}");
    for (line, ns) in lines[..3].iter().zip(["pid", "mnt", "uts"]) {
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(*line, ours.to_string_lossy(), "{ns} namespace: {out:?}");
    }
    // The task's working directory, its PID 1 and its environment.
    assert_eq!(lines[3], "/mnt/mesos/sandbox", "{out:?}");
    assert!(!lines[4].contains("keel-agent enter"), "{out:?}");
    assert_eq!(lines[5], "/mnt/mesos/sandbox", "{out:?}");
}

#[test]
fn a_session_reads_stdin_until_eof() {
    let mut c = Cluster::start();
    let api = c.api();
    let id = nested(&c.parent());
    let out = c.rt.block_on(async {
        let output = api
            .stream(&ContainerCall::LaunchSession(launch_of(&id, "cat", None)))
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(4);
        let input = {
            let (api, id) = (api.clone(), id.clone());
            tokio::spawn(async move { api.attach_input(&id, rx).await })
        };
        tx.send(InputRecord::Heartbeat).await.unwrap();
        tx.send(InputRecord::Stdin(b"hello ".to_vec()))
            .await
            .unwrap();
        tx.send(InputRecord::Stdin(b"stdin\n".to_vec()))
            .await
            .unwrap();
        tx.send(InputRecord::Stdin(Vec::new())).await.unwrap();
        drop(tx);
        let (out, _) = collect(output).await;
        input.await.unwrap().unwrap();
        let wait = api
            .wait(&ContainerCall::Wait(id.clone(), Form::Container))
            .await
            .unwrap();
        assert_eq!(wait.code(), Some(0));
        out
    });
    assert_eq!(out, "hello stdin\n");
    // An input stream the caller keeps open ends with the container.
    let short = nested(&c.parent());
    c.rt.block_on(async {
        let output = api
            .stream(&ContainerCall::LaunchSession(launch_of(
                &short,
                "sleep 0.5",
                None,
            )))
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(1);
        let input = tokio::time::timeout(Duration::from_secs(10), api.attach_input(&short, rx));
        input
            .await
            .expect("the input call ended with the container")
            .unwrap();
        drop(tx);
        collect(output).await;
    });
    c.task_unaffected();
}

#[test]
fn a_session_with_a_terminal_gets_its_size_and_input() {
    let c = Cluster::start();
    let api = c.api();
    let id = nested(&c.parent());
    let size = WindowSize {
        rows: 33,
        columns: 101,
    };
    let out = c.rt.block_on(async {
        let cmd = "test -t 0 && stty size; read line; stty size; echo got:$line";
        let mut output = api
            .stream(&ContainerCall::LaunchSession(launch_of(
                &id,
                cmd,
                Some(size),
            )))
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(4);
        let input = {
            let (api, id) = (api.clone(), id.clone());
            tokio::spawn(async move { api.attach_input(&id, rx).await })
        };
        // The size it started with, then a new one and a line typed.
        let mut seen = String::new();
        while !seen.contains("33 101\r\n") {
            let r = output.next().await.unwrap().expect("more output");
            seen.push_str(&String::from_utf8_lossy(&r.bytes().unwrap().1));
        }
        tx.send(InputRecord::Window(WindowSize {
            rows: 40,
            columns: 120,
        }))
        .await
        .unwrap();
        tx.send(InputRecord::Stdin(b"typed\n".to_vec()))
            .await
            .unwrap();
        let (rest, _) = collect(output).await;
        drop(tx);
        let _ = input.await;
        seen + &rest
    });
    // A terminal echoes what is typed and ends lines with CR LF.
    assert!(out.contains("33 101\r\n"), "{out:?}");
    assert!(out.contains("40 120\r\n"), "{out:?}");
    assert!(out.contains("got:typed"), "{out:?}");
}

#[test]
fn nested_containers_launch_wait_kill_and_remove() {
    let mut c = Cluster::start();
    let api = c.api();
    let parent = c.parent();
    let id = nested(&parent);
    let done = nested(&parent);
    c.rt.block_on(async {
        let sleeper = ContainerCall::Launch(launch_of(&id, "sleep 100", None), Form::Nested);
        assert_eq!(api.call(&sleeper).await.unwrap().as_u16(), 200);
        // The same id again: 202, as Mesos.
        assert_eq!(api.call(&sleeper).await.unwrap().as_u16(), 202);
        let waiter = {
            let (api, id) = (api.clone(), id.clone());
            tokio::spawn(async move { api.wait(&ContainerCall::Wait(id, Form::Nested)).await })
        };
        // Removing a running container is refused.
        let (code, reason) = refusal(
            api.call(&ContainerCall::Remove(id.clone(), Form::Nested))
                .await,
        );
        assert_eq!(
            (code, reason.as_str()),
            (500, "Nested container has not terminated yet")
        );
        let kill = ContainerCall::Kill(id.clone(), 15, Form::Container);
        assert_eq!(api.call(&kill).await.unwrap().as_u16(), 200);
        let wait = waiter.await.unwrap().unwrap();
        assert_eq!(wait.exit_status, Some(15), "{wait:?}");
        // Killed already: 404 with Mesos' message.
        let (code, reason) = refusal(api.call(&kill).await);
        assert_eq!(code, 404);
        assert!(
            reason.contains("cannot be found (or is already killed)"),
            "{reason}"
        );

        // LAUNCH_CONTAINER with a parent: output kept in its own sandbox.
        let echo =
            ContainerCall::Launch(launch_of(&done, "echo to-file; pwd", None), Form::Container);
        assert_eq!(api.call(&echo).await.unwrap().as_u16(), 200);
        let w = api
            .wait(&ContainerCall::Wait(done.clone(), Form::Container))
            .await
            .unwrap();
        assert_eq!(w.code(), Some(0));
        for removed in [&id, &done] {
            let remove = ContainerCall::Remove(removed.clone(), Form::Container);
            assert_eq!(api.call(&remove).await.unwrap().as_u16(), 200);
        }
        let (code, _) = refusal(
            api.wait(&ContainerCall::Wait(id.clone(), Form::Nested))
                .await,
        );
        assert_eq!(code, 404);
    });
    // The nested sandbox was below the task's and is gone after REMOVE.
    let leftovers = find(&c.agent_dir(), &done.value);
    assert!(leftovers.is_empty(), "{leftovers:?}");
    c.task_unaffected();
}

/// Paths under `dir` whose name is `name`.
fn find(dir: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if e.file_name().to_string_lossy() == name {
            out.push(path.clone());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(find(&path, name));
        }
    }
    out
}

#[test]
fn a_nested_container_writes_its_output_to_its_sandbox() {
    let c = Cluster::start();
    let api = c.api();
    let id = nested(&c.parent());
    c.rt.block_on(async {
        let call = ContainerCall::Launch(
            launch_of(&id, "echo kept; echo $MESOS_SANDBOX", None),
            Form::Nested,
        );
        api.call(&call).await.unwrap();
        api.wait(&ContainerCall::Wait(id.clone(), Form::Nested))
            .await
            .unwrap();
    });
    let dirs = find(&c.agent_dir(), &id.value);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    assert!(
        dirs[0].parent().unwrap().ends_with("containers"),
        "{dirs:?}"
    );
    let stdout = std::fs::read_to_string(dirs[0].join("stdout")).unwrap();
    assert!(stdout.starts_with("kept\n"), "{stdout:?}");
    assert!(
        stdout
            .trim_end()
            .ends_with(&format!("containers/{}", id.value)),
        "{stdout:?}"
    );
}

#[test]
fn a_standalone_container_has_its_own_sandbox() {
    let c = Cluster::start();
    let api = c.api();
    let id = ContainerId::new(format!("standalone-{}", uuid::Uuid::new_v4()));
    let sandbox = c.agent_dir().join("containers").join(&id.value);
    c.rt.block_on(async {
        let call = ContainerCall::Launch(
            launch_of(&id, "echo alone > made; exit 4", None),
            Form::Container,
        );
        assert_eq!(api.call(&call).await.unwrap().as_u16(), 200);
        let w = api
            .wait(&ContainerCall::Wait(id.clone(), Form::Container))
            .await
            .unwrap();
        assert_eq!(w.code(), Some(4));
        assert_eq!(
            std::fs::read_to_string(sandbox.join("made")).unwrap(),
            "alone\n"
        );
        let remove = ContainerCall::Remove(id.clone(), Form::Container);
        assert_eq!(api.call(&remove).await.unwrap().as_u16(), 200);
    });
    assert!(!sandbox.exists());
}

#[test]
fn attach_output_follows_a_running_container() {
    let c = Cluster::start();
    let api = c.api();
    let id = nested(&c.parent());
    let out = c.rt.block_on(async {
        let cmd = "sleep 1; echo one; sleep 0.5; echo two";
        let call = ContainerCall::Launch(launch_of(&id, cmd, None), Form::Nested);
        api.call(&call).await.unwrap();
        let output = api
            .stream(&ContainerCall::AttachOutput(id.clone()))
            .await
            .unwrap();
        collect(output).await.0
    });
    assert_eq!(out, "one\ntwo\n");
}

#[test]
fn bad_input_gets_mesos_messages_and_leaves_the_task_alone() {
    let mut c = Cluster::start();
    let api = c.api();
    let parent = c.parent();
    c.rt.block_on(async {
        // A nested container under a parent that does not exist.
        let orphan = ContainerId::nested(ContainerId::new("no-such-parent"), "x");
        let (code, reason) = refusal(
            api.call(&ContainerCall::Launch(
                launch_of(&orphan, "true", None),
                Form::Nested,
            ))
            .await,
        );
        assert_eq!(
            (code, reason.as_str()),
            (400, "Parent container no-such-parent does not exist")
        );
        // ATTACH to an unknown container.
        let unknown = nested(&parent);
        let (code, reason) = refusal(
            api.stream(&ContainerCall::AttachOutput(unknown.clone()))
                .await,
        );
        assert_eq!(code, 404);
        assert_eq!(reason, format!("Container {unknown} cannot be found"));
        // ATTACH to a finished one.
        let finished = nested(&parent);
        api.call(&ContainerCall::Launch(
            launch_of(&finished, "true", None),
            Form::Nested,
        ))
        .await
        .unwrap();
        api.wait(&ContainerCall::Wait(finished.clone(), Form::Nested))
            .await
            .unwrap();
        let (code, _) = refusal(
            api.stream(&ContainerCall::AttachOutput(finished.clone()))
                .await,
        );
        assert_eq!(code, 404);
        let (_, rx) = mpsc::channel(1);
        let (code, _) = refusal(api.attach_input(&finished, rx).await);
        assert_eq!(code, 404);
    });
    // On the wire: an invalid id, a missing parent, JSON that is not a call.
    let call = |body: &str| post_json(c.port, "/api/v1", body);
    let (code, _, body) = call(
        r#"{"type":"LAUNCH_NESTED_CONTAINER_SESSION","launch_nested_container_session":{"container_id":{"value":"a.b","parent":{"value":"p"}}}}"#,
    );
    assert_eq!(code, 400);
    assert!(body.contains("contains invalid characters"), "{body}");
    let (code, _, body) = call(
        r#"{"type":"WAIT_NESTED_CONTAINER","wait_nested_container":{"container_id":{"value":"c"}}}"#,
    );
    assert_eq!(
        (code, body.as_str()),
        (
            400,
            "Failed to validate agent::Call: Expecting 'wait_nested_container.container_id.parent' to be present"
        )
    );
    let (code, _, _) = call("{not json");
    assert_eq!(code, 400);
    // The other calls share the dispatcher.
    let (code, _, _) = call(r#"{"type":"GET_STATE"}"#);
    assert_eq!(code, 200);
    let (code, _, body) = http(c.port, "POST", "/api/v1", &[], b"{}").unwrap();
    assert_eq!(
        (code, body.as_str()),
        (400, "Expecting 'Content-Type' to be present")
    );

    // ATTACH_CONTAINER_INPUT: an oversized record, and a record that is
    // not stdin, against a live session; the session keeps running.
    let live = nested(&parent);
    let api2 = api.clone();
    let session = {
        let live = live.clone();
        c.rt.spawn(async move {
            let output = api2
                .stream(&ContainerCall::LaunchSession(launch_of(
                    &live, "sleep 30", None,
                )))
                .await
                .unwrap();
            collect(output).await
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let first = keel_api::recordio::encode(&keel_api::agent::containers::attach_input_first(&live));
    let headers = [
        ("Content-Type", "application/recordio"),
        ("Message-Content-Type", "application/json"),
    ];
    let mut big = first.clone().into_bytes();
    big.extend(format!("{}\n", 4 << 20).as_bytes());
    let (code, _, body) = http(c.port, "POST", "/api/v1", &headers, &big).unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("exceeds the limit"), "{body}");
    let stdout_record = r#"{"type":"ATTACH_CONTAINER_INPUT","attach_container_input":{"type":"PROCESS_IO","process_io":{"type":"DATA","data":{"type":"STDOUT","data":""}}}}"#;
    let mut wrong = first.clone().into_bytes();
    wrong.extend(format!("{}\n{stdout_record}", stdout_record.len()).as_bytes());
    let (code, _, body) = http(c.port, "POST", "/api/v1", &headers, &wrong).unwrap();
    assert_eq!(
        (code, body.as_str()),
        (400, "Expecting 'process_io.data.type' to be 'STDIN'")
    );
    let (code, _, body) = http(
        c.port,
        "POST",
        "/api/v1",
        &[("Content-Type", "application/recordio")],
        first.as_bytes(),
    )
    .unwrap();
    assert_eq!(
        (code, body.as_str()),
        (
            400,
            "Expecting 'Message-Content-Type' to be set for streaming requests"
        )
    );
    let kill = ContainerCall::Kill(live.clone(), 9, Form::Nested);
    c.rt.block_on(api.call(&kill)).unwrap();
    let _ = c.rt.block_on(session);
    c.task_unaffected();
    let _ = &c.agent;
}

#[test]
fn closing_a_session_kills_its_container() {
    let c = Cluster::start();
    let api = c.api();
    let id = nested(&c.parent());
    c.rt.block_on(async {
        let output = api
            .stream(&ContainerCall::LaunchSession(launch_of(
                &id,
                "sleep 300",
                None,
            )))
            .await
            .unwrap();
        drop(output);
        let wait = tokio::time::timeout(
            Duration::from_secs(10),
            api.wait(&ContainerCall::Wait(id.clone(), Form::Nested)),
        )
        .await
        .expect("the session's container ended")
        .unwrap();
        assert_eq!(wait.exit_status, Some(9), "{wait:?}");
    });
}

/// Pids of processes whose command line is `cmdline` (NULs as spaces).
fn processes(cmdline: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim() == cmdline)
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn containers_die_with_the_agent_and_the_task_does_not() {
    let mut c = Cluster::start();
    let api = c.api();
    let parent = c.parent();
    let (session, nested_id) = (nested(&parent), nested(&parent));
    let output = c.rt.block_on(async {
        let call = ContainerCall::Launch(launch_of(&nested_id, "sleep 317", None), Form::Nested);
        api.call(&call).await.unwrap();
        api.stream(&ContainerCall::LaunchSession(launch_of(
            &session,
            "sleep 318",
            None,
        )))
        .await
        .unwrap()
    });
    wait_for(
        T,
        "both containers run",
        || !processes("sleep 317").is_empty() && !processes("sleep 318").is_empty(),
        || c.agent.log_text(),
    );
    c.agent.kill9();
    wait_for(
        T,
        "the agent's containers are gone",
        || processes("sleep 317").is_empty() && processes("sleep 318").is_empty(),
        String::new,
    );
    drop(output);
    assert!(
        !processes("sleep 600").is_empty(),
        "the task survives the agent"
    );
}
