//! Operator call bodies: read within [`LIMITS`] (no `serde_json::Value`
//! for them), the `type` first, then the typed body the type names
//! (`keel_api::operator`, Mesos' JSON rules: nulls unset, unknown fields
//! ignored, numbers as strings), then domain values, with a 400 and a
//! reason for anything malformed.

use std::borrow::Cow;

use axum::http::StatusCode;
use keel_api::mesos::bounded::{self, JsonLimits, ListLimit, ReadError};
use keel_api::operator::{
    MarkAgentGone, RemoveQuota, Reservation, ScalarMap, SetLoggingLevel, SetQuota, Teardown,
    UpdateQuota, UpdateWeights,
};
use keel_api::resources::Resources;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::error::ApiError as Rejection;
use crate::registry::QuotaConfig;

/// Roles, quota configs and resources in one call.
pub const MAX_ITEMS: usize = 1_000;

const fn list(path: &'static str, what: &'static str) -> ListLimit {
    ListLimit {
        path,
        max: MAX_ITEMS,
        what,
    }
}

/// What one operator call may hold.
pub const LIMITS: JsonLimits = JsonLimits {
    max_depth: 32,
    max_values: 100_000,
    max_list_items: 10_000,
    lists: &[
        list("update_weights.weight_infos", "weights per UPDATE_WEIGHTS"),
        list(
            "update_quota.quota_configs",
            "quota configs per UPDATE_QUOTA",
        ),
        list(
            "reserve_resources.resources",
            "resources per RESERVE_RESOURCES",
        ),
        list(
            "unreserve_resources.resources",
            "resources per UNRESERVE_RESOURCES",
        ),
        list(
            "set_quota.quota_request.guarantee",
            "resources per SET_QUOTA",
        ),
        list("create_volumes.volumes", "volumes per CREATE_VOLUMES"),
        list("destroy_volumes.volumes", "volumes per DESTROY_VOLUMES"),
    ],
};

pub(super) fn bad(reason: impl Into<String>) -> Rejection {
    Rejection {
        status: StatusCode::BAD_REQUEST,
        reason: reason.into(),
    }
}

fn convert(e: impl std::fmt::Display) -> Rejection {
    bad(format!("Failed to convert JSON into Call protobuf: {e}"))
}

/// Checks a body against [`LIMITS`] and drops its nulls.
pub fn prepare(body: &[u8]) -> Result<Cow<'_, [u8]>, Rejection> {
    let text = bounded::prepare(body, &LIMITS).map_err(|e| match e {
        ReadError::Syntax(e) => bad(format!("Failed to parse body into JSON: {e}")),
        ReadError::Limit(e) => bad(format!("Call exceeds a limit: {e}")),
        ReadError::Invalid(e) => convert(e),
    })?;
    if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(convert("expecting a JSON object"));
    }
    Ok(text)
}

/// A call's `type` and bodies, each still text.
#[derive(Deserialize)]
pub struct RawCall<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<&'a RawValue>,
    #[serde(borrow)]
    update_weights: Option<&'a RawValue>,
    #[serde(borrow)]
    update_quota: Option<&'a RawValue>,
    #[serde(borrow)]
    reserve_resources: Option<&'a RawValue>,
    #[serde(borrow)]
    unreserve_resources: Option<&'a RawValue>,
    #[serde(borrow)]
    teardown: Option<&'a RawValue>,
    #[serde(borrow)]
    mark_agent_gone: Option<&'a RawValue>,
    #[serde(borrow)]
    set_quota: Option<&'a RawValue>,
    #[serde(borrow)]
    remove_quota: Option<&'a RawValue>,
    #[serde(borrow)]
    set_logging_level: Option<&'a RawValue>,
    #[serde(borrow)]
    update_maintenance_schedule: Option<&'a RawValue>,
    #[serde(borrow)]
    start_maintenance: Option<&'a RawValue>,
    #[serde(borrow)]
    stop_maintenance: Option<&'a RawValue>,
    #[serde(borrow)]
    drain_agent: Option<&'a RawValue>,
    #[serde(borrow)]
    deactivate_agent: Option<&'a RawValue>,
    #[serde(borrow)]
    reactivate_agent: Option<&'a RawValue>,
    #[serde(borrow)]
    list_files: Option<&'a RawValue>,
    #[serde(borrow)]
    read_file: Option<&'a RawValue>,
    #[serde(borrow)]
    create_volumes: Option<&'a RawValue>,
    #[serde(borrow)]
    destroy_volumes: Option<&'a RawValue>,
    #[serde(borrow)]
    grow_volume: Option<&'a RawValue>,
    #[serde(borrow)]
    shrink_volume: Option<&'a RawValue>,
}

