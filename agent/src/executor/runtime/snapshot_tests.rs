//! The [`Book`]'s bounds.

use super::*;

fn task(fw: &str, id: &str, ex: &str) -> TaskSnapshot {
    TaskSnapshot {
        framework_id: fw.into(),
        task_id: id.into(),
        executor_id: ex.into(),
        container_id: format!("c-{ex}"),
        info: None,
        state: Some(TaskState::TASK_FINISHED),
        statuses: Vec::new(),
        sandbox: None,
    }
}

fn executor(fw: &str, ex: &str) -> ExecutorSnapshot {
    ExecutorSnapshot {
        framework_id: fw.into(),
        executor_id: ex.into(),
        info: None,
        container_id: format!("c-{ex}"),
        directory: None,
        cgroup: None,
        pid: Some(7),
        ip: None,
        resources: Resources::default(),
        tasks: Vec::new(),
        completed_tasks: Vec::new(),
    }
}

#[test]
fn completed_executors_keep_their_tasks_within_bounds() {
    let mut book = Book::default();
    book.pid("f", "g", 7);
    book.retire(task("f", "t1", "g"), None, &["f"]);
    assert_eq!(book.finished[&("f".into(), "g".into())].len(), 1);
    book.retire(task("f", "t2", "g"), Some(executor("f", "g")), &[]);
    let (_, done) = &book.completed["f"];
    assert_eq!(done.len(), 1);
    let ids: Vec<&str> = done[0]
        .completed_tasks
        .iter()
        .map(|t| t.task_id.as_str())
        .collect();
    assert_eq!(ids, ["t1", "t2"]);
    assert!(book.finished.is_empty() && book.pids.is_empty());

    for i in 0..MAX_COMPLETED_EXECUTORS + 5 {
        let ex = format!("e{i}");
        book.retire(task("f", &ex, &ex), Some(executor("f", &ex)), &[]);
    }
    let (_, done) = &book.completed["f"];
    assert_eq!(done.len(), MAX_COMPLETED_EXECUTORS);
    assert_eq!(done.back().unwrap().executor_id, "e154");
}

#[test]
fn a_task_keeps_its_first_and_latest_statuses() {
    let mut book = Book::default();
    let key = TaskKey::new("f", "t");
    for i in 0..MAX_STATUSES + 10 {
        let st = pb::TaskStatus {
            message: i.to_string(),
            ..Default::default()
        };
        book.status(&key, &st);
    }
    let kept = &book.statuses[&key];
    assert_eq!(kept.len(), MAX_STATUSES);
    assert_eq!(kept[0].message, "0");
    assert_eq!(kept[1].message, "11");
    assert_eq!(kept.last().unwrap().message, (MAX_STATUSES + 9).to_string());
}

#[test]
fn only_the_most_recent_idle_frameworks_are_kept() {
    let mut book = Book::default();
    for i in 0..MAX_COMPLETED_FRAMEWORKS + 3 {
        let fw = format!("f{i}");
        book.retire(task(&fw, "t", "t"), Some(executor(&fw, "t")), &["f0"]);
    }
    // f0 has live tasks elsewhere: kept; f1 and f2 were the oldest idle.
    assert!(book.completed.contains_key("f0") && book.completed.contains_key("f3"));
    for gone in ["f1", "f2"] {
        assert!(!book.completed.contains_key(gone), "{gone}");
    }
    assert_eq!(book.completed.len(), MAX_COMPLETED_FRAMEWORKS + 1);
}
