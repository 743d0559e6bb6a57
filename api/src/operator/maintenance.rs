//! Maintenance and drain in the operator API: `UPDATE_MAINTENANCE_SCHEDULE`,
//! `GET_MAINTENANCE_SCHEDULE`, `GET_MAINTENANCE_STATUS`,
//! `START_MAINTENANCE`/`STOP_MAINTENANCE` (also the legacy
//! `/master/maintenance/*` and `/master/machine/down|up` bodies), and
//! `DRAIN_AGENT`, `DEACTIVATE_AGENT`, `REACTIVATE_AGENT` with the
//! `drain_info` an agent shows. The scheduler's `InverseOffer` is here too.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::lenient;
use crate::mesos::{Id, Nanos};
use crate::resources::v1::Resource;

/// `MachineID`: a hostname, an IP, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MachineId {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

impl MachineId {
    pub fn hostname(hostname: &str) -> MachineId {
        MachineId {
            hostname: Some(hostname.to_string()),
            ip: None,
        }
    }
}

/// `Unavailability`: from `start` (nanoseconds since the epoch), for
/// `duration` (unbounded when absent).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Unavailability {
    pub start: Nanos,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Nanos>,
}

/// `maintenance::Window`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    #[serde(default)]
    pub machine_ids: Vec<MachineId>,
    pub unavailability: Unavailability,
}

/// `maintenance::Schedule`: also the body of the legacy
/// `/master/maintenance/schedule`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    #[serde(default)]
    pub windows: Vec<Window>,
}

/// `update_maintenance_schedule` (the call) and `get_maintenance_schedule`
/// (the answer).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceSchedule {
    #[serde(default)]
    pub schedule: Schedule,
}

/// `start_maintenance` / `stop_maintenance`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machines {
    #[serde(default)]
    pub machines: Vec<MachineId>,
}

/// A framework's answer to an inverse offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(non_camel_case_types)]
pub enum InverseOfferAnswer {
    UNKNOWN,
    ACCEPT,
    DECLINE,
}

/// `InverseOfferStatus`: what one framework answered, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InverseOfferStatus {
    pub status: InverseOfferAnswer,
    pub framework_id: Id,
    pub timestamp: Nanos,
}

/// `ClusterStatus.DrainingMachine`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainingMachine {
    pub id: MachineId,
    #[serde(default)]
    pub statuses: Vec<InverseOfferStatus>,
}

/// `maintenance::ClusterStatus`: also the body of the legacy
/// `/master/maintenance/status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    #[serde(default)]
    pub draining_machines: Vec<DrainingMachine>,
    #[serde(default)]
    pub down_machines: Vec<MachineId>,
}

/// `get_maintenance_status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GetMaintenanceStatus {
    #[serde(default)]
    pub status: ClusterStatus,
}

/// A `google.protobuf.Duration`, `{"seconds": 600, "nanos": 0}`; read
/// leniently as stout's text too (`"10mins"`, `"1.5secs"`), as
/// maintenance.md shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtoDuration {
    pub nanos: i64,
}

impl ProtoDuration {
    pub fn from_nanos(nanos: i64) -> ProtoDuration {
        ProtoDuration { nanos }
    }

    /// Reads stout's duration text: a number and one of `ns`, `us`, `ms`,
    /// `secs`, `mins`, `hrs`, `days`, `weeks`.
    pub fn parse_text(text: &str) -> Option<ProtoDuration> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let value: f64 = number.parse().ok()?;
        let scale = match unit.trim() {
            "ns" => 1.0,
            "us" => 1e3,
            "ms" => 1e6,
            "secs" | "s" => 1e9,
            "mins" => 60e9,
            "hrs" => 3600e9,
            "days" => 86_400e9,
            "weeks" => 604_800e9,
            _ => return None,
        };
        let nanos = value * scale;
        (nanos.is_finite() && nanos.abs() < i64::MAX as f64).then_some(ProtoDuration {
            nanos: nanos as i64,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct DurationWire {
    #[serde(default, deserialize_with = "lenient::i64")]
    seconds: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    nanos: i64,
}

impl Serialize for ProtoDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        DurationWire {
            seconds: self.nanos / 1_000_000_000,
            nanos: self.nanos % 1_000_000_000,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ProtoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Text(String),
            Wire(DurationWire),
        }
        match Either::deserialize(d)? {
            Either::Text(t) => ProtoDuration::parse_text(&t)
                .ok_or_else(|| D::Error::custom(format!("invalid duration '{t}'"))),
            Either::Wire(w) => w
                .seconds
                .checked_mul(1_000_000_000)
                .and_then(|s| s.checked_add(w.nanos))
                .map(ProtoDuration::from_nanos)
                .ok_or_else(|| D::Error::custom("duration out of range")),
        }
    }
}

/// `drain_agent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainAgent {
    pub agent_id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_grace_period: Option<ProtoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_gone: Option<bool>,
}

/// `deactivate_agent` / `reactivate_agent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRef {
    pub agent_id: Id,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(non_camel_case_types)]
pub enum DrainState {
    DRAINING,
    DRAINED,
}

/// `DrainConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DrainConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_grace_period: Option<ProtoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_gone: Option<bool>,
}

/// `DrainInfo`: an agent's drain, in `GET_AGENTS` and `/master/state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainInfo {
    pub state: DrainState,
    #[serde(default)]
    pub config: DrainConfig,
}

/// `InverseOffer`: the master asks a framework to free an agent by the
/// unavailability's start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InverseOffer {
    pub id: Id,
    pub framework_id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Id>,
    pub unavailability: Unavailability,
    /// Empty: all of the agent's resources.
    #[serde(default)]
    pub resources: Vec<Resource>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_read_as_protobuf_or_stout_text() {
        let d: ProtoDuration = serde_json::from_value(json!({"seconds": 600})).unwrap();
        assert_eq!(d.nanos, 600_000_000_000);
        let d: ProtoDuration = serde_json::from_value(json!({"seconds": "1", "nanos": 5})).unwrap();
        assert_eq!(d.nanos, 1_000_000_005);
        let d: ProtoDuration = serde_json::from_value(json!("10mins")).unwrap();
        assert_eq!(d.nanos, 600_000_000_000);
        let d: ProtoDuration = serde_json::from_value(json!("1.5secs")).unwrap();
        assert_eq!(d.nanos, 1_500_000_000);
        assert!(serde_json::from_value::<ProtoDuration>(json!("soon")).is_err());
        assert!(serde_json::from_value::<ProtoDuration>(json!({"seconds": i64::MAX})).is_err());
        assert_eq!(
            serde_json::to_value(ProtoDuration::from_nanos(2_500_000_000)).unwrap(),
            json!({"seconds": 2, "nanos": 500_000_000})
        );
    }

    #[test]
    fn a_schedule_reads_as_maintenance_md_writes_it() {
        let s: Schedule = serde_json::from_value(json!({"windows": [{
            "machine_ids": [{"hostname": "machine1", "ip": "10.0.0.1"}, {"hostname": "machine2"}],
            "unavailability": {"start": {"nanoseconds": 1443830400000000000i64},
                               "duration": {"nanoseconds": 3600000000000i64}}}]}))
        .unwrap();
        assert_eq!(s.windows[0].machine_ids[1], MachineId::hostname("machine2"));
        assert_eq!(
            s.windows[0].unavailability.duration,
            Some(Nanos {
                nanoseconds: 3_600_000_000_000
            })
        );
        let back: Schedule = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