impl<'a> RawCall<'a> {
    /// Reads a text [`prepare`] returned.
    pub fn parse(text: &'a [u8]) -> Result<Self, Rejection> {
        serde_json::from_slice(text).map_err(convert)
    }

    pub fn kind(&self) -> Result<String, Rejection> {
        let raw = self
            .kind
            .ok_or_else(|| convert("Missing required fields: type"))?;
        serde_json::from_str(raw.get())
            .map_err(|_| convert(format!("'type' must be a string, got {}", raw.get())))
    }

    fn body(&self, name: &str) -> Option<&'a RawValue> {
        match name {
            "update_weights" => self.update_weights,
            "update_quota" => self.update_quota,
            "reserve_resources" => self.reserve_resources,
            "unreserve_resources" => self.unreserve_resources,
            "teardown" => self.teardown,
            "mark_agent_gone" => self.mark_agent_gone,
            "set_quota" => self.set_quota,
            "remove_quota" => self.remove_quota,
            "set_logging_level" => self.set_logging_level,
            "update_maintenance_schedule" => self.update_maintenance_schedule,
            "start_maintenance" => self.start_maintenance,
            "stop_maintenance" => self.stop_maintenance,
            "drain_agent" => self.drain_agent,
            "deactivate_agent" => self.deactivate_agent,
            "reactivate_agent" => self.reactivate_agent,
            "list_files" => self.list_files,
            "read_file" => self.read_file,
            "create_volumes" => self.create_volumes,
            "destroy_volumes" => self.destroy_volumes,
            "grow_volume" => self.grow_volume,
            "shrink_volume" => self.shrink_volume,
            _ => None,
        }
    }
}

/// The body `name` of the call, typed (for the call families in their
/// own files).
pub(super) fn typed_body<T: DeserializeOwned>(
    call: &RawCall<'_>,
    name: &str,
) -> Result<T, Rejection> {
    body(call, name)
}

/// The body `name` of the call, typed.
pub(super) fn body<T: DeserializeOwned>(call: &RawCall<'_>, name: &str) -> Result<T, Rejection> {
    let b = call.body(name).ok_or_else(|| {
        bad(format!(
            "Failed to validate master::Call: Expecting '{name}' to be present"
        ))
    })?;
    bounded::from_prepared(b.get().as_bytes()).map_err(|e| convert(format!("{name}: {e}")))
}

/// `update_weights.weight_infos[{role, weight}]`.
pub fn update_weights(call: &RawCall<'_>) -> Result<Vec<(String, f64)>, Rejection> {
    let b: UpdateWeights = body(call, "update_weights")?;
    Ok(b.weight_infos
        .into_iter()
        .map(|w| (w.role, w.weight))
        .collect())
}

/// `{"cpus": {"value": 1}, "mem": {"value": 512}}` as resources.
fn scalars(map: &ScalarMap, role: &str, what: &str) -> Result<Resources, Rejection> {
    let mut parts = Vec::new();
    for (name, n) in map {
        if !n.0.is_finite() || n.0 < 0.0 {
            return Err(bad(format!(
                "quota {what} of role '{role}': {name} must be a non-negative number"
            )));
        }
        parts.push(format!("{name}:{}", n.0));
    }
    Resources::parse(&parts.join(";"))
        .map_err(|e| bad(format!("quota {what} of role '{role}': {e}")))
}

