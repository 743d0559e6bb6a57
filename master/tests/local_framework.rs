//! An in-process framework (the path built-in service and job schedulers
//! take) launches a task on a real agent to TASK_FINISHED through the same
//! engine path as an HTTP framework, and shows in GET_FRAMEWORKS.

mod support;

use std::sync::Arc;
use std::time::Duration;

use keel_api::mesos::{self, TaskState};
use keel_api::scheduler::{CallKind, Event, Operation, OperationKind, Subscribe};
use keel_master::core::local::LocalFramework;
use keel_master::{Master, MasterConfig};
use serde_json::json;
use support::*;

const T: Duration = Duration::from_secs(30);

async fn next(fw: &mut LocalFramework, kind: &str) -> Event {
    loop {
        let e = tokio::time::timeout(T, fw.next_event())
            .await
            .unwrap_or_else(|_| panic!("no {kind} within {T:?}"))
            .expect("subscription ended");
        if e.kind() == kind {
            return e;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_framework_runs_a_task_to_finished() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut config = MasterConfig::local(port, dir.path().join("master"));
    config.heartbeat_interval = Duration::from_millis(300);
    let master: Arc<Master> = Master::open(config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(keel_master::run(listener, Arc::clone(&master), async {
        let _ = stopped.await;
    }));
    let agent = start_agent(
        dir.path(),
        &format!("127.0.0.1:{port}"),
        &["--resources", "cpus:2;mem:512", "--isolation", "none"],
    );

    let info: mesos::FrameworkInfo =
        mesos::parse(json!({"user": "root", "name": "built-in", "role": "keel-test"})).unwrap();
    let mut fw = LocalFramework::subscribe(
        &master,
        Subscribe {
            framework_info: info,
            suppressed_roles: Vec::new(),
        },
    )
    .await
    .unwrap();
    let Event::Offers(offers) = next(&mut fw, "OFFERS").await else {
        unreachable!()
    };
    let offer = &offers[0];
    assert_eq!(
        offer.allocation_info.as_ref().unwrap().role.as_deref(),
        Some("keel-test")
    );
    // GET_AGENTS shows what the outstanding offer holds.
    let api = keel_client::Client::new(&format!("127.0.0.1:{port}")).unwrap();
    let sum = |rs: &[keel_api::mesos::Resource], name: &str| -> f64 {
        rs.iter()
            .filter(|r| r.name == name)
            .map(|r| r.scalar_value())
            .sum()
    };
    let agents = api.get_agents().await.unwrap().agents;
    assert_eq!(sum(&agents[0].offered_resources, "cpus"), 2.0);
    assert_eq!(sum(&agents[0].allocated_resources, "cpus"), 0.0);
    let task: mesos::TaskInfo = mesos::parse(json!({
        "name": "hello", "task_id": {"value": "hello"}, "agent_id": offer.agent_id,
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}],
        "command": {"value": "echo hello from inside the master; sleep 1"}
    }))
    .unwrap();
    fw.call(CallKind::Accept {
        offer_ids: vec![offer.id.value.clone()],
        operations: vec![Operation {
            id: None,
            kind: OperationKind::Launch {
                task_infos: vec![task],
            },
        }],
        filters: Default::default(),
    })
    .await
    .unwrap();
    let mut states = Vec::new();
    while states.last() != Some(&TaskState::TASK_FINISHED) {
        let Event::Update(status) = next(&mut fw, "UPDATE").await else {
            unreachable!()
        };
        states.push(status.state);
        if status.state == TaskState::TASK_RUNNING {
            // A running task's resources are allocated on its agent.
            let agents = api.get_agents().await.unwrap().agents;
            assert_eq!(sum(&agents[0].allocated_resources, "cpus"), 0.1);
        }
        if let Some(uuid) = status.uuid.as_deref().and_then(mesos::base64_decode) {
            fw.call(CallKind::Acknowledge {
                agent_id: status.agent_id.unwrap().value,
                task_id: status.task_id.value,
                uuid,
            })
            .await
            .unwrap();
        }
    }
    assert_eq!(
        states,
        [
            TaskState::TASK_STARTING,
            TaskState::TASK_RUNNING,
            TaskState::TASK_FINISHED
        ],
        "{}",
        agent.log_text()
    );
    // It is a framework like any other.
    let (code, _, body) = post_json(port, "/api/v1", r#"{"type":"GET_FRAMEWORKS"}"#);
    assert_eq!(code, 200);
    assert!(
        body.contains("built-in") && body.contains(fw.framework_id()),
        "{body}"
    );
    let _ = stop.send(());
    let _ = server.await;
    drop(agent);
}

#[tokio::test]
async fn subscribing_again_ends_the_old_stream_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let master = Master::open(MasterConfig::local(1, dir.path().to_path_buf()))
        .await
        .unwrap();
    let info = |id: Option<&str>| {
        let mut v = json!({"user": "root", "name": "twice", "failover_timeout": 60});
        if let Some(id) = id {
            v["id"] = json!({"value": id});
        }
        Subscribe {
            framework_info: mesos::parse(v).unwrap(),
            suppressed_roles: Vec::new(),
        }
    };
    let mut first = LocalFramework::subscribe(&master, info(None))
        .await
        .unwrap();
    let id = first.framework_id().to_string();
    let second = LocalFramework::subscribe(&master, info(Some(&id)))
        .await
        .unwrap();
    assert_eq!(second.framework_id(), id);
    let Some(Event::Error(message)) = first.next_event().await else {
        panic!("no ERROR on the old stream");
    };
    assert_eq!(message, "Framework failed over");
    // And then the old stream ends.
    let end = tokio::time::timeout(T, first.next_event()).await.unwrap();
    assert!(end.is_none(), "{end:?}");
    // Calls on the old stream are refused; the new one works.
    assert!(
        first
            .call(CallKind::Revive { roles: vec![] })
            .await
            .is_err()
    );
    second
        .call(CallKind::Revive { roles: vec![] })
        .await
        .unwrap();
}
