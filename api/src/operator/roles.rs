//! Roles, weights, quota and operator reservations: `GET_ROLES`,
//! `GET_WEIGHTS`/`UPDATE_WEIGHTS`, `GET_QUOTA`/`UPDATE_QUOTA`,
//! `RESERVE_RESOURCES`/`UNRESERVE_RESOURCES`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::mesos::{Id, lenient};
use crate::resources::v1::Resource;

/// A quota amount, `{"value": 2.0}` (`Value.Scalar`). On input a bare number
/// or a numeric string is accepted too.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuotaScalar(pub f64);

impl Serialize for QuotaScalar {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("value", &self.0)?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for QuotaScalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped {
            #[serde(deserialize_with = "lenient::f64")]
            value: f64,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Wrapped(Wrapped),
            #[serde(deserialize_with = "lenient::f64")]
            Bare(f64),
        }
        match Either::deserialize(d) {
            Ok(Either::Wrapped(w)) => Ok(QuotaScalar(w.value)),
            Ok(Either::Bare(v)) => Ok(QuotaScalar(v)),
            Err(_) => Err(serde::de::Error::custom(
                "expected a number or {\"value\": number}",
            )),
        }
    }
}

/// `{"cpus": {"value": 1.0}, "mem": {"value": 512.0}}`.
pub type ScalarMap = BTreeMap<String, QuotaScalar>;

/// A role's quota as `GET_ROLES` shows it, with what it consumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleQuota {
    pub role: String,
    #[serde(default)]
    pub guarantee: ScalarMap,
    #[serde(default)]
    pub limit: ScalarMap,
    #[serde(default)]
    pub consumed: ScalarMap,
}

/// One entry of `get_roles.roles`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    pub weight: f64,
    #[serde(default)]
    pub frameworks: Vec<Id>,
    #[serde(default)]
    pub resources: Vec<Resource>,
    #[serde(default)]
    pub allocated: Vec<Resource>,
    #[serde(default)]
    pub reserved: Vec<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<RoleQuota>,
}

/// `get_roles`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GetRoles {
    #[serde(default)]
    pub roles: Vec<Role>,
}

/// A role's weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightInfo {
    pub role: String,
    #[serde(deserialize_with = "lenient::f64")]
    pub weight: f64,
}

/// `get_weights`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GetWeights {
    #[serde(default)]
    pub weight_infos: Vec<WeightInfo>,
}

/// `update_weights`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UpdateWeights {
    pub weight_infos: Vec<WeightInfo>,
}

/// `QuotaConfig`: a role's guarantees and limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaConfig {
    pub role: String,
    #[serde(default)]
    pub guarantees: ScalarMap,
    #[serde(default)]
    pub limits: ScalarMap,
}

/// `QuotaInfo`, the quota of the deprecated `SET_QUOTA` (Keel keeps none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaInfo {
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default)]
    pub guarantee: Vec<Resource>,
}

/// `get_quota.status`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct QuotaStatus {
    #[serde(default)]
    pub infos: Vec<QuotaInfo>,
    #[serde(default)]
    pub configs: Vec<QuotaConfig>,
}

/// `get_quota`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GetQuota {
    #[serde(default)]
    pub status: QuotaStatus,
}

/// `update_quota`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UpdateQuota {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
    pub quota_configs: Vec<QuotaConfig>,
}

/// `quota_request` of the deprecated `SET_QUOTA`: one role's guarantee
/// (which Mesos 1.9+ also takes as its limit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
    pub role: String,
    #[serde(default)]
    pub guarantee: Vec<Resource>,
}

/// `set_quota`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetQuota {
    pub quota_request: QuotaRequest,
}

/// `remove_quota`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoveQuota {
    pub role: String,
}

/// `reserve_resources` / `unreserve_resources`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub agent_id: Id,
    /// What the reservation refines (refinement format; Keel ignores it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<Resource>,
    #[serde(default)]
    pub resources: Vec<Resource>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quota_scalars_in_both_forms() {
        let c: QuotaConfig = serde_json::from_value(json!({"role": "eng",
            "guarantees": {"cpus": {"value": 2}}, "limits": {"cpus": 4, "mem": {"value": "1024"}}}))
        .unwrap();
        assert_eq!(c.guarantees["cpus"], QuotaScalar(2.0));
        assert_eq!(c.limits["mem"], QuotaScalar(1024.0));
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"role": "eng", "guarantees": {"cpus": {"value": 2.0}},
                   "limits": {"cpus": {"value": 4.0}, "mem": {"value": 1024.0}}})
        );
        assert!(serde_json::from_value::<QuotaScalar>(json!({"value": "lots"})).is_err());
    }
}
