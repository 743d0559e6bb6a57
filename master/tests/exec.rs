//! `keelctl exec` and `keelctl attach` through the master
//! (`master/src/http/containers.rs`): the operator reaches only the
//! master, which relays the agent's nested-container calls. Once on a
//! plaintext master, once with TLS, where the master reaches the agent's
//! port with its certificate and a grant, and a caller without
//! `access_sandboxes` is refused.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use keel_api::agent::containers::{ContainerCall, ContainerId, Form, Launch, Stream};
use keel_api::mesos::{CommandInfo, TaskState};
use keel_api::scheduler::Event;
use keel_client::{ClientError, Credentials};
use keel_pki::{Ca, Material, Role};
use serde_json::json;
use support::scheduler::{command_task, info};
use support::*;

const T: Duration = Duration::from_secs(30);

/// Launches `tasks` (id, command) through the master's own client
/// (TLS or not) and waits until each runs; the subscription.
fn run_tasks(
    m: &Master,
    agent: &Proc,
    tasks: &[(&str, &str)],
) -> keel_client::blocking::Subscription {
    wait_for(
        T,
        "the agent registered",
        || m.api.keel_agents().is_ok_and(|a| a.agents.len() == 1),
        || agent.log_text(),
    );
    let mut fw = m
        .api
        .subscribe_framework(info(json!({"user": "root", "name": "exec"})))
        .unwrap();
    let Some(Event::Offers(offers)) = fw.next_of("OFFERS", T).unwrap() else {
        panic!("no offer; {}", agent.log_text())
    };
    let infos = tasks
        .iter()
        .map(|(id, cmd)| command_task(&offers[0], id, cmd, 0.1, 32.0))
        .collect();
    fw.launch(&offers[0], infos, None).unwrap();
    let mut running = 0;
    while running < tasks.len() {
        let Some(Event::Update(st)) = fw.next_of("UPDATE", T).unwrap() else {
            panic!("no update; {}", agent.log_text())
        };
        fw.acknowledge(&st).unwrap();
        assert!(!st.state.is_terminal(), "{st:?}\n{}", agent.log_text());
        if st.state == TaskState::TASK_RUNNING {
            running += 1;
        }
    }
    fw
}

/// `keelctl ARGS` with `stdin`; (exit code, stdout, stderr).
fn keelctl(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(bin("keelctl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn keelctl_exec_and_attach_go_through_the_master() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, agent) = master_and_agent(tmp.path());
    let ticks = "for i in $(seq 1 15); do echo tick-$i; sleep 0.4; done";
    let _fw = run_tasks(&m, &agent, &[("sleeper", "sleep 600"), ("ticker", ticks)]);
    let addr = m.addr();
    let exec = |args: &[&str], stdin: &[u8]| {
        let mut all = vec!["--master", addr.as_str(), "exec"];
        all.extend(args);
        keelctl(&all, stdin)
    };
    assert_eq!(
        exec(&["sleeper", "--", "echo hi"], b""),
        (0, "hi\n".into(), String::new())
    );
    let (code, out, _) = exec(
        &[
            "sleeper",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 7",
        ],
        b"",
    );
    assert_eq!((code, out.as_str()), (7, "out\n"));
    let (code, out, _) = exec(&["sleeper", "--", "cat"], b"piped input\n");
    assert_eq!((code, out.as_str()), (0, "piped input\n"));
    let (code, _, err) = exec(&["no-such-task", "--", "true"], b"");
    assert_eq!(code, 1);
    assert!(err.contains("Task 'no-such-task' is not running"), "{err}");

    // attach prints what the task writes from now until it ends.
    let (code, out, err) = keelctl(&["--master", &addr, "attach", "ticker"], b"");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("tick-15\n"), "{out:?}");
    assert!(
        !out.contains("tick-1\n"),
        "attached output starts at the end: {out:?}"
    );
}

#[test]
fn exec_through_a_tls_master_needs_sandbox_access() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let ca = Ca::create("exec test").unwrap();
    let acls = r#"{"permissive": true,
      "access_sandboxes": [{"principals": {"values": ["viewer"]}, "users": {"type": "NONE"}}]}"#;
    let extra = [
        "--credentials".to_string(),
        write_file(root, "creds", "viewer viewer-secret\n")
            .display()
            .to_string(),
        "--acls".to_string(),
        write_file(root, "acls.json", acls).display().to_string(),
    ];
    let (m, ca_file) = start_secure_master(root, &ca, &extra);
    let token = m
        .api
        .create_token(&keel_api::keel::CreateToken {
            kind: keel_api::keel::TokenKind::Join,
            principal: None,
            ttl_seconds: Some(3600),
            uses: Some(1),
        })
        .unwrap()
        .token;
    let ca_path = ca_file.display().to_string();
    let agent = start_agent(
        root,
        &m.addr(),
        &["--tls-ca", &ca_path, "--join-token", &token],
    );
    let _fw = run_tasks(&m, &agent, &[("sleeper", "sleep 600")]);

    // keelctl with an admin's certificate.
    let admin = ca
        .issue(Role::Admin, "exec-admin", &[], Duration::from_secs(3600))
        .unwrap();
    let cert = write_file(root, "admin.crt", &admin.cert_pem)
        .display()
        .to_string();
    let key = write_file(root, "admin.key", &admin.key_pem)
        .display()
        .to_string();
    let tls = [
        "--tls-ca",
        ca_path.as_str(),
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ];
    let addr = m.addr();
    let mut args = vec!["--master", addr.as_str()];
    args.extend(tls);
    args.extend(["exec", "sleeper", "--", "echo over tls"]);
    let (code, out, err) = keelctl(&args, b"");
    assert_eq!((code, out.as_str()), (0, "over tls\n"), "{err}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let material =
            Material::from_pem(ca.cert_pem(), Some((&admin.cert_pem, &admin.key_pem))).unwrap();
        let client = keel_client::Client::builder(&addr)
            .tls(Some(material))
            .build()
            .unwrap();
        let (api, parent) = client.task_container("sleeper", None).await.unwrap();
        let id = ContainerId::nested(parent, "tls-session");
        let launch = Launch {
            container_id: id.clone(),
            command: Some(CommandInfo {
                value: Some("echo relayed; exit 2".into()),
                ..Default::default()
            }),
            container: None,
            resources: Vec::new(),
        };
        let mut output = api
            .stream(&ContainerCall::LaunchSession(launch))
            .await
            .unwrap();
        let mut out = Vec::new();
        while let Some(r) = output.next().await.unwrap() {
            if let Some((Stream::Stdout, b)) = r.bytes() {
                out.extend(b);
            }
        }
        assert_eq!(out, b"relayed\n");
        let wait = api
            .wait(&ContainerCall::Wait(id, Form::Nested))
            .await
            .unwrap();
        assert_eq!(wait.code(), Some(2));

        // A principal without access_sandboxes is refused by the master.
        let anon = Material::from_pem(ca.cert_pem(), None).unwrap();
        let viewer = keel_client::Client::builder(&addr)
            .tls(Some(anon))
            .credentials(Some(Credentials::Basic {
                principal: "viewer".into(),
                secret: "viewer-secret".into(),
            }))
            .build()
            .unwrap();
        match viewer.task_container("sleeper", None).await {
            Err(ClientError::Status { status, reason, .. }) => {
                assert_eq!(status, 403, "{reason}");
                assert!(reason.contains("access sandboxes"), "{reason}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    });
}
