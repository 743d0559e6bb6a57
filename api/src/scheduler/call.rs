//! A scheduler `Call`, parsed once from its JSON body with the checks Mesos
//! makes before a call reaches the master (`src/master/validation.cpp`):
//! required bodies, id agreement, uuids. The whole body is typed in one
//! pass (tasks and their resources included); what the master then checks
//! against its state (offers, resources) is its business.
//!
//! A body from a peer is read from its bytes within [`CALL_LIMITS`]
//! before anything is typed ([`Call::from_slice`]); the typed call is
//! built straight from the text, with no `serde_json::Value` in between.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value as Json;

use super::limits::CALL_LIMITS;
use super::operation::{Operation, RawOperation};
use crate::mesos::bounded::{self, ReadError};
use crate::mesos::{self, Filters, FrameworkInfo, Id, KillPolicy};

/// Why a call body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Not a `Call` at all, or a field of the wrong shape (HTTP 400).
    #[error("{0}")]
    Malformed(String),
    /// A `Call` Mesos would refuse (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// `type: UNKNOWN` (HTTP 501 in Mesos).
    #[error("Received an unexpected 'UNKNOWN' call")]
    Unknown,
}

fn expecting(field: &str) -> CallError {
    CallError::Invalid(format!(
        "Failed to validate scheduler::Call: Expecting '{field}' to be present"
    ))
}

/// SUBSCRIBE and UPDATE_FRAMEWORK bodies.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Subscribe {
    pub framework_info: FrameworkInfo,
    #[serde(default)]
    pub suppressed_roles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Kill {
    pub task_id: Id,
    #[serde(default)]
    pub agent_id: Option<Id>,
    #[serde(default)]
    pub kill_policy: Option<KillPolicy>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReconcileTask {
    pub task_id: Id,
    #[serde(default)]
    pub agent_id: Option<Id>,
}

/// What the call asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum CallKind {
    Subscribe(Subscribe),
    Teardown,
    Accept {
        offer_ids: Vec<String>,
        operations: Vec<Operation>,
        filters: Filters,
    },
    Decline {
        offer_ids: Vec<String>,
        filters: Filters,
    },
    Revive {
        roles: Vec<String>,
    },
    Suppress {
        roles: Vec<String>,
    },
    Kill(Kill),
    Shutdown {
        executor_id: String,
        agent_id: String,
    },
    Acknowledge {
        agent_id: String,
        task_id: String,
        /// 16 bytes.
        uuid: Vec<u8>,
    },
    /// Explicit (the listed tasks) or implicit (none listed).
    Reconcile {
        tasks: Vec<ReconcileTask>,
    },
    /// Data for one of the framework's executors (unreliable).
    Message {
        agent_id: String,
        executor_id: String,
        data: Vec<u8>,
    },
    Request,
    UpdateFramework(Subscribe),
    AcknowledgeOperationStatus {
        agent_id: Option<String>,
        operation_id: String,
        uuid: Vec<u8>,
    },
    /// The operations listed (all the framework's when none are).
    ReconcileOperations {
        operation_ids: Vec<String>,
    },
    /// ACCEPT_INVERSE_OFFERS (`accept`) or DECLINE_INVERSE_OFFERS: the
    /// framework's answer to maintenance inverse offers.
    InverseOffers {
        accept: bool,
        inverse_offer_ids: Vec<String>,
        filters: Filters,
    },
    /// Valid calls with nothing to do in Keel.
    NoOp {
        kind: String,
    },
}

/// A parsed call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The top-level `framework_id` (absent only on a first SUBSCRIBE).
    pub framework_id: Option<String>,
    pub kind: CallKind,
}

#[derive(Deserialize)]
struct RawCall {
    #[serde(rename = "type")]
    kind: Option<Json>,
    framework_id: Option<Id>,
    subscribe: Option<Subscribe>,
    accept: Option<RawAccept>,
    decline: Option<RawDecline>,
    accept_inverse_offers: Option<RawInverse>,
    decline_inverse_offers: Option<RawInverse>,
    revive: Option<RawRoles>,
    suppress: Option<RawRoles>,
    kill: Option<Kill>,
    shutdown: Option<RawShutdown>,
    acknowledge: Option<RawAcknowledge>,
    reconcile: Option<RawReconcile>,
    message: Option<RawMessage>,
    request: Option<IgnoredAny>,
    update_framework: Option<Subscribe>,
    acknowledge_operation_status: Option<RawAckOperation>,
    reconcile_operations: Option<RawReconcileOperations>,
}

#[derive(Deserialize)]
struct RawAccept {
    #[serde(default)]
    offer_ids: Vec<Id>,
    #[serde(default)]
    operations: Vec<RawOperation>,
    #[serde(default)]
    filters: Filters,
}

#[derive(Deserialize)]
struct RawDecline {
    #[serde(default)]
    offer_ids: Vec<Id>,
    #[serde(default)]
    filters: Filters,
}

