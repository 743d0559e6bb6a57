//! `POST /api/v1` (also `/api/v1/operator`, `/master/api/v1`): the Mesos v1
//! operator API. The request is parsed into one [`OperatorCall`], authorized
//! (`auth.rs`: 403 naming the action; reads are filtered to what the caller
//! may see, `visible.rs`) and then answered; every parse failure is a 4xx
//! with a plain-text reason.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;

use keel_api::operator::{
    GetAgents, GetFlags, GetHealth, GetLoggingLevel, GetMaster, GetQuota, GetVersion, GetWeights,
    QuotaStatus, Response as Answer, WeightInfo,
};
use keel_api::resources::Resources;

use super::body::Bodies;
use super::operator_body as body;
use super::operator_calls as calls;
use super::state::{self, Snapshot};
use super::visible::Viewer;
use super::{json, plain, views};
use crate::auth::Caller;
use crate::core::{Master, MasterError};
use crate::registry::QuotaConfig;

/// The operator calls Keel answers today.
#[derive(Debug, Clone, PartialEq)]
pub enum OperatorCall {
    GetHealth,
    GetFlags,
    GetVersion,
    GetMaster,
    GetAgents,
    GetState,
    GetFrameworks,
    GetTasks,
    GetExecutors,
    GetRoles,
    GetWeights,
    UpdateWeights(Vec<(String, f64)>),
    GetQuota,
    UpdateQuota(Vec<QuotaConfig>),
    ReserveResources {
        agent_id: String,
        resources: Resources,
    },
    UnreserveResources {
        agent_id: String,
        resources: Resources,
    },
    Teardown {
        framework_id: String,
    },
    MarkAgentGone {
        agent_id: String,
    },
    /// The event stream.
    Subscribe,
    /// The deprecated SET_QUOTA: a quota for a role that has none.
    SetQuota(QuotaConfig),
    /// The deprecated REMOVE_QUOTA.
    RemoveQuota {
        role: String,
    },
    GetLoggingLevel,
    GetOperations,
    /// A verbosity for a while.
    SetLoggingLevel {
        level: u32,
        duration: std::time::Duration,
    },
    GetMetrics,
    GetMaintenanceSchedule,
    GetMaintenanceStatus,
    /// The whole schedule, as the registry keeps it.
    UpdateMaintenanceSchedule(Vec<crate::registry::Window>),
    StartMaintenance(Vec<crate::registry::Machine>),
    StopMaintenance(Vec<crate::registry::Machine>),
    DrainAgent {
        agent_id: String,
        max_grace_period_ns: Option<i64>,
        mark_gone: bool,
    },
    DeactivateAgent(String),
    ReactivateAgent(String),
    /// LIST_FILES / READ_FILE: an agent's sandbox through the master.
    Files(super::files::FilesCall),
    /// CREATE_VOLUMES, DESTROY_VOLUMES, GROW_VOLUME, SHRINK_VOLUME.
    Volumes {
        agent_id: String,
        change: crate::engine::VolumeChange,
    },
}

/// A rejected request: the status and the plain-text reason.
pub use super::error::ApiError as Rejection;

fn reject(status: StatusCode, reason: impl Into<String>) -> Rejection {
    Rejection::new(status, reason)
}

/// `Content-Type` must be exactly `application/json` (Mesos compares the
/// plain string); missing is 400, anything else 415.
pub(super) fn check_content_type(headers: &HeaderMap) -> Result<(), Rejection> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .ok_or_else(|| {
            reject(
                StatusCode::BAD_REQUEST,
                "Expecting 'Content-Type' to be present",
            )
        })?
        .to_str()
        .unwrap_or("");
    match content_type {
        "application/json" => {}
        "application/x-protobuf" => {
            return Err(reject(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Keel speaks the v1 API in JSON only; send 'Content-Type: application/json'",
            ));
        }
        other => {
            return Err(reject(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Expecting 'Content-Type' of application/json; got '{other}'"),
            ));
        }
    }
    Ok(())
}

