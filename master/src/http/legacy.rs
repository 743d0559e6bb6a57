//! Legacy (v0-era) JSON endpoints: `/health`, `/version`, `/master/state`,
//! `/master/slaves`, `/master/flags`, `/master/redirect`. `?jsonp=cb` wraps
//! the JSON for the Mesos web UI.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keel_api::legacy::{self, LeaderInfo};
use keel_api::{KEEL_VERSION, MESOS_COMPAT_VERSION};
use serde::Serialize;

use super::state::{self, Snapshot};
use super::visible::Viewer;
use super::{json, plain, views};
use crate::auth::{Action, Caller, Denied};
use crate::core::Master;
use crate::registry::AgentState;

pub(super) type Params = Query<HashMap<String, String>>;

pub(super) fn respond(params: &HashMap<String, String>, body: &impl Serialize) -> Response {
    match params.get("jsonp") {
        None => json(StatusCode::OK, body),
        Some(cb) if keel_telemetry::metrics::valid_callback(cb) => {
            let body = serde_json::to_string(body).unwrap_or_default();
            let mut resp = (StatusCode::OK, format!("{cb}({body});")).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript"),
            );
            resp
        }
        Some(cb) => plain(
            StatusCode::BAD_REQUEST,
            format!("invalid jsonp callback name {cb:?}"),
        ),
    }
}

pub async fn health() -> StatusCode {
    StatusCode::OK
}

pub async fn version(Query(params): Params) -> Response {
    respond(&params, &views::version_info())
}

/// Legacy `slaves[]` with what tasks use and offers hold on each agent.
pub(super) fn slaves(snapshot: &Snapshot) -> Vec<legacy::Slave> {
    let agents: Vec<_> = snapshot.registry.agents().cloned().collect();
    let per_agent = snapshot.per_agent();
    let none = Default::default();
    views::registered_agents(&agents)
        .map(|a| {
            let (used, offered) = per_agent.get(&a.id).unwrap_or(&none);
            views::agent_legacy(a, snapshot.registry.maintenance(), used, offered)
        })
        .collect()
}

/// Runs a large rendering on the blocking pool: on the runtime's workers
/// it held up every other request meanwhile (`/health` waited up to
/// 0.9 s behind a `/master/state` of 20,000 tasks).
pub(super) async fn off_runtime(render: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(render)
        .await
        .unwrap_or_else(|e| plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

pub async fn state(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    Query(params): Params,
) -> Response {
    off_runtime(move || state_body(&master, &caller, &params)).await
}

fn state_body(master: &Arc<Master>, caller: &Caller, params: &HashMap<String, String>) -> Response {
    let viewer = Viewer::of(master, caller);
    let snapshot = viewer.snapshot(master);
    let (frameworks, completed_frameworks) = state::frameworks_legacy(&snapshot);
    let agents: Vec<_> = snapshot.registry.agents().cloned().collect();
    let deactivated = &snapshot.registry.maintenance().deactivated;
    // Mesos counts an agent deactivated while it is disconnected or an
    // operator deactivated (or drains) it.
    let count = |s: AgentState| agents.iter().filter(|a| a.state == s).count() as u64;
    let operator_deactivated = agents
        .iter()
        .filter(|a| a.state == AgentState::Active && deactivated.contains(&a.id))
        .count() as u64;
    let config = master.config();
    let cluster = master.cluster();
    let leader = super::leader::leader_addr(&cluster);
    let leader_info = if master.is_leader() {
        LeaderInfo::from(views::master_info(master))
    } else {
        match leader.as_deref().and_then(|l| l.rsplit_once(':')) {
            Some((host, port)) => LeaderInfo {
                hostname: Some(host.to_string()),
                port: Some(port.parse().unwrap_or(0)),
                ..LeaderInfo::default()
            },
            None => LeaderInfo::default(),
        }
    };
    let version = views::version_info();
    let body = legacy::State {
        version: MESOS_COMPAT_VERSION.to_string(),
        keel_version: Some(KEEL_VERSION.to_string()),
        build_date: version.build_date,
        build_time: version.build_time,
        build_user: version.build_user,
        start_time: master.start_time(),
        elected_time: Some(master.start_time()),
        id: master.master_id(),
        pid: views::master_pid(master),
        hostname: config.hostname.clone(),
        capabilities: Vec::new(),
        activated_slaves: count(AgentState::Active) - operator_deactivated,
        deactivated_slaves: count(AgentState::Disconnected) + operator_deactivated,
        unreachable_slaves: count(AgentState::Unreachable),
        leader: leader.as_ref().map(|l| format!("master@{l}")),
        leader_info,
        keel_cluster: Some(super::leader::cluster(&cluster)),
        flags: match viewer.flags() {
            true => views::flags_map(master),
            false => Default::default(),
        },
        slaves: match viewer.agents() {
            true => slaves(&snapshot),
            false => Vec::new(),
        },
        recovered_slaves: Vec::new(),
        frameworks,
        completed_frameworks,
        orphan_tasks: Vec::new(),
        unregistered_frameworks: Vec::new(),
    };
    respond(params, &body)
}

/// `403` unless the caller may see `action`'s objects.
fn refuse(caller: &Caller, action: Action) -> Response {
    let denied = Denied {
        principal: caller.name().map(str::to_string),
        action,
        object: None,
    };
    plain(StatusCode::FORBIDDEN, denied.to_string())
}

pub async fn slaves_endpoint(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    Query(params): Params,
) -> Response {
    if !Viewer::of(&master, &caller).agents() {
        return refuse(&caller, Action::ViewAgent);
    }
    off_runtime(move || {
        let snapshot = Snapshot::take(&master);
        let body = legacy::Slaves {
            slaves: slaves(&snapshot),
            recovered_slaves: Vec::new(),
        };
        respond(&params, &body)
    })
    .await
}

pub async fn frameworks(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    Query(params): Params,
) -> Response {
    off_runtime(move || {
        let snapshot = Viewer::of(&master, &caller).snapshot(&master);
        let (frameworks, completed) = state::frameworks_legacy(&snapshot);
        let body = legacy::Frameworks {
            frameworks,
            completed_frameworks: completed,
            unregistered_frameworks: Vec::new(),
        };
        respond(&params, &body)
    })
    .await
}

/// `limit`, `offset` and `order` of `/master/tasks`, read as Mesos does:
/// 100, 0 and descending unless given; a value that is not a number is
/// ignored (the default applies), and any `order` but `asc` is descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TaskPage {
    limit: usize,
    offset: usize,
    ascending: bool,
}

impl TaskPage {
    /// Mesos' `TASK_LIMIT`.
    const DEFAULT_LIMIT: usize = 100;

    fn from_params(params: &HashMap<String, String>) -> TaskPage {
        let number = |name: &str| params.get(name).and_then(|v| v.trim().parse().ok());
        TaskPage {
            limit: number("limit").unwrap_or(Self::DEFAULT_LIMIT),
            offset: number("offset").unwrap_or(0),
            ascending: params.get("order").map(String::as_str) == Some("asc"),
        }
    }

    /// Sorts by the earliest status' time (tasks without a status count as
    /// oldest), newest first unless ascending, then takes the page.
    fn apply(self, mut tasks: Vec<legacy::Task>) -> Vec<legacy::Task> {
        let first = |t: &legacy::Task| t.statuses.first().map(|s| s.timestamp);
        tasks.sort_by(|a, b| {
            let order = match (first(a), first(b)) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (x, y) => x.is_some().cmp(&y.is_some()),
            };
            if self.ascending {
                order
            } else {
                order.reverse()
            }
        });
        tasks
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .collect()
    }
}

