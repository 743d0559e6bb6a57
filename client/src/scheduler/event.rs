//! Scheduler events, typed as far as `keel_api` has the messages; the rest
//! (`INVERSE_OFFERS`, `UPDATE_OPERATION_STATUS`, ...) stay JSON.

use keel_api::mesos::{Id, TaskStatus};
use keel_api::operator::{MasterInfo, Offer};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

/// `subscribed`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Subscribed {
    pub framework_id: Id,
    #[serde(default)]
    pub heartbeat_interval_seconds: Option<f64>,
    #[serde(default)]
    pub master_info: Option<MasterInfo>,
}

/// `failure`: an agent was lost (no executor), or an executor ended.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Failure {
    #[serde(default)]
    pub agent_id: Option<Id>,
    #[serde(default)]
    pub executor_id: Option<Id>,
    #[serde(default)]
    pub status: Option<i32>,
}

/// `message`: data from an executor.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Message {
    pub agent_id: Id,
    pub executor_id: Id,
    /// base64.
    #[serde(default)]
    pub data: String,
}

/// One event of the subscription's stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Subscribed(Subscribed),
    Offers(Vec<Offer>),
    Rescind {
        offer_id: Id,
    },
    Update(TaskStatus),
    Message(Message),
    Failure(Failure),
    /// The master ends the subscription (`error.message`).
    Error(String),
    Heartbeat,
    /// Any other event, as it came.
    Other(Json),
}

#[derive(Deserialize)]
struct OffersBody {
    #[serde(default)]
    offers: Vec<Offer>,
}

#[derive(Deserialize)]
struct RescindBody {
    offer_id: Id,
}

#[derive(Deserialize)]
struct UpdateBody {
    status: TaskStatus,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
}

impl Event {
    /// The event's `type`, e.g. `OFFERS`.
    pub fn kind(&self) -> &str {
        match self {
            Event::Subscribed(_) => "SUBSCRIBED",
            Event::Offers(_) => "OFFERS",
            Event::Rescind { .. } => "RESCIND",
            Event::Update(_) => "UPDATE",
            Event::Message(_) => "MESSAGE",
            Event::Failure(_) => "FAILURE",
            Event::Error(_) => "ERROR",
            Event::Heartbeat => "HEARTBEAT",
            Event::Other(e) => e.get("type").and_then(Json::as_str).unwrap_or("UNKNOWN"),
        }
    }

    /// Reads one RecordIO record of the stream (Mesos' JSON rules).
    pub fn from_json(mut event: Json) -> Result<Event, serde_json::Error> {
        keel_api::mesos::strip_nulls(&mut event);
        let kind = event
            .get("type")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        fn body<T: DeserializeOwned>(event: &mut Json, key: &str) -> Result<T, serde_json::Error> {
            let b = event.get_mut(key).map(Json::take).unwrap_or(Json::Null);
            serde_json::from_value(b)
        }
        Ok(match kind.as_str() {
            "SUBSCRIBED" => Event::Subscribed(body(&mut event, "subscribed")?),
            "OFFERS" => Event::Offers(body::<OffersBody>(&mut event, "offers")?.offers),
            "RESCIND" => Event::Rescind {
                offer_id: body::<RescindBody>(&mut event, "rescind")?.offer_id,
            },
            "UPDATE" => Event::Update(body::<UpdateBody>(&mut event, "update")?.status),
            "MESSAGE" => Event::Message(body(&mut event, "message")?),
            "FAILURE" => Event::Failure(body(&mut event, "failure")?),
            "ERROR" => Event::Error(body::<ErrorBody>(&mut event, "error")?.message),
            "HEARTBEAT" => Event::Heartbeat,
            _ => Event::Other(event),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_read_typed() {
        let e = Event::from_json(json!({"type": "OFFERS", "offers": {"offers": [
            {"id": {"value": "o1"}, "framework_id": {"value": "f"}, "agent_id": {"value": "a"},
             "hostname": "h", "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 2},
             "role": "*", "allocation_info": {"role": "*"}}], "allocation_info": {"role": "*"}}]}}))
        .unwrap();
        let Event::Offers(offers) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(offers[0].scalar("cpus"), 2.0);
        assert_eq!(e.kind(), "OFFERS");
        let e = Event::from_json(json!({"type": "UPDATE", "update": {"status": {
            "task_id": {"value": "t"}, "state": "TASK_RUNNING", "uuid": null}}}))
        .unwrap();
        assert!(matches!(e, Event::Update(s) if s.uuid.is_none()));
        let e = Event::from_json(json!({"type": "ERROR", "error": {"message": "gone"}})).unwrap();
        assert_eq!(e, Event::Error("gone".into()));
        let e = Event::from_json(json!({"type": "INVERSE_OFFERS", "inverse_offers": {}})).unwrap();
        assert_eq!(e.kind(), "INVERSE_OFFERS");
        assert!(Event::from_json(json!({"type": "UPDATE"})).is_err());
    }
}