/// Parses one operator request (headers already known to be for POST).
pub fn parse_operator_call(headers: &HeaderMap, body: &[u8]) -> Result<OperatorCall, Rejection> {
    check_content_type(headers)?;
    if !accepts_json(headers) {
        return Err(reject(
            StatusCode::NOT_ACCEPTABLE,
            "Expecting 'Accept' to allow application/json",
        ));
    }
    let text = body::prepare(body)?;
    let call = body::RawCall::parse(&text)?;
    let ty = call.kind()?;
    if let Some(parsed) = super::maintenance::parse(&ty, &call) {
        return parsed;
    }
    match ty.as_str() {
        "GET_HEALTH" => Ok(OperatorCall::GetHealth),
        "GET_FLAGS" => Ok(OperatorCall::GetFlags),
        "GET_VERSION" => Ok(OperatorCall::GetVersion),
        "GET_MASTER" => Ok(OperatorCall::GetMaster),
        "GET_AGENTS" => Ok(OperatorCall::GetAgents),
        "GET_STATE" => Ok(OperatorCall::GetState),
        "GET_FRAMEWORKS" => Ok(OperatorCall::GetFrameworks),
        "GET_TASKS" => Ok(OperatorCall::GetTasks),
        "GET_EXECUTORS" => Ok(OperatorCall::GetExecutors),
        "GET_LOGGING_LEVEL" => Ok(OperatorCall::GetLoggingLevel),
        "GET_OPERATIONS" => Ok(OperatorCall::GetOperations),
        "SET_LOGGING_LEVEL" => body::set_logging_level(&call)
            .map(|(level, duration)| OperatorCall::SetLoggingLevel { level, duration }),
        "GET_ROLES" => Ok(OperatorCall::GetRoles),
        "GET_WEIGHTS" => Ok(OperatorCall::GetWeights),
        "GET_QUOTA" => Ok(OperatorCall::GetQuota),
        "SUBSCRIBE" => Ok(OperatorCall::Subscribe),
        "SET_QUOTA" => body::set_quota(&call).map(OperatorCall::SetQuota),
        "REMOVE_QUOTA" => body::remove_quota(&call).map(|role| OperatorCall::RemoveQuota { role }),
        // `get_metrics.timeout` is ignored: the answer is immediate.
        "GET_METRICS" => Ok(OperatorCall::GetMetrics),
        "UPDATE_WEIGHTS" => body::update_weights(&call).map(OperatorCall::UpdateWeights),
        "UPDATE_QUOTA" => body::update_quota(&call).map(OperatorCall::UpdateQuota),
        "RESERVE_RESOURCES" => {
            body::reservation(&call, "reserve_resources").map(|(agent_id, resources)| {
                OperatorCall::ReserveResources {
                    agent_id,
                    resources,
                }
            })
        }
        "UNRESERVE_RESOURCES" => {
            body::reservation(&call, "unreserve_resources").map(|(agent_id, resources)| {
                OperatorCall::UnreserveResources {
                    agent_id,
                    resources,
                }
            })
        }
        "TEARDOWN" => {
            body::teardown(&call).map(|framework_id| OperatorCall::Teardown { framework_id })
        }
        "MARK_AGENT_GONE" => {
            body::mark_agent_gone(&call).map(|agent_id| OperatorCall::MarkAgentGone { agent_id })
        }
        "LIST_FILES" | "READ_FILE" => super::files::parse(&call, &ty).map(OperatorCall::Files),
        "CREATE_VOLUMES" | "DESTROY_VOLUMES" | "GROW_VOLUME" | "SHRINK_VOLUME" => {
            super::volumes::parse(&call, &ty)
        }
        "UNKNOWN" => Err(reject(
            StatusCode::NOT_IMPLEMENTED,
            "Unknown call type UNKNOWN",
        )),
        t => Err(reject(
            StatusCode::BAD_REQUEST,
            format!("Failed to convert JSON into Call protobuf: unknown call type '{t}'"),
        )),
    }
}

