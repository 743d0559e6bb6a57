use super::*;
use serde_json::json;

fn offer(agent: &str, cpus: f64, mem: f64) -> Offer {
    serde_json::from_value(json!({"id": {"value": "o1"}, "framework_id": {"value": "f"},
        "agent_id": {"value": agent}, "resources": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}, "role": "*", "allocation_info": {"role": "r"}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}, "role": "*", "allocation_info": {"role": "r"}}
    ]}))
    .unwrap()
}

fn status(task_id: &str, state: TaskState) -> TaskStatus {
    serde_json::from_value(json!({"task_id": {"value": task_id}, "state": state.name()})).unwrap()
}

fn book(slots: usize) -> Book {
    Book::new(
        "f0",
        slots,
        vec![TaskKind::exits(0), TaskKind::exits(3)],
        0.5,
        10.0,
    )
}

#[test]
fn offers_are_packed_and_tasks_carry_their_kind() {
    let t0 = Instant::now();
    let mut b = book(5);
    let tasks = b.plan(&offer("a1", 1.2, 100.0), t0, 9);
    assert_eq!(tasks.len(), 2, "two of 0.5 cpus fit in 1.2");
    assert_eq!(tasks[0].task_id.value, "f0-0-0");
    assert_eq!(
        tasks[1].command.as_ref().unwrap().value.as_deref(),
        Some("exit 3")
    );
    let labels = tasks[1].labels.as_ref().unwrap().to_string();
    assert!(
        labels.contains("keel.sim/exit") && labels.contains("\"3\""),
        "{labels}"
    );
    assert_eq!(b.queued(), 3);
    assert_eq!(
        b.plan(&offer("a1", 8.0, 100.0), t0, 1).len(),
        1,
        "at most one"
    );
    assert_eq!(b.queued(), 2);
    assert!(b.plan(&offer("a2", 0.4, 100.0), t0, 9).is_empty());
    assert_eq!(b.plan(&offer("a2", 8.0, 100.0), t0, 9).len(), 2);
    assert_eq!(b.queued(), 0);
}

#[test]
fn updates_end_slots_and_losses_before_running_relaunch() {
    let t0 = Instant::now();
    let mut b = book(2);
    b.plan(&offer("a1", 1.0, 100.0), t0, 9);
    assert!(b.update(&status("f0-0-0", TaskState::TASK_RUNNING), t0));
    assert!(!b.update(&status("other", TaskState::TASK_RUNNING), t0));
    assert_eq!(b.running(), 1);
    assert!(b.update(&status("f0-0-0", TaskState::TASK_FINISHED), t0));
    // Lost before running: relaunched as a new attempt.
    b.update(&status("f0-1-0", TaskState::TASK_LOST), t0);
    assert_eq!(b.queued(), 1);
    assert!(!b.done());
    let again = b.plan(&offer("a2", 1.0, 100.0), t0, 9);
    assert_eq!(again[0].task_id.value, "f0-1-1");
    b.update(&status("f0-1-1", TaskState::TASK_STARTING), t0);
    b.update(&status("f0-1-1", TaskState::TASK_FAILED), t0);
    assert!(b.done());
    assert_eq!(b.slots[1].final_state, Some(TaskState::TASK_FAILED));
    assert_eq!(b.slots[0].attempts[0].latency(), Some(Duration::ZERO));
}

#[test]
fn a_task_that_ran_is_never_relaunched_and_is_reconciled() {
    let t0 = Instant::now();
    let later = t0 + Duration::from_secs(60);
    let mut b = book(1);
    b.plan(&offer("a1", 1.0, 100.0), t0, 9);
    assert_eq!(b.to_reconcile(t0, Duration::from_secs(15)).len(), 0);
    // Not before the master answered the ACCEPT.
    assert_eq!(b.to_reconcile(later, Duration::from_secs(15)).len(), 0);
    b.answered(&["f0-0-0".to_string()], t0);
    assert_eq!(b.to_reconcile(later, Duration::from_secs(15)).len(), 1);
    b.update(&status("f0-0-0", TaskState::TASK_RUNNING), t0);
    b.update(&status("f0-0-0", TaskState::TASK_LOST), t0);
    assert_eq!(b.queued(), 0, "it ran: no second copy");
    let r = b.to_reconcile(later, Duration::from_secs(15));
    assert_eq!(r[0].agent_id.as_ref().unwrap().value, "a1");
    b.update(&status("f0-0-0", TaskState::TASK_FINISHED), t0);
    assert!(b.done());
    assert!(b.to_reconcile(later, Duration::ZERO).is_empty());
}
