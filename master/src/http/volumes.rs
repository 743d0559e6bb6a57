//! `CREATE_VOLUMES`, `DESTROY_VOLUMES`, `GROW_VOLUME`, `SHRINK_VOLUME` on
//! `/api/v1`, and the legacy form writes `/master/create-volumes` and
//! `/master/destroy-volumes` (`slaveId=`, `volumes=` a JSON array of v1
//! `Resource`), parsed into the same [`OperatorCall::Volumes`]; the
//! engine checks them (`engine/volumes.rs`) and the registry keeps them
//! (`registry/volumes.rs`), as for an ACCEPT's CREATE and DESTROY.
//!
//! Answers as Mesos': `202` once committed; `400` for a malformed request
//! or an unknown agent; `409` when the reserved disk or the volume is not
//! available (no such reservation, used by a task); `503` when the store
//! is.

use axum::http::StatusCode;
use keel_api::mesos::Resource;
use keel_api::operator::{GrowVolume, ShrinkVolume, Volumes};
use keel_api::resources::Resources;

use super::error::ApiError;
use super::operator::OperatorCall;
use super::operator_body::{RawCall, typed_body};
use crate::core::{Master, MasterError};
use crate::engine::{EngineError, VolumeChange, VolumeError};
use crate::registry::volumes::Volume;

/// The most volumes one call names.
pub const MAX_VOLUMES: usize = 1_000;

fn bad(reason: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, reason)
}

/// A persistent volume as a request names it.
fn volume(r: &Resource, what: &str) -> Result<Volume, ApiError> {
    match Volume::from_resource(r) {
        Some(Ok(v)) if v.role == "*" => Err(bad(format!(
            "{what}: volume {} is not on reserved disk (persistent volumes need a role's reservation)",
            v.id
        ))),
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(bad(format!("{what}: {e}"))),
        None => Err(bad(format!(
            "{what}: a '{}' resource without disk.persistence is not a volume",
            r.name
        ))),
    }
}

fn volumes(rs: &[Resource], what: &str) -> Result<Vec<Volume>, ApiError> {
    if rs.is_empty() {
        return Err(bad(format!("{what}: no volumes given")));
    }
    if rs.len() > MAX_VOLUMES {
        return Err(bad(format!("{what}: more than {MAX_VOLUMES} volumes")));
    }
    rs.iter().map(|r| volume(r, what)).collect()
}

fn agent(id: Option<&keel_api::mesos::Id>, what: &str) -> Result<String, ApiError> {
    id.map(|i| i.value.clone())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad(format!("{what}: 'agent_id' is required")))
}

/// The call `kind` (CREATE_VOLUMES, DESTROY_VOLUMES, GROW_VOLUME,
/// SHRINK_VOLUME) from its body.
pub fn parse(call: &RawCall<'_>, kind: &str) -> Result<OperatorCall, ApiError> {
    let (agent_id, change) = match kind {
        "CREATE_VOLUMES" | "DESTROY_VOLUMES" => {
            let name = kind.to_ascii_lowercase();
            let b: Volumes = typed_body(call, &name)?;
            let vs = volumes(&b.volumes, &name)?;
            let change = if kind == "CREATE_VOLUMES" {
                VolumeChange::Create(vs)
            } else {
                VolumeChange::Destroy(vs)
            };
            (agent(Some(&b.agent_id), &name)?, change)
        }
        "GROW_VOLUME" => {
            let b: GrowVolume = typed_body(call, "grow_volume")?;
            let v = volume(&b.volume, "grow_volume.volume")?;
            let addition = Resources::from_v1(std::slice::from_ref(&*b.addition))
                .map_err(|e| bad(format!("grow_volume.addition: {e}")))?;
            let by_mb = addition.scalar("disk");
            if b.addition.disk.is_some()
                || addition.0.len() != 1
                || addition.0.iter().any(|r| r.role != v.role)
            {
                return Err(bad(format!(
                    "grow_volume.addition must be plain disk reserved to the volume's role {}",
                    v.role
                )));
            }
            let change = VolumeChange::Grow {
                role: v.role,
                id: v.id,
                by_mb,
            };
            (agent(b.agent_id.as_ref(), "grow_volume")?, change)
        }
        _ => {
            let b: ShrinkVolume = typed_body(call, "shrink_volume")?;
            let v = volume(&b.volume, "shrink_volume.volume")?;
            let change = VolumeChange::Shrink {
                role: v.role,
                id: v.id,
                by_mb: b.subtract.value,
            };
            (agent(b.agent_id.as_ref(), "shrink_volume")?, change)
        }
    };
    Ok(OperatorCall::Volumes { agent_id, change })
}

/// The legacy form's `volumes=` (a JSON array of v1 `Resource`).
pub fn parse_form(agent_id: &str, text: &str, create: bool) -> Result<OperatorCall, ApiError> {
    let rs: Vec<Resource> = keel_api::mesos::parse(
        serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| bad(format!("Error in parsing 'volumes' query parameter: {e}")))?,
    )
    .map_err(|e| bad(format!("Error in parsing 'volumes' query parameter: {e}")))?;
    let vs = volumes(&rs, "volumes")?;
    Ok(OperatorCall::Volumes {
        agent_id: agent_id.to_string(),
        change: if create {
            VolumeChange::Create(vs)
        } else {
            VolumeChange::Destroy(vs)
        },
    })
}

