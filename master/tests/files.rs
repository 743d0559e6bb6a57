//! LIST_FILES and READ_FILE through the master (`http/files.rs`,
//! `docs/design/0011-files-and-volumes.md`): a real task's sandbox on a
//! real agent, listed and read at `/agents/<agent-id>/frameworks/...`,
//! exact bytes included; bad input (`..`, negative offsets and lengths,
//! an unknown agent, a missing file, a path outside the scheme) answered
//! 4xx with a reason. Once on a plaintext master, once with TLS, where the
//! master reaches the agent's port with its certificate and a grant it
//! signs, and a caller without `access_sandboxes` is refused.

mod support;

use std::time::Duration;

use keel_api::mesos::TaskState;
use keel_api::scheduler::Event;
use keel_client::blocking::Client;
use keel_client::{ClientError, Credentials};
use keel_pki::{Ca, Material};
use serde_json::json;
use support::scheduler::{command_task, info};
use support::*;

const T: Duration = Duration::from_secs(30);

/// The task writes this to its stdout, and these bytes (not UTF-8) to a
/// file.
const OUT: &str = "hello-files\n";
const BLOB: &[u8] = b"a\x00\xffz";

/// Runs the task to TASK_FINISHED; the agent id and framework id.
fn finished_task(m: &Master, agent: &Proc) -> (String, String) {
    wait_for(
        T,
        "the agent registered",
        || m.api.keel_agents().is_ok_and(|a| a.agents.len() == 1),
        || agent.log_text(),
    );
    let agent_id = m.keel_agents()[0].id.clone();
    let mut fw = m
        .api
        .subscribe_framework(info(json!({"user": "root", "name": "files"})))
        .unwrap();
    let Some(Event::Offers(offers)) = fw.next_of("OFFERS", T).unwrap() else {
        panic!("no offer; {}", agent.log_text())
    };
    let cmd = "printf 'hello-files\\n'; printf 'a\\000\\377z' > blob";
    let task = command_task(&offers[0], "files-task", cmd, 0.1, 32.0);
    fw.launch(&offers[0], vec![task], None).unwrap();
    loop {
        let Some(Event::Update(st)) = fw.next_of("UPDATE", T).unwrap() else {
            panic!("no update; {}", agent.log_text())
        };
        fw.acknowledge(&st).unwrap();
        if st.state.is_terminal() {
            assert_eq!(st.state, TaskState::TASK_FINISHED, "{st:?}");
            break;
        }
    }
    (agent_id, fw.framework_id().value.clone())
}

