//! Frameworks, tasks, offers and roles: v1 operator objects and legacy
//! `/master/state` objects, from one consistent [`Snapshot`].

use std::collections::{BTreeMap, HashMap};

use keel_api::legacy;
use keel_api::mesos::{FrameworkInfo, Id, TaskState};
use keel_api::operator::Unavailability;
use keel_api::operator::maintenance::InverseOffer;
use keel_api::operator::{
    ExecutorEntry, Framework, GetExecutors, GetFrameworks, GetRoles, GetTasks, Offer, QuotaScalar,
    Role, RoleQuota, ScalarMap, Task,
};
use keel_api::resources::Resources;
use keel_api::resources::v1::AllocationInfo;

use super::views::nanos;
use crate::core::{Master, TaskView};

/// One consistent snapshot of the master's state (see [`Snapshot::take`]).
pub use crate::engine::Snapshot;

/// v1 `Task`; labels, discovery, container and health check pass through
/// from the TaskInfo.
pub fn task_v1(t: &TaskView) -> Task {
    let last = t.statuses.last();
    Task {
        name: t.name.clone(),
        task_id: Id::new(&t.task_id),
        framework_id: Id::new(&t.framework_id),
        executor_id: t.executor_id.as_deref().map(Id::new),
        agent_id: Id::new(&t.agent_id),
        state: t.state,
        resources: t.resources.to_v1_allocated(Some(&t.role)),
        statuses: t.statuses.clone(),
        status_update_state: last.map(|s| s.state),
        status_update_uuid: last.and_then(|s| s.uuid.clone()),
        labels: t.info.labels.clone(),
        discovery: t.info.discovery.clone(),
        container: t.info.container.clone(),
        health_check: t.info.health_check.clone(),
        kill_policy: t.info.kill_policy.clone(),
    }
}

/// Legacy task object.
pub fn task_legacy(t: &TaskView) -> legacy::Task {
    legacy::Task {
        id: t.task_id.clone(),
        name: t.name.clone(),
        framework_id: t.framework_id.clone(),
        executor_id: t.executor_id.clone().unwrap_or_default(),
        slave_id: t.agent_id.clone(),
        state: t.state,
        resources: t.resources.to_legacy(),
        role: t.role.clone(),
        statuses: t
            .statuses
            .iter()
            .map(|s| legacy::TaskStatus {
                state: s.state,
                timestamp: s.timestamp.unwrap_or_default(),
                healthy: s.healthy,
                container_status: s.container_status.as_deref().cloned(),
            })
            .collect(),
    }
}

/// v1 `Framework` alone (the event stream's): no offers or resources.
pub fn framework_v1(f: &crate::core::FrameworkView) -> Framework {
    Framework {
        framework_info: f.info.clone(),
        active: f.connected,
        connected: f.connected,
        recovered: false,
        registered_time: Some(nanos(f.registered_time)),
        reregistered_time: f.reregistered_time.map(nanos),
        unregistered_time: None,
        offers: None,
        inverse_offers: None,
        allocated_resources: None,
        offered_resources: None,
    }
}

/// The unavailability of each agent on a scheduled machine.
fn unavailabilities(s: &Snapshot) -> HashMap<&str, Unavailability> {
    s.registry
        .scheduled_agents()
        .into_iter()
        .map(|(id, w)| (id, crate::engine::unavailability(w)))
        .collect()
}