/// `update_quota.quota_configs[{role, guarantees{}, limits{}}]`.
pub fn update_quota(call: &RawCall<'_>) -> Result<Vec<QuotaConfig>, Rejection> {
    let b: UpdateQuota = body(call, "update_quota")?;
    b.quota_configs
        .iter()
        .map(|c| {
            Ok(QuotaConfig {
                role: c.role.clone(),
                guarantees: scalars(&c.guarantees, &c.role, "guarantee")?,
                limits: scalars(&c.limits, &c.role, "limit")?,
            })
        })
        .collect()
}

/// The deprecated `set_quota.quota_request{role, guarantee[]}`: the
/// guarantee is the limit too, as in Mesos 1.9+.
pub fn set_quota(call: &RawCall<'_>) -> Result<QuotaConfig, Rejection> {
    let b: SetQuota = body(call, "set_quota")?;
    let r = b.quota_request;
    if r.role.is_empty() {
        return Err(bad("set_quota: the role is empty"));
    }
    let guarantee = Resources::from_v1(&r.guarantee)
        .map_err(|e| bad(format!("set_quota.quota_request.guarantee: {e}")))?;
    if guarantee.is_empty() {
        return Err(bad("set_quota: no guarantee given"));
    }
    Ok(QuotaConfig {
        role: r.role,
        guarantees: guarantee.clone(),
        limits: guarantee,
    })
}

/// The longest SET_LOGGING_LEVEL (a day).
pub const MAX_LOGGING_DURATION: std::time::Duration = std::time::Duration::from_secs(86_400);

/// `set_logging_level{level, duration}`: a positive duration of at most
/// [`MAX_LOGGING_DURATION`].
pub fn set_logging_level(call: &RawCall<'_>) -> Result<(u32, std::time::Duration), Rejection> {
    let b: SetLoggingLevel = body(call, "set_logging_level")?;
    let nanos = b.duration.nanoseconds;
    if nanos <= 0 || nanos as u128 > MAX_LOGGING_DURATION.as_nanos() {
        return Err(bad(format!(
            "set_logging_level: the duration must be positive and at most {}s",
            MAX_LOGGING_DURATION.as_secs()
        )));
    }
    Ok((b.level, std::time::Duration::from_nanos(nanos as u64)))
}

/// `remove_quota.role`.
pub fn remove_quota(call: &RawCall<'_>) -> Result<String, Rejection> {
    let b: RemoveQuota = body(call, "remove_quota")?;
    if b.role.is_empty() {
        return Err(bad("remove_quota: the role is empty"));
    }
    Ok(b.role)
}

/// `reserve_resources` / `unreserve_resources`: `{agent_id, resources[]}`.
pub fn reservation(call: &RawCall<'_>, name: &str) -> Result<(String, Resources), Rejection> {
    let b: Reservation = body(call, name)?;
    let resources =
        Resources::from_v1(&b.resources).map_err(|e| bad(format!("{name}.resources: {e}")))?;
    if resources.is_empty() {
        return Err(bad(format!("{name}: no resources given")));
    }
    Ok((b.agent_id.value, resources))
}

/// `teardown.framework_id`.
pub fn teardown(call: &RawCall<'_>) -> Result<String, Rejection> {
    let b: Teardown = body(call, "teardown")?;
    Ok(b.framework_id.value)
}