pub async fn tasks(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    Query(params): Params,
) -> Response {
    off_runtime(move || {
        let snapshot = Viewer::of(&master, &caller).snapshot(&master);
        let tasks = snapshot
            .live
            .iter()
            .chain(snapshot.completed.iter())
            .map(state::task_legacy)
            .collect();
        let body = legacy::Tasks {
            tasks: TaskPage::from_params(&params).apply(tasks),
        };
        respond(&params, &body)
    })
    .await
}

pub async fn flags(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    Query(params): Params,
) -> Response {
    if !Viewer::of(&master, &caller).flags() {
        return refuse(&caller, Action::ViewFlags);
    }
    respond(
        &params,
        &legacy::Flags {
            flags: views::flags_map(&master),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_api::mesos::TaskState;

    fn task(id: &str, started: Option<f64>) -> legacy::Task {
        legacy::Task {
            id: id.into(),
            name: id.into(),
            framework_id: "f".into(),
            executor_id: String::new(),
            slave_id: "a".into(),
            state: TaskState::TASK_RUNNING,
            resources: Default::default(),
            role: "*".into(),
            statuses: started
                .into_iter()
                .map(|t| legacy::TaskStatus {
                    state: TaskState::TASK_STARTING,
                    timestamp: t,
                    healthy: None,
                    container_status: None,
                })
                .collect(),
        }
    }

    fn ids(tasks: &[legacy::Task]) -> Vec<&str> {
        tasks.iter().map(|t| t.id.as_str()).collect()
    }

    fn page(query: &[(&str, &str)]) -> TaskPage {
        let params = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TaskPage::from_params(&params)
    }

    #[test]
    fn tasks_are_paged_as_mesos_pages_them() {
        let all = || {
            vec![
                task("b", Some(2.0)),
                task("none", None),
                task("a", Some(1.0)),
                task("c", Some(3.0)),
            ]
        };
        assert_eq!(
            page(&[]),
            TaskPage {
                limit: 100,
                offset: 0,
                ascending: false
            }
        );
        assert_eq!(ids(&page(&[]).apply(all())), ["c", "b", "a", "none"]);
        assert_eq!(
            ids(&page(&[("order", "asc")]).apply(all())),
            ["none", "a", "b", "c"]
        );
        assert_eq!(
            ids(&page(&[("limit", "2"), ("offset", "1")]).apply(all())),
            ["b", "a"]
        );
        assert_eq!(
            ids(&page(&[("order", "asc"), ("offset", "3")]).apply(all())),
            ["c"]
        );
        assert!(page(&[("offset", "9")]).apply(all()).is_empty());
        // Not numbers: ignored, as Mesos does.
        assert_eq!(page(&[("limit", "x"), ("offset", "-1")]), page(&[]));
        assert_eq!(page(&[("order", "desc")]), page(&[]));
    }

    #[test]
    fn jsonp_callbacks_are_identifiers() {
        use keel_telemetry::metrics::valid_callback;
        assert!(valid_callback("JSON_CALLBACK"));
        assert!(valid_callback("angular.callbacks._0"));
        assert!(!valid_callback("alert(1)//"));
        assert!(!valid_callback(""));
    }
}