fn status(r: Result<impl std::fmt::Debug, ClientError>) -> (u16, String) {
    match r {
        Err(ClientError::Status { status, reason, .. }) => (status, reason),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Lists and reads the task's sandbox through the master `api`.
fn reads_the_sandbox(api: &Client, agent_id: &str, fw: &str) {
    let base = format!("/agents/{agent_id}/frameworks/{fw}");
    let executors = api.list_files(&format!("{base}/executors")).unwrap();
    assert_eq!(executors.len(), 1, "{executors:?}");
    let executor = &executors[0];
    assert!(executor.path.starts_with(&format!("{base}/executors/")));
    assert_eq!(executor.mode.map(|m| m & 0o170000), Some(0o040000));
    let sandbox = format!("{}/runs/latest", executor.path);
    let entries = api.list_files(&sandbox).unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    for file in ["stdout", "stderr", "blob"] {
        assert!(
            names.contains(&format!("{sandbox}/{file}").as_str()),
            "{file} in {names:?}"
        );
    }
    let stdout = entries
        .iter()
        .find(|e| e.path.ends_with("/stdout"))
        .unwrap();
    assert_eq!(stdout.size, Some(OUT.len() as u64));
    assert_eq!(stdout.mode.map(|m| m & 0o170000), Some(0o100000));
    assert!(stdout.mtime.is_some_and(|t| t.nanoseconds > 0));

    let read = |path: &str, offset, length| api.read_file(path, offset, length).unwrap();
    let out = read(&format!("{sandbox}/stdout"), 0, None);
    assert_eq!(out.size, OUT.len() as u64);
    assert_eq!(out.bytes().unwrap(), OUT.as_bytes());
    let part = read(&format!("{sandbox}/stdout"), 6, Some(3));
    assert_eq!(part.bytes().unwrap(), b"fil");
    let blob = read(&format!("{sandbox}/blob"), 0, Some(100));
    assert_eq!((blob.size, blob.bytes().unwrap()), (4, BLOB.to_vec()));
    let past = read(&format!("{sandbox}/blob"), 10, None);
    assert_eq!((past.size, past.bytes().unwrap()), (4, Vec::new()));
    let none = read(&format!("{sandbox}/blob"), 1, Some(0));
    assert_eq!((none.size, none.bytes().unwrap()), (4, Vec::new()));

    // Bad input: 4xx, with a reason.
    for (result, code, needle) in [
        (
            status(api.read_file(&format!("{sandbox}/../../../../x"), 0, None)),
            400,
            "'..'",
        ),
        (
            status(api.list_files(&format!("{base}/../../etc"))),
            400,
            "'..'",
        ),
        (
            status(api.read_file(&format!("{sandbox}/stdout"), -1, None)),
            400,
            "Negative offset",
        ),
        (
            status(api.read_file(&format!("{sandbox}/stdout"), 0, Some(-5))),
            400,
            "Negative length",
        ),
        (
            status(api.read_file(&format!("{sandbox}/missing"), 0, None)),
            404,
            "no such sandbox path",
        ),
        (
            status(api.list_files(&format!("{sandbox}/missing"))),
            404,
            "",
        ),
        (
            status(api.list_files(&format!("/agents/no-such-agent/frameworks/{fw}"))),
            404,
            "Agent 'no-such-agent' not found",
        ),
        (
            status(api.list_files("/master/log")),
            404,
            "/agents/<agent-id>",
        ),
        (status(api.read_file(&sandbox, 0, None)), 400, "directory"),
    ] {
        assert_eq!(result.0, code, "{result:?}");
        assert!(result.1.contains(needle), "{} lacks {needle}", result.1);
    }
}

#[test]
fn a_sandbox_is_read_through_the_master() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, agent) = master_and_agent(tmp.path());
    let (agent_id, fw) = finished_task(&m, &agent);
    reads_the_sandbox(&m.api, &agent_id, &fw);
}

#[test]
fn a_sandbox_is_read_through_the_master_over_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let ca = Ca::create("files test").unwrap();
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
    let ca_file = ca_file.display().to_string();
    let flags = ["--tls-ca", &ca_file, "--join-token", &token];
    let agent = start_agent(root, &m.addr(), &flags);
    let (agent_id, fw) = finished_task(&m, &agent);
    // The master's client is an admin's; the agent sees the master's
    // certificate and the grant it signed.
    reads_the_sandbox(&m.api, &agent_id, &fw);

    // A principal without access_sandboxes gets a 403, and no grant.
    let anon = Material::from_pem(ca.cert_pem(), None).unwrap();
    let viewer = Client::from_builder(
        keel_client::Client::builder(&m.addr())
            .discover_leader(false)
            .tls(Some(anon))
            .credentials(Some(Credentials::Basic {
                principal: "viewer".into(),
                secret: "viewer-secret".into(),
            })),
    )
    .unwrap();
    let path = format!("/agents/{agent_id}/frameworks/{fw}/executors");
    let (code, reason) = status(viewer.list_files(&path));
    assert_eq!(code, 403, "{reason}");
    assert!(reason.contains("access sandboxes"), "{reason}");
    let (code, _) = status(viewer.read_file(&format!("{path}/x/runs/latest/stdout"), 0, None));
    assert_eq!(code, 403);
}
