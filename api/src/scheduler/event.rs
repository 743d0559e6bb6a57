//! Scheduler events, as the master sends them on a subscription and as a
//! client reads them back: one enum, serialized in Mesos' shape
//! (`{"type": "OFFERS", "offers": {"offers": [...]}}`).

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::mesos::resource::AllocationInfo;
use crate::mesos::{Id, MasterInfo, Resource, TaskStatus};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscribed {
    pub framework_id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_info: Option<MasterInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Address {
    pub hostname: String,
    pub ip: String,
    pub port: u16,
}

/// `URL` of the agent an offer is on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfferUrl {
    pub scheme: String,
    pub address: Address,
    #[serde(default)]
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    pub id: Id,
    pub framework_id: Id,
    pub agent_id: Id,
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<OfferUrl>,
    #[serde(default)]
    pub resources: Vec<Resource>,
    /// v1 `Attribute` objects.
    #[serde(default)]
    pub attributes: Vec<Json>,
    #[serde(default)]
    pub executor_ids: Vec<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_info: Option<AllocationInfo>,
}

/// `{"value": <base64>}`, as Mesos wraps an operation status uuid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uuid {
    pub value: String,
}

/// `OperationStatus`: the outcome of an offer operation that had an id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<Id>,
    /// `OPERATION_FINISHED`, `OPERATION_FAILED`, `OPERATION_ERROR`,
    /// `OPERATION_DROPPED`, `OPERATION_UNKNOWN`, ...
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub converted_resources: Vec<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Id>,
}

/// One scheduler event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Subscribed(Subscribed),
    Offers(Vec<Offer>),
    Rescind {
        offer_id: String,
    },
    Update(TaskStatus),
    UpdateOperationStatus(OperationStatus),
    Failure {
        agent_id: String,
    },
    Error {
        message: String,
    },
    Heartbeat,
    /// Any other event type (MESSAGE, INVERSE_OFFERS, ...), as sent.
    Other(Json),
}

/// The event's `type`.
pub type EventKind = &'static str;

