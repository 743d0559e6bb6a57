//! The v1 `Resource` message as frameworks send it: the value typed, the
//! reservation, allocation and disk details kept for the agent (persistent
//! volumes, container paths). [`crate::resources::Resources`] is the
//! arithmetic model made from it ([`crate::resources::Resources::from_v1`]).

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{Id, lenient};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scalar {
    #[serde(deserialize_with = "lenient::f64")]
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueRange {
    #[serde(deserialize_with = "lenient::u64")]
    pub begin: u64,
    #[serde(deserialize_with = "lenient::u64")]
    pub end: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ValueRanges {
    #[serde(default)]
    pub range: Vec<ValueRange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ValueSet {
    #[serde(default)]
    pub item: Vec<String>,
}

/// One entry of `Resource.reservations` (refinement format).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Reservation {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Json>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AllocationInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Persistence {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

/// `Volume`: where a persistent volume appears in the container.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Volume {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DiskInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<Volume>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Json>,
}

/// A v1 `Resource`. The value is checked (finite, non-negative, ordered
/// ranges, the right field for the type) when it becomes
/// [`crate::resources::Resources`], so that a bad task is a TASK_ERROR with
/// a reason rather than a rejected call.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Resource {
    pub name: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalar: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges: Option<ValueRanges>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<ValueSet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The pre-refinement form of a dynamic reservation (`{principal?,
    /// labels?}`), beside `role`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<Json>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reservations: Vec<Reservation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_info: Option<AllocationInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocable: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<Id>,
}

impl Resource {
    /// The role it is reserved to: the last of `reservations` (refinement
    /// format), else `role`, else `*`; an empty string counts as unset.
    pub fn reserved_role(&self) -> Result<&str, String> {
        if let Some(last) = self.reservations.last() {
            return match last.role.as_deref() {
                Some(role) if !role.is_empty() => Ok(role),
                _ => Err("reservation has no role".to_string()),
            };
        }
        match self.role.as_deref() {
            Some(role) if !role.is_empty() => Ok(role),
            _ => Ok(crate::resources::UNRESERVED),
        }
    }

    /// The role it is allocated to (`allocation_info.role`), if set.
    pub fn allocation_role(&self) -> Option<&str> {
        self.allocation_info.as_ref()?.role.as_deref()
    }

    /// The persistent volume id, when this is a persistent volume.
    pub fn persistence_id(&self) -> Option<&str> {
        Some(self.disk.as_ref()?.persistence.as_ref()?.id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesos::parse;
    use serde_json::json;

    #[test]
    fn round_trips_what_frameworks_send() {
        let v = json!({"name": "disk", "type": "SCALAR", "scalar": {"value": 64.0},
            "role": "eng", "reservations": [{"type": "DYNAMIC", "role": "eng", "principal": "p"}],
            "allocation_info": {"role": "eng"},
            "disk": {"persistence": {"id": "v1"}, "volume": {"container_path": "data", "mode": "RW"}}});
        let r: Resource = parse(v.clone()).unwrap();
        assert_eq!(r.reserved_role(), Ok("eng"));
        assert_eq!(r.allocation_role(), Some("eng"));
        assert_eq!(r.persistence_id(), Some("v1"));
        assert_eq!(serde_json::to_value(&r).unwrap(), v);
    }

    #[test]
    fn lenient_numbers_and_roles() {
        let r: Resource = parse(json!({"name": "ports", "type": "RANGES", "role": "",
            "ranges": {"range": [{"begin": "31000", "end": 31001.0}]}, "revocable": null}))
        .unwrap();
        assert_eq!(
            r.ranges.as_ref().unwrap().range[0],
            ValueRange {
                begin: 31000,
                end: 31001
            }
        );
        assert_eq!(r.reserved_role(), Ok("*"));
        let bad: Resource =
            parse(json!({"name": "x", "reservations": [{"type": "STATIC"}]})).unwrap();
        assert!(bad.reserved_role().is_err());
    }
}
