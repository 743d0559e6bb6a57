//! The Mesos v1 scheduler API against a real master and agent on loopback:
//! a framework launches real commands and sees their lifecycle; protocol
//! errors get the Mesos answers; agent loss is reported.

mod support;

use std::process::Command;
use std::time::Duration;

use keel_api::mesos::{Id, TaskState};
use keel_client::TaskQuery;
use keel_client::scheduler::{Call, Decline, Event, Kill, ReconcileTask, Subscribe};
use serde_json::json;
use support::scheduler::*;
use support::*;

const T: Duration = Duration::from_secs(20);

fn cluster(dir: &std::path::Path, agent_timeout: &str) -> (Master, Proc) {
    let m = Master::start(dir, free_port(), agent_timeout);
    let agent = start_agent(dir, &m.addr(), &["--resources", "cpus:4;mem:4096"]);
    wait_for(
        T,
        "agent",
        || !m.keel_agents().is_empty(),
        || agent.log_text(),
    );
    (m, agent)
}

fn update(s: &mut Scheduler) -> keel_api::mesos::TaskStatus {
    s.update(T)
}

fn decline(offer_id: &Id, refuse_seconds: f64) -> Call {
    Call::Decline(Decline {
        offer_ids: vec![offer_id.clone()],
        filters: Some(keel_api::mesos::Filters {
            refuse_seconds: Some(refuse_seconds),
        }),
    })
}