impl Event {
    pub fn kind(&self) -> &str {
        match self {
            Event::Subscribed(_) => "SUBSCRIBED",
            Event::Offers(_) => "OFFERS",
            Event::Rescind { .. } => "RESCIND",
            Event::Update(_) => "UPDATE",
            Event::UpdateOperationStatus(_) => "UPDATE_OPERATION_STATUS",
            Event::Failure { .. } => "FAILURE",
            Event::Error { .. } => "ERROR",
            Event::Heartbeat => "HEARTBEAT",
            Event::Other(v) => v.get("type").and_then(Json::as_str).unwrap_or("UNKNOWN"),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct OffersBody {
    #[serde(default)]
    offers: Vec<Offer>,
}

#[derive(Serialize, Deserialize)]
struct RescindBody {
    offer_id: Id,
}

#[derive(Serialize, Deserialize)]
struct UpdateBody {
    status: TaskStatus,
}

#[derive(Serialize, Deserialize)]
struct OperationBody {
    status: OperationStatus,
}

#[derive(Serialize, Deserialize)]
struct FailureBody {
    agent_id: Id,
}

#[derive(Serialize, Deserialize)]
struct ErrorBody {
    message: String,
}

/// The wire form: the type and the one body it names.
#[derive(Serialize, Deserialize)]
struct Wire {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subscribed: Option<Subscribed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    offers: Option<OffersBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rescind: Option<RescindBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    update: Option<UpdateBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    update_operation_status: Option<OperationBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure: Option<FailureBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
}

impl Wire {
    fn of(kind: &str) -> Wire {
        Wire {
            kind: kind.to_string(),
            subscribed: None,
            offers: None,
            rescind: None,
            update: None,
            update_operation_status: None,
            failure: None,
            error: None,
        }
    }
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut w = Wire::of(self.kind());
        match self {
            Event::Subscribed(x) => w.subscribed = Some(x.clone()),
            Event::Offers(offers) => {
                w.offers = Some(OffersBody {
                    offers: offers.clone(),
                })
            }
            Event::Rescind { offer_id } => {
                w.rescind = Some(RescindBody {
                    offer_id: Id::new(offer_id),
                })
            }
            Event::Update(status) => {
                w.update = Some(UpdateBody {
                    status: status.clone(),
                })
            }
            Event::UpdateOperationStatus(status) => {
                w.update_operation_status = Some(OperationBody {
                    status: status.clone(),
                })
            }
            Event::Failure { agent_id } => {
                w.failure = Some(FailureBody {
                    agent_id: Id::new(agent_id),
                })
            }
            Event::Error { message } => {
                w.error = Some(ErrorBody {
                    message: message.clone(),
                })
            }
            Event::Heartbeat => {}
            Event::Other(v) => return v.serialize(s),
        }
        w.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut v = Json::deserialize(d)?;
        crate::mesos::strip_nulls(&mut v);
        let kind = v
            .get("type")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string();
        let known = [
            "SUBSCRIBED",
            "OFFERS",
            "RESCIND",
            "UPDATE",
            "UPDATE_OPERATION_STATUS",
            "FAILURE",
            "ERROR",
            "HEARTBEAT",
        ];
        if !known.contains(&kind.as_str()) {
            return Ok(Event::Other(v));
        }
        let w: Wire = serde_json::from_value(v).map_err(D::Error::custom)?;
        let missing = || D::Error::custom(format!("{kind} event without its body"));
        Ok(match kind.as_str() {
            "SUBSCRIBED" => Event::Subscribed(w.subscribed.ok_or_else(missing)?),
            "OFFERS" => Event::Offers(w.offers.map(|o| o.offers).unwrap_or_default()),
            "RESCIND" => Event::Rescind {
                offer_id: w.rescind.ok_or_else(missing)?.offer_id.value,
            },
            "UPDATE" => Event::Update(w.update.ok_or_else(missing)?.status),
            "UPDATE_OPERATION_STATUS" => {
                Event::UpdateOperationStatus(w.update_operation_status.ok_or_else(missing)?.status)
            }
            "FAILURE" => Event::Failure {
                agent_id: w.failure.ok_or_else(missing)?.agent_id.value,
            },
            "ERROR" => Event::Error {
                message: w.error.ok_or_else(missing)?.message,
            },
            _ => Event::Heartbeat,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesos::TaskState;
    use serde_json::json;

    #[test]
    fn serializes_in_mesos_shape_and_reads_back() {
        let cases = [
            (Event::Heartbeat, json!({"type": "HEARTBEAT"})),
            (
                Event::Rescind {
                    offer_id: "o1".into(),
                },
                json!({"type": "RESCIND", "rescind": {"offer_id": {"value": "o1"}}}),
            ),
            (
                Event::Failure {
                    agent_id: "a".into(),
                },
                json!({"type": "FAILURE", "failure": {"agent_id": {"value": "a"}}}),
            ),
            (
                Event::Error {
                    message: "gone".into(),
                },
                json!({"type": "ERROR", "error": {"message": "gone"}}),
            ),
            (
                Event::Update(TaskStatus::new("t", TaskState::TASK_RUNNING)),
                json!({"type": "UPDATE", "update": {"status": {"task_id": {"value": "t"}, "state": "TASK_RUNNING"}}}),
            ),
        ];
        for (event, want) in cases {
            assert_eq!(serde_json::to_value(&event).unwrap(), want);
            assert_eq!(serde_json::from_value::<Event>(want).unwrap(), event);
        }
        let other = json!({"type": "INVERSE_OFFERS", "inverse_offers": {}});
        let e: Event = serde_json::from_value(other.clone()).unwrap();
        assert_eq!(e.kind(), "INVERSE_OFFERS");
        assert_eq!(serde_json::to_value(&e).unwrap(), other);
    }
}
