//! Bodies of the mutating operator calls, parsed into domain values with a
//! 400 and a reason for anything malformed.

use axum::http::StatusCode;
use keel_api::mesos::{self, Id};
use keel_api::resources::Resources;
use serde_json::{Map, Value as Json};

use super::operator::Rejection;
use crate::registry::QuotaConfig;

fn bad(reason: impl Into<String>) -> Rejection {
    Rejection {
        status: StatusCode::BAD_REQUEST,
        reason: reason.into(),
    }
}

fn body<'a>(obj: &'a Map<String, Json>, name: &str) -> Result<&'a Json, Rejection> {
    obj.get(name).filter(|v| !v.is_null()).ok_or_else(|| {
        bad(format!(
            "Failed to validate master::Call: Expecting '{name}' to be present"
        ))
    })
}

fn number(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `update_weights.weight_infos[{role, weight}]`.
pub fn update_weights(obj: &Map<String, Json>) -> Result<Vec<(String, f64)>, Rejection> {
    let infos = body(obj, "update_weights")?
        .get("weight_infos")
        .and_then(Json::as_array)
        .ok_or_else(|| {
            bad("Failed to validate master::Call: Expecting 'update_weights.weight_infos'")
        })?;
    infos
        .iter()
        .map(|w| {
            let role = w
                .get("role")
                .and_then(Json::as_str)
                .ok_or_else(|| bad("weight_info needs a 'role'"))?;
            let weight = w.get("weight").and_then(number).ok_or_else(|| {
                bad(format!(
                    "weight of role '{role}' is missing or not a number"
                ))
            })?;
            Ok((role.to_string(), weight))
        })
        .collect()
}

/// `{"cpus": {"value": 1}, "mem": {"value": 512}}` (bare numbers accepted).
fn scalars(v: Option<&Json>, role: &str, what: &str) -> Result<Resources, Rejection> {
    let mut parts = Vec::new();
    if let Some(map) = v.and_then(Json::as_object) {
        for (name, val) in map {
            let n = val
                .get("value")
                .and_then(number)
                .or_else(|| number(val))
                .ok_or_else(|| {
                    bad(format!(
                        "quota {what} of role '{role}': {name} is not a number"
                    ))
                })?;
            if !n.is_finite() || n < 0.0 {
                return Err(bad(format!(
                    "quota {what} of role '{role}': {name} must be a non-negative number"
                )));
            }
            parts.push(format!("{name}:{n}"));
        }
    }
    Resources::parse(&parts.join(";"))
        .map_err(|e| bad(format!("quota {what} of role '{role}': {e}")))
}

/// `update_quota.quota_configs[{role, guarantees{}, limits{}}]`.
pub fn update_quota(obj: &Map<String, Json>) -> Result<Vec<QuotaConfig>, Rejection> {
    let configs = body(obj, "update_quota")?
        .get("quota_configs")
        .and_then(Json::as_array)
        .ok_or_else(|| {
            bad("Failed to validate master::Call: Expecting 'update_quota.quota_configs'")
        })?;
    configs
        .iter()
        .map(|c| {
            let role = c
                .get("role")
                .and_then(Json::as_str)
                .ok_or_else(|| bad("quota_config needs a 'role'"))?;
            Ok(QuotaConfig {
                role: role.to_string(),
                guarantees: scalars(c.get("guarantees"), role, "guarantee")?,
                limits: scalars(c.get("limits"), role, "limit")?,
            })
        })
        .collect()
}

/// `reserve_resources` / `unreserve_resources`: `{agent_id, resources[]}`.
pub fn reservation(obj: &Map<String, Json>, name: &str) -> Result<(String, Resources), Rejection> {
    let b = body(obj, name)?;
    let agent_id: Id = mesos::parse(b.get("agent_id").cloned().unwrap_or(Json::Null))
        .map_err(|e| bad(format!("{name}.agent_id: {e}")))?;
    let resources = Resources::from_v1_json(b.get("resources").unwrap_or(&Json::Array(vec![])))
        .map_err(|e| bad(format!("{name}.resources: {e}")))?;
    if resources.is_empty() {
        return Err(bad(format!("{name}: no resources given")));
    }
    Ok((agent_id.value, resources))
}

/// `teardown.framework_id`.
pub fn teardown(obj: &Map<String, Json>) -> Result<String, Rejection> {
    let b = body(obj, "teardown")?;
    let id: Id = mesos::parse(b.get("framework_id").cloned().unwrap_or(Json::Null))
        .map_err(|e| bad(format!("teardown.framework_id: {e}")))?;
    Ok(id.value)
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
