//! Mesos v1 JSON (the `Resource` message, in and out) and the legacy
//! `/state` object.

use serde_json::{Map, Value as Json};

use super::arith::add_value;
use super::text::{
    assemble, fmt_ranges, validate_name, validate_role, validated_ranges, validated_scalar,
    validated_set,
};
use super::{Range, Resource, Resources, ResourcesError, UNRESERVED, Value, invalid};
use crate::keyed::{LegacyMap, LegacyValue};

impl Resources {
    /// Lenient Mesos JSON: an array of v1 `Resource` objects (`null` = none).
    /// Unknown fields are ignored, `null` means unset, numbers may be strings;
    /// the role comes from the last of `reservations`, else `role`, else `*`.
    pub fn from_v1_json(json: &Json) -> Result<Self, ResourcesError> {
        from_json(json, &json.to_string())
    }

    /// A JSON array of v1 `Resource` objects in the pre-refinement format
    /// (`role`, plus a STATIC `reservations` entry when reserved). Empty
    /// entries are left out, as Mesos never holds them. The typed form is
    /// [`Resources::to_v1`].
    pub fn to_v1_json(&self) -> Json {
        serde_json::to_value(self.to_v1()).unwrap_or(Json::Array(Vec::new()))
    }

    /// The legacy `/state` form: an object keyed by name with scalars summed
    /// over roles, ranges and sets as Mesos prints them (`"[1-2, 5-9]"`,
    /// `"{a, b}"`), and `cpus`, `gpus`, `mem`, `disk` always present.
    pub fn to_legacy(&self) -> LegacyMap {
        let mut totals: Vec<(&str, Value)> = Vec::new();
        for r in self.0.iter().filter(|r| !r.value.is_empty()) {
            match totals.iter_mut().find(|(name, _)| *name == r.name) {
                Some((_, total)) => add_value(total, &r.value),
                None => totals.push((&r.name, r.value.clone().normalized())),
            }
        }
        let mut map = LegacyMap::default();
        for name in ["cpus", "gpus", "mem", "disk"] {
            map.0.insert(name.to_string(), LegacyValue::Number(0.0));
        }
        for (name, total) in totals {
            let value = match total {
                Value::Scalar(v) => LegacyValue::Number(v),
                Value::Ranges(r) => LegacyValue::Text(fmt_ranges(&r, ", ")),
                Value::Set(items) => LegacyValue::Text(format!("{{{}}}", items.join(", "))),
            };
            map.0.insert(name.to_string(), value);
        }
        map
    }

    /// [`Resources::to_legacy`] as JSON.
    pub fn to_legacy_json(&self) -> Json {
        serde_json::to_value(self.to_legacy()).unwrap_or(Json::Null)
    }
}

// ---- v1 JSON --------------------------------------------------------------

pub(super) fn from_json(json: &Json, input: &str) -> Result<Resources, ResourcesError> {
    let items = match json {
        Json::Null => return Ok(Resources::new()),
        Json::Array(items) => items,
        _ => return Err(invalid(input, "expected a json array of resource objects")),
    };
    let mut raw = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let resource =
            resource_from_json(item).map_err(|e| invalid(input, format!("resource {i}: {e}")))?;
        raw.push(resource);
    }
    assemble(raw, input)
}

fn resource_from_json(item: &Json) -> Result<Resource, String> {
    let obj = item.as_object().ok_or("not a json object")?;
    let name = str_field(obj, "name")?.ok_or("missing name")?;
    validate_name(name)?;
    let value = match str_field(obj, "type")? {
        Some("SCALAR") => Value::Scalar(validated_scalar(scalar_from_json(obj)?)?),
        Some("RANGES") => Value::Ranges(validated_ranges(ranges_from_json(obj)?)?),
        Some("SET") => {
            let set = object_field(obj, "set")?.ok_or("missing set")?;
            let items = match field(set, "item") {
                None => Vec::new(),
                Some(list @ Json::Array(items)) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| format!("set items {list} are not all strings"))?,
                Some(other) => return Err(format!("set item {other} is not an array")),
            };
            Value::Set(validated_set(items)?)
        }
        Some(other) => return Err(format!("{name}: unsupported resource type {other:?}")),
        None => return Err(format!("{name}: missing type")),
    };
    let role = role_from_json(obj)?;
    validate_role(&role)?;
    Ok(Resource {
        name: name.to_string(),
        role,
        value,
    })
}

/// The role of one v1 Resource object: its last `reservations` entry
/// (refinement format), else `role`, else `*`. An empty string counts as
/// unset (mesos-go sends zero values).
pub fn role_of(resource: &Json) -> Result<String, String> {
    let obj = resource
        .as_object()
        .ok_or_else(|| format!("resource {resource} is not an object"))?;
    role_from_json(obj)
}

