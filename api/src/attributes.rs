//! Agent attributes (`rack:r1;zone:a;level:10;keys:[1000-1500]`).
//!
//! The `--attributes` text ([`Attributes::parse`] and `Display`), Mesos v1
//! `Attribute` JSON ([`Attributes::from_v1_json`], [`Attributes::to_v1_json`])
//! and the legacy `/state` object ([`Attributes::to_legacy_json`]).
//!
//! Names and text values follow the documented Mesos grammar
//! (`text : [a-zA-Z0-9_/.-]`); a value is a scalar when it reads as a number,
//! ranges when it is `[begin-end,...]`, text otherwise. Sets are not allowed.
//! Scalars are rounded to three decimals like resource scalars.

use std::fmt;

use serde_json::Value as Json;

use crate::keyed::{LegacyMap, LegacyValue};
use crate::resources::{self, Range};

#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    Scalar(f64),
    Ranges(Vec<Range>),
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub value: AttributeValue,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attributes(pub Vec<Attribute>);

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AttributesError {
    #[error("invalid attributes {input:?}: {reason}")]
    Invalid { input: String, reason: String },
}

fn invalid(input: &str, reason: impl Into<String>) -> AttributesError {
    AttributesError::Invalid {
        input: input.to_string(),
        reason: reason.into(),
    }
}

impl AttributeValue {
    /// The Mesos `Value.Type` name: `SCALAR`, `RANGES` or `TEXT`.
    pub fn type_name(&self) -> &'static str {
        match self {
            AttributeValue::Scalar(_) => "SCALAR",
            AttributeValue::Ranges(_) => "RANGES",
            AttributeValue::Text(_) => "TEXT",
        }
    }
}

/// The text form: `10`, `[1000-1500]`, `abc`.
impl fmt::Display for AttributeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttributeValue::Scalar(v) => write!(f, "{v}"),
            AttributeValue::Ranges(r) => f.write_str(&resources::fmt_ranges(r, ",")),
            AttributeValue::Text(t) => f.write_str(t),
        }
    }
}

/// `name:value`.
impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.value)
    }
}

impl Attributes {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Parses the agent's `--attributes` flag,
    /// `rack:abc;zone:west;os:centos5;level:10;keys:[1000-1500]`.
    /// Whitespace around tokens and empty segments are ignored.
    pub fn parse(text: &str) -> Result<Self, AttributesError> {
        let mut out = Vec::new();
        for segment in text.split([';', '\n']).map(str::trim) {
            if segment.is_empty() {
                continue;
            }
            let attribute =
                parse_segment(segment).map_err(|e| invalid(text, format!("{segment:?}: {e}")))?;
            out.push(attribute);
        }
        assemble(out, text)
    }

