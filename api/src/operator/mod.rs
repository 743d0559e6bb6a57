//! The Mesos v1 operator API (`POST /api/v1`) as Keel answers it: the calls
//! ([`Call`], with typed bodies for those that have one) and the answers
//! ([`Response`]), each in Mesos' envelope `{"type": "GET_X", "get_x": {...}}`.
//!
//! - `GET_HEALTH`, `GET_FLAGS`, `GET_VERSION`, `GET_MASTER` in [`master`];
//! - `GET_AGENTS` in [`agents`];
//! - `GET_FRAMEWORKS` (and the `Offer` message) in [`frameworks`];
//! - `GET_TASKS`, `GET_STATE` in [`tasks`];
//! - `GET_ROLES`, `GET_WEIGHTS`/`UPDATE_WEIGHTS`, `GET_QUOTA`/`UPDATE_QUOTA`,
//!   `RESERVE_RESOURCES`/`UNRESERVE_RESOURCES` in [`roles`];
//! - `GET_METRICS` in [`metrics`];
//! - maintenance (schedules, machines up and down, status) and
//!   `DRAIN_AGENT`, `DEACTIVATE_AGENT`, `REACTIVATE_AGENT` in [`maintenance`];
//! - `LIST_FILES`, `READ_FILE` in [`files`];
//! - `CREATE_VOLUMES`, `DESTROY_VOLUMES`, `GROW_VOLUME`, `SHRINK_VOLUME` in
//!   [`volumes`];
//! - `TEARDOWN` and `MARK_AGENT_GONE` here;
//! - the event stream (`SUBSCRIBE`) in [`events`].
//!
//! Fields Keel always sends are plain; fields a Mesos master may leave out
//! are `Option` or default to empty, so answers of a real Mesos master read
//! as well. Keel's additions (`keel_cluster`, `keel_version`) are optional.

pub mod agents;
pub(crate) mod envelope;
pub mod events;
pub mod files;
pub mod frameworks;
pub mod maintenance;
pub mod master;
pub mod metrics;
pub mod roles;
pub mod tasks;
pub mod volumes;

pub use agents::{Agent, AgentInfo, GetAgents};
pub use events::Event;
pub use files::{FileInfo, ListFiles, ListFilesAnswer, ReadFile, ReadFileAnswer};
pub use frameworks::{Framework, GetFrameworks, Offer};
pub use maintenance::{
    AgentRef, ClusterStatus, DrainAgent, DrainInfo, GetMaintenanceStatus, MachineId, Machines,
    MaintenanceSchedule, Schedule, Unavailability,
};
pub use master::{
    Address, Flag, GetFlags, GetHealth, GetLoggingLevel, GetMaster, GetVersion, MasterInfo,
    SetLoggingLevel, VersionInfo,
};
pub use metrics::{GetMetrics, GetMetricsCall, Metric};
pub use roles::{
    GetQuota, GetRoles, GetWeights, QuotaConfig, QuotaInfo, QuotaRequest, QuotaScalar, QuotaStatus,
    RemoveQuota, Reservation, Role, RoleQuota, ScalarMap, SetQuota, UpdateQuota, UpdateWeights,
    WeightInfo,
};
pub use tasks::{
    ExecutorEntry, GetExecutors, GetOperations, GetState, GetTasks, OperationEntry, Task,
};
pub use volumes::{GrowVolume, ShrinkVolume, Volumes};

use serde::{Deserialize, Serialize};

use crate::mesos::Id;

/// `mark_agent_gone`: the agent an operator removes for good (its tasks
/// become TASK_GONE_BY_OPERATOR; it may never register again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarkAgentGone {
    pub agent_id: Id,
}

/// `teardown`: the framework to remove.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Teardown {
    pub framework_id: Id,
}

envelope::envelope! {
    /// An operator call Keel answers: the `type` and, for the mutating
    /// ones, the body under the type's lower-case name.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Call {
        GetHealth = "GET_HEALTH",
        GetFlags = "GET_FLAGS",
        GetVersion = "GET_VERSION",
        GetMaster = "GET_MASTER",
        GetAgents = "GET_AGENTS",
        GetState = "GET_STATE",
        GetFrameworks = "GET_FRAMEWORKS",
        GetTasks = "GET_TASKS",
        GetExecutors = "GET_EXECUTORS",
        GetLoggingLevel = "GET_LOGGING_LEVEL",
        GetOperations = "GET_OPERATIONS",
        GetRoles = "GET_ROLES",
        GetWeights = "GET_WEIGHTS",
        GetQuota = "GET_QUOTA",
        Subscribe = "SUBSCRIBE",
        GetMaintenanceSchedule = "GET_MAINTENANCE_SCHEDULE",
        GetMaintenanceStatus = "GET_MAINTENANCE_STATUS";
        UpdateWeights(UpdateWeights) = "UPDATE_WEIGHTS" / "update_weights",
        UpdateQuota(UpdateQuota) = "UPDATE_QUOTA" / "update_quota",
        SetQuota(SetQuota) = "SET_QUOTA" / "set_quota",
        SetLoggingLevel(SetLoggingLevel) = "SET_LOGGING_LEVEL" / "set_logging_level",
        RemoveQuota(RemoveQuota) = "REMOVE_QUOTA" / "remove_quota",
        ReserveResources(Reservation) = "RESERVE_RESOURCES" / "reserve_resources",
        UnreserveResources(Reservation) = "UNRESERVE_RESOURCES" / "unreserve_resources",
        Teardown(Teardown) = "TEARDOWN" / "teardown",
        MarkAgentGone(MarkAgentGone) = "MARK_AGENT_GONE" / "mark_agent_gone",
        GetMetrics(GetMetricsCall) = "GET_METRICS" / "get_metrics",
        UpdateMaintenanceSchedule(MaintenanceSchedule) = "UPDATE_MAINTENANCE_SCHEDULE" / "update_maintenance_schedule",
        StartMaintenance(Machines) = "START_MAINTENANCE" / "start_maintenance",
        StopMaintenance(Machines) = "STOP_MAINTENANCE" / "stop_maintenance",
        DrainAgent(DrainAgent) = "DRAIN_AGENT" / "drain_agent",
        DeactivateAgent(AgentRef) = "DEACTIVATE_AGENT" / "deactivate_agent",
        ReactivateAgent(AgentRef) = "REACTIVATE_AGENT" / "reactivate_agent",
        ListFiles(ListFiles) = "LIST_FILES" / "list_files",
        ReadFile(ReadFile) = "READ_FILE" / "read_file",
        CreateVolumes(Volumes) = "CREATE_VOLUMES" / "create_volumes",
        DestroyVolumes(Volumes) = "DESTROY_VOLUMES" / "destroy_volumes",
        GrowVolume(GrowVolume) = "GROW_VOLUME" / "grow_volume",
        ShrinkVolume(ShrinkVolume) = "SHRINK_VOLUME" / "shrink_volume",
    }
}

