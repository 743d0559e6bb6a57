//! A blocking facade over the async client, for callers without a runtime
//! (tests, xtask, the lab harness): each [`Client`] owns a small runtime
//! whose one worker also reads the event streams of its subscriptions, so
//! events arrive while the caller does something else.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_api::inventory::Inventory;
use keel_api::keel::{
    AgentDetail, Agents, Cluster, CreateToken, CreatedToken, PendingAgents, Tokens,
};
use keel_api::legacy::{Flags, Frameworks, Slaves, State, Tasks};
use keel_api::mesos::{FrameworkInfo, Id, TaskInfo, TaskStatus};
use keel_api::operator::maintenance::{ClusterStatus, MachineId, Schedule};
use keel_api::operator::{
    Call as OperatorCall, Event as OperatorEvent, FileInfo, GetAgents, GetExecutors, GetFlags,
    GetFrameworks, GetMaster, GetMetrics, GetQuota, GetRoles, GetState, GetTasks, GetWeights,
    GrowVolume, Offer, QuotaConfig, ReadFileAnswer, Reservation, Response, ShrinkVolume,
    VersionInfo, Volumes, WeightInfo,
};
use tokio::runtime::Runtime;

use crate::scheduler::{Call, Caller, Event, Operation, ReconcileTask, Subscribe, Subscribed};
use crate::{ClientBuilder, ClientError, TaskQuery};

/// The blocking twin of [`crate::Client`].
pub struct Client {
    rt: Arc<Runtime>,
    inner: crate::Client,
}

fn runtime() -> Result<Runtime, ClientError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("keel-client")
        .enable_all()
        .build()
        .map_err(ClientError::Runtime)
}