#[test]
fn a_framework_runs_a_command_task_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let (m, agent) = cluster(dir.path(), "5s");
    let mut s = Scheduler::subscribe(m.port, framework("e2e"));
    assert!(s.framework_id.ends_with("-0000"), "{}", s.framework_id);
    assert!(!s.stream_id.is_empty());

    let offer = s.offer(T);
    assert_eq!(scalar(&offer, "cpus"), 4.0);
    assert_eq!(offer.framework_id.value, s.framework_id.as_str());
    for r in &offer.resources {
        let role = r.allocation_info.as_ref().and_then(|a| a.role.as_deref());
        assert_eq!(role, Some("*"), "{r:?}");
    }

    let task = command_task(&offer, "hello", "echo hello; echo oops >&2", 0.5, 64.0);
    assert_eq!(launch(&s, &offer, vec![task]), 202);

    let mut seen = Vec::new();
    let mut uuids = std::collections::BTreeSet::new();
    loop {
        let st = update(&mut s);
        assert_eq!(st.task_id.value, "hello");
        assert_eq!(
            st.agent_id.as_ref(),
            Some(&offer.agent_id),
            "agent_id must be on every update"
        );
        let uuid = st.uuid.clone().expect("agent updates carry a uuid");
        assert_eq!(keel_api::mesos::base64_decode(&uuid).unwrap().len(), 16);
        assert!(uuids.insert(uuid));
        let state = st.state.name().to_string();
        seen.push(state.clone());
        s.ack(&st);
        if state == "TASK_FINISHED" {
            break;
        }
        assert!(seen.len() < 5, "{seen:?}");
    }
    assert_eq!(seen, ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]);

    // The output landed in the Mesos sandbox layout.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cat {}/agent/slaves/*/frameworks/*/executors/hello/runs/latest/stdout",
            dir.path().display()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");

    // The master's views follow: completed after the terminal ack.
    wait_for(
        T,
        "completed task",
        || m.api.get_tasks().unwrap().completed_tasks.len() == 1,
        || m.proc.log_text(),
    );
    let tasks = m.api.get_tasks().unwrap();
    assert_eq!(tasks.completed_tasks[0].state, TaskState::TASK_FINISHED);
    let state = m.api.legacy_state().unwrap();
    assert_eq!(state.frameworks[0].id, s.framework_id.as_str());
    assert_eq!(
        state.frameworks[0].completed_tasks[0].state,
        TaskState::TASK_FINISHED
    );

    // Explicit reconciliation of the finished task and of an unknown one.
    let task = |id: &str| ReconcileTask {
        task_id: Id::new(id),
        agent_id: None,
    };
    let (code, _) = s.call(Call::Reconcile(vec![task("hello"), task("nope")]));
    assert_eq!(code, 202);
    let mut answers = vec![update(&mut s), update(&mut s)];
    answers.sort_by_key(|a| a.task_id.value.clone());
    assert_eq!(answers[0].state, TaskState::TASK_FINISHED);
    assert_eq!(answers[1].state, TaskState::TASK_LOST);
    for a in &answers {
        assert_eq!(a.reason.as_deref(), Some("REASON_RECONCILIATION"));
        assert!(a.uuid.is_none(), "reconciliation answers carry no uuid");
    }

    // A failing command reports its exit status.
    let offer = s.offer(T);
    launch(
        &s,
        &offer,
        vec![command_task(&offer, "fails", "exit 3", 0.1, 32.0)],
    );
    let terminal = loop {
        let st = update(&mut s);
        s.ack(&st);
        if st.state != TaskState::TASK_STARTING && st.state != TaskState::TASK_RUNNING {
            break st;
        }
    };
    assert_eq!(terminal.state, TaskState::TASK_FAILED);
    assert!(
        terminal.message.as_deref().unwrap().contains("status 3"),
        "{terminal:?}"
    );

    // KILL a long task.
    let offer = s.offer(T);
    launch(
        &s,
        &offer,
        vec![command_task(&offer, "sleeper", "sleep 60", 0.1, 32.0)],
    );
    loop {
        let st = update(&mut s);
        s.ack(&st);
        if st.state == TaskState::TASK_RUNNING {
            break;
        }
    }
    let (code, _) = s.call(Call::Kill(Kill {
        task_id: Id::new("sleeper"),
        agent_id: None,
        kill_policy: None,
    }));
    assert_eq!(code, 202);
    let killed = update(&mut s);
    assert_eq!(killed.state, TaskState::TASK_KILLED);
    s.ack(&killed);

    // /master/tasks pages as Mesos does: newest first by default, at most
    // `limit` from `offset`, oldest first with order=asc.
    let page = |limit, offset, ascending| {
        let q = TaskQuery {
            limit: Some(limit),
            offset: Some(offset),
            ascending,
        };
        let ids: Vec<String> = m
            .api
            .legacy_tasks(q)
            .unwrap()
            .tasks
            .into_iter()
            .map(|t| t.id)
            .collect();
        ids
    };
    let all = m.api.legacy_tasks(TaskQuery::default()).unwrap().tasks;
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(page(100, 0, false), ["sleeper", "fails", "hello"]);
    assert_eq!(page(100, 0, true), ["hello", "fails", "sleeper"]);
    assert_eq!(page(1, 1, false), ["fails"]);
    assert!(page(5, 3, true).is_empty());

    // TEARDOWN: the framework is completed and its stream ends.
    let (code, _) = s.call(Call::Teardown);
    assert_eq!(code, 202);
    let fws = m.api.get_frameworks().unwrap();
    assert_eq!(fws.frameworks.len(), 0);
    assert_eq!(fws.completed_frameworks[0].id(), s.framework_id.as_str());
    drop(agent);
}

