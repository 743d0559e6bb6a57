//! The Mesos resource model: `cpus`, `mem`, `disk`, `ports`, `gpus`, ...
//!
//! Three encodings, all pure:
//! - the agent's `--resources` text, `cpus:4;mem:2048;ports:[31000-32000];disk(eng):100`
//!   ([`Resources::parse`] and `Display`), or a JSON array of v1 Resource objects;
//! - Mesos v1 JSON in the pre-refinement format
//!   ([`Resources::from_v1_json`], [`Resources::to_v1_json`]);
//! - the legacy `/state` object keyed by name ([`Resources::to_legacy`]);
//! - typed v1 `Resource` messages ([`v1`], [`Resources::to_v1`]).
//!
//! Everything built here (parse, JSON, `push`, arithmetic) keeps one entry per
//! (name, role, type), scalars rounded to three decimals (Mesos fixed point),
//! ranges sorted and coalesced, and set items unique. Arithmetic drops entries
//! that become empty; `parse` keeps explicit zeros such as `gpus:0` so that
//! callers can tell "asked for none" from "not given".

mod arith;
mod json;
mod text;
mod typed;
pub mod v1;

use arith::{add_value, coalesce, same_kind};

pub(crate) use arith::round3;
pub use json::role_of;
pub(crate) use json::{object_field, ranges_from_json, scalar_from_json, str_field};
pub use text::MAX_SCALAR;
pub(crate) use text::{fmt_ranges, parse_ranges, validated_ranges};

/// The role of unreserved resources.
pub const UNRESERVED: &str = "*";

/// An inclusive range of integers, e.g. a port range `[31000-32000]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Range {
    pub begin: u64,
    pub end: u64,
}

/// The value of one resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Mesos scalars have three decimal digits of precision.
    Scalar(f64),
    Ranges(Vec<Range>),
    Set(Vec<String>),
}

/// One named resource reserved to `role` (`*` = unreserved).
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub name: String,
    pub role: String,
    pub value: Value,
}

/// A list of resources.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resources(pub Vec<Resource>);

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ResourcesError {
    #[error("invalid resources {input:?}: {reason}")]
    Invalid { input: String, reason: String },
}

impl Resources {
    /// These resources if each entry is valid (name, role, value) and
    /// together they describe one machine (no name of two types, no range
    /// or set item twice), as every reader of Mesos input checks; for
    /// resources built in code or decoded from Keel's own protocol.
    pub fn checked(self) -> Result<Resources, ResourcesError> {
        let text = self.to_string();
        let mut raw = Vec::with_capacity(self.0.len());
        for r in self.0 {
            let fail = |e: String| invalid(&text, format!("{}: {e}", r.name));
            text::validate_name(&r.name).map_err(fail)?;
            text::validate_role(&r.role).map_err(fail)?;
            let value = match r.value {
                Value::Scalar(v) => Value::Scalar(text::validated_scalar(v).map_err(fail)?),
                Value::Ranges(v) => Value::Ranges(text::validated_ranges(v).map_err(fail)?),
                Value::Set(v) => Value::Set(text::validated_set(v).map_err(fail)?),
            };
            raw.push(Resource { value, ..r });
        }
        text::assemble(raw, &text)
    }

    /// Parses the agent's `--resources` flag: Mesos text syntax
    /// (`cpus:4;mem:2048;ports:[31000-32000];disk(role):100`) or a JSON array
    /// of v1 Resource objects.
    pub fn parse(text: &str) -> Result<Self, ResourcesError> {
        let trimmed = text.trim();
        if trimmed.starts_with('[') {
            let json: serde_json::Value = serde_json::from_str(trimmed)
                .map_err(|e| invalid(text, format!("invalid json: {e}")))?;
            return json::from_json(&json, text);
        }
        text::parse_text(trimmed, text)
    }
}

fn invalid(input: &str, reason: impl Into<String>) -> ResourcesError {
    ResourcesError::Invalid {
        input: input.to_string(),
        reason: reason.into(),
    }
}

impl Range {
    pub const fn new(begin: u64, end: u64) -> Self {
        Self { begin, end }
    }
}

impl Value {
    /// The Mesos `Value.Type` name: `SCALAR`, `RANGES` or `SET`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "SCALAR",
            Value::Ranges(_) => "RANGES",
            Value::Set(_) => "SET",
        }
    }

    /// A zero scalar, no ranges or an empty set.
    pub fn is_empty(&self) -> bool {
        match self {
            Value::Scalar(v) => *v == 0.0,
            Value::Ranges(r) => r.is_empty(),
            Value::Set(s) => s.is_empty(),
        }
    }

    fn normalized(self) -> Value {
        match self {
            Value::Scalar(v) => Value::Scalar(round3(v)),
            Value::Ranges(r) => Value::Ranges(coalesce(r)),
            Value::Set(items) => {
                let mut seen = std::collections::HashSet::with_capacity(items.len());
                Value::Set(
                    items
                        .into_iter()
                        .filter(|i| seen.insert(i.clone()))
                        .collect(),
                )
            }
        }
    }
}

