//! The operator event stream (SUBSCRIBE on `/api/v1`) against real
//! processes: a subscriber sees the state, an agent joining, a framework,
//! a task's whole life and the agent leaving; one that stops reading is
//! dropped (its stream ends) while the master keeps serving the others.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use keel_api::mesos::TaskState;
use keel_api::operator::Event;
use keel_client::blocking::EventStream;
use serde_json::json;
use support::scheduler::{Scheduler, command_task, framework, info, launch};
use support::*;

const T: Duration = Duration::from_secs(30);

/// The next event `pick` takes (others are skipped), within [`T`].
fn wait<R>(events: &mut EventStream, what: &str, mut pick: impl FnMut(&Event) -> Option<R>) -> R {
    let deadline = Instant::now() + T;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.next(left) {
            Some(Ok(e)) => {
                if let Some(r) = pick(&e) {
                    return r;
                }
                seen.push(e.kind());
            }
            Some(Err(e)) => panic!("event stream failed: {e}"),
            None => break,
        }
    }
    panic!("no {what}; saw {seen:?}")
}

#[test]
fn a_subscriber_sees_an_agent_a_framework_and_a_task_come_and_go() {
    let tmp = tempfile::tempdir().unwrap();
    let m = Master::start_with(
        tmp.path(),
        free_port(),
        "5s",
        &["--framework-heartbeat-interval", "300ms"],
    );
    let mut events = m.api.events().unwrap();
    let state = &events.subscribed().get_state;
    assert!(state.get_agents.agents.is_empty() && state.get_tasks.tasks.is_empty());
    wait(&mut events, "HEARTBEAT", |e| {
        (*e == Event::Heartbeat).then_some(())
    });

    let agent = start_agent(tmp.path(), &m.addr(), &[]);
    let agent_id = wait(&mut events, "AGENT_ADDED", |e| match e {
        Event::AgentAdded(a) => Some(a.agent.id().to_string()),
        _ => None,
    });
    let mut fw = Scheduler::subscribe(m.port, framework("events"));
    let added = wait(&mut events, "FRAMEWORK_ADDED", |e| match e {
        Event::FrameworkAdded(f) => Some(f.framework.clone()),
        _ => None,
    });
    assert_eq!(added.id(), fw.framework_id);
    assert!(added.connected);

    let offer = fw.offer(T);
    let task = command_task(&offer, "short", "true", 0.1, 32.0);
    assert_eq!(launch(&fw, &offer, vec![task]), 202);
    let task = wait(&mut events, "TASK_ADDED", |e| match e {
        Event::TaskAdded(t) => Some(t.task.clone()),
        _ => None,
    });
    assert_eq!(
        (task.task_id.value.as_str(), task.state),
        ("short", TaskState::TASK_STAGING)
    );
    assert_eq!(task.agent_id.value, agent_id);
    let mut states = Vec::new();
    while states.last() != Some(&TaskState::TASK_FINISHED) {
        let update = fw.update(T);
        fw.ack(&update);
        let (state, status) = wait(&mut events, "TASK_UPDATED", |e| match e {
            Event::TaskUpdated(u) => Some((u.state, u.status.clone())),
            _ => None,
        });
        assert_eq!(status.task_id.value, "short");
        assert_eq!(state, update.state, "{}", agent.log_text());
        states.push(state);
    }
    assert!(states.contains(&TaskState::TASK_RUNNING), "{states:?}");

    // A later subscriber starts from the state: the agent, the framework
    // and the completed task.
    let later = m.api.events().unwrap();
    let state = &later.subscribed().get_state;
    assert_eq!(state.get_agents.agents.len(), 1);
    assert_eq!(state.get_frameworks.frameworks.len(), 1);
    assert_eq!(state.get_tasks.completed_tasks.len(), 1);

    fw.disconnect();
    let updated = wait(&mut events, "FRAMEWORK_UPDATED", |e| match e {
        Event::FrameworkUpdated(f) => Some(f.framework.clone()),
        _ => None,
    });
    assert!(!updated.connected);
    m.api.teardown(&fw.framework_id).unwrap();
    let removed = wait(&mut events, "FRAMEWORK_REMOVED", |e| match e {
        Event::FrameworkRemoved(f) => Some(f.framework_info.clone()),
        _ => None,
    });
    assert_eq!(removed.name, "events");

    m.api.mark_agent_gone(&agent_id).unwrap();
    let gone = wait(&mut events, "AGENT_REMOVED", |e| match e {
        Event::AgentRemoved(a) => Some(a.agent_id.value.clone()),
        _ => None,
    });
    assert_eq!(gone, agent_id);
}

/// SUBSCRIBE on a raw connection that then reads nothing.
fn stalled_subscriber(port: u16) -> std::net::TcpStream {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = r#"{"type":"SUBSCRIBE"}"#;
    let request = format!(
        "POST /api/v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).unwrap();
    conn
}

/// Reads until the chunked body ends; whether it did within `within`.
fn body_ends(conn: &mut std::net::TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while Instant::now() < deadline {
        conn.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        match conn.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => {
                tail.extend_from_slice(&buf[..n]);
                if tail.ends_with(b"\r\n0\r\n\r\n") {
                    return true;
                }
                let keep = tail.len().saturating_sub(16);
                tail.drain(..keep);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn a_subscriber_that_stops_reading_is_dropped_and_the_master_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let m = Master::start_with(
        tmp.path(),
        free_port(),
        "5s",
        &["--operator-event-queue", "64"],
    );
    let mut stalled = stalled_subscriber(m.port);
    let mut reading = m.api.events().unwrap();
    // Big events fill the socket buffers and then the stalled queue: each
    // framework comes (FRAMEWORK_ADDED) and goes (FRAMEWORK_UPDATED, and
    // FRAMEWORK_REMOVED: its failover timeout is 0).
    let label = "x".repeat(32 << 10);
    const FRAMEWORKS: usize = 120;
    let mut added = 0;
    for i in 0..FRAMEWORKS {
        let mut fw = Scheduler::subscribe(
            m.port,
            info(json!({"user": "root", "name": format!("big-{i}"),
                "labels": {"labels": [{"key": "padding", "value": label}]}})),
        );
        fw.disconnect();
        // The reading subscriber keeps up and sees every framework.
        wait(&mut reading, "FRAMEWORK_ADDED", |e| {
            matches!(e, Event::FrameworkAdded(_)).then_some(())
        });
        added += 1;
    }
    assert_eq!(added, FRAMEWORKS);
    assert!(m.api.get_health().unwrap(), "the master keeps serving");
    // The stalled subscriber was dropped: once it reads again, its
    // stream ends after what was queued.
    assert!(
        body_ends(&mut stalled, T),
        "the stalled subscriber's stream did not end; {}",
        m.proc.log_text()
    );
    assert!(m.proc.log_text().contains("does not keep up"));
    // The reading one is still subscribed.
    let s = Scheduler::subscribe(m.port, framework("after"));
    let last = wait(&mut reading, "FRAMEWORK_ADDED after", |e| match e {
        Event::FrameworkAdded(f) if f.framework.framework_info.name == "after" => {
            Some(f.framework.id().to_string())
        }
        _ => None,
    });
    assert_eq!(last, s.framework_id);
}
