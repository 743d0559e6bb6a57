//! The Mesos v1 operator API (`POST /api/v1`), answered by the leader.

use keel_api::mesos::Id;
use keel_api::operator::maintenance::{
    AgentRef, ClusterStatus, DrainAgent, MachineId, Machines, MaintenanceSchedule, ProtoDuration,
    Schedule,
};
use keel_api::operator::{
    Call, GetAgents, GetExecutors, GetFlags, GetFrameworks, GetMaster, GetMetrics, GetMetricsCall,
    GetQuota, GetRoles, GetState, GetTasks, GetWeights, MarkAgentGone, QuotaConfig, Reservation,
    Response, Teardown, UpdateQuota, UpdateWeights, VersionInfo, WeightInfo,
};
use reqwest::Method;

use crate::{Client, ClientError};

const OPERATOR: &str = "/api/v1";

/// The body of the answer `$variant` to `$call`, or an error naming both.
macro_rules! get {
    ($self:ident, $variant:ident) => {
        match $self.call(&Call::$variant).await? {
            Some(Response::$variant(body)) => Ok(body),
            other => Err(ClientError::UnexpectedAnswer {
                call: Call::$variant.kind().to_string(),
                got: other.map_or("nothing".to_string(), |r| r.kind().to_string()),
            }),
        }
    };
}

impl Client {
    /// Any operator call: the answer of a `GET_*` call, `None` for the
    /// others (answered with an empty 200 or 202).
    pub async fn call(&self, call: &Call) -> Result<Option<Response>, ClientError> {
        let (url, bytes) = self.send_json(Method::POST, OPERATOR, call).await?;
        if !call.has_response() {
            return Ok(None);
        }
        Self::decode(url, &bytes).map(Some)
    }

    /// `GET_HEALTH`: whether the leader is healthy.
    pub async fn get_health(&self) -> Result<bool, ClientError> {
        get!(self, GetHealth).map(|h| h.healthy)
    }

    pub async fn get_flags(&self) -> Result<GetFlags, ClientError> {
        get!(self, GetFlags)
    }

    pub async fn get_version(&self) -> Result<VersionInfo, ClientError> {
        get!(self, GetVersion).map(|v| v.version_info)
    }

    /// `GET_METRICS`: the leader's `/metrics/snapshot` as `{name, value}`.
    pub async fn get_metrics(&self) -> Result<GetMetrics, ClientError> {
        let call = Call::GetMetrics(GetMetricsCall::default());
        match self.call(&call).await? {
            Some(Response::GetMetrics(body)) => Ok(body),
            other => Err(ClientError::UnexpectedAnswer {
                call: call.kind().to_string(),
                got: other.map_or("nothing".to_string(), |r| r.kind().to_string()),
            }),
        }
    }

    pub async fn get_master(&self) -> Result<GetMaster, ClientError> {
        get!(self, GetMaster)
    }

    pub async fn get_agents(&self) -> Result<GetAgents, ClientError> {
        get!(self, GetAgents)
    }

    pub async fn get_state(&self) -> Result<GetState, ClientError> {
        get!(self, GetState)
    }

    pub async fn get_frameworks(&self) -> Result<GetFrameworks, ClientError> {
        get!(self, GetFrameworks)
    }

    pub async fn get_tasks(&self) -> Result<GetTasks, ClientError> {
        get!(self, GetTasks)
    }

    pub async fn get_executors(&self) -> Result<GetExecutors, ClientError> {
        get!(self, GetExecutors)
    }

    pub async fn get_roles(&self) -> Result<GetRoles, ClientError> {
        get!(self, GetRoles)
    }

    pub async fn get_weights(&self) -> Result<GetWeights, ClientError> {
        get!(self, GetWeights)
    }

    pub async fn get_quota(&self) -> Result<GetQuota, ClientError> {
        get!(self, GetQuota)
    }

    /// `UPDATE_WEIGHTS` (a registry write).
    pub async fn update_weights(&self, weight_infos: Vec<WeightInfo>) -> Result<(), ClientError> {
        self.call(&Call::UpdateWeights(UpdateWeights { weight_infos }))
            .await
            .map(drop)
    }

    /// `UPDATE_QUOTA` (a registry write).
    pub async fn update_quota(&self, quota_configs: Vec<QuotaConfig>) -> Result<(), ClientError> {
        self.call(&Call::UpdateQuota(UpdateQuota {
            force: None,
            quota_configs,
        }))
        .await
        .map(drop)
    }

