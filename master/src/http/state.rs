//! Renderings of frameworks, tasks, offers and roles: v1 operator objects
//! and legacy `/master/state` objects, from one consistent [`Snapshot`].

use std::collections::BTreeMap;

use keel_api::mesos::TaskState;
use keel_api::resources::Resources;
use serde_json::{Value as Json, json};

use crate::core::{FrameworkView, Master, TaskView};
use crate::engine::offers_json as resources_json;
use crate::registry::Registry;

pub struct Snapshot {
    pub registry: Registry,
    pub frameworks: Vec<FrameworkView>,
    pub live: Vec<TaskView>,
    pub completed: Vec<TaskView>,
    /// (offer id, framework, agent, role, resources)
    pub offers: Vec<(String, String, String, String, Resources)>,
}

impl Snapshot {
    /// Taken from the master's state at one moment.
    pub fn take(master: &Master) -> Snapshot {
        let s = master.snapshot();
        Snapshot {
            registry: s.registry,
            frameworks: s.frameworks,
            live: s.live,
            completed: s.completed,
            offers: s
                .offers
                .into_iter()
                .map(|o| (o.id, o.framework_id, o.agent_id, o.role, o.resources))
                .collect(),
        }
    }

    fn sum<'a>(items: impl Iterator<Item = &'a Resources>) -> Resources {
        let mut total = Resources::default();
        for r in items {
            total.add(r);
        }
        total
    }

    /// Resources of non-terminal tasks, filtered.
    pub fn used(&self, f: impl Fn(&TaskView) -> bool) -> Resources {
        Self::sum(
            self.live
                .iter()
                .filter(|t| {
                    !t.state.is_terminal() && t.state != TaskState::TASK_UNREACHABLE && f(t)
                })
                .map(|t| &t.resources),
        )
    }

    pub fn offered(&self, f: impl Fn(&str, &str) -> bool) -> Resources {
        Self::sum(self.offers.iter().filter(|o| f(&o.1, &o.2)).map(|o| &o.4))
    }
}

fn nanos(secs: f64) -> Json {
    json!({ "nanoseconds": (secs * 1e9) as i64 })
}

/// v1 `Task`.
pub fn task_v1(t: &TaskView) -> Json {
    let mut v = json!({
        "name": t.name,
        "task_id": { "value": t.task_id },
        "framework_id": { "value": t.framework_id },
        "agent_id": { "value": t.agent_id },
        "state": t.state.name(),
        "resources": resources_json(&t.resources, Some(&t.role), false),
        "statuses": t.statuses,
    });
    if let Some(e) = &t.executor_id {
        v["executor_id"] = json!({ "value": e });
    }
    if let Some(last) = t.statuses.last() {
        v["status_update_state"] = json!(last.state.name());
        if let Some(u) = &last.uuid {
            v["status_update_uuid"] = json!(u);
        }
    }
    let info = serde_json::to_value(&t.info).unwrap_or(Json::Null);
    for field in [
        "labels",
        "container",
        "health_check",
        "kill_policy",
        "discovery",
    ] {
        if let Some(x) = info.get(field) {
            v[field] = x.clone();
        }
    }
    v
}

/// Legacy task object.
pub fn task_legacy(t: &TaskView) -> Json {
    json!({
        "id": t.task_id,
        "name": t.name,
        "framework_id": t.framework_id,
        "executor_id": t.executor_id.clone().unwrap_or_default(),
        "slave_id": t.agent_id,
        "state": t.state.name(),
        "resources": t.resources.to_legacy_json(),
        "role": t.role,
        "statuses": t.statuses.iter().map(|s| {
            let mut v = json!({ "state": s.state.name(), "timestamp": s.timestamp.unwrap_or_default() });
            if let Some(h) = s.healthy { v["healthy"] = json!(h); }
            v
        }).collect::<Vec<_>>(),
    })
}

fn roles_of(info: &Json) -> Vec<String> {
    match keel_api::mesos::parse::<keel_api::mesos::FrameworkInfo>(info.clone()) {
        Ok(i) => i.effective_roles(),
        Err(_) => vec!["*".into()],
    }
}

/// v1 `GET_FRAMEWORKS` body.
pub fn get_frameworks(s: &Snapshot) -> Json {
    let frameworks: Vec<Json> = s
        .frameworks
        .iter()
        .map(|f| {
            let mut v = json!({
                "framework_info": f.info,
                "active": f.connected,
                "connected": f.connected,
                "recovered": false,
                "registered_time": nanos(f.registered_time),
                "offers": s.offers.iter().filter(|o| o.1 == f.id).map(|o| json!({
                    "id": {"value": o.0}, "framework_id": {"value": o.1}, "agent_id": {"value": o.2},
                    "resources": resources_json(&o.4, Some(&o.3), false), "allocation_info": {"role": o.3},
                })).collect::<Vec<_>>(),
                "inverse_offers": [],
                "allocated_resources": resources_json(&s.used(|t| t.framework_id == f.id), None, false),
                "offered_resources": resources_json(&s.offered(|fw, _| fw == f.id), None, false),
            });
            if let Some(t) = f.reregistered_time {
                v["reregistered_time"] = nanos(t);
            }
            v
        })
        .collect();
    let completed: Vec<Json> = s
        .registry
        .removed_frameworks()
        .map(|f| json!({
            "framework_info": f.info, "active": false, "connected": false, "recovered": false,
            "registered_time": nanos(f.registered_time), "unregistered_time": nanos(f.removed_time),
        }))
        .collect();
    json!({ "frameworks": frameworks, "completed_frameworks": completed })
}