/// An absent Accept header accepts anything (Mesos behaviour).
pub(super) fn accepts_json(headers: &HeaderMap) -> bool {
    let values: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    values.is_empty()
        || values.iter().flat_map(|v| v.split(',')).any(|m| {
            let m = m.split(';').next().unwrap_or("").trim();
            matches!(m, "application/json" | "application/*" | "*/*")
        })
}

pub async fn handle(
    State(master): State<Arc<Master>>,
    Extension(bodies): Extension<Bodies>,
    Extension(caller): Extension<Caller>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(resp) = super::require_post(&method) {
        return resp;
    }
    let parsed = match bodies
        .read(&headers, body, bodies.limits.operator, "operator calls")
        .await
    {
        Ok(body) => parse_operator_call(&headers, &body),
        Err(e) => Err(e),
    };
    let call = match parsed {
        Ok(call) => call,
        Err(r) => {
            tracing::debug!(status = %r.status, reason = %r.reason, "operator call rejected");
            return plain(r.status, r.reason);
        }
    };
    if let Err(r) = super::auth::operator(&master, &caller, &call) {
        return plain(r.status, r.reason);
    }
    if call == OperatorCall::Subscribe {
        return super::events::subscribe(&master, &caller).await;
    }
    if let Some(resp) = mutate(&master, &call).await {
        return resp;
    }
    if let Err(e) = master.read_barrier().await {
        return plain(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    }
    if let OperatorCall::Files(files) = &call {
        return super::files::answer(&master, &caller, files).await;
    }
    match answer(&master, &call, Viewer::of(&master, &caller)) {
        Some(a) => json(StatusCode::OK, &a),
        None => plain(
            StatusCode::NOT_IMPLEMENTED,
            format!("Operator call {call:?} has no answer"),
        ),
    }
}

/// `GET_AGENTS`: what running tasks use on each agent is allocated, what
/// outstanding offers hold is offered.
pub(super) fn get_agents(s: &Snapshot) -> GetAgents {
    let agents: Vec<_> = s.registry.agents().cloned().collect();
    let per_agent = s.per_agent();
    let none = (Resources::default(), Resources::default());
    GetAgents {
        agents: views::registered_agents(&agents)
            .map(|a| {
                let (used, offered) = per_agent.get(&a.id).unwrap_or(&none);
                views::agent_v1(a, s.registry.maintenance(), used, offered)
            })
            .collect(),
        recovered_agents: Vec::new(),
    }
}

/// Performs a mutating call; `None` for read calls.
pub(super) async fn mutate(master: &Master, call: &OperatorCall) -> Option<Response> {
    use axum::response::IntoResponse;
    let result = match call {
        OperatorCall::UpdateWeights(w) => master
            .update_weights(w.clone())
            .await
            .map(|()| StatusCode::OK)
            .map_err(|e| (error_status(&e), e.to_string())),
        OperatorCall::UpdateQuota(q) => master
            .update_quotas(q.clone())
            .await
            .map(|()| StatusCode::OK)
            .map_err(|e| (error_status(&e), e.to_string())),
        OperatorCall::ReserveResources {
            agent_id,
            resources,
        }
        | OperatorCall::UnreserveResources {
            agent_id,
            resources,
        } => {
            let reserve = matches!(call, OperatorCall::ReserveResources { .. });
            if !master.has_agent(agent_id) {
                Err((StatusCode::BAD_REQUEST, format!("Unknown agent {agent_id}")))
            } else {
                master
                    .reserve_resources(agent_id, resources.clone(), reserve)
                    .await
                    .map(|()| StatusCode::ACCEPTED)
                    .map_err(|e| {
                        let status = if e.is_unavailable() {
                            StatusCode::SERVICE_UNAVAILABLE
                        } else {
                            StatusCode::CONFLICT
                        };
                        (status, e.to_string())
                    })
            }
        }
        OperatorCall::Teardown { framework_id } => master
            .teardown(framework_id)
            .await
            .map(|()| StatusCode::OK)
            .map_err(|e| {
                let e = super::error::ApiError::from(e);
                (e.status, e.reason)
            }),
        OperatorCall::MarkAgentGone { agent_id } => master
            .mark_agent_gone(agent_id)
            .await
            .map(|()| StatusCode::OK)
            .map_err(|e| gone_error(agent_id, &e)),
        OperatorCall::SetQuota(q) => calls::set_quota(master, q).await,
        OperatorCall::RemoveQuota { role } => calls::remove_quota(master, role).await,
        OperatorCall::SetLoggingLevel { level, duration } => {
            calls::set_logging_level(*level, *duration)
        }
        OperatorCall::Volumes { agent_id, change } => {
            super::volumes::mutate(master, agent_id, change).await
        }
        other => super::maintenance::mutate(master, other).await?,
    };
    Some(match result {
        Ok(status) => status.into_response(),
        Err((status, reason)) => plain(status, reason),
    })
}

/// A master's refusal as HTTP: the request's fault is 400; a store that
/// failed or a master that does not lead (any more) is 503, since the same
/// request may succeed later or elsewhere.
pub(super) fn error_status(e: &MasterError) -> StatusCode {
    if e.is_unavailable() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::BAD_REQUEST
    }
}