envelope::envelope! {
    /// The answer to a `GET_*` call.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Response {
        ;
        GetHealth(GetHealth) = "GET_HEALTH" / "get_health",
        GetFlags(GetFlags) = "GET_FLAGS" / "get_flags",
        GetVersion(GetVersion) = "GET_VERSION" / "get_version",
        GetMaster(GetMaster) = "GET_MASTER" / "get_master",
        GetAgents(GetAgents) = "GET_AGENTS" / "get_agents",
        GetState(GetState) = "GET_STATE" / "get_state",
        GetFrameworks(GetFrameworks) = "GET_FRAMEWORKS" / "get_frameworks",
        GetTasks(GetTasks) = "GET_TASKS" / "get_tasks",
        GetExecutors(GetExecutors) = "GET_EXECUTORS" / "get_executors",
        GetLoggingLevel(GetLoggingLevel) = "GET_LOGGING_LEVEL" / "get_logging_level",
        GetOperations(GetOperations) = "GET_OPERATIONS" / "get_operations",
        GetRoles(GetRoles) = "GET_ROLES" / "get_roles",
        GetWeights(GetWeights) = "GET_WEIGHTS" / "get_weights",
        GetQuota(GetQuota) = "GET_QUOTA" / "get_quota",
        GetMetrics(GetMetrics) = "GET_METRICS" / "get_metrics",
        GetMaintenanceSchedule(MaintenanceSchedule) = "GET_MAINTENANCE_SCHEDULE" / "get_maintenance_schedule",
        GetMaintenanceStatus(GetMaintenanceStatus) = "GET_MAINTENANCE_STATUS" / "get_maintenance_status",
        ListFiles(ListFilesAnswer) = "LIST_FILES" / "list_files",
        ReadFile(ReadFileAnswer) = "READ_FILE" / "read_file",
    }
}

impl Call {
    /// Whether the call is answered with a [`Response`] (the `GET_*`
    /// calls, `LIST_FILES`, `READ_FILE`); the others are answered with an
    /// empty 200 or 202.
    pub fn has_response(&self) -> bool {
        let kind = self.kind();
        kind.starts_with("GET_") || kind == "LIST_FILES" || kind == "READ_FILE"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn calls_travel_in_the_mesos_envelope() {
        assert_eq!(
            serde_json::to_value(Call::GetHealth).unwrap(),
            json!({"type": "GET_HEALTH"})
        );
        let teardown = Call::Teardown(Teardown {
            framework_id: Id::new("f"),
        });
        let j = serde_json::to_value(&teardown).unwrap();
        assert_eq!(
            j,
            json!({"type": "TEARDOWN", "teardown": {"framework_id": {"value": "f"}}})
        );
        assert_eq!(serde_json::from_value::<Call>(j).unwrap(), teardown);
        assert!(Call::GetTasks.has_response() && !teardown.has_response());
        let gone = Call::MarkAgentGone(MarkAgentGone {
            agent_id: Id::new("m-S1"),
        });
        let j = serde_json::to_value(&gone).unwrap();
        assert_eq!(
            j,
            json!({"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": "m-S1"}}})
        );
        assert_eq!(serde_json::from_value::<Call>(j).unwrap(), gone);
    }

    #[test]
    fn responses_put_the_body_before_the_type() {
        let r = Response::GetHealth(GetHealth { healthy: true });
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"get_health":{"healthy":true},"type":"GET_HEALTH"}"#
        );
        let back: Response =
            serde_json::from_str(r#"{"type":"GET_HEALTH","get_health":{"healthy":true}}"#).unwrap();
        assert_eq!(back, r);
        let wrong = serde_json::from_str::<Response>(r#"{"type":"GET_HEALTH"}"#);
        assert!(wrong.unwrap_err().to_string().contains("get_health"));
        let unknown = serde_json::from_str::<Response>(r#"{"type":"GET_NOTHING"}"#);
        assert!(unknown.unwrap_err().to_string().contains("GET_NOTHING"));
    }
}
