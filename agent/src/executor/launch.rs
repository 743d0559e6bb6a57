//! Parsing a master's `LaunchTasks` into typed tasks, once, where the call
//! leaves the session ([`super::ExecutorCall::from_master`]). Pure: nothing
//! is created or spawned here. A task whose JSON cannot be read is kept as
//! [`ParsedTask::Invalid`] (with its id when one can be found) so the
//! runtime can answer it with TASK_ERROR instead of dropping it.

use std::time::Duration;

use keel_api::mesos::{self, ExecutorInfo, FrameworkInfo, TaskInfo};
use keel_api::pb;

use super::task::TaskSpec;

#[derive(Debug, Clone, PartialEq)]
pub enum ParsedTask {
    Valid(Box<TaskSpec>),
    Invalid {
        task_id: Option<String>,
        /// The text as sent: only reported back, never interpreted.
        text: String,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct LaunchRequest {
    pub framework_id: String,
    /// `None` when absent or unreadable (only capabilities are read from it).
    pub framework: Option<FrameworkInfo>,
    /// The task group's executor (LAUNCH_GROUP); `None` for command tasks.
    pub executor: Option<ExecutorInfo>,
    /// Set when `executor_info_json` is present but unreadable: every task
    /// of the request fails with it.
    pub executor_error: Option<String>,
    pub tasks: Vec<ParsedTask>,
}

pub fn parse(msg: pb::LaunchTasks) -> LaunchRequest {
    let framework = Some(msg.framework_info_json.as_str())
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| mesos::parse_str(s).ok());
    let (executor, executor_error) = if msg.executor_info_json.trim().is_empty() {
        (None, None)
    } else {
        match mesos::parse_str::<ExecutorInfo>(&msg.executor_info_json) {
            Ok(e) => (Some(e), None),
            Err(e) => (None, Some(format!("invalid executor info: {e}"))),
        }
    };
    let tasks = msg
        .task_info_json
        .into_iter()
        .map(|text| match TaskSpec::parse(&text) {
            Ok(spec) => ParsedTask::Valid(Box::new(spec)),
            Err(e) => ParsedTask::Invalid {
                task_id: e.task_id().map(str::to_string),
                message: format!("invalid task info: {e}"),
                text,
            },
        })
        .collect();
    LaunchRequest {
        framework_id: msg.framework_id,
        framework,
        executor,
        executor_error,
        tasks,
    }
}

/// The grace period of a kill: the kill's own, else the task's kill policy,
/// else `default`.
pub fn grace_period(kill_ms: Option<u64>, task: &TaskInfo, default: Duration) -> Duration {
    if let Some(ms) = kill_ms {
        return Duration::from_millis(ms);
    }
    task.kill_policy
        .as_ref()
        .and_then(|k| k.grace_period)
        .map(|g| Duration::from_nanos(g.nanoseconds.max(0) as u64))
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(id: &str) -> String {
        json!({"name": id, "task_id": {"value": id}, "agent_id": {"value": "a"},
               "command": {"value": "true"},
               "kill_policy": {"grace_period": {"nanoseconds": 1_500_000_000u64}}})
        .to_string()
    }

    #[test]
    fn parses_tasks_and_keeps_bad_ones() {
        let msg = pb::LaunchTasks {
            framework_id: "fw".into(),
            framework_info_json: json!({"user": "u", "name": "n",
                "capabilities": [{"type": "TASK_KILLING_STATE"}]})
            .to_string(),
            task_info_json: vec![
                task("t1"),
                r#"{"task_id":{"value":"t2"}}"#.into(),
                "{".into(),
            ],
            executor_info_json: String::new(),
        };
        let r = parse(msg);
        assert!(r.framework.unwrap().has_capability("TASK_KILLING_STATE"));
        assert!(r.executor.is_none() && r.executor_error.is_none());
        assert!(matches!(&r.tasks[0], ParsedTask::Valid(spec) if spec.task_id() == "t1"));
        match &r.tasks[1] {
            ParsedTask::Invalid {
                task_id,
                message,
                text,
            } => {
                assert_eq!(task_id.as_deref(), Some("t2"));
                assert!(message.contains("Missing required fields"), "{message}");
                assert_eq!(text, r#"{"task_id":{"value":"t2"}}"#, "kept as sent");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            &r.tasks[2],
            ParsedTask::Invalid { task_id: None, .. }
        ));
    }

    #[test]
    fn group_executor_is_read() {
        let msg = pb::LaunchTasks {
            framework_id: "fw".into(),
            executor_info_json: json!({"type": "DEFAULT", "executor_id": {"value": "ex"}})
                .to_string(),
            task_info_json: vec![task("t1")],
            ..Default::default()
        };
        let bad = pb::LaunchTasks {
            executor_info_json: "{}".into(),
            ..msg.clone()
        };
        assert_eq!(parse(msg).executor.unwrap().executor_id.value, "ex");
        assert!(parse(bad).executor_error.is_some());
    }

    #[test]
    fn grace_period_precedence() {
        let info: TaskInfo = mesos::parse_str(&task("t")).unwrap();
        let d = Duration::from_secs(3);
        assert_eq!(
            grace_period(Some(200), &info, d),
            Duration::from_millis(200)
        );
        assert_eq!(grace_period(None, &info, d), Duration::from_millis(1500));
        let plain = TaskInfo {
            kill_policy: None,
            ..info
        };
        assert_eq!(grace_period(None, &plain, d), d);
    }
}
