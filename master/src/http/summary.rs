//! Legacy reads beyond `/master/state`: `/master/state-summary`,
//! `/master/roles`, `/master/quota`, `/master/weights` (each also without
//! `/master`, and with `?jsonp=`), filtered as their v1 twins are.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::{Extension, Query, State};
use axum::response::Response;
use keel_api::legacy_summary::{
    COUNTED_STATES, Role, RoleQuota, Roles, StateSummary, SummaryFramework, SummarySlave,
    TaskCounts,
};
use keel_api::operator::{QuotaConfig, QuotaStatus, WeightInfo};
use keel_api::resources::Resources;

use super::legacy::{Params, respond, slaves};
use super::state;
use super::visible::Viewer;
use crate::auth::Caller;
use crate::core::{Master, TaskView};

fn counts<'a>(tasks: impl Iterator<Item = &'a TaskView>) -> TaskCounts {
    let mut c: TaskCounts = COUNTED_STATES.iter().map(|s| (s.to_string(), 0)).collect();
    for t in tasks {
        let name = serde_json::to_value(t.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *c.entry(name).or_default() += 1;
    }
    c
}

/// `/master/state-summary`: agents and frameworks with task counts.
pub async fn state_summary(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    Query(params): Params,
) -> Response {
    let viewer = Viewer::of(&master, &caller);
    let s = viewer.snapshot(&master);
    let all = || s.live.iter().chain(s.completed.iter());
    let agents = match viewer.agents() {
        true => slaves(&s),
        false => Vec::new(),
    };
    let slaves = agents
        .into_iter()
        .map(|slave| {
            let on = |t: &&TaskView| t.agent_id == slave.id;
            let framework_ids: BTreeSet<String> =
                all().filter(on).map(|t| t.framework_id.clone()).collect();
            SummarySlave {
                tasks: counts(all().filter(on)),
                framework_ids: framework_ids.into_iter().collect(),
                slave,
            }
        })
        .collect();
    let frameworks = s
        .frameworks
        .iter()
        .map(|f| {
            let of = |t: &&TaskView| t.framework_id == f.id;
            let agent_ids: BTreeSet<String> =
                all().filter(of).map(|t| t.agent_id.clone()).collect();
            SummaryFramework {
                id: f.id.clone(),
                name: f.info.name.clone(),
                hostname: f.info.hostname.clone().unwrap_or_default(),
                webui_url: f.info.webui_url.clone().unwrap_or_default(),
                capabilities: f.info.capabilities.iter().map(|c| c.kind.clone()).collect(),
                active: f.connected,
                connected: f.connected,
                recovered: false,
                used_resources: s.used(|t| t.framework_id == f.id).to_legacy(),
                offered_resources: s.offered(|fw, _| fw == f.id).to_legacy(),
                tasks: counts(all().filter(of)),
                slave_ids: agent_ids.into_iter().collect(),
            }
        })
        .collect();
    let body = StateSummary {
        hostname: master.config().hostname.clone(),
        cluster: None,
        slaves,
        frameworks,
    };
    respond(&params, &body)
}

fn legacy_scalars(rs: Option<&Resources>) -> keel_api::legacy::LegacyMap {
    rs.map(Resources::to_legacy).unwrap_or_default()
}

/// `/master/roles`: the roles the caller may see.
pub async fn roles(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    Query(params): Params,
) -> Response {
    let viewer = Viewer::of(&master, &caller);
    let mut roles: BTreeMap<String, Role> = BTreeMap::new();
    for r in master.role_summary() {
        if !viewer.role(&r.role) {
            continue;
        }
        let allocated = r.allocated.to_legacy();
        roles.insert(
            r.role.clone(),
            Role {
                name: r.role.clone(),
                weight: r.weight,
                frameworks: r.frameworks.clone(),
                resources: allocated.clone(),
                allocated,
                reserved: r.reserved.to_legacy(),
                quota: Some(RoleQuota {
                    role: r.role.clone(),
                    guarantee: legacy_scalars(r.quota.as_ref().map(|q| &q.guarantee)),
                    limit: legacy_scalars(r.quota.as_ref().and_then(|q| q.limit.as_ref())),
                    consumed: r.consumed.to_legacy(),
                }),
            },
        );
    }
    let body = Roles {
        roles: roles.into_values().collect(),
    };
    respond(&params, &body)
}

/// `/master/quota`: Mesos' `QuotaStatus`, as GET_QUOTA's.
pub async fn quota(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    Query(params): Params,
) -> Response {
    let viewer = Viewer::of(&master, &caller);
    let body = QuotaStatus {
        infos: Vec::new(),
        configs: master
            .quotas()
            .into_iter()
            .filter(|q| viewer.quota(&q.role))
            .map(|q| QuotaConfig {
                guarantees: state::scalar_map(Some(&q.guarantees)),
                limits: state::scalar_map(Some(&q.limits)),
                role: q.role,
            })
            .collect(),
    };
    respond(&params, &body)
}

/// `/master/weights`: a JSON array of `WeightInfo`.
pub async fn weights(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    Query(params): Params,
) -> Response {
    let viewer = Viewer::of(&master, &caller);
    let body: Vec<WeightInfo> = master
        .weights()
        .into_iter()
        .filter(|(role, _)| viewer.role(role))
        .map(|(role, weight)| WeightInfo { role, weight })
        .collect();
    respond(&params, &body)
}