fn role_from_json(obj: &Map<String, Json>) -> Result<String, String> {
    if let Some(reservations) = field(obj, "reservations") {
        let list = reservations
            .as_array()
            .ok_or_else(|| format!("reservations {reservations} is not an array"))?;
        if let Some(last) = list.last() {
            let last = last
                .as_object()
                .ok_or_else(|| format!("reservation {last} is not an object"))?;
            return match str_field(last, "role")? {
                Some(role) if !role.is_empty() => Ok(role.to_string()),
                _ => Err("reservation has no role".to_string()),
            };
        }
    }
    match str_field(obj, "role")? {
        Some(role) if !role.is_empty() => Ok(role.to_string()),
        _ => Ok(UNRESERVED.to_string()),
    }
}

/// `obj[key]`, with `null` read as unset (stout's JSON mapping).
pub(crate) fn field<'a>(obj: &'a Map<String, Json>, key: &str) -> Option<&'a Json> {
    obj.get(key).filter(|v| !v.is_null())
}

pub(crate) fn str_field<'a>(
    obj: &'a Map<String, Json>,
    key: &str,
) -> Result<Option<&'a str>, String> {
    match field(obj, key) {
        None => Ok(None),
        Some(Json::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("{key} {other} is not a string")),
    }
}

pub(crate) fn object_field<'a>(
    obj: &'a Map<String, Json>,
    key: &str,
) -> Result<Option<&'a Map<String, Json>>, String> {
    match field(obj, key) {
        None => Ok(None),
        Some(Json::Object(o)) => Ok(Some(o)),
        Some(other) => Err(format!("{key} {other} is not an object")),
    }
}

/// A double: a JSON number or a string such as `"5.0"` or `"Infinity"`.
fn json_f64(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A uint64: a JSON number with no fraction, or a string of digits.
fn json_u64(v: &Json) -> Option<u64> {
    match v {
        Json::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64)
                .map(|f| f as u64)
        }),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `obj.scalar.value`, unvalidated.
pub(crate) fn scalar_from_json(obj: &Map<String, Json>) -> Result<f64, String> {
    let scalar = object_field(obj, "scalar")?.ok_or("missing scalar")?;
    let value = field(scalar, "value").ok_or("scalar has no value")?;
    json_f64(value).ok_or_else(|| format!("scalar value {value} is not a number"))
}

