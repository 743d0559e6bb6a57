//! `FrameworkID`, `AgentID`, `TaskID`, `OfferID`, `ExecutorID`: the one
//! shape of every Mesos id.

use serde::{Deserialize, Serialize};

/// `FrameworkID`, `AgentID`, `TaskID`, `OfferID`, `ExecutorID`: `{"value": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Id {
    pub value: String,
}

impl Id {
    pub fn new(v: impl Into<String>) -> Self {
        Id { value: v.into() }
    }
}
