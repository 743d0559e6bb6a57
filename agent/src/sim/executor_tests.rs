use super::*;
use keel_api::pb::master_message::Msg as MasterMsg;

fn behaviour() -> Behaviour {
    Behaviour {
        duration: Duration::from_secs(5),
        exit_code: 0,
        resend_base: Duration::from_secs(1),
    }
}

fn launch(task_id: &str, labels: &str) -> ExecutorCall {
    let task = format!(
        r#"{{"name": "t", "task_id": {{"value": "{task_id}"}}, "agent_id": {{"value": "a"}},
            "resources": [], "command": {{"value": "true"}}, "labels": {{"labels": [{labels}]}}}}"#
    );
    let msg = pb::LaunchTasks {
        framework_id: "f".into(),
        task_info_json: vec![task],
        ..Default::default()
    };
    ExecutorCall::from_master(MasterMsg::LaunchTasks(msg)).unwrap()
}

fn states(updates: &[pb::StatusUpdate]) -> Vec<String> {
    updates
        .iter()
        .map(|u| u.status.as_ref().unwrap().state.clone())
        .collect()
}

fn ack(u: &pb::StatusUpdate) -> ExecutorCall {
    let st = u.status.as_ref().unwrap();
    ExecutorCall::Acknowledge(pb::Acknowledge {
        framework_id: u.framework_id.clone(),
        task_id: st.task_id.clone(),
        uuid: st.uuid.clone(),
    })
}

#[test]
fn a_task_runs_for_its_duration_and_finishes_in_order_with_acks() {
    let t0 = Instant::now();
    let mut sim = SimTasks::new(behaviour());
    assert!(sim.connected(t0).is_empty());
    // One outstanding update per task: RUNNING waits for STARTING's ack.
    let out = sim.call(launch("t1", ""), t0);
    assert_eq!(states(&out), ["TASK_STARTING"]);
    let out = sim.call(ack(&out[0]), t0);
    assert_eq!(states(&out), ["TASK_RUNNING"]);
    assert_eq!(sim.reports().len(), 1);
    assert_eq!(
        sim.reports()[0].latest.as_ref().unwrap().state,
        "TASK_RUNNING"
    );
    let running = out;
    // Unacknowledged: resent after the base interval.
    assert_eq!(sim.next_deadline(), Some(t0 + Duration::from_secs(1)));
    let out = sim.tick(t0 + Duration::from_secs(1));
    assert_eq!(states(&out), ["TASK_RUNNING"]);
    assert_eq!(
        out[0].status.as_ref().unwrap().uuid,
        running[0].status.as_ref().unwrap().uuid
    );
    assert!(sim.call(ack(&running[0]), t0).is_empty());
    assert_eq!(sim.running(), 1);
    // Ends after its duration; forgotten once the terminal update is acked.
    assert!(sim.tick(t0 + Duration::from_secs(4)).is_empty());
    let out = sim.tick(t0 + Duration::from_secs(5));
    assert_eq!(states(&out), ["TASK_FINISHED"]);
    assert_eq!(sim.running(), 0);
    assert_eq!(sim.reports().len(), 1, "reported until acknowledged");
    sim.call(ack(&out[0]), t0);
    assert!(sim.reports().is_empty());
    assert_eq!(sim.next_deadline(), None);
}

#[test]
fn labels_override_duration_and_exit_and_kills_end_tasks() {
    let t0 = Instant::now();
    let mut sim = SimTasks::new(behaviour());
    sim.connected(t0);
    let labels =
        r#"{"key": "keel.sim/duration", "value": "100ms"}, {"key": "keel.sim/exit", "value": "3"}"#;
    let s = sim.call(launch("fails", labels), t0);
    let r = sim.call(ack(&s[0]), t0);
    sim.call(ack(&r[0]), t0);
    let out = sim.tick(t0 + Duration::from_millis(100));
    assert_eq!(states(&out), ["TASK_FAILED"]);
    let st = out[0].status.as_ref().unwrap();
    assert_eq!(st.message, "Command exited with status 3");

    let s = sim.call(launch("killed", ""), t0);
    let r = sim.call(ack(&s[0]), t0);
    sim.call(ack(&r[0]), t0);
    let kill = ExecutorCall::Kill(pb::KillTask {
        framework_id: "f".into(),
        task_id: "killed".into(),
        grace_period_ms: None,
    });
    assert_eq!(states(&sim.call(kill.clone(), t0)), ["TASK_KILLED"]);
    // A second kill, or a kill of an unknown task, says nothing.
    assert!(sim.call(kill, t0).is_empty());
    // A relaunch of a known task is ignored.
    assert!(sim.call(launch("killed", ""), t0).is_empty());
}

#[test]
fn updates_wait_for_a_session_and_are_all_sent_on_connect() {
    let t0 = Instant::now();
    let mut sim = SimTasks::new(behaviour());
    assert!(sim.call(launch("a", ""), t0).is_empty());
    assert!(sim.call(launch("b", ""), t0).is_empty());
    assert_eq!(sim.next_deadline(), Some(t0 + Duration::from_secs(5)));
    let out = sim.connected(t0);
    assert_eq!(states(&out), ["TASK_STARTING", "TASK_STARTING"]);
    sim.disconnected();
    assert!(sim.tick(t0 + Duration::from_secs(2)).is_empty());
}

#[tokio::test]
async fn the_actor_serves_the_session_seam() {
    let exec = SimExecutor::start(Behaviour {
        duration: Duration::from_millis(10),
        ..behaviour()
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    exec.attach("agent", tx);
    exec.call(launch("t", ""));
    let mut seen = Vec::new();
    while let Some(u) = rx.recv().await {
        seen.push(u.status.as_ref().unwrap().state.clone());
        exec.call(ack(&u));
        if seen.last().map(String::as_str) == Some("TASK_FINISHED") {
            break;
        }
    }
    assert_eq!(seen, ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]);
    // Forgotten once acknowledged (the ack was queued before this call).
    assert!(exec.reports().await.is_empty());
}