/// Performs the change: `202`, or the refusal.
pub async fn mutate(
    master: &Master,
    agent_id: &str,
    change: &VolumeChange,
) -> Result<StatusCode, (StatusCode, String)> {
    master
        .change_volumes(agent_id, change.clone())
        .await
        .map(|()| StatusCode::ACCEPTED)
        .map_err(|e| (status(&e), e.to_string()))
}

/// A refusal as HTTP (see the module doc).
fn status(e: &MasterError) -> StatusCode {
    match e {
        _ if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
        MasterError::Engine(EngineError::Volume(VolumeError::Invalid(_)))
        | MasterError::Engine(EngineError::UnknownAgent(_)) => StatusCode::BAD_REQUEST,
        _ => StatusCode::CONFLICT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn on(v: serde_json::Value) -> Result<OperatorCall, ApiError> {
        let text = v.to_string();
        let prepared = super::super::operator_body::prepare(text.as_bytes()).unwrap();
        let call = RawCall::parse(&prepared).unwrap();
        let kind = call.kind().unwrap();
        parse(&call, &kind)
    }

    fn vol(role: &str) -> serde_json::Value {
        json!({"name": "disk", "type": "SCALAR", "scalar": {"value": 64},
            "reservations": [{"type": "DYNAMIC", "role": role}],
            "disk": {"persistence": {"id": "v1", "principal": "ops"},
                     "volume": {"container_path": "data", "mode": "RW"}}})
    }

    #[test]
    fn volume_calls_parse() {
        let OperatorCall::Volumes { agent_id, change } = on(json!({"type": "CREATE_VOLUMES",
            "create_volumes": {"agent_id": {"value": "a"}, "volumes": [vol("eng")]}}))
        .unwrap() else {
            panic!("not a volume call")
        };
        assert_eq!(agent_id, "a");
        let VolumeChange::Create(vs) = change else {
            panic!("not a create")
        };
        assert_eq!(
            (vs[0].id.as_str(), vs[0].role.as_str(), vs[0].disk_mb),
            ("v1", "eng", 64.0)
        );
        let grow = on(
            json!({"type": "GROW_VOLUME", "grow_volume": {"agent_id": {"value": "a"},
            "volume": vol("eng"), "addition": {"name": "disk", "type": "SCALAR",
            "scalar": {"value": 16}, "reservations": [{"type": "DYNAMIC", "role": "eng"}]}}}),
        )
        .unwrap();
        assert_eq!(
            grow,
            OperatorCall::Volumes {
                agent_id: "a".into(),
                change: VolumeChange::Grow {
                    role: "eng".into(),
                    id: "v1".into(),
                    by_mb: 16.0
                }
            }
        );
        let shrink = on(
            json!({"type": "SHRINK_VOLUME", "shrink_volume": {"agent_id": {"value": "a"},
            "volume": vol("eng"), "subtract": {"value": 8}}}),
        )
        .unwrap();
        assert!(matches!(
            shrink,
            OperatorCall::Volumes {
                change: VolumeChange::Shrink { by_mb: 8.0, .. },
                ..
            }
        ));
    }

    #[test]
    fn malformed_volume_calls_are_refused_with_a_reason() {
        let plain_disk = json!({"name": "disk", "type": "SCALAR", "scalar": {"value": 1}});
        for (call, needle) in [
            (
                json!({"type": "CREATE_VOLUMES"}),
                "Expecting 'create_volumes'",
            ),
            (
                json!({"type": "CREATE_VOLUMES", "create_volumes": {"agent_id": {"value": "a"}, "volumes": []}}),
                "no volumes",
            ),
            (
                json!({"type": "CREATE_VOLUMES", "create_volumes": {"agent_id": {"value": "a"}, "volumes": [plain_disk]}}),
                "without disk.persistence",
            ),
            (
                json!({"type": "DESTROY_VOLUMES", "destroy_volumes": {"agent_id": {"value": "a"}, "volumes": [vol("*")]}}),
                "not on reserved disk",
            ),
            (
                json!({"type": "GROW_VOLUME", "grow_volume": {"agent_id": {"value": "a"}, "volume": vol("eng"),
                    "addition": {"name": "disk", "type": "SCALAR", "scalar": {"value": 1}, "reservations": [{"type": "DYNAMIC", "role": "dev"}]}}}),
                "reserved to the volume's role",
            ),
            (
                json!({"type": "SHRINK_VOLUME", "shrink_volume": {"volume": vol("eng"), "subtract": {"value": 1}}}),
                "'agent_id' is required",
            ),
        ] {
            let e = on(call.clone()).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{call}");
            assert!(e.reason.contains(needle), "{} lacks {needle}", e.reason);
        }
    }
}