#[test]
fn protocol_errors_get_the_mesos_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _agent) = cluster(dir.path(), "5s");
    let p = m.port;
    let post = |headers: &[(&str, &str)], body: &str| {
        http(p, "POST", "/api/v1/scheduler", headers, body.as_bytes()).unwrap()
    };
    let json_ct = [("Content-Type", "application/json")];

    let (code, hdrs, _) = http(p, "GET", "/api/v1/scheduler", &[], b"").unwrap();
    assert_eq!(code, 405);
    assert!(hdrs.iter().any(|(k, v)| k == "allow" && v == "POST"));
    assert_eq!(post(&[], "{}").0, 400);
    assert_eq!(post(&[("Content-Type", "text/plain")], "{}").0, 415);
    let (code, _, body) = post(&json_ct, "{garbage");
    assert_eq!(code, 400);
    assert!(body.contains("Failed to parse body into JSON"));
    assert_eq!(
        post(
            &json_ct,
            r#"{"type":"UNKNOWN","framework_id":{"value":"x"}}"#
        )
        .0,
        501
    );
    let (code, _, body) = post(&json_ct, r#"{"type":"REVIVE"}"#);
    assert_eq!(code, 400, "{body}");
    let (code, _, body) = post(
        &json_ct,
        r#"{"type":"REVIVE","framework_id":{"value":"nope"}}"#,
    );
    assert_eq!((code, body.as_str()), (400, "Framework cannot be found"));
    let (code, _, _) = post(
        &[
            ("Content-Type", "application/json"),
            ("Mesos-Stream-Id", "abc"),
        ],
        r#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n"}}}"#,
    );
    assert_eq!(code, 400);
    let (code, _, _) = post(
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/x-protobuf"),
        ],
        r#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n"}}}"#,
    );
    assert_eq!(code, 406);
    let big = format!(r#"{{"type":"REVIVE","pad":"{}"}}"#, "x".repeat(17 << 20));
    assert_eq!(post(&json_ct, &big).0, 413);

    let mut s = Scheduler::subscribe(p, framework("errors"));
    let revive = json!({"type": "REVIVE", "framework_id": {"value": s.framework_id}}).to_string();
    let (code, _, body) = post(&json_ct, &revive);
    assert_eq!(code, 400, "missing stream id: {body}");
    let (code, _, _) = post(
        &[
            ("Content-Type", "application/json"),
            ("Mesos-Stream-Id", "wrong"),
        ],
        &revive,
    );
    assert_eq!(code, 400);
    assert_eq!(s.call(Call::Revive(vec![])).0, 202);
    // An accepted call is a 202 with an empty body.
    let with_stream = [
        ("Content-Type", "application/json"),
        ("Mesos-Stream-Id", s.stream_id.as_str()),
    ];
    assert_eq!(post(&with_stream, &revive).0, 202);
    assert_eq!(post(&with_stream, &revive).2, "");
    let (code, body) = s.call(Call::Acknowledge(keel_client::scheduler::Acknowledge {
        agent_id: Id::new("a"),
        task_id: Id::new("t"),
        uuid: "AAEC".into(),
    }));
    assert_eq!(code, 400, "{body}");

    // Launches on an unknown offer: TASK_LOST with REASON_INVALID_OFFERS,
    // and nothing changes in the master.
    let fake = fake_offer("no-such-offer", "x");
    assert_eq!(
        launch(
            &s,
            &fake,
            vec![command_task(&fake, "ghost", "true", 0.1, 32.0)]
        ),
        202
    );
    let st = update(&mut s);
    assert_eq!(st.state, TaskState::TASK_LOST);
    assert_eq!(st.reason.as_deref(), Some("REASON_INVALID_OFFERS"));
    assert!(st.uuid.is_none());
    assert!(m.api.get_tasks().unwrap().tasks.is_empty());

    // Invalid tasks on a real offer: TASK_ERROR, and the offer's resources
    // come back.
    let offer = s.offer(T);
    let mut neg = command_task(&offer, "neg", "true", -1.0, 32.0);
    neg.task_id = Id::new("neg");
    let huge = command_task(&offer, "huge", "true", 400.0, 32.0);
    launch(&s, &offer, vec![neg, huge]);
    let mut states = vec![update(&mut s), update(&mut s)];
    states.sort_by_key(|u| u.task_id.value.clone());
    for u in &states {
        assert_eq!(u.state, TaskState::TASK_ERROR, "{u:?}");
        assert_eq!(u.reason.as_deref(), Some("REASON_TASK_INVALID"));
    }
    assert!(m.api.get_tasks().unwrap().tasks.is_empty());
    let again = s.offer(T);
    assert_eq!(scalar(&again, "cpus"), 4.0);

    // A used offer cannot be used again.
    launch(
        &s,
        &again,
        vec![command_task(&again, "once", "sleep 30", 0.1, 32.0)],
    );
    launch(
        &s,
        &again,
        vec![command_task(&again, "twice", "true", 0.1, 32.0)],
    );
    let mut found_lost = false;
    for _ in 0..4 {
        let u = update(&mut s);
        if u.task_id.value == "twice" {
            assert_eq!(u.state, TaskState::TASK_LOST);
            found_lost = true;
            break;
        }
        if u.uuid.is_some() {
            s.ack(&u);
        }
    }
    assert!(found_lost);

    // Disconnected framework: 403 until it re-subscribes.
    s.disconnect();
    wait_for(
        T,
        "403",
        || s.call(Call::Revive(vec![])).0 == 403,
        || m.proc.log_text(),
    );
    let mut resubscribe = framework("errors");
    resubscribe.id = Some(Id::new(&s.framework_id));
    let again = Scheduler::subscribe_with(p, Subscribe::new(resubscribe));
    assert_eq!(again.framework_id, s.framework_id);
    assert_eq!(again.call(Call::Revive(vec![])).0, 202);
}