    /// `RESERVE_RESOURCES` (dynamic reservations on one agent).
    pub async fn reserve_resources(&self, reservation: Reservation) -> Result<(), ClientError> {
        self.call(&Call::ReserveResources(reservation))
            .await
            .map(drop)
    }

    /// `UNRESERVE_RESOURCES`.
    pub async fn unreserve_resources(&self, reservation: Reservation) -> Result<(), ClientError> {
        self.call(&Call::UnreserveResources(reservation))
            .await
            .map(drop)
    }

    /// `MARK_AGENT_GONE`: removes an agent for good (its tasks become
    /// TASK_GONE_BY_OPERATOR, its session is closed, its certificate and
    /// id are revoked). Marking a gone agent again succeeds.
    pub async fn mark_agent_gone(&self, agent_id: &str) -> Result<(), ClientError> {
        self.call(&Call::MarkAgentGone(MarkAgentGone {
            agent_id: Id::new(agent_id),
        }))
        .await
        .map(drop)
    }

    /// `GET_MAINTENANCE_SCHEDULE`.
    pub async fn get_maintenance_schedule(&self) -> Result<Schedule, ClientError> {
        get!(self, GetMaintenanceSchedule).map(|s| s.schedule)
    }

    /// `GET_MAINTENANCE_STATUS`: the draining machines with the
    /// frameworks' answers to inverse offers, and the machines down.
    pub async fn get_maintenance_status(&self) -> Result<ClusterStatus, ClientError> {
        get!(self, GetMaintenanceStatus).map(|s| s.status)
    }

    /// `UPDATE_MAINTENANCE_SCHEDULE`: replaces the whole schedule (an
    /// empty one cancels it).
    pub async fn update_maintenance_schedule(&self, schedule: Schedule) -> Result<(), ClientError> {
        self.call(&Call::UpdateMaintenanceSchedule(MaintenanceSchedule {
            schedule,
        }))
        .await
        .map(drop)
    }

    /// `START_MAINTENANCE`: the machines go DOWN (their agents are
    /// removed).
    pub async fn start_maintenance(&self, machines: Vec<MachineId>) -> Result<(), ClientError> {
        self.call(&Call::StartMaintenance(Machines { machines }))
            .await
            .map(drop)
    }

    /// `STOP_MAINTENANCE`: the machines are up again, out of the schedule.
    pub async fn stop_maintenance(&self, machines: Vec<MachineId>) -> Result<(), ClientError> {
        self.call(&Call::StopMaintenance(Machines { machines }))
            .await
            .map(drop)
    }

    /// `DRAIN_AGENT`: no more offers, its tasks killed (each kill policy's
    /// grace capped by `max_grace_period`), DRAINED once none is left;
    /// then gone with `mark_gone`.
    pub async fn drain_agent(
        &self,
        agent_id: &str,
        max_grace_period: Option<std::time::Duration>,
        mark_gone: bool,
    ) -> Result<(), ClientError> {
        let max_grace_period = max_grace_period
            .map(|d| ProtoDuration::from_nanos(d.as_nanos().min(i64::MAX as u128) as i64));
        self.call(&Call::DrainAgent(DrainAgent {
            agent_id: Id::new(agent_id),
            max_grace_period,
            mark_gone: mark_gone.then_some(true),
        }))
        .await
        .map(drop)
    }

    /// `DEACTIVATE_AGENT`: no more offers; its tasks keep running.
    pub async fn deactivate_agent(&self, agent_id: &str) -> Result<(), ClientError> {
        self.call(&Call::DeactivateAgent(AgentRef {
            agent_id: Id::new(agent_id),
        }))
        .await
        .map(drop)
    }

    /// `REACTIVATE_AGENT`: offers again (ends a drain).
    pub async fn reactivate_agent(&self, agent_id: &str) -> Result<(), ClientError> {
        self.call(&Call::ReactivateAgent(AgentRef {
            agent_id: Id::new(agent_id),
        }))
        .await
        .map(drop)
    }

    /// `TEARDOWN`: removes a framework and kills its tasks.
    pub async fn teardown(&self, framework_id: &str) -> Result<(), ClientError> {
        self.call(&Call::Teardown(Teardown {
            framework_id: Id::new(framework_id),
        }))
        .await
        .map(drop)
    }
}
