//! The Mesos v1 `Resource` and `Attribute` messages as typed values: what
//! the master emits in offers and operator answers, and what clients read
//! back and hand in again (a resource taken from an offer keeps its
//! reservation, `allocation_info` and `disk`).
//!
//! [`Resources`] and [`Attributes`] convert to them; turning Mesos input
//! into the domain model stays with the lenient readers
//! ([`Resources::from_v1_json`], [`Attributes::from_v1_json`]), which
//! [`Resources::from_v1`] goes through.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{Range, Resources, UNRESERVED, Value};
use crate::attributes::{AttributeValue, Attributes};
use crate::id::Id;
use crate::lenient;

/// `Value.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum ValueType {
    SCALAR,
    RANGES,
    SET,
    TEXT,
}

/// `Value.Scalar`: `{"value": 1.5}` (a number or a numeric string on input).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scalar {
    #[serde(deserialize_with = "lenient::f64")]
    pub value: f64,
}

/// `Value.Range`, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueRange {
    #[serde(deserialize_with = "lenient_u64")]
    pub begin: u64,
    #[serde(deserialize_with = "lenient_u64")]
    pub end: u64,
}

/// `Value.Ranges`: `{"range": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ranges {
    #[serde(default)]
    pub range: Vec<ValueRange>,
}

/// `Value.Set`: `{"item": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Set {
    #[serde(default)]
    pub item: Vec<String>,
}

/// `Value.Text`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Text {
    pub value: String,
}

/// `Resource.ReservationInfo`, in both formats: `reservation` (pre-refinement,
/// dynamic: `principal`, `labels`) and `reservations[]` (`type`, `role`, ...).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ReservationInfo {
    /// `STATIC` or `DYNAMIC`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Pass-through `Labels`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Json>,
}

/// `Resource.AllocationInfo`: the role an offered or used resource is
/// allocated to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AllocationInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl AllocationInfo {
    pub fn role(role: impl Into<String>) -> Self {
        AllocationInfo {
            role: Some(role.into()),
        }
    }
}

/// `Resource.DiskInfo.Persistence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persistence {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

/// The `Volume` of a persistent volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    pub container_path: String,
    /// `RW` or `RO`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
}

/// `Resource.DiskInfo`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DiskInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeInfo>,
    /// Pass-through `DiskInfo.Source` (PATH, MOUNT, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Json>,
}

/// The Mesos v1 `Resource` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ValueType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalar: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges: Option<Ranges>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<Set>,
    /// Pre-refinement format: `*` or the reserved role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Pre-refinement dynamic reservation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<ReservationInfo>,
    /// Refinement format (an empty list is unreserved, so `Some(vec![])`
    /// is kept apart from `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Vec<ReservationInfo>>,
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
    /// An unreserved scalar in the pre-refinement format (`"role": "*"`).
    pub fn scalar(name: impl Into<String>, value: f64) -> Self {
        Resource {
            scalar: Some(Scalar { value }),
            role: Some(UNRESERVED.to_string()),
            ..Resource::bare(name.into(), ValueType::SCALAR)
        }
    }

    fn bare(name: String, kind: ValueType) -> Self {
        Resource {
            name,
            kind,
            scalar: None,
            ranges: None,
            set: None,
            role: None,
            reservation: None,
            reservations: None,
            allocation_info: None,
            disk: None,
            revocable: None,
            shared: None,
            provider_id: None,
        }
    }

    /// The same resource with `allocation_info.role` set.
    pub fn allocated_to(mut self, role: impl Into<String>) -> Self {
        self.allocation_info = Some(AllocationInfo::role(role));
        self
    }

    /// The scalar value (0 for other kinds).
    pub fn scalar_value(&self) -> f64 {
        self.scalar.map_or(0.0, |s| s.value)
    }

    /// The role the resource is reserved to: the last `reservations` entry,
    /// else `role`, else `*` (as [`super::role_of`] reads JSON).
    pub fn reserved_role(&self) -> &str {
        let last = self
            .reservations
            .as_ref()
            .and_then(|r| r.last())
            .and_then(|r| r.role.as_deref());
        last.or(self.role.as_deref())
            .filter(|r| !r.is_empty())
            .unwrap_or(UNRESERVED)
    }

    /// [`Resource::reserved_role`], or `None` when the last `reservations`
    /// entry names no role (which the model refuses).
    pub fn checked_role(&self) -> Option<&str> {
        match self.reservations.as_ref().and_then(|r| r.last()) {
            Some(last) => last.role.as_deref().filter(|r| !r.is_empty()),
            None => Some(self.reserved_role()),
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

    /// This resource as JSON, e.g. for a `TaskInfo`'s raw `resources`.
    pub fn to_json(&self) -> Json {
        serde_json::to_value(self).unwrap_or(Json::Null)
    }

    /// A domain resource in the pre-refinement format: `role`, plus a
    /// STATIC `reservations` entry when reserved (what `to_v1_json` emits).
    fn from_domain(r: &super::Resource) -> Self {
        let mut out = Resource::bare(r.name.clone(), kind_of(&r.value));
        match &r.value {
            Value::Scalar(v) => out.scalar = Some(Scalar { value: *v }),
            Value::Ranges(ranges) => out.ranges = Some(to_ranges(ranges)),
            Value::Set(items) => {
                out.set = Some(Set {
                    item: items.clone(),
                })
            }
        }
        out.role = Some(r.role.clone());
        if r.role != UNRESERVED {
            out.reservations = Some(vec![ReservationInfo {
                kind: Some("STATIC".into()),
                role: Some(r.role.clone()),
                ..ReservationInfo::default()
            }]);
        }
        out
    }
}

fn kind_of(v: &Value) -> ValueType {
    match v {
        Value::Scalar(_) => ValueType::SCALAR,
        Value::Ranges(_) => ValueType::RANGES,
        Value::Set(_) => ValueType::SET,
    }
}

fn to_ranges(ranges: &[Range]) -> Ranges {
    Ranges {
        range: ranges
            .iter()
            .map(|r| ValueRange {
                begin: r.begin,
                end: r.end,
            })
            .collect(),
    }
}

impl Resources {
    /// The non-empty entries as v1 `Resource`s in the pre-refinement format
    /// (`role`, plus a STATIC `reservations` entry when reserved).
    pub fn to_v1(&self) -> Vec<Resource> {
        self.0
            .iter()
            .filter(|r| !r.value.is_empty())
            .map(Resource::from_domain)
            .collect()
    }

    /// [`Resources::to_v1`] as Mesos shows resources that are offered or
    /// used: `role` without `reservations`, and `allocation_info` when
    /// `allocation_role` is given.
    pub fn to_v1_allocated(&self, allocation_role: Option<&str>) -> Vec<Resource> {
        self.to_v1()
            .into_iter()
            .map(|mut r| {
                r.reservations = None;
                r.allocation_info = allocation_role.map(AllocationInfo::role);
                r
            })
            .collect()
    }
}

/// The Mesos v1 `Attribute` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ValueType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalar: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges: Option<Ranges>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<Set>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Text>,
}

