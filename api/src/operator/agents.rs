//! `GET_AGENTS`: the registered agents with their `AgentInfo`.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::mesos::{Capability, Id, Nanos};
use crate::resources::v1::{Attribute, Resource};

/// `AgentInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default)]
    pub resources: Vec<Resource>,
    #[serde(default)]
    pub attributes: Vec<Attribute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Id>,
}

/// One entry of `get_agents.agents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    pub agent_info: AgentInfo,
    pub active: bool,
    #[serde(default)]
    pub deactivated: bool,
    pub version: String,
    /// `slave(1)@ip:port`: where the agent's HTTP API is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_time: Option<Nanos>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reregistered_time: Option<Nanos>,
    /// Everything the agent has, persistent volumes included.
    #[serde(default)]
    pub total_resources: Vec<Resource>,
    #[serde(default)]
    pub allocated_resources: Vec<Resource>,
    #[serde(default)]
    pub offered_resources: Vec<Resource>,
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Resource providers' objects (Keel has none).
    #[serde(default)]
    pub resource_providers: Vec<Json>,
    /// The agent's drain (DRAIN_AGENT), while it drains or is drained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_info: Option<super::DrainInfo>,
}

impl Agent {
    /// The agent's id (empty if the master did not say).
    pub fn id(&self) -> &str {
        self.agent_info.id.as_ref().map_or("", |i| i.value.as_str())
    }

    /// `ip:port` of the agent's HTTP API, from its `pid`.
    pub fn address(&self) -> Option<&str> {
        let (_, addr) = self.pid.as_deref()?.split_once('@')?;
        (!addr.is_empty()).then_some(addr)
    }
}

/// `get_agents`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GetAgents {
    #[serde(default)]
    pub agents: Vec<Agent>,
    #[serde(default)]
    pub recovered_agents: Vec<AgentInfo>,
}
