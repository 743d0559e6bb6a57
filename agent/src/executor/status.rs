//! Building the status updates a task produces: a fresh 16-byte uuid each,
//! `SOURCE_EXECUTOR`, a timestamp, the executor id; and the Mesos wording for
//! how a command ended (`Command exited with status 3`).

use keel_api::mesos::TaskState;
use keel_api::pb;

use super::launcher::ExitStatus;

pub const SOURCE_EXECUTOR: &str = "SOURCE_EXECUTOR";
pub const SOURCE_AGENT: &str = "SOURCE_AGENT";
pub const REASON_COMMAND_EXECUTOR_FAILED: &str = "REASON_COMMAND_EXECUTOR_FAILED";
pub const REASON_TASK_INVALID: &str = "REASON_TASK_INVALID";
pub const REASON_TASK_KILLED_DURING_LAUNCH: &str = "REASON_TASK_KILLED_DURING_LAUNCH";
pub const REASON_CONTAINER_LAUNCH_FAILED: &str = "REASON_CONTAINER_LAUNCH_FAILED";

/// A new update for `task_id`; every call gets its own uuid.
pub fn update(
    task_id: &str,
    executor_id: &str,
    state: TaskState,
    message: Option<String>,
    reason: Option<&str>,
) -> pb::TaskStatus {
    pb::TaskStatus {
        task_id: task_id.to_string(),
        state: state.name().to_string(),
        message: message.unwrap_or_default(),
        source: SOURCE_EXECUTOR.to_string(),
        reason: reason.unwrap_or_default().to_string(),
        executor_id: executor_id.to_string(),
        timestamp: now_secs(),
        uuid: uuid::Uuid::new_v4().as_bytes().to_vec(),
        healthy: None,
        data: Vec::new(),
        container_status: None,
    }
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// The terminal state, reason and message for a command that ended.
/// `killed`: the agent had signalled it because of a kill.
pub fn terminal(status: ExitStatus, killed: bool) -> (TaskState, Option<&'static str>, String) {
    let message = format!("Command {}", describe(status));
    if killed {
        (TaskState::TASK_KILLED, None, message)
    } else if status.success() {
        (TaskState::TASK_FINISHED, None, message)
    } else {
        (
            TaskState::TASK_FAILED,
            Some(REASON_COMMAND_EXECUTOR_FAILED),
            message,
        )
    }
}

/// `exited with status N` / `terminated with signal <strsignal text>`, as
/// Mesos' `WSTRINGIFY`.
pub fn describe(status: ExitStatus) -> String {
    match status {
        ExitStatus::Exited(code) => format!("exited with status {code}"),
        ExitStatus::Signaled(sig) => format!("terminated with signal {}", signal_text(sig)),
    }
}

/// glibc's `strsignal` text for the Linux signals.
pub fn signal_text(sig: i32) -> String {
    let text = match sig {
        1 => "Hangup",
        2 => "Interrupt",
        3 => "Quit",
        4 => "Illegal instruction",
        5 => "Trace/breakpoint trap",
        6 => "Aborted",
        7 => "Bus error",
        8 => "Floating point exception",
        9 => "Killed",
        10 => "User defined signal 1",
        11 => "Segmentation fault",
        12 => "User defined signal 2",
        13 => "Broken pipe",
        14 => "Alarm clock",
        15 => "Terminated",
        16 => "Stack fault",
        17 => "Child exited",
        18 => "Continued",
        19 => "Stopped (signal)",
        20 => "Stopped",
        21 => "Stopped (tty input)",
        22 => "Stopped (tty output)",
        23 => "Urgent I/O condition",
        24 => "CPU time limit exceeded",
        25 => "File size limit exceeded",
        26 => "Virtual timer expired",
        27 => "Profiling timer expired",
        28 => "Window changed",
        29 => "I/O possible",
        30 => "Power failure",
        31 => "Bad system call",
        _ => return format!("Unknown signal {sig}"),
    };
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_are_unique_and_from_the_executor() {
        let a = update("t", "e", TaskState::TASK_RUNNING, None, None);
        let b = update("t", "e", TaskState::TASK_RUNNING, None, None);
        assert_eq!(a.uuid.len(), 16);
        assert_ne!(a.uuid, b.uuid);
        assert_eq!(a.source, "SOURCE_EXECUTOR");
        assert_eq!(a.state, "TASK_RUNNING");
        assert_eq!(a.executor_id, "e");
        assert!(a.timestamp > 1.6e9);
    }

    #[test]
    fn terminal_states_and_wording() {
        assert_eq!(
            terminal(ExitStatus::Exited(0), false),
            (
                TaskState::TASK_FINISHED,
                None,
                "Command exited with status 0".into()
            )
        );
        assert_eq!(
            terminal(ExitStatus::Exited(3), false),
            (
                TaskState::TASK_FAILED,
                Some(REASON_COMMAND_EXECUTOR_FAILED),
                "Command exited with status 3".into()
            )
        );
        assert_eq!(
            terminal(ExitStatus::Signaled(9), false).2,
            "Command terminated with signal Killed"
        );
        assert_eq!(
            terminal(ExitStatus::Signaled(15), true),
            (
                TaskState::TASK_KILLED,
                None,
                "Command terminated with signal Terminated".into()
            )
        );
        assert_eq!(
            terminal(ExitStatus::Exited(0), true).0,
            TaskState::TASK_KILLED
        );
        assert_eq!(signal_text(64), "Unknown signal 64");
    }
}
