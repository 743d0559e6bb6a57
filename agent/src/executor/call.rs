//! The master's calls to the task runtime, parsed from the session stream.
//! A launch's JSON is read here, once ([`launch::parse`]): the runtime gets
//! typed tasks.

use keel_api::pb::{self, master_message::Msg as MasterMsg};

use super::launch::{self, LaunchRequest};

#[derive(Debug, Clone, PartialEq)]
pub enum ExecutorCall {
    Launch(Box<LaunchRequest>),
    Kill(pb::KillTask),
    Acknowledge(pb::Acknowledge),
    ShutdownFramework(pb::ShutdownFramework),
    DestroyVolumes(pb::DestroyVolumes),
    /// A scheduler's data for one of its custom executors.
    FrameworkMessage(pb::FrameworkMessage),
    ShutdownExecutor(pb::ShutdownExecutor),
}

impl ExecutorCall {
    /// The call a master message carries; other messages are given back.
    pub fn from_master(msg: MasterMsg) -> Result<Self, MasterMsg> {
        match msg {
            MasterMsg::LaunchTasks(m) => Ok(ExecutorCall::launch(m)),
            MasterMsg::KillTask(m) => Ok(ExecutorCall::Kill(m)),
            MasterMsg::Acknowledge(m) => Ok(ExecutorCall::Acknowledge(m)),
            MasterMsg::ShutdownFramework(m) => Ok(ExecutorCall::ShutdownFramework(m)),
            MasterMsg::DestroyVolumes(m) => Ok(ExecutorCall::DestroyVolumes(m)),
            MasterMsg::FrameworkMessage(m) => Ok(ExecutorCall::FrameworkMessage(m)),
            MasterMsg::ShutdownExecutor(m) => Ok(ExecutorCall::ShutdownExecutor(m)),
            other => Err(other),
        }
    }

    /// The launch `msg` asks for, its tasks parsed.
    pub fn launch(msg: pb::LaunchTasks) -> Self {
        ExecutorCall::Launch(Box::new(launch::parse(msg)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_messages_are_calls_and_others_come_back() {
        let kill = pb::KillTask {
            framework_id: "f".into(),
            task_id: "t".into(),
            grace_period_ms: Some(5),
        };
        assert_eq!(
            ExecutorCall::from_master(MasterMsg::KillTask(kill.clone())),
            Ok(ExecutorCall::Kill(kill))
        );
        let hb = MasterMsg::Heartbeat(pb::Heartbeat::default());
        assert_eq!(ExecutorCall::from_master(hb.clone()), Err(hb));
    }

    #[test]
    fn a_launch_arrives_parsed() {
        let msg = pb::LaunchTasks {
            framework_id: "f".into(),
            task_info_json: vec![
                r#"{"name": "t", "task_id": {"value": "t"}, "agent_id": {"value": "a"},
                    "health_check": {"type": "TCP", "tcp": {"port": 80}}}"#
                    .into(),
            ],
            ..Default::default()
        };
        let Ok(ExecutorCall::Launch(req)) = ExecutorCall::from_master(MasterMsg::LaunchTasks(msg))
        else {
            panic!("not a launch");
        };
        let launch::ParsedTask::Valid(spec) = &req.tasks[0] else {
            panic!("{req:?}");
        };
        assert_eq!(spec.health_check().unwrap().tcp.as_ref().unwrap().port, 80);
    }
}
