//! Mesos v1 JSON messages, parsed the way Mesos' stout parser does: `null`
//! means unset (everywhere, also in lists), unknown fields are ignored,
//! numbers may arrive as strings, enums travel by name, `bytes` as base64.
//! Emission omits unset fields.
//!
//! - [`types`]: ids, TaskInfo, CommandInfo, TaskStatus, FrameworkInfo, ...
//! - [`container`], [`health`], [`labels`]: typed forms of parts of a
//!   TaskInfo that the agent interprets (`TaskInfo` itself keeps them as
//!   sent).
//! - [`lenient`]: the number-or-string deserializers used by those types.
//! - [`bounded`]: the same rules read straight from a peer's bytes, within
//!   limits (depth, values, items per list).

pub mod bounded;
pub mod container;
pub mod health;
pub mod labels;
pub use crate::lenient;
pub mod types;

pub use crate::resources::v1::Resource;
pub use container::{
    ContainerId, ContainerInfo, ContainerStatus, IpAddress, NetworkInfo, PortMapping,
};
pub use health::{HealthCheck, HttpCheckInfo, TcpCheckInfo};
pub use labels::{Label, Labels};
pub use types::*;

use serde::de::DeserializeOwned;
use serde_json::Value as Json;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MesosJsonError {
    /// Message text follows Mesos (`Missing required fields: name`).
    #[error("{0}")]
    Invalid(String),
}

/// Removes every `null` (object members and list items), recursively.
pub fn strip_nulls(v: &mut Json) {
    match v {
        Json::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Json::Array(items) => {
            items.retain(|v| !v.is_null());
            items.iter_mut().for_each(strip_nulls);
        }
        _ => {}
    }
}

/// Parses a Mesos v1 JSON message into `T`.
pub fn parse<T: DeserializeOwned>(mut json: Json) -> Result<T, MesosJsonError> {
    strip_nulls(&mut json);
    serde_json::from_value(json).map_err(|e| MesosJsonError::Invalid(describe(&e.to_string())))
}

/// Parses Mesos v1 JSON text into `T` (JSON syntax errors included).
pub fn parse_str<T: DeserializeOwned>(text: &str) -> Result<T, MesosJsonError> {
    let json: Json =
        serde_json::from_str(text).map_err(|e| MesosJsonError::Invalid(e.to_string()))?;
    parse(json)
}

/// Turns serde's wording into Mesos' where Mesos has one.
fn describe(serde_msg: &str) -> String {
    if let Some(rest) = serde_msg.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return format!("Missing required fields: {field}");
    }
    serde_msg.to_string()
}

/// Standard base64 (with padding), as Mesos encodes `bytes`.
pub fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes base64 (padding optional); `None` when the text is not base64.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(text.trim().trim_end_matches('='))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nulls_are_unset_everywhere() {
        let mut v = json!({"a": null, "b": [null, 1, {"c": null}], "d": {"e": null}});
        strip_nulls(&mut v);
        assert_eq!(v, json!({"b": [1, {}], "d": {}}));
    }

    #[test]
    fn missing_fields_use_mesos_wording() {
        let r: Result<Id, _> = parse(json!({}));
        assert_eq!(
            r,
            Err(MesosJsonError::Invalid(
                "Missing required fields: value".into()
            ))
        );
    }

    #[test]
    fn text_is_parsed_the_same_way() {
        let id: Id = parse_str(r#"{"value": "x", "other": null}"#).unwrap();
        assert_eq!(id.value, "x");
        assert!(parse_str::<Id>("{").is_err());
        assert_eq!(
            parse_str::<Id>("{}").unwrap_err().to_string(),
            "Missing required fields: value"
        );
    }

    #[test]
    fn base64_round_trips() {
        for len in 0..40u8 {
            let data: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37)).collect();
            let text = base64_encode(&data);
            assert_eq!(text.len() % 4, 0);
            assert_eq!(base64_decode(&text).unwrap(), data);
        }
        assert_eq!(base64_encode(b"hello"), "aGVsbG8=");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("a$=="), None);
        assert_eq!(base64_decode("a"), None);
    }
}
