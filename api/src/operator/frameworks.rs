//! `GET_FRAMEWORKS`, and the `Offer` message (the same in the scheduler
//! API's `OFFERS` event).

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::master::Address;
use crate::mesos::{FrameworkInfo, Id, Nanos};
use crate::resources::v1::{AllocationInfo, Attribute, Resource};

/// `URL`: where an offer's agent serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Url {
    pub scheme: String,
    pub address: Address,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// `Offer`: one agent's resources for one role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    pub id: Id,
    pub framework_id: Id,
    pub agent_id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Url>,
    #[serde(default)]
    pub resources: Vec<Resource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<Attribute>,
    /// Executors of the framework already on the agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub executor_ids: Vec<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_info: Option<AllocationInfo>,
    /// Pass-through `DomainInfo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<Json>,
    /// When the agent's machine is scheduled for maintenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailability: Option<super::Unavailability>,
}

impl Offer {
    /// The sum of the scalar resource `name` in the offer.
    pub fn scalar(&self, name: &str) -> f64 {
        self.resources
            .iter()
            .filter(|r| r.name == name)
            .map(Resource::scalar_value)
            .sum()
    }

    /// The role the offer is for (`allocation_info.role`), `*` if unset.
    pub fn role(&self) -> &str {
        self.allocation_info
            .as_ref()
            .and_then(|a| a.role.as_deref())
            .unwrap_or("*")
    }
}

/// One entry of `get_frameworks.frameworks` (or `completed_frameworks`,
/// which carry no offers and resources).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Framework {
    pub framework_info: FrameworkInfo,
    pub active: bool,
    pub connected: bool,
    pub recovered: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_time: Option<Nanos>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reregistered_time: Option<Nanos>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unregistered_time: Option<Nanos>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offers: Option<Vec<Offer>>,
    /// Pass-through `InverseOffer`s (maintenance; Keel sends none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inverse_offers: Option<Vec<Json>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated_resources: Option<Vec<Resource>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_resources: Option<Vec<Resource>>,
}

impl Framework {
    /// The framework's id (empty if the master did not say).
    pub fn id(&self) -> &str {
        self.framework_info
            .id
            .as_ref()
            .map_or("", |i| i.value.as_str())
    }

    /// Resources its tasks use.
    pub fn allocated(&self) -> &[Resource] {
        self.allocated_resources.as_deref().unwrap_or_default()
    }

    /// Its outstanding offers.
    pub fn offers(&self) -> &[Offer] {
        self.offers.as_deref().unwrap_or_default()
    }
}

/// `get_frameworks`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GetFrameworks {
    #[serde(default)]
    pub frameworks: Vec<Framework>,
    #[serde(default)]
    pub completed_frameworks: Vec<Framework>,
}