#[derive(Deserialize)]
struct RawInverse {
    #[serde(default)]
    inverse_offer_ids: Vec<Id>,
    #[serde(default)]
    filters: Filters,
}

#[derive(Deserialize)]
struct RawRoles {
    #[serde(default)]
    roles: Vec<String>,
    /// Deprecated singular form.
    role: Option<String>,
}

#[derive(Deserialize)]
struct RawShutdown {
    executor_id: Id,
    agent_id: Id,
}

#[derive(Deserialize)]
struct RawAcknowledge {
    agent_id: Id,
    task_id: Id,
    uuid: String,
}

#[derive(Deserialize)]
struct RawReconcile {
    #[serde(default)]
    tasks: Vec<ReconcileTask>,
}

#[derive(Deserialize)]
struct RawMessage {
    agent_id: Id,
    executor_id: Id,
    data: String,
}

#[derive(Deserialize)]
struct RawAckOperation {
    agent_id: Option<Id>,
    uuid: String,
    operation_id: Id,
}

#[derive(Deserialize)]
struct RawReconcileOperations {
    #[serde(default)]
    operations: Vec<RawOperationRef>,
}

#[derive(Deserialize)]
struct RawOperationRef {
    operation_id: Id,
}

fn uuid(text: &str) -> Result<Vec<u8>, CallError> {
    mesos::base64_decode(text)
        .filter(|u| u.len() == 16)
        .ok_or_else(|| {
            CallError::Invalid(format!(
                "Failed to validate scheduler::Call: '{text}' is not a valid UUID"
            ))
        })
}

fn roles(body: Option<RawRoles>) -> Vec<String> {
    match body {
        Some(RawRoles { roles, .. }) if !roles.is_empty() => roles,
        Some(RawRoles { role: Some(r), .. }) => vec![r],
        _ => Vec::new(),
    }
}

fn ids(list: Vec<Id>) -> Vec<String> {
    list.into_iter().map(|i| i.value).collect()
}

/// The `type` and `framework_id` of a call, read without the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallHead {
    /// `None` when absent or not a string.
    pub kind: Option<String>,
    pub framework_id: Option<String>,
}

#[derive(Deserialize)]
struct RawHead {
    #[serde(rename = "type")]
    kind: Option<Json>,
    framework_id: Option<Id>,
}

fn convert_error(e: impl std::fmt::Display) -> CallError {
    CallError::Malformed(format!("Failed to convert JSON into Call protobuf: {e}"))
}

impl Call {
    /// Parses a call body from a peer: [`Call::prepare`], then
    /// [`Call::from_prepared`].
    pub fn from_slice(body: &[u8]) -> Result<Call, CallError> {
        Call::from_prepared(&Call::prepare(body)?)
    }