/// `obj.ranges.range[]`, unvalidated (a missing `range` list is empty).
pub(crate) fn ranges_from_json(obj: &Map<String, Json>) -> Result<Vec<Range>, String> {
    let ranges = object_field(obj, "ranges")?.ok_or("missing ranges")?;
    let list = match field(ranges, "range") {
        None => return Ok(Vec::new()),
        Some(Json::Array(list)) => list,
        Some(other) => return Err(format!("range {other} is not an array")),
    };
    let bound = |r: &Json, key: &str| {
        r.get(key)
            .and_then(json_u64)
            .ok_or_else(|| format!("range {r} has no valid {key}"))
    };
    list.iter()
        .map(|r| Ok(Range::new(bound(r, "begin")?, bound(r, "end")?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{parse, reason};
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_json_flag_form() {
        let r = parse(
            r#" [{"name":"cpus","type":"SCALAR","scalar":{"value":2}},
                 {"name":"ports","type":"RANGES","ranges":{"range":[{"begin":1,"end":2}]},"role":"eng"}] "#,
        );
        assert_eq!(r.to_string(), "cpus:2;ports(eng):[1-2]");
        assert!(reason("[{").contains("invalid json"));
        assert!(reason(r#"[{"name":"cpus"}]"#).contains("resource 0: cpus: missing type"));
    }

    #[test]
    fn emits_v1_json_in_the_pre_refinement_format() {
        let r = parse("cpus:2;ports:[31000-32000];bugs:{a,b};disk(eng):100;gpus:0");
        let want = json!([
            {"name":"cpus","type":"SCALAR","scalar":{"value":2.0},"role":"*"},
            {"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":32000}]},"role":"*"},
            {"name":"bugs","type":"SET","set":{"item":["a","b"]},"role":"*"},
            {"name":"disk","type":"SCALAR","scalar":{"value":100.0},"role":"eng",
             "reservations":[{"type":"STATIC","role":"eng"}]},
        ]);
        assert_eq!(r.to_v1_json(), want);
        assert_eq!(
            Resources::from_v1_json(&want).unwrap(),
            parse("cpus:2;ports:[31000-32000];bugs:{a,b};disk(eng):100")
        );
        assert_eq!(Resources::from_v1_json(&want).unwrap().to_v1_json(), want);
    }

    #[test]
    fn reads_v1_json_leniently() {
        let j = json!([
            {"name":"cpus","type":"SCALAR","scalar":{"value":"1.5"},"role":null,
             "allocation_info":{"role":"*"},"revocable":null,"unknown":7},
            {"name":"mem","type":"SCALAR","scalar":{"value":128},"role":"",
             "reservations":[{"type":"STATIC","role":"eng"},{"type":"DYNAMIC","role":"eng/dev","principal":"p"}]},
            {"name":"disk","type":"SCALAR","scalar":{"value":10},"role":"ops","reservations":[]},
            {"name":"ports","type":"RANGES","ranges":{"range":[{"begin":"31000","end":31001.0}]}},
            {"name":"empty","type":"RANGES","ranges":{"range":null}},
            {"name":"bugs","type":"SET","set":{"item":null}},
        ]);
        let r = Resources::from_v1_json(&j).unwrap();
        assert_eq!(
            r.to_string(),
            "cpus:1.5;mem(eng/dev):128;disk(ops):10;ports:[31000-31001];empty:[];bugs:{}"
        );
        assert_eq!(
            Resources::from_v1_json(&Json::Null).unwrap(),
            Resources::new()
        );
        assert_eq!(
            Resources::from_v1_json(&json!([])).unwrap(),
            Resources::new()
        );
    }

    #[test]
    fn rejects_bad_v1_json() {
        let cases = [
            (json!({"name":"cpus"}), "expected a json array"),
            (json!([7]), "resource 0: not a json object"),
            (json!([{"type":"SCALAR"}]), "missing name"),
            (json!([{"name":5}]), "name 5 is not a string"),
            (
                json!([{"name":"x","type":"TEXT","text":{"value":"a"}}]),
                "unsupported resource type \"TEXT\"",
            ),
            (
                json!([{"name":"x","type":"BOGUS"}]),
                "unsupported resource type",
            ),
            (json!([{"name":"x","type":"SCALAR"}]), "missing scalar"),
            (
                json!([{"name":"x","type":"SCALAR","scalar":{}}]),
                "scalar has no value",
            ),
            (
                json!([{"name":"x","type":"SCALAR","scalar":{"value":"lots"}}]),
                "is not a number",
            ),
            (
                json!([{"name":"x","type":"SCALAR","scalar":{"value":-2}}]),
                "negative",
            ),
            (
                json!([{"name":"x","type":"SCALAR","scalar":{"value":"Infinity"}}]),
                "not finite",
            ),
            (json!([{"name":"x","type":"RANGES"}]), "missing ranges"),
            (
                json!([{"name":"x","type":"RANGES","ranges":{"range":[{"begin":-1,"end":2}]}}]),
                "no valid begin",
            ),
            (
                json!([{"name":"x","type":"RANGES","ranges":{"range":[{"begin":3,"end":2}]}}]),
                "begin greater than end",
            ),
            (
                json!([{"name":"x","type":"SET","set":{"item":[1]}}]),
                "not all strings",
            ),
            (
                json!([{"name":"x","type":"SCALAR","scalar":{"value":1},"role":"-x"}]),
                "starting with '-'",
            ),
            (
                json!([{"name":"x","type":"SCALAR","scalar":{"value":1},"reservations":[{"type":"STATIC"}]}]),
                "reservation has no role",
            ),
            (
                json!([{"name":"x","type":"SCALAR","scalar":{"value":1}},
                    {"name":"x","type":"SET","set":{"item":["a"]}}]),
                "x is both SCALAR and SET",
            ),
        ];
        for (j, want) in cases {
            match Resources::from_v1_json(&j) {
                Err(ResourcesError::Invalid { input, reason }) => {
                    assert_eq!(input, j.to_string());
                    assert!(reason.contains(want), "{j}: {reason}");
                }
                Ok(r) => panic!("{j} parsed as {r:?}"),
            }
        }
    }

    #[test]
    fn emits_legacy_json() {
        let r = parse("cpus:2;mem:1024;disk:1024;ports:[31000-32000]");
        assert_eq!(
            r.to_legacy_json(),
            json!({"cpus":2.0,"gpus":0.0,"mem":1024.0,"disk":1024.0,"ports":"[31000-32000]"})
        );
        let r =
            parse("cpus:0.1;cpus(eng):0.2;ports:[1-2];ports(eng):[3-3,7-9];bugs:{a};bugs(x):{b}");
        assert_eq!(
            r.to_legacy_json(),
            json!({"cpus":0.3,"gpus":0.0,"mem":0.0,"disk":0.0,"ports":"[1-3, 7-9]","bugs":"{a, b}"})
        );
        assert_eq!(
            Resources::new().to_legacy_json(),
            json!({"cpus":0.0,"gpus":0.0,"mem":0.0,"disk":0.0})
        );
    }
}