/// MARK_AGENT_GONE's refusals as Mesos answers them: an agent the master
/// does not know is `404 Agent '<id>' not found`.
fn gone_error(agent_id: &str, e: &MasterError) -> (StatusCode, String) {
    match e.registry_error() {
        Some(crate::registry::RegistryError::UnknownAgent(_)) => (
            StatusCode::NOT_FOUND,
            format!("Agent '{agent_id}' not found"),
        ),
        _ => (error_status(e), e.to_string()),
    }
}

/// Answers a read call, as far as `viewer` may see; `None` for mutating
/// calls.
fn answer(master: &Master, call: &OperatorCall, viewer: Viewer<'_>) -> Option<Answer> {
    Some(match call {
        OperatorCall::GetHealth => Answer::GetHealth(GetHealth { healthy: true }),
        OperatorCall::GetFlags => Answer::GetFlags(GetFlags {
            flags: views::flags(master),
        }),
        OperatorCall::GetVersion => Answer::GetVersion(GetVersion {
            version_info: views::version_info(),
        }),
        OperatorCall::GetMaster => Answer::GetMaster(GetMaster {
            master_info: views::master_info(master),
            start_time: Some(master.start_time()),
            elected_time: Some(master.elected_time().unwrap_or_else(|| master.start_time())),
            keel_cluster: Some(super::leader::cluster(&master.cluster())),
        }),
        OperatorCall::GetAgents => Answer::GetAgents(get_agents(&Snapshot::take(master))),
        OperatorCall::GetMetrics => Answer::GetMetrics(super::metrics::get_metrics(master)),
        OperatorCall::GetState => {
            Answer::GetState(super::events::get_state(viewer, Snapshot::take(master)))
        }
        OperatorCall::GetFrameworks => {
            Answer::GetFrameworks(state::get_frameworks(&viewer.snapshot(master)))
        }
        OperatorCall::GetTasks => Answer::GetTasks(state::get_tasks(&viewer.snapshot(master))),
        OperatorCall::GetLoggingLevel => Answer::GetLoggingLevel(GetLoggingLevel {
            level: keel_telemetry::verbosity(),
        }),
        OperatorCall::GetOperations => Answer::GetOperations(calls::get_operations(master, viewer)),
        OperatorCall::GetExecutors => {
            Answer::GetExecutors(state::get_executors(&viewer.snapshot(master)))
        }
        OperatorCall::GetRoles => {
            let mut roles = state::get_roles(master);
            roles.roles.retain(|r| viewer.role(&r.name));
            Answer::GetRoles(roles)
        }
        OperatorCall::GetWeights => Answer::GetWeights(GetWeights {
            weight_infos: master
                .weights()
                .into_iter()
                .filter(|(role, _)| viewer.role(role))
                .map(|(role, weight)| WeightInfo { role, weight })
                .collect(),
        }),
        OperatorCall::GetQuota => Answer::GetQuota(GetQuota {
            status: QuotaStatus {
                infos: Vec::new(),
                configs: master
                    .quotas()
                    .into_iter()
                    .filter(|q| viewer.quota(&q.role))
                    .map(|q| keel_api::operator::QuotaConfig {
                        guarantees: state::scalar_map(Some(&q.guarantees)),
                        limits: state::scalar_map(Some(&q.limits)),
                        role: q.role,
                    })
                    .collect(),
            },
        }),
        OperatorCall::UpdateWeights(_)
        | OperatorCall::UpdateQuota(_)
        | OperatorCall::ReserveResources { .. }
        | OperatorCall::UnreserveResources { .. }
        | OperatorCall::Teardown { .. }
        | OperatorCall::MarkAgentGone { .. }
        | OperatorCall::Subscribe
        | OperatorCall::SetQuota(_)
        | OperatorCall::RemoveQuota { .. }
        | OperatorCall::SetLoggingLevel { .. }
        | OperatorCall::Files(_)
        | OperatorCall::Volumes { .. } => return None,
        other => return super::maintenance::answer(master, other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    const JSON: &[(&str, &str)] = &[("content-type", "application/json")];

    #[test]
    fn parses_known_calls() {
        for (ty, call) in [
            ("GET_HEALTH", OperatorCall::GetHealth),
            ("GET_FLAGS", OperatorCall::GetFlags),
            ("GET_VERSION", OperatorCall::GetVersion),
            ("GET_MASTER", OperatorCall::GetMaster),
            ("GET_AGENTS", OperatorCall::GetAgents),
            ("GET_STATE", OperatorCall::GetState),
        ] {
            let body = format!(r#"{{"type":"{ty}","unknown_field":null}}"#);
            assert_eq!(
                parse_operator_call(&headers(JSON), body.as_bytes()),
                Ok(call)
            );
        }
    }

    #[test]
    fn content_type_rules() {
        let body = br#"{"type":"GET_HEALTH"}"#;
        let missing = parse_operator_call(&headers(&[]), body).unwrap_err();
        assert_eq!(missing.status, StatusCode::BAD_REQUEST);
        assert!(missing.reason.contains("Content-Type"));
        let text = parse_operator_call(&headers(&[("content-type", "text/plain")]), body);
        assert_eq!(text.unwrap_err().status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let proto = parse_operator_call(
            &headers(&[("content-type", "application/x-protobuf")]),
            body,
        );
        assert_eq!(
            proto.unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }

    #[test]
    fn accept_rules() {
        let body = br#"{"type":"GET_HEALTH"}"#;
        let ok = headers(&[
            ("content-type", "application/json"),
            ("accept", "text/html, */*;q=0.1"),
        ]);
        assert!(parse_operator_call(&ok, body).is_ok());
        let bad = headers(&[
            ("content-type", "application/json"),
            ("accept", "application/x-protobuf"),
        ]);
        assert_eq!(
            parse_operator_call(&bad, body).unwrap_err().status,
            StatusCode::NOT_ACCEPTABLE
        );
    }

    #[test]
    fn malformed_bodies_get_400_with_a_reason() {
        for (body, needle) in [
            (&b"{not json"[..], "Failed to parse body into JSON"),
            (b"[1,2]", "expecting a JSON object"),
            (b"{}", "Missing required fields: type"),
            (b"{\"type\":null}", "Missing required fields: type"),
            (b"{\"type\":7}", "'type' must be a string"),
            (
                b"{\"type\":\"GET_EVERYTHING\"}",
                "unknown call type 'GET_EVERYTHING'",
            ),
        ] {
            let r = parse_operator_call(&headers(JSON), body).unwrap_err();
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body:?}");
            assert!(r.reason.contains(needle), "{} lacks {needle}", r.reason);
        }
    }

    #[test]
    fn the_unknown_call_type_gets_501() {
        let r = parse_operator_call(&headers(JSON), br#"{"type":"UNKNOWN"}"#).unwrap_err();
        assert_eq!(r.status, StatusCode::NOT_IMPLEMENTED);
    }
}