/// Blocking methods that call the async one of the same name.
macro_rules! blocking {
    ($( $(#[$meta:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )*) => {
        $(
            $(#[$meta])*
            pub fn $name(&self $(, $arg: $ty)*) -> Result<$ret, ClientError> {
                self.rt.block_on(self.inner.$name($($arg),*))
            }
        )*
    };
}

impl Client {
    pub fn new(masters: &str) -> Result<Client, ClientError> {
        Client::from_builder(crate::Client::builder(masters))
    }

    pub fn from_builder(builder: ClientBuilder) -> Result<Client, ClientError> {
        let rt = runtime()?;
        // reqwest's client must be built inside the runtime it runs on.
        let inner = {
            let _guard = rt.enter();
            builder.build()?
        };
        Ok(Client {
            rt: Arc::new(rt),
            inner,
        })
    }

    /// The async client underneath.
    pub fn asynchronous(&self) -> &crate::Client {
        &self.inner
    }

    blocking! {
        fn call(&self, call: &OperatorCall) -> Option<Response>;
        fn get_health(&self) -> bool;
        fn get_flags(&self) -> GetFlags;
        fn get_version(&self) -> VersionInfo;
        fn get_master(&self) -> GetMaster;
        fn get_metrics(&self) -> GetMetrics;
        fn get_agents(&self) -> GetAgents;
        fn get_state(&self) -> GetState;
        fn get_frameworks(&self) -> GetFrameworks;
        fn get_tasks(&self) -> GetTasks;
        fn get_executors(&self) -> GetExecutors;
        fn get_roles(&self) -> GetRoles;
        fn get_weights(&self) -> GetWeights;
        fn get_quota(&self) -> GetQuota;
        fn update_weights(&self, weight_infos: Vec<WeightInfo>) -> ();
        fn update_quota(&self, quota_configs: Vec<QuotaConfig>) -> ();
        fn reserve_resources(&self, reservation: Reservation) -> ();
        fn unreserve_resources(&self, reservation: Reservation) -> ();
        fn teardown(&self, framework_id: &str) -> ();
        fn mark_agent_gone(&self, agent_id: &str) -> ();
        fn list_files(&self, path: &str) -> Vec<FileInfo>;
        fn read_file(&self, path: &str, offset: i64, length: Option<i64>) -> ReadFileAnswer;
        fn create_volumes(&self, volumes: Volumes) -> ();
        fn destroy_volumes(&self, volumes: Volumes) -> ();
        fn grow_volume(&self, grow: GrowVolume) -> ();
        fn shrink_volume(&self, shrink: ShrinkVolume) -> ();
        fn health(&self) -> ();
        fn version(&self) -> VersionInfo;
        fn legacy_state(&self) -> State;
        fn legacy_slaves(&self) -> Slaves;
        fn legacy_frameworks(&self) -> Frameworks;
        fn legacy_tasks(&self, query: TaskQuery) -> Tasks;
        fn legacy_flags(&self) -> Flags;
        fn keel_agents(&self) -> Agents;
        fn keel_agent(&self, id: &str) -> AgentDetail;
        fn inventory(&self, id: &str) -> Inventory;
        fn masters(&self) -> Cluster;
        fn add_master(&self, addr: &str) -> Cluster;
        fn remove_master(&self, id: u64) -> Cluster;
        fn create_token(&self, request: &CreateToken) -> CreatedToken;
        fn tokens(&self) -> Tokens;
        fn revoke_token(&self, id: &str) -> Tokens;
        fn pending_agents(&self, all: bool) -> PendingAgents;
        fn decide_agent(&self, id: &str, approve: bool) -> PendingAgents;
        fn get_maintenance_schedule(&self) -> Schedule;
        fn get_maintenance_status(&self) -> ClusterStatus;
        fn update_maintenance_schedule(&self, schedule: Schedule) -> ();
        fn start_maintenance(&self, machines: Vec<MachineId>) -> ();
        fn stop_maintenance(&self, machines: Vec<MachineId>) -> ();
        fn drain_agent(&self, agent_id: &str, max_grace_period: Option<Duration>, mark_gone: bool) -> ();
        fn deactivate_agent(&self, agent_id: &str) -> ();
        fn reactivate_agent(&self, agent_id: &str) -> ();
        fn legacy_maintenance_schedule(&self) -> Schedule;
        fn legacy_update_maintenance_schedule(&self, schedule: &Schedule) -> ();
        fn legacy_maintenance_status(&self) -> ClusterStatus;
        fn legacy_machines(&self, down: bool, machines: &[MachineId]) -> ();
    }

    /// SUBSCRIBE (see [`crate::Client::subscribe`]).
    pub fn subscribe(&self, subscribe: Subscribe) -> Result<Subscription, ClientError> {
        let inner = self.rt.block_on(self.inner.subscribe(subscribe))?;
        Ok(Subscription {
            rt: self.rt.clone(),
            inner,
            backlog: VecDeque::new(),
        })
    }

    pub fn subscribe_framework(&self, info: FrameworkInfo) -> Result<Subscription, ClientError> {
        self.subscribe(Subscribe::new(info))
    }

    /// The operator event stream (see [`crate::Client::events`]).
    pub fn events(&self) -> Result<EventStream, ClientError> {
        let inner = self.rt.block_on(self.inner.events())?;
        Ok(EventStream {
            rt: self.rt.clone(),
            inner,
        })
    }
}

/// The blocking twin of [`crate::EventStream`].
pub struct EventStream {
    rt: Arc<Runtime>,
    inner: crate::EventStream,
}

impl EventStream {
    /// The next event within `within`; `None` when none came in time or
    /// the stream ended (tell them apart with [`EventStream::ended`]).
    pub fn next(&mut self, within: Duration) -> Option<Result<OperatorEvent, ClientError>> {
        self.rt
            .block_on(async { tokio::time::timeout(within, self.inner.next()).await })
            .ok()
            .flatten()
    }

    /// Waits up to `within` for the stream to end, reading what is left;
    /// whether it ended.
    pub fn ended(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        self.rt.block_on(async {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, self.inner.next()).await {
                    Ok(None) | Ok(Some(Err(_))) => return true,
                    Ok(Some(Ok(_))) => {}
                    Err(_) => return false,
                }
            }
        })
    }

    pub fn subscribed(&self) -> &keel_api::operator::events::Subscribed {
        self.inner.subscribed()
    }
}

/// The blocking twin of [`crate::Subscription`], with a backlog: events
/// passed over while waiting for another kind are kept, in order.
pub struct Subscription {
    rt: Arc<Runtime>,
    inner: crate::Subscription,
    backlog: VecDeque<Event>,
}

impl Subscription {
    /// The next event (a kept one first) within `within`; `None` when none
    /// came or the stream ended.
    pub fn next(&mut self, within: Duration) -> Option<Result<Event, ClientError>> {
        if let Some(e) = self.backlog.pop_front() {
            return Some(Ok(e));
        }
        self.recv(within)
    }

    fn recv(&mut self, within: Duration) -> Option<Result<Event, ClientError>> {
        self.rt
            .block_on(async { tokio::time::timeout(within, self.inner.next()).await })
            .ok()
            .flatten()
    }

    /// The next event of `kind` within `within`, skipping heartbeats and
    /// keeping the others; `Ok(None)` when none came in time or the stream
    /// ended.
    pub fn next_of(&mut self, kind: &str, within: Duration) -> Result<Option<Event>, ClientError> {
        if let Some(i) = self.backlog.iter().position(|e| e.kind() == kind) {
            return Ok(self.backlog.remove(i));
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Some(Ok(e)) if e.kind() == kind => return Ok(Some(e)),
                Some(Ok(Event::Heartbeat)) => {}
                Some(Ok(e)) => self.backlog.push_back(e),
                Some(Err(e)) => return Err(e),
                None => return Ok(None),
            }
        }
    }

    /// Events kept while waiting for others.
    pub fn backlog(&self) -> impl Iterator<Item = &Event> {
        self.backlog.iter()
    }

    /// Ends the event stream (the framework disconnects); calls still work.
    pub fn close(&mut self) {
        self.inner.close();
    }

    pub fn framework_id(&self) -> &Id {
        self.inner.framework_id()
    }

    pub fn stream_id(&self) -> &str {
        self.inner.stream_id()
    }

    pub fn master(&self) -> &str {
        self.inner.master()
    }

    pub fn subscribed(&self) -> &Subscribed {
        self.inner.subscribed()
    }

    pub fn caller(&self) -> Caller {
        self.inner.caller()
    }

    blocking! {
        /// Sends `call`; the success status (202, or 200 for UPDATE_FRAMEWORK).
        fn call(&self, call: &Call) -> reqwest::StatusCode;
        fn accept(&self, offer_ids: Vec<Id>, operations: Vec<Operation>, refuse_seconds: Option<f64>) -> ();
        fn launch(&self, offer: &Offer, tasks: Vec<TaskInfo>, refuse_seconds: Option<f64>) -> ();
        fn decline(&self, offer_ids: Vec<Id>, refuse_seconds: Option<f64>) -> ();
        /// ACKNOWLEDGE `status` if it carries a uuid; whether it did.
        fn acknowledge(&self, status: &TaskStatus) -> bool;
        fn kill(&self, task_id: &str) -> ();
        fn reconcile(&self, tasks: Vec<ReconcileTask>) -> ();
        fn revive(&self, roles: Vec<String>) -> ();
        fn suppress(&self, roles: Vec<String>) -> ();
        fn teardown(&self) -> ();
        fn update_framework(&self, info: FrameworkInfo) -> ();
        /// ACCEPT_INVERSE_OFFERS (`accept`) or DECLINE_INVERSE_OFFERS.
        fn answer_inverse_offers(&self, accept: bool, inverse_offer_ids: Vec<Id>, refuse_seconds: Option<f64>) -> ();
    }
}