/// `mark_agent_gone.agent_id`.
pub fn mark_agent_gone(call: &RawCall<'_>) -> Result<String, Rejection> {
    let b: MarkAgentGone = body(call, "mark_agent_gone")?;
    if b.agent_id.value.is_empty() {
        return Err(bad("mark_agent_gone: the agent id is empty"));
    }
    Ok(b.agent_id.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value as Json, json};

    /// Runs `f` on the call `v` as the edge reads it.
    fn on<T>(v: Json, f: impl FnOnce(&RawCall<'_>) -> T) -> T {
        let text = v.to_string();
        let prepared = prepare(text.as_bytes()).unwrap();
        f(&RawCall::parse(&prepared).unwrap())
    }

    #[test]
    fn weights_and_quota_bodies() {
        let w = on(json!({"update_weights": {"weight_infos": [{"role": "a", "weight": 3}, {"role": "b", "weight": "1.5"}]}}), update_weights).unwrap();
        assert_eq!(w, vec![("a".into(), 3.0), ("b".into(), 1.5)]);
        assert!(
            on(
                json!({"update_weights": {"weight_infos": [{"role": "a"}]}}),
                update_weights
            )
            .is_err()
        );
        let q = on(json!({"update_quota": {"quota_configs": [
            {"role": "eng", "guarantees": {"cpus": {"value": 2}}, "limits": {"cpus": 4, "mem": {"value": 1024}}}]}}), update_quota).unwrap();
        assert_eq!(q[0].guarantees.scalar("cpus"), 2.0);
        assert_eq!(q[0].limits.scalar("mem"), 1024.0);
        let neg = on(
            json!({"update_quota": {"quota_configs": [{"role": "eng", "guarantees": {"cpus": -1}}]}}),
            update_quota,
        );
        assert!(neg.unwrap_err().reason.contains("non-negative"));
    }

    #[test]
    fn deprecated_quota_bodies() {
        let q = on(
            json!({"set_quota": {"quota_request": {"role": "eng", "guarantee": [
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}}]}}}),
            set_quota,
        )
        .unwrap();
        assert_eq!(q.role, "eng");
        assert_eq!(q.guarantees.scalar("cpus"), 2.0);
        assert_eq!(q.limits.scalar("cpus"), 2.0);
        assert!(
            on(
                json!({"set_quota": {"quota_request": {"role": "eng"}}}),
                set_quota
            )
            .is_err()
        );
        assert!(on(json!({"set_quota": {}}), set_quota).is_err());
        assert_eq!(
            on(json!({"remove_quota": {"role": "eng"}}), remove_quota).unwrap(),
            "eng"
        );
        assert!(on(json!({"remove_quota": {"role": ""}}), remove_quota).is_err());
    }

    #[test]
    fn reservation_body() {
        let (agent, rs) = on(
            json!({"reserve_resources": {"agent_id": {"value": "a"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
                "reservations": [{"type": "DYNAMIC", "role": "eng"}]}]}}),
            |c| reservation(c, "reserve_resources"),
        )
        .unwrap();
        assert_eq!(agent, "a");
        assert_eq!(rs.0[0].role, "eng");
        assert!(
            on(
                json!({"reserve_resources": {"agent_id": {"value": "a"}}}),
                |c| reservation(c, "reserve_resources")
            )
            .is_err()
        );
        assert!(on(json!({"teardown": {}}), teardown).is_err());
    }

    #[test]
    fn mark_agent_gone_body() {
        let id = on(
            json!({"mark_agent_gone": {"agent_id": {"value": "m-S1"}}, "other": 1}),
            mark_agent_gone,
        );
        assert_eq!(id.unwrap(), "m-S1");
        for bad in [
            json!({}),
            json!({"mark_agent_gone": {}}),
            json!({"mark_agent_gone": {"agent_id": {"value": ""}}}),
            json!({"mark_agent_gone": {"agent_id": "m-S1"}}),
        ] {
            let r = on(bad.clone(), mark_agent_gone).unwrap_err();
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn item_counts_are_limited() {
        let roles: Vec<Json> = (0..=MAX_ITEMS)
            .map(|i| json!({"role": format!("r{i}"), "weight": 1}))
            .collect();
        let text = json!({"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": roles}});
        let err = prepare(text.to_string().as_bytes()).err().unwrap();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            err.reason,
            "Call exceeds a limit: 'update_weights.weight_infos' has more than 1000 items \
             (the limit of weights per UPDATE_WEIGHTS)"
        );
    }
}
