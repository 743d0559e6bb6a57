//! `keelctl events`: one event a line, as JSON with `-o json`, from the
//! state at the start through a task's whole life.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keel_api::operator::Event;
use support::{Killed, cluster, keelctl};

#[test]
fn events_prints_the_state_then_a_task_s_life_one_json_line_each() {
    let c = cluster();
    let child = Command::new(env!("CARGO_BIN_EXE_keelctl"))
        .args(["--master", &c.master, "events", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut events = Killed(child);
    let stdout = events.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let next = || {
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("a line");
        let event: Event = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        event
    };
    let Event::Subscribed(first) = next() else {
        panic!("the first line is not SUBSCRIBED")
    };
    assert_eq!(first.get_state.get_agents.agents.len(), 1);

    let out = keelctl(&c.master, &["run", "--", "true"]);
    assert!(out.status.success(), "{out:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let event = next();
        seen.push(event.kind());
        if let Event::TaskUpdated(u) = &event
            && u.state == keel_api::mesos::TaskState::TASK_FINISHED
        {
            break;
        }
    }
    for kind in ["FRAMEWORK_ADDED", "TASK_ADDED", "TASK_UPDATED"] {
        assert!(seen.contains(&kind), "{kind} missing from {seen:?}");
    }
}