impl Resource {
    /// An unreserved scalar resource, rounded to three decimals.
    pub fn scalar(name: impl Into<String>, value: f64) -> Self {
        Self {
            name: name.into(),
            role: UNRESERVED.to_string(),
            value: Value::Scalar(round3(value)),
        }
    }

    /// An unreserved ranges resource; the ranges are sorted and coalesced.
    pub fn ranges(name: impl Into<String>, ranges: Vec<Range>) -> Self {
        Self {
            name: name.into(),
            role: UNRESERVED.to_string(),
            value: Value::Ranges(coalesce(ranges)),
        }
    }

    /// The same resource reserved to `role`.
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.role = role.into();
        self
    }

    fn matches(&self, other: &Resource) -> bool {
        self.name == other.name && self.role == other.role && same_kind(&self.value, &other.value)
    }
}

impl Resources {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Resource> {
        self.0.iter()
    }

    /// True when no entry holds anything (`gpus:0` alone is empty).
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|r| r.value.is_empty())
    }

    /// Adds one resource, merging it into the entry with the same name, role
    /// and type if there is one.
    pub fn push(&mut self, resource: Resource) {
        match self.0.iter_mut().find(|r| r.matches(&resource)) {
            Some(existing) => add_value(&mut existing.value, &resource.value),
            None => self.0.push(Resource {
                value: resource.value.normalized(),
                ..resource
            }),
        }
    }

    /// The sum of the scalar resource `name` over all roles (0 if absent).
    pub fn scalar(&self, name: &str) -> f64 {
        let sum = self
            .0
            .iter()
            .filter(|r| r.name == name)
            .filter_map(|r| match r.value {
                Value::Scalar(v) => Some(v),
                _ => None,
            })
            .sum();
        round3(sum)
    }

    /// Whether any entry (of any role, even an empty one) is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|r| r.name == name)
    }

    /// Replaces the unreserved entry named `name`, or appends one.
    pub fn set_unreserved(&mut self, name: &str, value: Value) {
        let is_target = |r: &Resource| r.name == name && r.role == UNRESERVED;
        let at = self.0.iter().position(is_target);
        self.0.retain(|r| !is_target(r));
        let resource = Resource {
            name: name.to_string(),
            role: UNRESERVED.to_string(),
            value: value.normalized(),
        };
        match at {
            Some(i) => self.0.insert(i, resource),
            None => self.0.push(resource),
        }
    }
}

impl FromIterator<Resource> for Resources {
    /// Collects through [`Resources::push`], merging like entries.
    fn from_iter<I: IntoIterator<Item = Resource>>(iter: I) -> Self {
        let mut out = Resources::new();
        for r in iter {
            out.push(r);
        }
        out
    }
}

impl<'a> IntoIterator for &'a Resources {
    type Item = &'a Resource;
    type IntoIter = std::slice::Iter<'a, Resource>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn parse(text: &str) -> Resources {
        Resources::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    pub(super) fn reason(text: &str) -> String {
        match Resources::parse(text) {
            Err(ResourcesError::Invalid { input, reason }) => {
                assert_eq!(input, text);
                reason
            }
            Ok(r) => panic!("{text:?} parsed as {r:?}"),
        }
    }

    pub(super) fn ports(ranges: &[(u64, u64)]) -> Value {
        Value::Ranges(ranges.iter().map(|&(b, e)| Range::new(b, e)).collect())
    }

    #[test]
    fn queries_and_builders() {
        let mut r = parse("cpus:1;cpus(eng):2;gpus:0");
        assert_eq!(r.scalar("cpus"), 3.0);
        assert_eq!(r.scalar("mem"), 0.0);
        assert!(r.has("gpus") && !r.has("mem"));
        assert!(!r.is_empty());
        assert!(parse("gpus:0;ports:[]").is_empty());
        assert!(Resources::new().is_empty());

        r.set_unreserved("cpus", Value::Scalar(8.0));
        r.set_unreserved("mem", Value::Scalar(1024.0004));
        r.set_unreserved("ports", ports(&[(5, 6), (1, 4)]));
        assert_eq!(
            r.to_string(),
            "cpus:8;cpus(eng):2;gpus:0;mem:1024;ports:[1-6]"
        );

        let mut r = Resources::new();
        r.push(Resource::scalar("cpus", 1.0));
        r.push(Resource::scalar("cpus", 0.5));
        r.push(Resource::scalar("cpus", 1.0).with_role("eng"));
        r.push(Resource::ranges(
            "ports",
            vec![Range::new(10, 20), Range::new(1, 9)],
        ));
        assert_eq!(r.to_string(), "cpus:1.5;cpus(eng):1;ports:[1-20]");
        assert_eq!(r.iter().count(), 3);
        assert_eq!((&r).into_iter().filter(|x| x.name == "cpus").count(), 2);
    }
}