/// v1 `GET_FRAMEWORKS` body.
pub fn get_frameworks(s: &Snapshot) -> GetFrameworks {
    let unavailable = unavailabilities(s);
    let agent_unavailability = |agent_id: &str| unavailable.get(agent_id).copied();
    let frameworks = s
        .frameworks
        .iter()
        .map(|f| Framework {
            offers: Some(
                s.offers
                    .iter()
                    .filter(|o| o.framework_id == f.id)
                    .map(|o| Offer {
                        id: Id::new(&o.id),
                        framework_id: Id::new(&o.framework_id),
                        agent_id: Id::new(&o.agent_id),
                        hostname: None,
                        url: None,
                        resources: o.resources.to_v1_allocated(Some(&o.role)),
                        attributes: Vec::new(),
                        executor_ids: Vec::new(),
                        allocation_info: Some(AllocationInfo::role(&o.role)),
                        domain: None,
                        unavailability: agent_unavailability(&o.agent_id),
                    })
                    .collect(),
            ),
            inverse_offers: Some(
                s.inverse_offers
                    .iter()
                    .filter(|(_, fw, _)| *fw == f.id)
                    .filter_map(|(id, fw, agent)| {
                        let offer = InverseOffer {
                            id: Id::new(id),
                            framework_id: Id::new(fw),
                            agent_id: Some(Id::new(agent)),
                            unavailability: agent_unavailability(agent)?,
                            resources: Vec::new(),
                        };
                        serde_json::to_value(offer).ok()
                    })
                    .collect(),
            ),
            allocated_resources: Some(s.used(|t| t.framework_id == f.id).to_v1_allocated(None)),
            offered_resources: Some(s.offered(|fw, _| fw == f.id).to_v1_allocated(None)),
            ..framework_v1(f)
        })
        .collect();
    let completed = s
        .registry
        .removed_frameworks()
        .map(|f| Framework {
            framework_info: f.info.clone(),
            active: false,
            connected: false,
            recovered: false,
            registered_time: Some(nanos(f.registered_time)),
            reregistered_time: None,
            unregistered_time: Some(nanos(f.removed_time)),
            offers: None,
            inverse_offers: None,
            allocated_resources: None,
            offered_resources: None,
        })
        .collect();
    GetFrameworks {
        frameworks,
        completed_frameworks: completed,
    }
}

/// v1 `GET_EXECUTORS` body: the executors tasks named in their TaskInfo
/// (command tasks have none the master knows of), live while a task of
/// theirs is, completed otherwise.
pub fn get_executors(s: &Snapshot) -> GetExecutors {
    let entries = |tasks: &[TaskView]| {
        let mut seen = std::collections::BTreeMap::new();
        for t in tasks {
            if let Some(e) = &t.info.executor {
                let mut info = e.clone();
                info.framework_id
                    .get_or_insert_with(|| Id::new(&t.framework_id));
                let key = (
                    t.framework_id.clone(),
                    e.executor_id.value.clone(),
                    t.agent_id.clone(),
                );
                seen.entry(key).or_insert(ExecutorEntry {
                    executor_info: info,
                    agent_id: Id::new(&t.agent_id),
                });
            }
        }
        seen
    };
    let live = entries(&s.live);
    let completed = entries(&s.completed)
        .into_iter()
        .filter(|(k, _)| !live.contains_key(k))
        .map(|(_, e)| e)
        .collect();
    GetExecutors {
        executors: live.into_values().collect(),
        completed_executors: completed,
    }
}

/// v1 `GET_TASKS` body.
pub fn get_tasks(s: &Snapshot) -> GetTasks {
    let (unreachable, live): (Vec<&TaskView>, Vec<&TaskView>) = s
        .live
        .iter()
        .partition(|t| t.state == TaskState::TASK_UNREACHABLE);
    GetTasks {
        tasks: live.into_iter().map(task_v1).collect(),
        unreachable_tasks: unreachable.into_iter().map(task_v1).collect(),
        completed_tasks: s.completed.iter().map(task_v1).collect(),
    }
}