    /// A JSON array of v1 `Attribute` objects (`null` = none). Unknown fields
    /// are ignored, `null` means unset, numbers may be strings.
    pub fn from_v1_json(json: &Json) -> Result<Self, AttributesError> {
        let input = json.to_string();
        let items = match json {
            Json::Null => return Ok(Self::new()),
            Json::Array(items) => items,
            _ => {
                return Err(invalid(
                    &input,
                    "expected a json array of attribute objects",
                ));
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let attribute = attribute_from_json(item)
                .map_err(|e| invalid(&input, format!("attribute {i}: {e}")))?;
            out.push(attribute);
        }
        assemble(out, &input)
    }

    /// `[{"name":"rack","type":"TEXT","text":{"value":"abc"}}, ...]`.
    pub fn to_v1_json(&self) -> Json {
        serde_json::to_value(self.to_v1()).unwrap_or(Json::Array(Vec::new()))
    }

    /// The legacy `/state` form, `{"rack":"abc","level":10.0,"keys":"[1000-1500]"}`
    /// (several ranges print as Mesos does, `"[1-2, 5-9]"`).
    pub fn to_legacy(&self) -> LegacyMap {
        let mut map = LegacyMap::default();
        for a in &self.0 {
            let value = match &a.value {
                AttributeValue::Scalar(v) => LegacyValue::Number(*v),
                AttributeValue::Ranges(r) => LegacyValue::Text(resources::fmt_ranges(r, ", ")),
                AttributeValue::Text(t) => LegacyValue::Text(t.clone()),
            };
            map.0.insert(a.name.clone(), value);
        }
        map
    }

    /// [`Attributes::to_legacy`] as JSON.
    pub fn to_legacy_json(&self) -> Json {
        serde_json::to_value(self.to_legacy()).unwrap_or(Json::Null)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Attribute> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of the attribute `name`, if present.
    pub fn get(&self, name: &str) -> Option<&AttributeValue> {
        self.0.iter().find(|a| a.name == name).map(|a| &a.value)
    }
}

/// `rack:abc;level:10;keys:[1000-1500]`.
impl fmt::Display for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a Attributes {
    type Item = &'a Attribute;
    type IntoIter = std::slice::Iter<'a, Attribute>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

fn parse_segment(segment: &str) -> Result<Attribute, String> {
    let (name, value) = segment
        .split_once(':')
        .ok_or("missing ':' between name and value")?;
    let name = name.trim();
    validate_text("name", name)?;
    Ok(Attribute {
        name: name.to_string(),
        value: parse_value(value.trim())?,
    })
}

fn parse_value(text: &str) -> Result<AttributeValue, String> {
    if text.is_empty() {
        return Err("value is empty".to_string());
    }
    if text.starts_with('{') {
        return Err(format!(
            "sets such as {text:?} are not allowed in attributes"
        ));
    }
    if text.starts_with('[') {
        return Ok(AttributeValue::Ranges(resources::parse_ranges(text)?));
    }
    let numeric = text.chars().any(|c| c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || ".+-eE".contains(c));
    if numeric && let Ok(v) = text.parse::<f64>() {
        return Ok(AttributeValue::Scalar(finite(v)?));
    }
    validate_text("value", text)?;
    Ok(AttributeValue::Text(text.to_string()))
}

fn finite(v: f64) -> Result<f64, String> {
    if v.is_finite() {
        Ok(resources::round3(v))
    } else {
        Err(format!("scalar {v} is not finite"))
    }
}

/// The Mesos grammar for names and text values: `[a-zA-Z0-9_/.-]+`.
fn validate_text(what: &str, text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err(format!("{what} is empty"));
    }
    match text
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "_/.-".contains(c)))
    {
        Some(c) => Err(format!(
            "{what} {text:?} contains {c:?}; only letters, digits, '_', '/', '.' and '-' are allowed"
        )),
        None => Ok(()),
    }
}

fn assemble(list: Vec<Attribute>, input: &str) -> Result<Attributes, AttributesError> {
    for (i, a) in list.iter().enumerate() {
        if list[..i].iter().any(|b| b.name == a.name) {
            return Err(invalid(
                input,
                format!("attribute {:?} appears twice", a.name),
            ));
        }
    }
    Ok(Attributes(list))
}

