//! From typed v1 `Resource` messages ([`crate::mesos::Resource`]) to the
//! model, with the same checks as the JSON form.

use super::text::{
    assemble, validate_name, validate_role, validated_ranges, validated_scalar, validated_set,
};
use super::v1::ValueType;
use super::{Range, Resource, Resources, ResourcesError, Value, invalid};
use crate::mesos;

impl Resources {
    /// The model of a list of v1 resources: every value checked (finite,
    /// non-negative scalars, ordered ranges, the field its type names),
    /// entries of one name and role merged.
    pub fn from_v1(list: &[mesos::Resource]) -> Result<Resources, ResourcesError> {
        // The input text of an error is only made when there is one.
        let text = || serde_json::to_string(list).unwrap_or_default();
        let mut raw = Vec::with_capacity(list.len());
        for (i, r) in list.iter().enumerate() {
            raw.push(one(r).map_err(|e| invalid(&text(), format!("resource {i}: {e}")))?);
        }
        assemble(raw, "").map_err(|ResourcesError::Invalid { reason, .. }| invalid(&text(), reason))
    }
}

fn one(r: &mesos::Resource) -> Result<Resource, String> {
    let name = r.name.as_str();
    validate_name(name)?;
    let value = match r.kind {
        ValueType::SCALAR => {
            let s = r.scalar.as_ref().ok_or("missing scalar")?;
            Value::Scalar(validated_scalar(s.value)?)
        }
        ValueType::RANGES => {
            let ranges = r.ranges.as_ref().ok_or("missing ranges")?;
            let list = ranges
                .range
                .iter()
                .map(|x| Range::new(x.begin, x.end))
                .collect();
            Value::Ranges(validated_ranges(list)?)
        }
        ValueType::SET => {
            let set = r.set.as_ref().ok_or("missing set")?;
            Value::Set(validated_set(set.item.clone())?)
        }
        ValueType::TEXT => return Err(format!("{name}: unsupported resource type \"TEXT\"")),
    };
    let role = r
        .checked_role()
        .ok_or("reservation has no role")?
        .to_string();
    validate_role(&role)?;
    Ok(Resource {
        name: name.to_string(),
        role,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn typed(v: serde_json::Value) -> Vec<mesos::Resource> {
        crate::mesos::parse(v).unwrap()
    }

    #[test]
    fn agrees_with_the_json_form() {
        let j = json!([
            {"name":"cpus","type":"SCALAR","scalar":{"value":"1.5"},"role":null,
             "allocation_info":{"role":"*"}},
            {"name":"mem","type":"SCALAR","scalar":{"value":128},"role":"",
             "reservations":[{"type":"STATIC","role":"eng"},{"type":"DYNAMIC","role":"eng/dev","principal":"p"}]},
            {"name":"ports","type":"RANGES","ranges":{"range":[{"begin":"31000","end":31001.0}]}},
            {"name":"cpus","type":"SCALAR","scalar":{"value":0.5}},
        ]);
        assert_eq!(
            Resources::from_v1(&typed(j.clone())).unwrap(),
            Resources::from_v1_json(&j).unwrap()
        );
    }

    #[test]
    fn rejects_bad_values_with_a_reason() {
        for (j, want) in [
            (
                json!([{"name":"x","type":"SCALAR","scalar":{"value":-2}}]),
                "negative",
            ),
            (
                json!([{"name":"x","type":"SCALAR","scalar":{"value":"NaN"}}]),
                "not finite",
            ),
            (json!([{"name":"x","type":"SCALAR"}]), "missing scalar"),
            (
                json!([{"name":"x","type":"RANGES","ranges":{"range":[{"begin":3,"end":2}]}}]),
                "begin greater than end",
            ),
            (
                json!([{"name":"x","type":"SCALAR","scalar":{"value":1}},
                    {"name":"x","type":"SET","set":{"item":["a"]}}]),
                "x is both SCALAR and SET",
            ),
        ] {
            let err = Resources::from_v1(&typed(j.clone()))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{j}: {err}");
        }
    }
}
