//! Parsing a scheduler `Call` (v1 JSON) into [`SchedulerCall`], with the
//! validation Mesos does before a call reaches the master
//! (`src/master/validation.cpp`): required body fields, id shapes, uuids.

use keel_api::mesos::{self, Filters, FrameworkInfo, Id, KillPolicy};
use serde::Deserialize;
use serde_json::Value as Json;

/// A rejected call: HTTP status and plain-text reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub status: u16,
    pub reason: String,
}

pub fn bad(reason: impl Into<String>) -> CallError {
    CallError {
        status: 400,
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    Launch {
        task_infos: Vec<Json>,
    },
    LaunchGroup {
        executor: Json,
        task_infos: Vec<Json>,
    },
    Reserve {
        resources: Vec<Json>,
    },
    Unreserve {
        resources: Vec<Json>,
    },
    Create {
        volumes: Vec<Json>,
    },
    Destroy {
        volumes: Vec<Json>,
    },
    /// Known Mesos operations Keel does not perform (GROW_VOLUME, ...).
    Unsupported {
        kind: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum SchedulerCall {
    Subscribe {
        info: FrameworkInfo,
        info_json: Json,
        suppressed_roles: Vec<String>,
    },
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
    Kill {
        task_id: String,
        agent_id: Option<String>,
        kill_policy: Option<KillPolicy>,
    },
    Shutdown {
        executor_id: String,
        agent_id: String,
    },
    Acknowledge {
        agent_id: String,
        task_id: String,
        uuid: Vec<u8>,
    },
    Reconcile {
        tasks: Vec<(String, Option<String>)>,
    },
    Message {
        agent_id: String,
        executor_id: String,
    },
    Request,
    UpdateFramework {
        info: FrameworkInfo,
        info_json: Json,
        suppressed_roles: Vec<String>,
    },
    /// Calls that are valid and answered 202 with nothing to do in Keel
    /// (inverse offers, operation feedback).
    NoOp {
        kind: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParsedCall {
    /// The top-level `framework_id` (absent on a first SUBSCRIBE).
    pub framework_id: Option<String>,
    pub call: SchedulerCall,
}

impl ParsedCall {
    pub fn is_subscribe(&self) -> bool {
        matches!(self.call, SchedulerCall::Subscribe { .. })
    }
}

fn field<'a>(obj: &'a serde_json::Map<String, Json>, name: &str) -> Result<&'a Json, CallError> {
    obj.get(name).ok_or_else(|| {
        bad(format!(
            "Failed to validate scheduler::Call: Expecting '{name}' to be present"
        ))
    })
}

fn from<T: for<'de> Deserialize<'de>>(v: &Json, what: &str) -> Result<T, CallError> {
    mesos::parse(v.clone()).map_err(|e| {
        bad(format!(
            "Failed to convert JSON into Call protobuf: {what}: {e}"
        ))
    })
}

fn id_list(v: Option<&Json>, what: &str) -> Result<Vec<String>, CallError> {
    let ids: Vec<Id> = match v {
        Some(v) => from(v, what)?,
        None => Vec::new(),
    };
    Ok(ids.into_iter().map(|i| i.value).collect())
}

fn string_list(v: Option<&Json>, what: &str) -> Result<Vec<String>, CallError> {
    match v {
        Some(v) => from(v, what),
        None => Ok(Vec::new()),
    }
}

fn json_list(obj: Option<&Json>, name: &str) -> Vec<Json> {
    obj.and_then(|o| o.get(name))
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default()
}

fn filters(body: &serde_json::Map<String, Json>) -> Result<Filters, CallError> {
    match body.get("filters") {
        Some(f) => from(f, "filters"),
        None => Ok(Filters::default()),
    }
}

fn roles_of(body: Option<&Json>) -> Result<Vec<String>, CallError> {
    match body.and_then(|b| b.get("roles")) {
        Some(r) => from(r, "roles"),
        None => {
            // Deprecated singular form.
            Ok(body
                .and_then(|b| b.get("role"))
                .and_then(Json::as_str)
                .map(|r| vec![r.to_string()])
                .unwrap_or_default())
        }
    }
}

fn operation(op: &Json) -> Result<Operation, CallError> {
    let kind = op
        .get("type")
        .and_then(Json::as_str)
        .ok_or_else(|| bad("Failed to validate Offer.Operation: Missing required fields: type"))?;
    let body = |name: &str| {
        op.get(name).ok_or_else(|| {
            bad(format!(
                "Failed to validate Offer.Operation: Expecting '{name}' to be present"
            ))
        })
    };
    Ok(match kind {
        "LAUNCH" => Operation::Launch {
            task_infos: json_list(Some(body("launch")?), "task_infos"),
        },
        "LAUNCH_GROUP" => {
            let lg = body("launch_group")?;
            let executor = lg
                .get("executor")
                .cloned()
                .ok_or_else(|| bad("Failed to validate Offer.Operation: Expecting 'launch_group.executor' to be present"))?;
            Operation::LaunchGroup {
                executor,
                task_infos: json_list(lg.get("task_group"), "tasks"),
            }
        }
        "RESERVE" => Operation::Reserve {
            resources: json_list(Some(body("reserve")?), "resources"),
        },
        "UNRESERVE" => Operation::Unreserve {
            resources: json_list(Some(body("unreserve")?), "resources"),
        },
        "CREATE" => Operation::Create {
            volumes: json_list(Some(body("create")?), "volumes"),
        },
        "DESTROY" => Operation::Destroy {
            volumes: json_list(Some(body("destroy")?), "volumes"),
        },
        "GROW_VOLUME" | "SHRINK_VOLUME" | "CREATE_DISK" | "DESTROY_DISK" => {
            Operation::Unsupported { kind: kind.into() }
        }
        other => {
            return Err(bad(format!(
                "Failed to convert JSON into Call protobuf: unknown operation type '{other}'"
            )));
        }
    })
}

/// Parses a call body that is already known to be JSON.
pub fn parse_call(mut json: Json) -> Result<ParsedCall, CallError> {
    mesos::strip_nulls(&mut json);
    let Some(obj) = json.as_object() else {
        return Err(bad(
            "Failed to convert JSON into Call protobuf: expecting a JSON object",
        ));
    };
    let kind = match obj.get("type") {
        Some(Json::String(s)) => s.as_str(),
        Some(_) => {
            return Err(bad(
                "Failed to convert JSON into Call protobuf: 'type' must be a string",
            ));
        }
        None => {
            return Err(bad(
                "Failed to convert JSON into Call protobuf: Missing required fields: type",
            ));
        }
    };
    let framework_id = match obj.get("framework_id") {
        Some(v) => Some(from::<Id>(v, "framework_id")?.value),
        None => None,
    };
    let call = match kind {
        "SUBSCRIBE" => {
            let sub = field(obj, "subscribe")?;
            let info_json = sub
                .get("framework_info")
                .cloned()
                .ok_or_else(|| bad("Failed to validate scheduler::Call: Expecting 'subscribe.framework_info' to be present"))?;
            let info: FrameworkInfo = from(&info_json, "framework_info")?;
            if let (Some(top), Some(inner)) = (&framework_id, &info.id)
                && top != &inner.value
            {
                return Err(bad(
                    "'framework_id' differs from 'subscribe.framework_info.id'",
                ));
            }
            SchedulerCall::Subscribe {
                info,
                info_json,
                suppressed_roles: string_list(sub.get("suppressed_roles"), "suppressed_roles")?,
            }
        }
        "TEARDOWN" => SchedulerCall::Teardown,
        "ACCEPT" => {
            let a = field(obj, "accept")?
                .as_object()
                .ok_or_else(|| bad("'accept' must be an object"))?;
            SchedulerCall::Accept {
                offer_ids: id_list(a.get("offer_ids"), "offer_ids")?,
                operations: json_list(Some(&Json::Object(a.clone())), "operations")
                    .iter()
                    .map(operation)
                    .collect::<Result<_, _>>()?,
                filters: filters(a)?,
            }
        }
        "DECLINE" => {
            let d = field(obj, "decline")?
                .as_object()
                .ok_or_else(|| bad("'decline' must be an object"))?;
            SchedulerCall::Decline {
                offer_ids: id_list(d.get("offer_ids"), "offer_ids")?,
                filters: filters(d)?,
            }
        }
        "REVIVE" => SchedulerCall::Revive {
            roles: roles_of(obj.get("revive"))?,
        },
        "SUPPRESS" => SchedulerCall::Suppress {
            roles: roles_of(obj.get("suppress"))?,
        },
        "KILL" => {
            let k = field(obj, "kill")?;
            SchedulerCall::Kill {
                task_id: from::<Id>(k.get("task_id").unwrap_or(&Json::Null), "kill.task_id")?.value,
                agent_id: match k.get("agent_id") {
                    Some(a) => Some(from::<Id>(a, "kill.agent_id")?.value),
                    None => None,
                },
                kill_policy: match k.get("kill_policy") {
                    Some(p) => Some(from(p, "kill.kill_policy")?),
                    None => None,
                },
            }
        }
        "SHUTDOWN" => {
            let s = field(obj, "shutdown")?;
            SchedulerCall::Shutdown {
                executor_id: from::<Id>(
                    s.get("executor_id").unwrap_or(&Json::Null),
                    "shutdown.executor_id",
                )?
                .value,
                agent_id: from::<Id>(
                    s.get("agent_id").unwrap_or(&Json::Null),
                    "shutdown.agent_id",
                )?
                .value,
            }
        }
        "ACKNOWLEDGE" => {
            let a = field(obj, "acknowledge")?;
            let uuid_text = a
                .get("uuid")
                .and_then(Json::as_str)
                .ok_or_else(|| bad("Failed to convert JSON into Call protobuf: Missing required fields: acknowledge.uuid"))?;
            let uuid = mesos::base64_decode(uuid_text)
                .filter(|u| u.len() == 16)
                .ok_or_else(|| {
                    bad(format!(
                        "Failed to validate scheduler::Call: '{uuid_text}' is not a valid UUID"
                    ))
                })?;
            SchedulerCall::Acknowledge {
                agent_id: from::<Id>(
                    a.get("agent_id").unwrap_or(&Json::Null),
                    "acknowledge.agent_id",
                )?
                .value,
                task_id: from::<Id>(
                    a.get("task_id").unwrap_or(&Json::Null),
                    "acknowledge.task_id",
                )?
                .value,
                uuid,
            }
        }
        "RECONCILE" => {
            let r = field(obj, "reconcile")?;
            let mut tasks = Vec::new();
            for t in json_list(Some(r), "tasks") {
                let task_id = from::<Id>(
                    t.get("task_id").unwrap_or(&Json::Null),
                    "reconcile.tasks.task_id",
                )?
                .value;
                let agent_id = match t.get("agent_id") {
                    Some(a) => Some(from::<Id>(a, "reconcile.tasks.agent_id")?.value),
                    None => None,
                };
                tasks.push((task_id, agent_id));
            }
            SchedulerCall::Reconcile { tasks }
        }
        "MESSAGE" => {
            let m = field(obj, "message")?;
            SchedulerCall::Message {
                agent_id: from::<Id>(m.get("agent_id").unwrap_or(&Json::Null), "message.agent_id")?
                    .value,
                executor_id: from::<Id>(
                    m.get("executor_id").unwrap_or(&Json::Null),
                    "message.executor_id",
                )?
                .value,
            }
        }
        "REQUEST" => {
            field(obj, "request")?;
            SchedulerCall::Request
        }
        "UPDATE_FRAMEWORK" => {
            let u = field(obj, "update_framework")?;
            let info_json = u
                .get("framework_info")
                .cloned()
                .ok_or_else(|| bad("Failed to validate scheduler::Call: Expecting 'update_framework.framework_info' to be present"))?;
            SchedulerCall::UpdateFramework {
                info: from(&info_json, "framework_info")?,
                info_json,
                suppressed_roles: string_list(u.get("suppressed_roles"), "suppressed_roles")?,
            }
        }
        "ACCEPT_INVERSE_OFFERS"
        | "DECLINE_INVERSE_OFFERS"
        | "ACKNOWLEDGE_OPERATION_STATUS"
        | "RECONCILE_OPERATIONS" => SchedulerCall::NoOp { kind: kind.into() },
        "UNKNOWN" => {
            return Err(CallError {
                status: 501,
                reason: "Received an unexpected 'UNKNOWN' call".into(),
            });
        }
        other => {
            return Err(bad(format!(
                "Failed to convert JSON into Call protobuf: unknown call type '{other}'"
            )));
        }
    };
    if framework_id.is_none() && !matches!(call, SchedulerCall::Subscribe { .. }) {
        return Err(bad(
            "Failed to validate scheduler::Call: Expecting 'framework_id' to be present",
        ));
    }
    Ok(ParsedCall { framework_id, call })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Json) -> Result<SchedulerCall, CallError> {
        parse_call(v).map(|p| p.call)
    }

    #[test]
    fn subscribe_with_nulls_like_mesos_framework_sends() {
        let p = parse_call(json!({
            "type": "SUBSCRIBE", "framework_id": null,
            "subscribe": {"framework_info": {"user": "u", "name": "n", "capabilities": null,
                "failover_timeout": "30", "id": null}}
        }))
        .unwrap();
        assert_eq!(p.framework_id, None);
        match p.call {
            SchedulerCall::Subscribe { info, .. } => assert_eq!(info.failover_timeout, Some(30.0)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn resubscribe_ids_must_agree() {
        let err = parse(json!({
            "type": "SUBSCRIBE", "framework_id": {"value": "a"},
            "subscribe": {"framework_info": {"user": "u", "name": "n", "id": {"value": "b"}}}
        }))
        .unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.reason.contains("differs"));
    }

    #[test]
    fn accept_with_operations() {
        let c = parse(json!({
            "type": "ACCEPT", "framework_id": {"value": "f"},
            "accept": {"offer_ids": [{"value": "o1"}], "filters": {"refuse_seconds": 10},
                "operations": [
                    {"type": "LAUNCH", "launch": {"task_infos": [{"name": "t"}]}},
                    {"type": "RESERVE", "reserve": {"resources": []}}
                ]}
        }))
        .unwrap();
        match c {
            SchedulerCall::Accept {
                offer_ids,
                operations,
                filters,
            } => {
                assert_eq!(offer_ids, vec!["o1"]);
                assert_eq!(filters.refuse_seconds(), 10.0);
                assert_eq!(operations.len(), 2);
                assert!(
                    matches!(&operations[0], Operation::Launch { task_infos } if task_infos.len() == 1)
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn body_fields_are_required() {
        for (kind, body) in [
            ("ACCEPT", "accept"),
            ("DECLINE", "decline"),
            ("KILL", "kill"),
            ("ACKNOWLEDGE", "acknowledge"),
            ("RECONCILE", "reconcile"),
            ("MESSAGE", "message"),
        ] {
            let err = parse(json!({"type": kind, "framework_id": {"value": "f"}})).unwrap_err();
            assert_eq!(err.status, 400);
            assert!(
                err.reason
                    .contains(&format!("Expecting '{body}' to be present")),
                "{}",
                err.reason
            );
        }
        // REVIVE, SUPPRESS and TEARDOWN need no body.
        for kind in ["REVIVE", "SUPPRESS", "TEARDOWN"] {
            parse(json!({"type": kind, "framework_id": {"value": "f"}})).unwrap();
        }
    }

    #[test]
    fn acknowledge_uuid_must_be_16_bytes() {
        let ack = |uuid: &str| {
            parse(
                json!({"type": "ACKNOWLEDGE", "framework_id": {"value": "f"},
                "acknowledge": {"agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": uuid}}),
            )
        };
        let ok = ack("AAECAwQFBgcICQoLDA0ODw==").unwrap();
        assert!(matches!(ok, SchedulerCall::Acknowledge { uuid, .. } if uuid.len() == 16));
        assert_eq!(ack("AAEC").unwrap_err().status, 400);
        assert_eq!(ack("not base64!").unwrap_err().status, 400);
    }

    #[test]
    fn type_and_framework_id_rules() {
        assert_eq!(
            parse(json!({"type": "UNKNOWN", "framework_id": {"value": "f"}}))
                .unwrap_err()
                .status,
            501
        );
        assert_eq!(parse(json!({"type": "FLY"})).unwrap_err().status, 400);
        assert_eq!(parse(json!({})).unwrap_err().status, 400);
        let err = parse(json!({"type": "REVIVE"})).unwrap_err();
        assert!(err.reason.contains("framework_id"));
        let roles = parse(json!({"type": "SUPPRESS", "framework_id": {"value": "f"},
            "suppress": {"roles": ["a", "b"]}}))
        .unwrap();
        assert_eq!(
            roles,
            SchedulerCall::Suppress {
                roles: vec!["a".into(), "b".into()]
            }
        );
    }
}
