//! Resources and attributes keyed by name, as the legacy endpoints and
//! Keel's own API show them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One value of a legacy resource or attribute object: a number (scalars)
/// or Mesos' text form (`"[31000-32000]"`, `"{a, b}"`, text attributes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LegacyValue {
    Number(f64),
    Text(String),
}

/// `{"cpus": 2.0, "mem": 1024.0, "ports": "[31000-32000]"}`: resources
/// ([`crate::resources::Resources::to_legacy`]) or attributes
/// ([`crate::attributes::Attributes::to_legacy`]) keyed by name.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LegacyMap(pub BTreeMap<String, LegacyValue>);

impl LegacyMap {
    pub fn get(&self, name: &str) -> Option<&LegacyValue> {
        self.0.get(name)
    }

    /// The number under `name`; 0 when absent or not a number.
    pub fn scalar(&self, name: &str) -> f64 {
        match self.0.get(name) {
            Some(LegacyValue::Number(v)) => *v,
            _ => 0.0,
        }
    }

    /// The text under `name` (numbers as they print).
    pub fn text(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| match v {
            LegacyValue::Number(n) => n.to_string(),
            LegacyValue::Text(t) => t.clone(),
        })
    }
}