#[test]
fn declined_offers_wait_for_refuse_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _agent) = cluster(dir.path(), "5s");
    let mut s = Scheduler::subscribe(m.port, framework("decline"));
    let offer = s.offer(T);
    let declined_at = std::time::Instant::now();
    let (code, _) = s.call(decline(&offer.id, 3.0));
    assert_eq!(code, 202);
    let next = s.offers(Duration::from_secs(15));
    assert!(
        declined_at.elapsed() >= Duration::from_secs(3),
        "re-offered after {:?}",
        declined_at.elapsed()
    );
    assert_ne!(next[0].id, offer.id);
    // SUPPRESS stops offers; REVIVE brings them back at once.
    let offer = next[0].clone();
    s.call(Call::Suppress(vec![]));
    s.call(decline(&offer.id, 0.0));
    assert!(s.sees("OFFERS", Duration::from_secs(3)).is_none());
    s.call(Call::Revive(vec![]));
    s.expect("OFFERS", Duration::from_secs(5));
}

#[test]
fn agent_loss_is_reported_to_frameworks() {
    let dir = tempfile::tempdir().unwrap();
    let (m, mut agent) = cluster(dir.path(), "2s");
    let mut plain = Scheduler::subscribe(m.port, framework("plain"));
    let offer = plain.offer(T);
    launch(
        &plain,
        &offer,
        vec![command_task(&offer, "long", "sleep 100", 0.5, 64.0)],
    );
    loop {
        let st = update(&mut plain);
        plain.ack(&st);
        if st.state == TaskState::TASK_RUNNING {
            break;
        }
    }
    agent.kill9();
    let lost = update(&mut plain);
    assert_eq!(
        lost.state,
        TaskState::TASK_LOST,
        "non-PARTITION_AWARE frameworks get TASK_LOST"
    );
    assert_eq!(lost.agent_id.as_ref(), Some(&offer.agent_id));
    let Event::Failure(failure) = plain.expect("FAILURE", T) else {
        panic!("not FAILURE")
    };
    assert_eq!(failure.agent_id.as_ref(), Some(&offer.agent_id));
}

#[test]
fn keelctl_run_reports_states_and_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _agent) = cluster(dir.path(), "5s");
    let out = run_output(Command::new(bin("keelctl")).args([
        "--master",
        &m.addr(),
        "run",
        "--cpus",
        "0.1",
        "--mem",
        "32",
        "--",
        "echo hello",
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("TASK_RUNNING") && stdout.contains("TASK_FINISHED"),
        "{stdout}"
    );

    let out = run_output(Command::new(bin("keelctl")).args([
        "--master",
        &m.addr(),
        "run",
        "--",
        "sh",
        "-c",
        "exit 7",
    ]));
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("TASK_FAILED"));

    let out = run_output(Command::new(bin("keelctl")).args(["--master", &m.addr(), "tasks"]));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("TASK_FINISHED") && table.contains("TASK_FAILED"),
        "{table}"
    );
    let out = run_output(Command::new(bin("keelctl")).args(["--master", &m.addr(), "frameworks"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("completed"));
}
