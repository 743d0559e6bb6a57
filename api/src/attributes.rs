//! Agent attributes (`rack:r1;zone:a;level:10;keys:[1000-1500]`).
//!
//! SKELETON: types and signatures are fixed; the bodies are being written.

use crate::resources::Range;

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