/// v1 `GET_TASKS` body.
pub fn get_tasks(s: &Snapshot) -> Json {
    let (unreachable, live): (Vec<&TaskView>, Vec<&TaskView>) = s
        .live
        .iter()
        .partition(|t| t.state == TaskState::TASK_UNREACHABLE);
    json!({
        "tasks": live.into_iter().map(task_v1).collect::<Vec<_>>(),
        "unreachable_tasks": unreachable.into_iter().map(task_v1).collect::<Vec<_>>(),
        "completed_tasks": s.completed.iter().map(task_v1).collect::<Vec<_>>(),
    })
}

/// Legacy `frameworks[]` for `/master/state`.
pub fn frameworks_legacy(s: &Snapshot) -> (Vec<Json>, Vec<Json>) {
    let one = |id: &str, info: &Json, connected: bool, registered: f64, unregistered: f64| {
        let tasks: Vec<&TaskView> = s.live.iter().filter(|t| t.framework_id == id).collect();
        let used = s.used(|t| t.framework_id == id);
        let offered = s.offered(|fw, _| fw == id);
        let mut both = used.clone();
        both.add(&offered);
        let roles = roles_of(info);
        let mut v = json!({
            "id": id,
            "name": info.get("name").cloned().unwrap_or(json!("")),
            "user": info.get("user").cloned().unwrap_or(json!("")),
            "hostname": info.get("hostname").cloned().unwrap_or(json!("")),
            "webui_url": info.get("webui_url").cloned().unwrap_or(json!("")),
            "failover_timeout": info.get("failover_timeout").cloned().unwrap_or(json!(0)),
            "checkpoint": info.get("checkpoint").cloned().unwrap_or(json!(false)),
            "capabilities": info.get("capabilities").and_then(Json::as_array).map(|c| c.iter().filter_map(|x| x.get("type").cloned()).collect::<Vec<_>>()).unwrap_or_default(),
            "active": connected,
            "connected": connected,
            "recovered": false,
            "registered_time": registered,
            "unregistered_time": unregistered,
            "used_resources": used.to_legacy_json(),
            "offered_resources": offered.to_legacy_json(),
            "resources": both.to_legacy_json(),
            "tasks": tasks.iter().filter(|t| t.state != TaskState::TASK_UNREACHABLE).map(|t| task_legacy(t)).collect::<Vec<_>>(),
            "unreachable_tasks": tasks.iter().filter(|t| t.state == TaskState::TASK_UNREACHABLE).map(|t| task_legacy(t)).collect::<Vec<_>>(),
            "completed_tasks": s.completed.iter().filter(|t| t.framework_id == id).map(task_legacy).collect::<Vec<_>>(),
            "offers": s.offers.iter().filter(|o| o.1 == id).map(|o| json!({
                "id": o.0, "framework_id": o.1, "slave_id": o.2, "allocation_info": {"role": o.3},
                "resources": o.4.to_legacy_json(),
            })).collect::<Vec<_>>(),
            "executors": [],
        });
        if info
            .get("capabilities")
            .and_then(Json::as_array)
            .is_some_and(|c| c.iter().any(|x| x["type"] == "MULTI_ROLE"))
        {
            v["roles"] = json!(roles);
        } else {
            v["role"] = json!(roles.first().cloned().unwrap_or_else(|| "*".into()));
        }
        if let Some(p) = info.get("principal") {
            v["principal"] = p.clone();
        }
        v
    };
    let active = s
        .frameworks
        .iter()
        .map(|f| one(&f.id, &f.info, f.connected, f.registered_time, 0.0))
        .collect();
    let completed = s
        .registry
        .removed_frameworks()
        .map(|f| {
            let info = serde_json::to_value(&f.info).unwrap_or(Json::Null);
            one(&f.id, &info, false, f.registered_time, f.removed_time)
        })
        .collect();
    (active, completed)
}

/// `GET_ROLES` body.
pub fn get_roles(master: &Master) -> Json {
    let mut roles: BTreeMap<String, Json> = BTreeMap::new();
    for r in master.role_summary() {
        roles.insert(
            r.role.clone(),
            json!({
                "name": r.role,
                "weight": r.weight,
                "frameworks": r.frameworks.iter().map(|f| json!({"value": f})).collect::<Vec<_>>(),
                "resources": resources_json(&r.allocated, None, false),
                "allocated": resources_json(&r.allocated, None, false),
                "reserved": resources_json(&r.reserved, None, false),
                "quota": {
                    "role": r.role,
                    "guarantee": scalar_map(r.quota.as_ref().map(|q| &q.guarantee)),
                    "limit": scalar_map(r.quota.as_ref().and_then(|q| q.limit.as_ref())),
                    "consumed": scalar_map(Some(&r.consumed)),
                },
            }),
        );
    }
    json!({ "roles": roles.into_values().collect::<Vec<_>>() })
}

/// `{"cpus": {"value": 1.0}, ...}` as Mesos' quota maps.
pub fn scalar_map(rs: Option<&Resources>) -> Json {
    let mut m = serde_json::Map::new();
    if let Some(rs) = rs {
        for r in rs.iter() {
            m.insert(r.name.clone(), json!({ "value": rs.scalar(&r.name) }));
        }
    }
    Json::Object(m)
}