/// One legacy framework object.
fn framework_legacy(
    s: &Snapshot,
    id: &str,
    info: &FrameworkInfo,
    connected: bool,
    registered: f64,
    unregistered: f64,
) -> legacy::Framework {
    let tasks: Vec<&TaskView> = s.live.iter().filter(|t| t.framework_id == id).collect();
    let used = s.used(|t| t.framework_id == id);
    let offered = s.offered(|fw, _| fw == id);
    let mut both = used.clone();
    both.add(&offered);
    let (role, roles) = if info.has_capability("MULTI_ROLE") {
        (None, Some(info.effective_roles()))
    } else {
        (info.effective_roles().into_iter().next(), None)
    };
    let unreachable = |t: &&&TaskView| t.state == TaskState::TASK_UNREACHABLE;
    legacy::Framework {
        id: id.to_string(),
        name: info.name.clone(),
        user: info.user.clone(),
        hostname: info.hostname.clone().unwrap_or_default(),
        webui_url: info.webui_url.clone().unwrap_or_default(),
        failover_timeout: info.failover_timeout.unwrap_or(0.0),
        checkpoint: info.checkpoint.unwrap_or(false),
        capabilities: info.capabilities.iter().map(|c| c.kind.clone()).collect(),
        active: connected,
        connected,
        recovered: false,
        registered_time: registered,
        unregistered_time: unregistered,
        reregistered_time: None,
        used_resources: used.to_legacy(),
        offered_resources: offered.to_legacy(),
        resources: both.to_legacy(),
        tasks: tasks
            .iter()
            .filter(|t| !unreachable(t))
            .map(|t| task_legacy(t))
            .collect(),
        unreachable_tasks: tasks
            .iter()
            .filter(unreachable)
            .map(|t| task_legacy(t))
            .collect(),
        completed_tasks: s
            .completed
            .iter()
            .filter(|t| t.framework_id == id)
            .map(task_legacy)
            .collect(),
        offers: s
            .offers
            .iter()
            .filter(|o| o.framework_id == id)
            .map(|o| legacy::Offer {
                id: o.id.clone(),
                framework_id: o.framework_id.clone(),
                slave_id: o.agent_id.clone(),
                allocation_info: AllocationInfo::role(&o.role),
                resources: o.resources.to_legacy(),
            })
            .collect(),
        executors: Vec::new(),
        roles,
        role,
        principal: info.principal.clone(),
    }
}

/// Legacy `frameworks[]` and `completed_frameworks[]` for `/master/state`.
pub fn frameworks_legacy(s: &Snapshot) -> (Vec<legacy::Framework>, Vec<legacy::Framework>) {
    let active = s
        .frameworks
        .iter()
        .map(|f| framework_legacy(s, &f.id, &f.info, f.connected, f.registered_time, 0.0))
        .collect();
    let completed = s
        .registry
        .removed_frameworks()
        .map(|f| framework_legacy(s, &f.id, &f.info, false, f.registered_time, f.removed_time))
        .collect();
    (active, completed)
}

/// `GET_ROLES` body.
pub fn get_roles(master: &Master) -> GetRoles {
    let mut roles: BTreeMap<String, Role> = BTreeMap::new();
    for r in master.role_summary() {
        let allocated = r.allocated.to_v1_allocated(None);
        roles.insert(
            r.role.clone(),
            Role {
                name: r.role.clone(),
                weight: r.weight,
                frameworks: r.frameworks.iter().map(Id::new).collect(),
                resources: allocated.clone(),
                allocated,
                reserved: r.reserved.to_v1_allocated(None),
                quota: Some(RoleQuota {
                    role: r.role.clone(),
                    guarantee: scalar_map(r.quota.as_ref().map(|q| &q.guarantee)),
                    limit: scalar_map(r.quota.as_ref().and_then(|q| q.limit.as_ref())),
                    consumed: scalar_map(Some(&r.consumed)),
                }),
            },
        );
    }
    GetRoles {
        roles: roles.into_values().collect(),
    }
}

/// `{"cpus": {"value": 1.0}, ...}` as Mesos' quota maps.
pub fn scalar_map(rs: Option<&Resources>) -> ScalarMap {
    let mut m = ScalarMap::new();
    if let Some(rs) = rs {
        for r in rs.iter() {
            m.insert(r.name.clone(), QuotaScalar(rs.scalar(&r.name)));
        }
    }
    m
}