impl Attributes {
    /// `[{"name":"rack","type":"TEXT","text":{"value":"abc"}}, ...]`.
    pub fn to_v1(&self) -> Vec<Attribute> {
        self.0
            .iter()
            .map(|a| {
                let mut out = Attribute {
                    name: a.name.clone(),
                    kind: ValueType::TEXT,
                    scalar: None,
                    ranges: None,
                    set: None,
                    text: None,
                };
                match &a.value {
                    AttributeValue::Scalar(v) => {
                        out.kind = ValueType::SCALAR;
                        out.scalar = Some(Scalar { value: *v });
                    }
                    AttributeValue::Ranges(r) => {
                        out.kind = ValueType::RANGES;
                        out.ranges = Some(to_ranges(r));
                    }
                    AttributeValue::Text(t) => out.text = Some(Text { value: t.clone() }),
                }
                out
            })
            .collect()
    }
}

/// A uint64 as stout reads it: a number without a fraction, or a string of
/// digits.
fn lenient_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    use serde::de::Error;
    match Json::deserialize(d)? {
        Json::Number(n) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64)
                    .map(|f| f as u64)
            })
            .ok_or_else(|| D::Error::custom(format!("{n} is not a uint64"))),
        Json::String(s) => s
            .trim()
            .parse()
            .map_err(|_| D::Error::custom(format!("'{s}' is not a uint64"))),
        other => Err(D::Error::custom(format!("{other} is not a uint64"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn domain_resources_in_both_forms() {
        let r =
            Resources::parse("cpus:2;ports:[31000-32000];bugs:{a,b};disk(eng):100;gpus:0").unwrap();
        assert_eq!(serde_json::to_value(r.to_v1()).unwrap(), r.to_v1_json());
        let offered = serde_json::to_value(r.to_v1_allocated(Some("eng"))).unwrap();
        assert_eq!(
            offered[3],
            json!({"name": "disk", "type": "SCALAR", "scalar": {"value": 100.0},
                   "role": "eng", "allocation_info": {"role": "eng"}})
        );
        assert_eq!(Resources::from_v1(&r.to_v1()).unwrap().to_v1(), r.to_v1());
    }

    #[test]
    fn reads_what_mesos_sends() {
        let r: Resource = crate::mesos::parse(json!({
            "name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": "31000", "end": 31001.0}]},
            "role": null, "reservations": [], "unknown": 1,
            "disk": {"persistence": {"id": "v"}, "volume": {"container_path": "data", "mode": "RW"}}
        }))
        .unwrap();
        assert_eq!(r.ranges.as_ref().unwrap().range[0].end, 31001);
        assert_eq!(r.reservations, Some(vec![]));
        assert_eq!(r.reserved_role(), "*");
        assert_eq!(r.disk.unwrap().persistence.unwrap().id, "v");
        let reserved: Resource = serde_json::from_value(json!({"name": "cpus", "type": "SCALAR",
            "scalar": {"value": "1.5"}, "reservations": [{"type": "DYNAMIC", "role": "eng"}]}))
        .unwrap();
        assert_eq!(
            (reserved.scalar_value(), reserved.reserved_role()),
            (1.5, "eng")
        );
    }

    #[test]
    fn attributes_match_the_json_form() {
        let a = Attributes::parse("rack:r1;level:10;keys:[1-2,5-9]").unwrap();
        assert_eq!(serde_json::to_value(a.to_v1()).unwrap(), a.to_v1_json());
    }
}
