//! Bodies of the mutating operator calls: parsed into the typed bodies of
//! `keel_api::operator` (Mesos' JSON rules: nulls unset, unknown fields
//! ignored, numbers as strings), then into domain values, with a 400 and a
//! reason for anything malformed.

use axum::http::StatusCode;
use keel_api::mesos;
use keel_api::operator::{Reservation, ScalarMap, Teardown, UpdateQuota, UpdateWeights};
use keel_api::resources::Resources;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value as Json};

use super::error::ApiError as Rejection;
use crate::registry::QuotaConfig;

fn bad(reason: impl Into<String>) -> Rejection {
    Rejection {
        status: StatusCode::BAD_REQUEST,
        reason: reason.into(),
    }
}

/// The body `name` of the call, typed.
fn body<T: DeserializeOwned>(obj: &Map<String, Json>, name: &str) -> Result<T, Rejection> {
    let b = obj.get(name).filter(|v| !v.is_null()).ok_or_else(|| {
        bad(format!(
            "Failed to validate master::Call: Expecting '{name}' to be present"
        ))
    })?;
    mesos::parse(b.clone()).map_err(|e| {
        bad(format!(
            "Failed to convert JSON into Call protobuf: {name}: {e}"
        ))
    })
}

/// `update_weights.weight_infos[{role, weight}]`.
pub fn update_weights(obj: &Map<String, Json>) -> Result<Vec<(String, f64)>, Rejection> {
    let b: UpdateWeights = body(obj, "update_weights")?;
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
pub fn update_quota(obj: &Map<String, Json>) -> Result<Vec<QuotaConfig>, Rejection> {
    let b: UpdateQuota = body(obj, "update_quota")?;
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

/// `reserve_resources` / `unreserve_resources`: `{agent_id, resources[]}`.
pub fn reservation(obj: &Map<String, Json>, name: &str) -> Result<(String, Resources), Rejection> {
    let b: Reservation = body(obj, name)?;
    let resources =
        Resources::from_v1(&b.resources).map_err(|e| bad(format!("{name}.resources: {e}")))?;
    if resources.is_empty() {
        return Err(bad(format!("{name}: no resources given")));
    }
    Ok((b.agent_id.value, resources))
}

/// `teardown.framework_id`.
pub fn teardown(obj: &Map<String, Json>) -> Result<String, Rejection> {
    let b: Teardown = body(obj, "teardown")?;
    Ok(b.framework_id.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Json) -> Map<String, Json> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn weights_and_quota_bodies() {
        let w = update_weights(&obj(json!({"update_weights": {"weight_infos": [{"role": "a", "weight": 3}, {"role": "b", "weight": "1.5"}]}}))).unwrap();
        assert_eq!(w, vec![("a".into(), 3.0), ("b".into(), 1.5)]);
        assert!(
            update_weights(&obj(
                json!({"update_weights": {"weight_infos": [{"role": "a"}]}})
            ))
            .is_err()
        );
        let q = update_quota(&obj(json!({"update_quota": {"quota_configs": [
            {"role": "eng", "guarantees": {"cpus": {"value": 2}}, "limits": {"cpus": 4, "mem": {"value": 1024}}}]}}))).unwrap();
        assert_eq!(q[0].guarantees.scalar("cpus"), 2.0);
        assert_eq!(q[0].limits.scalar("mem"), 1024.0);
        let neg = update_quota(&obj(
            json!({"update_quota": {"quota_configs": [{"role": "eng", "guarantees": {"cpus": -1}}]}}),
        ));
        assert!(neg.unwrap_err().reason.contains("non-negative"));
    }

    #[test]
    fn reservation_body() {
        let (agent, rs) = reservation(
            &obj(json!({"reserve_resources": {"agent_id": {"value": "a"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
                "reservations": [{"type": "DYNAMIC", "role": "eng"}]}]}})),
            "reserve_resources",
        )
        .unwrap();
        assert_eq!(agent, "a");
        assert_eq!(rs.0[0].role, "eng");
        assert!(
            reservation(
                &obj(json!({"reserve_resources": {"agent_id": {"value": "a"}}})),
                "reserve_resources"
            )
            .is_err()
        );
        assert!(teardown(&obj(json!({"teardown": {}}))).is_err());
    }
}
