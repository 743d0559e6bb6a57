//! The master's calls to the task runtime, parsed from the session stream.

use keel_api::pb::{self, master_message::Msg as MasterMsg};

#[derive(Debug, Clone, PartialEq)]
pub enum ExecutorCall {
    Launch(pb::LaunchTasks),
    Kill(pb::KillTask),
    Acknowledge(pb::Acknowledge),
    ShutdownFramework(pb::ShutdownFramework),
    DestroyVolumes(pb::DestroyVolumes),
}

impl ExecutorCall {
    /// The call a master message carries; other messages are given back.
    pub fn from_master(msg: MasterMsg) -> Result<Self, MasterMsg> {
        match msg {
            MasterMsg::LaunchTasks(m) => Ok(ExecutorCall::Launch(m)),
            MasterMsg::KillTask(m) => Ok(ExecutorCall::Kill(m)),
            MasterMsg::Acknowledge(m) => Ok(ExecutorCall::Acknowledge(m)),
            MasterMsg::ShutdownFramework(m) => Ok(ExecutorCall::ShutdownFramework(m)),
            MasterMsg::DestroyVolumes(m) => Ok(ExecutorCall::DestroyVolumes(m)),
            other => Err(other),
        }
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
}