    /// Checks a body against [`CALL_LIMITS`] (allocating nothing for it)
    /// and drops its nulls; the text then goes to [`Call::head`] and
    /// [`Call::from_prepared`].
    pub fn prepare(body: &[u8]) -> Result<Cow<'_, [u8]>, CallError> {
        let text = bounded::prepare(body, &CALL_LIMITS).map_err(|e| match e {
            ReadError::Syntax(e) => {
                CallError::Malformed(format!("Failed to parse body into JSON: {e}"))
            }
            ReadError::Limit(e) => CallError::Invalid(format!("Call exceeds a limit: {e}")),
            ReadError::Invalid(e) => convert_error(e),
        })?;
        let first = text.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return Err(convert_error("expecting a JSON object"));
        }
        Ok(text)
    }

    /// The type and framework id of a prepared body, so that the caller
    /// can check the framework before the whole call is typed.
    pub fn head(prepared: &[u8]) -> Result<CallHead, CallError> {
        let raw: RawHead = bounded::from_prepared(prepared).map_err(convert_error)?;
        Ok(CallHead {
            kind: match raw.kind {
                Some(Json::String(s)) => Some(s),
                _ => None,
            },
            framework_id: raw.framework_id.map(|i| i.value),
        })
    }

    /// Parses a JSON value (tests, in-process callers): as its text.
    pub fn from_json(json: Json) -> Result<Call, CallError> {
        let text = serde_json::to_vec(&json).map_err(convert_error)?;
        Call::from_slice(&text)
    }

    /// Parses a body [`Call::prepare`] returned.
    pub fn from_prepared(prepared: &[u8]) -> Result<Call, CallError> {
        let raw: RawCall = bounded::from_prepared(prepared).map_err(convert_error)?;
        let kind = match raw.kind {
            Some(Json::String(s)) => s,
            Some(_) => {
                return Err(CallError::Malformed(
                    "Failed to convert JSON into Call protobuf: 'type' must be a string".into(),
                ));
            }
            None => {
                return Err(CallError::Malformed(
                    "Failed to convert JSON into Call protobuf: Missing required fields: type"
                        .into(),
                ));
            }
        };
        let framework_id = raw.framework_id.map(|i| i.value);
        let call = match kind.as_str() {
            "SUBSCRIBE" => {
                let sub = raw.subscribe.ok_or_else(|| expecting("subscribe"))?;
                if let (Some(top), Some(inner)) = (&framework_id, &sub.framework_info.id)
                    && top != &inner.value
                {
                    return Err(CallError::Invalid(
                        "'framework_id' differs from 'subscribe.framework_info.id'".into(),
                    ));
                }
                CallKind::Subscribe(sub)
            }
            "TEARDOWN" => CallKind::Teardown,
            "ACCEPT" => {
                let a = raw.accept.ok_or_else(|| expecting("accept"))?;
                CallKind::Accept {
                    offer_ids: ids(a.offer_ids),
                    operations: a
                        .operations
                        .into_iter()
                        .map(RawOperation::typed)
                        .collect::<Result<_, _>>()
                        .map_err(CallError::Invalid)?,
                    filters: a.filters,
                }
            }
            "DECLINE" => {
                let d = raw.decline.ok_or_else(|| expecting("decline"))?;
                CallKind::Decline {
                    offer_ids: ids(d.offer_ids),
                    filters: d.filters,
                }
            }
            "REVIVE" => CallKind::Revive {
                roles: roles(raw.revive),
            },
            "SUPPRESS" => CallKind::Suppress {
                roles: roles(raw.suppress),
            },
            "KILL" => CallKind::Kill(raw.kill.ok_or_else(|| expecting("kill"))?),
            "SHUTDOWN" => {
                let s = raw.shutdown.ok_or_else(|| expecting("shutdown"))?;
                CallKind::Shutdown {
                    executor_id: s.executor_id.value,
                    agent_id: s.agent_id.value,
                }
            }
            "ACKNOWLEDGE" => {
                let a = raw.acknowledge.ok_or_else(|| expecting("acknowledge"))?;
                CallKind::Acknowledge {
                    uuid: uuid(&a.uuid)?,
                    agent_id: a.agent_id.value,
                    task_id: a.task_id.value,
                }
            }
            "RECONCILE" => CallKind::Reconcile {
                tasks: raw.reconcile.ok_or_else(|| expecting("reconcile"))?.tasks,
            },
            "MESSAGE" => {
                let m = raw.message.ok_or_else(|| expecting("message"))?;
                let data = mesos::base64_decode(&m.data).ok_or_else(|| {
                    CallError::Invalid(format!(
                        "Failed to convert JSON into Call protobuf: Failed to base64-decode 'data' of MESSAGE: {:?}",
                        m.data
                    ))
                })?;
                CallKind::Message {
                    agent_id: m.agent_id.value,
                    executor_id: m.executor_id.value,
                    data,
                }
            }
            "REQUEST" => {
                raw.request.ok_or_else(|| expecting("request"))?;
                CallKind::Request
            }
            "UPDATE_FRAMEWORK" => CallKind::UpdateFramework(
                raw.update_framework
                    .ok_or_else(|| expecting("update_framework"))?,
            ),
            "ACKNOWLEDGE_OPERATION_STATUS" => {
                let a = raw
                    .acknowledge_operation_status
                    .ok_or_else(|| expecting("acknowledge_operation_status"))?;
                CallKind::AcknowledgeOperationStatus {
                    uuid: uuid(&a.uuid)?,
                    agent_id: a.agent_id.map(|i| i.value),
                    operation_id: a.operation_id.value,
                }
            }
            "RECONCILE_OPERATIONS" => CallKind::ReconcileOperations {
                operation_ids: raw
                    .reconcile_operations
                    .map(|r| {
                        r.operations
                            .into_iter()
                            .map(|o| o.operation_id.value)
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            "ACCEPT_INVERSE_OFFERS" => {
                let a = raw
                    .accept_inverse_offers
                    .ok_or_else(|| expecting("accept_inverse_offers"))?;
                CallKind::InverseOffers {
                    accept: true,
                    inverse_offer_ids: ids(a.inverse_offer_ids),
                    filters: a.filters,
                }
            }
            "DECLINE_INVERSE_OFFERS" => {
                let d = raw
                    .decline_inverse_offers
                    .ok_or_else(|| expecting("decline_inverse_offers"))?;
                CallKind::InverseOffers {
                    accept: false,
                    inverse_offer_ids: ids(d.inverse_offer_ids),
                    filters: d.filters,
                }
            }
            "UNKNOWN" => return Err(CallError::Unknown),
            other => {
                return Err(CallError::Malformed(format!(
                    "Failed to convert JSON into Call protobuf: unknown call type '{other}'"
                )));
            }
        };
        if framework_id.is_none() && !matches!(call, CallKind::Subscribe(_)) {
            return Err(CallError::Invalid(
                "Failed to validate scheduler::Call: Expecting 'framework_id' to be present".into(),
            ));
        }
        Ok(Call {
            framework_id,
            kind: call,
        })
    }
}

#[cfg(test)]
#[path = "call_tests.rs"]
mod tests;
