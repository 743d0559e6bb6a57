//! The Mesos resource model: `cpus`, `mem`, `disk`, `ports`, `gpus`, ...
//!
//! SKELETON: types and signatures are fixed (other crates code against them);
//! the bodies are being written.

use std::fmt;

use serde_json::Value as Json;

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
    /// Parses the agent's `--resources` flag: Mesos text syntax
    /// (`cpus:4;mem:2048;ports:[31000-32000];disk(role):100`) or a JSON array
    /// of v1 Resource objects.
    pub fn parse(_text: &str) -> Result<Self, ResourcesError> {
        unimplemented!()
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        unimplemented!()
    }
}

#[allow(dead_code)]
fn _json(_: Json) {}