fn attribute_from_json(item: &Json) -> Result<Attribute, String> {
    let obj = item.as_object().ok_or("not a json object")?;
    let name = resources::str_field(obj, "name")?.ok_or("missing name")?;
    validate_text("name", name)?;
    let value = match resources::str_field(obj, "type")? {
        Some("SCALAR") => AttributeValue::Scalar(finite(resources::scalar_from_json(obj)?)?),
        Some("RANGES") => AttributeValue::Ranges(resources::validated_ranges(
            resources::ranges_from_json(obj)?,
        )?),
        Some("TEXT") => {
            let text = resources::object_field(obj, "text")?.ok_or("missing text")?;
            let value = resources::str_field(text, "value")?.ok_or("text has no value")?;
            validate_text("value", value)?;
            AttributeValue::Text(value.to_string())
        }
        Some("SET") => return Err(format!("{name}: sets are not allowed in attributes")),
        Some(other) => return Err(format!("{name}: unsupported attribute type {other:?}")),
        None => return Err(format!("{name}: missing type")),
    };
    Ok(Attribute {
        name: name.to_string(),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Attributes {
        Attributes::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn reason(text: &str) -> String {
        match Attributes::parse(text) {
            Err(AttributesError::Invalid { input, reason }) => {
                assert_eq!(input, text);
                reason
            }
            Ok(a) => panic!("{text:?} parsed as {a:?}"),
        }
    }

    fn text(t: &str) -> AttributeValue {
        AttributeValue::Text(t.to_string())
    }

    #[test]
    fn parses_the_reference_example() {
        let a = parse("rack:abc;zone:west;os:centos5;level:10;keys:[1000-1500]");
        assert_eq!(a.0.len(), 5);
        assert_eq!(a.get("rack"), Some(&text("abc")));
        assert_eq!(a.get("zone"), Some(&text("west")));
        assert_eq!(a.get("os"), Some(&text("centos5")));
        assert_eq!(a.get("level"), Some(&AttributeValue::Scalar(10.0)));
        assert_eq!(
            a.get("keys"),
            Some(&AttributeValue::Ranges(vec![Range::new(1000, 1500)]))
        );
        assert_eq!(a.get("nope"), None);
        assert_eq!(a.iter().count(), 5);
        assert_eq!((&a).into_iter().count(), 5);
    }

    #[test]
    fn classifies_values() {
        let a =
            parse("a:1.5;b:-2;c:1e3;d:0.12345;e:1.2.3;f:10-20;g:nan;h:inf;i:host-1.example.com");
        let want = [
            AttributeValue::Scalar(1.5),
            AttributeValue::Scalar(-2.0),
            AttributeValue::Scalar(1000.0),
            AttributeValue::Scalar(0.123),
            text("1.2.3"),
            text("10-20"),
            text("nan"),
            text("inf"),
            text("host-1.example.com"),
        ];
        let got: Vec<_> = a.iter().map(|a| a.value.clone()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn tolerates_whitespace_and_empty_segments() {
        let a = parse("  rack : r1 ;; keys: [ 3-4 , 1-2 ] ;\nzone:a;");
        assert_eq!(a.to_string(), "rack:r1;keys:[1-4];zone:a");
        assert!(parse("").is_empty());
        assert!(parse(" ;\n; ").is_empty());
        assert!(!a.is_empty());
    }

    #[test]
    fn rejects_bad_attributes() {
        let cases = [
            ("rack", "missing ':'"),
            (":abc", "name is empty"),
            ("rack:", "value is empty"),
            ("rack: ", "value is empty"),
            ("bugs:{a,b}", "sets such as \"{a,b}\" are not allowed"),
            ("rack:a;rack:b", "attribute \"rack\" appears twice"),
            ("rack:a b", "value \"a b\" contains ' '"),
            ("rack:a:b", "value \"a:b\" contains ':'"),
            ("ra ck:a", "name \"ra ck\" contains ' '"),
            ("r@ck:a", "name \"r@ck\" contains '@'"),
            ("os:ubuntu(22)", "contains '('"),
            ("keys:[5-1]", "range 5-1 has begin greater than end"),
            ("keys:[1-5,3-9]", "ranges 1-5 and 3-9 overlap"),
            ("keys:[80]", "range \"80\" is not of the form begin-end"),
            ("keys:[1-2", "must be enclosed"),
            ("big:1e999", "scalar inf is not finite"),
        ];
        for (input, want) in cases {
            let got = reason(input);
            assert!(got.contains(want), "{input}: {got}");
        }
        assert!(reason("zone:a;rack:x y").starts_with("\"rack:x y\": "));
    }

    #[test]
    fn display_round_trips() {
        for input in [
            "rack:abc;zone:west;os:centos5;level:10;keys:[1000-1500]",
            "ratio:0.25;temp:-4;keys:[1-2,5-9];path:/opt/a_b.c-d",
        ] {
            let a = parse(input);
            assert_eq!(a.to_string(), input);
            assert_eq!(parse(&a.to_string()), a);
        }
    }

    #[test]
    fn emits_v1_json() {
        let a = parse("rack:abc;level:10;keys:[1000-1500]");
        let want = json!([
            {"name":"rack","type":"TEXT","text":{"value":"abc"}},
            {"name":"level","type":"SCALAR","scalar":{"value":10.0}},
            {"name":"keys","type":"RANGES","ranges":{"range":[{"begin":1000,"end":1500}]}},
        ]);
        assert_eq!(a.to_v1_json(), want);
        assert_eq!(Attributes::from_v1_json(&want).unwrap(), a);
        assert_eq!(Attributes::from_v1_json(&want).unwrap().to_v1_json(), want);
        assert_eq!(Attributes::new().to_v1_json(), json!([]));
    }

    #[test]
    fn emits_legacy_json() {
        let a = parse("rack:abc;level:10;keys:[1000-1500]");
        assert_eq!(
            a.to_legacy_json(),
            json!({"rack":"abc","level":10.0,"keys":"[1000-1500]"})
        );
        let a = parse("keys:[1-2,5-9]");
        assert_eq!(a.to_legacy_json(), json!({"keys":"[1-2, 5-9]"}));
        assert_eq!(Attributes::new().to_legacy_json(), json!({}));
    }

    #[test]
    fn reads_v1_json_leniently() {
        let j = json!([
            {"name":"rack","type":"TEXT","text":{"value":"r1"},"scalar":null,"extra":[1]},
            {"name":"level","type":"SCALAR","scalar":{"value":"10.0004"}},
            {"name":"keys","type":"RANGES","ranges":{"range":[{"begin":"1","end":2.0}]}},
            {"name":"none","type":"RANGES","ranges":{"range":null}},
        ]);
        let a = Attributes::from_v1_json(&j).unwrap();
        assert_eq!(a.to_string(), "rack:r1;level:10;keys:[1-2];none:[]");
        assert_eq!(
            Attributes::from_v1_json(&Json::Null).unwrap(),
            Attributes::new()
        );
    }

    #[test]
    fn rejects_bad_v1_json() {
        let cases = [
            (json!({}), "expected a json array"),
            (json!(["rack"]), "attribute 0: not a json object"),
            (json!([{"type":"TEXT"}]), "missing name"),
            (
                json!([{"name":"a b","type":"TEXT"}]),
                "name \"a b\" contains ' '",
            ),
            (json!([{"name":"r"}]), "r: missing type"),
            (
                json!([{"name":"r","type":"SET","set":{"item":["a"]}}]),
                "sets are not allowed",
            ),
            (
                json!([{"name":"r","type":"FOO"}]),
                "unsupported attribute type \"FOO\"",
            ),
            (json!([{"name":"r","type":"TEXT"}]), "missing text"),
            (
                json!([{"name":"r","type":"TEXT","text":{}}]),
                "text has no value",
            ),
            (
                json!([{"name":"r","type":"TEXT","text":{"value":"a;b"}}]),
                "contains ';'",
            ),
            (
                json!([{"name":"r","type":"SCALAR","scalar":{"value":"x"}}]),
                "is not a number",
            ),
            (
                json!([{"name":"r","type":"SCALAR","scalar":{"value":"-Infinity"}}]),
                "not finite",
            ),
            (
                json!([{"name":"r","type":"RANGES","ranges":{"range":[{"begin":4,"end":3}]}}]),
                "begin greater",
            ),
            (
                json!([{"name":"r","type":"TEXT","text":{"value":"a"}},
                    {"name":"r","type":"SCALAR","scalar":{"value":1}}]),
                "\"r\" appears twice",
            ),
        ];
        for (j, want) in cases {
            match Attributes::from_v1_json(&j) {
                Err(AttributesError::Invalid { input, reason }) => {
                    assert_eq!(input, j.to_string());
                    assert!(reason.contains(want), "{j}: {reason}");
                }
                Ok(a) => panic!("{j} parsed as {a:?}"),
            }
        }
    }
}
