//! The Mesos resource model: `cpus`, `mem`, `disk`, `ports`, `gpus`, ...
//!
//! Three encodings, all pure:
//! - the agent's `--resources` text, `cpus:4;mem:2048;ports:[31000-32000];disk(eng):100`
//!   ([`Resources::parse`] and `Display`), or a JSON array of v1 Resource objects;
//! - Mesos v1 JSON in the pre-refinement format
//!   ([`Resources::from_v1_json`], [`Resources::to_v1_json`]);
//! - the legacy `/state` object keyed by name ([`Resources::to_legacy_json`]).
//!
//! Everything built here (parse, JSON, `push`, arithmetic) keeps one entry per
//! (name, role, type), scalars rounded to three decimals (Mesos fixed point),
//! ranges sorted and coalesced, and set items unique. Arithmetic drops entries
//! that become empty; `parse` keeps explicit zeros such as `gpus:0` so that
//! callers can tell "asked for none" from "not given".

use std::fmt;

use serde_json::{Map, Value as Json, json};

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

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.begin, self.end)
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
                let mut unique: Vec<String> = Vec::with_capacity(items.len());
                for item in items {
                    if !unique.contains(&item) {
                        unique.push(item);
                    }
                }
                Value::Set(unique)
            }
        }
    }
}

/// The text form used in `--resources`: `4`, `[1-2,5-9]`, `{a,b}`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Scalar(v) => write!(f, "{v}"),
            Value::Ranges(r) => f.write_str(&fmt_ranges(r, ",")),
            Value::Set(items) => write!(f, "{{{}}}", items.join(",")),
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

/// `name:value`, or `name(role):value` when reserved.
impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if self.role != UNRESERVED {
            write!(f, "({})", self.role)?;
        }
        write!(f, ":{}", self.value)
    }
}

impl Resources {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Parses the agent's `--resources` flag: Mesos text syntax
    /// (`cpus:4;mem:2048;ports:[31000-32000];disk(role):100`) or a JSON array
    /// of v1 Resource objects.
    pub fn parse(text: &str) -> Result<Self, ResourcesError> {
        let trimmed = text.trim();
        if trimmed.starts_with('[') {
            let json: Json = serde_json::from_str(trimmed)
                .map_err(|e| invalid(text, format!("invalid json: {e}")))?;
            return from_json(&json, text);
        }
        let mut raw = Vec::new();
        for segment in trimmed.split([';', '\n']).map(str::trim) {
            if segment.is_empty() {
                continue;
            }
            let resource =
                parse_segment(segment).map_err(|e| invalid(text, format!("{segment:?}: {e}")))?;
            raw.push(resource);
        }
        assemble(raw, text)
    }

    /// Lenient Mesos JSON: an array of v1 `Resource` objects (`null` = none).
    /// Unknown fields are ignored, `null` means unset, numbers may be strings;
    /// the role comes from the last of `reservations`, else `role`, else `*`.
    pub fn from_v1_json(json: &Json) -> Result<Self, ResourcesError> {
        from_json(json, &json.to_string())
    }

    /// A JSON array of v1 `Resource` objects in the pre-refinement format
    /// (`role`, plus a STATIC `reservations` entry when reserved). Empty
    /// entries are left out, as Mesos never holds them.
    pub fn to_v1_json(&self) -> Json {
        let list = self
            .0
            .iter()
            .filter(|r| !r.value.is_empty())
            .map(resource_to_json)
            .collect();
        Json::Array(list)
    }

