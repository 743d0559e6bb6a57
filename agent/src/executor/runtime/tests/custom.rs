//! Custom executors with the fake launcher: the executor process, its
//! subscription, tasks sent after SUBSCRIBED, updates and their
//! acknowledgements, messages, kills, timeouts and the executor's end.

use std::time::Duration;

use keel_api::executor::Event;
use keel_api::mesos::{self, TaskState};
use keel_api::pb;
use serde_json::json;
use tokio::sync::mpsc;

use super::*;
use crate::executor::launcher::ExitStatus;
use crate::executor::runtime::custom_calls::{Caller, ExecutorApiError};

fn custom_task(id: &str) -> String {
    json!({"name": id, "task_id": {"value": id}, "agent_id": {"value": "a-S0"},
           "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}],
           "executor": {"executor_id": {"value": "ex"}, "type": "CUSTOM",
                        "command": {"value": "./my-executor"},
                        "resources": [{"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}]}})
    .to_string()
}

fn caller() -> Caller {
    Caller {
        framework_id: "fw".into(),
        executor_id: "ex".into(),
        token: None,
    }
}

async fn event(rx: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("no executor event")
        .expect("executor stream ended")
}

fn status(task: &str, state: TaskState, uuid: u8) -> (mesos::TaskStatus, Vec<u8>) {
    let bytes = vec![uuid; 16];
    let mut st = mesos::TaskStatus::new(task, state);
    st.source = Some("SOURCE_EXECUTOR".into());
    st.uuid = Some(mesos::base64_encode(&bytes));
    (st, bytes)
}

#[tokio::test]
async fn an_executor_runs_its_tasks_and_hears_acknowledgements() {
    let mut h = harness();
    h.exec.call(launch("fw", vec![custom_task("t1")], None));
    let (_, spec) = h.spawned(1).await;
    let env = env(&spec);
    assert_eq!(spec.argv.last().unwrap(), "./my-executor");
    assert_eq!(env["MESOS_EXECUTOR_ID"], "ex");
    assert_eq!(env["MESOS_FRAMEWORK_ID"], "fw");
    assert_eq!(env["MESOS_AGENT_ENDPOINT"], "127.0.0.1:5051");
    assert!(!env.contains_key("MESOS_TASK_ID"));
    // Calls before SUBSCRIBE are refused; tasks wait.
    let (up, _) = status("t1", TaskState::TASK_RUNNING, 1);
    assert_eq!(
        h.exec.executor_update(caller(), up, vec![1; 16]).await,
        Err(ExecutorApiError::NotSubscribed)
    );
    h.quiet().await;
    let mut rx = h
        .exec
        .executor_subscribe(caller(), vec![], vec![])
        .await
        .unwrap();
    let Event::Subscribed { container_id, .. } = event(&mut rx).await else {
        panic!("not SUBSCRIBED first");
    };
    assert!(!container_id.is_empty());
    let Event::Launch(task) = event(&mut rx).await else {
        panic!("no LAUNCH");
    };
    assert_eq!(task["task_id"]["value"], "t1");
    // A second task goes straight to the subscribed executor.
    h.exec.call(launch("fw", vec![custom_task("t2")], None));
    let Event::Launch(task) = event(&mut rx).await else {
        panic!("no LAUNCH");
    };
    assert_eq!(task["task_id"]["value"], "t2");
    assert_eq!(h.fake.spawned().len(), 1, "one process per executor");
    let (running, uuid) = status("t1", TaskState::TASK_RUNNING, 7);
    h.exec
        .executor_update(caller(), running.clone(), uuid.clone())
        .await
        .unwrap();
    let u = h.expect("t1", "TASK_RUNNING").await;
    assert_eq!(st(&u).uuid, uuid, "the executor's uuid is kept");
    assert_eq!(st(&u).executor_id, "ex");
    // A duplicate is ignored.
    h.exec
        .executor_update(caller(), running, uuid.clone())
        .await
        .unwrap();
    h.ack(&u);
    assert_eq!(
        event(&mut rx).await,
        Event::Acknowledged {
            task_id: "t1".into(),
            uuid
        }
    );
    let (done, uuid) = status("t1", TaskState::TASK_FINISHED, 8);
    h.exec.executor_update(caller(), done, uuid).await.unwrap();
    h.expect_ack("t1", "TASK_FINISHED").await;
    // A scheduler's message reaches it; its own goes upstream.
    let (up_tx, mut up_rx) = mpsc::unbounded_channel();
    h.exec.attach_upstream(up_tx);
    h.exec
        .call(ExecutorCall::FrameworkMessage(pb::FrameworkMessage {
            framework_id: "fw".into(),
            executor_id: "ex".into(),
            data: b"ping".to_vec(),
        }));
    assert!(matches!(event(&mut rx).await, Event::Acknowledged { .. }));
    assert_eq!(event(&mut rx).await, Event::Message(b"ping".to_vec()));
    h.exec
        .executor_message(caller(), b"pong".to_vec())
        .await
        .unwrap();
    let Some(pb::agent_message::Msg::ExecutorMessage(m)) = up_rx.recv().await else {
        panic!("no executor message upstream");
    };
    assert_eq!(m.data, b"pong");
    // The executor dies: its live task fails, the master hears of it.
    let pid = h.spawned(1).await.0;
    h.fake.exit(pid, ExitStatus::Exited(3));
    let u = h.expect("t2", "TASK_FAILED").await;
    assert_eq!(st(&u).reason, "REASON_EXECUTOR_TERMINATED");
    assert_eq!(st(&u).source, "SOURCE_AGENT");
    let Some(pb::agent_message::Msg::ExecutorExited(x)) = up_rx.recv().await else {
        panic!("no exit upstream");
    };
    assert_eq!((x.executor_id.as_str(), x.status), ("ex", Some(3 << 8)));
}

#[tokio::test]
async fn calls_for_unknown_executors_are_refused() {
    let h = harness();
    let unknown = Caller {
        framework_id: "nope".into(),
        ..caller()
    };
    let r = h.exec.executor_subscribe(unknown, vec![], vec![]).await;
    assert_eq!(r.err(), Some(ExecutorApiError::UnknownFramework));
    h.exec.call(launch("fw", vec![custom_task("t1")], None));
    h.spawned(1).await;
    let other = Caller {
        executor_id: "other".into(),
        ..caller()
    };
    let r = h.exec.executor_subscribe(other, vec![], vec![]).await;
    assert_eq!(r.err(), Some(ExecutorApiError::UnknownExecutor));
    let wrong = Caller {
        token: Some("forged".into()),
        ..caller()
    };
    let r = h.exec.executor_subscribe(wrong, vec![], vec![]).await;
    assert_eq!(r.err(), Some(ExecutorApiError::WrongToken));
    let token = env(&h.spawned(1).await.1)["MESOS_EXECUTOR_AUTHENTICATION_TOKEN"].clone();
    let right = Caller {
        token: Some(token),
        ..caller()
    };
    assert!(
        h.exec
            .executor_subscribe(right, vec![], vec![])
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn an_executor_that_never_subscribes_fails_its_tasks() {
    let mut h = harness_with(|c| c.executors.registration_timeout = Duration::from_millis(200));
    h.exec.call(launch("fw", vec![custom_task("t1")], None));
    let u = h.expect("t1", "TASK_FAILED").await;
    assert_eq!(st(&u).reason, "REASON_EXECUTOR_REGISTRATION_TIMEOUT");
    assert!(
        st(&u)
            .message
            .starts_with("Executor did not register within"),
        "{u:?}"
    );
    let pid = h.spawned(1).await.0;
    assert!(!h.fake.is_running(pid), "the executor was killed");
}

#[tokio::test]
async fn a_kill_before_delivery_ends_the_task_and_after_goes_to_the_executor() {
    let mut h = harness();
    h.exec.call(launch(
        "fw",
        vec![custom_task("t1"), custom_task("t2")],
        None,
    ));
    h.spawned(1).await;
    h.exec.call(kill("fw", "t1", None));
    let u = h.expect("t1", "TASK_KILLED").await;
    assert_eq!(st(&u).reason, "REASON_TASK_KILLED_DURING_LAUNCH");
    let mut rx = h
        .exec
        .executor_subscribe(caller(), vec![], vec![])
        .await
        .unwrap();
    assert!(matches!(event(&mut rx).await, Event::Subscribed { .. }));
    let Event::Launch(t) = event(&mut rx).await else {
        panic!()
    };
    assert_eq!(t["task_id"]["value"], "t2", "the killed task is not sent");
    h.exec.call(kill("fw", "t2", Some(1500)));
    let Event::Kill {
        task_id,
        kill_policy,
    } = event(&mut rx).await
    else {
        panic!("no KILL");
    };
    assert_eq!(task_id, "t2");
    assert_eq!(
        kill_policy.unwrap().grace_period.unwrap().nanoseconds,
        1_500_000_000
    );
    // SHUTDOWN of the framework: SHUTDOWN to the executor, then its end.
    h.exec
        .call(ExecutorCall::ShutdownFramework(pb::ShutdownFramework {
            framework_id: "fw".into(),
        }));
    assert_eq!(event(&mut rx).await, Event::Shutdown);
    let pid = h.spawned(1).await.0;
    h.fake.exit(pid, ExitStatus::Exited(0));
    h.expect("t2", "TASK_KILLED").await;
}
