use super::*;
use crate::executor::status;

const BASE: Duration = Duration::from_secs(10);

fn upd(task: &str, state: TaskState) -> pb::StatusUpdate {
    pb::StatusUpdate {
        framework_id: "fw".into(),
        status: Some(status::update(task, task, state, None, None)),
    }
}

fn sent(out: &[Output]) -> Vec<(String, String)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(u) => {
                let s = u.status.as_ref().unwrap();
                Some((s.task_id.clone(), s.state.clone()))
            }
            Output::Forget(_) => None,
        })
        .collect()
}

fn pair(task: &str, state: &str) -> (String, String) {
    (task.to_string(), state.to_string())
}

fn connected() -> (UpdateManager, Instant) {
    let mut m = UpdateManager::new(BASE, RESEND_CAP);
    let now = Instant::now();
    assert!(m.connected(now).is_empty());
    (m, now)
}

#[test]
fn one_outstanding_update_per_task_in_order() {
    let (mut m, now) = connected();
    let k = TaskKey::new("fw", "t");
    let a = upd("t", TaskState::TASK_STARTING);
    let b = upd("t", TaskState::TASK_RUNNING);
    let c = upd("t", TaskState::TASK_FINISHED);
    assert_eq!(
        sent(&m.enqueue(a.clone(), now)),
        [pair("t", "TASK_STARTING")]
    );
    assert!(m.enqueue(b.clone(), now).is_empty());
    assert!(m.enqueue(c.clone(), now).is_empty());
    assert_eq!(m.pending(&k), 3);
    // Another task is independent.
    assert_eq!(
        sent(&m.enqueue(upd("u", TaskState::TASK_RUNNING), now)).len(),
        1
    );

    let ack = |m: &mut UpdateManager, u: &pb::StatusUpdate| {
        m.acknowledge(&k, &u.status.as_ref().unwrap().uuid, now)
    };
    // Acks for updates not yet outstanding are ignored.
    assert_eq!(ack(&mut m, &b), None);
    assert_eq!(sent(&ack(&mut m, &a).unwrap()), [pair("t", "TASK_RUNNING")]);
    // Duplicate ack.
    assert_eq!(ack(&mut m, &a), None);
    assert_eq!(m.outstanding(&k), Some(&b));
    assert_eq!(
        sent(&ack(&mut m, &b).unwrap()),
        [pair("t", "TASK_FINISHED")]
    );
    assert_eq!(ack(&mut m, &c).unwrap(), [Output::Forget(k.clone())]);
    assert_eq!(m.pending(&k), 0);
    assert_eq!(ack(&mut m, &c), None);
    assert_eq!(m.acknowledge(&TaskKey::new("x", "y"), &[0; 16], now), None);
}

#[test]
fn resends_back_off_to_the_cap() {
    let mut m = UpdateManager::new(BASE, Duration::from_secs(60));
    let t0 = Instant::now();
    m.connected(t0);
    let u = upd("t", TaskState::TASK_RUNNING);
    m.enqueue(u.clone(), t0);
    let mut at = t0;
    for expect in [10, 20, 40, 60, 60] {
        let due = m.next_deadline().unwrap();
        assert_eq!(due - at, Duration::from_secs(expect));
        assert!(m.tick(due - Duration::from_millis(1)).is_empty());
        assert_eq!(m.tick(due), [Output::Send(Box::new(u.clone()))]);
        at = due;
    }
    // After the ack the next update starts again at the base interval.
    let k = TaskKey::new("fw", "t");
    m.acknowledge(&k, &u.status.as_ref().unwrap().uuid, at)
        .unwrap();
    assert_eq!(m.next_deadline(), None);
    m.enqueue(upd("t", TaskState::TASK_FINISHED), at);
    assert_eq!(m.next_deadline(), Some(at + BASE));
}

#[test]
fn nothing_is_sent_while_disconnected_and_everything_on_reconnect() {
    let mut m = UpdateManager::new(BASE, RESEND_CAP);
    let now = Instant::now();
    let a = upd("a", TaskState::TASK_STARTING);
    assert!(m.enqueue(a.clone(), now).is_empty());
    assert!(m.enqueue(upd("a", TaskState::TASK_RUNNING), now).is_empty());
    assert_eq!(m.next_deadline(), None);
    // Not sent yet, so not acknowledgeable.
    let ka = TaskKey::new("fw", "a");
    assert_eq!(
        m.acknowledge(&ka, &a.status.as_ref().unwrap().uuid, now),
        None
    );

    assert_eq!(sent(&m.connected(now)), [pair("a", "TASK_STARTING")]);
    m.enqueue(upd("b", TaskState::TASK_RUNNING), now);
    let later = now + Duration::from_secs(15);
    assert_eq!(m.tick(later).len(), 2);

    m.disconnected();
    assert!(m.tick(later + RESEND_CAP).is_empty());
    assert_eq!(m.next_deadline(), None);
    // Back: both heads go out at once, keeping their intervals.
    let back = later + Duration::from_secs(1);
    let out = sent(&m.connected(back));
    assert_eq!(out, [pair("a", "TASK_STARTING"), pair("b", "TASK_RUNNING")]);
    assert_eq!(m.next_deadline(), Some(back + 2 * BASE));
    // An ack arriving now is matched.
    assert_eq!(
        sent(
            &m.acknowledge(&ka, &a.status.as_ref().unwrap().uuid, back)
                .unwrap()
        ),
        [pair("a", "TASK_RUNNING")]
    );
}

#[test]
fn a_duplicate_enqueue_is_ignored() {
    let (mut m, now) = connected();
    let u = upd("t", TaskState::TASK_RUNNING);
    assert_eq!(m.enqueue(u.clone(), now).len(), 1);
    assert!(m.enqueue(u, now).is_empty());
    assert_eq!(m.pending(&TaskKey::new("fw", "t")), 1);
}

#[test]
fn acking_a_terminal_update_with_more_queued_keeps_the_task() {
    // Not produced by the runtime, but the manager must not lose updates.
    let (mut m, now) = connected();
    let k = TaskKey::new("fw", "t");
    let a = upd("t", TaskState::TASK_FAILED);
    m.enqueue(a.clone(), now);
    m.enqueue(upd("t", TaskState::TASK_FAILED), now);
    let out = m
        .acknowledge(&k, &a.status.as_ref().unwrap().uuid, now)
        .unwrap();
    assert_eq!(sent(&out), [pair("t", "TASK_FAILED")]);
}