    /// The legacy `/state` form: an object keyed by name with scalars summed
    /// over roles, ranges and sets as Mesos prints them (`"[1-2, 5-9]"`,
    /// `"{a, b}"`), and `cpus`, `gpus`, `mem`, `disk` always present.
    pub fn to_legacy_json(&self) -> Json {
        let mut totals: Vec<(&str, Value)> = Vec::new();
        for r in self.0.iter().filter(|r| !r.value.is_empty()) {
            match totals.iter_mut().find(|(name, _)| *name == r.name) {
                Some((_, total)) => add_value(total, &r.value),
                None => totals.push((&r.name, r.value.clone().normalized())),
            }
        }
        let mut obj = Map::new();
        for name in ["cpus", "gpus", "mem", "disk"] {
            obj.insert(name.to_string(), json!(0.0));
        }
        for (name, total) in totals {
            let value = match total {
                Value::Scalar(v) => json!(v),
                Value::Ranges(r) => json!(fmt_ranges(&r, ", ")),
                Value::Set(items) => json!(format!("{{{}}}", items.join(", "))),
            };
            obj.insert(name.to_string(), value);
        }
        Json::Object(obj)
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

    /// Adds `other` per (name, role): scalars add, ranges and sets unite.
    pub fn add(&mut self, other: &Resources) {
        for r in &other.0 {
            self.push(r.clone());
        }
        self.0.retain(|r| !r.value.is_empty());
    }

    /// `self - other` per (name, role), or `None` when `self` does not contain
    /// `other`. Entries that become empty are dropped.
    pub fn checked_sub(&self, other: &Resources) -> Option<Resources> {
        let mut out = self.normalized();
        for r in other.normalized().0 {
            if r.value.is_empty() {
                continue;
            }
            let entry = out.0.iter_mut().find(|e| e.matches(&r))?;
            entry.value = sub_value(&entry.value, &r.value)?;
        }
        out.0.retain(|r| !r.value.is_empty());
        Some(out)
    }

    /// Whether every resource in `other` is available in `self` under the same
    /// name and role.
    pub fn contains(&self, other: &Resources) -> bool {
        self.checked_sub(other).is_some()
    }

    fn normalized(&self) -> Resources {
        self.0.iter().cloned().collect()
    }
}

/// `cpus:4;mem:2048;ports:[31000-32000];disk(eng):100`.
impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
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

// ---- text syntax ----------------------------------------------------------

/// One `name(role):value` segment.
fn parse_segment(segment: &str) -> Result<Resource, String> {
    let (key, value) = segment
        .split_once(':')
        .ok_or("missing ':' between name and value")?;
    if value.contains(':') {
        return Err("more than one ':'".to_string());
    }
    let key = key.trim();
    let (name, role) = match key.find('(') {
        None => (key, UNRESERVED),
        Some(open) => {
            let inner = key[open + 1..]
                .strip_suffix(')')
                .ok_or_else(|| format!("role in {key:?} must be closed by ')'"))?;
            (key[..open].trim(), inner.trim())
        }
    };
    validate_name(name)?;
    validate_role(role)?;
    Ok(Resource {
        name: name.to_string(),
        role: role.to_string(),
        value: parse_value(value.trim())?,
    })
}

fn parse_value(text: &str) -> Result<Value, String> {
    if text.is_empty() {
        Err("missing value".to_string())
    } else if text.starts_with('[') {
        Ok(Value::Ranges(parse_ranges(text)?))
    } else if let Some(inner) = text.strip_prefix('{') {
        let inner = inner
            .strip_suffix('}')
            .ok_or_else(|| format!("set {text:?} must end with '}}'"))?
            .trim();
        let items = if inner.is_empty() {
            Vec::new()
        } else {
            inner.split(',').map(|i| i.trim().to_string()).collect()
        };
        Ok(Value::Set(validated_set(items)?))
    } else {
        let v: f64 = text.parse().map_err(|_| {
            format!("{text:?} is not a number, ranges [begin-end,...] or a set {{a,...}}")
        })?;
        Ok(Value::Scalar(validated_scalar(v)?))
    }
}

/// Ranges text `[31000-32000,33000-34000]` (`[]` is empty), validated and
/// coalesced.
pub(crate) fn parse_ranges(text: &str) -> Result<Vec<Range>, String> {
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| format!("ranges {text:?} must be enclosed in '[' and ']'"))?
        .trim();
    if inner.is_empty() {
        return Ok(Vec::new());
    }
    let mut ranges = Vec::new();
    for piece in inner.split(',').map(str::trim) {
        let (begin, end) = piece
            .split_once('-')
            .ok_or_else(|| format!("range {piece:?} is not of the form begin-end"))?;
        let bound = |t: &str| {
            t.trim()
                .parse::<u64>()
                .map_err(|_| format!("range {piece:?}: {t:?} is not a non-negative integer"))
        };
        ranges.push(Range::new(bound(begin)?, bound(end)?));
    }
    validated_ranges(ranges)
}

