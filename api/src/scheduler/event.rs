//! Scheduler events, as the master sends them on a subscription and as a
//! client reads them back: one enum, serialized in Mesos' shape
//! (`{"type": "OFFERS", "offers": {"offers": [...]}}`).

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::mesos::{Id, TaskStatus};
use crate::operator::maintenance::InverseOffer;
use crate::operator::{MasterInfo, Offer};
use crate::resources::v1::Resource;

/// `subscribed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscribed {
    pub framework_id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_info: Option<MasterInfo>,
}

/// `failure`: an agent was lost (no executor), or an executor ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
}

/// `message`: data from an executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub agent_id: Id,
    pub executor_id: Id,
    /// base64.
    #[serde(default)]
    pub data: String,
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
        offer_id: Id,
    },
    /// Maintenance: the master asks for agents back.
    InverseOffers(Vec<InverseOffer>),
    RescindInverseOffer {
        inverse_offer_id: Id,
    },
    Update(TaskStatus),
    UpdateOperationStatus(OperationStatus),
    Message(Message),
    Failure(Failure),
    /// The master ends the subscription (`error.message`).
    Error(String),
    Heartbeat,
    /// Any other event type, as sent.
    Other(Json),
}

/// The event's `type`.
pub type EventKind = &'static str;

impl Event {
    /// The event's `type`, e.g. `OFFERS`.
    pub fn kind(&self) -> &str {
        match self {
            Event::Subscribed(_) => "SUBSCRIBED",
            Event::Offers(_) => "OFFERS",
            Event::Rescind { .. } => "RESCIND",
            Event::InverseOffers(_) => "INVERSE_OFFERS",
            Event::RescindInverseOffer { .. } => "RESCIND_INVERSE_OFFER",
            Event::Update(_) => "UPDATE",
            Event::UpdateOperationStatus(_) => "UPDATE_OPERATION_STATUS",
            Event::Message(_) => "MESSAGE",
            Event::Failure(_) => "FAILURE",
            Event::Error(_) => "ERROR",
            Event::Heartbeat => "HEARTBEAT",
            Event::Other(v) => v.get("type").and_then(Json::as_str).unwrap_or("UNKNOWN"),
        }
    }

    /// Reads one record of the stream (Mesos' JSON rules: nulls unset).
    pub fn from_json(event: Json) -> Result<Event, serde_json::Error> {
        serde_json::from_value(event)
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
struct InverseOffersBody {
    #[serde(default)]
    inverse_offers: Vec<InverseOffer>,
}

#[derive(Serialize, Deserialize)]
struct RescindInverseBody {
    inverse_offer_id: Id,
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
struct ErrorBody {
    #[serde(default)]
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
    inverse_offers: Option<InverseOffersBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rescind_inverse_offer: Option<RescindInverseBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    update: Option<UpdateBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    update_operation_status: Option<OperationBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure: Option<Failure>,
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
            inverse_offers: None,
            rescind_inverse_offer: None,
            update: None,
            update_operation_status: None,
            message: None,
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
                    offer_id: offer_id.clone(),
                })
            }
            Event::InverseOffers(list) => {
                w.inverse_offers = Some(InverseOffersBody {
                    inverse_offers: list.clone(),
                })
            }
            Event::RescindInverseOffer { inverse_offer_id } => {
                w.rescind_inverse_offer = Some(RescindInverseBody {
                    inverse_offer_id: inverse_offer_id.clone(),
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
            Event::Message(m) => w.message = Some(m.clone()),
            Event::Failure(f) => w.failure = Some(f.clone()),
            Event::Error(message) => {
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
            "INVERSE_OFFERS",
            "RESCIND_INVERSE_OFFER",
            "UPDATE",
            "UPDATE_OPERATION_STATUS",
            "MESSAGE",
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
                offer_id: w.rescind.ok_or_else(missing)?.offer_id,
            },
            "INVERSE_OFFERS" => Event::InverseOffers(
                w.inverse_offers
                    .map(|o| o.inverse_offers)
                    .unwrap_or_default(),
            ),
            "RESCIND_INVERSE_OFFER" => Event::RescindInverseOffer {
                inverse_offer_id: w
                    .rescind_inverse_offer
                    .ok_or_else(missing)?
                    .inverse_offer_id,
            },
            "UPDATE" => Event::Update(w.update.ok_or_else(missing)?.status),
            "UPDATE_OPERATION_STATUS" => {
                Event::UpdateOperationStatus(w.update_operation_status.ok_or_else(missing)?.status)
            }
            "MESSAGE" => Event::Message(w.message.ok_or_else(missing)?),
            "FAILURE" => Event::Failure(w.failure.ok_or_else(missing)?),
            "ERROR" => Event::Error(w.error.ok_or_else(missing)?.message),
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
                    offer_id: Id::new("o1"),
                },
                json!({"type": "RESCIND", "rescind": {"offer_id": {"value": "o1"}}}),
            ),
            (
                Event::Failure(Failure {
                    agent_id: Some(Id::new("a")),
                    executor_id: None,
                    status: None,
                }),
                json!({"type": "FAILURE", "failure": {"agent_id": {"value": "a"}}}),
            ),
            (
                Event::RescindInverseOffer {
                    inverse_offer_id: Id::new("o2"),
                },
                json!({"type": "RESCIND_INVERSE_OFFER",
                       "rescind_inverse_offer": {"inverse_offer_id": {"value": "o2"}}}),
            ),
            (
                Event::InverseOffers(vec![InverseOffer {
                    id: Id::new("o3"),
                    framework_id: Id::new("f"),
                    agent_id: Some(Id::new("a")),
                    unavailability: crate::operator::Unavailability {
                        start: crate::mesos::Nanos { nanoseconds: 5 },
                        duration: None,
                    },
                    resources: Vec::new(),
                }]),
                json!({"type": "INVERSE_OFFERS", "inverse_offers": {"inverse_offers": [{
                    "id": {"value": "o3"}, "framework_id": {"value": "f"},
                    "agent_id": {"value": "a"},
                    "unavailability": {"start": {"nanoseconds": 5}}, "resources": []}]}}),
            ),
            (
                Event::Error("gone".into()),
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
        let other = json!({"type": "SOMETHING_NEW", "something_new": {}});
        let e: Event = serde_json::from_value(other.clone()).unwrap();
        assert_eq!(e.kind(), "SOMETHING_NEW");
        assert_eq!(serde_json::to_value(&e).unwrap(), other);
    }

    #[test]
    fn events_read_typed_with_nulls() {
        let e = Event::from_json(json!({"type": "OFFERS", "offers": {"offers": [
            {"id": {"value": "o1"}, "framework_id": {"value": "f"}, "agent_id": {"value": "a"},
             "hostname": "h", "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 2},
             "role": "*", "allocation_info": {"role": "*"}}], "allocation_info": {"role": "*"}}]}}))
        .unwrap();
        let Event::Offers(offers) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(offers[0].scalar("cpus"), 2.0);
        let e = Event::from_json(json!({"type": "UPDATE", "update": {"status": {
            "task_id": {"value": "t"}, "state": "TASK_RUNNING", "uuid": null}}}))
        .unwrap();
        assert!(matches!(e, Event::Update(s) if s.uuid.is_none()));
        assert!(Event::from_json(json!({"type": "UPDATE"})).is_err());
    }
}