/// `[1-2,5-9]` with the given separator (Mesos prints `", "` in JSON).
pub(crate) fn fmt_ranges(ranges: &[Range], separator: &str) -> String {
    let parts: Vec<String> = ranges.iter().map(Range::to_string).collect();
    format!("[{}]", parts.join(separator))
}

// ---- validation -----------------------------------------------------------

/// Names must survive the text syntax: no whitespace, control characters or
/// any of `():;,[]{}`.
fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("resource name is empty".to_string());
    }
    match name
        .chars()
        .find(|&c| is_reserved_char(c) || "[]{},".contains(c))
    {
        Some(c) => Err(format!("resource name {name:?} contains {c:?}")),
        None => Ok(()),
    }
}

fn is_reserved_char(c: char) -> bool {
    c.is_whitespace() || c.is_control() || "():;".contains(c)
}

/// Mesos role rules: `*`, or `/`-separated path components, none of them
/// empty, `.`, `..`, `*` or starting with `-`; no whitespace or control
/// characters (nor `():;`, which the text syntax cannot carry).
fn validate_role(role: &str) -> Result<(), String> {
    if role == UNRESERVED {
        return Ok(());
    }
    if role.is_empty() {
        return Err("role is empty".to_string());
    }
    if role.starts_with('/') || role.ends_with('/') {
        return Err(format!("role {role:?} starts or ends with '/'"));
    }
    if let Some(c) = role.chars().find(|&c| is_reserved_char(c)) {
        return Err(format!("role {role:?} contains {c:?}"));
    }
    for component in role.split('/') {
        match component {
            "" => return Err(format!("role {role:?} contains '//'")),
            "." | ".." | "*" => {
                return Err(format!("role {role:?} has a {component:?} component"));
            }
            c if c.starts_with('-') => {
                return Err(format!("role {role:?} has a component starting with '-'"));
            }
            _ => {}
        }
    }
    Ok(())
}

fn validated_scalar(v: f64) -> Result<f64, String> {
    if !v.is_finite() {
        Err(format!("scalar {v} is not finite"))
    } else if v < 0.0 {
        Err(format!("scalar {v} is negative"))
    } else {
        Ok(round3(v))
    }
}

/// Rejects a range with begin > end and overlapping ranges; returns them
/// sorted and coalesced (adjacent ranges merge, as in Mesos).
pub(crate) fn validated_ranges(ranges: Vec<Range>) -> Result<Vec<Range>, String> {
    if let Some(r) = ranges.iter().find(|r| r.begin > r.end) {
        return Err(format!("range {r} has begin greater than end"));
    }
    let mut sorted = ranges;
    sorted.sort();
    if let Some(w) = sorted.windows(2).find(|w| w[1].begin <= w[0].end) {
        return Err(format!("ranges {} and {} overlap", w[0], w[1]));
    }
    Ok(coalesce(sorted))
}

fn validated_set(items: Vec<String>) -> Result<Vec<String>, String> {
    for (i, item) in items.iter().enumerate() {
        if item.is_empty() {
            return Err("set has an empty item".to_string());
        }
        if let Some(c) = item
            .chars()
            .find(|&c| is_reserved_char(c) || "[]{},".contains(c))
        {
            return Err(format!("set item {item:?} contains {c:?}"));
        }
        if items[..i].contains(item) {
            return Err(format!("set item {item:?} appears twice"));
        }
    }
    Ok(items)
}

/// Merges individually valid resources, rejecting what cannot describe one
/// machine: a name with two types, or ranges or set items claimed twice (in
/// any role). Scalars of the same name and role add up.
fn assemble(raw: Vec<Resource>, input: &str) -> Result<Resources, ResourcesError> {
    let mut out = Resources::new();
    for r in raw {
        for e in out.0.iter().filter(|e| e.name == r.name) {
            let reason = match (&e.value, &r.value) {
                (a, b) if !same_kind(a, b) => Some(format!(
                    "resource {} is both {} and {}",
                    r.name,
                    a.type_name(),
                    b.type_name()
                )),
                (Value::Ranges(a), Value::Ranges(b)) => first_overlap(a, b)
                    .map(|(x, y)| format!("{} ranges {x} and {y} overlap", r.name)),
                (Value::Set(a), Value::Set(b)) => b
                    .iter()
                    .find(|i| a.contains(i))
                    .map(|i| format!("{} set item {i:?} appears twice", r.name)),
                _ => None,
            };
            if let Some(reason) = reason {
                return Err(invalid(input, reason));
            }
        }
        out.push(r);
    }
    Ok(out)
}

// ---- v1 JSON --------------------------------------------------------------

fn from_json(json: &Json, input: &str) -> Result<Resources, ResourcesError> {
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

/// The last `reservations` entry (refinement format), else `role`, else `*`.
/// An empty string counts as unset (mesos-go sends zero values).
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

fn resource_to_json(r: &Resource) -> Json {
    let mut obj = Map::new();
    obj.insert("name".into(), json!(r.name));
    obj.insert("type".into(), json!(r.value.type_name()));
    match &r.value {
        Value::Scalar(v) => obj.insert("scalar".into(), json!({ "value": v })),
        Value::Ranges(ranges) => obj.insert("ranges".into(), ranges_to_json(ranges)),
        Value::Set(items) => obj.insert("set".into(), json!({ "item": items })),
    };
    obj.insert("role".into(), json!(r.role));
    if r.role != UNRESERVED {
        obj.insert(
            "reservations".into(),
            json!([{ "type": "STATIC", "role": r.role }]),
        );
    }
    Json::Object(obj)
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

pub(crate) fn ranges_to_json(ranges: &[Range]) -> Json {
    let list: Vec<Json> = ranges
        .iter()
        .map(|r| json!({ "begin": r.begin, "end": r.end }))
        .collect();
    json!({ "range": list })
}

// ---- arithmetic -----------------------------------------------------------

/// Mesos fixed point: three decimal digits (and no negative zero).
pub(crate) fn round3(v: f64) -> f64 {
    let r = (v * 1000.0).round() / 1000.0;
    if r == 0.0 { 0.0 } else { r }
}

fn same_kind(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// Sorts and merges overlapping or adjacent ranges.
fn coalesce(mut ranges: Vec<Range>) -> Vec<Range> {
    ranges.sort();
    let mut out: Vec<Range> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.begin <= last.end.saturating_add(1) => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

fn first_overlap(a: &[Range], b: &[Range]) -> Option<(Range, Range)> {
    a.iter()
        .flat_map(|x| b.iter().map(move |y| (*x, *y)))
        .find(|(x, y)| x.begin <= y.end && y.begin <= x.end)
}

/// `a += b` for values of the same kind (others are left alone).
fn add_value(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Scalar(x), Value::Scalar(y)) => *x = round3(*x + *y),
        (Value::Ranges(x), Value::Ranges(y)) => {
            x.extend_from_slice(y);
            *x = coalesce(std::mem::take(x));
        }
        (Value::Set(x), Value::Set(y)) => {
            for item in y {
                if !x.contains(item) {
                    x.push(item.clone());
                }
            }
        }
        _ => {}
    }
}

/// `a - b`, or `None` when `b` is not contained in `a`. Both normalized.
fn sub_value(a: &Value, b: &Value) -> Option<Value> {
    match (a, b) {
        (Value::Scalar(x), Value::Scalar(y)) => {
            let d = round3(x - y);
            (d >= 0.0).then_some(Value::Scalar(d))
        }
        (Value::Ranges(x), Value::Ranges(y)) => {
            let covered = y
                .iter()
                .all(|r| x.iter().any(|o| o.begin <= r.begin && r.end <= o.end));
            covered.then(|| Value::Ranges(ranges_minus(x, y)))
        }
        (Value::Set(x), Value::Set(y)) => y
            .iter()
            .all(|i| x.contains(i))
            .then(|| Value::Set(x.iter().filter(|i| !y.contains(i)).cloned().collect())),
        _ => None,
    }
}

/// Interval-set difference of two sorted, coalesced range lists.
fn ranges_minus(a: &[Range], cuts: &[Range]) -> Vec<Range> {
    let mut out = Vec::new();
    for r in a {
        let mut begin = r.begin;
        let mut rest = true;
        for cut in cuts.iter().filter(|c| c.end >= r.begin && c.begin <= r.end) {
            if cut.begin > begin {
                out.push(Range::new(begin, cut.begin - 1));
            }
            if cut.end >= r.end {
                rest = false;
                break;
            }
            begin = cut.end + 1;
        }
        if rest {
            out.push(Range::new(begin, r.end));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Resources {
        Resources::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn reason(text: &str) -> String {
        match Resources::parse(text) {
            Err(ResourcesError::Invalid { input, reason }) => {
                assert_eq!(input, text);
                reason
            }
            Ok(r) => panic!("{text:?} parsed as {r:?}"),
        }
    }

    fn ports(ranges: &[(u64, u64)]) -> Value {
        Value::Ranges(ranges.iter().map(|&(b, e)| Range::new(b, e)).collect())
    }

    fn set(items: &[&str]) -> Value {
        Value::Set(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn parses_the_reference_flag_example() {
        let r = parse(
            "cpus:24;mem:24576;disk:409600;ports:[21000-24000,30000-34000];bugs(debug_role):{a,b,c}",
        );
        assert_eq!(r.0.len(), 5);
        assert_eq!(r.scalar("cpus"), 24.0);
        assert_eq!(r.scalar("mem"), 24576.0);
        assert_eq!(r.scalar("disk"), 409600.0);
        assert_eq!(r.0[3].value, ports(&[(21000, 24000), (30000, 34000)]));
        assert_eq!(r.0[3].role, "*");
        assert_eq!(r.0[4].name, "bugs");
        assert_eq!(r.0[4].role, "debug_role");
        assert_eq!(r.0[4].value, set(&["a", "b", "c"]));
    }

    #[test]
    fn tolerates_whitespace_empty_segments_and_newlines() {
        let r = parse("  cpus : 4 ;; mem(eng) :2048;\n ports: [ 1-2 , 5 - 9 ];  ");
        assert_eq!(r.to_string(), "cpus:4;mem(eng):2048;ports:[1-2,5-9]");
        assert!(parse("").0.is_empty());
        assert!(parse(" ; ;").0.is_empty());
    }

    #[test]
    fn rounds_scalars_to_three_decimals() {
        let r = parse("cpus:0.12345;mem:1.0005");
        assert_eq!(r.scalar("cpus"), 0.123);
        assert_eq!(r.scalar("mem"), 1.001);
        assert_eq!(parse("cpus:0.0001").0[0].value, Value::Scalar(0.0));
    }

    #[test]
    fn merges_repeated_names_per_role_and_coalesces_ranges() {
        let r =
            parse("cpus:1;cpus:2.5;cpus(eng):1;ports:[1-2,3-4];ports:[10-10];bugs:{a};bugs:{b}");
        assert_eq!(
            r.to_string(),
            "cpus:3.5;cpus(eng):1;ports:[1-4,10-10];bugs:{a,b}"
        );
        assert_eq!(r.scalar("cpus"), 4.5);
    }

    #[test]
    fn accepts_single_value_ranges_and_empty_containers() {
        assert_eq!(parse("ports:[80-80]").0[0].value, ports(&[(80, 80)]));
        assert_eq!(parse("ports:[]").0[0].value, ports(&[]));
        assert_eq!(parse("bugs:{}").0[0].value, set(&[]));
        assert_eq!(
            parse("x:[0-18446744073709551615]").0[0].value,
            ports(&[(0, u64::MAX)])
        );
    }

    #[test]
    fn rejects_bad_values() {
        assert!(reason("cpus:-1").contains("scalar -1 is negative"));
        assert!(reason("cpus:inf").contains("not finite"));
        assert!(reason("cpus:NaN").contains("not finite"));
        assert!(reason("cpus:1e999").contains("not finite"));
        assert!(reason("cpus:four").contains("\"four\" is not a number"));
        assert!(reason("cpus:").contains("missing value"));
        assert!(reason("ports:[5-1]").contains("range 5-1 has begin greater than end"));
        assert!(reason("ports:[80]").contains("range \"80\" is not of the form begin-end"));
        assert!(reason("ports:[1-2,]").contains("range \"\" is not of the form"));
        assert!(reason("ports:[-1-5]").contains("\"\" is not a non-negative integer"));
        assert!(reason("ports:[a-5]").contains("\"a\" is not a non-negative integer"));
        assert!(reason("ports:[1-5").contains("must be enclosed in '[' and ']'"));
        assert!(reason("ports:[1-5]x").contains("must be enclosed"));
        assert!(reason("ports:[1-10,5-15]").contains("ranges 1-10 and 5-15 overlap"));
        assert!(reason("bugs:{a,b").contains("must end with '}'"));
        assert!(reason("bugs:{a,,b}").contains("empty item"));
        assert!(reason("bugs:{a,a}").contains("\"a\" appears twice"));
        assert!(reason("bugs:{a b}").contains("contains ' '"));
    }

    #[test]
    fn rejects_bad_structure() {
        assert!(reason("cpus").contains("missing ':'"));
        assert!(reason("cpus:4:5").contains("more than one ':'"));
        assert!(reason(":4").contains("resource name is empty"));
        assert!(reason("cp us:4").contains("contains ' '"));
        assert!(reason("cpus(eng:4").contains("must be closed by ')'"));
        assert!(reason("cpus)eng:4").contains("contains ')'"));
        let r = reason("cpus:4;mem:x");
        assert!(r.starts_with("\"mem:x\": "), "{r}");
    }

    #[test]
    fn rejects_conflicts_between_segments() {
        assert!(reason("ports:[1-10];ports:[5-15]").contains("ports ranges 1-10 and 5-15 overlap"));
        assert!(reason("ports:[1-10];ports(eng):[10-12]").contains("overlap"));
        assert!(reason("cpus:1;cpus:[1-2]").contains("resource cpus is both SCALAR and RANGES"));
        assert!(reason("cpus:1;cpus(eng):{a}").contains("both SCALAR and SET"));
        assert!(reason("bugs:{a,b};bugs(x):{b}").contains("bugs set item \"b\" appears twice"));
    }

    #[test]
    fn validates_roles_like_mesos() {
        for good in ["eng", "eng/dev", "a.b", "a-b", "x_1", "*"] {
            assert_eq!(parse(&format!("cpus({good}):1")).0[0].role, good);
        }
        let cases = [
            ("cpus():1", "role is empty"),
            ("cpus(.):1", "\".\" component"),
            ("cpus(..):1", "\"..\" component"),
            ("cpus(a/../b):1", "\"..\" component"),
            ("cpus(a/*):1", "\"*\" component"),
            ("cpus(-eng):1", "starting with '-'"),
            ("cpus(a/-b):1", "starting with '-'"),
            ("cpus(/eng):1", "starts or ends with '/'"),
            ("cpus(eng/):1", "starts or ends with '/'"),
            ("cpus(a//b):1", "contains '//'"),
            ("cpus(e ng):1", "contains ' '"),
            ("cpus(e\tng):1", "contains '\\t'"),
        ];
        for (text, want) in cases {
            let got = reason(text);
            assert!(got.contains(want), "{text}: {got}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "cpus:4;mem:2048;ports:[31000-32000]",
            "disk(eng):100",
            "cpus:0.5;gpus:0;bugs(debug_role):{a,b,c};ports:[21000-24000,30000-34000]",
            "cpus(eng/dev):1.125;mem(eng/dev):1;x:[0-18446744073709551615];s:{}",
        ] {
            let r = parse(text);
            assert_eq!(r.to_string(), text);
            assert_eq!(parse(&r.to_string()), r);
        }
        let r = parse(" cpus : 1.0 ; ports:[3-4,1-2] ;");
        assert_eq!(r.to_string(), "cpus:1;ports:[1-4]");
        assert_eq!(parse(&r.to_string()), r);
    }

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

    #[test]
    fn scalar_arithmetic_is_fixed_point() {
        let mut r = parse("cpus:0.1");
        r.add(&parse("cpus:0.2"));
        assert_eq!(r.scalar("cpus"), 0.3);
        let left = r.checked_sub(&parse("cpus:0.1")).unwrap();
        assert_eq!(left.scalar("cpus"), 0.2);
        let none = left.checked_sub(&parse("cpus:0.2")).unwrap();
        assert!(none.0.is_empty(), "{none:?}");
        assert_eq!(left.checked_sub(&parse("cpus:0.201")), None);
        let mut sum = Resources::new();
        for _ in 0..10 {
            sum.add(&parse("cpus:0.1"));
        }
        assert_eq!(sum.scalar("cpus"), 1.0);
    }

    #[test]
    fn subtracting_ranges_splits_them() {
        let total = parse("ports:[31000-32000]");
        let left = total.checked_sub(&parse("ports:[31500-31500]")).unwrap();
        assert_eq!(left.to_string(), "ports:[31000-31499,31501-32000]");
        let left = left
            .checked_sub(&parse("ports:[31000-31010,31990-32000]"))
            .unwrap();
        assert_eq!(left.to_string(), "ports:[31011-31499,31501-31989]");
        assert_eq!(left.checked_sub(&parse("ports:[31499-31501]")), None);
        assert_eq!(left.checked_sub(&parse("ports:[1-1]")), None);
        let all = left.checked_sub(&left).unwrap();
        assert!(all.0.is_empty());

        let mut back = all;
        back.add(&parse("ports:[31011-31499]"));
        back.add(&parse("ports:[31500-31500,31501-31989]"));
        assert_eq!(back.to_string(), "ports:[31011-31989]");

        let edge = parse("x:[0-18446744073709551615]");
        let cut = edge.checked_sub(&parse("x:[0-0,18446744073709551615-18446744073709551615]"));
        assert_eq!(cut.unwrap().to_string(), "x:[1-18446744073709551614]");
    }

    #[test]
    fn set_arithmetic_and_roles() {
        let total = parse("bugs:{a,b,c};cpus:4;cpus(eng):2");
        let left = total.checked_sub(&parse("bugs:{b};cpus(eng):2")).unwrap();
        assert_eq!(left.to_string(), "bugs:{a,c};cpus:4");
        assert_eq!(left.checked_sub(&parse("bugs:{b}")), None);
        // Reserved resources are not interchangeable with unreserved ones.
        assert!(!left.contains(&parse("cpus(eng):1")));
        assert!(!total.contains(&parse("cpus:5")));
        assert!(total.contains(&parse("cpus:4;cpus(eng):2;bugs:{c,a}")));
        assert!(total.contains(&Resources::new()));
        assert!(total.contains(&parse("gpus:0;ports:[]")));
        assert!(!total.contains(&parse("gpus:1")));
        // A same-named resource of another type is not a match.
        assert!(!total.contains(&Resources(vec![Resource::ranges(
            "cpus",
            vec![Range::new(1, 1)]
        )])));

        let mut u = parse("bugs:{a}");
        u.add(&parse("bugs:{b,a};gpus:0"));
        assert_eq!(u.to_string(), "bugs:{a,b}");
    }
}
